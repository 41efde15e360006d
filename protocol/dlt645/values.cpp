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
  if (field.max && *magnitude > field.max) return {};  // e.g. weekday 9
  const auto m = static_cast<std::int64_t>(*magnitude);
  return Decimal{negative ? -m : m, -static_cast<std::int32_t>(field.decimals)};
}

std::optional<std::vector<std::uint8_t>> encode_number(const Field& field, const Decimal& d) {
  const auto scaled = rescale(d, -static_cast<std::int32_t>(field.decimals));
  if (!scaled) return std::nullopt;
  const bool negative = *scaled < 0;
  if (negative && !field.is_signed) return std::nullopt;
  // Magnitude in unsigned arithmetic: -INT64_MIN does not exist as int64.
  const std::uint64_t magnitude =
      negative ? ~static_cast<std::uint64_t>(*scaled) + 1 : static_cast<std::uint64_t>(*scaled);
  if (field.max && magnitude > field.max) return std::nullopt;
  std::vector<std::uint8_t> out(field.size);
  if (!bcd::encode_le(magnitude, out)) return std::nullopt;
  if (field.is_signed) {
    if (out.back() & 0x80) return std::nullopt;  // top digit above 7: no room for the sign
    if (negative) out.back() |= 0x80;
  }
  return out;
}

// The BCD pairs of a date/time, by token ("YY", "MM", …); -1 where absent.
struct Civil {
  int year = -1, month = -1, day = -1, hour = -1, minute = -1, second = -1;
};

int days_in_month(int year, int month) {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2) return year < 0 || year % 4 == 0 ? 29 : 28;  // 2000–2099: every 4th year
  return days[month - 1];
}

// Why the pairs of a date/time are not a time a meter can mean ("month 13"),
// or empty. All zero is the meters' "never happened" (a maximum demand not
// reached yet) and is accepted as such.
std::string civil_problem(std::string_view format, std::span<const unsigned> pairs) {
  if (std::all_of(pairs.begin(), pairs.end(), [](unsigned v) { return v == 0; })) return {};
  Civil c;
  for (std::size_t t = 0; t < pairs.size(); ++t) {
    const auto token = format.substr(t * 2, 2);
    const int v = static_cast<int>(pairs[t]);
    if (token == "YY") c.year = v;
    if (token == "MM") c.month = v;
    if (token == "DD") c.day = v;
    if (token == "hh") c.hour = v;
    if (token == "mm") c.minute = v;
    if (token == "ss") c.second = v;
  }
  const auto bad = [](const char* what, int v) {
    return std::string(what) + " " + std::to_string(v);
  };
  if (c.month != -1 && (c.month < 1 || c.month > 12)) return bad("month", c.month);
  if (c.day != -1 && (c.day < 1 || c.day > (c.month == -1 ? 31 : days_in_month(c.year, c.month))))
    return bad("day", c.day);
  if (c.hour > 23) return bad("hour", c.hour);
  if (c.minute > 59) return bad("minute", c.minute);
  if (c.second > 59) return bad("second", c.second);
  return {};
}

ValueData decode_datetime(const Field& field, std::span<const std::uint8_t> bytes) {
  const TimeFormat* tf = find_format(field.format);
  if (!tf || bytes.size() * 2 != tf->format.size()) return {};
  std::string text(tf->text);
  std::array<unsigned, 6> pairs{};
  for (std::size_t t = 0; t < bytes.size(); ++t) {
    const std::uint8_t b = bytes[bytes.size() - 1 - t];  // token t travels at wire index n-1-t
    const auto pair = bcd::decode_byte(b);
    if (!pair) return {};
    pairs[t] = *pair;
    const auto token = tf->format.substr(t * 2, 2);
    const auto at = text.find(token);
    if (at == std::string::npos) return {};
    text[at] = hex_digits[b >> 4];
    text[at + 1] = hex_digits[b & 0x0F];
  }
  if (!civil_problem(tf->format, std::span(pairs.data(), bytes.size())).empty()) return {};
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
      const auto pair = bcd::parse_pair(text[p], text[p + 1]);
      if (!pair) return std::nullopt;
      out[out.size() - 1 - t] = *pair;
      p += 2;
    } else {
      if (text[p] != tf->text[p]) return std::nullopt;
      ++p;
    }
  }
  std::array<unsigned, 6> pairs{};
  for (std::size_t t = 0; t < out.size(); ++t)
    pairs[t] = *bcd::decode_byte(out[out.size() - 1 - t]);
  if (!civil_problem(tf->format, std::span(pairs.data(), out.size())).empty()) return std::nullopt;
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

std::string field_problem(const Field& field, std::span<const std::uint8_t> bytes) {
  if (field.kind == FieldKind::datetime) {
    const TimeFormat* tf = find_format(field.format);
    if (!tf || bytes.size() * 2 != tf->format.size()) return {};
    std::array<unsigned, 6> pairs{};
    for (std::size_t t = 0; t < bytes.size(); ++t) {
      const auto pair = bcd::decode_byte(bytes[bytes.size() - 1 - t]);
      if (!pair) return {};  // not BCD: an absent value, not a problem
      pairs[t] = *pair;
    }
    return civil_problem(tf->format, std::span(pairs.data(), bytes.size()));
  }
  if (field.kind == FieldKind::number && field.max && !field.is_signed) {
    const auto magnitude = bcd::decode_le(bytes);
    if (magnitude && *magnitude > field.max)
      return "value " + std::to_string(*magnitude) + " above " + std::to_string(field.max);
  }
  return {};
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
        const auto pair = bcd::parse_pair(padded[i * 2], padded[i * 2 + 1]);
        if (!pair) return std::nullopt;
        out[field.size - 1 - i] = *pair;
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
