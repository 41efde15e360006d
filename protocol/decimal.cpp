#include "protocol/decimal.hpp"

#include <cstdlib>

namespace meterd::protocol {

namespace {

constexpr std::int64_t pow10(int n) noexcept {
  std::int64_t p = 1;
  for (int i = 0; i < n; ++i) p *= 10;
  return p;
}

}  // namespace

std::optional<std::int64_t> rescale(const Decimal& d, std::int32_t exponent,
                                    Rounding rounding) noexcept {
  const std::int64_t m = d.mantissa;
  if (m == 0) return 0;
  // 64-bit difference: exponents span the whole int32 range.
  const std::int64_t gap = std::int64_t{d.exponent} - exponent;
  if (gap == 0) return m;
  if (gap > 0) {                        // more digits: m * 10^gap
    if (gap > 18) return std::nullopt;  // |m| >= 1, and 10^19 > INT64_MAX
    std::int64_t out = 0;
    if (__builtin_mul_overflow(m, pow10(static_cast<int>(gap)), &out)) return std::nullopt;
    return out;
  }
  // fewer digits: m / 10^-gap; |m| < 10^19, so past 18 places nothing is left
  if (-gap > 18) {
    if (rounding == Rounding::exact) return std::nullopt;
    return 0;
  }
  const std::int64_t divisor = pow10(static_cast<int>(-gap));
  if (rounding == Rounding::exact && m % divisor != 0) return std::nullopt;
  return m / divisor;
}

bool operator==(const Decimal& a, const Decimal& b) noexcept {
  // Scale the one with the larger exponent down to the other's: exact or
  // overflowing means they differ (the other fits int64 at that exponent).
  if (a.exponent < b.exponent) return b == a;
  const auto scaled = rescale(a, b.exponent);
  return scaled && *scaled == b.mantissa;
}

bool operator<(const Decimal& a, const Decimal& b) noexcept {
  // Scaling the one with the larger exponent to the other's exponent only
  // multiplies; if that overflows, its magnitude is beyond every int64 at
  // that exponent, so its sign decides.
  if (a.exponent >= b.exponent) {
    const auto scaled = rescale(a, b.exponent);
    return scaled ? *scaled < b.mantissa : a.mantissa < 0;
  }
  const auto scaled = rescale(b, a.exponent);
  return scaled ? a.mantissa < *scaled : b.mantissa > 0;
}

std::string to_string(const Decimal& d) {
  const bool negative = d.mantissa < 0;
  // Work on the magnitude as unsigned so INT64_MIN stays printable.
  std::uint64_t magnitude = negative ? (~static_cast<std::uint64_t>(d.mantissa) + 1)
                                     : static_cast<std::uint64_t>(d.mantissa);
  std::string digits = std::to_string(magnitude);
  std::string out = negative && magnitude != 0 ? "-" : "";
  if (d.exponent >= 0) {
    out += digits;
    if (magnitude != 0) out.append(static_cast<std::size_t>(d.exponent), '0');
    return out;
  }
  const auto frac = static_cast<std::size_t>(-static_cast<std::int64_t>(d.exponent));
  if (digits.size() <= frac) digits.insert(0, frac - digits.size() + 1, '0');
  out += digits.substr(0, digits.size() - frac);
  out += '.';
  out += digits.substr(digits.size() - frac);
  return out;
}

std::optional<Decimal> parse_decimal(std::string_view text) {
  if (text.empty()) return std::nullopt;
  bool negative = false;
  std::size_t i = 0;
  if (text[0] == '-') {
    negative = true;
    i = 1;
  }
  std::uint64_t mantissa = 0;
  std::int32_t exponent = 0;
  int digits = 0;
  bool seen_point = false;
  bool any_digit = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '.') {
      if (seen_point || !any_digit) return std::nullopt;
      seen_point = true;
      continue;
    }
    if (c < '0' || c > '9') return std::nullopt;
    any_digit = true;
    if (digits > 0 || c != '0') ++digits;
    if (digits > 18) return std::nullopt;
    mantissa = mantissa * 10 + static_cast<std::uint64_t>(c - '0');
    if (seen_point) --exponent;
  }
  if (!any_digit || text.back() == '.') return std::nullopt;
  auto value = static_cast<std::int64_t>(mantissa);
  return Decimal{negative ? -value : value, exponent};
}

}  // namespace meterd::protocol
