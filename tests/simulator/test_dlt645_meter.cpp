// The simulated DL/T 645 meter as a pure request -> answer function, with
// a manual clock. Answers are checked against the published byte vectors
// and against bytes built in this file by hand (BCD, +33H and checksum
// written out here), not only by round-tripping through meterd's decoder.
#include <algorithm>

#include <doctest/doctest.h>

#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/frame.hpp"
#include "protocol/dlt645/requests.hpp"
#include "protocol/dlt645/values.hpp"
#include "simulator/dlt645_meter.hpp"

using namespace meterd;
using namespace meterd::simulator;
namespace dlt = meterd::protocol::dlt645;

namespace {

const Millis t0 = from_civil(2026, 11, 27, 12, 0, 0);

std::vector<std::uint8_t> hex(const std::string& t) { return *dlt::parse_hex(t); }

Dlt645Meter meter(const char* address, dlt::Version v = dlt::Version::v2007, bool is_static = false,
                  unsigned tariffs = 4) {
  Dlt645MeterConfig c;
  c.id = "m1";
  c.version = v;
  c.address = *dlt::Address::parse(address);
  c.seed = 42;
  c.static_values = is_static;
  c.tariffs = tariffs;
  c.password = {0x02, {0x56, 0x34, 0x12}};  // printed 123456
  return Dlt645Meter(c, t0);
}

// The wire bytes of an answer, built by hand: header, data +33H, sum, 16H.
std::vector<std::uint8_t> by_hand(const std::vector<std::uint8_t>& addr_wire, std::uint8_t c,
                                  const std::vector<std::uint8_t>& plain) {
  std::vector<std::uint8_t> f{0x68};
  f.insert(f.end(), addr_wire.begin(), addr_wire.end());
  f.push_back(0x68);
  f.push_back(c);
  f.push_back(static_cast<std::uint8_t>(plain.size()));
  for (auto b : plain) f.push_back(static_cast<std::uint8_t>((b + 0x33) & 0xFF));
  unsigned sum = 0;
  for (auto b : f) sum += b;
  f.push_back(static_cast<std::uint8_t>(sum & 0xFF));
  f.push_back(0x16);
  return f;
}

std::optional<std::vector<std::uint8_t>> ask(Dlt645Meter& m, const std::string& request_hex,
                                             Millis now) {
  const auto r = dlt::decode(hex(request_hex));
  REQUIRE(r.status == dlt::DecodeStatus::frame);
  const auto a = m.handle(r.frame, now);
  if (!a) return std::nullopt;
  return dlt::encode(*a);
}

std::optional<std::vector<std::uint8_t>> ask(Dlt645Meter& m, const dlt::Frame& f, Millis now) {
  const auto a = m.handle(f, now);
  if (!a) return std::nullopt;
  return dlt::encode(*a);
}

std::string text(const dlt::ValueData& v) {
  if (const auto* d = std::get_if<protocol::Decimal>(&v)) return protocol::to_string(*d);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  return "null";
}

// "123456.78" -> 4 BCD bytes low first, as a meter stores XXXXXX.XX.
std::vector<std::uint8_t> bcd4(const std::string& value) {
  std::string digits;
  for (char c : value)
    if (c != '.') digits += c;
  digits.insert(0, 8 - digits.size(), '0');
  std::vector<std::uint8_t> out;
  for (int i = 3; i >= 0; --i)
    out.push_back(
        static_cast<std::uint8_t>(((digits[i * 2] - '0') << 4) | (digits[i * 2 + 1] - '0')));
  return out;
}

}  // namespace

TEST_CASE("answers the published read request with the value it holds, byte for byte") {
  auto m = meter("123456789012");
  const auto got = ask(m, "68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16", t0);  // vectors.json
  REQUIRE(got);
  const auto truth = m.read(0x00010000, t0);
  REQUIRE(truth);
  auto plain = hex("00 00 01 00");
  const auto v = bcd4(text((*truth)[0].value));
  plain.insert(plain.end(), v.begin(), v.end());
  CHECK(*got == by_hand(hex("12 90 78 56 34 12"), 0x91, plain));
}

TEST_CASE("unknown DI: ERR 02, the published error frame") {
  auto m = meter("201000000012");
  const auto req = dlt::request::read(*dlt::Address::parse("201000000012"), 0x03100000);
  const auto got = ask(m, req, t0);
  REQUIRE(got);
  CHECK(*got == hex("68 12 00 00 00 10 20 68 D1 01 35 19 16"));
}

TEST_CASE("silence: foreign address, a response, a broadcast read") {
  auto m = meter("123456789012");
  CHECK_FALSE(ask(m, dlt::request::read(*dlt::Address::parse("123456789013"), 0x00010000), t0));
  CHECK_FALSE(ask(m, "68 12 90 78 56 34 12 68 91 08 33 33 34 33 AB 89 67 45 CC 16", t0));
  CHECK_FALSE(ask(m, dlt::request::read(dlt::Address::broadcast(), 0x00010000), t0));
}

TEST_CASE("short addressing and read-address answer with the real address") {
  auto m = meter("123456789012");
  const auto a = ask(m, dlt::request::read(*dlt::Address::parse("AAAAAA789012"), 0x00010000), t0);
  REQUIRE(a);
  CHECK(std::vector<std::uint8_t>(a->begin() + 1, a->begin() + 7) == hex("12 90 78 56 34 12"));
  const auto addr = ask(m, "FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16", t0);
  REQUIRE(addr);
  CHECK(*addr == by_hand(hex("12 90 78 56 34 12"), 0x93, hex("12 90 78 56 34 12")));
}

TEST_CASE("energy grows with the load; instantaneous power agrees with the growth") {
  auto m = meter("000000000001");
  const auto e0 = m.read(0x00010000, t0);
  const Millis t1 = t0 + ms_per_hour;
  const auto e1 = m.read(0x00010000, t1);
  REQUIRE(e0);
  REQUIRE(e1);
  const auto d0 = std::get<protocol::Decimal>((*e0)[0].value);
  const auto d1 = std::get<protocol::Decimal>((*e1)[0].value);
  CHECK(d1.mantissa > d0.mantissa);
  // Average of the instantaneous power over the hour (kW, 4 decimals).
  std::int64_t sum = 0;
  for (int k = 0; k < 60; ++k) {
    const auto p = m.read(0x02030000, t0 + k * ms_per_minute + 30'000);
    sum += std::get<protocol::Decimal>((*p)[0].value).mantissa;
  }
  const double avg_kw = static_cast<double>(sum) / 60 / 10000;
  const double grown_kwh = static_cast<double>(d1.mantissa - d0.mantissa) / 100;
  CHECK(grown_kwh == doctest::Approx(avg_kw).epsilon(0.05));
  // Total >= sum of tariffs (each register truncates on its own).
  const auto block = m.read(0x0001FF00, t1);
  REQUIRE(block->size() == 5);
  std::int64_t tariffs = 0;
  for (std::size_t k = 1; k < 5; ++k)
    tariffs += std::get<protocol::Decimal>((*block)[k].value).mantissa;
  const auto total = std::get<protocol::Decimal>((*block)[0].value).mantissa;
  CHECK(total >= tariffs);
  CHECK(total - tariffs <= 4);
}

TEST_CASE("--static: values stay at their seeded start") {
  auto m = meter("000000000001", dlt::Version::v2007, true);
  for (std::uint32_t di : {0x0001FF00u, 0x0201FF00u, 0x0202FF00u, 0x0203FF00u}) {
    const auto a = m.read(di, t0);
    const auto b = m.read(di, t0 + 3 * ms_per_day);
    REQUIRE(a);
    CHECK(*a == *b);
  }
}

TEST_CASE("block reads return the configured tariff count") {
  auto four = meter("000000000001");
  CHECK(four.read(0x0001FF00, t0)->size() == 5);
  auto two = meter("000000000001", dlt::Version::v2007, false, 2);
  const auto a = ask(two, dlt::request::read(*dlt::Address::parse("1"), 0x0001FF00), t0);
  REQUIRE(a);
  CHECK((*a)[9] == 4 + 12);  // L = DI + total + 2 tariffs
}

TEST_CASE("daily freezes: 62 deep, at the meter's local midnight, below the current register") {
  auto m = meter("000000000001");
  const auto t = m.read(0x05060001, t0);
  REQUIRE(t);
  CHECK(text((*t)[0].value) == "2026-11-27T00:00");
  CHECK(text((*m.read(0x0506003E, t0))[0].value) == "2026-09-27T00:00");  // 61 days back
  const auto frozen = std::get<protocol::Decimal>((*m.read(0x05060101, t0))[0].value);
  const auto now = std::get<protocol::Decimal>((*m.read(0x00010000, t0))[0].value);
  CHECK(frozen.mantissa < now.mantissa);
  // A day later the freeze list has moved by one: yesterday's freeze is now the 2nd.
  CHECK(text((*m.read(0x05060001, t0 + ms_per_day))[0].value) == "2026-11-28T00:00");
  CHECK(std::get<protocol::Decimal>((*m.read(0x05060102, t0 + ms_per_day))[0].value).mantissa ==
        frozen.mantissa);
}

TEST_CASE("settlement data: last 1..12 periods, monthly") {
  auto m = meter("000000000001");
  for (std::uint32_t p = 1; p <= 12; ++p) CHECK(m.read(0x00010000 + p, t0));
  const auto last = std::get<protocol::Decimal>((*m.read(0x00010001, t0))[0].value);
  const auto before = std::get<protocol::Decimal>((*m.read(0x00010002, t0))[0].value);
  CHECK(last.mantissa > before.mantissa);
}

TEST_CASE("relay control: password, expiry, status word 3, trip record, energy stops") {
  auto m = meter("111111111111");
  const auto addr = *dlt::Address::parse("111111111111");
  const auto op = *dlt::parse_operator("00000001");
  const auto until = *dlt::parse_datetime("2026-11-28T00:00:00");
  // Wrong password: ERR 04.
  auto a = ask(m,
               dlt::request::relay_control(addr, *dlt::parse_password("02000000"), op,
                                           dlt::RelayCommand::trip, until),
               t0);
  CHECK(*a == by_hand(hex("11 11 11 11 11 11"), 0xDC, {0x04}));
  // Expired: ERR 01.
  a = ask(m,
          dlt::request::relay_control(addr, *dlt::parse_password("02123456"), op,
                                      dlt::RelayCommand::trip,
                                      *dlt::parse_datetime("2026-11-27T11:00:00")),
          t0);
  CHECK(*a == by_hand(hex("11 11 11 11 11 11"), 0xDC, {0x01}));
  // Right password: the published success answer.
  a = ask(m,
          dlt::request::relay_control(addr, *dlt::parse_password("02123456"), op,
                                      dlt::RelayCommand::trip, until),
          t0);
  CHECK(*a == hex("68 11 11 11 11 11 11 68 9C 00 D2 16"));
  CHECK(m.relay() == RelayState::open);
  CHECK(text((*m.read(0x04000503, t0))[0].value) == "0050");
  CHECK(text((*m.read(0x1D000001, t0))[1].value) == "00000001");
  const auto e1 = m.read(0x00010000, t0 + 1000);
  const auto e2 = m.read(0x00010000, t0 + ms_per_hour);
  CHECK(*e1 == *e2);
  CHECK(text((*m.read(0x02030000, t0 + ms_per_hour))[0].value) == "0.0000");
  // Close allowed: stays open until the button is pressed.
  a = ask(m,
          dlt::request::relay_control(addr, *dlt::parse_password("02123456"), op,
                                      dlt::RelayCommand::close_allowed, until),
          t0 + ms_per_hour);
  CHECK(m.relay() == RelayState::open);
  m.press_button(t0 + ms_per_hour + 1000);
  CHECK(m.relay() == RelayState::closed);
  CHECK(text((*m.read(0x04000503, t0 + ms_per_hour + 2000))[0].value) == "0000");
  CHECK(m.read(0x1E000001, t0 + ms_per_hour + 2000));
}

TEST_CASE("broadcast time: small corrections apply, large ones are ignored, never an answer") {
  auto m = meter("000000000001");
  const auto before = m.local_time(t0);
  CHECK_FALSE(
      ask(m, dlt::request::broadcast_time(*dlt::parse_datetime("2026-11-27T12:02:00")), t0));
  CHECK(m.local_time(t0) - before == 120'000);
  CHECK_FALSE(
      ask(m, dlt::request::broadcast_time(*dlt::parse_datetime("2026-11-27T13:00:00")), t0));
  CHECK(m.local_time(t0) - before == 120'000);
}

TEST_CASE("long answers go out in follow-up frames") {
  auto m = meter("000000000001", dlt::Version::v2007, false, 30);
  const auto addr = *dlt::Address::parse("1");
  const auto first = m.handle(dlt::request::read(addr, 0x0101FF00), t0);  // 31 × 8 = 248 bytes
  REQUIRE(first);
  CHECK(first->control == 0xB1);
  CHECK(first->data.size() == 200);
  const auto second = m.handle(dlt::request::read_follow_up(addr, 0x0101FF00, 1), t0);
  REQUIRE(second);
  CHECK(second->control == 0x92);
  CHECK(second->data.size() == 4 + 52 + 1);
  CHECK(second->data.back() == 1);
  const auto item = *dlt::lookup(dlt::Version::v2007, 0x0101FF00);
  std::vector<std::uint8_t> all(first->data.begin() + 4, first->data.end());
  all.insert(all.end(), second->data.begin() + 4, second->data.end() - 1);
  CHECK(dlt::decode_values(item, all).values.size() == 62);
}

TEST_CASE("1997 meter: C=01 reads, integer volts, C1 error with the 1997 word") {
  auto m = meter("000000000003", dlt::Version::v1997);
  const auto a = m.handle(
      *[] {
        const auto r = dlt::decode(hex("68 03 00 00 00 00 00 68 01 02 44 E9 03 16"));
        return std::optional<dlt::Frame>(r.frame);
      }(),
      t0);
  REQUIRE(a);
  CHECK(a->control == 0x81);
  REQUIRE(a->data.size() == 4);
  const auto volts = m.read(0xB611, t0);
  const std::string v = text((*volts)[0].value);
  CHECK(v.find('.') == std::string::npos);
  const auto err = m.handle(dlt::request::v1997::read(*dlt::Address::parse("3"), 0xB614), t0);
  REQUIRE(err);
  CHECK(err->control == 0xC1);
  CHECK(err->data == std::vector<std::uint8_t>{0x02});
}

TEST_CASE("events at start and from the control channel") {
  auto m = meter("000000000001");
  const auto count = std::get<protocol::Decimal>((*m.read(0x03110000, t0))[0].value).mantissa;
  CHECK(count >= 1);
  CHECK(m.read(0x03110001, t0));
  m.power_cycle(t0, 5 * ms_per_minute);
  CHECK_FALSE(m.handle(dlt::request::read(*dlt::Address::parse("1"), 0x00010000), t0 + 1000));
  const auto after =
      std::get<protocol::Decimal>((*m.read(0x03110000, t0 + 6 * ms_per_minute))[0].value).mantissa;
  CHECK(after == count + 1);
  const auto rec = m.read(0x03110001, t0 + 6 * ms_per_minute);
  CHECK(text((*rec)[0].value) == "2026-11-27T12:00:00");
  CHECK(text((*rec)[1].value) == "2026-11-27T12:05:00");
  m.open_cover(t0 + ms_per_hour, ms_per_minute);
  CHECK(text((*m.read(0x04000507, t0 + ms_per_hour + 1000))[0].value) == "0200");
  CHECK(m.read(0x03300D01, t0 + ms_per_hour + 1000));
}

namespace {

// What the model claims to answer for `item`, derived from its declared
// table (Dlt645Meter::models), its configuration and the history it keeps,
// independently of how value() dispatches.
bool claimed(Dlt645Meter& m, const dlt::DataItem& item) {
  using protocol::EventPart;
  using protocol::Measurand;
  const auto& c = m.config();
  std::size_t n = item.fields.size();
  if (item.group_size) {
    const std::size_t prefix = item.fields.size() % item.group_size;
    n = std::min(n, prefix + (1 + c.tariffs) * item.group_size);
  }
  const auto in_history = [&] { return item.period >= 1 && item.period <= m.history(item.frozen); };
  for (std::size_t i = 0; i < n; ++i) {
    const auto& k = item.fields[i].key;
    if (!Dlt645Meter::models(k)) return false;
    switch (k.measurand) {
      case Measurand::energy:
        if (k.tariff > c.tariffs) return false;
        if (item.frozen == dlt::Frozen::hourly && k.tariff > 0) return false;  // totals only
        if (item.frozen != dlt::Frozen::none && !in_history()) return false;
        break;
      case Measurand::demand_max:
        if (k.flow != protocol::Flow::active_import) break;  // not tracked: zero, always there
        if (k.tariff > c.tariffs) return false;
        if (item.frozen == dlt::Frozen::monthly || item.frozen == dlt::Frozen::daily) {
          if (!in_history()) return false;
        } else if (item.frozen != dlt::Frozen::none) {
          return false;  // demand of timed/instant/switch freezes: not kept
        }
        break;
      case Measurand::freeze_time:
        if (!in_history()) return false;
        break;
      case Measurand::event:
        if (k.part == EventPart::count || k.part == EventPart::minutes) break;
        if (c.version == dlt::Version::v1997 && k.part == EventPart::time) break;  // zero time
        if (item.period < 1 || item.period > m.records(k.event)) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

void sweep(dlt::Version v, std::size_t expected_answered) {
  auto m = meter("000000000001", v);
  const auto addr = *dlt::Address::parse("1");
  m.read(v == dlt::Version::v2007 ? 0x00010000 : 0x9010, t0);  // history up to t0
  std::size_t answered = 0, mismatched = 0;
  for (const auto di : dlt::catalogued(v)) {
    const auto name = dlt::di_to_string(v, di);
    const auto item = *dlt::lookup(v, di);
    const auto a = m.handle(v == dlt::Version::v2007
                                ? dlt::request::read(addr, di)
                                : dlt::request::v1997::read(addr, static_cast<std::uint16_t>(di)),
                            t0);
    REQUIRE(a);
    const std::uint8_t fn = v == dlt::Version::v2007 ? 0x11 : 0x01;
    bool got = false;
    if (a->control == (fn | 0xC0)) {
      CHECK_MESSAGE(a->data == std::vector<std::uint8_t>{0x02}, name);
    } else {
      got = true;
      REQUIRE_MESSAGE((a->control == (fn | 0x80) || a->control == (fn | 0xA0)), name);
      if (a->control == (fn | 0x80))
        CHECK_MESSAGE(!dlt::decode_values(item, std::span(a->data).subspan(dlt::di_size(v))).error,
                      name);
    }
    if (got != claimed(m, item)) {
      ++mismatched;
      CHECK_MESSAGE(got == claimed(m, item), name,
                    got ? " answered, not claimed" : " claimed, refused with ERR 02");
    }
    answered += got;
  }
  CHECK(mismatched == 0);
  MESSAGE(answered, " DIs answered by the simulated meter");
  // The size of the claim, pinned: a change to the model or the catalogue
  // shows here and is looked at, not absorbed.
  CHECK(answered == expected_answered);
}

}  // namespace

TEST_CASE("catalogue sweep: the meter answers exactly the DIs its declared table claims") {
  SUBCASE("2007") { sweep(dlt::Version::v2007, 10729); }
  SUBCASE("1997") { sweep(dlt::Version::v1997, 901); }
}
