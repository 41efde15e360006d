// meterctl against the real meterd reading metersim (system tier): every
// daemon verb in JSON mode, values checked against metersim's ground truth
// as text; a scan through the daemon; export through the daemon and
// offline from the buffer file giving the same rows; and what a person sees
// on a terminal (tmux).
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/support/rig.hpp"

using namespace meterd::testing;
using namespace std::chrono_literals;

namespace {

const std::string bin = std::string(METERD_BIN_DIR) + "/meterctl";

// Two buses: DL/T 645 (2007 and 1997) and Modbus RTU (units 3 and 9).
const std::string fleet =
    "seed = 5\nstatic = true\n" + bus_toml("d", 9600, "even") +
    meter_toml("d1", "d", "dlt645-2007", "000000000001") +
    meter_toml("d2", "d", "dlt645-1997", "000000000002") + bus_toml("m", 9600, "none") +
    meter_toml("u3", "m", "modbus", "3", "model = \"sdm630\"\nturnaround_ms = 20\n") +
    meter_toml("u9", "m", "modbus", "9", "model = \"sdm120\"\nturnaround_ms = 20\n");

struct CtlRig {
  std::unique_ptr<Rig> rig;
  std::string socket;
  CtlRig() {
    rig = std::make_unique<Rig>(fleet, std::vector<std::string>{}, "2s", [](std::string t) {
      // A short response timeout on the Modbus bus keeps the unit sweep quick.
      const auto at = t.find("name = \"m\"\n");
      REQUIRE(at != std::string::npos);
      const auto key = t.find("response_timeout_ms = ", at);
      REQUIRE(key != std::string::npos);
      return t.substr(0, key) + "response_timeout_ms = 400" + t.substr(t.find('\n', key));
    });
    socket = (rig->data_dir / "meterd.sock").string();
    rig->start();
    REQUIRE_MESSAGE(eventually([&] { return rig->all_read(4); }, 60s), rig->meterd->log_text());
  }
  ShellRun ctl(const std::string& args) {
    return run_shell(bin + " --socket " + socket + " " + args);
  }
  nlohmann::json json(const std::string& args) {
    const ShellRun r = ctl(args + " --json");
    INFO(args << ": " << r.err);
    REQUIRE(r.status == 0);
    return nlohmann::json::parse(r.out);
  }
  std::string truth(const std::string& meter, const std::string& quantity) {
    const auto t = rig->sim.ctl({{"cmd", "truth"}, {"meter", meter}});
    REQUIRE_MESSAGE(t["values"].contains(quantity), t.dump());
    return t["values"][quantity].get<std::string>();
  }
};

}  // namespace

// Catches: a client that rounds values through double, loses the daemon's
// digits in --json, ignores a filter, or exits 0 on a refusal.
TEST_CASE("every daemon verb in JSON mode, against the simulator's truth") {
  CtlRig c;
  const auto status = c.json("status");
  CHECK(status["gateway"] == "gw-sim");
  CHECK(status["meters"]["online"] == 4);
  CHECK(status["buses"].size() == 2);

  // meters: the latest values as the meters' own digits (raw text of --json).
  const ShellRun meters = c.ctl("meters --json");
  REQUIRE(meters.status == 0);
  for (const auto& [meter, quantity] : std::vector<std::pair<std::string, std::string>>{
           {"d1", "energy.active.import.total"}, {"d2", "voltage.l1"}, {"u9", "voltage.l1"}}) {
    const std::string v = c.truth(meter, quantity);
    CHECK_MESSAGE(
        std::regex_search(
            meters.out,
            std::regex("\"quantity\":\"" + std::regex_replace(quantity, std::regex("\\."), "\\.") +
                       "\",\"ts\":\"[^\"]+\",\"unit\":\"[^\"]*\",\"value\":" +
                       std::regex_replace(v, std::regex("\\."), "\\.") + "\\}")),
        meter << " " << quantity << " " << v);
  }
  const auto on_m = c.json("meters --bus m");
  CHECK(on_m["meters"].size() == 2);
  CHECK(c.json("meters --offline")["meters"].empty());

  // read: exact digits through --json.
  const ShellRun r = c.ctl("read d1 voltage.l1 energy.active.import.total --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(r.out.find("\"value\":" + c.truth("d1", "voltage.l1") + "}") != std::string::npos);
  CHECK(r.out.find("\"value\":" + c.truth("d1", "energy.active.import.total") + "}") !=
        std::string::npos);
  // Human: value and unit on the quantity's line.
  const ShellRun human = c.ctl("read u3 voltage.l1");
  CHECK(human.status == 0);
  CHECK(human.out.find(c.truth("u3", "voltage.l1")) != std::string::npos);
  const ShellRun unknown = c.ctl("read zz");
  CHECK(unknown.status == 1);
  CHECK(unknown.err == "meterctl: read: unknown_meter: no meter zz in the config\n");

  const auto backlog = c.json("backlog");
  CHECK(backlog["readings"].get<int>() > 0);

  // tail follows: two rows of the filtered series, with seqs.
  const ShellRun tail = run_shell(bin + " --socket " + c.socket +
                                  " tail --meter u9 --quantity voltage.l1 --json | head -n 2");
  const auto lines = [&] {
    std::vector<std::string> v;
    std::istringstream in(tail.out);
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
  }();
  REQUIRE_MESSAGE(lines.size() == 2, tail.out << tail.err);
  for (const auto& l : lines) {
    const auto j = nlohmann::json::parse(l);
    CHECK(j["meter"] == "u9");
    CHECK(j["seq"].is_number_integer());
    CHECK(l.find("\"value\":" + c.truth("u9", "voltage.l1")) != std::string::npos);
  }

  const ShellRun relay = c.ctl("relay d1 trip");
  CHECK(relay.status == 1);
  CHECK(relay.err.find("disabled") != std::string::npos);
  CHECK(c.json("timesync d")["buses"][0]["ok"] == true);
  CHECK(c.json("reload")["reloaded"] == true);
}

// Catches: a scan that misses a unit, invents one, or stalls polling; an
// offline export that differs from the daemon's.
TEST_CASE("scan through the daemon finds exactly the bus's units; export online = offline") {
  CtlRig c;
  const auto reads_before = c.json("status")["buses"][1]["reads_ok"].get<int>();
  const ShellRun scan = c.ctl("scan m --first 1 --last 12 --json");
  REQUIRE_MESSAGE(scan.status == 0, scan.err);
  // JSON lines: one per meter found, then the result.
  std::istringstream in(scan.out);
  std::string last;
  for (std::string l; std::getline(in, l);) last = l;
  const auto result = nlohmann::json::parse(last);
  std::map<std::string, std::string> found;
  for (const auto& m : result["found"]) found[m["address"]] = m["profile"];
  CHECK(found == std::map<std::string, std::string>{{"3", "sdm630"}, {"9", "sdm120"}});
  CHECK(result["config"].get<std::string>().find("address = 9") != std::string::npos);
  // Polling went on between the probes.
  CHECK(c.json("status")["buses"][1]["reads_ok"].get<int>() > reads_before);

  // Export of a range through the daemon, then offline from the file.
  REQUIRE(eventually([&] { return c.rig->meterd->readings().size() > 300; }, 60s));
  const auto stored = c.rig->meterd->readings();
  const std::int64_t from = stored[50].ts_ms, to = stored[250].ts_ms;
  const std::string range =
      " export --meter d1 --from " + std::to_string(from) + " --to " + std::to_string(to);
  const ShellRun online = c.ctl(range + " --format csv");
  REQUIRE_MESSAGE(online.status == 0, online.err);
  std::size_t expect = 0;
  for (const auto& r : stored)
    if (r.meter == "d1" && r.ts_ms >= from && r.ts_ms < to) ++expect;
  const auto rows =
      static_cast<std::size_t>(std::count(online.out.begin(), online.out.end(), '\n'));
  CHECK(rows == expect + 1);  // the header
  CHECK(online.out.rfind("seq,meter,quantity,value,unit,ts", 0) == 0);
  c.rig->meterd->proc->stop();
  const ShellRun offline =
      run_shell(bin + range + " --data-dir " + c.rig->data_dir.string() + " --format csv");
  REQUIRE_MESSAGE(offline.status == 0, offline.err);
  CHECK(offline.out == online.out);
  // The daemon is gone: a clear message and exit 3.
  const ShellRun gone = c.ctl("status");
  CHECK(gone.status == 3);
  CHECK(gone.err.rfind("meterctl: cannot reach meterd at " + c.socket + ": ", 0) == 0);
}

// What a technician sees: status as an aligned table, tail lines arriving,
// a scan's progress bar on the terminal (not in a pipe).
TEST_CASE("on a terminal (tmux): status, tail and a scan's progress") {
  if (run_shell("command -v tmux").status != 0) {
    MESSAGE("tmux not installed: skipped");
    return;
  }
  CtlRig c;
  // One private tmux server per screen (-L): a server exits with its last
  // session, and a new session started on the default socket while the old
  // server is going away fails ("server exited unexpectedly").
  const std::string base = "tmux -L meterctl-sys-" + std::to_string(::getpid()) + "-";
  struct KillServers {
    std::string base;
    ~KillServers() {
      for (const char* s : {"status", "tail", "scan"}) run_shell(base + s + " kill-server");
    }
  } cleanup{base};
  std::string tmux;
  const auto capture = [&] { return run_shell(tmux + " capture-pane -p -t t").out; };
  const auto open_screen = [&](const char* name, const std::string& command) {
    tmux = base + name;
    const ShellRun r = run_shell(tmux + " new-session -d -x 160 -y 40 -s t '" + command + "'");
    INFO(r.err);
    REQUIRE(r.status == 0);
  };
  open_screen("status", "env NO_COLOR= " + bin + " --socket " + c.socket + " status; sleep 30");
  std::string screen;
  eventually(
      [&] {
        screen = capture();
        return screen.find("BUS") != std::string::npos;
      },
      10s);
  run_shell(tmux + " kill-server");
  INFO(screen);
  CHECK(screen.find("gw-sim") != std::string::npos);
  // The bus table: the STATE column starts at the same place on each line.
  std::istringstream in(screen);
  std::vector<std::size_t> at;
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("BUS", 0) == 0) at.push_back(l.find("STATE"));
    if (l.rfind("d ", 0) == 0 || l.rfind("m ", 0) == 0) at.push_back(l.find(" up "));
  }
  REQUIRE(at.size() == 3);
  CHECK(at[1] + 1 == at[0]);
  CHECK(at[2] == at[1]);

  // tail: lines arrive as readings are stored.
  open_screen("tail", bin + " --socket " + c.socket + " tail --meter d1");
  const bool tailing = eventually(
      [&] {
        screen = capture();
        return screen.find("energy.active.import.total") != std::string::npos;
      },
      15s);
  run_shell(tmux + " kill-server");
  CHECK_MESSAGE(tailing, screen);

  // scan: a progress bar on the terminal while it runs.
  open_screen("scan", bin + " --socket " + c.socket + " scan m --first 1 --last 20; sleep 30");
  bool bar = false, done = false;
  eventually(
      [&] {
        screen = capture();
        if (screen.find("scanning m [") != std::string::npos &&
            screen.find("[[meter]]") == std::string::npos)
          bar = true;
        done = screen.find("[[meter]]") != std::string::npos;
        return done;
      },
      60s);
  run_shell(tmux + " kill-server");
  INFO(screen);
  CHECK(bar);
  CHECK(done);
}
