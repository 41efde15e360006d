// Read profiles (firmware/profiles.hpp): the built-ins against the DI
// catalogue, the register maps and the simulated meters metersim runs;
// narrowing; user profiles from a config, decoding a vendor DI.
#include <algorithm>
#include <set>

#include <doctest/doctest.h>

#include "firmware/config.hpp"
#include "firmware/profiles.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/modbus_codec/plan.hpp"
#include "protocol/modbus_codec/registers.hpp"
#include "simulator/dlt645_meter.hpp"
#include "simulator/modbus_meter.hpp"

using namespace meterd;
using namespace meterd::firmware;
namespace dlt = meterd::protocol::dlt645;
namespace mb = meterd::protocol::modbus;

namespace {

const simulator::Millis t0 = simulator::from_civil(2026, 11, 27, 12, 0, 0);

std::set<std::string> quantities_of(const dlt::DataItem& item) {
  std::set<std::string> q;
  for (const auto& f : item.fields) q.insert(f.quantity);
  return q;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::vector<std::uint32_t> dis_of(const Profile& p) {
  std::vector<std::uint32_t> out;
  for (const auto& r : p.dlt_reads) out.push_back(r.item.di);
  return out;
}

simulator::Dlt645Meter sim_meter(dlt::Version v) {
  simulator::Dlt645MeterConfig c;
  c.id = "m1";
  c.version = v;
  c.address = *dlt::Address::parse("000000000001");
  c.seed = 7;
  return simulator::Dlt645Meter(c, t0);
}

}  // namespace

TEST_CASE("the built-in set: the names metersim --gateway-config writes") {
  const auto set = ProfileSet::builtin();
  for (const char* name : {"dlt645-basic", "dlt645-full", "dlt645-1997-basic", "sdm630", "sdm120",
                           "dtsu666", "dtsu666h", "generic"}) {
    CAPTURE(name);
    const Profile* p = set->find(name);
    REQUIRE(p);
    CHECK(p->name == name);
    CHECK(!p->quantities().empty());
  }
  CHECK(set->names().size() == 8);
  CHECK(set->find("nope") == nullptr);
  // builtin() hands out a fresh set: adding to one leaves the next alone.
  Profile extra;
  extra.name = "extra";
  set->add(extra);
  CHECK(set->find("extra"));
  CHECK(ProfileSet::builtin()->find("extra") == nullptr);
}

TEST_CASE("dlt645-basic reads the blocks of the brief, each with its singles") {
  const Profile& p = *ProfileSet::builtin()->find("dlt645-basic");
  CHECK(p.kind == Profile::Kind::dlt645);
  CHECK(p.version == dlt::Version::v2007);
  CHECK(dis_of(p) == std::vector<std::uint32_t>{0x0001FF00, 0x0002FF00, 0x0201FF00, 0x0202FF00,
                                                0x0203FF00, 0x0204FF00, 0x0206FF00, 0x02800002});
  const auto singles = [&](std::size_t i) {
    std::vector<std::uint32_t> out;
    for (const auto& s : p.dlt_reads[i].singles) out.push_back(s.di);
    return out;
  };
  // Total and tariffs 1..4: the tariff is DI1 (00010100 is tariff 1);
  // 00010001..00010004 would be the totals of past settlement periods.
  CHECK(singles(0) ==
        std::vector<std::uint32_t>{0x00010000, 0x00010100, 0x00010200, 0x00010300, 0x00010400});
  CHECK(singles(1) ==
        std::vector<std::uint32_t>{0x00020000, 0x00020100, 0x00020200, 0x00020300, 0x00020400});
  CHECK(singles(2) == std::vector<std::uint32_t>{0x02010100, 0x02010200, 0x02010300});
  CHECK(singles(3) == std::vector<std::uint32_t>{0x02020100, 0x02020200, 0x02020300});
  CHECK(singles(4) == std::vector<std::uint32_t>{0x02030000, 0x02030100, 0x02030200, 0x02030300});
  CHECK(singles(7).empty());  // frequency is a single DI
  const auto q = p.quantities();
  for (const char* name :
       {"energy.active.import.total", "energy.active.import.t4", "energy.active.export.total",
        "voltage.l3", "current.l1", "power.active.total", "power.reactive.l2", "power_factor.total",
        "frequency"})
    CHECK_MESSAGE(has(q, name), name);
}

TEST_CASE(
    "built-in DL/T 645 profiles: every DI catalogued in its version, singles belong to "
    "their block, and the simulated meter answers every one") {
  for (const char* name : {"dlt645-basic", "dlt645-full", "dlt645-1997-basic"}) {
    CAPTURE(name);
    const Profile& p = *ProfileSet::builtin()->find(name);
    REQUIRE(p.kind == Profile::Kind::dlt645);
    REQUIRE(!p.dlt_reads.empty());
    auto meter = sim_meter(p.version);
    std::set<std::uint32_t> seen;
    for (const auto& r : p.dlt_reads) {
      const std::string di = dlt::di_to_string(p.version, r.item.di);
      CAPTURE(di);
      CHECK(seen.insert(r.item.di).second);
      CHECK(r.item.version == p.version);
      const auto cat = dlt::lookup(p.version, r.item.di);
      REQUIRE(cat);
      CHECK(cat->fields.size() == r.item.fields.size());
      CHECK(meter.read(r.item.di, t0).has_value());
      const auto block_q = quantities_of(r.item);
      const bool is_block = p.version == dlt::Version::v2007
                                ? (r.item.di & 0xFF) == 0xFF || ((r.item.di >> 8) & 0xFF) == 0xFF
                                : (r.item.di & 0x0F) == 0x0F;
      CHECK(is_block == !r.singles.empty());
      for (const auto& s : r.singles) {
        CAPTURE(dlt::di_to_string(p.version, s.di));
        CHECK(s.version == p.version);
        REQUIRE(dlt::lookup(p.version, s.di));
        // Same DI but the block's wildcard byte / nibble.
        const std::uint32_t mask = p.version == dlt::Version::v1997 ? 0xFFF0
                                   : (r.item.di & 0xFF) == 0xFF     ? 0xFFFFFF00
                                                                    : 0xFFFF00FF;
        CHECK((s.di & mask) == (r.item.di & mask));
        for (const auto& q : quantities_of(s)) CHECK_MESSAGE(block_q.count(q), q);
        CHECK(meter.read(s.di, t0).has_value());
      }
    }
  }
}

TEST_CASE("dlt645-full is basic plus more; dlt645-1997-basic uses 1997 blocks") {
  const auto set = ProfileSet::builtin();
  const auto basic = dis_of(*set->find("dlt645-basic"));
  const auto full = dis_of(*set->find("dlt645-full"));
  for (const auto di : basic) CHECK(std::count(full.begin(), full.end(), di) == 1);
  for (const std::uint32_t di : {0x0003FF00u, 0x0004FF00u, 0x0205FF00u, 0x0101FF00u, 0x02800007u,
                                 0x04000101u, 0x04000102u, 0x040005FFu})
    CHECK(std::count(full.begin(), full.end(), di) == 1);
  const auto q = set->find("dlt645-full")->quantities();
  for (const char* name :
       {"energy.reactive.import.total", "power.apparent.total", "demand.active.import.max",
        "temperature.meter", "meter.date", "meter.time", "status.word1"})
    CHECK_MESSAGE(has(q, name), name);

  const Profile& old = *set->find("dlt645-1997-basic");
  CHECK(old.version == dlt::Version::v1997);
  CHECK(dis_of(old) ==
        std::vector<std::uint32_t>{0x901F, 0x902F, 0xB61F, 0xB62F, 0xB63F, 0xB64F, 0xB65F});
  std::vector<std::uint32_t> singles;
  for (const auto& s : old.dlt_reads[0].singles) singles.push_back(s.di);
  CHECK(singles == std::vector<std::uint32_t>{0x9010, 0x9011, 0x9012, 0x9013, 0x9014});
  singles.clear();
  // B634/B635 (power limits) are not members of the B63F block's phases.
  for (const auto& s : old.dlt_reads[4].singles) singles.push_back(s.di);
  CHECK(singles == std::vector<std::uint32_t>{0xB630, 0xB631, 0xB632, 0xB633});
}

TEST_CASE(
    "built-in Modbus profiles: registers of the model, measurements only, the model's "
    "quirks, and plans the model and the simulated meter accept") {
  for (const char* name : {"sdm630", "sdm120", "dtsu666", "dtsu666h", "generic"}) {
    CAPTURE(name);
    const Profile& p = *ProfileSet::builtin()->find(name);
    const mb::Model* model = mb::find_model(name);
    REQUIRE(model);
    REQUIRE(p.kind == Profile::Kind::modbus);
    REQUIRE(p.model.get() == model);
    REQUIRE(!p.registers.empty());
    std::set<std::string> quantities;
    for (const auto* r : p.registers) {
      CAPTURE(r->quantity);
      CHECK(mb::register_at(*model, r->table, r->address) == r);
      CHECK(r->alternative == 0);
      CHECK(quantities.insert(r->quantity).second);
      CHECK(r->quantity.rfind("setting.", 0) != 0);
      CHECK(r->quantity.rfind("info.", 0) != 0);
    }
    // Every primary measurement of the map is read.
    for (const auto& r : model->registers)
      if (is_measurement(r)) CHECK_MESSAGE(quantities.count(r.quantity), r.quantity);
    const auto& q = model->quirks;
    CHECK(p.min_gap == std::chrono::milliseconds(q.recommended_request_gap_ms
                                                     ? q.recommended_request_gap_ms
                                                     : q.min_request_gap_ms));
    CHECK(p.max_registers == q.plan_max_registers);
    CHECK(p.max_gap == q.plan_max_gap);

    simulator::ModbusMeterConfig c;
    c.model = model;
    simulator::ModbusMeter meter(c, t0);
    const auto blocks = mb::plan_reads(*model, p.registers,
                                       {.max_registers = p.max_registers, .max_gap = p.max_gap});
    for (const auto& b : blocks) CHECK(!mb::check_read(*model, b.function, b.address, b.count));
    for (const auto* r : p.registers) CHECK_MESSAGE(meter.words(*r, t0), r->quantity);
  }
  const Profile& sdm = *ProfileSet::builtin()->find("sdm630");
  CHECK(sdm.min_gap == std::chrono::milliseconds(100));
  CHECK(sdm.max_registers == 80);
  // Extension names are listed like canonical ones.
  CHECK(has(sdm.quantities(), "phase_angle.l1"));
  CHECK(has(ProfileSet::builtin()->find("dtsu666")->quantities(), "energy.reactive.q1.total"));
}

TEST_CASE("narrowed: only the reads that deliver what is wanted") {
  const auto set = ProfileSet::builtin();
  const Profile& basic = *set->find("dlt645-basic");
  SUBCASE("one quantity a single delivers: read the single alone") {
    const Profile n = basic.narrowed({"energy.active.import.total"});
    REQUIRE(n.dlt_reads.size() == 1);
    CHECK(n.dlt_reads[0].item.di == 0x00010000);
    CHECK(n.dlt_reads[0].singles.empty());
    CHECK(n.keep == std::vector<std::string>{"energy.active.import.total"});
    CHECK(n.quantities() == std::vector<std::string>{"energy.active.import.total"});
  }
  SUBCASE("several members of a block: the block, with the singles that matter") {
    const Profile n = basic.narrowed({"voltage.l1", "voltage.l3", "frequency"});
    REQUIRE(n.dlt_reads.size() == 2);
    CHECK(n.dlt_reads[0].item.di == 0x0201FF00);
    REQUIRE(n.dlt_reads[0].singles.size() == 2);
    CHECK(n.dlt_reads[0].singles[0].di == 0x02010100);
    CHECK(n.dlt_reads[0].singles[1].di == 0x02010300);
    CHECK(n.dlt_reads[1].item.di == 0x02800002);
  }
  SUBCASE("a tariff only the block has (t5): the block without fallback") {
    const Profile n = basic.narrowed({"energy.active.import.t5"});
    REQUIRE(n.dlt_reads.size() == 1);
    CHECK(n.dlt_reads[0].item.di == 0x0001FF00);
    CHECK(n.dlt_reads[0].singles.empty());
  }
  SUBCASE("Modbus: the registers of those quantities, same model") {
    const Profile& sdm = *set->find("sdm630");
    const Profile n = sdm.narrowed({"voltage.l1", "energy.active.import.total"});
    REQUIRE(n.registers.size() == 2);
    CHECK(n.registers[0]->quantity == "voltage.l1");
    CHECK(n.registers[1]->quantity == "energy.active.import.total");
    CHECK(n.model == sdm.model);
    CHECK(n.min_gap == sdm.min_gap);
  }
}

TEST_CASE("catalogue_read: nullopt outside the catalogue; singles of a status-word block") {
  CHECK(!catalogue_read(dlt::Version::v2007, 0x12345678));
  const auto r = catalogue_read(dlt::Version::v2007, 0x040005FF);
  REQUIRE(r);
  CHECK(r->singles.size() == 7);
  CHECK(catalogue_read(dlt::Version::v1997, 0x9010)->singles.empty());
}

namespace {

const std::string head = R"([gateway]
id = "gw"
data_dir = "/tmp/gw"
[[bus]]
name = "b1"
port = "/dev/null"
)";

LoadResult parse(const std::string& text) { return parse_config(head + text, "p.toml"); }

std::string all_errors(const LoadResult& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.to_string() + "\n";
  return s;
}

}  // namespace

TEST_CASE("user DL/T 645 profile: catalogue DIs and a vendor item that decodes a sample payload") {
  const auto r = parse(R"([[profile]]
name = "vendor-x"
protocol = "dlt645-2007"
dis = ["0001FF00", "02010100"]
[[profile.item]]
di = "04A00101"
bytes = 3
decimals = 1
signed = true
unit = "°C"
quantity = "temperature.transformer"
[[meter]]
id = "m1"
bus = "b1"
protocol = "dlt645-2007"
address = "000000000001"
profile = "vendor-x"
quantities = ["temperature.transformer", "voltage.l1"]
)");
  REQUIRE_MESSAGE(r.config, all_errors(r));
  const Profile* p = r.config->profiles->find("vendor-x");
  REQUIRE(p);
  CHECK(p->version == dlt::Version::v2007);
  REQUIRE(p->dlt_reads.size() == 3);
  CHECK(p->dlt_reads[0].singles.size() == 5);
  CHECK(p->dlt_reads[1].singles.empty());
  const auto& item = p->dlt_reads[2].item;
  CHECK(item.di == 0x04A00101);
  CHECK(p->dlt_reads[2].singles.empty());
  // 3 bytes (unscrambled), low byte first: 45 23 81 is BCD 81 23 45; bit 7
  // of the highest byte is the sign, so -012345 with one decimal.
  const std::vector<std::uint8_t> payload{0x45, 0x23, 0x81};
  const auto d = dlt::decode_values(item, payload);
  REQUIRE(!d.error);
  REQUIRE(d.values.size() == 1);
  CHECK(d.values[0].quantity == "temperature.transformer");
  CHECK(d.values[0].unit == "°C");
  const auto* v = std::get_if<protocol::Decimal>(&d.values[0].value);
  REQUIRE(v);
  CHECK(protocol::to_string(*v) == "-1234.5");
  CHECK(dlt::decode_values(item, std::vector<std::uint8_t>{0x45, 0x23}).error);
  // The meter's narrowing keeps the vendor item and the single voltage.
  const Profile n = p->narrowed(r.config->meters[0].quantities);
  REQUIRE(n.dlt_reads.size() == 2);
  CHECK(n.dlt_reads[0].item.di == 0x02010100);
  CHECK(n.dlt_reads[1].item.di == 0x04A00101);
}

TEST_CASE("user DL/T 645 item naming a catalogued quantity carries the catalogue's key") {
  const auto r = parse(R"([[profile]]
name = "t5"
protocol = "dlt645-2007"
[[profile.item]]
di = "00010005"
bytes = 4
decimals = 2
unit = "kWh"
quantity = "energy.active.import.t5"
)");
  REQUIRE_MESSAGE(r.config, all_errors(r));
  const auto& f = r.config->profiles->find("t5")->dlt_reads[0].item.fields[0];
  CHECK(f.key.measurand == protocol::Measurand::energy);
  CHECK(f.key.tariff == 5);
  CHECK(protocol::to_string(f.key) == "energy.active.import.t5");
}

TEST_CASE("user Modbus profile: a model's quantities plus registers of one's own") {
  const auto r = parse(R"([[profile]]
name = "sdm-lite"
protocol = "modbus"
model = "sdm630"
quantities = ["voltage.l1", "energy.active.import.total"]
[[profile.register]]
address = 0x0500
table = "input"
type = "float32"
scale = "0.001"
unit = "kW"
quantity = "power.active.inverter"
[[profile]]
name = "bare"
protocol = "modbus"
word_order = "CDAB"
max_registers = 40
[[profile.register]]
address = 10
type = "int32"
scale = "0.01"
word_order = "CDAB"
unit = "kWh"
quantity = "energy.active.import.total"
)");
  REQUIRE_MESSAGE(r.config, all_errors(r));
  const Profile& p = *r.config->profiles->find("sdm-lite");
  CHECK(p.kind == Profile::Kind::modbus);
  REQUIRE(p.registers.size() == 3);
  CHECK(p.registers[0]->quantity == "voltage.l1");
  CHECK(p.registers[1]->quantity == "energy.active.import.total");
  CHECK(p.registers[2]->quantity == "power.active.inverter");
  CHECK(p.registers[2]->scale.identical(protocol::Decimal{1, -3}));
  CHECK(p.registers[2]->table == mb::Table::input);
  for (const auto* reg : p.registers)
    CHECK(mb::register_at(*p.model, reg->table, reg->address) == reg);
  // sdm630's quirks carry over.
  CHECK(p.min_gap == std::chrono::milliseconds(100));
  CHECK(p.max_registers == 80);
  CHECK(p.model->quirks.even_alignment);
  CHECK(p.quantities() == std::vector<std::string>{"voltage.l1", "energy.active.import.total",
                                                   "power.active.inverter"});

  const Profile& bare = *r.config->profiles->find("bare");
  REQUIRE(bare.registers.size() == 1);
  CHECK(bare.registers[0]->table == mb::Table::holding);
  CHECK(bare.registers[0]->encoding == mb::Encoding::int32);
  CHECK(bare.model->quirks.word_order == mb::WordOrder::low_word_first);
  CHECK(bare.max_registers == 40);
  CHECK(bare.min_gap == std::chrono::milliseconds(0));
}
