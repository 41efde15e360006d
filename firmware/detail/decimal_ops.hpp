// Exact sums and differences of decimals for the data tasks (live checks,
// line loss): at the finer of the two exponents, nullopt on overflow. No
// floating point and no 128-bit integers (armhf has none).
#pragma once

#include <algorithm>
#include <optional>

#include "protocol/decimal.hpp"

namespace meterd::firmware::detail {

inline std::optional<protocol::Decimal> add(const protocol::Decimal& a,
                                            const protocol::Decimal& b) {
  const std::int32_t e = std::min(a.exponent, b.exponent);
  const auto x = protocol::rescale(a, e), y = protocol::rescale(b, e);
  std::int64_t r = 0;
  if (!x || !y || __builtin_add_overflow(*x, *y, &r)) return std::nullopt;
  return protocol::Decimal{r, e};
}

inline std::optional<protocol::Decimal> subtract(const protocol::Decimal& a,
                                                 const protocol::Decimal& b) {
  const std::int32_t e = std::min(a.exponent, b.exponent);
  const auto x = protocol::rescale(a, e), y = protocol::rescale(b, e);
  std::int64_t r = 0;
  if (!x || !y || __builtin_sub_overflow(*x, *y, &r)) return std::nullopt;
  return protocol::Decimal{r, e};
}

// -1, 0, 1 as a < b, a == b, a > b, numerically (220.0 == 220.00).
inline int compare(const protocol::Decimal& a, const protocol::Decimal& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

}  // namespace meterd::firmware::detail
