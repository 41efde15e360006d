// The data tasks through the real meterd against metersim (docs/tasks.md):
// days pass on metersim's clock (`advance`) and meterd runs on the same
// shifted clock under faketime, stopped and restarted as a gateway that was
// down. Ground truth is the simulator's own freezes, event logs and clocks.
#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <doctest/doctest.h>

#include "tests/support/rig.hpp"

using namespace meterd::testing;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t day_ms = 86'400'000;

// libfaketime (Debian's faketime package). Preloaded through env, which
// execs: the faketime program forks and would not pass SIGTERM on.
std::string libfaketime() {
  const auto r = run_shell("dpkg -L libfaketime 2>/dev/null | grep '/libfaketimeMT.so.1$'");
  std::string path = r.out.substr(0, r.out.find('\n'));
  return r.status == 0 && std::filesystem::exists(path) ? path : "";
}
bool have_faketime() { return !libfaketime().empty(); }

// meterd on metersim's clock: libfaketime shifted by the simulator's offset.
std::vector<std::string> on_sim_clock(Metersim& sim) {
  const auto t = sim.ctl({{"cmd", "time"}});
  const auto offset_s = t["offset_ms"].get<std::int64_t>() / 1000;
  if (offset_s == 0) return {};
  const char* asan = std::getenv("ASAN_OPTIONS");
  return {"/usr/bin/env", "LD_PRELOAD=" + libfaketime(),
          "FAKETIME=+" + std::to_string(offset_s) + "s",
          // A sanitizer runtime wants to be first; libfaketime only wraps clocks.
          std::string("ASAN_OPTIONS=") + (asan ? std::string(asan) + ":" : "") +
              "verify_asan_link_order=0"};
}

// Advances metersim to `minutes` past the next UTC midnight (meters keep UTC here).
void advance_past_midnight(Metersim& sim, int minutes) {
  const auto t = sim.ctl({{"cmd", "time"}});
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count() +
                           t["offset_ms"].get<std::int64_t>();
  const std::int64_t next_midnight = (now / day_ms + 1) * day_ms;
  sim.ctl({{"cmd", "advance"}, {"ms", next_midnight - now + minutes * 60'000}});
}

std::map<std::string, std::string> sim_values(Metersim& sim, const std::string& meter,
                                              const std::string& di) {
  const auto r = sim.ctl({{"cmd", "read"}, {"meter", meter}, {"di", di}});
  REQUIRE_MESSAGE(r.value("ok", false), r.dump());
  std::map<std::string, std::string> out;
  for (const auto& v : r["values"])
    if (v["value"].is_string())
      out[v["quantity"].get<std::string>()] = v["value"].get<std::string>();
  return out;
}

std::string text(const StoredReading& r) {
  std::string digits = std::to_string(r.mantissa < 0 ? -r.mantissa : r.mantissa);
  if (r.exponent < 0) {
    const auto frac = static_cast<std::size_t>(-r.exponent);
    if (digits.size() <= frac) digits.insert(0, frac - digits.size() + 1, '0');
    digits.insert(digits.size() - frac, ".");
  }
  return (r.mantissa < 0 ? "-" : "") + digits;
}

// meter -> freeze time -> quantity -> value, and whether any (meter, freeze,
// quantity) was stored twice.
struct Frozen {
  std::map<std::string, std::map<std::int64_t, std::map<std::string, std::string>>> values;
  bool duplicate = false;
};
Frozen frozen(const std::vector<StoredReading>& rows, const std::string& kind) {
  Frozen f;
  for (const auto& r : rows) {
    if (r.frozen != kind || !r.freeze_ts_ms) continue;
    auto& slot = f.values[r.meter][*r.freeze_ts_ms];
    if (slot.contains(r.quantity)) f.duplicate = true;
    slot[r.quantity] = text(r);
  }
  return f;
}

std::size_t count_events(const std::vector<StoredEvent>& events, const std::string& type,
                         const std::string& meter = "") {
  return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](auto& e) {
    return e.type == type && (meter.empty() || e.meter == meter);
  }));
}

const std::string tasks_off =
    "\n[tasks]\nevent_interval = \"0s\"\ntimesync_time = \"\"\nmonthly = false\n";

}  // namespace

// A gateway that reads "the last freeze" without matching its time stores the
// same day three times; one without a stored record of the days done stores
// them again after a restart; one that does not walk the "last n" index
// stores today's data under the older dates.
TEST_CASE(
    "daily freezes: three days down, the three missing days once each, equal to the meter's") {
  if (!have_faketime()) {
    MESSAGE("faketime not installed: skipped");
    return;
  }
  const std::string fleet = "seed = 5\n" + bus_toml("b", 9600, "even") +
                            meter_toml("d1", "b", "dlt645-2007", "000000000001") +
                            meter_toml("d2", "b", "dlt645-2007", "000000000002") +
                            meter_toml("o1", "b", "dlt645-1997", "000000000003");
  Rig rig(fleet, {}, "20s", [](std::string t) { return t + tasks_off; });
  rig.start();
  const auto days_of = [&](const std::string& meter) {
    return frozen(rig.meterd->readings(), "daily").values[meter].size();
  };
  REQUIRE_MESSAGE(eventually([&] { return days_of("d1") == 1 && days_of("d2") == 1; }, 60s),
                  rig.meterd->log_text());
  // The 1997 meter keeps no daily freezes: its first energy read of the day.
  REQUIRE(eventually(
      [&] { return frozen(rig.meterd->readings(), "gateway-daily").values.contains("o1"); }, 60s));
  CHECK(frozen(rig.meterd->readings(), "gateway-daily").values.size() == 1);
  rig.meterd->proc->stop();

  rig.sim.ctl({{"cmd", "advance"}, {"ms", 3 * day_ms}});
  rig.start({}, on_sim_clock(rig.sim));
  REQUIRE_MESSAGE(eventually([&] { return days_of("d1") == 4 && days_of("d2") == 4; }, 60s),
                  rig.meterd->log_text());
  const Frozen f = frozen(rig.meterd->readings(), "daily");
  CHECK_FALSE(f.duplicate);
  for (const std::string meter : {"d1", "d2"}) {
    const auto& days = f.values.at(meter);
    // Consecutive midnights, newest = the simulator's "last 1".
    std::vector<std::int64_t> at;
    for (const auto& [ts, values] : days) at.push_back(ts);
    for (std::size_t i = 1; i < at.size(); ++i) CHECK(at[i] - at[i - 1] == day_ms);
    for (unsigned n = 1; n <= 4; ++n) {
      const auto& stored = days.at(at[4 - n]);
      char di[16];
      std::snprintf(di, sizeof di, "050601%02X", n);
      for (const auto& [quantity, value] : sim_values(rig.sim, meter, di)) {
        INFO(meter << " " << di << " " << quantity);
        CHECK(stored.at(quantity) == value);
      }
    }
  }
  // Restarted again on the same day: nothing stored twice.
  rig.meterd->proc->stop();
  const auto before = rig.meterd->readings().size();
  rig.start({}, on_sim_clock(rig.sim));
  REQUIRE(eventually([&] { return rig.meterd->readings().size() > before + 40; }, 60s));
  const Frozen again = frozen(rig.meterd->readings(), "daily");
  CHECK_FALSE(again.duplicate);
  CHECK(again.values.at("d1").size() == 4);
  CHECK(frozen(rig.meterd->readings(), "gateway-daily").values.at("o1").size() == 2);

  // Six more days down: more than one job's worth of freezes (4); the daemon
  // queues the parts one after the other and every day arrives once.
  rig.meterd->proc->stop();
  rig.sim.ctl({{"cmd", "advance"}, {"ms", 6 * day_ms}});
  rig.start({}, on_sim_clock(rig.sim));
  REQUIRE_MESSAGE(eventually([&] { return days_of("d1") == 10 && days_of("d2") == 10; }, 90s),
                  rig.meterd->log_text());
  const Frozen later = frozen(rig.meterd->readings(), "daily");
  CHECK_FALSE(later.duplicate);
  for (const std::string meter : {"d1", "d2"}) {
    std::vector<std::int64_t> at;
    for (const auto& [ts, values] : later.values.at(meter)) at.push_back(ts);
    for (std::size_t i = 1; i < at.size(); ++i) CHECK(at[i] - at[i - 1] == day_ms);
  }
}

// A daemon that posts every due task job of a bus at once queues them back to
// back, and the meters' reads that come due meanwhile wait behind all of them
// (at 1024 meters, a minute and more of nothing but tasks). One task job a
// bus at a time, the next queued behind the reads that came due: on a bus
// where reads are always due, two meters' freezes are never stored one right
// after the other.
TEST_CASE("task jobs take turns with the reads: never two meters' freezes back to back") {
  std::string fleet = "seed = 9\n" + bus_toml("b", 9600, "even");
  for (int i = 1; i <= 4; ++i)
    fleet +=
        meter_toml("d" + std::to_string(i), "b", "dlt645-2007", "00000000000" + std::to_string(i));
  // Four meters of 8 block reads at 9600 take about 3 s: at 1 s every meter's
  // next read is always due.
  Rig rig(fleet, {}, "1s", [](std::string t) { return t + tasks_off; });
  rig.start();
  const auto all_frozen = [&] {
    return frozen(rig.meterd->readings(), "daily").values.size() == 4;
  };
  REQUIRE_MESSAGE(eventually(all_frozen, 60s), rig.meterd->log_text());
  const auto rows = rig.meterd->readings();
  // Rows in store order, cut where the meter or the kind (live / daily) changes.
  std::vector<std::pair<std::string, std::string>> runs;
  for (const auto& r : rows)
    if (runs.empty() || runs.back() != std::pair{r.meter, r.frozen})
      runs.emplace_back(r.meter, r.frozen);
  for (std::size_t i = 1; i < runs.size(); ++i) {
    INFO("run " << i << ": " << runs[i - 1].first << " then " << runs[i].first);
    CHECK_FALSE((runs[i - 1].second == "daily" && runs[i].second == "daily"));
  }
  CHECK_FALSE(frozen(rows, "daily").duplicate);
}

// A task that publishes only the newest record, one that forgets the counters
// over a restart (repeats), one that keeps them only in memory (misses what
// happened while it was down).
TEST_CASE("meter events: one each, right times, none repeated or missed across a restart") {
  const std::string fleet = "seed = 6\n" + bus_toml("b", 9600, "even") +
                            meter_toml("d1", "b", "dlt645-2007", "000000000001");
  Rig rig(fleet, {}, "20s", [](std::string t) {
    return t + "\n[tasks]\nevent_interval = \"2s\"\ntimesync_time = \"\"\n";
  });
  ::setenv("METERD_CLOCK_STATUS", "synced", 1);
  rig.start();
  REQUIRE_MESSAGE(
      eventually(
          [&] { return stored_state(rig.meterd->db, "d1").contains("events.power_down.count"); },
          60s),
      rig.meterd->log_text());
  const auto baseline = rig.meterd->events();
  CHECK(count_events(baseline, "meter.power_down") == 0);  // history is not news

  rig.sim.ctl({{"cmd", "power_cycle"}, {"meter", "d1"}, {"off_ms", 3000}, {"power_up_ms", 500}});
  rig.sim.ctl({{"cmd", "open_cover"}, {"meter", "d1"}, {"duration_ms", 1000}});
  // The meter's clock set an hour ahead (later records carry that clock's times).
  const std::time_t ahead = std::time(nullptr) + 3600;
  std::tm tm{};
  gmtime_r(&ahead, &tm);
  char set_to[32];
  std::strftime(set_to, sizeof set_to, "%Y-%m-%dT%H:%M:%S", &tm);
  rig.sim.ctl({{"cmd", "set_clock"}, {"meter", "d1"}, {"time", set_to}});
  const auto has = [&](const char* type, std::size_t n) {
    return count_events(rig.meterd->events(), type, "d1") >= n;
  };
  REQUIRE_MESSAGE(eventually(
                      [&] {
                        return has("meter.power_down", 1) && has("meter.cover_open", 1) &&
                               has("meter.clock_adjusted", 1);
                      },
                      60s),
                  rig.meterd->log_text());
  const auto sim_events = rig.sim.ctl({{"cmd", "events"}, {"meter", "d1"}});
  MESSAGE(sim_events.dump());
  // While meterd is down: a second power-down and cover opening.
  rig.meterd->proc->stop();
  rig.sim.ctl({{"cmd", "power_cycle"}, {"meter", "d1"}, {"off_ms", 2000}, {"power_up_ms", 500}});
  rig.sim.ctl({{"cmd", "open_cover"}, {"meter", "d1"}, {"duration_ms", 1000}});
  std::this_thread::sleep_for(3s);
  rig.start();
  REQUIRE_MESSAGE(
      eventually([&] { return has("meter.power_down", 2) && has("meter.cover_open", 2); }, 60s),
      rig.meterd->log_text());
  // A few more runs: nothing repeated.
  std::this_thread::sleep_for(5s);
  const auto events = rig.meterd->events();
  CHECK(count_events(events, "meter.power_down", "d1") == 2);
  CHECK(count_events(events, "meter.cover_open", "d1") == 2);
  CHECK(count_events(events, "meter.clock_adjusted", "d1") == 1);
  // Oldest first, each with its own start time.
  std::vector<std::int64_t> starts;
  for (const auto& e : events)
    if (e.type == "meter.power_down") starts.push_back(e.ts_ms);
  REQUIRE(starts.size() == 2);
  CHECK(starts[0] < starts[1]);
  ::unsetenv("METERD_CLOCK_STATUS");
}

// A clock watch that compares against the gateway clock at the wrong moment,
// a daily broadcast that sends UTC or is never sent, one that pretends a
// broadcast can move a clock 10 minutes off.
TEST_CASE(
    "clock: drift reported, the daily broadcast corrects what it may, beyond ±5 min reported") {
  const std::string fleet = "seed = 7\n" + bus_toml("b", 9600, "even") +
                            meter_toml("d1", "b", "dlt645-2007", "000000000001") +
                            meter_toml("d2", "b", "dlt645-2007", "000000000002");
  Rig rig(fleet, {}, "30s", [](std::string t) {
    return t +
           "\n[tasks]\nevent_interval = \"3s\"\nclock_drift_max = \"60s\"\n"
           "timesync_time = \"00:00\"\ndaily = false\nmonthly = false\n";
  });
  rig.sim.ctl({{"cmd", "skew_clock"}, {"meter", "d1"}, {"ms", 90'000}});
  rig.sim.ctl({{"cmd", "skew_clock"}, {"meter", "d2"}, {"ms", 600'000}});
  ::setenv("METERD_CLOCK_STATUS", "synced", 1);
  rig.start();
  const auto has = [&](const char* type, const std::string& meter) {
    return count_events(rig.meterd->events(), type, meter) > 0;
  };
  REQUIRE_MESSAGE(eventually(
                      [&] {
                        return has("meter.clock_drift", "d1") && has("meter.clock_drift", "d2") &&
                               has("bus.timesync", "") && has("meter.clock_ok", "d1") &&
                               has("meter.clock_unfixable", "d2");
                      },
                      60s),
                  rig.meterd->log_text());
  for (const auto& e : rig.meterd->events()) {
    if (e.type != "meter.clock_drift") continue;
    const auto p = nlohmann::json::parse(e.payload);
    CHECK(p["broadcast_can_fix"].get<bool>() == (e.meter == "d1"));
  }
  // The broadcast moved d1 into the window and left d2 where it was.
  const auto seconds_of = [](const std::string& iso) {
    std::tm tm{};
    REQUIRE(strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr);
    return static_cast<std::int64_t>(timegm(&tm));
  };
  const auto skew_s = [&](const std::string& meter) {  // the simulator's truth, meter - UTC
    const auto t = rig.sim.ctl({{"cmd", "time"}});
    const auto truth = rig.sim.ctl({{"cmd", "truth"}, {"meter", meter}});
    MESSAGE(meter << " " << truth["meter_time"] << " sim " << t["utc"]);
    return seconds_of(truth["meter_time"].get<std::string>()) -
           seconds_of(t["utc"].get<std::string>());
  };
  CHECK(std::llabs(skew_s("d1")) <= 2);
  CHECK(skew_s("d2") >= 598);
  const auto state = stored_state(rig.meterd->db, "d1");
  REQUIRE(state.contains("clock.drift_ms"));
  CHECK(std::llabs(std::atoll(state.at("clock.drift_ms").c_str())) <= 60'000);
  const auto state2 = stored_state(rig.meterd->db, "d2");
  CHECK(std::llabs(std::atoll(state2.at("clock.drift_ms").c_str())) > 300'000);
  // Only once per day.
  std::this_thread::sleep_for(4s);
  CHECK(count_events(rig.meterd->events(), "bus.timesync") == 1);

  // Allowed to write (and given d2's password): the 14H write fixes d2.
  rig.meterd->proc->stop();
  std::string text = slurp(rig.config);
  const auto tasks = text.find("timesync_time = \"00:00\"");
  REQUIRE(tasks != std::string::npos);
  text.insert(tasks, "timesync_write = true\n");
  const auto d2 = text.find("id = \"d2\"");
  REQUIRE(d2 != std::string::npos);
  text.insert(text.find('\n', d2) + 1, "password = \"02000000\"\n");
  std::ofstream(rig.config) << text;
  rig.start();
  REQUIRE_MESSAGE(eventually([&] { return has("meter.clock_set", "d2"); }, 60s),
                  rig.meterd->log_text());
  CHECK(std::llabs(skew_s("d2")) <= 2);
  CHECK(count_events(rig.meterd->events(), "meter.clock_set") == 1);
  ::unsetenv("METERD_CLOCK_STATUS");
}

// Line loss: a rate computed from the wrong days' freezes, an offline household
// counted as loss (a false theft alarm), a bypass that never shows.
TEST_CASE(
    "area line loss: the configured loss, a bypass past the threshold, an offline household "
    "counted missing") {
  if (!have_faketime()) {
    MESSAGE("faketime not installed: skipped");
    return;
  }
  std::string fleet = "seed = 8\n" + bus_toml("b", 9600, "even") +
                      meter_toml("s0", "b", "dlt645-2007", "000000000010");
  for (int i = 1; i <= 3; ++i)
    fleet += meter_toml("h" + std::to_string(i), "b", "dlt645-2007",
                        "00000000001" + std::to_string(i), "phases = 1\n");
  fleet +=
      "[area]\nsummary = \"s0\"\nhouseholds = [\"h1\", \"h2\", \"h3\"]\nloss_percent = \"3.5\"\n";
  Rig rig(fleet, {}, "30s", [](std::string t) {
    return t +
           "\n[tasks]\nevent_interval = \"0s\"\ntimesync_time = \"\"\nmonthly = false\n"
           "[area]\nname = \"t1\"\nsummary = \"s0\"\nhouseholds = [\"h1\", \"h2\", \"h3\"]\n"
           "loss_threshold_percent = \"8.0\"\n";
  });
  // Start just after a midnight, so that each later day is a whole day.
  advance_past_midnight(rig.sim, 10);
  const auto days_stored = [&](std::size_t n) {
    const auto f = frozen(rig.meterd->readings(), "daily");
    for (const std::string m : {"s0", "h1", "h2", "h3"})
      if (!f.values.contains(m) || f.values.at(m).size() < n) return false;
    return true;
  };
  rig.start({}, on_sim_clock(rig.sim));
  REQUIRE_MESSAGE(eventually([&] { return days_stored(1); }, 60s), rig.meterd->log_text());
  rig.meterd->proc->stop();

  const auto area_events = [&](const char* type) {
    std::vector<nlohmann::json> out;
    for (const auto& e : rig.meterd->events())
      if (e.type == type) out.push_back(nlohmann::json::parse(e.payload));
    return out;
  };
  // Day 1 normal. The rate (4 decimals) is the simulator's (6 decimals), rounded.
  const auto expect_rate = [&](const std::string& date) {
    const auto a = rig.sim.ctl({{"cmd", "area"}, {"date", date}});
    REQUIRE_MESSAGE(a.value("ok", false), a.dump());
    return a;
  };
  const auto same_rate = [](const std::string& ours, const std::string& sims) {
    const double a = std::stod(ours), b = std::stod(sims);
    return std::abs(a - b) <= 0.00006;  // rounding 6 -> 4 decimals
  };
  rig.sim.ctl({{"cmd", "advance"}, {"ms", day_ms}});
  rig.start({}, on_sim_clock(rig.sim));
  REQUIRE_MESSAGE(eventually([&] { return !area_events("area.line_loss").empty(); }, 60s),
                  rig.meterd->log_text());
  auto loss = area_events("area.line_loss");
  REQUIRE(loss.size() == 1);
  const std::string day1 = loss[0]["date"];
  auto sim1 = expect_rate(day1);
  MESSAGE("day 1: " << loss[0].dump() << "\nsimulator: " << sim1.dump());
  CHECK(loss[0]["complete"].get<bool>());
  CHECK(same_rate(loss[0]["rate_percent"], sim1["rate_percent"]));
  CHECK(loss[0]["summary_kwh"] == sim1["summary_kwh"]);
  // And the configured 3.5 %, within what the 0.01 kWh registers allow: 8
  // readings (two per meter) each cut by up to 0.01 kWh.
  const double summary_kwh = std::stod(loss[0]["summary_kwh"].get<std::string>());
  CHECK(std::abs(std::stod(loss[0]["rate_percent"].get<std::string>()) - 3.5) <=
        100 * 8 * 0.01 / summary_kwh);
  CHECK(area_events("area.line_loss_high").empty());

  // Day 2: 60% of h2's load bypasses its meter for the whole day.
  rig.sim.ctl({{"cmd", "bypass"}, {"meter", "h2"}, {"share", 0.6}});
  rig.meterd->proc->stop();
  rig.sim.ctl({{"cmd", "advance"}, {"ms", day_ms}});
  rig.start({}, on_sim_clock(rig.sim));
  REQUIRE_MESSAGE(eventually([&] { return area_events("area.line_loss").size() == 2; }, 60s),
                  rig.meterd->log_text());
  loss = area_events("area.line_loss");
  const auto sim2 = expect_rate(loss[1]["date"]);
  MESSAGE("day 2: " << loss[1].dump());
  CHECK(same_rate(loss[1]["rate_percent"], sim2["rate_percent"]));
  REQUIRE(std::stod(sim2["rate_percent"].get<std::string>()) > 8.0);
  REQUIRE(area_events("area.line_loss_high").size() == 1);
  CHECK(area_events("area.line_loss_high")[0]["date"] == loss[1]["date"]);

  // Day 3: h3 is offline when the day's freezes are read: counted missing,
  // no loss alarm from it (the bypass ends, so the rest of the area is normal).
  rig.sim.ctl({{"cmd", "bypass"}, {"meter", "h2"}, {"share", 0}});
  rig.meterd->proc->stop();
  rig.sim.ctl({{"cmd", "advance"}, {"ms", day_ms}});
  rig.sim.ctl({{"cmd", "offline"}, {"meter", "h3"}});
  rig.start({}, on_sim_clock(rig.sim));
  REQUIRE_MESSAGE(eventually([&] { return area_events("area.line_loss").size() == 3; }, 90s),
                  rig.meterd->log_text());
  loss = area_events("area.line_loss");
  MESSAGE("day 3: " << loss[2].dump());
  CHECK_FALSE(loss[2]["complete"].get<bool>());
  CHECK(loss[2]["missing"] == nlohmann::json::array({"h3"}));
  CHECK(loss[2]["households_missing"] == 1);
  CHECK(area_events("area.line_loss_high").size() == 1);  // still only day 2's
  // h3 back: its freeze is backfilled and the day is published complete.
  rig.sim.ctl({{"cmd", "online"}, {"meter", "h3"}});
  REQUIRE_MESSAGE(eventually([&] { return area_events("area.line_loss").size() == 4; }, 120s),
                  rig.meterd->log_text());
  loss = area_events("area.line_loss");
  CHECK(loss[3]["date"] == loss[2]["date"]);
  CHECK(loss[3]["complete"].get<bool>());
  CHECK(loss[3]["revised"].get<bool>());
  CHECK(same_rate(loss[3]["rate_percent"], expect_rate(loss[3]["date"])["rate_percent"]));
}
