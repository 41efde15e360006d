// The bus search over a fake link whose meters are metersim's own models
// (pure functions): DL/T 645 answers laid on one timeline at each meter's
// turnaround, overlapping bytes OR-ed as on the wire, then split by the
// drivers' splitter; Modbus answers from the simulated register maps.
#include <map>
#include <memory>
#include <set>

#include <doctest/doctest.h>

#include "firmware/config.hpp"
#include "firmware/scan.hpp"
#include "protocol/dlt645/control.hpp"
#include "protocol/modbus_codec/registers.hpp"
#include "simulator/clock.hpp"
#include "simulator/dlt645_meter.hpp"
#include "simulator/modbus_meter.hpp"

using namespace meterd;
using namespace meterd::firmware;
namespace dlt = protocol::dlt645;
namespace mb = protocol::modbus;
using drivers::Outcome;

namespace {

const simulator::Millis t0 = simulator::from_civil(2026, 11, 27, 12, 0, 0);

struct DltSeat {
  std::unique_ptr<simulator::Dlt645Meter> meter;
  std::size_t turnaround = 0;  // in characters: where its answer starts on the timeline
  bool ignores_2007 = false;   // a 1997 meter that stays silent to 2007 frames
};

class FakeBus final : public ScanLink {
 public:
  bool gateway = false;              // Modbus TCP converter: an absent unit answers exception 0BH
  std::vector<dlt::Frame> phantoms;  // clean frames added to the read-address window
  std::size_t listens = 0, exchanges = 0, reads = 0;
  std::set<std::size_t> noise_at;  // listens (1-based) that also hear line noise

  void add_dlt(const std::string& address, std::size_t turnaround,
               dlt::Version v = dlt::Version::v2007, bool ignores_2007 = false) {
    simulator::Dlt645MeterConfig c;
    c.id = address;
    c.version = v;
    c.address = *dlt::Address::parse(address);
    c.seed = dlt_.size() + 1;
    c.static_values = true;
    dlt_.push_back({std::make_unique<simulator::Dlt645Meter>(c, t0), turnaround, ignores_2007});
  }
  void add_modbus(unsigned unit, const char* model) {
    simulator::ModbusMeterConfig c;
    c.model = mb::find_model(model);
    REQUIRE(c.model);
    c.unit = static_cast<std::uint8_t>(unit);
    c.static_values = true;
    modbus_.push_back(std::make_unique<simulator::ModbusMeter>(c, t0));
  }

  drivers::Dlt645Heard listen(const dlt::Frame& request) override {
    ++listens;
    std::map<std::size_t, std::uint8_t> wire;  // character slot -> byte (OR of all drivers)
    for (auto& s : dlt_) {
      if (s.ignores_2007 && dlt::control::function(request.control) >= 0x11) continue;
      const auto a = s.meter->handle(request, t0);
      if (!a) continue;
      const auto bytes = dlt::encode(*a, 2);
      for (std::size_t i = 0; i < bytes.size(); ++i) wire[s.turnaround + i] |= bytes[i];
    }
    std::vector<std::uint8_t> heard;
    for (const auto& [slot, b] : wire) heard.push_back(b);
    if (request.control == dlt::fn2007::read_address)
      for (const auto& p : phantoms) {
        const auto bytes = dlt::encode(p, 0);
        heard.insert(heard.end(), bytes.begin(), bytes.end());
      }
    if (noise_at.count(listens)) heard.insert(heard.end(), {0x00, 0xFF, 0x3A, 0x91});
    return drivers::dlt645_split(heard);
  }

  drivers::Dlt645Answer exchange(dlt::Version, const dlt::Frame& request) override {
    ++exchanges;
    drivers::Dlt645Answer out;
    for (auto& s : dlt_) {
      if (s.ignores_2007 && dlt::control::function(request.control) >= 0x11) continue;
      if (s.meter->config().address != request.address) continue;
      const auto a = s.meter->handle(request, t0);
      if (!a) continue;
      out.frame = *a;
      out.outcome = dlt::control::is_abnormal(a->control) ? Outcome::meter_error : Outcome::ok;
      out.detail = out.outcome == Outcome::ok ? "" : "ERR";
      return out;
    }
    out.outcome = Outcome::timeout;
    out.detail = "no answer";
    return out;
  }

  drivers::RegisterRead read_registers(std::uint8_t unit, std::uint8_t function,
                                       std::uint16_t address, std::uint16_t count) override {
    ++reads;
    drivers::RegisterRead r;
    mb::Pdu req{unit,
                function,
                {static_cast<std::uint8_t>(address >> 8), static_cast<std::uint8_t>(address),
                 static_cast<std::uint8_t>(count >> 8), static_cast<std::uint8_t>(count)}};
    for (auto& m : modbus_) {
      const auto a = m->handle(req, t0);
      if (!a) continue;
      if (a->is_exception()) {
        r.outcome = Outcome::meter_error;
        r.exception = a->data.at(0);
      } else {
        r.outcome = Outcome::ok;
        for (std::size_t i = 1; i + 1 < a->data.size(); i += 2)
          r.words.push_back(static_cast<std::uint16_t>(a->data[i] << 8 | a->data[i + 1]));
      }
      return r;
    }
    if (gateway) {
      r.outcome = Outcome::meter_error;
      r.exception = 0x0B;
    }
    return r;
  }

 private:
  std::vector<DltSeat> dlt_;
  std::vector<std::unique_ptr<simulator::ModbusMeter>> modbus_;
};

drivers::BusConfig serial_bus() {
  drivers::BusConfig b;
  b.name = "b1";
  b.device = "/dev/null";
  return b;
}

// Runs the scan to the end (bounded), checking progress on the way.
Scanner run(FakeBus& bus, ScanRequest req, drivers::BusConfig config = serial_bus()) {
  Scanner s(std::move(req), config);
  std::size_t last_done = 0, last_found = 0;
  for (int i = 0; i < 200000 && !s.finished(); ++i) {
    s.step(bus);
    const auto p = s.progress();
    CHECK(p.done >= last_done);  // monotone
    CHECK(p.done <= p.total);
    CHECK(p.found >= last_found);
    last_done = p.done;
    last_found = p.found;
  }
  REQUIRE(s.finished());
  const auto p = s.progress();
  CHECK(p.done == p.total);
  CHECK(p.found == s.found().size());
  return s;
}

std::set<std::string> addresses(const Scanner& s) {
  std::set<std::string> out;
  for (const auto& m : s.found()) out.insert(m.address);
  return out;
}

std::string addr(unsigned n) {
  std::string s = std::to_string(n);
  return std::string(12 - s.size(), '0') + s;
}

}  // namespace

TEST_CASE("a lone meter is found by read-address alone") {
  FakeBus bus;
  bus.add_dlt("123456789012", 5);
  const auto s = run(bus, {});
  REQUIRE(s.found().size() == 1);
  CHECK(s.found()[0].address == "123456789012");
  CHECK(s.found()[0].protocol == "dlt645-2007");
  CHECK(s.found()[0].profile == "dlt645-basic");
  CHECK(bus.listens == 1);  // no search
  CHECK(s.error().empty());
}

TEST_CASE("an empty bus: nothing, after read-address and one wildcard read") {
  FakeBus bus;
  const auto s = run(bus, {});
  CHECK(s.found().empty());
  CHECK(bus.listens == 2);
}

// Careless: stops at the first 68H / the first clean frame.
TEST_CASE("answers one after another in one window each name a meter") {
  FakeBus bus;
  bus.add_dlt(addr(11), 0);
  bus.add_dlt(addr(22), 60);
  bus.add_dlt(addr(33), 120);
  const auto s = run(bus, {});
  CHECK(addresses(s) == std::set<std::string>{addr(11), addr(22), addr(33)});
  CHECK(bus.listens == 1);  // no garbage: nothing to split
}

// Careless: splits on every garbled window, so one burst of line noise over
// an empty subtree costs 100 probes (on a noisy bus the search never ends).
TEST_CASE("noise over an empty pattern is asked again, not split") {
  FakeBus bus;
  bus.add_dlt(addr(1), 0);
  bus.add_dlt(addr(2), 1);  // collide: read-address garbles, the search splits into A0 = 00..99
  bus.noise_at = {5};       // the probe of A0 = 03 (nobody there) hears noise once
  const auto s = run(bus, {});
  CHECK(addresses(s) == std::set<std::string>{addr(1), addr(2)});
  CHECK(bus.listens == 1 + 100 + 1);  // one probe asked again, nothing split
}

// Careless: treats garbage as no meter, or never splits.
TEST_CASE("16 meters answering at once: garbage splits the search until each answers alone") {
  FakeBus bus;
  std::set<std::string> want;
  for (unsigned i = 1; i <= 16; ++i) {
    bus.add_dlt(addr(i), i % 4);  // overlapping answers
    want.insert(addr(i));
  }
  const auto s = run(bus, {});
  CHECK(addresses(s) == want);
  CHECK(s.found().size() == 16);
  CHECK(bus.listens == 1 + 100);  // read-address, then the 100 patterns of A0
  CHECK(s.warnings().empty());
}

TEST_CASE("meters sharing their low digits: the search goes down byte by byte") {
  FakeBus bus;
  // Same A0 and A1 (digits 1-4), different A2; and the same up to A4.
  const std::vector<std::string> want = {"000000000001", "000000010001", "000000020001",
                                         "110000020001", "120000020001"};
  for (std::size_t i = 0; i < want.size(); ++i) bus.add_dlt(want[i], i);
  const auto s = run(bus, {});
  CHECK(addresses(s) == std::set<std::string>(want.begin(), want.end()));
  CHECK(s.found().size() == want.size());
}

// Careless: counts a meter twice when it answers two patterns; or takes the
// clean frame and ignores the garbage beside it.
TEST_CASE("a clean frame beside garbage names its meter once, and the rest is split") {
  FakeBus bus;
  bus.add_dlt(addr(1), 200);  // answers late, alone: clean in every window
  bus.add_dlt(addr(2), 0);    // these two collide
  bus.add_dlt(addr(102), 3);
  const auto s = run(bus, {});
  CHECK(s.found().size() == 3);
  CHECK(addresses(s) == std::set<std::string>{addr(1), addr(2), addr(102)});
}

TEST_CASE("a frame nobody sent (overlapping answers that happen to parse) is not a meter") {
  FakeBus bus;
  bus.add_dlt(addr(5), 0);
  bus.phantoms.push_back(dlt::Frame{*dlt::Address::parse(addr(77)), 0x93, {0x77, 0, 0, 0, 0, 0}});
  const auto s = run(bus, {});
  CHECK(addresses(s) == std::set<std::string>{addr(5)});
  REQUIRE(s.warnings().size() == 1);
  CHECK(s.warnings()[0].find(addr(77)) != std::string::npos);
}

TEST_CASE("2007 and 1997 meters on one bus, each with its protocol and profile") {
  FakeBus bus;
  bus.add_dlt(addr(1), 0);
  bus.add_dlt(addr(2), 1, dlt::Version::v1997);
  bus.add_dlt(addr(3), 2);
  const auto s = run(bus, {});
  REQUIRE(s.found().size() == 3);
  std::map<std::string, std::string> protocol, profile;
  for (const auto& m : s.found()) {
    protocol[m.address] = m.protocol;
    profile[m.address] = m.profile;
  }
  CHECK(protocol[addr(1)] == "dlt645-2007");
  CHECK(protocol[addr(2)] == "dlt645-1997");
  CHECK(profile[addr(2)] == "dlt645-1997-basic");
  CHECK(protocol[addr(3)] == "dlt645-2007");
}

TEST_CASE("a 1997 meter deaf to 2007 frames needs the 1997 search") {
  FakeBus bus;
  bus.add_dlt(addr(1), 0);
  bus.add_dlt(addr(2), 1);
  bus.add_dlt(addr(9), 2, dlt::Version::v1997, true);
  CHECK(addresses(run(bus, {})) == std::set<std::string>{addr(1), addr(2)});
  ScanRequest both;
  both.search_1997 = true;
  const auto s = run(bus, both);
  CHECK(addresses(s) == std::set<std::string>{addr(1), addr(2), addr(9)});
  for (const auto& m : s.found())
    CHECK(m.protocol == (m.address == addr(9) ? "dlt645-1997" : "dlt645-2007"));
}

// Careless: a Modbus scan that takes an exception for absence (the generic
// map refuses FC 04), or takes a converter's 0BH for a meter.
TEST_CASE("modbus: every unit that answers, an exception included, with its profile") {
  for (const bool gateway : {false, true}) {
    CAPTURE(gateway);
    FakeBus bus;
    bus.gateway = gateway;
    bus.add_modbus(1, "sdm630");
    bus.add_modbus(7, "sdm120");
    bus.add_modbus(100, "dtsu666");
    bus.add_modbus(150, "dtsu666h");
    bus.add_modbus(200, "generic");
    ScanRequest req;
    req.protocol = "modbus";
    const auto s = run(bus, req);
    std::map<std::string, std::string> profile;
    for (const auto& m : s.found()) {
      CHECK(m.protocol == "modbus");
      CHECK(!m.note.empty());
      profile[m.address] = m.profile;
    }
    CHECK(profile == std::map<std::string, std::string>{{"1", "sdm630"},
                                                        {"7", "sdm120"},
                                                        {"100", "dtsu666"},
                                                        {"150", "dtsu666h"},
                                                        {"200", "generic"}});
    CHECK(s.progress().total == 247);
  }
}

TEST_CASE("modbus: only first..last are asked") {
  FakeBus bus;
  bus.add_modbus(3, "sdm630");
  bus.add_modbus(9, "sdm630");
  ScanRequest req;
  req.protocol = "modbus";
  req.first_unit = 5;
  req.last_unit = 10;
  const auto s = run(bus, req);
  REQUIRE(s.found().size() == 1);
  CHECK(s.found()[0].address == "9");
  CHECK(s.progress().total == 6);
}

TEST_CASE("bad requests end the scan with an error, no probe sent") {
  FakeBus bus;
  ScanRequest req;
  req.protocol = "modbus";
  req.first_unit = 0;
  CHECK(!run(bus, req).error().empty());
  req.protocol = "iec62056";
  CHECK(!run(bus, req).error().empty());
  drivers::BusConfig tcp;
  tcp.name = "t1";
  tcp.tcp_host = "127.0.0.1";
  tcp.tcp_port = 502;
  CHECK(run(bus, {}, tcp).error().find("serial") != std::string::npos);
  CHECK(bus.listens + bus.reads == 0);
}

TEST_CASE("meter_config_toml pastes into a config that loads") {
  FakeBus bus;
  bus.add_dlt(addr(1), 0);
  bus.add_dlt(addr(2), 1, dlt::Version::v1997);
  FakeBus mbus;
  mbus.add_modbus(1, "sdm630");
  mbus.add_modbus(200, "generic");
  ScanRequest req;
  req.protocol = "modbus";
  const auto d = run(bus, {});
  const auto m = run(mbus, req);
  const std::string text =
      "[gateway]\nid = \"gw\"\ndata_dir = \"/data\"\n"
      "[[bus]]\nname = \"b1\"\nport = \"/dev/ttyS1\"\n"
      "[[bus]]\nname = \"m1\"\nport = \"/dev/ttyS2\"\n\n" +
      meter_config_toml(d.found(), "b1") + "\n" + meter_config_toml(m.found(), "m1");
  const auto r = parse_config(text, "meterd.toml");
  for (const auto& e : r.errors) MESSAGE(e.to_string());
  REQUIRE(r.config);
  REQUIRE(r.config->meters.size() == 4);
  CHECK(r.config->find_meter("b1-" + addr(2))->protocol == MeterProtocol::dlt645_1997);
  CHECK(r.config->find_meter("m1-unit200"));
  // JSON form of one
  const auto j = to_json(d.found()[0]);
  CHECK(j["address"] == d.found()[0].address);
  CHECK(j.contains("note"));
}
