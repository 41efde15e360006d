// Meter time sync: the HH:MM parser, the daily plan (due times, zones,
// an unsynchronised gateway clock), the kernel clock status and its test
// hook, the 08H broadcast and the 14H fix beyond ±5 min, the last two
// against a real simulator::Dlt645Meter behind a DltLink that encodes and
// decodes every frame. Time is a manual clock: no wall-clock asserts.
#include <cstdlib>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sys/timex.h>

#include "firmware/timesync.hpp"
#include "protocol/dlt645/frame.hpp"
#include "protocol/dlt645/requests.hpp"
#include "simulator/dlt645_meter.hpp"

using namespace meterd;
using namespace meterd::firmware;
namespace dlt = meterd::protocol::dlt645;
using simulator::from_civil;
using simulator::Millis;
using std::chrono::minutes;

namespace {

constexpr Millis hour = 3'600'000;
constexpr Millis minute = 60'000;
const Zone china = fixed_zone(8 * 60);

// UTC ms of a local (+8 h) wall-clock time.
Millis cst(int y, int mo, int d, int h, int mi, int s = 0) {
  return from_civil(y, mo, d, h, mi, s) - 8 * hour;
}

nlohmann::json payload(const buffer::Event& e) { return nlohmann::json::parse(e.payload_json); }

const std::string* find_state(const std::vector<buffer::StateUpdate>& s, const std::string& key) {
  for (const auto& u : s)
    if (u.key == key) return &u.value;
  return nullptr;
}

// A bus with one simulated meter on it, seen through a DltLink. Every
// request goes through dlt::encode/decode both ways. The meter acts on a
// request `transit_ms` after it is sent; the whole exchange takes
// `exchange_ms` of the manual clock (a slow bus shows an implementation
// that takes the time once and writes it late).
struct SimBus {
  simulator::Dlt645Meter meter;
  Millis now = 0;
  Millis transit_ms = 150;
  Millis exchange_ms = 2000;
  dlt::Password password{0x02, {0x56, 0x34, 0x12}};  // what the gateway sends
  dlt::OperatorCode op{0x78, 0x56, 0x34, 0x12};
  unsigned reads = 0, writes = 0;

  static simulator::Dlt645MeterConfig config(dlt::Version v, Millis offset) {
    simulator::Dlt645MeterConfig c;
    c.id = "m1";
    c.version = v;
    c.address = *dlt::Address::parse("000000000001");
    c.seed = 7;
    c.static_values = true;
    c.utc_offset_ms = offset;
    c.password = {0x02, {0x56, 0x34, 0x12}};  // printed 123456
    return c;
  }
  SimBus(Millis start, dlt::Version v = dlt::Version::v2007, Millis offset = 8 * hour)
      : meter(config(v, offset), start - hour), now(start) {}

  std::optional<dlt::Frame> exchange(const dlt::Frame& request) {
    const auto wire = dlt::encode(request);
    const auto heard = dlt::decode(wire);
    REQUIRE(heard.status == dlt::DecodeStatus::frame);
    const auto answer = meter.handle(heard.frame, now + transit_ms);
    now += exchange_ms;
    if (!answer) return std::nullopt;
    const auto back = dlt::decode(dlt::encode(*answer));
    REQUIRE(back.status == dlt::DecodeStatus::frame);
    return back.frame;
  }

  DltLink link() {
    DltLink l;
    l.version = meter.config().version;
    const auto address = meter.config().address;
    const bool v2007 = l.version == dlt::Version::v2007;
    l.read = [this, address, v2007](std::uint32_t di) {
      ++reads;
      drivers::Dlt645Read r;
      r.di = di;
      const auto a =
          exchange(v2007 ? dlt::request::read(address, di)
                         : dlt::request::v1997::read(address, static_cast<std::uint16_t>(di)));
      r.tally.attempts = 1;
      if (!a) return r;  // timeout
      if (dlt::control::is_abnormal(a->control)) {
        r.outcome = drivers::Outcome::meter_error;
        r.error_word = a->data.empty() ? 0 : a->data[0];
        r.detail = "ERR " + std::to_string(r.error_word);
        return r;
      }
      const std::size_t di_size = v2007 ? 4 : 2;
      REQUIRE(a->data.size() >= di_size);
      r.outcome = drivers::Outcome::ok;
      r.data.assign(a->data.begin() + static_cast<std::ptrdiff_t>(di_size), a->data.end());
      r.frames = 1;
      return r;
    };
    l.write = [this, address, v2007](std::uint32_t di, const std::vector<std::uint8_t>& data) {
      ++writes;
      drivers::Dlt645Answer r;
      const auto a = exchange(v2007 ? dlt::request::write(address, di, password, op, data)
                                    : dlt::request::v1997::write(
                                          address, static_cast<std::uint16_t>(di), password, data));
      r.tally.attempts = 1;
      if (!a) return r;
      r.frame = *a;
      if (dlt::control::is_abnormal(a->control)) {
        r.outcome = drivers::Outcome::meter_error;
        r.error_word = a->data.empty() ? 0 : a->data[0];
        r.detail = "ERR";
      } else {
        r.outcome = drivers::Outcome::ok;
      }
      return r;
    };
    return l;
  }

  // Meter minus gateway local time, from the model's ground truth.
  Millis drift(const Zone& zone) const { return meter.local_time(now) - zone.to_local(now); }
};

ClockFixInput fix_input(SimBus& bus, std::int64_t drift_ms, bool write_allowed) {
  ClockFixInput in;
  in.meter = "m1";
  in.drift_ms = drift_ms;
  in.write_allowed = write_allowed;
  in.clock.synchronised = true;
  in.now = [&bus] { return bus.now; };
  in.zone = china;
  return in;
}

}  // namespace

// ---- parse_time_of_day --------------------------------------------------------

// Catches: sscanf("%d:%d") accepting "2:30", "24:00", "02:30:00" or " 02:30".
TEST_CASE("parse_time_of_day: HH:MM only, within a day") {
  CHECK(parse_time_of_day("02:30") == minutes{150});
  CHECK(parse_time_of_day("00:00") == minutes{0});
  CHECK(parse_time_of_day("23:59") == minutes{23 * 60 + 59});
  for (const std::string bad :
       {"", "2:30", "24:00", "02:60", "02:30:00", " 02:30", "02-30", "ab:cd", "0230", "+2:30"}) {
    std::string problem;
    CHECK_MESSAGE(!parse_time_of_day(bad, &problem), bad);
    CHECK_MESSAGE(problem.find("\"" + bad + "\"") == 0, problem);
  }
  std::string problem;
  CHECK(!parse_time_of_day("25:00", &problem));
  CHECK(problem == "\"25:00\": hour 25 is not 00 to 23");
}

// ---- the daily plan ---------------------------------------------------------------

// Catches: the time of day taken as UTC (02:30 UTC is 10:30 in China), and
// "done today" judged by the UTC date (before 08:00 local the UTC date is
// still yesterday's).
TEST_CASE("next_timesync_ms: local time of day, local days, +8 h") {
  const minutes at{150};
  // 01:00 local, 30 Nov; never done: today 02:30 local.
  Millis now = cst(2026, 11, 30, 1, 0);
  CHECK(next_timesync_ms(at, china, now, "") == cst(2026, 11, 30, 2, 30));
  CHECK(!timesync_due(at, china, now, ""));
  // Yesterday done: still today's.
  CHECK(next_timesync_ms(at, china, now, "2026-11-29") == cst(2026, 11, 30, 2, 30));
  // At the time: due.
  now = cst(2026, 11, 30, 2, 30);
  CHECK(timesync_due(at, china, now, "2026-11-29"));
  CHECK(next_timesync_ms(at, china, now, "2026-11-29") == now);
  // 05:00 local (21:00 UTC the day before): today's time passed, not done -> now.
  now = cst(2026, 11, 30, 5, 0);
  CHECK(timesync_due(at, china, now, "2026-11-29"));
  CHECK(next_timesync_ms(at, china, now, "") == now);
  // Done today -> tomorrow 02:30 local, across the month end.
  CHECK(!timesync_due(at, china, now, "2026-11-30"));
  CHECK(next_timesync_ms(at, china, now, "2026-11-30") == cst(2026, 12, 1, 2, 30));
  // 23:59 local, done: tomorrow; not done: now.
  now = cst(2026, 12, 31, 23, 59);
  CHECK(next_timesync_ms(at, china, now, "2026-12-31") == cst(2027, 1, 1, 2, 30));
  CHECK(next_timesync_ms(at, china, now, "2026-12-30") == now);
  // Midnight as the time: due at 00:00 local, i.e. 16:00 UTC the day before.
  CHECK(next_timesync_ms(minutes{0}, china, cst(2026, 11, 30, 12, 0), "2026-11-30") ==
        from_civil(2026, 11, 30, 16, 0));
}

namespace {

struct PlanRig {
  TimesyncPlanInput in;
  bool synced = false;
  unsigned asked = 0;
  PlanRig() {
    in.bus = "bus1";
    in.owner = "gateway";
    in.at = minutes{150};
    in.zone = china;
    in.clock = [this] {
      ++asked;
      ClockStatus c;
      c.synchronised = synced;
      if (!synced) c.why = "kernel clock not synchronised (STA_UNSYNC)";
      return c;
    };
  }
  // Stores what the daemon would store.
  TimesyncPlan step(Millis now) {
    in.now_ms = now;
    auto p = timesync_plan(in);
    if (const auto* v = find_state(p.state, timesync_unsynced_key("bus1")))
      in.unsynced_reported = *v;
    if (p.broadcast) in.last_done = p.day;  // as run_broadcast's state
    return p;
  }
};

}  // namespace

// Catches: broadcasting an unsynchronised clock; an event every retry
// instead of once a day; the day marked done when skipped (a late NTP sync
// would then miss the day's broadcast); retries going on past the day's end.
TEST_CASE(
    "timesync_plan: unsynchronised -> skipped, reported once, retried, later sync broadcasts") {
  PlanRig rig;
  // Before the time: wait, the clock is not even asked.
  auto p = rig.step(cst(2026, 11, 30, 1, 0));
  CHECK(!p.broadcast);
  CHECK(p.next_ms == cst(2026, 11, 30, 2, 30));
  CHECK(p.events.empty());
  CHECK(rig.asked == 0);

  // Due, clock unsynchronised: skipped, one event, retry in 10 min.
  p = rig.step(cst(2026, 11, 30, 2, 30));
  CHECK(!p.broadcast);
  CHECK(p.day == "2026-11-30");
  REQUIRE(p.events.size() == 1);
  CHECK(p.events[0].type == "gateway.clock_unsynchronised");
  CHECK(p.events[0].meter == "");
  CHECK(payload(p.events[0]) ==
        nlohmann::json{{"bus", "bus1"}, {"why", "kernel clock not synchronised (STA_UNSYNC)"}});
  REQUIRE(p.state.size() == 1);
  CHECK(p.state[0].meter == "gateway");
  CHECK(p.state[0].key == "timesync.bus1.unsynced");
  CHECK(p.state[0].value == "2026-11-30");
  CHECK(p.next_ms == cst(2026, 11, 30, 2, 40));

  // Retries: no more events.
  for (int k = 0; k < 6; ++k) {
    p = rig.step(p.next_ms);
    CHECK(!p.broadcast);
    CHECK(p.events.empty());
    CHECK(p.state.empty());
  }
  CHECK(p.next_ms == cst(2026, 11, 30, 3, 40));

  // NTP syncs at 03:35: the 03:40 retry broadcasts.
  rig.synced = true;
  p = rig.step(p.next_ms);
  CHECK(p.broadcast);
  CHECK(p.day == "2026-11-30");
  CHECK(p.events.empty());
  // Stored as done: the next ask waits for tomorrow.
  p = rig.step(p.next_ms);
  CHECK(!p.broadcast);
  CHECK(p.next_ms == cst(2026, 12, 1, 2, 30));

  // Next day unsynchronised again: reported again (once for that day).
  rig.synced = false;
  p = rig.step(p.next_ms);
  CHECK(!p.broadcast);
  CHECK(p.events.size() == 1);
  CHECK(rig.in.unsynced_reported == "2026-12-01");

  // Late in the day: the retry stops at tomorrow's time, the day is given up.
  p = rig.step(cst(2026, 12, 1, 23, 55));
  CHECK(p.events.empty());
  CHECK(p.next_ms == cst(2026, 12, 2, 0, 5));
  p = rig.step(p.next_ms);
  CHECK(!p.broadcast);
  CHECK(p.next_ms == cst(2026, 12, 2, 2, 30));
}

// Catches: a broadcast time late in the day whose retry runs into the next
// day's time and skips it.
TEST_CASE("timesync_plan: a late time's retry never passes the next day's time") {
  PlanRig rig;
  rig.in.at = minutes{23 * 60 + 58};
  auto p = rig.step(cst(2026, 11, 30, 23, 58));
  CHECK(!p.broadcast);
  CHECK(p.next_ms == cst(2026, 12, 1, 0, 8));
  rig.synced = true;
  p = rig.step(p.next_ms);  // 1 Dec 00:08: 1 Dec's time is 23:58, not due
  CHECK(!p.broadcast);
  CHECK(p.next_ms == cst(2026, 12, 1, 23, 58));
  p = rig.step(p.next_ms);
  CHECK(p.broadcast);
  CHECK(p.day == "2026-12-01");
}

// ---- the kernel's clock status ---------------------------------------------------

// Catches: trusting adjtimex's return value alone (TIME_OK with STA_UNSYNC
// set happens after a daemon clears nothing), or STA_UNSYNC alone (TIME_ERROR
// also means an error bound past its limit).
TEST_CASE("clock_status_from: synchronised iff not TIME_ERROR and STA_UNSYNC clear") {
  CHECK(clock_status_from(TIME_OK, STA_PLL, 12'000, 300).synchronised);
  CHECK(clock_status_from(TIME_OK, STA_PLL, 12'000, 300).max_error_us == 12'000);
  CHECK(clock_status_from(TIME_INS, 0, 1, 1).synchronised);
  const auto unsync = clock_status_from(TIME_OK, STA_UNSYNC, 16'000'000, 16'000'000);
  CHECK(!unsync.synchronised);
  CHECK(unsync.why.find("STA_UNSYNC") != std::string::npos);
  const auto error = clock_status_from(TIME_ERROR, STA_PLL, 1, 1);
  CHECK(!error.synchronised);
  CHECK(error.why.find("TIME_ERROR") != std::string::npos);
  CHECK(!clock_status_from(TIME_ERROR, STA_UNSYNC | STA_NANO, 1, 1).synchronised);
}

// Catches: the test hook ignored (system tests would depend on the CI
// machine's NTP), or an unknown value taken as synchronised.
TEST_CASE("kernel_clock_status: METERD_CLOCK_STATUS overrides the kernel") {
  ::setenv("METERD_CLOCK_STATUS", "synced", 1);
  CHECK(kernel_clock_status().synchronised);
  ::setenv("METERD_CLOCK_STATUS", "unsynced", 1);
  auto c = kernel_clock_status();
  CHECK(!c.synchronised);
  CHECK(c.why == "METERD_CLOCK_STATUS=unsynced");
  ::setenv("METERD_CLOCK_STATUS", "yes", 1);
  c = kernel_clock_status();
  CHECK(!c.synchronised);
  CHECK(c.why.find("expected synced or unsynced") != std::string::npos);
  ::unsetenv("METERD_CLOCK_STATUS");
  // The real kernel: either answer, but an unsynchronised one says why.
  c = kernel_clock_status();
  MESSAGE("this machine's kernel clock: "
          << std::string(c.synchronised ? "synchronised" : "unsynchronised") << " maxerror "
          << c.max_error_us << " us, esterror " << c.est_error_us << " us " << c.why);
  if (!c.synchronised) CHECK(!c.why.empty());
}

// ---- the broadcast -----------------------------------------------------------------

// Catches: broadcasting UTC (an +8 h meter ignores a step that large and
// keeps its skew), truncating instead of rounding to the second, and
// storing the day done when nothing went out.
TEST_CASE("run_broadcast: the gateway's local time, +8 h; a +3 min meter follows") {
  const Millis at = cst(2026, 11, 30, 2, 30, 0) + 700;  // 02:30:00.7 local
  SimBus bus(at);
  bus.meter.skew_clock(3 * minute);
  CHECK(bus.drift(china) == 3 * minute);
  std::optional<dlt::Frame> sent;
  BroadcastInput in;
  in.bus = "bus1";
  in.owner = "gateway";
  in.day = "2026-11-30";
  in.zone = china;
  in.now = [&bus] { return bus.now; };
  const auto out = run_broadcast(
      [&](const dlt::Frame& f) {
        sent = f;
        CHECK(!bus.exchange(f));  // nobody answers a broadcast
        drivers::Tally t;
        t.attempts = 1;
        return t;
      },
      in);
  REQUIRE(sent);
  CHECK(sent->address == dlt::Address::broadcast());
  CHECK(sent->control == 0x08);
  // ss mm hh DD MM YY of 2026-11-30 02:30:01 (00.7 rounded).
  CHECK(sent->data == std::vector<std::uint8_t>{0x01, 0x30, 0x02, 0x30, 0x11, 0x26});
  CHECK(std::abs(bus.drift(china)) <= 2000);
  CHECK(out.failure == drivers::Outcome::ok);
  REQUIRE(out.events.size() == 1);
  CHECK(out.events[0].type == "bus.timesync");
  CHECK(payload(out.events[0]) == nlohmann::json{{"bus", "bus1"}, {"time", "2026-11-30T02:30:01"}});
  REQUIRE(out.state.size() == 1);
  CHECK(out.state[0].meter == "gateway");
  CHECK(out.state[0].key == "timesync.bus1.last");
  CHECK(out.state[0].value == "2026-11-30");

  // The port was down: nothing sent, nothing stored.
  const auto down = run_broadcast([](const dlt::Frame&) { return drivers::Tally{}; }, in);
  CHECK(down.failure == drivers::Outcome::bus_down);
  CHECK(down.events.empty());
  CHECK(down.state.empty());
}

// ---- the per-meter fix ------------------------------------------------------------------

// Catches: the time taken once before the reads and written seconds late
// (each exchange here takes 2 s); date and time written in the wrong
// byte order or as binary instead of BCD; a write without the read-back.
TEST_CASE("run_clock_fix: +10 min, write allowed -> meter within 2 s, meter.clock_set") {
  SimBus bus(cst(2026, 11, 30, 10, 0, 0));
  bus.meter.skew_clock(10 * minute);
  const auto out = run_clock_fix(bus.link(), fix_input(bus, 10 * minute, true));
  CHECK(std::abs(bus.drift(china)) <= 2000);
  CHECK(bus.writes == 2);
  CHECK(out.failure == drivers::Outcome::ok);
  CHECK(out.problems.empty());
  REQUIRE(out.events.size() == 1);
  CHECK(out.events[0].type == "meter.clock_set");
  CHECK(out.events[0].meter == "m1");
  const auto p = payload(out.events[0]);
  CHECK(p["before"] == "2026-11-30T10:10:02");  // read 2 s in, the time read's moment
  CHECK(p["drift_s"] == 600);
  CHECK(std::abs(p["residual_s"].get<int>()) <= 2);
  CHECK(p["after"].get<std::string>().rfind("2026-11-30T10:00:", 0) == 0);
  const auto* day = find_state(out.state, clock_fix_day_key);
  REQUIRE(day);
  CHECK(*day == "2026-11-30");

  // Again the same day with a stale +10 min drift: no second write.
  auto again = fix_input(bus, 10 * minute, true);
  again.state[clock_fix_day_key] = "2026-11-30";
  bus.meter.skew_clock(10 * minute);
  const unsigned writes = bus.writes;
  CHECK(run_clock_fix(bus.link(), again).events.empty());
  CHECK(bus.writes == writes);
}

// Catches: a 1997 meter written with the 2007 DIs (04000101 instead of C010).
TEST_CASE("run_clock_fix: a DL/T 645-1997 meter, -20 min") {
  SimBus bus(cst(2026, 11, 30, 10, 0, 0), dlt::Version::v1997);
  bus.meter.skew_clock(-20 * minute);
  const auto out = run_clock_fix(bus.link(), fix_input(bus, -20 * minute, true));
  CHECK(std::abs(bus.drift(china)) <= 2000);
  REQUIRE(out.events.size() == 1);
  CHECK(out.events[0].type == "meter.clock_set");
  CHECK(payload(out.events[0])["drift_s"] == -1200);
}

// Catches: writing although timesync_write is off; the event every run
// instead of once; the once-flag never cleared (a later drift would go
// unreported).
TEST_CASE("run_clock_fix: write not allowed -> meter.clock_unfixable once, meter untouched") {
  SimBus bus(cst(2026, 11, 30, 10, 0, 0));
  bus.meter.skew_clock(10 * minute);
  auto in = fix_input(bus, 10 * minute + 4000, false);
  auto out = run_clock_fix(bus.link(), in);
  CHECK(bus.reads + bus.writes == 0);
  CHECK(bus.drift(china) == 10 * minute);
  REQUIRE(out.events.size() == 1);
  CHECK(out.events[0].type == "meter.clock_unfixable");
  CHECK(payload(out.events[0]) ==
        nlohmann::json{
            {"drift_s", 604},
            {"reason", "beyond the ±5 min a broadcast may correct; timesync_write is off"}});
  const auto* flag = find_state(out.state, clock_unfixable_key);
  REQUIRE(flag);
  CHECK(!flag->empty());

  in.state[clock_unfixable_key] = *flag;
  out = run_clock_fix(bus.link(), in);
  CHECK(out.events.empty());
  CHECK(out.state.empty());

  // Back within ±5 min (fixed by hand): the flag is cleared for next time.
  in.drift_ms = 30'000;
  out = run_clock_fix(bus.link(), in);
  const auto* cleared = find_state(out.state, clock_unfixable_key);
  REQUIRE(cleared);
  CHECK(cleared->empty());
}

// Catches: a refusal taken as success (meter.clock_set with the meter
// still 10 min off), and a retry every run that could lock the meter.
TEST_CASE("run_clock_fix: wrong password -> meter.clock_set_refused") {
  SimBus bus(cst(2026, 11, 30, 10, 0, 0));
  bus.password = {0x02, {0x11, 0x11, 0x11}};
  bus.meter.skew_clock(10 * minute);
  auto in = fix_input(bus, 10 * minute, true);
  const auto out = run_clock_fix(bus.link(), in);
  CHECK(bus.drift(china) == 10 * minute);
  CHECK(bus.writes == 1);  // the first refusal ends it
  REQUIRE(out.events.size() == 1);
  CHECK(out.events[0].type == "meter.clock_set_refused");
  const auto p = payload(out.events[0]);
  CHECK(p["error"].get<std::string>().find("password") != std::string::npos);
  CHECK(p["di"] == "04000102");
  const auto* day = find_state(out.state, clock_fix_day_key);
  REQUIRE(day);
  in.state[clock_fix_day_key] = *day;
  const unsigned exchanges = bus.reads + bus.writes;
  CHECK(run_clock_fix(bus.link(), in).events.empty());
  CHECK(bus.reads + bus.writes == exchanges);
}

// Catches: a write for any drift beyond clock_drift_max (the broadcast is
// the quiet path: no password, no programming record in the meter), and
// trusting a stale stored drift that a broadcast has fixed since.
TEST_CASE("run_clock_fix: within ±5 min -> no write") {
  SimBus bus(cst(2026, 11, 30, 10, 0, 0));
  bus.meter.skew_clock(90'000);
  auto out = run_clock_fix(bus.link(), fix_input(bus, 90'000, true));
  CHECK(bus.reads + bus.writes == 0);
  CHECK(out.events.empty());
  CHECK(bus.drift(china) == 90'000);
  out = run_clock_fix(bus.link(), fix_input(bus, -5 * minute, true));
  CHECK(bus.reads + bus.writes == 0);
  // Stored: +10 min; the meter now: +90 s.
  out = run_clock_fix(bus.link(), fix_input(bus, 10 * minute, true));
  CHECK(bus.writes == 0);
  CHECK(out.events.empty());
  CHECK(bus.drift(china) == 90'000);
}

// Catches: writing the gateway's unsynchronised clock into a meter.
TEST_CASE("run_clock_fix: gateway clock unsynchronised -> no write") {
  SimBus bus(cst(2026, 11, 30, 10, 0, 0));
  bus.meter.skew_clock(10 * minute);
  auto in = fix_input(bus, 10 * minute, true);
  in.clock.synchronised = false;
  in.clock.why = "STA_UNSYNC";
  const auto out = run_clock_fix(bus.link(), in);
  CHECK(bus.reads + bus.writes == 0);
  CHECK(out.events.empty());
  CHECK(bus.drift(china) == 10 * minute);
  REQUIRE(out.problems.size() == 1);
  CHECK(out.problems[0].find("not synchronised") != std::string::npos);
}

// Catches: date and time written as two writes without checking the day
// (across the gateway's or the meter's midnight the meter ends a day off),
// and a read-back of date then time across the meter's midnight taken as a
// wrong day. Start times sweep, at 250 ms steps, the gateway's midnight and
// the meter's own (10 min earlier or later: the meter is 10 min ahead or
// behind), so midnight falls between every pair of exchanges in some run.
TEST_CASE("run_clock_fix: across midnight the meter ends on the right day") {
  unsigned redone = 0, cases = 0;
  const Millis midnight = cst(2026, 12, 1, 0, 0, 0);
  for (const Millis skew : {10 * minute, -10 * minute}) {
    for (const Millis centre : {midnight, midnight - skew}) {
      for (Millis start = centre - 8000; start <= centre + 4000; start += 250) {
        SimBus bus(start);
        bus.exchange_ms = 700;
        bus.transit_ms = 400;
        bus.meter.skew_clock(skew);
        const auto out = run_clock_fix(bus.link(), fix_input(bus, skew, true));
        ++cases;
        if (bus.writes > 2) ++redone;
        CAPTURE(simulator::iso_utc(start));
        CAPTURE(skew);
        CHECK(std::abs(bus.drift(china)) <= 2000);
        REQUIRE(out.events.size() == 1);
        CHECK(out.events[0].type == "meter.clock_set");
        CHECK(std::abs(payload(out.events[0])["residual_s"].get<int>()) <= 2);
        CHECK(std::abs(payload(out.events[0])["drift_s"].get<int>() * 1000 - skew) <= 2000);
      }
    }
  }
  MESSAGE(redone << " of " << cases << " runs wrote twice");
  CHECK(redone > 0);  // the sweep did hit the race it is about
}
