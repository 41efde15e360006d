// System tier: meterctl's direct mode (probe, scan, modbus) as a process on
// metersim's buses, wire timing and collisions on. The scans run at 9600
// baud to keep the suite quick; docs/scan.md has the 2400 baud figures.
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include <doctest/doctest.h>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "firmware/config.hpp"
#include "tests/support/metersim.hpp"
#include "tests/support/rig.hpp"
#include "tests/support/system.hpp"

using namespace meterd;
using namespace meterd::testing;

namespace {

ShellRun meterctl(const std::string& args) {
  return run_shell(std::string(METERD_BIN_DIR) + "/meterctl " + args);
}

std::string addr(unsigned n) {
  std::string s = std::to_string(n);
  return std::string(12 - s.size(), '0') + s;
}

// The config meterctl printed, pasted under a gateway and the bus.
void loads(const std::string& toml, const std::string& bus, std::size_t meters) {
  const std::string text = "[gateway]\nid = \"gw\"\ndata_dir = \"/data\"\n[[bus]]\nname = \"" +
                           bus + "\"\nport = \"/dev/ttyS1\"\n\n" + toml;
  const auto r = firmware::parse_config(text, "meterd.toml");
  for (const auto& e : r.errors) MESSAGE(e.to_string());
  REQUIRE(r.config);
  CHECK(r.config->meters.size() == meters);
}

}  // namespace

TEST_CASE("scan: 16 DL/T 645 meters on one multi-drop bus, 2007 and 1997, exactly") {
  // Catches: stopping at the first frame or treating the collided answers of
  // read-address as nobody; counting a meter twice; inventing a meter out
  // of overlapping answers; missing the 1997 meters.
  std::string toml = "static = true\n" + bus_toml("b1", 9600, "even");
  std::map<std::string, std::string> want;  // address -> protocol
  for (unsigned i = 1; i <= 16; ++i) {
    // Spread over the address space; 1997 meters among them.
    const std::string a = addr(i * 1000000 + i * 7919 % 100 * 100 + i * 37 % 100);
    const std::string protocol = i % 5 == 0 ? "dlt645-1997" : "dlt645-2007";
    toml += meter_toml("m" + std::to_string(i), "b1", protocol, a);
    want[a] = protocol;
  }
  Metersim sim(toml);
  const auto r =
      meterctl("--port " + sim.bus_path() + " --baud 9600 --response-timeout-ms 250 scan --json");
  INFO(r.err);
  REQUIRE(r.status == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["ok"] == true);
  std::map<std::string, std::string> got;
  for (const auto& m : j["found"]) {
    CHECK(got.count(m["address"].get<std::string>()) == 0);
    got[m["address"].get<std::string>()] = m["protocol"].get<std::string>();
  }
  CHECK(got == want);
  CHECK(j["warnings"].empty());
  MESSAGE("16 meters at 9600 baud: " << j["seconds"] << " s, " << j["probes"] << " probes");
  // The collisions really happened on the wire.
  CHECK(sim.bus_stats()["collisions"].get<int>() > 0);
  loads(j["config"].get<std::string>(), j["bus"].get<std::string>(), 16);
}

TEST_CASE("scan: a lone meter is found by read-address, probe reads it with its unit") {
  Metersim sim("static = true\n" + bus_toml("b1", 2400, "even") +
               meter_toml("m1", "b1", "dlt645-2007", "314159265358"));
  const auto r = meterctl("--port " + sim.bus_path() + " --response-timeout-ms 600 scan --json");
  INFO(r.err);
  REQUIRE(r.status == 0);
  const auto j = nlohmann::json::parse(r.out);
  REQUIRE(j["found"].size() == 1);
  CHECK(j["found"][0]["address"] == "314159265358");
  CHECK(j["found"][0]["profile"] == "dlt645-basic");
  CHECK(j["probes"] == 2);  // read-address, then the read that confirms it

  // Human form: the table, then the [[meter]] table.
  const auto h = meterctl("--port " + sim.bus_path() + " --response-timeout-ms 600 scan");
  CHECK(h.status == 0);
  CHECK(h.out.find("314159265358  dlt645-2007") != std::string::npos);
  CHECK(h.out.find("[[meter]]\nid = ") != std::string::npos);
  CHECK(h.err.find('\r') == std::string::npos);  // no progress bar when stderr is not a terminal

  const auto p =
      meterctl("--port " + sim.bus_path() + " probe --address 314159265358 --di 00010000 --json");
  REQUIRE(p.status == 0);
  const auto pj = nlohmann::json::parse(p.out);
  const auto truth = sim.ctl({{"cmd", "read"}, {"meter", "m1"}, {"di", "00010000"}});
  REQUIRE(pj["values"].size() == 1);
  CHECK(pj["values"][0]["value"] == truth["values"][0]["value"]);
  CHECK(pj["values"][0]["unit"] == "kWh");
  const auto t =
      meterctl("--port " + sim.bus_path() + " probe --address 314159265358 --di 00010000");
  CHECK(t.out.find("energy.active.import.total = " +
                   truth["values"][0]["value"].get<std::string>() + " kWh") != std::string::npos);
  // Nobody at that address: exit 1, one line.
  const auto none = meterctl("--port " + sim.bus_path() +
                             " --response-timeout-ms 300 probe --address 1 --di 00010000");
  CHECK(none.status == 1);
  CHECK(none.err.find("no answer from 000000000001") != std::string::npos);
}

TEST_CASE("scan: Modbus RTU units 1, 7, 200 with their profiles; modbus --read decodes") {
  // Catches: a scan that takes an exception or a slow Eastron for absence,
  // or guesses the profile from the unit id.
  std::string toml = "static = true\n" + bus_toml("mb", 9600, "none");
  toml += meter_toml("u1", "mb", "modbus", "1", "model = \"sdm630\"\nturnaround_ms = 20\n");
  toml += meter_toml("u7", "mb", "modbus", "7", "model = \"sdm120\"\nturnaround_ms = 20\n");
  toml += meter_toml("u200", "mb", "modbus", "200", "model = \"dtsu666\"\nturnaround_ms = 20\n");
  Metersim sim(toml);
  const std::string port = "--port " + sim.bus_path() + " --baud 9600 --parity none";
  const auto r = meterctl(port + " --response-timeout-ms 100 scan --protocol modbus --json");
  INFO(r.err);
  REQUIRE(r.status == 0);
  const auto j = nlohmann::json::parse(r.out);
  std::map<std::string, std::string> got;
  for (const auto& m : j["found"]) got[m["address"]] = m["profile"];
  CHECK(got ==
        std::map<std::string, std::string>{{"1", "sdm630"}, {"7", "sdm120"}, {"200", "dtsu666"}});
  loads(j["config"].get<std::string>(), "mb", 3);

  const auto truth = sim.ctl({{"cmd", "truth"}, {"meter", "u1"}});
  const auto m = meterctl(port + " modbus --unit 1 --read 4:0x0000:2:float --json");
  REQUIRE(m.status == 0);
  const auto mj = nlohmann::json::parse(m.out);
  // The float printed is the shortest text of the float32 the meter sent,
  // the same text metersim's truth gives for that register.
  CHECK(mj["reads"][0]["values"][0].dump() == truth["values"]["voltage.l1"].get<std::string>());
  const auto x = meterctl(port + " modbus --unit 200 --read 3:0x0000:1:u16");
  CHECK(x.status == 0);
  CHECK(x.out == "0x0000  204\n");  // DTSU666 REV.
  const auto bad = meterctl(port + " modbus --unit 1 --read 4:0x0001:2:float");
  CHECK(bad.status == 1);  // Eastron: odd start, exception 02
  CHECK(bad.err.find("exception 02") != std::string::npos);
  CHECK(meterctl(port + " modbus --unit 1 --read 4:0:3:float").status == 2);
}

TEST_CASE("direct mode refuses a port another process holds: exit 4") {
  // Catches: opening a bus meterd drives (two masters on one line).
  Metersim sim("static = true\n" + bus_toml("b1", 9600, "even") +
               meter_toml("m1", "b1", "dlt645-2007", "000000000001"));
  const std::string path = sim.bus_path();
  // Another process's lock, as meterd's bus worker takes it (flock on the
  // tty; this test process is that other process).
  const int holder = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK);
  REQUIRE(holder >= 0);
  const bool held = ::flock(holder, LOCK_EX | LOCK_NB) == 0;
  REQUIRE(held);
  for (const char* cmd : {" probe --address 000000000001 --di 00010000", " scan",
                          " modbus --unit 1 --read 3:0:1:u16"}) {
    const auto r = meterctl("--port " + path + " --baud 9600" + cmd);
    CHECK(r.status == 4);
    CHECK(r.err.find("held by another process") != std::string::npos);
  }
  ::close(holder);  // released: the port is free again
  CHECK(meterctl("--port " + path + " --baud 9600 probe --address 000000000001 --di 00010000")
            .status == 0);
}
