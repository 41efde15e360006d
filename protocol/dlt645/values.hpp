// Data-field layouts of DL/T 645 data items and their exact decoding
// (DL/T 645-2007 §5 and Appendix A; DL/T 645-1997 §5 and Appendix): packed
// BCD little-endian, sign-magnitude on the highest byte for the items the
// standard marks signed, dates reversed on the wire. Pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "protocol/decimal.hpp"
#include "protocol/quantity.hpp"

namespace meterd::protocol::dlt645 {

enum class FieldKind {
  number,    // BCD with implied decimals -> Decimal
  datetime,  // BCD date/time, format like "YYMMDDhhmm" -> ISO-like text
  digits,    // BCD digit string (address, meter number) -> text
  ascii,     // ASCII text, sent last character first -> text
  hex,       // bit fields / codes (status words, operator code) -> hex text, MSB first
  raw,       // opaque remainder (load-profile records) -> hex text in wire order
};

// Meanings of the 16 bits of a status word; nullptr = reserved.
using BitNames = std::array<const char*, 16>;

struct Field {
  FieldKind kind = FieldKind::number;
  std::uint8_t size = 0;     // bytes on the wire; raw: 0 = whatever remains
  std::int8_t decimals = 0;  // number: implied decimal places
  bool is_signed = false;    // number: bit 7 of the highest byte is the sign
  std::uint64_t max = 0;     // number (unsigned): largest valid value, 0 = any (weekday: 6)
  std::string_view format;   // datetime: "YYMMDDhhmmss", "YYMMDDhhmm", "YYMMDD",
                             // "hhmmss", "MMDDhhmm", "DDhh"
  QuantityKey key;           // what the value is: switch on key.measurand, not on names
  std::string quantity;      // to_string(key): canonical or descriptive name (docs/contracts.md)
  std::string unit;          // "kWh", "V", … or empty
  const BitNames* bits = nullptr;
};

// A decoded value: a number, a text (dates, times, identifiers) or null when
// the meter sent a non-BCD filler such as FF FF ("absent phase").
using ValueData = std::variant<std::monostate, Decimal, std::string>;

struct Value {
  std::string quantity;
  std::string unit;
  ValueData value;

  bool is_null() const noexcept { return std::holds_alternative<std::monostate>(value); }
  friend bool operator==(const Value&, const Value&) = default;
};

enum class ValueError {
  length_mismatch = 1,  // data size fits neither the fixed layout nor whole groups
  unknown_item,         // DI not in the catalogue
};
const std::error_category& value_category() noexcept;
std::error_code make_error_code(ValueError e) noexcept;

// One field from its wire bytes (already unscrambled, low byte first).
// `bytes.size()` must equal field.size (or anything for raw). Null for
// non-BCD filler (FF FF: absent) and for BCD that is out of range: a date
// or time with month 13, day 32 (or 30 February), hour 24, minute or
// second 60, a weekday above 6 (never a date: field_problem() says why).
// All-zero dates/times are the meters' "not happened yet" and decode as text.
ValueData decode_field(const Field& field, std::span<const std::uint8_t> bytes);

// Why valid BCD is out of range for the field ("month 13", "value 9 above
// 6"), or empty. Non-BCD filler is absence, not a problem: empty.
std::string field_problem(const Field& field, std::span<const std::uint8_t> bytes);

// One field to wire bytes. Null encodes as FF filler. nullopt if the value
// does not fit the field (too many digits, a sign on an unsigned item, a
// precision finer than the field's, a value past INT64 limits, malformed
// text, a date or time out of range).
std::optional<std::vector<std::uint8_t>> encode_field(const Field& field, const ValueData& value);

// Set-bit meanings of a status word value ("relay open", …).
std::vector<std::string> describe_bits(const Field& field, std::uint16_t word);

// Text helpers shared by the codec and tools.
std::string to_hex(std::span<const std::uint8_t> bytes, bool spaced = false);
std::optional<std::vector<std::uint8_t>> parse_hex(std::string_view text);  // spaces allowed

}  // namespace meterd::protocol::dlt645

template <>
struct std::is_error_code_enum<meterd::protocol::dlt645::ValueError> : std::true_type {};
