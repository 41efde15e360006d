// The register maps: cross-checked against the tables of
// tests/data/modbus/register-tables.md, internally consistent, every register
// round-tripping encode → decode, concrete values from the documents, and
// the slave-side quirk rules (check_read / check_write).
#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "protocol/decimal.hpp"
#include "protocol/modbus_codec/error.hpp"
#include "protocol/modbus_codec/pdu.hpp"
#include "protocol/modbus_codec/registers.hpp"
#include "protocol/modbus_codec/value.hpp"

using namespace meterd::protocol::modbus;
using meterd::protocol::Decimal;
using meterd::protocol::parse_decimal;
using meterd::protocol::to_string;
using Words = std::vector<std::uint16_t>;

namespace {

const Model& model(const char* name) {
  const Model* m = find_model(name);
  REQUIRE(m != nullptr);
  return *m;
}

std::string meters_md() {
  std::ifstream in(std::string(METERD_DATA_DIR) + "/modbus/register-tables.md");
  REQUIRE(in.good());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string between(const std::string& text, const std::string& from, const std::string& to) {
  const auto a = text.find(from);
  REQUIRE(a != std::string::npos);
  const auto b = text.find(to, a + from.size());
  REQUIRE(b != std::string::npos);
  return text.substr(a, b - a);
}

// Addresses of the table rows in `section`: the first cell starting with
// 0xNNNN tokens ("0x002A / 0x002C" gives both, "0x002F–0x0034" the range). Rows
// whose cells include a bare "—" scale (unknown slots) are skipped.
std::set<std::uint16_t> table_addresses(const std::string& section) {
  std::set<std::uint16_t> out;
  std::istringstream lines(section);
  std::string line;
  const std::regex hex("0x([0-9A-Fa-f]{4})");
  while (std::getline(lines, line)) {
    if (line.rfind("|", 0) != 0) continue;
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream cs(line.substr(1));
    while (std::getline(cs, cell, '|')) {
      cell.erase(std::remove(cell.begin(), cell.end(), '*'), cell.end());
      const auto b = cell.find_first_not_of(' ');
      const auto e = cell.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
    }
    if (std::count(cells.begin(), cells.end(), "—") >= 2) continue;  // unknown slot
    for (const auto& c : cells) {
      if (c.rfind("0x", 0) != 0) continue;  // the address cell starts with it
      std::vector<unsigned> found;
      for (std::sregex_iterator it(c.begin(), c.end(), hex), end; it != end; ++it)
        found.push_back(static_cast<unsigned>(std::stoul((*it)[1].str(), nullptr, 16)));
      if (found.empty()) continue;
      if (found.size() == 2 && c.find("–") != std::string::npos) {
        for (unsigned a = found[0]; a <= found[1]; ++a) out.insert(static_cast<std::uint16_t>(a));
      } else {
        for (unsigned a : found) out.insert(static_cast<std::uint16_t>(a));
      }
      break;
    }
  }
  return out;
}

std::set<std::uint16_t> model_addresses(const Model& m, Table t) {
  std::set<std::uint16_t> out;
  for (const Register& r : m.registers)
    if (r.table == t) out.insert(r.address);
  return out;
}

// Every address register-tables.md lists is in the map; the map's extras are the
// ones named (rows like "Sa / Sb / Sc" give only their first address).
void check_listed(const Model& m, Table t, const std::set<std::uint16_t>& listed,
                  const std::set<std::uint16_t>& extras = {}) {
  CAPTURE(m.name);
  CAPTURE(to_string(t));
  REQUIRE(!listed.empty());
  const auto have = model_addresses(m, t);
  for (auto a : listed) {
    CAPTURE(a);
    CHECK(have.count(a) == 1);
  }
  for (auto a : have) {
    CAPTURE(a);
    CHECK((listed.count(a) == 1 || extras.count(a) == 1));
  }
}

// Canonical quantities and units (docs/contracts.md).
const std::map<std::string, std::string>& canonical_units() {
  static const std::map<std::string, std::string> units = [] {
    std::map<std::string, std::string> u;
    for (const char* q :
         {"energy.active.import.total", "energy.active.import.t1", "energy.active.import.t2",
          "energy.active.import.t3", "energy.active.import.t4", "energy.active.export.total",
          "energy.active.combined.total"})
      u[q] = "kWh";
    u["energy.reactive.import.total"] = "kvarh";
    u["energy.reactive.export.total"] = "kvarh";
    for (const char* p : {"l1", "l2", "l3"}) u[std::string("voltage.") + p] = "V";
    for (const char* p : {"l1", "l2", "l3", "n"}) u[std::string("current.") + p] = "A";
    for (const char* p : {"total", "l1", "l2", "l3"}) {
      u[std::string("power.active.") + p] = "kW";
      u[std::string("power_factor.") + p] = "";
    }
    u["power.reactive.total"] = "kvar";
    u["power.apparent.total"] = "kVA";
    u["frequency"] = "Hz";
    u["demand.active.import.max"] = "kW";
    u["temperature.meter"] = "°C";
    return u;
  }();
  return units;
}

// A few raw values the register can carry, as canonical decimals.
std::vector<Decimal> samples(const Register& r) {
  std::vector<std::int64_t> raws;
  switch (r.encoding) {
    case Encoding::float32:
      raws = {0, 1, -1, 2302, 123456, 9999999, -1963};
      break;
    case Encoding::int16:
      raws = {0, 1, -1, 32767, -32768, 701};
      break;
    case Encoding::uint16:
      raws = {0, 1, 65535, 0x3B11};
      break;
    case Encoding::int32:
      raws = {0, -1, 2147483647, -2147483647 - 1, 123456};
      break;
    case Encoding::uint32:
      raws = {0, 1, 4294967295, 123456};
      break;
  }
  std::vector<Decimal> out;
  for (auto raw : raws) {
    // raw, and for floats raw with a decimal point inside (230.2 and the like)
    out.push_back(*multiply({raw, 0}, r.scale));
    if (r.encoding == Encoding::float32) out.push_back(*multiply({raw, -1}, r.scale));
  }
  return out;
}

}  // namespace

TEST_CASE("models are found by name") {
  for (const char* name : {"sdm630", "sdm120", "dtsu666", "dtsu666h", "generic"}) {
    const Model* m = find_model(name);
    REQUIRE(m != nullptr);
    CHECK(m->name == name);
  }
  CHECK(find_model("SDM630") == find_model("sdm630"));
  CHECK(find_model("sdm72") == nullptr);
  CHECK(find_model("") == nullptr);
  CHECK(models().size() == 5);
}

TEST_CASE("maps match the tables of register-tables.md") {
  const std::string md = meters_md();
  check_listed(model("sdm630"), Table::input,
               table_addresses(between(md, "### 1.2 Input registers", "### 1.3")));
  check_listed(model("sdm630"), Table::holding,
               table_addresses(between(md, "### 1.3 Holding registers", "### 1.4")));
  check_listed(model("sdm120"), Table::input,
               table_addresses(between(md, "### 2.2 Input registers", "### 2.3")));
  check_listed(model("sdm120"), Table::holding,
               table_addresses(between(md, "### 2.3 Holding registers", "Disagreements:")));
  check_listed(model("dtsu666"), Table::holding,
               [&] {
                 auto s = table_addresses(between(md, "### 3.2 Configuration", "**Conflict:**"));
                 for (auto a : table_addresses(between(md, "### 3.3 Measurement", "### 3.4")))
                   s.insert(a);
                 for (auto a : table_addresses(between(md, "### 3.4 Energy", "### 3.5")))
                   s.insert(a);
                 s.insert(0x4000);  // "Also seen" in prose (OpenEMS, mbpoll page)
                 return s;
               }(),
               {0x2026, 0x2028});  // "Sa / Sb / Sc" row
  check_listed(model("dtsu666h"), Table::holding,
               table_addresses(between(md, "| Ia | 402103", "Disagreement: the unmerged")),
               {0x07D1,                                          // handshake (prose)
                0x085A, 0x085C, 0x0862, 0x0864, 0x086A, 0x086C,  // "Qa / Qb / Qc" rows
                0x0870, 0x0872, 0x0874,                          // "+ 2160-2164 per phase"
                0x08A8, 0x08A9, 0x08AA, 0x08AB, 0x08AC, 0x08AD, 0x08AE, 0x08AF});  // params
  CHECK(model_addresses(model("dtsu666"), Table::input).empty());
  CHECK(model_addresses(model("dtsu666h"), Table::input).empty());
}

TEST_CASE("maps are consistent") {
  for (const Model& m : models()) {
    CAPTURE(m.name);
    CHECK(!m.description.empty());
    const Quirks& q = m.quirks;
    CHECK(q.plan_max_registers <= q.max_read_registers);
    CHECK(q.max_read_registers <= max_read_registers);
    CHECK(q.default_unit >= 1);
    CHECK(q.default_unit <= 247);
    std::set<std::pair<std::string, int>> names;
    const Register* prev = nullptr;
    for (const Register& r : m.registers) {
      CAPTURE(r.quantity);
      CAPTURE(r.address);
      // Ordered, no two registers share a word.
      if (prev != nullptr && prev->table == r.table) CHECK(prev->end() <= r.address);
      if (prev != nullptr) CHECK(prev->table <= r.table);
      prev = &r;
      CHECK(register_at(m, r.table, r.address) == &r);
      CHECK(register_covering(m, r.table, static_cast<std::uint16_t>(r.end() - 1)) == &r);
      // A quantity has one primary and numbered fallbacks.
      CHECK(names.insert({r.quantity, r.alternative}).second);
      if (r.alternative > 0) CHECK(find_register(m, r.quantity) != nullptr);
      CHECK(!r.description.empty());
      // Scales are exact powers of ten (a decimal exponent shift).
      CHECK(r.scale.mantissa == 1);
      // Input registers cannot be written.
      if (r.table == Table::input) CHECK(r.access == Access::read);
      // Canonical names carry the canonical unit.
      const auto it = canonical_units().find(r.quantity);
      if (it != canonical_units().end()) CHECK(r.unit == it->second);
      if (r.quantity.rfind("energy.active", 0) == 0) CHECK(r.unit == "kWh");
      if (r.quantity.rfind("energy.reactive", 0) == 0) CHECK(r.unit == "kvarh");
      if (r.quantity.rfind("power.active", 0) == 0) CHECK(r.unit == "kW");
      if (r.quantity.rfind("power.reactive", 0) == 0) CHECK(r.unit == "kvar");
      if (r.quantity.rfind("power.apparent", 0) == 0) CHECK(r.unit == "kVA");
      if (r.quantity.rfind("demand.active", 0) == 0) CHECK(r.unit == "kW");
    }
  }
}

TEST_CASE("every register of every model round-trips encode → decode") {
  std::size_t checked = 0;
  for (const Model& m : models()) {
    for (const Register& r : m.registers) {
      for (const WordOrder order : {WordOrder::high_word_first, WordOrder::low_word_first}) {
        for (const Decimal& v : samples(r)) {
          CAPTURE(m.name);
          CAPTURE(r.quantity);
          CAPTURE(to_string(v));
          const auto words = encode_value(r, v, order);
          REQUIRE(words);
          CHECK(words->size() == r.words());
          const auto back = decode_value(r, *words, order);
          REQUIRE(back);
          CHECK(*back == v);
          ++checked;
        }
      }
    }
  }
  MESSAGE("register round trips: " << checked);
}

TEST_CASE("concrete values from register-tables.md decode through the maps") {
  auto plain_float = [] { return Register{}; };  // float32, scale 1
  auto value = [](const char* name, const char* quantity, const Words& w) {
    const Register* r = find_register(model(name), quantity);
    REQUIRE(r != nullptr);
    const auto v = decode_value(*r, w);
    REQUIRE(v);
    return to_string(*v);
  };
  // The documents' "230.2 V" and "231.68 V" are rounded for display; the
  // floats on the wire name 230.20001 and 231.68489 (see test_modbus_values).
  CHECK(value("sdm630", "voltage.l1", {0x4366, 0x3334}) == "230.20001");
  CHECK(value("sdm630", "voltage.l1", {0x4367, 0xAF55}) == "231.68489");
  CHECK(value("sdm120", "voltage.l1", {0x4366, 0x3333}) == "230.2");
  CHECK(value("sdm630", "info.demand_time", {0x3F80, 0x0000}) == "1");
  CHECK(value("sdm630", "setting.demand_period", {0x4270, 0x0000}) == "60");
  CHECK(value("sdm630", "setting.unit_id", {0x40A0, 0x0000}) == "5");
  // SDM120 (Tasmota): -196.3 W while exporting is -0.1963 kW.
  CHECK(value("sdm120", "power.active.total", *encode_value(plain_float(), {-1963, -1})) ==
        "-0.1963");
  // DTSU666: 230.5 V is sent as float 2305.0 (45 10 10 00).
  CHECK(value("dtsu666", "voltage.l1", {0x4510, 0x1000}) == "230.5");
  // UrAt 10 (raw) is a PT ratio of 1.0; REV 204, UCode 701 as int16.
  CHECK(value("dtsu666", "setting.pt_ratio", {10}) == "1.0");
  CHECK(value("dtsu666", "info.software_version", {204}) == "204");
  CHECK(value("dtsu666h", "info.meter_status", {0x3B11}) == "15121");
  // DTSU666 frequency 5000.0 × 0.01 Hz, PF 998 × 0.001.
  CHECK(value("dtsu666", "frequency", {0x459C, 0x4000}) == "50");
  CHECK(value("dtsu666", "power_factor.total", *encode_value(plain_float(), {998, 0})) == "0.998");
  // Addresses named in the text.
  const Model& sdm630 = model("sdm630");
  CHECK(find_register(sdm630, "setting.parity_stop")->address == 0x0012);
  CHECK(find_register(sdm630, "setting.unit_id")->address == 0x0014);
  CHECK(find_register(sdm630, "setting.baud_code")->address == 0x001C);
  CHECK(find_register(sdm630, "info.serial_number")->encoding == Encoding::uint32);
  CHECK(find_register(model("dtsu666"), "setting.baud_code")->address == 0x002D);
  CHECK(find_register(model("dtsu666"), "setting.unit_id")->address == 0x002E);
}

TEST_CASE("DTSU666 energy: block A first, block B and 0x4000 as fallbacks") {
  const Model& m = model("dtsu666");
  const auto imp = find_registers(m, "energy.active.import.total");
  REQUIRE(imp.size() == 3);
  CHECK(imp[0]->address == 0x101E);
  CHECK(imp[1]->address == 0x401E);
  CHECK(imp[2]->address == 0x4000);
  CHECK(find_register(m, "energy.active.import.total") == imp[0]);
  const auto exp = find_registers(m, "energy.active.export.total");
  REQUIRE(exp.size() == 2);
  CHECK(exp[0]->address == 0x1028);
  CHECK(exp[1]->address == 0x4028);
  CHECK(find_register(m, "energy.reactive.q1.total")->address == 0x4032);
  CHECK(find_register(m, "power.active.total")->scale.identical(Decimal{1, -4}));
  CHECK(find_register(m, "current.l1")->scale.identical(Decimal{1, -3}));
  CHECK(find_register(m, "nonexistent") == nullptr);
  CHECK(find_registers(m, "nonexistent").empty());
}

TEST_CASE("quirk data per model") {
  const Quirks& sdm630 = model("sdm630").quirks;
  CHECK(sdm630.max_read_registers == 80);
  CHECK(sdm630.even_alignment);
  CHECK(sdm630.min_request_gap_ms == 60);
  CHECK(sdm630.default_baud == 9600);
  CHECK(model("sdm120").quirks.default_baud == 2400);
  const Quirks& dtsu = model("dtsu666").quirks;
  CHECK(dtsu.fc04_reads_holding);
  CHECK_FALSE(dtsu.even_alignment);
  CHECK(model("dtsu666h").quirks.default_unit == 11);
  CHECK(table_for_read(model("dtsu666"), fc::read_input_registers) == Table::holding);
  CHECK(table_for_read(model("sdm630"), fc::read_input_registers) == Table::input);
  CHECK(table_for_read(model("sdm630"), fc::read_holding_registers) == Table::holding);
  CHECK_FALSE(table_for_read(model("sdm630"), fc::read_coils));
  CHECK(read_function(Table::input) == 0x04);
  CHECK(read_function(Table::holding) == 0x03);
}

TEST_CASE("check_read: Eastron alignment, size and single-register quirks") {
  const Model& m = model("sdm630");
  const auto fc04 = fc::read_input_registers;
  CHECK_FALSE(check_read(m, fc04, 0x0000, 2));
  CHECK_FALSE(check_read(m, fc04, 0x0000, 80));
  CHECK(check_read(m, fc04, 0x0000, 82) == Exception::illegal_data_value);
  CHECK(check_read(m, fc04, 0x0001, 2) == Exception::illegal_data_address);
  CHECK(check_read(m, fc04, 0x0000, 3) == Exception::illegal_data_address);
  CHECK(check_read(m, fc04, 0x0000, 0) == Exception::illegal_data_value);
  // The single-register read is answered (mbmd #63: 01 03 00 23 00 01).
  CHECK_FALSE(check_read(m, fc::read_holding_registers, 0x0023, 1));
  // Undocumented addresses read as 0 (ESPHome reads 0 × 80; 0x4A38 × 2 answered).
  CHECK_FALSE(check_read(m, fc::read_holding_registers, 0x4A38, 2));
  CHECK(check_read(m, fc::read_coils, 0, 2) == Exception::illegal_function);
  CHECK(check_read(m, 0x08, 0, 2) == Exception::illegal_function);
}

TEST_CASE("check_write: one parameter per FC 10 write, no FC 06 on Eastron and Chint") {
  const Model& m = model("sdm630");
  CHECK_FALSE(check_write(m, fc::write_multiple_registers, 0x0002, 2));  // demand period
  CHECK_FALSE(check_write(m, fc::write_multiple_registers, 0x0014, 2));  // unit id
  CHECK(check_write(m, fc::write_multiple_registers, 0x0012, 4) ==
        Exception::illegal_data_address);  // two parameters
  CHECK(check_write(m, fc::write_multiple_registers, 0x0013, 2) ==
        Exception::illegal_data_address);  // half of each
  CHECK(check_write(m, fc::write_multiple_registers, 0x0000, 2) ==
        Exception::illegal_data_address);  // read-only Demand Time
  CHECK(check_write(m, fc::write_multiple_registers, 0x0100, 2) ==
        Exception::illegal_data_address);                                // not a holding register
  CHECK_FALSE(check_write(m, fc::write_multiple_registers, 0xF010, 1));  // reset, 2 bytes hex
  CHECK(check_write(m, fc::write_single_register, 0x0014, 1) == Exception::illegal_function);
  CHECK(check_write(m, fc::write_multiple_registers, 0x0014, 0) == Exception::illegal_data_value);
  CHECK(check_write(m, fc::write_multiple_registers, 0x0014, 124) == Exception::illegal_data_value);

  const Model& d = model("dtsu666");
  CHECK_FALSE(check_write(d, fc::write_multiple_registers, 0x002E, 1));  // Addr
  CHECK_FALSE(check_write(d, fc::write_multiple_registers, 0x002C, 3));  // Protocol, bAud, Addr
  CHECK(check_write(d, fc::write_single_register, 0x002E, 1) == Exception::illegal_function);
  CHECK(check_write(d, fc::write_multiple_registers, 0x2000, 2) ==
        Exception::illegal_data_address);  // measurements are read-only
}

TEST_CASE("check_read / check_write on the strict generic map") {
  const Model& m = model("generic");
  const auto fc03 = fc::read_holding_registers;
  CHECK_FALSE(check_read(m, fc03, 0x0000, 32));
  CHECK_FALSE(check_read(m, fc03, 0x0100, 20));
  CHECK(check_read(m, fc03, 0x0000, 33) == Exception::illegal_data_address);  // 0x0020 unlisted
  CHECK(check_read(m, fc03, 0x0001, 1) == Exception::illegal_data_address);   // half a uint32
  CHECK(check_read(m, fc03, 0x0000, 1) == Exception::illegal_data_address);
  CHECK_FALSE(check_read(m, fc03, 0x001A, 1));  // int16 PF
  CHECK(check_read(m, fc::read_input_registers, 0x0000, 2) == Exception::illegal_data_address);
  CHECK_FALSE(check_write(m, fc::write_single_register, 0x0200, 1));
  CHECK_FALSE(check_write(m, fc::write_multiple_registers, 0x0200, 2));
  CHECK(check_write(m, fc::write_single_register, 0x0000, 1) == Exception::illegal_data_address);
  CHECK(check_write(m, fc::write_multiple_registers, 0x0200, 3) == Exception::illegal_data_address);
}

TEST_CASE("error categories are distinct and named") {
  CHECK(exception_category().name() == std::string("modbus.exception"));
  CHECK(link_category().name() == std::string("modbus.link"));
  CHECK(value_category().name() == std::string("modbus.value"));
  const std::error_code ex = Exception::illegal_data_address;
  const std::error_code link = LinkError::bad_crc;
  CHECK(ex != link);
  CHECK(ex.value() == 2);
  CHECK(exception_code(ex) == 2);
  CHECK(exception_code(link) == 4);
  CHECK(exception_error(0x42).message() == "exception 42");
  CHECK(link.message() == "bad CRC");
}
