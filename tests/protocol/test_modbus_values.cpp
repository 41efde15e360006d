// Exact value conversion: float32 → shortest round-trip decimal, exact
// scaling, integer encodings, word order, and the encode → decode property
// the simulator relies on.
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "protocol/decimal.hpp"
#include "protocol/modbus_codec/error.hpp"
#include "protocol/modbus_codec/registers.hpp"
#include "protocol/modbus_codec/value.hpp"

using namespace meterd::protocol::modbus;
using meterd::protocol::Decimal;
using meterd::protocol::parse_decimal;
using meterd::protocol::to_string;
using Words = std::vector<std::uint16_t>;

namespace {

Register reg(Encoding e, Decimal scale = {1, 0}) {
  Register r;
  r.encoding = e;
  r.scale = scale;
  return r;
}

Words float_words(std::uint32_t bits) {
  return {static_cast<std::uint16_t>(bits >> 16), static_cast<std::uint16_t>(bits & 0xFFFF)};
}

std::string decoded(const Register& r, const Words& w, WordOrder o = WordOrder::high_word_first) {
  const auto v = decode_value(r, w, o);
  REQUIRE(v);
  return to_string(*v);
}

Decimal dec(const char* text) {
  const auto d = parse_decimal(text);
  REQUIRE(d);
  return *d;
}

}  // namespace

TEST_CASE("float32 decodes to the shortest decimal that reads back as the same float") {
  const Register volts = reg(Encoding::float32);
  // 230.2f is 43 66 33 33 (230.19999694824219 in binary): it reads as 230.2.
  CHECK(decoded(volts, {0x4366, 0x3333}) == "230.2");
  // Eastron V1.8 §3.8 prints "230.2 V" for 43 66 33 34, but that float is
  // one ULP above 230.2f (230.20001220703125): the shortest decimal that
  // names it is 230.20001. The document rounded for display; we do not.
  CHECK(decoded(volts, {0x4366, 0x3334}) == "230.20001");
  // A live SDM630 (mbmd #63): 43 67 AF 55, "231.68 V" in the issue, is
  // 231.68489 (231.68f would be 43 67 AE 14).
  CHECK(decoded(volts, {0x4367, 0xAF55}) == "231.68489");
  CHECK(decoded(volts, {0x4367, 0xAE14}) == "231.68");
  CHECK(decoded(volts, {0x3F80, 0x0000}) == "1");   // Demand Time 1.0
  CHECK(decoded(volts, {0x4270, 0x0000}) == "60");  // Demand Period 60
  CHECK(decoded(volts, {0x40A0, 0x0000}) == "5");   // new slave id 5.0
  CHECK(float_to_decimal(230.2f)->identical(Decimal{2302, -1}));
  CHECK(float_to_decimal(2305.0f)->identical(Decimal{2305, 0}));
  CHECK(float_to_decimal(100.0f)->identical(Decimal{1, 2}));
  CHECK(float_to_decimal(0.1f)->identical(Decimal{1, -1}));
  CHECK(float_to_decimal(-196.3f)->identical(Decimal{-1963, -1}));
  CHECK(float_to_decimal(1e-45f)->identical(Decimal{1, -45}));  // smallest subnormal
  CHECK(float_to_decimal(std::numeric_limits<float>::max())->identical(Decimal{34028235, 31}));
  CHECK(float_to_decimal(16777216.0f)->identical(Decimal{16777216, 0}));
  CHECK(float_to_decimal(16777217.0f)->identical(Decimal{16777216, 0}));  // not a float
  // Tasmota's SDM120 example: total 484.708 = import 478.492 + export 6.216.
  CHECK(to_string(*float_to_decimal(484.708f)) == "484.708");
  CHECK(to_string(*float_to_decimal(478.492f)) == "478.492");
  CHECK(to_string(*float_to_decimal(6.216f)) == "6.216");
}

TEST_CASE("float32 edge cases: zero, negatives, NaN and infinities") {
  const Register r = reg(Encoding::float32);
  CHECK(decoded(r, {0x0000, 0x0000}) == "0");
  CHECK(decoded(r, {0x8000, 0x0000}) == "0");  // -0 reads as 0
  CHECK(decoded(r, float_words(std::bit_cast<std::uint32_t>(-0.91f))) == "-0.91");
  CHECK(decoded(r, float_words(std::bit_cast<std::uint32_t>(-1234567.0f))) == "-1234567");
  CHECK(decoded(r, float_words(std::bit_cast<std::uint32_t>(9999999.0f))) == "9999999");
  for (std::uint32_t bits : {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7F800000u, 0xFF800000u}) {
    const auto v = decode_value(r, float_words(bits));
    CHECK_FALSE(v);
    CHECK(v.error() == ValueError::not_finite);
    CHECK(v.error().category() == value_category());
  }
  CHECK_FALSE(float_to_decimal(std::numeric_limits<float>::quiet_NaN()));
  CHECK(decode_value(r, Words{0x4366}).error() == ValueError::wrong_word_count);
  CHECK(decode_value(reg(Encoding::int16), Words{1, 2}).error() == ValueError::wrong_word_count);
}

TEST_CASE("scale is applied exactly: W to kW, 0.1 V, 0.1 W to kW") {
  CHECK(decoded(reg(Encoding::float32, {1, -3}),
                float_words(std::bit_cast<std::uint32_t>(-196.3f))) == "-0.1963");
  // DTSU666: 230.5 V travels as float 2305.0 = 45 10 10 00 in 0.1 V.
  CHECK(decoded(reg(Encoding::float32, {1, -1}), {0x4510, 0x1000}) == "230.5");
  // DTSU666 power in 0.1 W: 12345.6 (float) × 0.0001 = 1.23456 kW.
  CHECK(decoded(reg(Encoding::float32, {1, -4}),
                float_words(std::bit_cast<std::uint32_t>(12345.6f))) == "1.23456");
  CHECK(decoded(reg(Encoding::float32, {1, -2}),
                float_words(std::bit_cast<std::uint32_t>(5002.0f))) == "50.02");
  // Integers keep their precision: 2300 × 0.1 V = 230.0, not 230.
  CHECK(decoded(reg(Encoding::uint32, {1, -1}), {0, 2300}) == "230.0");
  CHECK(decoded(reg(Encoding::uint32, {1, -2}), {0x0001, 0xE240}) == "1234.56");
  CHECK(decoded(reg(Encoding::int32, {1, -3}), {0xFFFF, 0xFF85}) == "-0.123");
  CHECK(decoded(reg(Encoding::int16, {1, -3}), {0xFC73}) == "-0.909");
  CHECK(decoded(reg(Encoding::uint16, {1, -2}), {5000}) == "50.00");
  CHECK(decoded(reg(Encoding::uint32), {0xFFFF, 0xFFFF}) == "4294967295");
  CHECK(decoded(reg(Encoding::int32), {0x8000, 0x0000}) == "-2147483648");
  // Overflow of the 64-bit mantissa is an error, never a wrap.
  CHECK(decode_value(reg(Encoding::uint32, {INT64_MAX / 1000, 0}), Words{0xFFFF, 0xFFFF}).error() ==
        ValueError::out_of_range);
}

TEST_CASE("word order") {
  const Register f = reg(Encoding::float32);
  CHECK(decoded(f, {0x3333, 0x4366}, WordOrder::low_word_first) == "230.2");
  const Register u = reg(Encoding::uint32);
  CHECK(decoded(u, {0x0002, 0x0001}, WordOrder::low_word_first) == "65538");
  CHECK(*encode_value(f, dec("230.2"), WordOrder::low_word_first) == Words{0x3333, 0x4366});
  CHECK(*encode_value(u, dec("65538"), WordOrder::low_word_first) == Words{0x0002, 0x0001});
  const std::uint16_t w[2] = {0x1234, 0x5678};
  CHECK(join_words(w, WordOrder::high_word_first) == 0x12345678u);
  CHECK(join_words(w, WordOrder::low_word_first) == 0x56781234u);
  CHECK(split_words(0x12345678u, WordOrder::low_word_first) ==
        std::array<std::uint16_t, 2>{0x5678, 0x1234});
}

TEST_CASE("encode_value: the simulator's side") {
  CHECK(*encode_value(reg(Encoding::float32), dec("230.2")) == Words{0x4366, 0x3333});
  CHECK(*encode_value(reg(Encoding::float32), dec("230.20001")) == Words{0x4366, 0x3334});
  CHECK(*encode_value(reg(Encoding::float32, {1, -1}), dec("230.5")) == Words{0x4510, 0x1000});
  CHECK(*encode_value(reg(Encoding::float32), dec("60")) == Words{0x4270, 0x0000});
  CHECK(*encode_value(reg(Encoding::float32), dec("0")) == Words{0, 0});
  CHECK(*encode_value(reg(Encoding::uint32, {1, -1}), dec("230.0")) == Words{0, 2300});
  CHECK(*encode_value(reg(Encoding::uint32, {1, -1}), dec("230")) == Words{0, 2300});
  CHECK(*encode_value(reg(Encoding::int16, {1, -3}), dec("-0.909")) == Words{0xFC73});
  CHECK(*encode_value(reg(Encoding::int16, {1, -1}), dec("1.0")) == Words{10});
  // Does not fit: finer than the register's step, out of range, sign.
  CHECK_FALSE(encode_value(reg(Encoding::uint32, {1, -1}), dec("230.55")));
  CHECK_FALSE(encode_value(reg(Encoding::uint16), dec("65536")));
  CHECK_FALSE(encode_value(reg(Encoding::uint16), dec("-1")));
  CHECK_FALSE(encode_value(reg(Encoding::int16), dec("32768")));
  CHECK(encode_value(reg(Encoding::int16), dec("-32768")));
  CHECK_FALSE(encode_value(reg(Encoding::uint32), dec("4294967296")));
  CHECK_FALSE(encode_value(reg(Encoding::float32), Decimal{1, 39}));   // > FLT_MAX
  CHECK_FALSE(encode_value(reg(Encoding::float32), Decimal{1, -50}));  // below subnormals
  CHECK(encode_value(reg(Encoding::float32), Decimal{34028235, 31}));  // FLT_MAX
}

TEST_CASE("exact decimal arithmetic helpers") {
  CHECK(multiply({2302, -1}, {1, -3})->identical(Decimal{2302, -4}));
  CHECK_FALSE(multiply({INT64_MAX, 0}, {2, 0}));
  CHECK(divide_exact({2305, -1}, {1, -1})->identical(Decimal{2305, 0}));
  CHECK(divide_exact({5, 0}, {-1, 0})->identical(Decimal{-5, 0}));
  CHECK(*divide_exact({1, 0}, {4, 0}) == Decimal{25, -2});
  CHECK(*divide_exact({3, 0}, {5, -1}) == Decimal{6, 0});
  CHECK_FALSE(divide_exact({1, 0}, {3, 0}));
  CHECK_FALSE(divide_exact({1, 0}, {0, 0}));
  CHECK(decimal_to_float({2302, -1}) == 230.2f);
  CHECK(decimal_to_float({0, 0}) == 0.0f);
}

TEST_CASE("every float decodes to a decimal that encodes back to the same bits") {
  std::mt19937 rng(2305);
  std::uniform_int_distribution<std::uint32_t> bits;
  const Register r = reg(Encoding::float32);
  int tested = 0;
  while (tested < 200000) {
    const std::uint32_t b = bits(rng);
    const float f = std::bit_cast<float>(b);
    if (f != f || f == std::numeric_limits<float>::infinity() ||
        f == -std::numeric_limits<float>::infinity())
      continue;
    ++tested;
    const auto v = decode_value(r, float_words(b));
    REQUIRE(v);
    const auto w = encode_value(r, *v);
    REQUIRE(w);
    const std::uint32_t back = (std::uint32_t{(*w)[0]} << 16) | (*w)[1];
    if (f == 0.0f)
      CHECK(back == 0u);
    else
      CHECK(back == b);
  }
}

TEST_CASE("decode(encode(x)) == x for 6 significant digits, and for 7 in the meter range") {
  std::mt19937 rng(7);
  const Register r = reg(Encoding::float32);
  std::uniform_int_distribution<std::int64_t> six(100000, 999999), seven(1000000, 9999999);
  std::uniform_int_distribution<int> sign(0, 1);
  // 6 digits (FLT_DIG): everywhere in the normal float range.
  for (int e = -42; e <= 32; ++e) {  // 1e-37 .. 9.99999e37
    for (int i = 0; i < 200; ++i) {
      const Decimal x{sign(rng) ? six(rng) : -six(rng), e};
      const auto w = encode_value(r, x);
      REQUIRE(w);
      const auto back = decode_value(r, *w);
      REQUIRE(back);
      CHECK(*back == x);
    }
  }
  // 7 digits: raw magnitudes from 1e-3 up to 8.5e9 (energy registers, 0.001
  // PF, 0.1 W powers...), exhaustively near the edges, sampled in between.
  auto round_trips = [&](const Decimal& x) {
    const auto w = encode_value(r, x);
    REQUIRE(w);
    const auto back = decode_value(r, *w);
    return back && *back == x;
  };
  for (int e = -9; e <= 2; ++e)
    for (int i = 0; i < 20000; ++i) CHECK(round_trips(Decimal{seven(rng), e}));
  for (std::int64_t m = 8589000; m <= 8589972; ++m) CHECK(round_trips(Decimal{m, 3}));
  for (std::int64_t m = 1000000; m <= 1001000; ++m) CHECK(round_trips(Decimal{m, -9}));
  // ... and where 7 digits stop being enough (the documented bound).
  CHECK_FALSE(round_trips(Decimal{8589973, 3}));
  CHECK_FALSE(round_trips(Decimal{9765629, -10}));
  // With a scale the digits are the same: 0.1 W power, kW canonical.
  const Register p = reg(Encoding::float32, {1, -4});
  for (int i = 0; i < 20000; ++i) {
    const Decimal x{seven(rng), -4};  // 100.0000 .. 999.9999 kW = 1e6..1e7 raw
    const auto back = decode_value(p, *encode_value(p, x));
    REQUIRE(back);
    CHECK(*back == x);
  }
}
