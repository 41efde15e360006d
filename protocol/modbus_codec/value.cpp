#include "protocol/modbus_codec/value.hpp"

#include <bit>
#include <charconv>
#include <cmath>
#include <limits>

#include "protocol/modbus_codec/error.hpp"

namespace meterd::protocol::modbus {

namespace {

constexpr std::int64_t exponent_min = std::numeric_limits<std::int32_t>::min();
constexpr std::int64_t exponent_max = std::numeric_limits<std::int32_t>::max();

std::optional<Decimal> make(std::int64_t mantissa, std::int64_t exponent) {
  if (exponent < exponent_min || exponent > exponent_max) return std::nullopt;
  return Decimal{mantissa, static_cast<std::int32_t>(exponent)};
}

// The decimal as an integer, when it is one and fits int64.
std::optional<std::int64_t> to_integer(const Decimal& d) { return rescale(d, 0); }

Result<std::int64_t> raw_integer(Encoding e, std::span<const std::uint16_t> w, WordOrder order) {
  switch (e) {
    case Encoding::int16:
      return std::int64_t{static_cast<std::int16_t>(w[0])};
    case Encoding::uint16:
      return std::int64_t{w[0]};
    case Encoding::int32:
      return std::int64_t{static_cast<std::int32_t>(join_words(w.first<2>(), order))};
    case Encoding::uint32:
      return std::int64_t{join_words(w.first<2>(), order)};
    case Encoding::float32:
      break;
  }
  return ValueError::wrong_word_count;  // not reached for integer encodings
}

bool fits(Encoding e, std::int64_t v) {
  switch (e) {
    case Encoding::int16:
      return v >= INT16_MIN && v <= INT16_MAX;
    case Encoding::uint16:
      return v >= 0 && v <= UINT16_MAX;
    case Encoding::int32:
      return v >= INT32_MIN && v <= INT32_MAX;
    case Encoding::uint32:
      return v >= 0 && v <= std::int64_t{UINT32_MAX};
    case Encoding::float32:
      break;
  }
  return false;
}

}  // namespace

std::optional<Decimal> float_to_decimal(float f) {
  if (!std::isfinite(f)) return std::nullopt;
  // Shortest round-trip digits (C++17 [charconv.to.chars]/2: "the
  // representation with the smallest number of characters" that from_chars
  // reads back as the same value), in scientific form: [-]d[.ddd]e±xx.
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
  if (ec != std::errc()) return std::nullopt;  // cannot happen with 32 bytes
  const char* p = buf;
  const bool negative = *p == '-';
  if (negative) ++p;
  std::int64_t mantissa = 0;
  std::int64_t digits = 0;
  for (; p < end && *p != 'e'; ++p) {
    if (*p == '.') continue;
    mantissa = mantissa * 10 + (*p - '0');
    ++digits;
  }
  std::int64_t exponent = 0;
  if (p < end) {
    ++p;  // 'e'
    const bool neg_exp = p < end && *p == '-';
    if (p < end && (*p == '-' || *p == '+')) ++p;
    for (; p < end; ++p) exponent = exponent * 10 + (*p - '0');
    if (neg_exp) exponent = -exponent;
  }
  if (mantissa == 0) return Decimal{0, 0};
  exponent -= digits - 1;
  while (mantissa % 10 == 0) {
    mantissa /= 10;
    ++exponent;
  }
  return make(negative ? -mantissa : mantissa, exponent);
}

std::optional<float> decimal_to_float(const Decimal& d) {
  if (d.mantissa == 0) return 0.0f;
  // "<mantissa>e<exponent>": at most 20 + 1 + 11 characters.
  char buf[48];
  char* const end = buf + sizeof buf;
  auto r = std::to_chars(buf, end - 16, d.mantissa);
  if (r.ec != std::errc()) return std::nullopt;
  char* p = r.ptr;
  *p++ = 'e';
  r = std::to_chars(p, end, d.exponent);
  if (r.ec != std::errc()) return std::nullopt;
  float f = 0;
  const auto [ptr, ec] = std::from_chars(buf, r.ptr, f, std::chars_format::scientific);
  if (ec != std::errc() || ptr != r.ptr || !std::isfinite(f) || f == 0.0f) return std::nullopt;
  return f;
}

std::optional<Decimal> multiply(const Decimal& a, const Decimal& b) {
  std::int64_t m = 0;
  if (__builtin_mul_overflow(a.mantissa, b.mantissa, &m)) return std::nullopt;
  return make(m, std::int64_t{a.exponent} + b.exponent);
}

std::optional<Decimal> divide_exact(const Decimal& value, const Decimal& divisor) {
  const std::int64_t dm = divisor.mantissa;
  if (dm == 0) return std::nullopt;
  std::int64_t m = value.mantissa;
  std::int64_t e = std::int64_t{value.exponent} - divisor.exponent;
  if (dm == 1) return make(m, e);
  if (dm == -1) {
    if (m == std::numeric_limits<std::int64_t>::min()) return std::nullopt;
    return make(-m, e);
  }
  // Scale the dividend up until the division is exact (it ends when the
  // divisor has factors other than 2 and 5, or the mantissa would overflow).
  for (int i = 0; i <= 18; ++i) {
    if (m % dm == 0) return make(m / dm, e);
    if (__builtin_mul_overflow(m, std::int64_t{10}, &m)) return std::nullopt;
    --e;
  }
  return std::nullopt;
}

std::uint32_t join_words(std::span<const std::uint16_t, 2> w, WordOrder order) noexcept {
  const std::uint16_t hi = order == WordOrder::high_word_first ? w[0] : w[1];
  const std::uint16_t lo = order == WordOrder::high_word_first ? w[1] : w[0];
  return (std::uint32_t{hi} << 16) | lo;
}

std::array<std::uint16_t, 2> split_words(std::uint32_t bits, WordOrder order) noexcept {
  const auto hi = static_cast<std::uint16_t>(bits >> 16);
  const auto lo = static_cast<std::uint16_t>(bits & 0xFFFFu);
  if (order == WordOrder::high_word_first) return {hi, lo};
  return {lo, hi};
}

Result<Decimal> decode_value(const Register& r, std::span<const std::uint16_t> words,
                             WordOrder order) {
  if (words.size() != r.words()) return ValueError::wrong_word_count;
  Decimal raw;
  if (r.encoding == Encoding::float32) {
    const float f = std::bit_cast<float>(join_words(words.first<2>(), order));
    const auto d = float_to_decimal(f);
    if (!d) return ValueError::not_finite;
    raw = *d;
  } else {
    const auto i = raw_integer(r.encoding, words, order);
    if (!i) return i.error();
    raw = Decimal{*i, 0};
  }
  const auto scaled = multiply(raw, r.scale);
  if (!scaled) return ValueError::out_of_range;
  return *scaled;
}

std::optional<std::vector<std::uint16_t>> encode_value(const Register& r, const Decimal& value,
                                                       WordOrder order) {
  const auto raw = divide_exact(value, r.scale);
  if (!raw) return std::nullopt;
  std::uint32_t bits = 0;
  switch (r.encoding) {
    case Encoding::float32: {
      const auto f = decimal_to_float(*raw);
      if (!f) return std::nullopt;
      bits = std::bit_cast<std::uint32_t>(*f);
      break;
    }
    case Encoding::int16:
    case Encoding::uint16: {
      const auto i = to_integer(*raw);
      if (!i || !fits(r.encoding, *i)) return std::nullopt;
      return std::vector<std::uint16_t>{static_cast<std::uint16_t>(*i & 0xFFFF)};
    }
    case Encoding::int32:
    case Encoding::uint32: {
      const auto i = to_integer(*raw);
      if (!i || !fits(r.encoding, *i)) return std::nullopt;
      bits = static_cast<std::uint32_t>(*i & 0xFFFFFFFF);
      break;
    }
  }
  const auto w = split_words(bits, order);
  return std::vector<std::uint16_t>{w[0], w[1]};
}

}  // namespace meterd::protocol::modbus
