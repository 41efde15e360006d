#include "protocol/decimal.hpp"

#include <cstdlib>

namespace meterd::protocol {

namespace {

// Compares a*10^ea with b*10^eb without overflow: scale the one with the
// larger exponent down only when that is exact, otherwise they differ.
bool equal_scaled(std::int64_t a, std::int32_t ea, std::int64_t b, std::int32_t eb) {
  if (ea < eb) return equal_scaled(b, eb, a, ea);
  // ea >= eb: a*10^(ea-eb) must equal b.
  std::int64_t scaled = a;
  for (std::int32_t i = 0; i < ea - eb; ++i) {
    if (scaled > INT64_MAX / 10 || scaled < INT64_MIN / 10) return false;
    scaled *= 10;
  }
  return scaled == b;
}

}  // namespace

bool operator==(const Decimal& a, const Decimal& b) noexcept {
  return equal_scaled(a.mantissa, a.exponent, b.mantissa, b.exponent);
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
