#include "protocol/dlt645/values.hpp"

#include <algorithm>

#include "protocol/bcd.hpp"

namespace meterd::protocol::dlt645 {

namespace {

class ValueCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "dlt645.data"; }
  std::string message(int ev) const override {
    switch (static_cast<ValueError>(ev)) {
      case ValueError::length_mismatch:
        return "data length does not match the item";
      case ValueError::unknown_item:
        return "data identifier not in the catalogue";
    }
    return "unknown data error";
  }
};

// Date/time formats: the format names the BCD pairs as printed (most
// significant first); the wire carries them in reverse (§5: "YYMMDDhhmm"
// arrives as mm hh DD MM YY). The template is how we print them.
struct TimeFormat {
  std::string_view format;
  std::string_view text;
};
constexpr std::array<TimeFormat, 6> time_formats{{
    {"YYMMDDhhmmss", "20YY-MM-DDThh:mm:ss"},
    {"YYMMDDhhmm", "20YY-MM-DDThh:mm"},
    {"YYMMDD", "20YY-MM-DD"},
    {"hhmmss", "hh:mm:ss"},
    {"MMDDhhmm", "MM-DDThh:mm"},
    {"DDhh", "DDThh"},
}};

const TimeFormat* find_format(std::string_view format) {
  for (const auto& f : time_formats)
    if (f.format == format) return &f;
  return nullptr;
}

std::size_t token_index(std::string_view format, std::string_view token) {
  for (std::size_t t = 0; t * 2 < format.size(); ++t)
    if (format.substr(t * 2, 2) == token) return t;
  return std::string_view::npos;
}

constexpr char hex_digits[] = "0123456789ABCDEF";

std::optional<std::uint8_t> hex_nibble(char c) {
  if (c >= '0' && c <= '9') return static_cast<std::uint8_t>(c - '0');
  if (c >= 'A' && c <= 'F') return static_cast<std::uint8_t>(c - 'A' + 10);
  if (c >= 'a' && c <= 'f') return static_cast<std::uint8_t>(c - 'a' + 10);
  return std::nullopt;
}

// Rescales `d` to exactly `exponent`, failing if digits would be lost.
std::optional<std::int64_t> rescale(const Decimal& d, std::int32_t exponent) {
  std::int64_t m = d.mantissa;
  for (std::int32_t e = d.exponent; e > exponent; --e) {
    if (m > INT64_MAX / 10 || m < INT64_MIN / 10) return std::nullopt;
    m *= 10;
  }
  for (std::int32_t e = d.exponent; e < exponent; ++e) {
    if (m % 10 != 0) return std::nullopt;
    m /= 10;
  }
  return m;
}

ValueData decode_number(const Field& field, std::span<const std::uint8_t> bytes) {
  std::array<std::uint8_t, 9> copy{};
  if (bytes.size() > copy.size() || bytes.empty()) return {};
  std::copy(bytes.begin(), bytes.end(), copy.begin());
  bool negative = false;
  if (field.is_signed) {
    negative = (copy[bytes.size() - 1] & 0x80) != 0;
    copy[bytes.size() - 1] &= 0x7F;
  }
  const auto magnitude = bcd::decode_le(std::span(copy.data(), bytes.size()));
  if (!magnitude) return {};
  const auto m = static_cast<std::int64_t>(*magnitude);
  return Decimal{negative ? -m : m, -static_cast<std::int32_t>(field.decimals)};
}

std::optional<std::vector<std::uint8_t>> encode_number(const Field& field, const Decimal& d) {
  const auto scaled = rescale(d, -static_cast<std::int32_t>(field.decimals));
  if (!scaled) return std::nullopt;
  const bool negative = *scaled < 0;
  if (negative && !field.is_signed) return std::nullopt;
  const std::uint64_t magnitude =
      negative ? static_cast<std::uint64_t>(-*scaled) : static_cast<std::uint64_t>(*scaled);
  std::vector<std::uint8_t> out(field.size);
  if (!bcd::encode_le(magnitude, out)) return std::nullopt;
  if (field.is_signed) {
    if (out.back() & 0x80) return std::nullopt;  // top digit above 7: no room for the sign
    if (negative) out.back() |= 0x80;
  }
  return out;
}

ValueData decode_datetime(const Field& field, std::span<const std::uint8_t> bytes) {
  const TimeFormat* tf = find_format(field.format);
  if (!tf || bytes.size() * 2 != tf->format.size()) return {};
  std::string text(tf->text);
  for (std::size_t t = 0; t < bytes.size(); ++t) {
    const std::uint8_t b = bytes[bytes.size() - 1 - t];  // token t travels at wire index n-1-t
    if (!bcd::decode_byte(b)) return {};
    const auto token = tf->format.substr(t * 2, 2);
    const auto at = text.find(token);
    if (at == std::string::npos) return {};
    text[at] = hex_digits[b >> 4];
    text[at + 1] = hex_digits[b & 0x0F];
  }
  return text;
}

std::optional<std::vector<std::uint8_t>> encode_datetime(const Field& field,
                                                         std::string_view text) {
  const TimeFormat* tf = find_format(field.format);
  if (!tf || text.size() != tf->text.size()) return std::nullopt;
  std::vector<std::uint8_t> out(tf->format.size() / 2);
  std::size_t p = 0;
  while (p < tf->text.size()) {
    const auto token = tf->text.substr(p, 2);
    const auto t = token.size() == 2 ? token_index(tf->format, token) : std::string_view::npos;
    if (t != std::string_view::npos) {
      const char hi = text[p];
      const char lo = text[p + 1];
      if (hi < '0' || hi > '9' || lo < '0' || lo > '9') return std::nullopt;
      out[out.size() - 1 - t] = static_cast<std::uint8_t>(((hi - '0') << 4) | (lo - '0'));
      p += 2;
    } else {
      if (text[p] != tf->text[p]) return std::nullopt;
      ++p;
    }
  }
  return out;
}

}  // namespace

const std::error_category& value_category() noexcept {
  static const ValueCategory category;
  return category;
}

std::error_code make_error_code(ValueError e) noexcept {
  return {static_cast<int>(e), value_category()};
}

std::string to_hex(std::span<const std::uint8_t> bytes, bool spaced) {
  std::string out;
  out.reserve(bytes.size() * 3);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (spaced && i > 0) out += ' ';
    out += hex_digits[bytes[i] >> 4];
    out += hex_digits[bytes[i] & 0x0F];
  }
  return out;
}

std::optional<std::vector<std::uint8_t>> parse_hex(std::string_view text) {
  std::vector<std::uint8_t> out;
  int high = -1;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ':' || c == ',') continue;
    const auto nibble = hex_nibble(c);
    if (!nibble) return std::nullopt;
    if (high >= 0) {
      out.push_back(static_cast<std::uint8_t>((high << 4) | *nibble));
      high = -1;
    } else {
      high = *nibble;
    }
  }
  if (high >= 0) return std::nullopt;
  return out;
}

ValueData decode_field(const Field& field, std::span<const std::uint8_t> bytes) {
  switch (field.kind) {
    case FieldKind::number:
      return decode_number(field, bytes);
    case FieldKind::datetime:
      return decode_datetime(field, bytes);
    case FieldKind::digits: {
      std::string text;
      for (std::size_t i = bytes.size(); i-- > 0;) {
        if (!bcd::decode_byte(bytes[i])) return {};
        text += hex_digits[bytes[i] >> 4];
        text += hex_digits[bytes[i] & 0x0F];
      }
      return text;
    }
    case FieldKind::ascii: {
      std::string text;
      for (std::size_t i = bytes.size(); i-- > 0;) {
        const auto c = bytes[i];
        text += (c >= 0x20 && c < 0x7F) || c == 0x00 || c == 0xFF ? static_cast<char>(c) : '?';
      }
      const auto keep = [](char c) { return c != '\0' && c != static_cast<char>(0xFF); };
      const auto first = std::find_if(text.begin(), text.end(), keep);
      const auto last = std::find_if(text.rbegin(), text.rend(), keep).base();
      return first < last ? std::string(first, last) : std::string();
    }
    case FieldKind::hex: {
      std::vector<std::uint8_t> msb_first(bytes.rbegin(), bytes.rend());
      return to_hex(msb_first);
    }
    case FieldKind::raw:
      return to_hex(bytes);
  }
  return {};
}

std::optional<std::vector<std::uint8_t>> encode_field(const Field& field, const ValueData& value) {
  if (std::holds_alternative<std::monostate>(value))
    return std::vector<std::uint8_t>(field.size, 0xFF);
  if (field.kind == FieldKind::number) {
    const auto* d = std::get_if<Decimal>(&value);
    return d ? encode_number(field, *d) : std::nullopt;
  }
  const auto* text = std::get_if<std::string>(&value);
  if (!text) return std::nullopt;
  switch (field.kind) {
    case FieldKind::datetime:
      return encode_datetime(field, *text);
    case FieldKind::digits: {
      if (text->size() > field.size * 2u) return std::nullopt;
      std::string padded(field.size * 2 - text->size(), '0');
      padded += *text;
      std::vector<std::uint8_t> out(field.size);
      for (std::size_t i = 0; i < field.size; ++i) {
        const char hi = padded[i * 2];
        const char lo = padded[i * 2 + 1];
        if (hi < '0' || hi > '9' || lo < '0' || lo > '9') return std::nullopt;
        out[field.size - 1 - i] = static_cast<std::uint8_t>(((hi - '0') << 4) | (lo - '0'));
      }
      return out;
    }
    case FieldKind::ascii: {
      if (text->size() > field.size) return std::nullopt;
      std::vector<std::uint8_t> out(field.size, 0x00);
      for (std::size_t i = 0; i < text->size(); ++i) {
        const auto c = static_cast<std::uint8_t>((*text)[i]);
        if (c < 0x20 || c >= 0x7F) return std::nullopt;
        out[field.size - 1 - i] = c;  // first character travels last
      }
      return out;
    }
    case FieldKind::hex: {
      auto bytes = parse_hex(*text);
      if (!bytes || bytes->size() != field.size) return std::nullopt;
      std::reverse(bytes->begin(), bytes->end());
      return bytes;
    }
    case FieldKind::raw:
      return parse_hex(*text);
    case FieldKind::number:
      break;
  }
  return std::nullopt;
}

std::vector<std::string> describe_bits(const Field& field, std::uint16_t word) {
  std::vector<std::string> out;
  if (!field.bits) return out;
  for (unsigned bit = 0; bit < 16; ++bit) {
    if ((word & (1u << bit)) == 0) continue;
    const char* name = (*field.bits)[bit];
    out.push_back(name ? name : "reserved bit " + std::to_string(bit));
  }
  return out;
}

}  // namespace meterd::protocol::dlt645
