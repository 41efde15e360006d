// Frozen data (firmware/freezes): daily freezes with backfill, hourly and
// settlement data, read from a simulated DL/T 645-2007 meter whose clock the
// test moves. Values are checked against the simulator's own freezes.
#include <algorithm>
#include <map>
#include <set>

#include <doctest/doctest.h>

#include "firmware/freezes.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "simulator/clock.hpp"
#include "simulator/dlt645_meter.hpp"
#include "tests/support/sim_link.hpp"

using namespace meterd;
using namespace meterd::firmware;
namespace dlt = meterd::protocol::dlt645;
using simulator::from_civil;
using simulator::Millis;
using simulator::ms_per_day;
using simulator::ms_per_hour;
using simulator::ms_per_minute;

namespace {

const Millis t0 = from_civil(2026, 11, 27, 12, 0, 0);

simulator::Dlt645Meter make_meter(int utc_offset_minutes = 0,
                                  dlt::Version v = dlt::Version::v2007) {
  simulator::Dlt645MeterConfig c;
  c.id = "m1";
  c.version = v;
  c.address = *dlt::Address::parse(v == dlt::Version::v2007 ? "000000000001" : "000000000097");
  c.seed = 7;
  c.utc_offset_ms = utc_offset_minutes * ms_per_minute;
  return simulator::Dlt645Meter(c, t0 - 3 * ms_per_hour);
}

FreezeTaskInput input(Millis now, const TaskState& state, int offset_minutes = 0) {
  FreezeTaskInput in;
  in.meter = "m1";
  in.state = state;
  in.now_ms = now;
  in.zone = fixed_zone(offset_minutes);
  in.monthly = false;
  return in;
}

// The state after storing an output (what the buffer's state table holds).
void remember(TaskState& state, const TaskOutput& out) {
  for (const auto& u : out.state) state[u.key] = u.value;
}

// The simulator's own value of a frozen quantity: its answer to `di`.
std::map<std::string, std::string> truth(simulator::Dlt645Meter& m, std::uint32_t di, Millis now) {
  std::map<std::string, std::string> out;
  const auto values = m.read(di, now);
  REQUIRE(values);
  for (const auto& v : *values)
    if (const auto* d = std::get_if<protocol::Decimal>(&v.value))
      out[v.quantity] = protocol::to_string(*d);
  return out;
}

// The readings of one freeze time, quantity -> value.
std::map<std::string, std::string> stored(const TaskOutput& out, Millis freeze_utc,
                                          const std::string& quantity_prefix) {
  std::map<std::string, std::string> values;
  for (const auto& r : out.readings)
    if (r.freeze_ts_ms == freeze_utc && r.quantity.rfind(quantity_prefix, 0) == 0)
      values[r.quantity] = protocol::to_string({r.mantissa, r.exponent});
  return values;
}

std::set<Millis> freeze_times(const TaskOutput& out) {
  std::set<Millis> at;
  for (const auto& r : out.readings) at.insert(*r.freeze_ts_ms);
  return at;
}

}  // namespace

// A gateway that reads "the last freeze" (05060101) without checking its time
// stores yesterday's data as today's when the meter has not frozen yet, and
// one that stores without the state stores a day twice.
TEST_CASE("daily: the last freeze, matched by its time, stored once") {
  auto meter = make_meter();
  test::SimLink sim(meter);
  sim.now = t0;
  TaskState state;
  auto in = input(t0, state);
  CHECK(freeze_work_pending(in));
  const auto out = run_freeze_task(sim.link(), in);
  CHECK(out.failure == drivers::Outcome::ok);
  const Millis midnight = from_civil(2026, 11, 27);
  CHECK(freeze_times(out) == std::set<Millis>{midnight});
  CHECK(stored(out, midnight, "energy.active.import") == truth(meter, 0x05060101, t0));
  CHECK(stored(out, midnight, "energy.active.export") == truth(meter, 0x05060201, t0));
  for (const auto& r : out.readings) CHECK(r.frozen == "daily");
  CHECK(sim.asked == std::vector<std::uint32_t>{0x05060001, 0x05060101, 0x05060201});
  remember(state, out);
  CHECK(state[daily_done_key] == "2026-11-27");
  CHECK(daily_energy(state, "2026-11-27") ==
        protocol::parse_decimal(truth(meter, 0x05060101, t0)["energy.active.import.total"]));

  // Later the same day: nothing due, nothing read.
  in = input(t0 + 6 * ms_per_hour, state);
  CHECK_FALSE(freeze_work_pending(in));
  sim.asked.clear();
  CHECK(run_freeze_task(sim.link(), in).readings.empty());
  CHECK(sim.asked.empty());
}

// Backfill: a careless walk that assumes "last n" = n days ago without reading
// the freeze time, or that stops at the first day, fails here.
TEST_CASE("daily: three days down, the three missing days stored once each") {
  auto meter = make_meter();
  test::SimLink sim(meter);
  sim.now = t0;
  TaskState state;
  remember(state, run_freeze_task(sim.link(), input(t0, state)));

  const Millis back = from_civil(2026, 11, 30, 9, 0, 0);
  sim.now = back;
  sim.asked.clear();
  auto in = input(back, state);
  const auto out = run_freeze_task(sim.link(), in);
  CHECK(out.failure == drivers::Outcome::ok);
  std::set<Millis> expect;
  for (int d = 28; d <= 30; ++d) expect.insert(from_civil(2026, 11, d));
  CHECK(freeze_times(out) == expect);
  for (unsigned n = 1; n <= 3; ++n) {
    const Millis at = from_civil(2026, 11, 31 - static_cast<int>(n));
    CHECK(stored(out, at, "energy.active.import") == truth(meter, 0x05060100 | n, back));
  }
  CHECK(out.readings.size() == 3 * 10);  // 3 days x (total + 4 tariffs) x 2 items
  remember(state, out);
  CHECK(state[daily_done_key] == "2026-11-27,2026-11-28,2026-11-29,2026-11-30");
  // A restart with the stored state: nothing again.
  CHECK_FALSE(freeze_work_pending(input(back + ms_per_hour, state)));
}

// A gateway that stops at a dead meter must store what it read and nothing
// twice; one that marks a day done before its items arrived loses it.
TEST_CASE("daily: a meter that stops answering mid-backfill") {
  auto meter = make_meter();
  test::SimLink sim(meter);
  sim.now = t0;
  TaskState state;
  remember(state, run_freeze_task(sim.link(), input(t0, state)));
  const Millis back = from_civil(2026, 11, 30, 9, 0, 0);
  sim.now = back;
  sim.asked.clear();
  sim.answer_limit = 5;  // T1, 11-30 items (2), T2, 11-29 first item, then silence
  auto out = run_freeze_task(sim.link(), input(back, state));
  CHECK(out.failure == drivers::Outcome::timeout);
  CHECK(freeze_times(out) == std::set<Millis>{from_civil(2026, 11, 30)});
  remember(state, out);
  CHECK(state[daily_done_key] == "2026-11-27,2026-11-30");
  sim.answer_limit = std::numeric_limits<std::size_t>::max();
  sim.asked.clear();
  out = run_freeze_task(sim.link(), input(back + 15 * ms_per_minute, state));
  CHECK(out.failure == drivers::Outcome::ok);
  CHECK(freeze_times(out) == std::set<Millis>{from_civil(2026, 11, 28), from_civil(2026, 11, 29)});
  remember(state, out);
  CHECK(state[daily_done_key] == "2026-11-27,2026-11-28,2026-11-29,2026-11-30");
}

// The gateway's "now" is not the meter's: a meter clock 10 minutes behind has
// not frozen today at 00:06. Reading "last 1" then would store yesterday's
// freeze as today's.
TEST_CASE("daily: a meter clock behind has not frozen yet; the day is read once it has") {
  auto meter = make_meter();
  meter.skew_clock(-10 * ms_per_minute);
  test::SimLink sim(meter);
  sim.now = t0;
  TaskState state;
  remember(state, run_freeze_task(sim.link(), input(t0, state)));
  const Millis early = from_civil(2026, 11, 28, 0, 6, 0);
  sim.now = early;
  auto out = run_freeze_task(sim.link(), input(early, state));
  CHECK(out.readings.empty());
  CHECK(out.failure == drivers::Outcome::ok);
  CHECK(out.events.empty());
  remember(state, out);
  CHECK(freeze_work_pending(input(early + ms_per_minute, state)));
  const Millis later = from_civil(2026, 11, 28, 0, 12, 0);
  sim.now = later;
  out = run_freeze_task(sim.link(), input(later, state));
  // The meter froze at its own 00:00 (gateway 00:10): the freeze time it names.
  CHECK(freeze_times(out) == std::set<Millis>{from_civil(2026, 11, 28)});
  CHECK(stored(out, from_civil(2026, 11, 28), "energy.active.import") ==
        truth(meter, 0x05060101, later));
}

// Meters keep local time: the freeze at local 00:00 in UTC+8 is 16:00 UTC the
// day before. A gateway that takes the meter's time as UTC is 8 h off.
TEST_CASE("daily: local time of a UTC+8 meter") {
  auto meter = make_meter(480);
  test::SimLink sim(meter);
  sim.now = t0;  // 20:00 local on 11-27
  TaskState state;
  const auto out = run_freeze_task(sim.link(), input(t0, state, 480));
  CHECK(freeze_times(out) == std::set<Millis>{from_civil(2026, 11, 26, 16, 0, 0)});
}

// Backfill is bounded: ten days down with backfill_days = 7 reads the latest
// freeze and the 7 before it, no more (and says nothing of the older ones).
TEST_CASE("daily: backfill_days bounds the backfill") {
  auto meter = make_meter();
  test::SimLink sim(meter);
  sim.now = t0;
  TaskState state;
  remember(state, run_freeze_task(sim.link(), input(t0, state)));
  const Millis back = from_civil(2026, 12, 7, 9, 0, 0);
  sim.now = back;
  auto in = input(back, state);
  in.backfill_days = 7;
  in.max_freezes = 62;
  const auto out = run_freeze_task(sim.link(), in);
  std::set<Millis> expect;
  for (int d = 0; d <= 7; ++d) expect.insert(from_civil(2026, 12, 7) - d * ms_per_day);
  CHECK(freeze_times(out) == expect);
  remember(state, out);
  in = input(back + ms_per_hour, state);
  in.backfill_days = 7;
  CHECK_FALSE(freeze_work_pending(in));
}

// A meter that was off over a midnight holds no freeze for that day: its
// freezes are not one a day. A walk by day count alone stores the wrong day's
// data under the missing date; the gap must be named instead.
TEST_CASE("daily: a day the meter never froze is reported, the walk finds the others") {
  // A hand-made meter: freezes at 11-30, 11-28, 11-27 (none for 11-29).
  const std::vector<std::string> times{"2026-11-30T00:00", "2026-11-28T00:00", "2026-11-27T00:00"};
  const std::vector<std::string> energy{"300.00", "280.00", "270.00"};
  std::vector<std::uint32_t> asked;
  DltLink link;
  link.read = [&](std::uint32_t di) {
    asked.push_back(di);
    drivers::Dlt645Read r;
    r.di = di;
    const unsigned n = di & 0xFF;
    if (n < 1 || n > times.size()) {
      r.outcome = drivers::Outcome::meter_error;
      r.error_word = 0x02;
      return r;
    }
    const auto item = dlt::lookup(dlt::Version::v2007, di);
    std::vector<dlt::ValueData> values;
    if ((di & 0xFF00) == 0) {
      values.push_back(times[n - 1]);
    } else {
      for (int t = 0; t < 5; ++t) values.push_back(*protocol::parse_decimal(energy[n - 1]));
    }
    r.data = *dlt::encode_values(*item, values);
    r.outcome = drivers::Outcome::ok;
    return r;
  };
  TaskState state{{daily_since_key, "2026-11-26"}, {daily_done_key, "2026-11-26"}};
  auto in = input(from_civil(2026, 11, 30, 8, 0, 0), state);
  in.daily_items = {0x05060101};
  const auto out = run_freeze_task(link, in);
  CHECK(out.failure == drivers::Outcome::ok);
  CHECK(freeze_times(out) == std::set<Millis>{from_civil(2026, 11, 30), from_civil(2026, 11, 28),
                                              from_civil(2026, 11, 27)});
  CHECK(stored(out, from_civil(2026, 11, 28), "energy.active.import.total") ==
        std::map<std::string, std::string>{{"energy.active.import.total", "280.00"}});
  CHECK(stored(out, from_civil(2026, 11, 27), "energy.active.import.total") ==
        std::map<std::string, std::string>{{"energy.active.import.total", "270.00"}});
  REQUIRE(out.events.size() == 1);
  CHECK(out.events[0].type == "meter.freeze_missing");
  CHECK(out.events[0].payload_json.find("\"freeze\":\"2026-11-29\"") != std::string::npos);
  remember(state, out);
  CHECK(state[daily_done_key] == "2026-11-26,2026-11-27,2026-11-28,2026-11-29,2026-11-30");
}

// Settlement data: the last settlement (day 1, 00:00) with its moment as the
// freeze time; a gateway reading the current energy (0001FF00) instead would
// pass a sloppier check, so the values are the simulator's settlement ones.
TEST_CASE("monthly: the last settlement once, then the next one after it") {
  auto meter = make_meter();
  test::SimLink sim(meter);
  sim.now = t0;
  TaskState state;
  auto in = input(t0, state);
  in.daily = false;
  in.monthly = true;
  CHECK(freeze_work_pending(in));
  auto out = run_freeze_task(sim.link(), in);
  CHECK(freeze_times(out) == std::set<Millis>{from_civil(2026, 11, 1)});
  CHECK(stored(out, from_civil(2026, 11, 1), "energy.active.import") ==
        truth(meter, 0x0001FF01, t0));
  for (const auto& r : out.readings) CHECK(r.frozen == "monthly");
  remember(state, out);
  in = input(t0 + ms_per_day, state);
  in.daily = false;
  in.monthly = true;
  CHECK_FALSE(freeze_work_pending(in));
  // The next daily round with settlement on: the settlement day is not read
  // again while no settlement is due (one exchange a day per meter saved).
  sim.now = t0 + ms_per_day;
  sim.asked.clear();
  in = input(t0 + ms_per_day, state);
  in.monthly = true;
  remember(state, run_freeze_task(sim.link(), in));
  CHECK(sim.asked == std::vector<std::uint32_t>{0x05060001, 0x05060101, 0x05060201});
  const Millis december = from_civil(2026, 12, 1, 0, 30, 0);
  sim.now = december;
  in = input(december, state);
  in.daily = false;
  in.monthly = true;
  CHECK(freeze_work_pending(in));
  out = run_freeze_task(sim.link(), in);
  CHECK(freeze_times(out) == std::set<Millis>{from_civil(2026, 12, 1)});
  CHECK(stored(out, from_civil(2026, 12, 1), "energy.active.import") ==
        truth(meter, 0x0001FF01, december));
}

// Hourly freezes where configured: each hour once, the totals of 0504.
TEST_CASE("hourly: the hours missed, each once") {
  auto meter = make_meter();
  test::SimLink sim(meter);
  sim.now = t0;
  TaskState state;
  auto in = input(t0 + 10 * ms_per_minute, state);
  in.daily = false;
  in.hourly = true;
  sim.now = in.now_ms;
  remember(state, run_freeze_task(sim.link(), in));
  const Millis later = t0 + 3 * ms_per_hour + 10 * ms_per_minute;
  sim.now = later;
  in = input(later, state);
  in.daily = false;
  in.hourly = true;
  const auto out = run_freeze_task(sim.link(), in);
  CHECK(freeze_times(out) ==
        std::set<Millis>{t0 + ms_per_hour, t0 + 2 * ms_per_hour, t0 + 3 * ms_per_hour});
  for (const auto& r : out.readings) CHECK(r.frozen == "hourly");
  CHECK(stored(out, t0 + 3 * ms_per_hour, "energy.active.import.total") ==
        truth(meter, 0x05040101, later));
}

// 1997 meters keep no 0506 freezes: nothing is due for them here (the daemon
// flags their first energy reads after midnight "gateway-daily").
TEST_CASE("a meter that refuses daily freezes is marked, not asked every minute") {
  auto meter = make_meter();
  DltLink link;
  unsigned reads = 0;
  link.read = [&](std::uint32_t di) {
    ++reads;
    drivers::Dlt645Read r;
    r.di = di;
    r.outcome = drivers::Outcome::meter_error;
    r.error_word = 0x02;
    return r;
  };
  TaskState state;
  auto in = input(t0, state);
  auto out = run_freeze_task(link, in);
  CHECK(reads == 1);
  CHECK(out.readings.empty());
  remember(state, out);
  CHECK(state[daily_unsupported_key] == "1");
  CHECK_FALSE(freeze_work_pending(input(t0 + ms_per_day, state)));
}

// A 62-day backfill is a minute of bus time per meter at 2400 baud: it is cut
// into runs of max_freezes, each saying there is more, and the parts add up
// to every day once. A task that did it in one job would hold the bus; one
// that forgot where it stopped would store a day twice or skip one.
TEST_CASE("daily: a long backfill is cut into runs, every day once") {
  auto meter = make_meter();
  test::SimLink sim(meter);
  sim.now = t0;
  TaskState state;
  remember(state, run_freeze_task(sim.link(), input(t0, state)));
  const Millis back = from_civil(2026, 12, 7, 9, 0, 0);
  sim.now = back;
  std::multiset<Millis> all;
  unsigned runs = 0;
  for (bool more = true; more && runs < 10; ++runs) {
    auto in = input(back, state);
    in.backfill_days = 30;
    in.max_freezes = 4;
    const auto out = run_freeze_task(sim.link(), in);
    CHECK(out.failure == drivers::Outcome::ok);
    CHECK(freeze_times(out).size() <= 4);
    for (const Millis at : freeze_times(out)) all.insert(at);
    remember(state, out);
    more = out.more;
  }
  CHECK(runs == 3);  // 10 freezes (11-28 .. 12-07): 4 + 4 + 2
  CHECK(all.size() == 10);
  CHECK(std::set<Millis>(all.begin(), all.end()).size() == 10);
  auto in = input(back, state);
  in.backfill_days = 30;
  CHECK_FALSE(freeze_work_pending(in));
}
