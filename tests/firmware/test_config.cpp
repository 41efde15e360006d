// The config loader (firmware/config.hpp): the contract's keys and their
// defaults, every bad value reported as file:line: key: problem with the
// right line, all errors at once, and the config metersim --gateway-config
// writes for a fleet accepted as it is.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

#include "firmware/config.hpp"
#include "tests/support/metersim.hpp"

using namespace meterd;
using namespace meterd::firmware;
using namespace std::chrono_literals;

namespace {

std::string all_errors(const LoadResult& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.to_string() + "\n";
  return s;
}

// The contract example of docs/contracts.md, line for line (line 1 is
// "[gateway]"), with a Modbus bus and meter added after it.
const std::string contract = R"([gateway]
id = "gw-0001"
data_dir = "/var/lib/meterd"
control_socket = "/run/meterd/meterd.sock"

[buffer]
max_readings = 10000000

[mqtt]
host = "127.0.0.1"
port = 1883
topic_prefix = "meterd/gw-0001"
batch_max = 500
linger_ms = 200
inflight_max = 32

[[bus]]
name = "rs485-1"
port = "/dev/ttyS1"
baud = 2400
parity = "even"
data_bits = 8
stop_bits = 1
response_timeout_ms = 1000
byte_timeout_ms = 500
retries = 1

[[meter]]
id = "m0001"
bus = "rs485-1"
protocol = "dlt645-2007"
address = "000000000001"
profile = "dlt645-basic"
interval = "15m"

[commands]
relay_control = false
hmac_key_file = "/etc/meterd/cmd.key"
)";

// A small valid config; the tests append a broken part and know its lines.
// Lines 1..12 here.
const std::string base = R"([gateway]
id = "gw"
data_dir = "/data"
[[bus]]
name = "b1"
port = "/dev/ttyS1"
[[bus]]
name = "t1"
tcp = "10.0.0.5:502"
[[meter]]
id = "m1"
bus = "b1"
)";
// ...completed by these four lines (13..16) for a valid first meter.
const std::string m1_rest = R"(protocol = "dlt645-2007"
address = "000000000001"
profile = "dlt645-basic"
interval = "15m"
)";

LoadResult parse(const std::string& text) { return parse_config(text, "meterd.toml"); }

// Exactly one error, and it is this one.
void check_one(const std::string& text, const std::string& expected) {
  const auto r = parse(text);
  CHECK(!r.config);
  REQUIRE_MESSAGE(r.errors.size() == 1, all_errors(r));
  CHECK(r.errors[0].to_string() == expected);
}

// Base config + valid m1 + a second meter whose body is `body` (its
// [[meter]] header is line 17, the body starts on line 18).
std::string with_meter(const std::string& body) { return base + m1_rest + "[[meter]]\n" + body; }

}  // namespace

TEST_CASE("the contract example parses, with its values and the defaults") {
  const auto r = parse(contract);
  REQUIRE_MESSAGE(r.config, all_errors(r));
  const Config& c = *r.config;
  CHECK(c.file == "meterd.toml");
  CHECK(c.gateway.id == "gw-0001");
  CHECK(c.gateway.data_dir == "/var/lib/meterd");
  CHECK(c.gateway.control_socket == "/run/meterd/meterd.sock");
  CHECK(c.buffer.max_readings == 10000000);
  CHECK(c.mqtt.port == 1883);
  CHECK(c.mqtt.topic_prefix == "meterd/gw-0001");
  CHECK(c.mqtt.batch_max == 500);
  REQUIRE(c.buses.size() == 1);
  const auto& b = c.buses[0];
  CHECK(b.name == "rs485-1");
  CHECK(b.device == "/dev/ttyS1");
  CHECK(!b.is_tcp());
  CHECK(b.line.baud == 2400);
  CHECK(b.line.parity == drivers::Parity::even);
  CHECK(b.limits.response_timeout == 1000ms);
  CHECK(b.limits.byte_timeout == 500ms);
  CHECK(b.retries == 1);
  CHECK(!b.echo);
  REQUIRE(c.meters.size() == 1);
  const auto& m = c.meters[0];
  CHECK(m.id == "m0001");
  CHECK(m.protocol == MeterProtocol::dlt645_2007);
  CHECK(m.address == *protocol::dlt645::Address::parse("000000000001"));
  CHECK(m.address_text == "000000000001");
  CHECK(m.interval == 15min);
  CHECK(m.preamble == 4);
  CHECK(m.line == 28);
  CHECK(m.quantities.empty());
  CHECK(!c.commands.relay_control);
  CHECK(c.commands.hmac_key_file == "/etc/meterd/cmd.key");
  CHECK(c.find_bus("rs485-1") == &c.buses[0]);
  CHECK(c.find_bus("x") == nullptr);
  CHECK(c.find_meter("m0001") == &c.meters[0]);
  REQUIRE(c.profiles);
  CHECK(c.profiles->find("dlt645-basic"));
}

TEST_CASE("defaults: control socket, topic prefix, bus timeouts and retries") {
  const auto r = parse(base + m1_rest);
  REQUIRE_MESSAGE(r.config, all_errors(r));
  const Config& c = *r.config;
  CHECK(c.gateway.control_socket == "/data/meterd.sock");
  CHECK(c.mqtt.topic_prefix == "meterd/gw");
  CHECK(c.mqtt.host == "127.0.0.1");
  CHECK(c.buffer.sync == "full");
  CHECK(c.polling.offline_after == 3);
  CHECK(c.polling.summary_interval == 300s);
  for (const auto& b : c.buses) {
    CHECK(b.limits.response_timeout == 1000ms);
    CHECK(b.limits.byte_timeout == 500ms);
    CHECK(b.retries == 1);
  }
  const auto* t = c.find_bus("t1");
  REQUIRE(t);
  CHECK(t->is_tcp());
  CHECK(t->tcp_host == "10.0.0.5");
  CHECK(t->tcp_port == 502);
}

TEST_CASE("extension keys are read") {
  const auto r = parse(R"([gateway]
id = "gw"
data_dir = "/data"
[buffer]
max_readings = 500
max_events = 100
max_bytes = 104857600
sync = "normal"
cache_kib = 1024
[mqtt]
username = "u"
password_file = "/etc/p"
[mqtt.tls]
ca_file = "/etc/ca"
cert_file = "/etc/c"
key_file = "/etc/k"
[polling]
offline_after = 5
summary_interval = "10m"
[commands]
relay_control = true
hmac_key_file = "/etc/k"
[[bus]]
name = "b1"
port = "/dev/ttyUSB0"
baud = 9600
parity = "none"
data_bits = 7
stop_bits = 2
echo = true
rs485 = true
rts_delay_before_ms = 2
rts_delay_after_ms = 3
reopen_min_ms = 100
reopen_max_ms = 5000
retries = 0
[[meter]]
id = "m1"
bus = "b1"
protocol = "dlt645-1997"
address = "123456789012"
profile = "dlt645-1997-basic"
interval = "30s"
preamble = 0
quantities = ["energy.active.import.total", "voltage.l1"]
[[meter]]
id = "m2"
bus = "b1"
protocol = "modbus"
address = 7
profile = "sdm120"
interval = "1h"
)");
  REQUIRE_MESSAGE(r.config, all_errors(r));
  const Config& c = *r.config;
  CHECK(c.buffer.max_events == 100);
  CHECK(c.buffer.max_bytes == 104857600);
  CHECK(c.buffer.sync == "normal");
  CHECK(c.buffer.cache_kib == 1024);
  CHECK(c.mqtt.username == "u");
  CHECK(c.mqtt.tls_ca_file == "/etc/ca");
  CHECK(c.mqtt.tls_key_file == "/etc/k");
  CHECK(c.polling.offline_after == 5);
  CHECK(c.polling.summary_interval == 600s);
  CHECK(c.commands.relay_control);
  const auto& b = c.buses[0];
  CHECK(b.line.baud == 9600);
  CHECK(b.line.parity == drivers::Parity::none);
  CHECK(b.line.data_bits == 7);
  CHECK(b.line.stop_bits == 2);
  CHECK(b.echo);
  CHECK(b.rs485.enabled);
  CHECK(b.rs485.delay_before_send_ms == 2);
  CHECK(b.rs485.delay_after_send_ms == 3);
  CHECK(b.reopen_min == 100ms);
  CHECK(b.reopen_max == 5000ms);
  CHECK(b.retries == 0);
  const auto& m1 = c.meters[0];
  CHECK(m1.protocol == MeterProtocol::dlt645_1997);
  CHECK(m1.interval == 30s);
  CHECK(m1.preamble == 0);
  CHECK(m1.quantities == std::vector<std::string>{"energy.active.import.total", "voltage.l1"});
  const auto& m2 = c.meters[1];
  CHECK(m2.protocol == MeterProtocol::modbus);
  CHECK(m2.unit == 7);
  CHECK(m2.address_text == "7");
  CHECK(m2.interval == 1h);
}

TEST_CASE("intervals: whole seconds, 1s..1d, dividing a minute, an hour or a day") {
  CHECK(parse_interval("15m") == 15min);
  CHECK(parse_interval("5s") == 5s);
  CHECK(parse_interval("1h") == 1h);
  CHECK(parse_interval("1d") == 24h);
  CHECK(parse_interval("90m") == 90min);  // over an hour: divides a day (16 a day)
  CHECK(parse_interval("8h") == 8h);
  CHECK(parse_interval("45s") == std::nullopt);  // does not divide a minute
  CHECK(parse_interval("7m") == std::nullopt);   // does not divide an hour
  CHECK(parse_interval("5h") == std::nullopt);   // does not divide a day
  CHECK(parse_interval("2d") == std::nullopt);
  CHECK(parse_interval("500ms") == std::nullopt);
  CHECK(parse_interval("1000ms") == 1s);
  CHECK(parse_interval("0s") == std::nullopt);
  CHECK(parse_interval("15") == std::nullopt);
  CHECK(parse_interval("m") == std::nullopt);
  CHECK(parse_interval("1h30m") == std::nullopt);
  CHECK(parse_interval("-5m") == std::nullopt);
  CHECK(parse_interval("") == std::nullopt);
  CHECK(parse_duration("500ms") == 500ms);
  CHECK(interval_problem(900s).empty());
}

TEST_CASE("each bad value: its exact message on its exact line") {
  SUBCASE("meter: DL/T 645 address of 11 digits (Address::parse would pad it)") {
    check_one(base + R"(protocol = "dlt645-2007"
address = "00000000001"
profile = "dlt645-basic"
)",
              "meterd.toml:14: meter.address: DL/T 645 address must be exactly 12 digits, got "
              "\"00000000001\"");
  }
  SUBCASE("meter: DL/T 645 address with letters") {
    check_one(base +
                  "protocol = \"dlt645-2007\"\naddress = \"AAAAAAAAAAAA\"\nprofile = "
                  "\"dlt645-basic\"\n",
              "meterd.toml:14: meter.address: DL/T 645 address must be exactly 12 digits, got "
              "\"AAAAAAAAAAAA\"");
  }
  SUBCASE("meter: DL/T 645 broadcast address") {
    check_one(base +
                  "protocol = \"dlt645-2007\"\naddress = \"999999999999\"\nprofile = "
                  "\"dlt645-basic\"\n",
              "meterd.toml:14: meter.address: 999999999999 is the broadcast address, not a "
              "meter's");
  }
  SUBCASE("meter: Modbus unit 0, 248 and non-digits; \"1\" and 1 both accepted") {
    const auto modbus = [](const std::string& address) {
      return base + "protocol = \"modbus\"\naddress = " + address + "\nprofile = \"sdm630\"\n";
    };
    check_one(modbus("0"), "meterd.toml:14: meter.address: Modbus unit id must be 1..247, got 0");
    check_one(modbus("248"),
              "meterd.toml:14: meter.address: Modbus unit id must be 1..247, got 248");
    check_one(modbus("\"248\""),
              "meterd.toml:14: meter.address: Modbus unit id must be 1..247, got \"248\"");
    check_one(modbus("\"x1\""),
              "meterd.toml:14: meter.address: Modbus unit id must be 1..247, got \"x1\"");
    for (const char* ok : {"1", "\"1\"", "247", "\"247\""}) {
      const auto r = parse(modbus(ok));
      CHECK_MESSAGE(r.config, all_errors(r));
      if (r.config) CHECK(r.config->meters[0].unit == std::stoi(ok[0] == '"' ? ok + 1 : ok));
    }
  }
  SUBCASE("meter: duplicate id") {
    check_one(with_meter("id = \"m1\"\nbus = \"b1\"\nprotocol = \"dlt645-2007\"\naddress = "
                         "\"000000000002\"\nprofile = \"dlt645-basic\"\n"),
              "meterd.toml:18: meter.id: duplicate meter id \"m1\" (first defined on line 11)");
  }
  SUBCASE("meter: duplicate address on one bus (not across buses or protocols)") {
    check_one(with_meter("id = \"m2\"\nbus = \"b1\"\nprotocol = \"dlt645-1997\"\naddress = "
                         "\"000000000001\"\nprofile = \"dlt645-1997-basic\"\n"),
              "meterd.toml:21: meter.address: address \"000000000001\" is already used on bus "
              "\"b1\" by meter \"m1\" (line 14)");
    // A Modbus unit 1 beside a DL/T 645 meter 000000000001: different address spaces.
    const auto r = parse(with_meter(
        "id = \"m2\"\nbus = \"b1\"\nprotocol = \"modbus\"\naddress = 1\nprofile = \"sdm630\"\n"));
    CHECK_MESSAGE(r.config, all_errors(r));
  }
  SUBCASE("meter: duplicate Modbus unit written once as a string and once as an integer") {
    const std::string text = base +
                             "protocol = \"modbus\"\naddress = \"1\"\nprofile = "
                             "\"generic\"\n[[meter]]\nid = \"m2\"\nbus = \"b1\"\nprotocol = "
                             "\"modbus\"\naddress = 1\nprofile = \"sdm630\"\n";
    check_one(text,
              "meterd.toml:20: meter.address: unit id \"1\" is already used on bus \"b1\" by "
              "meter \"m1\" (line 14)");
  }
  SUBCASE("meter: undefined bus") {
    check_one(with_meter("id = \"m2\"\nbus = \"b9\"\nprotocol = \"dlt645-2007\"\naddress = "
                         "\"000000000002\"\nprofile = \"dlt645-basic\"\n"),
              "meterd.toml:19: meter.bus: no [[bus]] named \"b9\"");
  }
  SUBCASE("meter: unknown profile") {
    const auto r = parse(base +
                         "protocol = \"dlt645-2007\"\naddress = \"000000000001\"\nprofile "
                         "= \"dlt645-fancy\"\n");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].line == 15);
    CHECK(r.errors[0].key == "meter.profile");
    CHECK(r.errors[0].problem.rfind("unknown profile \"dlt645-fancy\" (known: dlt645-1997-basic, "
                                    "dlt645-basic, dlt645-full, ",
                                    0) == 0);
  }
  SUBCASE("meter: protocol vs profile") {
    check_one(base + "protocol = \"modbus\"\naddress = 1\nprofile = \"dlt645-basic\"\n",
              "meterd.toml:15: meter.profile: profile \"dlt645-basic\" is for dlt645-2007 "
              "meters, this meter is modbus");
    check_one(base +
                  "protocol = \"dlt645-2007\"\naddress = \"000000000001\"\nprofile = "
                  "\"sdm630\"\n",
              "meterd.toml:15: meter.profile: profile \"sdm630\" is for modbus meters, this "
              "meter is dlt645-2007");
    check_one(base +
                  "protocol = \"dlt645-1997\"\naddress = \"000000000001\"\nprofile = "
                  "\"dlt645-basic\"\n",
              "meterd.toml:15: meter.profile: profile \"dlt645-basic\" is for dlt645-2007 "
              "meters, this meter is dlt645-1997");
  }
  SUBCASE("meter: DL/T 645 on a TCP bus; Modbus on a serial bus is fine") {
    check_one(with_meter("id = \"m2\"\nbus = \"t1\"\nprotocol = \"dlt645-2007\"\naddress = "
                         "\"000000000002\"\nprofile = \"dlt645-basic\"\n"),
              "meterd.toml:19: meter.bus: bus \"t1\" is Modbus TCP; DL/T 645 meters need a "
              "serial bus (DL/T 645 over TCP is not supported)");
    const auto r =
        parse(with_meter("id = \"m2\"\nbus = \"t1\"\nprotocol = \"modbus\"\naddress = "
                         "\"3\"\nprofile = \"sdm630\"\n"));
    CHECK_MESSAGE(r.config, all_errors(r));
  }
  SUBCASE("meter: unknown protocol") {
    check_one(base + "protocol = \"iec62056\"\naddress = \"1\"\nprofile = \"sdm630\"\n",
              "meterd.toml:13: meter.protocol: expected dlt645-2007, dlt645-1997 or modbus, got "
              "\"iec62056\"");
  }
  SUBCASE("meter: bad intervals") {
    const auto at = [](const std::string& interval) {
      return base + m1_rest.substr(0, m1_rest.rfind("interval")) + "interval = " + interval + "\n";
    };
    check_one(at("\"500ms\""),
              "meterd.toml:16: meter.interval: \"500ms\": must be a whole number of seconds, at "
              "least 1s");
    check_one(at("\"7m\""),
              "meterd.toml:16: meter.interval: \"7m\": from a minute to an hour it must divide "
              "an hour evenly (1m, 2m, 3m, 4m, 5m, 6m, 10m, 12m, 15m, 20m, 30m, 1h, or whole "
              "seconds that do) so the reads keep their place on the clock");
    check_one(at("\"2d\""), "meterd.toml:16: meter.interval: \"2d\": must be at most 1d");
    check_one(at("\"15 min\""),
              "meterd.toml:16: meter.interval: expected a number and a unit (s, m, h, d) such as "
              "\"15m\", got \"15 min\"");
    check_one(at("900"),
              "meterd.toml:16: meter.interval: expected a duration such as \"15m\", got an "
              "integer");
  }
  SUBCASE("meter: quantities the profile cannot deliver") {
    check_one(base + m1_rest + "quantities = [\"voltage.l1\", \"voltage.l9\"]\n",
              "meterd.toml:17: meter.quantities: profile \"dlt645-basic\" cannot deliver "
              "\"voltage.l9\"");
  }
  SUBCASE("meter: preamble out of range, and on a Modbus meter") {
    check_one(base + m1_rest + "preamble = 9\n",
              "meterd.toml:17: meter.preamble: must be 0..8, got 9");
    check_one(base + "protocol = \"modbus\"\naddress = 2\nprofile = \"sdm630\"\npreamble = 2\n",
              "meterd.toml:16: meter.preamble: only for DL/T 645 meters (FE bytes before a "
              "request)");
  }
  SUBCASE("meter: missing required keys name the [[meter]] line") {
    check_one(base + "protocol = \"dlt645-2007\"\nprofile = \"dlt645-basic\"\n",
              "meterd.toml:10: meter.address: required key missing");
  }
  SUBCASE("bus: baud, parity, data bits, stop bits") {
    const auto bus = [](const std::string& line) {
      return "[gateway]\nid = \"gw\"\ndata_dir = \"/d\"\n[[bus]]\nname = \"b\"\nport = "
             "\"/dev/x\"\n" +
             line + "\n";
    };
    check_one(bus("baud = 2401"),
              "meterd.toml:7: bus.baud: not a standard rate (300, 600, 1200, 2400, 4800, 9600, "
              "19200, 38400, 57600, 115200), got 2401");
    check_one(bus("parity = \"mark\""),
              "meterd.toml:7: bus.parity: expected none, even or odd, got \"mark\"");
    check_one(bus("data_bits = 5"), "meterd.toml:7: bus.data_bits: must be 7 or 8, got 5");
    check_one(bus("stop_bits = 3"), "meterd.toml:7: bus.stop_bits: must be 1 or 2, got 3");
    check_one(bus("response_timeout_ms = 0"),
              "meterd.toml:7: bus.response_timeout_ms: must be 10..60000, got 0");
    check_one(bus("retries = 11"), "meterd.toml:7: bus.retries: must be 0..10, got 11");
    check_one(bus("echo = \"yes\""),
              "meterd.toml:7: bus.echo: expected true or false, got a string");
    check_one(bus("tcp = \"h:1\""),
              "meterd.toml:7: bus.tcp: a bus is either a serial port or a Modbus TCP endpoint: "
              "give port or tcp, not both");
  }
  SUBCASE("bus: duplicate name, bad tcp endpoint, serial settings on a TCP bus") {
    check_one(base + m1_rest + "[[bus]]\nname = \"b1\"\nport = \"/dev/ttyS2\"\n",
              "meterd.toml:18: bus.name: duplicate bus name \"b1\" (first defined on line 5)");
    check_one(base + m1_rest + "[[bus]]\nname = \"t2\"\ntcp = \"10.0.0.5\"\n",
              "meterd.toml:19: bus.tcp: expected \"host:port\" with port 1..65535, got "
              "\"10.0.0.5\"");
    check_one(base + m1_rest + "[[bus]]\nname = \"t2\"\ntcp = \"h:502\"\nbaud = 9600\n",
              "meterd.toml:20: bus.baud: a serial line setting, but this bus is Modbus TCP (tcp "
              "= ...)");
    check_one(base + m1_rest + "[[bus]]\nname = \"b2\"\n",
              "meterd.toml:17: bus.port: required key missing: port (a serial device) or tcp "
              "(\"host:port\")");
  }
  SUBCASE("unknown keys and tables, anywhere") {
    check_one(base + m1_rest + "colour = \"blue\"\n", "meterd.toml:17: meter.colour: unknown key");
    check_one("verbose = true\n" + base + m1_rest, "meterd.toml:1: verbose: unknown key");
    check_one(base + m1_rest + "[logging]\nlevel = \"debug\"\n",
              "meterd.toml:17: logging: unknown table");
    check_one(base + m1_rest + "[mqtt]\nhots = \"x\"\n", "meterd.toml:18: mqtt.hots: unknown key");
    check_one(base + m1_rest + "[mqtt.tls]\nca = \"x\"\n",
              "meterd.toml:18: mqtt.tls.ca: unknown key");
    check_one(base + m1_rest + "[[sensor]]\nid = 1\n", "meterd.toml:17: sensor: unknown table");
  }
  SUBCASE("wrong types and ranges in the sections") {
    check_one(base + m1_rest + "[mqtt]\nport = \"1883\"\n",
              "meterd.toml:18: mqtt.port: expected an integer, got a string");
    check_one(base + m1_rest + "[mqtt]\nport = 70000\n",
              "meterd.toml:18: mqtt.port: must be 1..65535, got 70000");
    // A password without a user name would be silently dropped by the MQTT client.
    check_one(base + m1_rest + "[mqtt]\npassword_file = \"/p\"\n",
              "meterd.toml:18: mqtt.password_file: needs mqtt.username (MQTT sends a password "
              "only with a user name)");
    check_one(base + m1_rest + "[mqtt]\nprotocol = \"4\"\n",
              "meterd.toml:18: mqtt.protocol: must be \"auto\", \"5\" or \"3.1.1\", got \"4\"");
    check_one(base + m1_rest + "[mqtt]\nkeepalive = \"2s\"\n",
              "meterd.toml:18: mqtt.keepalive: must be whole seconds from 5s to 3600s");
    check_one(base + m1_rest + "[commands]\noperator = \"xyz\"\n",
              "meterd.toml:18: commands.operator: must be 8 hex digits (DL/T 645 operator code), "
              "got \"xyz\"");
    check_one(base + m1_rest + "[buffer]\nmax_readings = 0\n",
              "meterd.toml:18: buffer.max_readings: must be 1..1000000000, got 0");
    check_one(base + m1_rest + "[buffer]\nsync = \"off\"\n",
              "meterd.toml:18: buffer.sync: expected full or normal, got \"off\"");
    check_one(base + m1_rest + "[commands]\nrelay_control = true\n",
              "meterd.toml:18: commands.relay_control: relay control needs hmac_key_file "
              "(unsigned relay commands are refused)");
    check_one(base + m1_rest + "[polling]\noffline_after = 0\n",
              "meterd.toml:18: polling.offline_after: must be 1..1000, got 0");
    check_one(base + m1_rest + "[gateway.extra]\n", "meterd.toml:17: gateway.extra: unknown table");
    check_one(base + "protocol = \"dlt645-2007\"\naddress = \"000000000001\"\nprofile = 7\n",
              "meterd.toml:15: meter.profile: expected a string, got an integer");
  }
  SUBCASE("gateway: required keys, with no line when [gateway] is absent") {
    const auto r = parse("[[bus]]\nname = \"b\"\nport = \"/dev/x\"\n");
    REQUIRE(r.errors.size() == 2);
    CHECK(r.errors[0].to_string() == "meterd.toml:0: gateway.id: required key missing");
    CHECK(r.errors[1].to_string() == "meterd.toml:0: gateway.data_dir: required key missing");
    check_one("[gateway]\nid = \"a/b\"\ndata_dir = \"/d\"\n",
              "meterd.toml:2: gateway.id: must not contain '/', '+', '#' or blanks (it is an "
              "MQTT topic level), got \"a/b\"");
  }
}

TEST_CASE("user profiles: each bad field on its line") {
  const std::string g = "[gateway]\nid = \"gw\"\ndata_dir = \"/d\"\n[[profile]]\nname = \"p\"\n";
  // line 6 onwards
  check_one(g + "protocol = \"dlt645-2007\"\ndis = [\"0001FF00\", \"12345678\"]\n",
            "meterd.toml:7: profile.dis: DI 12345678 is not in the DL/T 645-2007 catalogue: "
            "describe it in a [[profile.item]]");
  check_one(g + "protocol = \"dlt645-2007\"\ndis = [\"9010\"]\n",
            "meterd.toml:7: profile.dis: not a DL/T 645-2007 DI (8 hex digits), got \"9010\"");
  check_one(g + "protocol = \"dlt645-1997\"\ndis = [\n  \"901F\",\n  \"901F\",\n]\n",
            "meterd.toml:9: profile.dis: DI 901F is listed twice");
  check_one(g + "protocol = \"dlt645-2007\"\n",
            "meterd.toml:4: profile.dis: a DL/T 645 profile reads at least one DI (dis or "
            "[[profile.item]])");
  check_one(g + "protocol = \"dlt645-2007\"\n[[profile.item]]\ndi = \"04A00101\"\nbytes = 9\n"
                "quantity = \"x\"\n",
            "meterd.toml:9: profile.item.bytes: must be 1..8, got 9");
  check_one(g + "protocol = \"dlt645-2007\"\n[[profile.item]]\ndi = \"04A00101\"\nbytes = 2\n"
                "decimals = 5\nquantity = \"x\"\n",
            "meterd.toml:10: profile.item.decimals: more decimals than the 4 digits of 2 bytes");
  check_one(g + "protocol = \"dlt645-2007\"\n[[profile.item]]\ndi = \"04A00101\"\nbytes = 2\n",
            "meterd.toml:7: profile.item.quantity: required key missing");
  check_one(g + "protocol = \"dlt645-2007\"\n[[profile.item]]\ndi = \"04A00101\"\nbytes = 2\n"
                "quantity = \"x\"\nsigned = 1\n",
            "meterd.toml:11: profile.item.signed: expected true or false, got an integer");
  check_one(g + "protocol = \"dlt645-2007\"\ndis = [\"0001FF00\"]\nmodel = \"sdm630\"\n",
            "meterd.toml:8: profile.model: only for Modbus profiles");
  check_one(g + "protocol = \"iec\"\n",
            "meterd.toml:6: profile.protocol: expected dlt645-2007, dlt645-1997 or modbus, got "
            "\"iec\"");
  check_one(
      "[gateway]\nid = \"gw\"\ndata_dir = \"/d\"\n[[profile]]\nname = \"sdm630\"\n"
      "protocol = \"modbus\"\nmodel = \"sdm630\"\n",
      "meterd.toml:5: profile.name: \"sdm630\" is a built-in profile: choose another name");
  // Modbus
  check_one(g + "protocol = \"modbus\"\nmodel = \"sdm999\"\n",
            "meterd.toml:7: profile.model: unknown model \"sdm999\" (sdm630, sdm120, dtsu666, "
            "dtsu666h, generic)");
  check_one(g + "protocol = \"modbus\"\nmodel = \"sdm120\"\nquantities = [\"voltage.l1\", "
                "\"voltage.l2\"]\n",
            "meterd.toml:8: profile.quantities: model sdm120 has no readable register for "
            "\"voltage.l2\"");
  check_one(g + "protocol = \"modbus\"\n",
            "meterd.toml:4: profile.model: a Modbus profile needs a model, [[profile.register]] "
            "tables, or both");
  const std::string reg = g + "protocol = \"modbus\"\nmodel = \"sdm630\"\n[[profile.register]]\n";
  // register fields from line 9
  check_one(reg + "address = 0x0500\ntype = \"float64\"\nquantity = \"x\"\n",
            "meterd.toml:10: profile.register.type: expected float32, int16, uint16, int32 or "
            "uint32, got \"float64\"");
  check_one(reg + "address = 0x0500\ntype = \"int16\"\ntable = \"coil\"\nquantity = \"x\"\n",
            "meterd.toml:11: profile.register.table: expected input or holding, got \"coil\"");
  check_one(reg + "address = 0x0500\ntype = \"int16\"\nscale = 0.001\nquantity = \"x\"\n",
            "meterd.toml:11: profile.register.scale: write the scale as a decimal string such "
            "as \"0.001\" (kept exact)");
  check_one(reg + "address = 0x0500\ntype = \"int16\"\nscale = \"0\"\nquantity = \"x\"\n",
            "meterd.toml:11: profile.register.scale: expected a non-zero decimal string such as "
            "\"0.001\", got \"0\"");
  check_one(reg + "address = 70000\ntype = \"int16\"\nquantity = \"x\"\n",
            "meterd.toml:9: profile.register.address: must be 0..65535, got 70000");
  check_one(reg + "address = 65535\ntype = \"int32\"\nquantity = \"x\"\n",
            "meterd.toml:9: profile.register.address: a int32 at 0xFFFF runs past 0xFFFF");
  check_one(reg + "address = 1\ntable = \"input\"\ntype = \"int16\"\nquantity = \"x\"\n",
            "meterd.toml:9: profile.register.address: input 0x0001 overlaps 0x0000 (voltage.l1) "
            "of model sdm630");
  check_one(reg + "address = 0x0500\ntype = \"int16\"\nquantity = \"voltage.l1\"\n",
            "meterd.toml:11: profile.register.quantity: \"voltage.l1\" is already read from "
            "input 0x0000");
  check_one(reg + "address = 0x0500\ntype = \"int32\"\nword_order = \"CDAB\"\nquantity = \"x\"\n",
            "meterd.toml:11: profile.register.word_order: differs from the profile's word order "
            "(ABCD): a meter has one word order; set word_order on the [[profile]]");
  check_one(reg + "address = 0x0500\ntype = \"int32\"\nword_order = \"BADC\"\nquantity = \"x\"\n",
            "meterd.toml:11: profile.register.word_order: expected ABCD (high word first) or "
            "CDAB (low word first), got \"BADC\"");
}

TEST_CASE("every error is reported, in file order, not only the first") {
  const std::string text = R"([gateway]
id = "gw"
data_dir = "/d"
colour = "red"
[[bus]]
name = "b1"
port = "/dev/x"
baud = 1234
parity = "mark"
[[meter]]
id = "m1"
bus = "b1"
protocol = "dlt645-2007"
address = "12345678901"
profile = "dlt645-basic"
interval = "7m"
[[meter]]
id = "m1"
bus = "nowhere"
protocol = "modbus"
address = 300
profile = "nope"
)";
  const auto r = parse(text);
  CHECK(!r.config);
  std::vector<std::string> got;
  for (const auto& e : r.errors) got.push_back(e.to_string());
  const std::vector<std::string> want{
      "meterd.toml:4: gateway.colour: unknown key",
      "meterd.toml:8: bus.baud: not a standard rate (300, 600, 1200, 2400, 4800, 9600, 19200, "
      "38400, 57600, 115200), got 1234",
      "meterd.toml:9: bus.parity: expected none, even or odd, got \"mark\"",
      "meterd.toml:14: meter.address: DL/T 645 address must be exactly 12 digits, got "
      "\"12345678901\"",
      "meterd.toml:16: meter.interval: \"7m\": from a minute to an hour it must divide an hour "
      "evenly (1m, 2m, 3m, 4m, 5m, 6m, 10m, 12m, 15m, 20m, 30m, 1h, or whole seconds that do) so "
      "the reads keep their place on the clock",
      "meterd.toml:18: meter.id: duplicate meter id \"m1\" (first defined on line 11)",
      "meterd.toml:19: meter.bus: no [[bus]] named \"nowhere\"",
      "meterd.toml:21: meter.address: Modbus unit id must be 1..247, got 300",
  };
  REQUIRE_MESSAGE(got.size() == want.size() + 1, all_errors(r));
  for (std::size_t i = 0, j = 0; i < got.size(); ++i) {
    if (got[i].rfind("meterd.toml:22: meter.profile: unknown profile \"nope\"", 0) == 0) continue;
    CHECK(got[i] == want[j++]);
  }
}

TEST_CASE("TOML syntax errors and unreadable files carry file and line") {
  const auto r = parse("[gateway]\nid = \"gw\"\ndata_dir = \"/d\"\nbroken = = 1\n");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].file == "meterd.toml");
  CHECK(r.errors[0].line == 4);
  CHECK(r.errors[0].key == "syntax");
  CHECK(!r.errors[0].problem.empty());

  const auto dup = parse("[gateway]\nid = \"gw\"\nid = \"gw2\"\n");
  REQUIRE(dup.errors.size() == 1);
  CHECK(dup.errors[0].line == 3);

  const auto missing = load_config("/nonexistent/meterd.toml");
  REQUIRE(missing.errors.size() == 1);
  CHECK(missing.errors[0].to_string() ==
        "/nonexistent/meterd.toml:0: file: cannot read: No such file or directory");

  testing::TempDir d;
  const auto path = (d.path / "meterd.toml").string();
  std::ofstream(path) << base << m1_rest;
  const auto ok = load_config(path);
  CHECK_MESSAGE(ok.config, all_errors(ok));
  if (ok.config) CHECK(ok.config->file == path);
  std::ofstream(path) << base << "protocol = 1\n";
  const auto bad = load_config(path);
  CHECK(all_errors(bad) == path + ":10: meter.address: required key missing\n" + path +
                               ":10: meter.profile: required key missing\n" + path +
                               ":13: meter.protocol: expected a string, got an integer\n");
}

TEST_CASE("metersim --gateway-config: the config it writes parses with zero errors") {
  testing::TempDir d;
  const auto cfg = d.path / "meterd.toml";
  testing::Metersim sim("", {"--dlt645-2007", "2", "--dlt645-1997", "1", "--modbus-rtu", "4",
                             "--modbus-tcp", "1", "--gateway-config", cfg.string(), "--gateway-id",
                             "gw-sim", "--data-dir", (d.path / "data").string()});
  REQUIRE(std::filesystem::exists(cfg));
  const auto r = load_config(cfg.string());
  REQUIRE_MESSAGE(r.config, all_errors(r));
  const Config& c = *r.config;
  CHECK(c.gateway.id == "gw-sim");
  CHECK(c.meters.size() == 8);
  CHECK(c.buses.size() == 2);  // one RS-485 bus and one TCP converter
  int modbus = 0, dlt = 0;
  for (const auto& m : c.meters) {
    const Profile* p = c.profiles->find(m.profile);
    REQUIRE(p);
    if (m.protocol == MeterProtocol::modbus) {
      ++modbus;
      CHECK(m.unit >= 1);
      CHECK(p->kind == Profile::Kind::modbus);
    } else {
      ++dlt;
      CHECK(p->kind == Profile::Kind::dlt645);
      CHECK(!c.find_bus(m.bus)->is_tcp());
    }
  }
  CHECK(modbus == 5);
  CHECK(dlt == 3);
  for (const auto& b : c.buses) CHECK(!b.echo);
}

TEST_CASE("metersim --gateway-config: a bus with echo = true in sim.toml gets echo = true") {
  testing::TempDir d;
  const auto cfg = d.path / "meterd.toml";
  testing::Metersim sim(R"(
[[bus]]
name = "quiet"
[[bus]]
name = "echoing"
echo = true
[[meter]]
id = "a"
bus = "quiet"
address = "000000000001"
[[meter]]
id = "b"
bus = "echoing"
protocol = "modbus"
model = "sdm630"
address = 1
)",
                        {"--gateway-config", cfg.string()});
  const auto r = load_config(cfg.string());
  REQUIRE_MESSAGE(r.config, all_errors(r));
  REQUIRE(r.config->find_bus("quiet"));
  REQUIRE(r.config->find_bus("echoing"));
  CHECK(!r.config->find_bus("quiet")->echo);
  CHECK(r.config->find_bus("echoing")->echo);
}

// [tasks] and [area]: the values read, each bad one named on its line. A
// loader that accepted an area with an unknown meter would compute a loss
// against nothing; one that accepted "8" percent as a float would round.
TEST_CASE("[tasks] and [area]: values and errors") {
  const std::string valid = base + m1_rest + R"([tasks]
daily_delay = "10m"
backfill_days = 62
daily_items = ["05060301"]
event_interval = "5m"
clock_drift_max = "2m"
timesync_time = ""
timesync_write = true
voltage_min = "200.0"
[area]
name = "t1"
summary = "m1"
households = []
)";
  // households empty is an error: one error on line 29.
  auto r = parse(valid);
  REQUIRE_MESSAGE(r.errors.size() == 1, all_errors(r));
  CHECK(r.errors[0].key == "area.households");

  r = parse(base + m1_rest + R"([tasks]
daily_delay = "10m"
backfill_days = 62
daily_items = ["05060301"]
event_interval = "5m"
timesync_time = ""
voltage_min = "200.0"
)");
  REQUIRE_MESSAGE(r.config, all_errors(r));
  const auto& t = r.config->tasks;
  CHECK(t.daily_delay == std::chrono::minutes(10));
  CHECK(t.backfill_days == 62);
  CHECK(t.daily_items == std::vector<std::uint32_t>{0x05060301});
  CHECK(t.event_interval == std::chrono::minutes(5));
  CHECK(t.timesync_time.empty());
  CHECK(protocol::to_string(t.voltage_min) == "200.0");
  CHECK_FALSE(r.config->area.enabled);

  const std::string tasks_at = base + m1_rest + "[tasks]\n";  // the key is on line 18
  check_one(tasks_at + "backfill_days = 63\n",
            "meterd.toml:18: tasks.backfill_days: must be 0..62, got 63");
  check_one(tasks_at + "daily_items = [\"00010000\"]\n",
            "meterd.toml:18: tasks.daily_items: expected a daily-freeze item 0506xx01 (the \"last "
            "1\" form, xx not 00), got \"00010000\"");
  check_one(tasks_at + "timesync_time = \"25:00\"\n",
            "meterd.toml:18: tasks.timesync_time: expected a local time \"HH:MM\" or \"\" (off), "
            "got \"25:00\": hour 25 is not 00 to 23");
  check_one(tasks_at + "event_interval = \"7m\"\n",
            "meterd.toml:18: tasks.event_interval: 0 (off) or a read interval: from a minute to "
            "an hour it must divide an hour evenly (1m, 2m, 3m, 4m, 5m, 6m, 10m, 12m, 15m, 20m, "
            "30m, 1h, or whole seconds that do) so the reads keep their place on the clock");
  check_one(tasks_at + "voltage_max = 250\n",
            "meterd.toml:18: tasks.voltage_max: expected a string, got an integer");
  const std::string area_at = base + m1_rest + "[area]\n";
  check_one(area_at + "summary = \"m9\"\nhouseholds = [\"m1\"]\n",
            "meterd.toml:18: area.summary: no [[meter]] with id \"m9\"");
  check_one(area_at + "summary = \"m1\"\nhouseholds = [\"m1\"]\n",
            "meterd.toml:19: area.households: \"m1\" is the summary meter");
  check_one(area_at + "summary = \"m1\"\nhouseholds = [\"m2\"]\n",
            "meterd.toml:19: area.households: no [[meter]] with id \"m2\"");
  check_one(base + m1_rest +
                "[[meter]]\nid = \"m2\"\nbus = \"b1\"\nprotocol = "
                "\"dlt645-1997\"\naddress = \"000000000002\"\nprofile = "
                "\"dlt645-1997-basic\"\nhourly = true\n",
            "meterd.toml:23: meter.hourly: only DL/T 645-2007 meters keep hourly freezes (0504)");
}
