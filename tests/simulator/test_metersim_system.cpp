// System tier: the real metersim process, its ptys, its TCP port and its
// control socket, talked to as a gateway and a test harness would. Frames
// are built with the codec and checked byte by byte where it matters;
// Modbus values are cross-checked with mbpoll, a master nobody here wrote.
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>

#include <doctest/doctest.h>
#include <poll.h>
#include <toml++/toml.h>
#include <unistd.h>

#include "protocol/decimal.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/frame.hpp"
#include "protocol/dlt645/requests.hpp"
#include "protocol/dlt645/values.hpp"
#include "protocol/modbus_codec/pdu.hpp"
#include "protocol/modbus_codec/tcp.hpp"
#include "tests/support/metersim.hpp"
#include "tests/support/system.hpp"

using namespace meterd;
using namespace meterd::testing;
namespace dlt = meterd::protocol::dlt645;
namespace mb = meterd::protocol::modbus;
using namespace std::chrono_literals;

namespace {

using Sim = Metersim;

std::vector<std::uint8_t> read_request(const std::string& address, std::uint32_t di) {
  return dlt::encode(dlt::request::read(*dlt::Address::parse(address), di), 4);
}

dlt::DecodeResult decoded(const Serial::Answer& a) { return dlt::decode(a.bytes); }

double ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

bool is_answer(const std::vector<std::uint8_t>& b) { return dlt645_complete(b); }

}  // namespace

TEST_CASE(
    "multi-drop: 32 meters on one bus, each answers only its own address, with its true value") {
  Sim sim("", {"--dlt645-2007", "32", "--buses", "1", "--baud", "9600", "--static"});
  REQUIRE(sim.endpoints["buses"][0]["meters"].size() == 32);
  Serial port(sim.bus_path(), 9600);
  for (const auto& m : sim.endpoints["buses"][0]["meters"]) {
    const std::string address = m["address"];
    CAPTURE(address);
    const auto a = port.transact(read_request(address, 0x00010000), 1000ms, is_answer);
    const auto r = decoded(a);
    REQUIRE(r.status == dlt::DecodeStatus::frame);
    CHECK(r.frame.address.to_string() == address);
    CHECK(r.frame.control == 0x91);
    const auto truth = sim.ctl({{"cmd", "read"}, {"meter", m["id"]}, {"di", "00010000"}});
    REQUIRE(truth["ok"] == true);
    // The answer's BCD, written out here: value text without the point, low byte first.
    std::string digits = truth["values"][0]["value"];
    digits.erase(digits.find('.'), 1);
    digits.insert(0, 8 - digits.size(), '0');
    std::vector<std::uint8_t> expect{0x00, 0x00, 0x01, 0x00};
    for (int i = 3; i >= 0; --i)
      expect.push_back(
          static_cast<std::uint8_t>((digits[i * 2] - '0') << 4 | (digits[i * 2 + 1] - '0')));
    CHECK(r.frame.data == expect);
    CHECK(r.consumed == a.bytes.size());  // nobody else talked
  }
  // A 33rd address: silence.
  const auto none = port.transact(read_request("000000000099", 0x00010000), 300ms, is_answer);
  CHECK(none.bytes.empty());
}

TEST_CASE("wire timing: no answer before the request and the answer could cross the wire") {
  TempDir cfg;
  {
    std::ofstream f(cfg.path / "sim.toml");
    f << "seed = 3\n[[bus]]\nname = \"b1\"\nbaud = 2400\nparity = \"even\"\n"
         "[[meter]]\nid = \"m1\"\nbus = \"b1\"\nprotocol = \"dlt645-2007\"\naddress = "
         "\"000000000001\"\n"
         "turnaround_ms = 50\n";
  }
  Sim sim("", {"--config", (cfg.path / "sim.toml").string()});
  Serial port(sim.bus_path(), 2400);
  const double char_ms = 11.0 * 1000 / 2400;  // 8E1: 11 bits a character
  for (std::uint32_t di : {0x00010000u, 0x0001FF00u, 0x0201FF00u}) {
    const auto req = read_request("000000000001", di);
    const auto a = port.transact(req, 2000ms, is_answer);
    REQUIRE(decoded(a).status == dlt::DecodeStatus::frame);
    const double first_min = req.size() * char_ms + 50 + char_ms;
    const double last_min = (req.size() + a.bytes.size()) * char_ms + 50;
    MESSAGE("DI ", dlt::di_to_string(dlt::Version::v2007, di), ": ", req.size(), "+",
            a.bytes.size(), " bytes, first byte ", ms(a.first_byte), " ms (>= ", first_min,
            "), last byte ", ms(a.last_byte), " ms (>= ", last_min, ")");
    // Lower bounds are the simulator's guarantee (2 ms: its release tick).
    CHECK(ms(a.first_byte) >= first_min - 3);
    CHECK(ms(a.last_byte) >= last_min - 3);
    // Upper bound: generous, this machine is shared and noisy.
    CHECK(ms(a.last_byte) <= last_min + 400);
  }
}

TEST_CASE("fault switches, each seen on the wire") {
  Sim sim("",
          {"--dlt645-2007", "2", "--buses", "1", "--baud", "9600", "--no-wire-timing", "--static"});
  Serial port(sim.bus_path(), 9600);
  const std::string addr = "000000000001";
  const auto ask = [&](std::chrono::milliseconds timeout = 500ms) {
    port.drain(20ms);
    return port.transact(read_request(addr, 0x00010000), timeout, is_answer);
  };
  const auto fault = [&](nlohmann::json f) {
    REQUIRE(sim.ctl({{"cmd", "clear_faults"}, {"meter", "m0001"}})["ok"] == true);
    if (!f.is_null())
      REQUIRE(sim.ctl({{"cmd", "fault"}, {"meter", "m0001"}, {"faults", f}})["ok"] == true);
  };
  SUBCASE("baseline answers") { CHECK(decoded(ask()).status == dlt::DecodeStatus::frame); }
  SUBCASE("drop") {
    fault({{"drop", 1.0}});
    CHECK(ask(300ms).bytes.empty());
  }
  SUBCASE("corrupt: bad checksum") {
    fault({{"corrupt", 1.0}});
    const auto r = decoded(ask());
    REQUIRE(r.status == dlt::DecodeStatus::error);
    CHECK(r.error == dlt::FrameError::bad_checksum);
  }
  SUBCASE("noise before the answer") {
    fault({{"noise", 12}});
    const auto a = ask();
    const auto r = decoded(a);
    REQUIRE(r.status == dlt::DecodeStatus::frame);
    CHECK(r.skipped >= 12);
  }
  SUBCASE("wrong address") {
    fault({{"wrong_address", true}});
    const auto r = decoded(ask());
    REQUIRE(r.status == dlt::DecodeStatus::frame);
    CHECK(r.frame.address.to_string() != addr);
  }
  SUBCASE("truncated") {
    fault({{"truncate", 1.0}});
    const auto a = ask(300ms);
    CHECK_FALSE(a.bytes.empty());
    CHECK(decoded(a).status == dlt::DecodeStatus::need_more);
  }
  SUBCASE("delay beyond a timeout") {
    fault({{"delay_ms", 600}});
    CHECK(ask(300ms).bytes.empty());  // a 300 ms timeout sees nothing
    port.drain(500ms);
    const auto a = ask(1500ms);
    CHECK(ms(a.first_byte) >= 590);
  }
  SUBCASE("offline and back") {
    REQUIRE(sim.ctl({{"cmd", "offline"}, {"meter", "m0001"}})["online"] == false);
    CHECK(ask(300ms).bytes.empty());
    sim.ctl({{"cmd", "online"}, {"meter", "m0001"}});
    CHECK(ask(200ms).bytes.empty());              // powering up (2 s by default)
    sim.ctl({{"cmd", "advance"}, {"ms", 2000}});  // simulated time, not a sleep
    CHECK(decoded(ask()).status == dlt::DecodeStatus::frame);
  }
  SUBCASE("power cycle: silent while off, one more power-down record after") {
    const auto before =
        sim.ctl({{"cmd", "truth"}, {"meter", "m0001"}})["counters"]["power_down"].get<int>();
    sim.ctl({{"cmd", "power_cycle"}, {"meter", "m0001"}, {"off_ms", 400}});
    CHECK(ask(200ms).bytes.empty());
    sim.ctl({{"cmd", "advance"}, {"ms", 400}});   // simulated time, not a sleep
    CHECK(ask(200ms).bytes.empty());              // on again, still booting
    sim.ctl({{"cmd", "advance"}, {"ms", 2000}});  // the default power-up delay
    CHECK(decoded(ask()).status == dlt::DecodeStatus::frame);
    CHECK(sim.ctl({{"cmd", "truth"}, {"meter", "m0001"}})["counters"]["power_down"] == before + 1);
  }
  SUBCASE("a bus-wide fault reaches every meter") {
    sim.ctl({{"cmd", "fault"}, {"bus", "rs485-1"}, {"faults", {{"drop", 1.0}}}});
    CHECK(ask(300ms).bytes.empty());
    sim.ctl({{"cmd", "clear_faults"}, {"bus", "rs485-1"}});
    CHECK(decoded(ask()).status == dlt::DecodeStatus::frame);
  }
  SUBCASE("a bad fault is refused with a reason") {
    const auto r = sim.ctl({{"cmd", "fault"}, {"meter", "m0001"}, {"faults", {{"drop", 2}}}});
    CHECK(r["ok"] == false);
    CHECK(r["error"] == "fault: drop: expected a fraction 0..1");
  }
}

TEST_CASE("the pty vanishes like an unplugged adapter and comes back") {
  Sim sim("", {"--dlt645-2007", "1", "--baud", "9600", "--no-wire-timing"});
  const std::string path = sim.bus_path();
  {
    Serial port(path, 9600);
    CHECK(
        decoded(port.transact(read_request("000000000001", 0x00010000), 500ms, is_answer)).status ==
        dlt::DecodeStatus::frame);
  }
  REQUIRE(sim.ctl({{"cmd", "vanish"}, {"bus", "rs485-1"}})["present"] == false);
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK_THROWS(Serial(path, 9600));
  REQUIRE(sim.ctl({{"cmd", "reappear"}, {"bus", "rs485-1"}})["present"] == true);
  Serial again(path, 9600);
  CHECK(
      decoded(again.transact(read_request("000000000001", 0x00010000), 500ms, is_answer)).status ==
      dlt::DecodeStatus::frame);
}

TEST_CASE("read-address: alone on the bus it answers, with company the answers collide") {
  Sim alone("", {"--dlt645-2007", "1", "--baud", "9600", "--no-wire-timing"});
  Serial p1(alone.bus_path(), 9600);
  const auto a = p1.transact(dlt::encode(dlt::request::read_address(), 4), 500ms, is_answer);
  const auto r = decoded(a);
  REQUIRE(r.status == dlt::DecodeStatus::frame);
  CHECK(r.frame.control == 0x93);
  CHECK(r.frame.address.to_string() == "000000000001");

  Sim crowd("", {"--dlt645-2007", "3", "--baud", "9600", "--no-wire-timing"});
  Serial p3(crowd.bus_path(), 9600);
  const auto c = p3.transact(dlt::encode(dlt::request::read_address(), 4), 300ms, is_answer);
  CHECK_FALSE(c.bytes.empty());
  const auto items = dlt::decode_all(c.bytes);
  for (const auto& i : items) CHECK(i.result.status != dlt::DecodeStatus::frame);
  CHECK(crowd.ctl({{"cmd", "stats"}})["buses"]["rs485-1"]["collisions"] == 1);
}

TEST_CASE("control channel: advance simulated time, clock commands, events, relay") {
  Sim sim("", {"--dlt645-2007", "1", "--dlt645-1997", "1", "--baud", "9600", "--no-wire-timing"});
  const auto e0 = sim.ctl({{"cmd", "read"}, {"meter", "m0001"}, {"di", "00010000"}});
  const auto adv = sim.ctl({{"cmd", "advance"}, {"ms", 86400000}});
  CHECK(adv["offset_ms"] == 86400000);
  const auto e1 = sim.ctl({{"cmd", "read"}, {"meter", "m0001"}, {"di", "00010000"}});
  const auto energy = [](const nlohmann::json& r) {
    return *protocol::parse_decimal(r["values"][0]["value"].get<std::string>());
  };
  CHECK(energy(e1).exponent == energy(e0).exponent);
  CHECK(energy(e1).mantissa > energy(e0).mantissa);
  CHECK(sim.ctl({{"cmd", "set_clock"},
                 {"meter", "m0001"},
                 {"time", "2030-01-01T00:00:00"}})["meter_time"] == "2030-01-01T00:00:00");
  CHECK(sim.ctl({{"cmd", "open_cover"}, {"meter", "m0001"}, {"duration_ms", 1000}})["ok"] == true);
  const auto ev = sim.ctl({{"cmd", "events"}, {"meter", "m0001"}});
  CHECK(ev["events"]["meter_cover_open"].size() >= 1);
  CHECK(ev["events"]["time_adjust"].size() >= 2);
  CHECK(sim.ctl({{"cmd", "relay"}, {"meter", "m0001"}})["relay"] == "closed");
  CHECK(sim.ctl({{"cmd", "read"}, {"meter", "m0002"}, {"di", "B611"}})["values"][0]["unit"] == "V");
  CHECK(sim.ctl({{"cmd", "nonsense"}, {"meter", "m0001"}})["error"] ==
        "unknown command 'nonsense'");
  CHECK(sim.ctl({{"cmd", "truth"}, {"meter", "nope"}})["ok"] == false);
}

TEST_CASE("mbpoll reads SDM630 registers over TCP and over a pty and gets the ground truth") {
  Sim sim("", {"--modbus-rtu", "1", "--modbus-tcp", "1", "--baud", "9600", "--static"});
  const auto run = [](const std::string& cmd) {
    std::string out;
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    REQUIRE(p);
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    ::pclose(p);
    return out;
  };
  // mbpoll prints "[1]: \t220" for register 1 (protocol address 0).
  const auto values = [](const std::string& out) {
    std::map<int, double> v;
    std::size_t at = 0;
    while ((at = out.find("\n[", at)) != std::string::npos) {
      int ref = 0;
      double x = 0;
      if (std::sscanf(out.c_str() + at + 1, "[%d]: %lf", &ref, &x) == 2) v[ref] = x;
      ++at;
    }
    return v;
  };
  const auto check = [&](const std::string& meter, const std::string& output) {
    const auto truth = sim.ctl({{"cmd", "truth"}, {"meter", meter}})["values"];
    const auto got = values(output);
    REQUIRE_MESSAGE(got.size() == 6, output);
    const char* q[] = {"voltage.l1", "voltage.l2", "voltage.l3",
                       "current.l1", "current.l2", "current.l3"};
    for (int k = 0; k < 6; ++k) {
      CAPTURE(q[k]);
      // mbpoll prints floats with 6 significant digits; the truth is the
      // shortest decimal of the same float, so they agree to that precision.
      CHECK(got.at(1 + 2 * k) ==
            doctest::Approx(std::stod(truth[q[k]].get<std::string>())).epsilon(1e-6));
    }
  };
  const std::string tcp_port = std::to_string(sim.endpoints["tcp"][0]["port"].get<int>());
  check("m0002",
        run("mbpoll -m tcp -a 1 -p " + tcp_port + " -B -t 3:float -r 1 -c 6 -1 127.0.0.1"));
  check("m0001",
        run("mbpoll -m rtu -b 9600 -P even -a 1 -B -t 3:float -r 1 -c 6 -1 " + sim.bus_path()));
  // The SDM630 quirk: an odd start address is refused (exception 02).
  const auto odd =
      run("mbpoll -m tcp -a 1 -p " + tcp_port + " -B -t 3:float -r 2 -c 2 -1 127.0.0.1");
  CHECK(odd.find("Illegal data address") != std::string::npos);
}

TEST_CASE("sim.toml errors name file, line and key; bad flags exit 2") {
  TempDir d;
  {
    std::ofstream f(d.path / "bad.toml");
    f << "seed = 1\n[[bus]]\nname = \"b1\"\nbaud = 2401\n";
  }
  const std::string out_file = (d.path / "out.txt").string();
  const int st = std::system((std::string(METERD_BIN_DIR) + "/metersim --config " +
                              (d.path / "bad.toml").string() + " >" + out_file + " 2>&1")
                                 .c_str());
  CHECK(WEXITSTATUS(st) == 2);
  std::ifstream in(out_file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("bad.toml:4: baud: not a standard rate") != std::string::npos);
  CHECK(WEXITSTATUS(
            std::system((std::string(METERD_BIN_DIR) + "/metersim >/dev/null 2>&1").c_str())) == 2);
}

TEST_CASE("--gateway-config writes a meterd config (docs/contracts.md) for exactly this fleet") {
  TempDir d;
  const auto cfg = d.path / "meterd.toml";
  Sim sim("", {"--dlt645-2007", "2", "--dlt645-1997", "1", "--modbus-rtu", "1", "--modbus-tcp", "1",
               "--buses", "2", "--gateway-config", cfg.string(), "--gateway-id", "gw-test"});
  REQUIRE(std::filesystem::exists(cfg));
  const toml::table t = toml::parse_file(cfg.string());
  CHECK(t["gateway"]["id"].value_or(std::string()) == "gw-test");
  CHECK(t["gateway"]["data_dir"].is_string());
  CHECK(t["gateway"]["control_socket"].is_string());
  CHECK(t["buffer"]["max_readings"].value_or(0) == 10000000);
  CHECK(t["mqtt"]["topic_prefix"].value_or(std::string()) == "meterd/gw-test");
  for (const char* k : {"host", "port", "batch_max", "linger_ms", "inflight_max"})
    CHECK(t["mqtt"][k]);
  const auto* buses = t["bus"].as_array();
  REQUIRE(buses);
  CHECK(buses->size() == 3);  // two RS-485 buses and one TCP converter
  std::set<std::string> bus_names;
  for (const auto& b : *buses) {
    const auto& bt = *b.as_table();
    bus_names.insert(bt["name"].value_or(std::string()));
    CHECK((bt["port"].is_string() || bt["tcp"].is_string()));
    if (bt["port"]) {
      CHECK(std::filesystem::exists(bt["port"].value_or(std::string())));
      CHECK(bt["parity"].value_or(std::string()) == "even");
      CHECK(bt["baud"].value_or(0) == 2400);
    }
  }
  const auto* meters = t["meter"].as_array();
  REQUIRE(meters);
  CHECK(meters->size() == 5);
  for (const auto& m : *meters) {
    const auto& mt = *m.as_table();
    for (const char* k : {"id", "bus", "protocol", "address", "profile", "interval"})
      CHECK_MESSAGE(mt[k], k);
    CHECK(bus_names.count(mt["bus"].value_or(std::string())) == 1);
  }
}

TEST_CASE("Modbus TCP converter: several units behind one port, and its fault switches") {
  Sim sim("", {"--modbus-tcp", "3", "--static"});
  const int port = sim.endpoints["tcp"][0]["port"];
  REQUIRE(sim.endpoints["tcp"][0]["meters"].size() == 3);
  const auto req = [](std::uint8_t unit) {
    return mb::encode_tcp(mb::request::read_input(unit, 0x0000, 2), 0x1234);  // SDM630 V1 (unit 1)
  };
  // The SDM630 needs a silent gap between requests: let simulated time pass.
  const auto ask1 = [&](int timeout_ms) {
    sim.ctl({{"cmd", "advance"}, {"ms", 100}});
    return modbus_tcp_ask(port, req(1), std::chrono::milliseconds(timeout_ms));
  };
  auto r = mb::decode_tcp(ask1(1000));
  REQUIRE(r.status == mb::DecodeStatus::frame);
  CHECK(r.header.transaction == 0x1234);
  CHECK_FALSE(r.pdu.is_exception());
  // A unit nobody has: "gateway target failed to respond".
  r = mb::decode_tcp(modbus_tcp_ask(port, req(9), 1000ms));
  REQUIRE(r.status == mb::DecodeStatus::frame);
  CHECK(r.pdu.function == 0x84);
  CHECK(r.pdu.data == std::vector<std::uint8_t>{0x0B});
  // Converter-wide: a corrupted RS-485 answer becomes exception 0B.
  REQUIRE(sim.ctl({{"cmd", "fault"}, {"bus", "tcp-1"}, {"faults", {{"corrupt", 1.0}}}})["ok"] ==
          true);
  r = mb::decode_tcp(ask1(1000));
  REQUIRE(r.status == mb::DecodeStatus::frame);
  CHECK(r.pdu.data == std::vector<std::uint8_t>{0x0B});
  // Dropped answers: nothing comes back.
  sim.ctl({{"cmd", "fault"}, {"bus", "tcp-1"}, {"faults", {{"corrupt", 0.0}, {"drop", 1.0}}}});
  CHECK(ask1(300).empty());
  sim.ctl({{"cmd", "clear_faults"}, {"bus", "tcp-1"}});
  // Per meter: wrong unit id in the answer.
  sim.ctl({{"cmd", "fault"}, {"meter", "m0001"}, {"faults", {{"wrong_address", true}}}});
  r = mb::decode_tcp(ask1(1000));
  REQUIRE(r.status == mb::DecodeStatus::frame);
  CHECK(r.pdu.unit != 1);
  // An offline meter behind the converter: exception 0B, as a converter's RS-485 timeout.
  sim.ctl({{"cmd", "clear_faults"}, {"meter", "m0001"}});
  sim.ctl({{"cmd", "offline"}, {"meter", "m0001"}});
  r = mb::decode_tcp(ask1(1000));
  REQUIRE(r.status == mb::DecodeStatus::frame);
  CHECK(r.pdu.data == std::vector<std::uint8_t>{0x0B});
}
