// The meter-events task against metersim's DL/T 645 meter model (a pure
// request -> answer function, driven with its own time argument), and the
// gateway view of live readings. Each test names the careless
// implementation it catches.
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "firmware/meter_events.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/control.hpp"
#include "protocol/dlt645/requests.hpp"
#include "simulator/clock.hpp"
#include "simulator/dlt645_meter.hpp"

using namespace meterd;
using namespace meterd::firmware;
namespace dlt = protocol::dlt645;
using drivers::Outcome;
using simulator::Millis;
using simulator::ms_per_day;
using simulator::ms_per_hour;
using simulator::ms_per_minute;

namespace {

constexpr Millis china = 8 * ms_per_hour;
// 2026-11-27 12:00:00 in China, 04:00:00 UTC.
const Millis t0 = simulator::from_civil(2026, 11, 27, 4, 0, 0);

const dlt::Password password{0x02, {0x56, 0x34, 0x12}};  // printed 123456
const dlt::OperatorCode op{0x78, 0x56, 0x34, 0x12};      // printed 12345678

// A bus with one simulated meter. Every exchange takes `step` ms of
// gateway time; the meter answers at the end of it.
struct Bench {
  std::unique_ptr<simulator::Dlt645Meter> meter;
  Millis clock = t0;  // the gateway's UTC clock
  Millis step = 300;
  std::set<std::uint32_t> fail_once;  // DIs whose next read times out
  std::vector<std::uint32_t> reads;
  TaskState state;  // what the lead would have stored
  std::chrono::milliseconds drift_max{60'000};

  explicit Bench(const char* address = "000000000101", std::uint64_t seed = 7,
                 dlt::Version v = dlt::Version::v2007) {
    use(address, seed, v);
  }
  void use(const char* address, std::uint64_t seed, dlt::Version v = dlt::Version::v2007) {
    simulator::Dlt645MeterConfig c;
    c.id = "m1";
    c.version = v;
    c.address = *dlt::Address::parse(address);
    c.seed = seed;
    c.static_values = true;
    c.utc_offset_ms = china;
    c.password = password;
    meter = std::make_unique<simulator::Dlt645Meter>(c, t0 - ms_per_day);
  }

  drivers::Dlt645Read read(std::uint32_t di) {
    reads.push_back(di);
    clock += step;
    drivers::Dlt645Read r;
    r.di = di;
    r.tally.attempts = 1;
    if (fail_once.erase(di)) {
      r.outcome = Outcome::timeout;
      return r;
    }
    const auto& c = meter->config();
    const dlt::Frame request = c.version == dlt::Version::v2007
                                   ? dlt::request::read(c.address, di)
                                   : dlt::request::v1997::read(c.address, std::uint16_t(di));
    const auto answer = meter->handle(request, clock);
    if (!answer) {
      r.outcome = Outcome::timeout;
      return r;
    }
    REQUIRE_FALSE(dlt::control::has_follow_up(answer->control));
    if (dlt::control::is_abnormal(answer->control)) {
      r.outcome = Outcome::meter_error;
      r.error_word = answer->data.empty() ? 0 : answer->data[0];
      r.detail = "ERR " + dlt::to_hex(answer->data);
      return r;
    }
    r.outcome = Outcome::ok;
    r.frames = 1;
    r.data.assign(answer->data.begin() + static_cast<std::ptrdiff_t>(dlt::di_size(c.version)),
                  answer->data.end());
    return r;
  }

  DltLink link() {
    DltLink l;
    l.version = meter->config().version;
    l.read = [this](std::uint32_t di) { return read(di); };
    return l;
  }

  // One task run; its state stored as the lead stores it.
  TaskOutput run() {
    EventTaskInput in;
    in.meter = "m1";
    in.state = state;
    in.now_ms = [this] { return clock; };
    in.zone = fixed_zone(480);
    in.clock_drift_max = drift_max;
    const DltLink l = link();
    TaskOutput out = run_event_task(l, in);
    for (const auto& u : out.state) {
      CHECK(u.meter == "m1");
      state[u.key] = u.value;
    }
    return out;
  }

  // Time passes on the meter (outside the task).
  void pass(Millis ms) { clock += ms; }

  void relay(dlt::RelayCommand c) {
    const auto until = *dlt::parse_datetime("2099-01-01T00:00:00");
    const auto a = meter->handle(
        dlt::request::relay_control(meter->config().address, password, op, c, until), clock);
    REQUIRE(a);
    REQUIRE_FALSE(dlt::control::is_abnormal(a->control));
  }
};

std::vector<std::string> types(const std::vector<buffer::Event>& events) {
  std::vector<std::string> t;
  for (const auto& e : events) t.push_back(e.type);
  return t;
}

nlohmann::json payload(const buffer::Event& e) { return nlohmann::json::parse(e.payload_json); }

std::string iso(Millis utc) {  // "2026-11-27T04:00:00Z"
  return local_datetime(utc) + "Z";
}

}  // namespace

TEST_CASE("first run: baselines stored, nothing published") {
  // Catches: a task that publishes the meter's whole history (its past
  // power-downs, time adjusts) the first time a new gateway sees it.
  Bench b;
  const auto out = b.run();
  CHECK(out.failure == Outcome::ok);
  CHECK(out.events.empty());
  CHECK(out.readings.empty());
  CHECK(out.problems.empty());
  CHECK(b.state.count("events.power_down.count"));
  CHECK(b.state.count("events.cover_open.count"));
  CHECK(b.state.count("events.clock_adjust.count"));
  CHECK(b.state.at("events.relay_trip.last") == "none");  // the model starts with empty relay logs
  CHECK(b.state.at("events.relay_close.last") == "none");
  CHECK(b.state.at("meter.number") == "000000000101");
  CHECK(b.state.count("clock.drift_ms"));
  // Second run: still nothing.
  b.pass(15 * ms_per_minute);
  CHECK(b.run().events.empty());
}

TEST_CASE("power cycle: exactly one meter.power_down with the meter's times in UTC; no repeat") {
  // Catches: a task that reads record n = count (the oldest) instead of the
  // newest, converts the meter's local time as if it were UTC, or publishes
  // the record again on the next run.
  Bench b;
  b.run();
  b.pass(5 * ms_per_minute);
  const Millis down = b.clock;
  b.meter->power_cycle(down, 90'000);
  b.pass(5 * ms_per_minute);
  const auto out = b.run();
  REQUIRE(out.failure == Outcome::ok);
  REQUIRE(types(out.events) == std::vector<std::string>{"meter.power_down"});
  const auto& e = out.events[0];
  const auto p = payload(e);
  CHECK(e.meter == "m1");
  CHECK(p["start"] == iso(down / 1000 * 1000));
  CHECK(p["end"] == iso((down + 90'000) / 1000 * 1000));
  CHECK(p["meter_start"] == local_datetime((down + china) / 1000 * 1000));
  CHECK(e.ts_ms == down / 1000 * 1000);
  // The new count travels in the same output as the event.
  bool count_stored = false;
  for (const auto& u : out.state) count_stored |= u.key == "events.power_down.count";
  CHECK(count_stored);
  b.pass(15 * ms_per_minute);
  CHECK(b.run().events.empty());
}

TEST_CASE("two power cycles while meterd was down: both, oldest first") {
  // Catches: a task that publishes only the newest record when the count
  // rose by 2, or the records newest first.
  Bench b;
  b.run();
  const Millis first = b.clock + ms_per_hour;
  const Millis second = first + ms_per_hour;
  b.meter->power_cycle(first, 60'000);
  b.meter->power_cycle(second, 120'000);
  b.clock = second + ms_per_hour;
  const auto out = b.run();
  REQUIRE(types(out.events) == std::vector<std::string>{"meter.power_down", "meter.power_down"});
  CHECK(payload(out.events[0])["start"] == iso(first));
  CHECK(payload(out.events[1])["start"] == iso(second));
  CHECK(payload(out.events[1])["end"] == iso(second + 120'000));
  CHECK(b.run().events.empty());
}

TEST_CASE("more than 10 new power-downs: the 10 newest and one meter.events_lost") {
  // Catches: a task that asks for record 11+ (no such DI), publishes
  // nothing, or says nothing about the ones the meter no longer keeps.
  Bench b;
  b.run();
  Millis at = b.clock;
  std::vector<Millis> downs;
  for (int k = 0; k < 13; ++k) {
    at += 10 * ms_per_minute;
    downs.push_back(at);
    b.meter->power_cycle(at, 60'000);
  }
  b.clock = at + ms_per_hour;
  const auto out = b.run();
  REQUIRE(out.events.size() == 11);
  CHECK(out.events[0].type == "meter.events_lost");
  CHECK(payload(out.events[0]) == nlohmann::json{{"counter", "power_down"}, {"missed", 3}});
  for (std::size_t k = 0; k < 10; ++k) {
    CHECK(out.events[k + 1].type == "meter.power_down");
    CHECK(payload(out.events[k + 1])["start"] == iso(downs[k + 3]));
  }
  CHECK(b.run().events.empty());
}

TEST_CASE("a timeout among the records: the count is not advanced, the next run publishes once") {
  // Catches: a task that stores the new count although a record read
  // failed (those events are lost), or publishes the half it read and then
  // all of them again.
  Bench b;
  b.run();
  const Millis first = b.clock + ms_per_hour, second = first + ms_per_hour;
  b.meter->power_cycle(first, 60'000);
  b.meter->power_cycle(second, 60'000);
  b.clock = second + ms_per_hour;
  const std::string before = b.state.at("events.power_down.count");
  b.fail_once = {0x03110001};  // the second record read (oldest first: 2, then 1)
  const auto out = b.run();
  CHECK(out.failure == Outcome::timeout);
  CHECK(out.detail.find("03110001") != std::string::npos);
  CHECK(out.events.empty());
  CHECK(b.state.at("events.power_down.count") == before);
  // Nothing after the failure was read.
  CHECK(b.reads.back() == 0x03110001);

  b.pass(15 * ms_per_minute);
  const auto again = b.run();
  CHECK(again.failure == Outcome::ok);
  REQUIRE(types(again.events) == std::vector<std::string>{"meter.power_down", "meter.power_down"});
  CHECK(payload(again.events[0])["start"] == iso(first));
  CHECK(b.run().events.empty());
}

TEST_CASE("events complete before a timeout are output with their state") {
  // Catches: a task that throws away everything of the run on a late
  // timeout (the power-down would be published again and again on a meter
  // whose relay log read times out every time: never, here, once).
  Bench b;
  b.run();
  b.meter->power_cycle(b.clock + ms_per_minute, 60'000);
  b.pass(ms_per_hour);
  b.fail_once = {0x1D000001};
  const auto out = b.run();
  CHECK(out.failure == Outcome::timeout);
  CHECK(types(out.events) == std::vector<std::string>{"meter.power_down"});
  b.pass(ms_per_minute);
  CHECK(b.run().events.empty());
}

TEST_CASE("cover opened: one meter.cover_open") {
  // Catches: a task that reads only the power-down log, or takes the cover
  // record's energies as its times.
  Bench b;
  b.run();
  const Millis open = b.clock + ms_per_minute;
  b.meter->open_cover(open, 10 * ms_per_minute);
  b.clock = open + ms_per_hour;
  const auto out = b.run();
  REQUIRE(types(out.events) == std::vector<std::string>{"meter.cover_open"});
  CHECK(payload(out.events[0])["start"] == iso(open));
  CHECK(payload(out.events[0])["end"] == iso(open + 10 * ms_per_minute));
  CHECK(b.run().events.empty());
}

TEST_CASE("clock set on the meter: meter.clock_adjusted with before, after, operator") {
  // Catches: a task that swaps before and after (the 0330040n record puts
  // the operator first), or misses the time-adjust log.
  Bench b;
  b.run();
  const Millis at = b.clock + ms_per_minute;
  const Millis meter_before = at + china;
  const Millis meter_after = meter_before + 30'000;
  b.meter->set_clock(at, meter_after);
  b.clock = at + 10 * ms_per_minute;
  const auto out = b.run();
  REQUIRE(types(out.events) == std::vector<std::string>{"meter.clock_adjusted"});
  const auto p = payload(out.events[0]);
  CHECK(p["before"] == iso(meter_before - china));
  CHECK(p["after"] == iso(meter_after - china));
  CHECK(p["meter_before"] == local_datetime(meter_before));
  CHECK(p["operator"].is_string());
}

TEST_CASE("relay trip and close: meter.relay_open, meter.relay_closed, once each") {
  // Catches: a task that takes the first record ever seen as a baseline
  // when the log was empty before (the first trip is never published), or
  // that publishes the same trip again because the relay logs have no count.
  Bench b;
  b.run();
  const Millis trip = b.clock + ms_per_minute;
  b.clock = trip;
  b.relay(dlt::RelayCommand::trip);
  b.pass(10 * ms_per_minute);
  auto out = b.run();
  REQUIRE(types(out.events) == std::vector<std::string>{"meter.relay_open"});
  CHECK(payload(out.events[0])["time"] == iso(trip));
  CHECK(payload(out.events[0])["operator"] == "12345678");
  CHECK(b.state.at("events.relay_trip.last") == local_datetime(trip + china));
  b.pass(10 * ms_per_minute);
  CHECK(b.run().events.empty());

  const Millis close = b.clock + ms_per_minute;
  b.clock = close;
  b.relay(dlt::RelayCommand::direct_close);
  b.pass(10 * ms_per_minute);
  out = b.run();
  REQUIRE(types(out.events) == std::vector<std::string>{"meter.relay_closed"});
  CHECK(payload(out.events[0])["time"] == iso(close));
  b.pass(10 * ms_per_minute);
  CHECK(b.run().events.empty());
}

TEST_CASE("relay log walked back to the known record: two new trips, oldest first") {
  // Catches: a task that compares only the newest record's time (one of
  // two trips lost), or walks the whole log every time (old ones repeated).
  Bench b;
  b.relay(dlt::RelayCommand::trip);
  b.pass(ms_per_minute);
  b.relay(dlt::RelayCommand::direct_close);
  b.run();  // baseline: the trip above is history
  std::vector<Millis> trips;
  for (int k = 0; k < 2; ++k) {
    b.pass(ms_per_hour);
    trips.push_back(b.clock);
    b.relay(dlt::RelayCommand::trip);
    b.pass(ms_per_minute);
    b.relay(dlt::RelayCommand::direct_close);
  }
  b.pass(ms_per_minute);
  const auto out = b.run();
  REQUIRE(types(out.events) == std::vector<std::string>{"meter.relay_open", "meter.relay_open",
                                                        "meter.relay_closed",
                                                        "meter.relay_closed"});
  CHECK(payload(out.events[0])["time"] == iso(trips[0]));
  CHECK(payload(out.events[1])["time"] == iso(trips[1]));
}

TEST_CASE("counters cleared (event clear 1B): meter.counters_reset, no record events") {
  // Catches: a task that treats the drop as a huge rise (unsigned
  // wrap-around) and publishes old records, or keeps the old baseline and
  // misses the next power-downs until the count climbs back.
  Bench b;
  b.meter->power_cycle(b.clock - ms_per_hour, 60'000);  // some history to clear
  b.run();
  REQUIRE(b.state.at("events.power_down.count") != "0");
  const auto a = b.meter->handle(
      dlt::request::event_clear(b.meter->config().address, password, op, 0xFFFFFFFF), b.clock);
  REQUIRE(a);
  REQUIRE_FALSE(dlt::control::is_abnormal(a->control));
  b.pass(ms_per_minute);
  auto out = b.run();
  CHECK(out.failure == Outcome::ok);
  REQUIRE_FALSE(out.events.empty());
  for (const auto& e : out.events) CHECK(e.type == "meter.counters_reset");
  CHECK(payload(out.events[0])["counter"] == "power_down");
  CHECK(payload(out.events[0])["after"] == 0);
  CHECK(b.state.at("events.power_down.count") == "0");
  // The next power-down counts from the new baseline.
  b.meter->power_cycle(b.clock + ms_per_minute, 60'000);
  b.pass(ms_per_hour);
  out = b.run();
  CHECK(types(out.events) == std::vector<std::string>{"meter.power_down"});
}

TEST_CASE("a new meter number: meter.replaced, and the new meter's history is not published") {
  // Catches: a task that compares the new meter's counters with the old
  // meter's baselines and publishes the new meter's past as new events.
  Bench b("000000000101", 7);
  b.run();
  b.use("000000000202", 99);  // the installer swapped the meter
  for (int k = 0; k < 3; ++k) b.meter->power_cycle(t0 - ms_per_hour * (k + 2), 60'000);
  b.pass(ms_per_hour);
  const auto out = b.run();
  REQUIRE(types(out.events) == std::vector<std::string>{"meter.replaced"});
  CHECK(payload(out.events[0]) == nlohmann::json{{"reason", "serial changed"},
                                                 {"before", "000000000101"},
                                                 {"after", "000000000202"}});
  CHECK(b.state.at("meter.number") == "000000000202");
  b.meter->power_cycle(b.clock + ms_per_minute, 60'000);
  b.pass(ms_per_hour);
  CHECK(types(b.run().events) == std::vector<std::string>{"meter.power_down"});
}

TEST_CASE("meter clock 10 minutes fast: meter.clock_drift, broadcast cannot fix it; once") {
  // Catches: a task that publishes the drift at every run, leaves out the
  // sign, or claims a broadcast (±5 min at most) can fix 10 minutes.
  Bench b;
  b.run();
  b.meter->skew_clock(10 * ms_per_minute);
  b.pass(ms_per_minute);
  auto out = b.run();
  REQUIRE(types(out.events) == std::vector<std::string>{"meter.clock_drift"});
  const auto p = payload(out.events[0]);
  CHECK(p["drift_s"] == "600");
  CHECK(p["broadcast_can_fix"] == false);
  CHECK(std::llabs(std::stoll(b.state.at("clock.drift_ms")) - 600'000) <= 1000);
  b.pass(15 * ms_per_minute);
  CHECK(b.run().events.empty());
  // Back in time (a skew, no adjust record): meter.clock_ok once.
  b.meter->skew_clock(-10 * ms_per_minute);
  b.pass(15 * ms_per_minute);
  out = b.run();
  CHECK(types(out.events) == std::vector<std::string>{"meter.clock_ok"});
  b.pass(15 * ms_per_minute);
  CHECK(b.run().events.empty());
}

TEST_CASE("meter clock 90 s slow with a 60 s limit: meter.clock_drift, broadcast can fix it") {
  // Catches: a task that uses the default limit instead of the configured
  // one, or prints the drift rounded away from the meter's whole seconds.
  Bench b;
  b.drift_max = std::chrono::milliseconds(60'000);
  b.meter->skew_clock(-90'000);
  b.clock += 123;  // a gateway millisecond that is not a whole second
  const auto out = b.run();
  REQUIRE(types(out.events) == std::vector<std::string>{"meter.clock_drift"});
  CHECK(payload(out.events[0])["drift_s"] == "-90");
  CHECK(payload(out.events[0])["broadcast_can_fix"] == true);
}

TEST_CASE("the clock is compared at the time of the meter's answer, not at the task's start") {
  // Catches: a task that compares the meter clock with the gateway time
  // taken when the task started (a slow bus adds its exchange times).
  Bench b;
  b.step = 4000;  // slow exchanges (retries, long turnaround)
  b.drift_max = std::chrono::milliseconds(5000);
  const auto out = b.run();
  CHECK(out.events.empty());
  CHECK(std::llabs(std::stoll(b.state.at("clock.drift_ms"))) <= 1000);
}

TEST_CASE("date read before midnight, time after it: no day of drift") {
  // Catches: a task that joins a date read at 23:59:59 with a time read at
  // 00:00:00 (the meter looks a day slow).
  Bench b;
  // Local midnight 2026-11-28 = 16:00 UTC on the 27th. The number is read
  // at -0.4 s, the date at -0.1 s, the time at +0.2 s.
  b.clock = simulator::from_civil(2026, 11, 27, 16, 0, 0) - 700;
  const auto out = b.run();
  CHECK(out.events.empty());
  CHECK(std::llabs(std::stoll(b.state.at("clock.drift_ms"))) <= 1000);
  REQUIRE(b.reads.size() >= 4);
  CHECK(b.reads[1] == 0x04000101);
  CHECK(b.reads[2] == 0x04000102);
  CHECK(b.reads[3] == 0x04000101);  // the date again
}

TEST_CASE("a DL/T 645-1997 meter: clock and number only, no error") {
  // Catches: a task that sends 2007 event DIs to a 1997 meter, or fails
  // the run on its ERR answers.
  Bench b("000000000303", 5, dlt::Version::v1997);
  b.meter->skew_clock(3 * ms_per_minute);
  const auto out = b.run();
  CHECK(out.failure == Outcome::ok);
  CHECK(out.problems.empty());
  REQUIRE(types(out.events) == std::vector<std::string>{"meter.clock_drift"});
  CHECK(payload(out.events[0])["drift_s"] == "180");
  CHECK(b.state.at("meter.number") == "000000000303");
  for (auto di : b.reads) CHECK(di <= 0xFFFF);
}

namespace {

// A hand-made meter for what the model does not do (status word 1): every
// DI answers ERR 02 except the status block, whose word 1 is `sw1`.
struct StatusOnly {
  std::uint16_t sw1 = 0;
  std::int64_t clock = t0;
  drivers::Dlt645Read read(std::uint32_t di) {
    clock += 100;
    drivers::Dlt645Read r;
    r.di = di;
    if (di != 0x040005FF) {
      r.outcome = Outcome::meter_error;
      r.error_word = 0x02;
      return r;
    }
    r.outcome = Outcome::ok;
    r.data.assign(14, 0);
    r.data[0] = static_cast<std::uint8_t>(sw1 & 0xFF);  // word 1, low byte first
    r.data[1] = static_cast<std::uint8_t>(sw1 >> 8);
    return r;
  }
  TaskOutput run(TaskState& state) {
    DltLink l;
    l.read = [this](std::uint32_t di) { return read(di); };
    EventTaskInput in;
    in.meter = "m9";
    in.state = state;
    in.now_ms = [this] { return clock; };
    in.zone = fixed_zone(480);
    auto out = run_event_task(l, in);
    for (const auto& u : out.state) state[u.key] = u.value;
    return out;
  }
};

}  // namespace

TEST_CASE("reverse power: an edge each way, not a level at every run; ERR 02 items are silent") {
  // Catches: a task that publishes meter.reverse_power at every run while
  // the bit stays set, never says it cleared, or reports the meter's ERR 02
  // answers (a meter without event logs) as problems or failures.
  StatusOnly m;
  TaskState state;
  auto out = m.run(state);
  CHECK(out.failure == Outcome::ok);
  CHECK(out.problems.empty());
  CHECK(out.events.empty());
  CHECK(state.count("events.power_down.count") == 0);  // ERR 02: nothing remembered

  m.sw1 = 0x0010;
  out = m.run(state);
  REQUIRE(types(out.events) == std::vector<std::string>{"meter.reverse_power"});
  CHECK(payload(out.events[0]) == nlohmann::json{{"status_word_1", "0010"}});
  CHECK(m.run(state).events.empty());
  m.sw1 = 0x0000;
  out = m.run(state);
  CHECK(types(out.events) == std::vector<std::string>{"meter.reverse_power_cleared"});
  CHECK(m.run(state).events.empty());
}

TEST_CASE("stopping: the task starts no other exchange") {
  // Catches: a task that goes on reading a meter's ten records while the
  // daemon waits for the bus worker to stop.
  Bench b;
  DltLink l = b.link();
  l.stopping = [] { return true; };
  EventTaskInput in;
  in.meter = "m1";
  in.now_ms = [&] { return b.clock; };
  in.zone = fixed_zone(480);
  const auto out = run_event_task(l, in);
  CHECK(out.failure == Outcome::cancelled);
  CHECK(b.reads.empty());
  CHECK(out.state.empty());
}

// ---- check_live ---------------------------------------------------------------

namespace {

buffer::Reading reading(const char* quantity, const char* value, std::int64_t ts = t0) {
  const auto d = *protocol::parse_decimal(value);
  buffer::Reading r;
  r.meter = "m1";
  r.quantity = quantity;
  r.mantissa = d.mantissa;
  r.exponent = d.exponent;
  r.ts_ms = ts;
  return r;
}

std::vector<buffer::Reading> volts(const char* l1, const char* l2, const char* l3) {
  return {reading("voltage.l1", l1), reading("voltage.l2", l2), reading("voltage.l3", l3)};
}

struct Live {
  TasksConfig limits;  // 198.0 .. 242.0, phase loss below 132.0
  TaskState state;
  std::vector<buffer::StateUpdate> updates;
  std::vector<buffer::Event> check(const std::vector<buffer::Reading>& r) {
    return check_live("m1", r, limits, state, updates);
  }
};

}  // namespace

TEST_CASE("check_live: voltage out of band once per excursion per phase, normal when back") {
  // Catches: a check that publishes at every poll during an excursion, one
  // that mixes up the phases, and one that flaps at the limit.
  Live live;
  CHECK(live.check(volts("230.0", "231.0", "229.0")).empty());
  auto e = live.check(volts("250.3", "231.0", "229.0"));
  REQUIRE(types(e) == std::vector<std::string>{"meter.voltage_out_of_band"});
  CHECK(e[0].payload_json == R"({"phase":"l1","voltage":"250.3","min":"198.0","max":"242.0"})");
  CHECK(e[0].meter == "m1");
  CHECK(live.check(volts("251.0", "231.0", "229.0")).empty());
  // Just inside the limit: still the same excursion (hysteresis).
  CHECK(live.check(volts("241.9", "231.0", "229.0")).empty());
  CHECK(live.check(volts("242.1", "231.0", "229.0")).empty());
  e = live.check(volts("235.0", "231.0", "229.0"));
  REQUIRE(types(e) == std::vector<std::string>{"meter.voltage_normal"});
  CHECK(payload(e[0])["phase"] == "l1");
  // A low L3.
  e = live.check(volts("235.0", "231.0", "190.5"));
  REQUIRE(types(e) == std::vector<std::string>{"meter.voltage_out_of_band"});
  CHECK(payload(e[0])["phase"] == "l3");
  CHECK(payload(e[0])["voltage"] == "190.5");
  // The state changes are handed back for the lead to store.
  CHECK_FALSE(live.updates.empty());
  CHECK(live.state.at("live.voltage.l3") == "low");
}

TEST_CASE("check_live: exact decimals at the limits (242.00 is not above 242.0)") {
  // Catches: a check that compares the text, the mantissas without the
  // exponents, or goes through double (242.00 vs 242.0; 242.01 vs 242.0).
  Live live;
  CHECK(live.check(volts("242.00", "242", "198.000")).empty());
  auto e = live.check(volts("242.01", "220.00", "220.0"));
  REQUIRE(types(e) == std::vector<std::string>{"meter.voltage_out_of_band"});
  CHECK(payload(e[0])["voltage"] == "242.01");
  e = live.check(volts("220.0", "220.00", "197.99"));
  CHECK(types(e) == std::vector<std::string>{"meter.voltage_normal", "meter.voltage_out_of_band"});
}

TEST_CASE("check_live: phase loss while another phase lives; all phases dead is not a phase loss") {
  // Catches: a check that calls a power cut three phase losses (or low
  // voltages), and one that reports a dead phase as an out-of-band voltage too.
  Live live;
  CHECK(live.check(volts("0.0", "0.0", "0.0")).empty());  // a power cut
  CHECK(live.check(volts("230.0", "230.0", "230.0")).empty());
  auto e = live.check(volts("230.0", "12.4", "230.0"));
  REQUIRE(types(e) == std::vector<std::string>{"meter.phase_loss"});
  CHECK(payload(e[0]) == nlohmann::json{{"phase", "l2"}, {"voltage", "12.4"}});
  CHECK(live.check(volts("230.0", "0.0", "230.0")).empty());
  e = live.check(volts("230.0", "229.5", "230.0"));
  CHECK(types(e) == std::vector<std::string>{"meter.phase_restored"});
  // A single-phase meter has no phase to lose.
  Live single;
  CHECK(single.check({reading("voltage.l1", "0.0")}).empty());
}

TEST_CASE("check_live: energy that went down is meter.replaced; frozen readings are ignored") {
  // Catches: a check that compares with double (12345.60 vs 12345.6 would
  // be equal either way, but 0.01 steps on large registers are not), takes
  // a frozen (daily) value for the live one, or reports the drop at every poll.
  Live live;
  live.state["events.power_down.count"] = "4";
  CHECK(live.check({reading("energy.active.import.total", "12345.67")}).empty());
  CHECK(live.check({reading("energy.active.import.total", "12345.670")}).empty());
  auto daily = reading("energy.active.import.total", "12000.00");
  daily.frozen = "daily";
  CHECK(live.check({daily}).empty());
  auto e = live.check({reading("energy.active.import.total", "12345.66")});
  REQUIRE(types(e) == std::vector<std::string>{"meter.replaced"});
  CHECK(payload(e[0]) == nlohmann::json{{"reason", "energy went down"},
                                        {"before", "12345.670"},
                                        {"after", "12345.66"}});
  CHECK(live.state.at("events.power_down.count").empty());  // the events task rebaselines
  CHECK(live.check({reading("energy.active.import.total", "12345.70")}).empty());
}
