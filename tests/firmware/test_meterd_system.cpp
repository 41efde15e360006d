// The real meterd against the real metersim (system tier): values stored
// exactly, faults survived without one wrong value, dead meters and
// vanished buses handled, SIGTERM / SIGKILL / SIGHUP, and the command line.
// Every wait is bounded; nothing asserts on wall-clock speed.
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <signal.h>

#include "protocol/decimal.hpp"
#include "tests/support/meterd.hpp"
#include "tests/support/metersim.hpp"
#include "tests/support/rig.hpp"

using namespace meterd::testing;
using namespace std::chrono_literals;
using meterd::protocol::Decimal;
using meterd::protocol::parse_decimal;

namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::size_t count_of(const std::vector<StoredReading>& rs, const std::string& meter,
                     std::int64_t from_ms = 0, std::int64_t to_ms = INT64_MAX) {
  std::size_t n = 0;
  for (const auto& r : rs)
    if (r.meter == meter && r.ts_ms >= from_ms && r.ts_ms < to_ms) ++n;
  return n;
}

bool has_event(const std::vector<StoredEvent>& es, const std::string& meter,
               const std::string& type) {
  for (const auto& e : es)
    if (e.meter == meter && e.type == type) return true;
  return false;
}

Decimal decimal_of(const StoredReading& r) { return {r.mantissa, r.exponent}; }

// Compares every stored reading with metersim's ground truth (--static:
// the truth does not move). Returns how many were compared.
std::size_t check_against_truth(Metersim& sim, const std::vector<StoredReading>& readings,
                                bool identical_precision_for_dlt645) {
  std::map<std::string, nlohmann::json> truth;
  std::size_t compared = 0;
  for (const auto& r : readings) {
    if (!truth.contains(r.meter)) truth[r.meter] = sim.ctl({{"cmd", "truth"}, {"meter", r.meter}});
    const auto& t = truth[r.meter];
    REQUIRE(t["ok"] == true);
    if (!t["values"].contains(r.quantity)) continue;
    const auto expect = parse_decimal(t["values"][r.quantity].get<std::string>());
    REQUIRE(expect.has_value());
    CAPTURE(r.meter);
    CAPTURE(r.quantity);
    CAPTURE(meterd::protocol::to_string(decimal_of(r)));
    CAPTURE(t["values"][r.quantity].get<std::string>());
    CHECK(decimal_of(r) == *expect);
    if (identical_precision_for_dlt645 && t["protocol"] != "modbus")
      CHECK(decimal_of(r).identical(*expect));
    ++compared;
  }
  return compared;
}

}  // namespace

namespace {

const std::string mixed_fleet =
    "seed = 3\nstatic = true\n" + bus_toml("d", 9600, "even") + bus_toml("m", 9600, "none") +
    "[[tcp]]\nname = \"t\"\nport = 0\n" + meter_toml("d1", "d", "dlt645-2007", "000000000001") +
    meter_toml("d2", "d", "dlt645-2007", "000000000002", "phases = 1\ntariffs = 2\n") +
    meter_toml("d3", "d", "dlt645-1997", "000000000003") +
    meter_toml("d4", "d", "dlt645-2007", "000000000004") +
    meter_toml("s630", "m", "modbus", "1", "model = \"sdm630\"\n") +
    meter_toml("s120", "m", "modbus", "2", "model = \"sdm120\"\n") +
    meter_toml("dt", "m", "modbus", "3", "model = \"dtsu666\"\n") +
    meter_toml("dth", "m", "modbus", "4", "model = \"dtsu666h\"\n") +
    meter_toml("gen", "m", "modbus", "5", "model = \"generic\"\n") +
    meter_toml("tcp1", "t", "modbus", "1", "model = \"sdm630\"\n");

// Replaces `from` by `to` in the [[meter]] block of meter `id`.
std::string edit_meter(std::string text, const std::string& id, const std::string& from,
                       const std::string& to) {
  const auto at = text.find("id = \"" + id + "\"");
  REQUIRE(at != std::string::npos);
  const auto pos = text.find(from, at);
  REQUIRE(pos != std::string::npos);
  return text.replace(pos, from.size(), to);
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto p = text.find(from); p != std::string::npos; p = text.find(from, p + to.size()))
    text.replace(p, from.size(), to);
  return text;
}

bool has(const std::vector<StoredReading>& rs, const std::string& meter, const std::string& q) {
  for (const auto& r : rs)
    if (r.meter == meter && r.quantity == q) return true;
  return false;
}

// Sums "<key> N" over the summary lines of one bus in a meterd log.
std::uint64_t summary_sum(const std::string& log, const std::string& bus, const std::string& key) {
  std::uint64_t sum = 0;
  std::size_t p = 0;
  const std::string head = "bus " + bus + ": ";
  while ((p = log.find(head, p)) != std::string::npos) {
    const auto eol = log.find('\n', p);
    const std::string line = log.substr(p, eol - p);
    const auto k = line.find(", " + key + " ");
    if (k != std::string::npos) sum += std::stoull(line.substr(k + key.size() + 3));
    p = eol;
  }
  return sum;
}

}  // namespace

// Catches: a value rounded or re-scaled on the way (a float in the path, a
// decimal point lost, SDM float32 printed with binary noise), an absent
// phase stored as zero, a block read that drops a tariff, a Modbus request
// that breaks the SDM630's silent gap or 80-register limit.
TEST_CASE("every stored value equals the simulator's truth, for every profile and both editions") {
  Rig rig(mixed_fleet, {}, "3s", [](std::string t) {
    return edit_meter(std::move(t), "d4", "profile = \"dlt645-basic\"",
                      "profile = \"dlt645-full\"");
  });
  rig.start();
  REQUIRE_MESSAGE(eventually([&] { return rig.all_read(10); }, 40s), rig.meterd->log_text());
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
  const auto rs = rig.meterd->readings();
  const std::size_t compared = check_against_truth(rig.sim, rs, true);
  CHECK(compared >= rs.size() * 9 / 10);  // nearly everything has a truth to compare with

  for (const char* q :
       {"energy.active.import.total", "energy.active.import.t1", "energy.active.import.t4",
        "energy.active.export.total", "voltage.l1", "voltage.l3", "current.l2",
        "power.active.total", "power_factor.total", "frequency"})
    CHECK_MESSAGE(has(rs, "d1", q), q);
  CHECK(has(rs, "d2", "voltage.l1"));
  CHECK_FALSE(has(rs, "d2", "voltage.l2"));               // FF FF: absent, never a zero
  CHECK_FALSE(has(rs, "d2", "energy.active.import.t3"));  // two tariffs configured
  CHECK(has(rs, "d3", "energy.active.import.total"));
  CHECK(has(rs, "d3", "voltage.l1"));
  CHECK(has(rs, "d4", "energy.reactive.import.total"));
  for (const char* m : {"s630", "dt", "dth", "tcp1"}) {
    CHECK_MESSAGE(has(rs, m, "energy.active.import.total"), m);
    CHECK_MESSAGE(has(rs, m, "voltage.l1"), m);
  }
  CHECK(has(rs, "s120", "voltage.l1"));
  CHECK(has(rs, "gen", "energy.active.import.total"));

  const auto stats = rig.sim.ctl({{"cmd", "stats"}})["buses"];
  for (const char* bus : {"d", "m"}) {
    CAPTURE(bus);
    CHECK(stats[bus]["not_heard"] == 0);   // the SDM630 gap was kept
    CHECK(stats[bus]["bad_frames"] == 0);  // no Modbus frame broken by a gap
    CHECK(stats[bus]["collisions"] == 0);
  }
  const std::string log = rig.meterd->log_text();
  CHECK(summary_sum(log, "m", "exceptions") ==
        0);  // no refused request (80 registers, even starts)
  CHECK(summary_sum(log, "d", "timeouts") == 0);
}

// Catches: a parser that locks on the first 68H (noise ends with a false
// head), a master that never checks the checksum or CRC (corrupt keeps the
// old one), one that takes another meter's answer or an unsolicited report
// for its own, one that reads its own echo as the answer, and retries that
// store a half-read block.
TEST_CASE("with faults on every bus, retries recover and not one stored value differs") {
  std::string toml = mixed_fleet;
  toml = replace_all(toml, "parity = \"even\"\n", "parity = \"even\"\necho = true\n");
  Rig rig(toml, {}, "3s", [](std::string t) {
    t = replace_all(t, "response_timeout_ms = 1000", "response_timeout_ms = 600");
    return replace_all(t, "retries = 1", "retries = 4");
  });
  const nlohmann::json dlt_faults = {
      {"noise", 14},  {"corrupt", 0.1},     {"corrupt_checksum", 0.1},
      {"drop", 0.05}, {"unsolicited", 0.3}, {"stall_ms", 30}};
  // No noise on Modbus: junk before every answer is a line no RTU master
  // reads (a frame is what lies between silences); DL/T 645 hunts for 68H.
  const nlohmann::json mb_faults = {
      {"corrupt", 0.1}, {"corrupt_checksum", 0.1}, {"drop", 0.05}, {"unsolicited", 0.2}};
  REQUIRE(rig.sim.ctl({{"cmd", "fault"}, {"bus", "d"}, {"faults", dlt_faults}})["ok"] == true);
  REQUIRE(rig.sim.ctl({{"cmd", "fault"}, {"bus", "m"}, {"faults", mb_faults}})["ok"] == true);
  REQUIRE(rig.sim.ctl({{"cmd", "fault"}, {"bus", "t"}, {"faults", mb_faults}})["ok"] == true);
  // Two meters answer with a foreign address for a while: nothing of theirs
  // may be stored then, and each such answer is counted as a mismatch.
  const nlohmann::json foreign = {{"wrong_address", true}};
  REQUIRE(rig.sim.ctl({{"cmd", "fault"}, {"meter", "d1"}, {"faults", foreign}})["ok"] == true);
  REQUIRE(rig.sim.ctl({{"cmd", "fault"}, {"meter", "s630"}, {"faults", foreign}})["ok"] == true);
  rig.start();
  REQUIRE_MESSAGE(eventually(
                      [&] {
                        const auto log = rig.meterd->log_text();
                        return summary_sum(log, "d", "mismatches") > 0 &&
                               summary_sum(log, "m", "mismatches") > 0;
                      },
                      30s),
                  rig.meterd->log_text());
  CHECK(count_of(rig.meterd->readings(), "d1") == 0);
  CHECK(count_of(rig.meterd->readings(), "s630") == 0);
  const nlohmann::json own = {{"wrong_address", false}};
  REQUIRE(rig.sim.ctl({{"cmd", "fault"}, {"meter", "d1"}, {"faults", own}})["ok"] == true);
  REQUIRE(rig.sim.ctl({{"cmd", "fault"}, {"meter", "s630"}, {"faults", own}})["ok"] == true);
  REQUIRE_MESSAGE(eventually([&] { return rig.all_read(10, 25); }, 60s), rig.meterd->log_text());
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
  const auto rs = rig.meterd->readings();
  CHECK(check_against_truth(rig.sim, rs, true) >= rs.size() * 9 / 10);
  const std::string log = rig.meterd->log_text();
  // The faults really happened and were counted apart.
  CHECK(summary_sum(log, "d", "bad frames") > 0);
  CHECK(summary_sum(log, "d", "mismatches") > 0);
  CHECK(summary_sum(log, "m", "bad frames") > 0);
  CHECK(summary_sum(log, "m", "mismatches") > 0);
}

namespace {

const std::string three_dlt = "seed = 5\nstatic = true\n" + bus_toml("d", 9600, "even") +
                              meter_toml("d1", "d", "dlt645-2007", "000000000001") +
                              meter_toml("d2", "d", "dlt645-2007", "000000000002") +
                              meter_toml("d3", "d", "dlt645-2007", "000000000003");

}  // namespace

// Catches: a failed read stored as zero or as the last value re-stamped, a
// dead meter that stalls its neighbours, an offline event on every failure
// (or never), no online event when the meter returns.
TEST_CASE("a dead meter: offline once, neighbours keep their schedule, no value invented") {
  Rig rig(three_dlt, {}, "2s", [](std::string t) {
    t = replace_all(t, "response_timeout_ms = 1000", "response_timeout_ms = 300");
    return replace_all(t, "[polling]\n", "[polling]\noffline_after = 2\n");
  });
  rig.start();
  REQUIRE(eventually([&] { return rig.all_read(3); }, 30s));
  REQUIRE(rig.sim.ctl({{"cmd", "offline"}, {"meter", "d2"}})["ok"] == true);
  const std::int64_t off = wall_ms();
  REQUIRE_MESSAGE(
      eventually([&] { return has_event(rig.meterd->events(), "d2", "meter.offline"); }, 30s),
      rig.meterd->log_text());
  const auto before = rig.meterd->readings();
  // Neighbours: three more rounds each while d2 stays dead.
  REQUIRE(eventually(
      [&] {
        const auto now = rig.meterd->readings();
        return count_of(now, "d1") >= count_of(before, "d1") + 3 * 10 &&
               count_of(now, "d3") >= count_of(before, "d3") + 3 * 10;
      },
      30s));
  const std::int64_t on = wall_ms();
  REQUIRE(rig.sim.ctl({{"cmd", "online"}, {"meter", "d2"}, {"power_up_ms", 0}})["ok"] == true);
  REQUIRE_MESSAGE(
      eventually([&] { return has_event(rig.meterd->events(), "d2", "meter.online"); }, 30s),
      rig.meterd->log_text());
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
  const auto rs = rig.meterd->readings();
  // Nothing stored for d2 from a second after it went silent until it came back.
  CHECK(count_of(rs, "d2", off + 1000, on) == 0);
  CHECK(check_against_truth(rig.sim, rs, true) == rs.size());
  int offline_events = 0;
  for (const auto& e : rig.meterd->events()) offline_events += e.type == "meter.offline";
  CHECK(offline_events == 1);
}

// Catches: a bus worker that dies (or spins) when its USB adapter vanishes
// and needs a restart to read again.
TEST_CASE("the bus vanishes and returns: meterd recovers without a restart") {
  Rig rig(three_dlt, {}, "2s");
  rig.start();
  REQUIRE(eventually([&] { return rig.all_read(3); }, 30s));
  REQUIRE(rig.sim.ctl({{"cmd", "vanish"}, {"bus", "d"}})["ok"] == true);
  REQUIRE_MESSAGE(
      eventually([&] { return rig.meterd->log_text().find("bus d: down") != std::string::npos; },
                 20s),
      rig.meterd->log_text());
  std::this_thread::sleep_for(1s);
  REQUIRE(rig.sim.ctl({{"cmd", "reappear"}, {"bus", "d"}})["ok"] == true);
  const std::int64_t back = wall_ms();
  REQUIRE_MESSAGE(eventually([&] { return count_of(rig.meterd->readings(), "d1", back) > 0; }, 30s),
                  rig.meterd->log_text());
  CHECK(rig.meterd->proc->running());
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
}

// Catches: a bus on the wrong baud that stores garbage, or fails silently.
TEST_CASE("a bus configured with the wrong baud reads nothing and says why") {
  Rig rig(three_dlt, {}, "2s", [](std::string t) {
    t = replace_all(t, "baud = 9600", "baud = 4800");
    return replace_all(t, "response_timeout_ms = 1000", "response_timeout_ms = 300");
  });
  rig.start();
  REQUIRE(eventually(
      [&] {
        return rig.meterd->log_text().find("bus d: up") != std::string::npos &&
               summary_sum(rig.meterd->log_text(), "d", "timeouts") +
                       summary_sum(rig.meterd->log_text(), "d", "bad frames") >
                   0;
      },
      30s));
  CHECK(rig.meterd->readings().empty());
  CHECK(rig.sim.ctl({{"cmd", "stats"}})["buses"]["d"]["settings_mismatch"] > 0);
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
}

// Catches: a buffer that loses committed rows when the daemon is killed,
// seqs reused after a restart, a clean stop that still reports a gap.
TEST_CASE("SIGKILL while polling, restart: nothing committed lost, seqs keep rising") {
  Rig rig(three_dlt, {}, "2s");
  rig.start();
  REQUIRE(eventually([&] { return rig.all_read(3, 20); }, 30s));
  const auto seen = rig.meterd->readings();  // committed: a reader sees only committed rows
  ::kill(rig.meterd->proc->pid(), SIGKILL);
  rig.meterd->proc->stop(SIGKILL, 5s);
  const auto after_kill = rig.meterd->readings();
  REQUIRE(after_kill.size() >= seen.size());
  for (std::size_t i = 0; i < seen.size(); ++i) CHECK(after_kill[i].seq == seen[i].seq);
  const std::int64_t max_seq = after_kill.back().seq;

  rig.start();
  REQUIRE(eventually([&] { return rig.meterd->readings().size() > after_kill.size() + 10; }, 30s));
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
  const auto rs = rig.meterd->readings();
  for (std::size_t i = after_kill.size(); i < rs.size(); ++i) CHECK(rs[i].seq > max_seq);
  const auto events = rig.meterd->events();
  int gaps = 0;
  for (const auto& e : events) gaps += e.type == "buffer.seq_gap";
  CHECK(gaps == 1);

  // A clean stop leaves no gap to declare.
  rig.start();
  REQUIRE(eventually([&] { return rig.meterd->readings().size() > rs.size(); }, 30s));
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
  gaps = 0;
  for (const auto& e : rig.meterd->events()) gaps += e.type == "buffer.seq_gap";
  CHECK(gaps == 1);
}

// Catches: a reload that restarts everything (or nothing), and a bad new
// config that takes the running daemon down.
TEST_CASE("SIGHUP: a meter added takes effect; a bad config is refused and the old one runs on") {
  Rig rig(three_dlt, {}, "2s");
  const std::string full = slurp(rig.config);
  // Start with d1 and d2 only.
  const auto d3 = full.find("[[meter]]\nid = \"d3\"");
  REQUIRE(d3 != std::string::npos);
  std::ofstream(rig.config) << full.substr(0, d3);
  rig.start();
  REQUIRE(eventually([&] { return rig.all_read(2, 10); }, 30s));
  CHECK(count_of(rig.meterd->readings(), "d3") == 0);

  std::ofstream(rig.config) << full;
  ::kill(rig.meterd->proc->pid(), SIGHUP);
  REQUIRE_MESSAGE(eventually([&] { return count_of(rig.meterd->readings(), "d3") > 0; }, 30s),
                  rig.meterd->log_text());

  std::ofstream(rig.config) << full << "\n[[meter]]\nid = \"d1\"\nbus = \"nowhere\"\n";
  ::kill(rig.meterd->proc->pid(), SIGHUP);
  REQUIRE(eventually(
      [&] { return rig.meterd->log_text().find("reload refused") != std::string::npos; }, 10s));
  const std::int64_t refused = wall_ms();
  REQUIRE(eventually([&] { return count_of(rig.meterd->readings(), "d1", refused) > 0; }, 30s));
  CHECK(rig.meterd->proc->running());
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
}

TEST_CASE("the command line: --version, --check-config, usage errors") {
  const std::string meterd = std::string(METERD_BIN_DIR) + "/meterd";
  const auto v = run_program(meterd, {"--version"});
  CHECK(v.status == 0);
  CHECK(v.output.rfind("meterd ", 0) == 0);

  TempDir dir;
  const auto good = dir.path / "good.toml";
  std::ofstream(good) << "[gateway]\nid = \"gw\"\ndata_dir = \"" << (dir.path / "data").string()
                      << "\"\n\n[[bus]]\nname = \"b\"\nport = \"/dev/null\"\n\n[[meter]]\nid = "
                         "\"m1\"\nbus = \"b\"\nprotocol = \"dlt645-2007\"\naddress = "
                         "\"000000000001\"\nprofile = \"dlt645-basic\"\ninterval = \"15m\"\n";
  const auto ok = run_program(meterd, {"--check-config", good.string()});
  CHECK_MESSAGE(ok.status == 0, ok.output);

  const auto bad = dir.path / "bad.toml";
  std::ofstream(bad) << "[gateway]\nid = \"gw\"\ndata_dir = \"" << (dir.path / "data").string()
                     << "\"\n\n[[bus]]\nname = \"b\"\nport = \"/dev/null\"\n\n"
                        "[[meter]]\nid = \"m1\"\nbus = \"b\"\nprotocol = \"dlt645-2007\"\n"
                        "address = \"12345\"\nprofile = \"dlt645-basic\"\ninterval = \"15m\"\n\n"
                        "[[meter]]\nid = \"m1\"\nbus = \"c\"\nprotocol = \"dlt645-2007\"\n"
                        "address = \"000000000002\"\nprofile = \"nope\"\ninterval = \"7x\"\n";
  const auto r = run_program(meterd, {"--check-config", bad.string()});
  CHECK(r.status == 2);
  const std::string f = bad.string();
  for (const std::string& line :
       {f + ":13: meter.address", f + ":18: meter.id", f + ":19: meter.bus",
        f + ":22: meter.profile", f + ":23: meter.interval"})
    CHECK_MESSAGE(r.output.find(line) != std::string::npos, std::string(line + "\n" + r.output));
  // Nothing was started for a config check.
  CHECK_FALSE(std::filesystem::exists(dir.path / "data" / "buffer.db"));

  CHECK(run_program(meterd, {}).status == 2);
  CHECK(run_program(meterd, {"--config", (dir.path / "missing.toml").string()}).status == 2);
}

namespace {

const std::string fast_and_slow = [] {
  std::string t = "seed = 9\nstatic = true\n" + bus_toml("fast", 9600, "even") +
                  bus_toml("slow", 2400, "even") +
                  meter_toml("f1", "fast", "dlt645-2007", "000000000001") +
                  meter_toml("f2", "fast", "dlt645-2007", "000000000002");
  for (int i = 1; i <= 5; ++i)
    t += meter_toml("s" + std::to_string(i), "slow", "dlt645-2007",
                    "00000000001" + std::to_string(i));
  return t;
}();

// Reads of a meter: dlt645-basic reads the frequency once per read.
std::size_t reads_of(const std::vector<StoredReading>& rs, const std::string& meter) {
  std::size_t n = 0;
  for (const auto& r : rs) n += r.meter == meter && r.quantity == "frequency";
  return n;
}

}  // namespace

// Catches: a slow bus that starves some meters (the first ones in the queue
// read again and again), a shortfall nobody is told about, and one bus's
// backlog delaying another bus.
TEST_CASE("a bus too slow for its meters reports the shortfall and still reads every meter") {
  Rig rig(fast_and_slow, {}, "5s");
  rig.start();
  // At 2400 baud a dlt645-basic read takes about 2 s: five meters need
  // about 10 s, twice their 5 s interval.
  REQUIRE_MESSAGE(eventually(
                      [&] {
                        const auto rs = rig.meterd->readings();
                        for (const char* m : {"s1", "s2", "s3", "s4", "s5"})
                          if (reads_of(rs, m) < 2) return false;
                        return rig.meterd->log_text().find("bus slow: shortfall") !=
                               std::string::npos;
                      },
                      60s),
                  rig.meterd->log_text());
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
  const auto rs = rig.meterd->readings();
  const std::string log = rig.meterd->log_text();
  CHECK(summary_sum(log, "slow", "missed slots") > 0);
  CHECK(summary_sum(log, "fast", "missed slots") == 0);
  CHECK(log.find("bus fast: shortfall") == std::string::npos);
  // The fast bus kept its schedule: both meters read about as often.
  CHECK(reads_of(rs, "f1") >= 3);
  CHECK(reads_of(rs, "f2") >= 3);
  // No starvation on the slow bus: the most and least read meters differ by one at most.
  std::size_t lo = SIZE_MAX, hi = 0;
  for (const char* m : {"s1", "s2", "s3", "s4", "s5"}) {
    lo = std::min(lo, reads_of(rs, m));
    hi = std::max(hi, reads_of(rs, m));
  }
  CHECK(hi - lo <= 1);
}
