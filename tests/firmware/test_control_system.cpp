// The control socket end to end (system tier): the real meterd reading
// metersim's meters, asked over its Unix socket the way meterctl and
// scripts ask it (docs/control.md). Values are compared with metersim's
// ground truth as text, so a value that went through a double cannot pass.
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/support/rig.hpp"

using namespace meterd::testing;
using namespace std::chrono_literals;

namespace {

const std::string fleet = "seed = 11\nstatic = true\n" + bus_toml("d", 9600, "even") +
                          meter_toml("d1", "d", "dlt645-2007", "000000000001") +
                          meter_toml("d2", "d", "dlt645-1997", "000000000002") +
                          meter_toml("s1", "d", "modbus", "7", "model = \"sdm120\"\n");

// Sends one request and returns its final line (the raw text).
std::string ask(LineClient& l, const nlohmann::json& request) {
  l.send(request.dump() + "\n");
  std::string line;
  do {
    line = l.line();
  } while (line.find("\"ok\":") == std::string::npos && !line.empty() && line[0] == '{');
  return line;
}

struct ControlRig {
  std::unique_ptr<Rig> rig;
  std::filesystem::path socket;
  explicit ControlRig(const std::string& extra = "") {
    rig = std::make_unique<Rig>(fleet, std::vector<std::string>{}, "2s",
                                [&](std::string t) { return t + extra; });
    socket = rig->data_dir / "meterd.sock";
    rig->start();
    REQUIRE_MESSAGE(eventually([&] { return rig->all_read(3); }, 60s), rig->meterd->log_text());
  }
  nlohmann::json ask(const nlohmann::json& request) {
    LineClient l(socket);
    REQUIRE(l.ok());
    return nlohmann::json::parse(::ask(l, request));
  }
};

std::string truth_text(Metersim& sim, const std::string& meter, const std::string& quantity) {
  const auto t = sim.ctl({{"cmd", "truth"}, {"meter", meter}});
  REQUIRE_MESSAGE(t["values"].contains(quantity), t.dump());
  return t["values"][quantity].get<std::string>();
}

}  // namespace

// Catches: values rounded on the way (through double), counters that never
// move, a status that reports a bus up while it is down, latest values of
// the wrong meter, an on-demand read that waits for the schedule.
TEST_CASE("status, meters, read and backlog answer with the simulator's truth") {
  ControlRig c;
  auto& sim = c.rig->sim;
  const auto status = c.ask({{"verb", "status"}, {"id", 1}});
  REQUIRE_MESSAGE(status["ok"] == true, status.dump());
  CHECK(status["id"] == 1);
  const auto& s = status["result"];
  CHECK(s["gateway"] == "gw-sim");
  REQUIRE(s["buses"].size() == 1);
  CHECK(s["buses"][0]["state"] == "up");
  CHECK(s["buses"][0]["meters"] == 3);
  CHECK(s["buses"][0]["reads_ok"].get<int>() >= 3);
  CHECK(s["buses"][0]["utilisation"].get<double>() > 0.0);
  CHECK(s["buses"][0]["utilisation"].get<double>() <= 1.0);
  CHECK(s["meters"]["online"] == 3);
  CHECK(s["buffer"]["readings"].get<int>() > 0);
  CHECK(s["mqtt"]["state"] == "disconnected");  // the config names a broker nobody runs

  // meters: latest values are the meters' own digits.
  LineClient l(c.socket);
  const std::string raw = ask(l, {{"verb", "meters"}});
  const auto meters = nlohmann::json::parse(raw)["result"]["meters"];
  REQUIRE(meters.size() == 3);
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& m : meters) by_id[m["id"]] = m;
  CHECK(by_id["d1"]["protocol"] == "dlt645-2007");
  CHECK(by_id["d1"]["address"] == "000000000001");
  CHECK(by_id["s1"]["address"] == "7");
  CHECK(by_id["d1"]["state"] == "online");
  CHECK(by_id["d2"]["successes"].get<int>() >= 1);
  for (const auto& [meter, quantity] :
       std::vector<std::pair<std::string, std::string>>{{"d1", "energy.active.import.total"},
                                                        {"d1", "voltage.l1"},
                                                        {"d2", "energy.active.import.total"},
                                                        {"s1", "voltage.l1"}}) {
    const std::string v = truth_text(sim, meter, quantity);
    nlohmann::json latest;
    for (const auto& e : by_id[meter]["latest"])
      if (e["quantity"] == quantity) latest = e;
    REQUIRE_MESSAGE(latest.is_object(), meter << " has no latest " << quantity);
    // The entry's text in the raw answer carries exactly the meter's digits.
    const std::string text = "{\"quantity\":\"" + quantity + "\",\"ts\":\"" +
                             latest["ts"].get<std::string>() + "\",\"unit\":\"" +
                             latest["unit"].get<std::string>() + "\",\"value\":" + v + "}";
    CHECK_MESSAGE(raw.find(text) != std::string::npos, meter << ": " << text);
  }
  // Filters.
  CHECK(c.ask({{"verb", "meters"}, {"offline", true}})["result"]["meters"].empty());
  CHECK(c.ask({{"verb", "meters"}, {"bus", "nope"}})["error"]["code"] == "unknown_bus");

  // read: ahead of the schedule, exact.
  const std::string r = ask(l, {{"verb", "read"}, {"meter", "d2"}, {"quantities", {"voltage.l1"}}});
  INFO(r);
  CHECK(r.find("\"value\":" + truth_text(sim, "d2", "voltage.l1") + "}") != std::string::npos);
  CHECK(nlohmann::json::parse(r)["result"]["complete"] == true);
  CHECK(c.ask({{"verb", "read"}, {"meter", "zz"}})["error"]["code"] == "unknown_meter");

  // backlog agrees with the buffer file.
  const auto b = c.ask({{"verb", "backlog"}})["result"];
  CHECK(b["readings"].get<std::size_t>() > 0);
  CHECK(b["oldest_unsent"].is_string());
  CHECK(b["mqtt"] == "disconnected");
}

// Catches: an export that reads the live store on the loop (or through a
// second writer that takes its clean-stop marker), rows missing or doubled
// at a chunk boundary, a range that includes its end, a tail without seqs.
TEST_CASE("export returns exactly the stored rows of a range; tail follows new rows with seqs") {
  ControlRig c;
  REQUIRE(eventually([&] { return c.rig->meterd->readings().size() > 600; }, 60s));
  const auto stored = c.rig->meterd->readings();
  // A range in the middle: from the 100th reading's ts to the 500th's.
  const std::int64_t from = stored[100].ts_ms, to = stored[500].ts_ms;
  std::set<std::int64_t> expect;
  for (const auto& r : stored)
    if (r.meter == "d1" && r.ts_ms >= from && r.ts_ms < to) expect.insert(r.seq);
  REQUIRE(!expect.empty());
  LineClient l(c.socket);
  l.send(
      nlohmann::json{{"verb", "export"}, {"meter", "d1"}, {"from", from}, {"to", to}, {"id", "x"}}
          .dump() +
      "\n");
  std::set<std::int64_t> got;
  std::size_t rows = 0;
  std::string last;
  while ((last = l.line()).find("\"data\":") != std::string::npos) {
    const auto j = nlohmann::json::parse(last);
    CHECK(j["id"] == "x");
    CHECK(j["data"]["meter"] == "d1");
    got.insert(j["data"]["seq"].get<std::int64_t>());
    ++rows;
  }
  const auto fin = nlohmann::json::parse(last);
  REQUIRE_MESSAGE(fin["ok"] == true, last);
  CHECK(fin["result"]["rows"] == rows);
  CHECK(rows == got.size());  // no row twice
  CHECK(got == expect);

  // All meters, the whole buffer: at least every row stored before the ask.
  l.send("{\"verb\":\"export\"}\n");
  std::size_t all = 0;
  while (l.line().find("\"data\":") != std::string::npos) ++all;
  CHECK(all >= stored.size());

  // tail: rows arrive as they are stored, with the seqs they were stored under.
  LineClient t(c.socket);
  t.send("{\"verb\":\"tail\",\"meter\":\"s1\",\"quantity\":\"voltage.l1\"}\n");
  std::vector<std::int64_t> seqs;
  for (int i = 0; i < 2; ++i) {
    const auto j = nlohmann::json::parse(t.line());
    CHECK(j["data"]["meter"] == "s1");
    CHECK(j["data"]["quantity"] == "voltage.l1");
    seqs.push_back(j["data"]["seq"]);
  }
  CHECK(seqs[1] > seqs[0]);
  REQUIRE(eventually(
      [&] {
        for (const auto& r : c.rig->meterd->readings())
          if (r.seq == seqs[1]) return r.meter == "s1" && r.quantity == "voltage.l1";
        return false;
      },
      10s));
  CHECK(c.ask({{"verb", "tail"}, {"meter", "zz"}})["error"]["code"] == "unknown_meter");
}

// Catches: relay obeyed while switched off, a timesync that never reaches
// the bus, a reload that swaps in a broken config.
TEST_CASE("relay, timesync and reload through the socket") {
  ControlRig c;
  auto r = c.ask({{"verb", "relay"}, {"meter", "d1"}, {"action", "trip"}});
  CHECK(r["error"]["code"] == "disabled");
  CHECK(c.rig->sim.ctl({{"cmd", "relay"}, {"meter", "d1"}})["relay"] == "closed");
  r = c.ask({{"verb", "timesync"}});
  REQUIRE_MESSAGE(r["ok"] == true, r.dump());
  CHECK(r["result"]["buses"][0]["bus"] == "d");
  CHECK(c.ask({{"verb", "timesync"}, {"bus", "nope"}})["error"]["code"] == "unknown_bus");
  r = c.ask({{"verb", "reload"}});
  CHECK(r["result"]["reloaded"] == true);
  // A broken config is refused with its errors; the running one carries on.
  const std::string good = slurp(c.rig->config);
  std::ofstream(c.rig->config) << good << "\n[[meter]]\nid = \"broken\"\n";
  r = c.ask({{"verb", "reload"}});
  CHECK(r["error"]["code"] == "invalid");
  CHECK(r["error"]["message"].get<std::string>().find("meter") != std::string::npos);
  std::ofstream(c.rig->config) << good;
  CHECK(c.ask({{"verb", "status"}})["result"]["meters"]["total"] == 3);
}

TEST_CASE("relay through the socket when enabled: the simulator's relay opens and closes") {
  // Catches: the socket path skipping the meter's password, or an audit
  // event missing for a local command.
  TempDir keys;
  const auto key = keys.path / "cmd.key";
  std::ofstream(key) << "local-test-key";
  ::chmod(key.c_str(), 0600);
  ControlRig c("\n[commands]\nrelay_control = true\nhmac_key_file = \"" + key.string() + "\"\n");
  // d1's password is set by editing the meter (the simulator's default is level 02, 000000).
  const std::string text =
      std::regex_replace(slurp(c.rig->config), std::regex("(address = \"000000000001\"\n)"),
                         "$1password = \"02000000\"\n");
  std::ofstream(c.rig->config) << text;
  REQUIRE(c.ask({{"verb", "reload"}})["ok"] == true);
  auto r = c.ask({{"verb", "relay"}, {"meter", "d1"}, {"action", "trip"}});
  REQUIRE_MESSAGE(r["ok"] == true, r.dump());
  CHECK(r["result"]["relay"] == "open");
  CHECK(c.rig->sim.ctl({{"cmd", "relay"}, {"meter", "d1"}})["relay"] == "open");
  r = c.ask({{"verb", "relay"}, {"meter", "d1"}, {"action", "close"}});
  CHECK(r["result"]["relay"] == "closed");
  CHECK(c.rig->sim.ctl({{"cmd", "relay"}, {"meter", "d1"}})["relay"] == "closed");
  r = c.ask({{"verb", "relay"}, {"meter", "d2"}, {"action", "trip"}});
  CHECK(r["error"]["code"] == "unsupported");  // a 1997 meter has no 1CH
  REQUIRE(eventually(
      [&] {
        int n = 0;
        for (const auto& e : c.rig->meterd->events())
          if (e.type == "command.relay" &&
              e.payload.find("\"source\":\"control\"") != std::string::npos)
            ++n;
        return n == 2;  // trip and close; the refused 1997 relay never reached the bus
      },
      10s));
}

// Catches: a parser that crashes on junk, a connection that is never
// answered, a loop blocked by clients that do not read, unbounded
// connections, polling that stops while the socket is hammered.
TEST_CASE(
    "a flood of malformed and concurrent requests: every one answered or refused, polling "
    "goes on") {
  ControlRig c;
  const auto reads_before =
      c.ask({{"verb", "status"}})["result"]["buses"][0]["reads_ok"].get<int>();
  std::mt19937 rng(42);
  const std::vector<std::string> junk = {"not json",
                                         "{",
                                         "[]",
                                         "null",
                                         "{\"verb\":1}",
                                         "{\"verb\":\"status\",\"verb\":\"x\"}",
                                         "{\"verb\":\"read\"}",
                                         "{\"verb\":\"read\",\"meter\":\"d1\",\"quantities\":[1]}",
                                         "{\"verb\":\"export\",\"from\":\"soon\"}",
                                         "{\"verb\":\"scan\",\"bus\":\"d\",\"first\":0}",
                                         "\xff\xfe\x00garbage",
                                         "{\"verb\":\"status\",\"id\":\"\xff\"}",
                                         "{\"verb\":\"backlog\"}",
                                         "{\"verb\":\"meters\"}",
                                         "{\"verb\":\"status\"}"};
  // A client with a slot of its own before the flood, for the over-long line.
  LineClient big(c.socket);
  REQUIRE(big.ok());
  REQUIRE(ask(big, {{"verb", "status"}}).find("\"ok\":true") != std::string::npos);
  constexpr int clients = 40;  // more than the 32 served at once
  std::vector<std::thread> threads;
  std::atomic<int> answered{0}, refused_busy{0}, unanswered{0}, requests{0};
  for (int i = 0; i < clients; ++i) {
    std::vector<std::string> lines;
    for (int k = 0; k < 25; ++k) lines.push_back(junk[rng() % junk.size()]);
    threads.emplace_back([&, lines] {
      LineClient l(c.socket);
      if (!l.ok()) {
        ++unanswered;
        return;
      }
      // Everything in one write, as a burst.
      std::string burst;
      for (const auto& x : lines) burst += x + "\n";
      l.send(burst);
      for (std::size_t k = 0; k < lines.size(); ++k) {
        const std::string a = l.line(60s);
        if (a.find("\"code\":\"busy\"") != std::string::npos) {
          ++refused_busy;
          return;
        }
        auto j = nlohmann::json::parse(a, nullptr, false);
        if (j.is_discarded() || !j.contains("ok")) {
          ++unanswered;
          return;
        }
        ++answered;
        ++requests;
      }
    });
  }
  // Meanwhile that client sends a line longer than the limit.
  big.send(std::string(70 * 1024, 'x'));
  for (auto& t : threads) t.join();
  const std::string refusal = big.line();
  CHECK_MESSAGE(refusal.find("\"code\":\"malformed\"") != std::string::npos, refusal);
  CHECK(big.line() == "<eof>");
  CHECK(unanswered == 0);
  CHECK(answered.load() == (clients - refused_busy.load()) * 25);
  // The daemon is alive and still polling.
  REQUIRE(eventually(
      [&] {
        const auto s = c.ask({{"verb", "status"}});
        return s["result"]["buses"][0]["reads_ok"].get<int>() > reads_before + 3;
      },
      30s));
  CHECK(c.rig->meterd->proc->running());
}
