// Packed BCD, little-endian (low byte first), as DL/T 645 carries numbers,
// dates and addresses (DL/T 645-2007 §5, "数据格式").
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace meterd::protocol::bcd {

// 0x12 -> 12. nullopt if either nibble is above 9.
std::optional<unsigned> decode_byte(std::uint8_t byte) noexcept;

// Two printed digits, most significant first ('1', '2') -> 0x12. nullopt
// unless both are '0'..'9'. The one parser of printed BCD pairs (addresses,
// meter numbers, dates as text).
std::optional<std::uint8_t> parse_pair(char hi, char lo) noexcept;

// 12 -> 0x12. Precondition: value <= 99.
std::uint8_t encode_byte(unsigned value) noexcept;

// Little-endian packed BCD -> integer. nullopt if any nibble is not a
// decimal digit (e.g. FF FF, the "absent" marker) or the span is longer
// than 9 bytes (18 digits).
std::optional<std::uint64_t> decode_le(std::span<const std::uint8_t> bytes) noexcept;

// Integer -> little-endian packed BCD filling all of `out`. Returns false,
// leaving `out` unspecified, if the value needs more digits than fit.
bool encode_le(std::uint64_t value, std::span<std::uint8_t> out) noexcept;

}  // namespace meterd::protocol::bcd
