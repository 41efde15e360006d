// The data-identifier catalogue: every catalogued DI of both versions round
// trips random wire data and random values; the sign rule applies exactly
// to the items the standard marks signed; absent data decodes to null.
#include <algorithm>
#include <map>
#include <random>
#include <set>

#include <doctest/doctest.h>

#include "protocol/dlt645/catalogue.hpp"

using namespace meterd::protocol;
using namespace meterd::protocol::dlt645;

namespace {

std::vector<std::uint8_t> hex(const char* text) { return *parse_hex(text); }

std::uint8_t random_bcd(std::mt19937& rng, unsigned max_value = 99, unsigned min_value = 0) {
  std::uniform_int_distribution<unsigned> d(min_value, max_value);
  const unsigned v = d(rng);
  return static_cast<std::uint8_t>(((v / 10) << 4) | (v % 10));
}

// Valid wire bytes for one field, drawn at random.
std::vector<std::uint8_t> random_wire(const Field& f, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255), coin(0, 1), len(0, 60);
  std::vector<std::uint8_t> out(f.size);
  switch (f.kind) {
    case FieldKind::number:
    case FieldKind::digits:
      for (auto& b : out) b = random_bcd(rng);
      if (f.max) out = {random_bcd(rng, static_cast<unsigned>(f.max))};  // weekday: one byte
      if (f.is_signed) {
        out.back() = random_bcd(rng, 79);
        const bool zero = std::all_of(out.begin(), out.end(), [](auto b) { return b == 0; });
        if (coin(rng) && !zero) out.back() |= 0x80;  // "-0" has no exact round trip
      }
      break;
    case FieldKind::datetime:
      for (std::size_t t = 0; t < out.size(); ++t) {
        const auto token = f.format.substr(t * 2, 2);
        unsigned max = 99, min = 0;
        if (token == "MM") max = 12, min = 1;
        if (token == "DD") max = 28, min = 1;
        if (token == "hh") max = 23;
        if (token == "mm" || token == "ss") max = 59;
        out[out.size() - 1 - t] = random_bcd(rng, max, min);
      }
      break;
    case FieldKind::ascii:
      for (auto& b : out) b = static_cast<std::uint8_t>(0x21 + byte(rng) % 94);
      break;
    case FieldKind::hex:
      for (auto& b : out) b = static_cast<std::uint8_t>(byte(rng));
      break;
    case FieldKind::raw:
      if (f.size == 0) out.resize(static_cast<std::size_t>(len(rng)));
      for (auto& b : out) b = static_cast<std::uint8_t>(byte(rng));
      break;
  }
  return out;
}

// A field list as the meter would send it: for a block, 1..k groups that
// still fit one 200-byte answer with the DI.
std::vector<const Field*> random_layout(const DataItem& item, std::mt19937& rng) {
  std::vector<const Field*> layout;
  if (item.group_size == 0) {
    for (const auto& f : item.fields) layout.push_back(&f);
    return layout;
  }
  const std::size_t prefix = item.fields.size() % item.group_size;
  std::size_t group_bytes = 0;
  for (std::size_t i = prefix; i < prefix + item.group_size; ++i)
    group_bytes += item.fields[i].size;
  const std::size_t max_groups = std::min((item.fields.size() - prefix) / item.group_size,
                                          (196 - item.min_size() + group_bytes) / group_bytes);
  std::uniform_int_distribution<std::size_t> groups(1, max_groups);
  const std::size_t n = prefix + groups(rng) * item.group_size;
  for (std::size_t i = 0; i < n; ++i) layout.push_back(&item.fields[i]);
  return layout;
}

Decimal random_decimal(const Field& f, std::mt19937& rng) {
  std::int64_t max = 1;
  for (int i = 0; i < f.size * 2 - (f.is_signed ? 1 : 0); ++i) max *= 10;
  if (f.is_signed) max *= 8;
  std::uniform_int_distribution<std::int64_t> m(0, max - 1);
  std::uniform_int_distribution<int> coin(0, 1);
  std::int64_t v = f.max ? m(rng) % static_cast<std::int64_t>(f.max + 1) : m(rng);
  if (f.is_signed && coin(rng)) v = -v;
  return Decimal{v, -f.decimals};
}

Field field_of(Version v, std::uint32_t di) {
  const auto item = lookup(v, di);
  REQUIRE(item);
  REQUIRE(item->fields.size() == 1);
  return item->fields[0];
}

std::string text(const ValueData& v) {
  if (const auto* d = std::get_if<Decimal>(&v)) return to_string(*d);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  return "null";
}

}  // namespace

TEST_CASE("catalogue size and integrity") {
  for (const auto version : {Version::v2007, Version::v1997}) {
    const auto dis = catalogued(version);
    MESSAGE(to_string(version), ": ", dis.size(), " data identifiers catalogued");
    CHECK(dis.size() > (version == Version::v2007 ? 10000u : 300u));
    for (const auto di : dis) {
      const auto item = lookup(version, di);
      REQUIRE_MESSAGE(item, di_to_string(version, di));
      CHECK(item->di == di);
      CHECK_FALSE(item->name.empty());
      CHECK_FALSE(item->fields.empty());
      for (const auto& f : item->fields) CHECK_MESSAGE(!f.quantity.empty(), item->name);
      CHECK(parse_di(version, di_to_string(version, di)) == di);
    }
  }
  CHECK_FALSE(lookup(Version::v2007, 0x0001000D));  // settlement periods stop at 12
  CHECK(lookup(Version::v2007, 0x00013F00));        // tariff 63 exists
  CHECK_FALSE(lookup(Version::v2007, 0x00014000));  // tariff 64 does not
  CHECK_FALSE(lookup(Version::v2007, 0x0506003F));  // daily freezes are 62 deep
  CHECK_FALSE(lookup(Version::v2007, 0x02800007 + 0x100));
  CHECK_FALSE(lookup(Version::v1997, 0xB614));
}

TEST_CASE("every canonical quantity of docs/contracts.md has a DL/T 645-2007 source") {
  std::set<std::string> quantities;
  for (const auto di : catalogued(Version::v2007)) {
    const auto item = lookup(Version::v2007, di);
    for (const auto& f : item->fields) quantities.insert(f.quantity);
  }
  for (const char* q : {"energy.active.import.total",
                        "energy.active.import.t1",
                        "energy.active.import.t4",
                        "energy.active.export.total",
                        "energy.active.combined.total",
                        "energy.reactive.import.total",
                        "energy.reactive.export.total",
                        "voltage.l1",
                        "voltage.l2",
                        "voltage.l3",
                        "current.l1",
                        "current.l2",
                        "current.l3",
                        "current.n",
                        "power.active.total",
                        "power.active.l1",
                        "power.active.l2",
                        "power.active.l3",
                        "power.reactive.total",
                        "power.apparent.total",
                        "power_factor.total",
                        "power_factor.l1",
                        "power_factor.l2",
                        "power_factor.l3",
                        "frequency",
                        "demand.active.import.max",
                        "temperature.meter"})
    CHECK_MESSAGE(quantities.count(q) == 1, q);
}

TEST_CASE(
    "round trip: random wire data of every catalogued DI decodes and re-encodes byte for byte") {
  std::mt19937 rng(2007);
  std::size_t checked = 0;
  for (const auto version : {Version::v2007, Version::v1997}) {
    for (const auto di : catalogued(version)) {
      const auto item = *lookup(version, di);
      CAPTURE(di_to_string(version, di));
      for (int rep = 0; rep < 3; ++rep) {
        std::vector<std::uint8_t> wire;
        for (const Field* f : random_layout(item, rng)) {
          const auto b = random_wire(*f, rng);
          wire.insert(wire.end(), b.begin(), b.end());
        }
        const auto decoded = decode_values(item, wire);
        REQUIRE_MESSAGE(!decoded.error, decoded.message);
        std::vector<ValueData> values;
        for (const auto& v : decoded.values) {
          CHECK_FALSE(v.is_null());
          values.push_back(v.value);
        }
        const auto encoded = encode_values(item, values);
        REQUIRE(encoded);
        CHECK(*encoded == wire);
        ++checked;
      }
    }
  }
  MESSAGE(checked, " random round trips");
}

TEST_CASE("round trip: random exact values of every numeric field come back identical") {
  std::mt19937 rng(1997);
  for (const auto version : {Version::v2007, Version::v1997}) {
    for (const auto di : catalogued(version)) {
      const auto item = *lookup(version, di);
      for (const auto& f : item.fields) {
        if (f.kind != FieldKind::number) continue;
        const Decimal d = random_decimal(f, rng);
        const auto wire = encode_field(f, d);
        REQUIRE_MESSAGE(wire, di_to_string(version, di), " ", to_string(d));
        const auto back = decode_field(f, *wire);
        REQUIRE(std::holds_alternative<Decimal>(back));
        CHECK(std::get<Decimal>(back).identical(d));
      }
    }
  }
}

TEST_CASE("sign: only the items the standard marks signed read bit 7 of the top byte") {
  // Forward active energy is unsigned: 850000.00 kWh is a legal reading.
  CHECK(text(decode_field(field_of(Version::v2007, 0x00010000), hex("00 00 00 85"))) ==
        "850000.00");
  // Combined active energy is signed: the same bytes are -50000.00 kWh.
  CHECK(text(decode_field(field_of(Version::v2007, 0x00000000), hex("00 00 00 85"))) ==
        "-50000.00");
  // Current XXX.XXX: 34 12 80 is -1.234 A (sign-magnitude, top bit; docs/dlt645.md).
  CHECK(text(decode_field(field_of(Version::v2007, 0x02020100), hex("34 12 80"))) == "-1.234");
  // Power XX.XXXX at both ends of its range.
  const Field p = field_of(Version::v2007, 0x02030000);
  CHECK(text(decode_field(p, hex("99 99 79"))) == "79.9999");
  CHECK(text(decode_field(p, hex("99 99 F9"))) == "-79.9999");
  CHECK(encode_field(p, Decimal{-799999, -4}) == hex("99 99 F9"));
  CHECK_FALSE(encode_field(p, Decimal{800000, -4}));  // no room left for the sign
  // Temperature XXX.X signed, power factor X.XXX signed.
  CHECK(text(decode_field(field_of(Version::v2007, 0x02800007), hex("25 81"))) == "-12.5");
  CHECK(text(decode_field(field_of(Version::v2007, 0x02060000), hex("00 90"))) == "-1.000");
  // Voltage and frequency are unsigned; a negative value does not encode.
  const Field u = field_of(Version::v2007, 0x02010100);
  CHECK(text(decode_field(u, hex("00 90"))) == "900.0");
  CHECK_FALSE(encode_field(u, Decimal{-2200, -1}));
  // "-0" reads as zero.
  CHECK(text(decode_field(p, hex("00 00 80"))) == "0.0000");
}

TEST_CASE("encode keeps exactness: coarser values scale, finer ones are refused") {
  const Field e = field_of(Version::v2007, 0x00010000);
  CHECK(encode_field(e, Decimal{12, 0}) == hex("00 12 00 00"));      // 12 -> 12.00
  CHECK(encode_field(e, Decimal{12340, -3}) == hex("34 12 00 00"));  // 12.340 -> 12.34
  CHECK_FALSE(encode_field(e, Decimal{12345, -3}));                  // 12.345 would round
  CHECK_FALSE(encode_field(e, Decimal{100000000, 0}));               // 9 digits do not fit
  CHECK(encode_field(e, ValueData{}) == hex("FF FF FF FF"));         // null -> absent
}

TEST_CASE("blocks: variable tariff count, absent entries, length errors") {
  const auto block = *lookup(Version::v2007, 0x0001FF00);
  CHECK(block.group_size == 1);
  // 4 tariffs: 20 bytes; 2 tariffs: 12 bytes.
  auto r = decode_values(block, hex("29 01 00 00 62 00 00 00 60 00 00 00 03 00 00 00 02 00 00 00"));
  CHECK_FALSE(r.error);
  CHECK(r.values.size() == 5);
  r = decode_values(block, hex("29 01 00 00 62 00 00 00 67 00 00 00"));
  CHECK(r.values.size() == 3);
  CHECK(r.values[2].quantity == "energy.active.import.t2");
  r = decode_values(block, hex("29 01 00 00 62 00 00"));
  CHECK(r.error == ValueError::length_mismatch);
  CHECK(r.message == "expected 4..256 bytes in whole groups, got 7");
  // Max demand block: groups of value + time.
  const auto demand = *lookup(Version::v2007, 0x0101FF00);
  CHECK(demand.group_size == 2);
  r = decode_values(demand, hex("56 34 12 30 14 27 11 26  FF FF FF FF FF FF FF FF"));
  REQUIRE(r.values.size() == 4);
  CHECK(text(r.values[0].value) == "12.3456");
  CHECK(r.values[0].unit == "kW");
  CHECK(text(r.values[1].value) == "2026-11-27T14:30");
  CHECK(r.values[1].quantity == "demand.active.import.max.time");
  CHECK(r.values[2].is_null());
  CHECK(r.values[3].is_null());
  // Fixed layout: exact size only.
  const auto volts = *lookup(Version::v2007, 0x0201FF00);
  CHECK(decode_values(volts, hex("00 22 00 22")).error == ValueError::length_mismatch);
}

TEST_CASE("items in detail") {
  SUBCASE("settlement data is monthly frozen data") {
    const auto item = *lookup(Version::v2007, 0x00010103);
    CHECK(item.frozen == Frozen::monthly);
    CHECK(item.period == 3);
    CHECK(item.name == "forward active energy, tariff 1, last 3rd settlement period");
    CHECK(item.fields[0].quantity == "energy.active.import.t1");
  }
  SUBCASE("daily freeze 62 deep: time and forward active block") {
    const auto t = *lookup(Version::v2007, 0x0506003E);
    CHECK(t.frozen == Frozen::daily);
    CHECK(t.period == 62);
    CHECK(t.fields[0].format == "YYMMDDhhmm");
    const auto e = *lookup(Version::v2007, 0x05060101);
    CHECK(e.group_size == 1);
    CHECK(e.fields[0].quantity == "energy.active.import.total");
  }
  SUBCASE("event counters and records") {
    CHECK(lookup(Version::v2007, 0x03110000)->fields[0].quantity == "event.power_down.count");
    const auto pd = *lookup(Version::v2007, 0x03110001);
    CHECK(pd.max_size() == 12);
    CHECK(lookup(Version::v2007, 0x03300D01)->max_size() == 60);
    CHECK(lookup(Version::v2007, 0x03300401)->max_size() == 16);
    CHECK(lookup(Version::v2007, 0x1D000001)->max_size() == 34);
    const auto adj = decode_values(*lookup(Version::v2007, 0x03300401),
                                   hex("78 56 34 12  00 00 12 27 11 26  30 00 12 27 11 26"));
    REQUIRE(adj.values.size() == 3);
    CHECK(text(adj.values[0].value) == "12345678");
    CHECK(text(adj.values[1].value) == "2026-11-27T12:00:00");
    CHECK(text(adj.values[2].value) == "2026-11-27T12:00:30");
  }
  SUBCASE("status word 3: relay state") {
    const auto sw = *lookup(Version::v2007, 0x04000503);
    const auto v = decode_values(sw, hex("50 00"));
    CHECK(text(v.values[0].value) == "0050");
    CHECK(describe_bits(sw.fields[0], 0x0050) ==
          std::vector<std::string>{"relay open (supply off)", "relay command: trip"});
    CHECK(lookup(Version::v2007, 0x040005FF)->max_size() == 14);
  }
  SUBCASE("address and ASCII fields") {
    const auto a = decode_values(*lookup(Version::v2007, 0x04000401), hex("12 00 00 00 10 20"));
    CHECK(text(a.values[0].value) == "201000000012");
    const auto m =
        decode_values(*lookup(Version::v2007, 0x0400040B), hex("00 00 00 00 36 36 36 55 53 44"));
    CHECK(text(m.values[0].value) == "DSU666");
  }
  SUBCASE("1997: integer volts, XX.XX amps, energy with last-month index") {
    CHECK(field_of(Version::v1997, 0xB611).decimals == 0);
    CHECK(field_of(Version::v1997, 0xB621).decimals == 2);
    CHECK(field_of(Version::v1997, 0x9010).quantity == "energy.active.import.total");
    const auto last = *lookup(Version::v1997, 0x9410);
    CHECK(last.frozen == Frozen::monthly);
    CHECK(last.period == 1);
    CHECK(lookup(Version::v1997, 0x901F)->group_size == 1);
    CHECK(field_of(Version::v1997, 0x9130).quantity == "energy.reactive.q1.total");
    CHECK(field_of(Version::v1997, 0x9140).quantity == "energy.reactive.q4.total");
    CHECK(field_of(Version::v1997, 0xB010).format == "MMDDhhmm");
    CHECK(field_of(Version::v1997, 0xA010).quantity == "demand.active.import.max");
    CHECK(lookup(Version::v1997, 0xC010)->max_size() == 4);
  }
}

TEST_CASE("dates and times out of range are invalid: null with a problem note, never a date") {
  const auto item = [](std::uint32_t di) { return *lookup(Version::v2007, di); };
  struct Case {
    std::uint32_t di;
    const char* wire;
    std::size_t index;  // the value that must be null
    const char* why;
  };
  const Case cases[] = {
      {0x04000101, "03 15 13 26", 1, "month 13"},         // 2026-13-15, weekday 3
      {0x04000101, "03 00 11 26", 1, "day 0"},            // 2026-11-00
      {0x04000101, "03 30 02 26", 1, "day 30"},           // 30 February
      {0x04000101, "09 27 11 26", 0, "value 9 above 6"},  // weekday 9
      {0x04000102, "00 00 25", 0, "hour 25"},
      {0x04000102, "00 61 12", 0, "minute 61"},
      {0x04000102, "60 00 12", 0, "second 60"},
      {0x04000B01, "00 99", 0, "day 99"},  // settlement day 99
      {0x04000B01, "24 01", 0, "hour 24"},
      {0x0400010C, "00 00 12 05 32 11 26", 2, "day 32"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.wire);
    const auto d = decode_values(item(c.di), hex(c.wire));
    REQUIRE_FALSE(d.error);
    REQUIRE(d.values.size() > c.index);
    CHECK(d.values[c.index].is_null());
    REQUIRE(d.problems.size() == 1);
    CHECK(d.problems[0].find(c.why) != std::string::npos);
    CHECK(d.problems[0].find(d.values[c.index].quantity) == 0);
  }
  // In range, the same items decode as text, with no note.
  const auto ok = decode_values(item(0x04000101), hex("06 29 02 28"));
  CHECK(text(ok.values[1].value) == "2028-02-29");
  CHECK(text(ok.values[0].value) == "6");
  CHECK(ok.problems.empty());
  CHECK(
      decode_values(item(0x04000101), hex("00 29 02 27")).values[1].is_null());  // 2027: no 29 Feb
  // All zero is a maximum demand that has not happened yet: text, no note.
  const auto zero = decode_values(item(0x01010000), hex("00 00 00  00 00 00 00 00"));
  CHECK(text(zero.values[1].value) == "2000-00-00T00:00");
  CHECK(zero.problems.empty());
  // FF filler is absence, not a problem.
  CHECK(decode_values(item(0x04000102), hex("FF FF FF")).problems.empty());
  // The encoder refuses what the decoder would not accept.
  const auto date_item = item(0x04000101);
  const auto& date = date_item.fields[1];
  CHECK_FALSE(encode_field(date, std::string("2026-13-15")));
  CHECK(encode_field(date, std::string("2026-12-15")));
  CHECK_FALSE(encode_field(item(0x04000101).fields[0], Decimal{9, 0}));
  CHECK_FALSE(encode_field(item(0x04000102).fields[0], std::string("25:00:00")));
}

TEST_CASE("encode_field: INT64_MIN and extreme exponents are errors, not UB or long loops") {
  const auto current = *lookup(Version::v2007, 0x02020100);  // signed XXX.XXX
  const auto& f = current.fields[0];
  CHECK_FALSE(encode_field(f, Decimal{INT64_MIN, -3}));
  CHECK_FALSE(encode_field(f, Decimal{INT64_MIN, 0}));
  CHECK_FALSE(encode_field(f, Decimal{1, INT32_MAX}));
  CHECK_FALSE(encode_field(f, Decimal{1, INT32_MIN}));
  CHECK_FALSE(encode_field(f, Decimal{-1, INT32_MIN}));
  CHECK(*encode_field(f, Decimal{0, INT32_MIN}) == hex("00 00 00"));
  CHECK(*encode_field(f, Decimal{-1234, -3}) == hex("34 12 80"));
}

TEST_CASE("quantities are keyed by type: every name derives from its key, one key per name") {
  // The canonical names (docs/contracts.md), spelled once, in to_string(QuantityKey).
  const std::pair<QuantityKey, const char*> canonical[] = {
      {energy_key(Flow::active_import), "energy.active.import.total"},
      {energy_key(Flow::active_import, 1), "energy.active.import.t1"},
      {energy_key(Flow::active_import, 4), "energy.active.import.t4"},
      {energy_key(Flow::active_export), "energy.active.export.total"},
      {energy_key(Flow::active_combined), "energy.active.combined.total"},
      {energy_key(Flow::reactive_import), "energy.reactive.import.total"},
      {energy_key(Flow::reactive_export), "energy.reactive.export.total"},
      {measurand_key(Measurand::voltage, 1), "voltage.l1"},
      {measurand_key(Measurand::voltage, 3), "voltage.l3"},
      {measurand_key(Measurand::current, 2), "current.l2"},
      {measurand_key(Measurand::current, neutral), "current.n"},
      {measurand_key(Measurand::power_active), "power.active.total"},
      {measurand_key(Measurand::power_active, 3), "power.active.l3"},
      {measurand_key(Measurand::power_reactive), "power.reactive.total"},
      {measurand_key(Measurand::power_apparent), "power.apparent.total"},
      {measurand_key(Measurand::power_factor), "power_factor.total"},
      {measurand_key(Measurand::power_factor, 1), "power_factor.l1"},
      {measurand_key(Measurand::frequency), "frequency"},
      {demand_key(Flow::active_import, 0, false), "demand.active.import.max"},
      {measurand_key(Measurand::temperature_meter), "temperature.meter"},
  };
  for (const auto& [key, name] : canonical) CHECK(to_string(key) == name);

  std::map<std::string, QuantityKey> by_name;
  std::size_t fields = 0;
  for (const auto version : {Version::v2007, Version::v1997}) {
    for (const auto di : catalogued(version)) {
      const auto item = *lookup(version, di);  // (not a temporary in the loop head)
      for (const auto& f : item.fields) {
        CAPTURE(di_to_string(version, di));
        ++fields;
        CHECK(f.quantity == to_string(f.key));
        const auto [it, fresh] = by_name.emplace(f.quantity, f.key);
        if (!fresh) CHECK(it->second == f.key);  // two keys never share a name
      }
    }
  }
  // ... and two names never share a key: the map is one to one.
  std::set<std::string> keys_seen;
  for (const auto& [name, key] : by_name) {
    const std::string fingerprint =
        std::to_string(static_cast<int>(key.measurand)) + "/" +
        std::to_string(static_cast<int>(key.flow)) + "/" + std::to_string(key.tariff) + "/" +
        std::to_string(key.phase) + "/" + std::to_string(key.index) + "/" +
        std::to_string(key.is_time) + "/" + std::to_string(static_cast<int>(key.event)) + "/" +
        std::to_string(static_cast<int>(key.part)) + "/" +
        std::to_string(static_cast<int>(key.parameter));
    CHECK(keys_seen.insert(fingerprint).second);
  }
  MESSAGE(fields, " fields, ", by_name.size(), " distinct quantities");
  // The key says what the catalogue used to spell: DI 0201FF00 is voltage L1..L3.
  const auto block = *lookup(Version::v2007, 0x0201FF00);
  REQUIRE(block.fields.size() == 3);
  CHECK(block.fields[2].key == measurand_key(Measurand::voltage, 3));
  CHECK(lookup(Version::v2007, 0x1D000001)->fields[2].key ==
        event_key(Event::relay_trip, EventPart::energy, 0, Flow::active_import));
  CHECK(lookup(Version::v2007, 0x1D000001)->fields[2].quantity ==
        "event.relay_trip.energy.active.import.total");
}
