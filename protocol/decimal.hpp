// Exact decimal numbers: the value a meter sent, unchanged, from the wire
// to the MQTT payload. No binary floating point anywhere on this path.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meterd::protocol {

// value = mantissa * 10^exponent. The exponent also records the precision
// the meter used: {2200, -1} prints as "220.0", {22, 1} as "220".
struct Decimal {
  std::int64_t mantissa = 0;
  std::int32_t exponent = 0;

  // Numeric equality: 220.0 == 220.00 == 220.
  friend bool operator==(const Decimal& a, const Decimal& b) noexcept;

  // Numeric order: 219.9 < 220.0 < 220.01 (no floating point).
  friend bool operator<(const Decimal& a, const Decimal& b) noexcept;

  // Same digits and same precision (what a byte-exact round trip needs).
  bool identical(const Decimal& other) const noexcept {
    return mantissa == other.mantissa && exponent == other.exponent;
  }
};

// Plain decimal text, never scientific: {12345678,-2} -> "123456.78",
// {-5,-3} -> "-0.005", {12,2} -> "1200". Always a valid JSON number.
std::string to_string(const Decimal& d);

enum class Rounding {
  exact,        // refuse to drop a non-zero digit
  toward_zero,  // drop digits (a meter register shows the digits it has)
};

// The mantissa of `d` expressed at `exponent` (d = result * 10^exponent).
// nullopt if it overflows int64, or (exact) if a non-zero digit would be
// lost. Constant time in the exponent gap: extreme exponents ({1, -2^31}
// to 2^31-1) are refused or give 0 without looping.
std::optional<std::int64_t> rescale(const Decimal& d, std::int32_t exponent,
                                    Rounding rounding = Rounding::exact) noexcept;

// Parses "-123.45", "0.5", "17" (no exponent notation, no leading '+').
// Keeps the precision written: "220.10" -> {22010,-2}. Returns nullopt on
// anything else or when the mantissa would overflow 18 digits.
std::optional<Decimal> parse_decimal(std::string_view text);

}  // namespace meterd::protocol
