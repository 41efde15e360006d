// Exact conversion between register words and canonical decimal values.
//
// Integers (int16/uint16/int32/uint32): value = raw × scale, exactly.
//
// float32: the meter's value IS the float. A float32 carries about 7.2
// significant decimal digits, so its exact binary expansion (230.2f is
// 230.19999694824219) is an artefact, not a measurement. decode_value
// takes the SHORTEST decimal that reads back as the same float (what
// std::to_chars(float) produces without a precision; checked for all 2^32
// bit patterns with GCC 12): 230.2f → 230.2, 231.68f → 231.68. That decimal
// is then multiplied by the scale exactly. It is the most honest decimal a
// float can give: never more digits than the float can tell apart, and
// encode_value(decode_value(f)) gives back the same bits (except -0 → +0).
//
// encode_value (for the simulator) divides by the scale exactly and picks
// the nearest float (std::from_chars of the decimal text). Hence
// decode(encode(x)) == x whenever the raw value has <= 6 significant
// digits (FLT_DIG), and for <= 7 digits whenever 1e-3 <= |raw| < 8.5e9 —
// 7 digits are NOT always enough: 8589973000 and 8589974000 (or 9.765629e-4
// and 9.765630e-4) share a float, which is why the bound is stated.
//
// Pure functions; any thread. No double anywhere.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "protocol/decimal.hpp"
#include "protocol/modbus_codec/registers.hpp"
#include "protocol/modbus_codec/result.hpp"

namespace meterd::protocol::modbus {

// Shortest round-trip decimal of a finite float: 230.2f → {2302,-1},
// 2305.0f → {2305,0}, 100.0f → {1,2}, -0.0f → {0,0}. nullopt for NaN/Inf.
std::optional<Decimal> float_to_decimal(float f);
// Nearest float to `d`; nullopt if |d| overflows float or is non-zero but
// below the smallest subnormal.
std::optional<float> decimal_to_float(const Decimal& d);

// a × b exactly; nullopt if the mantissa overflows int64.
std::optional<Decimal> multiply(const Decimal& a, const Decimal& b);
// value / divisor when the quotient is a finite decimal that fits
// (divisor mantissa 1 or -1: an exponent shift); else nullopt.
std::optional<Decimal> divide_exact(const Decimal& value, const Decimal& divisor);

// Two registers <-> float / 32-bit pattern in the given word order.
std::uint32_t join_words(std::span<const std::uint16_t, 2> words, WordOrder order) noexcept;
std::array<std::uint16_t, 2> split_words(std::uint32_t bits, WordOrder order) noexcept;

// The register's canonical value from its words (exactly r.words() of them).
// Errors: ValueError::wrong_word_count, not_finite (NaN/±Inf float),
// out_of_range (raw × scale overflows the mantissa).
Result<Decimal> decode_value(const Register& r, std::span<const std::uint16_t> words,
                             WordOrder order = WordOrder::high_word_first);

// The words that make the register read `value`. nullopt when it cannot:
// an integer encoding needs value / scale to be an integer in range
// (230.55 V cannot be sent in 0.1 V); float32 needs a finite float.
std::optional<std::vector<std::uint16_t>> encode_value(
    const Register& r, const Decimal& value, WordOrder order = WordOrder::high_word_first);

}  // namespace meterd::protocol::modbus
