#include <doctest/doctest.h>

#include "protocol/bcd.hpp"
#include "protocol/decimal.hpp"

using meterd::protocol::Decimal;
using meterd::protocol::parse_decimal;
using meterd::protocol::to_string;
namespace bcd = meterd::protocol::bcd;

TEST_CASE("decimal prints exactly, with the meter's precision") {
  CHECK(to_string({12345678, -2}) == "123456.78");
  CHECK(to_string({2394, -1}) == "239.4");
  CHECK(to_string({0, -1}) == "0.0");
  CHECK(to_string({5, -3}) == "0.005");
  CHECK(to_string({-5, -3}) == "-0.005");
  CHECK(to_string({-1234, -3}) == "-1.234");
  CHECK(to_string({12, 2}) == "1200");
  CHECK(to_string({0, 3}) == "0");
  CHECK(to_string({INT64_MIN, 0}) == "-9223372036854775808");
}

TEST_CASE("decimal parses what it prints") {
  for (const char* text : {"123456.78", "239.4", "0.0", "0.005", "-0.005", "-1.234", "17", "0"}) {
    const auto d = parse_decimal(text);
    REQUIRE(d);
    CHECK(to_string(*d) == text);
  }
  CHECK(parse_decimal("220.10")->identical(Decimal{22010, -2}));
  CHECK_FALSE(parse_decimal(""));
  CHECK_FALSE(parse_decimal("-"));
  CHECK_FALSE(parse_decimal("1."));
  CHECK_FALSE(parse_decimal(".5"));
  CHECK_FALSE(parse_decimal("1e5"));
  CHECK_FALSE(parse_decimal("+1"));
  CHECK_FALSE(parse_decimal("1.2.3"));
  CHECK_FALSE(parse_decimal("1234567890123456789"));  // 19 digits
}

TEST_CASE("decimal equality is numeric, identical() is exact") {
  CHECK(Decimal{2200, -1} == Decimal{22, 1});
  CHECK(Decimal{2200, -1} == Decimal{220, 0});
  CHECK_FALSE(Decimal{2201, -1} == Decimal{220, 0});
  CHECK_FALSE(Decimal{2200, -1}.identical(Decimal{220, 0}));
  CHECK_FALSE(Decimal{INT64_MAX, 0} == Decimal{1, 30});
}

TEST_CASE("BCD little-endian") {
  const std::uint8_t bytes[] = {0x78, 0x56, 0x34, 0x12};
  CHECK(bcd::decode_le(bytes) == 12345678u);
  const std::uint8_t bad[] = {0xFF, 0xFF};
  CHECK_FALSE(bcd::decode_le(bad));
  std::uint8_t out[3];
  CHECK(bcd::encode_le(123456, out));
  CHECK(out[0] == 0x56);
  CHECK(out[2] == 0x12);
  CHECK_FALSE(bcd::encode_le(1234567, out));
  CHECK(bcd::decode_byte(0x99) == 99u);
  CHECK_FALSE(bcd::decode_byte(0x9A));
  CHECK(bcd::encode_byte(42) == 0x42);
}

#include "protocol/exact_json.hpp"

TEST_CASE("exact JSON numbers keep the meter's digits") {
  nlohmann::json j;
  j["value"] = meterd::protocol::exact_number({22010, -2});
  j["small"] = meterd::protocol::exact_number({-5, -3});
  j["text"] = "dec:1.5";
  j["list"] = {meterd::protocol::exact_number({12345678, -2}), 1};
  CHECK(meterd::protocol::dump(j) ==
        R"({"list":[123456.78,1],"small":-0.005,"text":"dec:1.5","value":220.10})");
  // The result is valid JSON and parses back to the same numbers.
  const auto back = nlohmann::json::parse(meterd::protocol::dump(j));
  CHECK(back["value"].dump() == "220.1");
}

TEST_CASE("parse_exact keeps a number's text: trailing zeros, long digits, exponents") {
  using meterd::protocol::dump;
  using meterd::protocol::number_text;
  using meterd::protocol::parse_exact;
  const std::string text =
      R"({"a":230.10,"b":[0.10,-0.005,1e3,12345678901234567890123],"c":17,"d":"230.10",)"
      R"("e":{"f":-0.0}})";
  const auto j = parse_exact(text);
  REQUIRE_FALSE(j.is_discarded());
  // nlohmann's own parse would give 230.1 and 0.1 (a careless client loses the meter's digits).
  CHECK(nlohmann::json::parse(text)["a"].dump() == "230.1");
  CHECK(dump(j) == text);
  CHECK(number_text(j["a"]) == "230.10");
  CHECK(number_text(j["b"][3]) == "12345678901234567890123");
  CHECK(number_text(j["c"]) == "17");
  CHECK_FALSE(number_text(j["d"]));  // a string is not a number
  CHECK(j["d"] == "230.10");
  CHECK(parse_exact("{\"a\":").is_discarded());
  CHECK(parse_exact("[1,]").is_discarded());
  // A string posing as a marked number is refused, not turned into a number.
  CHECK(parse_exact("[\"\\u0001dec:5\"]").is_discarded());
}

TEST_CASE("rescale: exact, overflow-checked, constant time at any exponent") {
  using meterd::protocol::rescale;
  using meterd::protocol::Rounding;
  CHECK(rescale({12345, -2}, -4) == 1234500);
  CHECK(rescale({1234500, -4}, -2) == 12345);
  CHECK_FALSE(rescale({12345, -4}, -2));  // 1.2345 at two places loses digits
  CHECK(rescale({12345, -4}, -2, Rounding::toward_zero) == 123);
  CHECK(rescale({-12345, -4}, -2, Rounding::toward_zero) == -123);
  CHECK(rescale({INT64_MAX, 0}, 0) == INT64_MAX);
  CHECK_FALSE(rescale({INT64_MAX, 0}, -1));
  CHECK_FALSE(rescale({INT64_MIN, 0}, -1));
  CHECK(rescale({INT64_MIN, 0}, 0) == INT64_MIN);
  CHECK(rescale({922337203685477580, 1}, 0) == 9223372036854775800);
  CHECK_FALSE(rescale({922337203685477581, 1}, 0));
  // Extreme exponents: an answer at once, never 2^31 loop turns.
  CHECK_FALSE(rescale({1, INT32_MAX}, INT32_MIN));
  CHECK_FALSE(rescale({1, INT32_MIN}, INT32_MAX));
  CHECK(rescale({1, INT32_MIN}, INT32_MAX, Rounding::toward_zero) == 0);
  CHECK(rescale({0, INT32_MAX}, INT32_MIN) == 0);
  CHECK(rescale({-1, 18}, 0) == -1000000000000000000);
  CHECK_FALSE(rescale({1, 19}, 0));
  CHECK(rescale({INT64_MIN, 0}, 19, Rounding::toward_zero) == 0);
  // Equality uses it: no loop, no overflow, whatever the exponents.
  CHECK(Decimal{1, INT32_MAX} == Decimal{1, INT32_MAX});
  CHECK_FALSE(Decimal{1, INT32_MAX} == Decimal{1, INT32_MIN});
  CHECK(Decimal{2200, -1} == Decimal{22, 1});
}

TEST_CASE("bcd: one parser of printed digit pairs") {
  CHECK(bcd::parse_pair('1', '2') == 0x12);
  CHECK(bcd::parse_pair('0', '9') == 0x09);
  CHECK_FALSE(bcd::parse_pair('A', '1'));
  CHECK_FALSE(bcd::parse_pair('1', ':'));
  CHECK_FALSE(bcd::parse_pair('/', '0'));
}

// Order across precisions, without doubles: a comparison that looks at the
// mantissas only calls 220.0 (2200e-1) bigger than 242 (242e0); one through
// double loses the last digit of 18-digit values.
TEST_CASE("decimal order is numeric across precisions") {
  using meterd::protocol::Decimal;
  CHECK(Decimal{2200, -1} < Decimal{242, 0});
  CHECK_FALSE(Decimal{242, 0} < Decimal{2200, -1});
  CHECK_FALSE(Decimal{2200, -1} < Decimal{22000, -2});  // equal
  CHECK(Decimal{21999, -2} < Decimal{2200, -1});
  CHECK(Decimal{-5, 0} < Decimal{1, -3});
  CHECK(Decimal{999999999999999998, 0} < Decimal{999999999999999999, 0});
  // Scaling overflows: the one with the big exponent is beyond every int64.
  CHECK(Decimal{1, -2} < Decimal{1, 30});
  CHECK(Decimal{-1, 30} < Decimal{1, -2});
  CHECK_FALSE(Decimal{1, 30} < Decimal{5, -2});
}
