#include "firmware/meterctl/output.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <unistd.h>

#include "protocol/exact_json.hpp"

namespace meterd::meterctl {

namespace {

const char* code_of(Colour c) {
  switch (c) {
    case Colour::green:
      return "\033[32m";
    case Colour::red:
      return "\033[31m";
    case Colour::yellow:
      return "\033[33m";
    case Colour::bold:
      return "\033[1m";
    case Colour::dim:
      return "\033[2m";
    case Colour::none:
      break;
  }
  return "";
}

// Howard Hinnant's days_from_civil.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool digits(const std::string& s, std::size_t at, std::size_t n, int& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

unsigned days_in_month(int y, int m) {
  static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

// "YYYY-MM-DD[(T| )hh:mm[:ss[.fff...]](Z|±hh:mm)]"; a date alone is 00:00 UTC; a time needs
// its zone (a technician's local clock is not the daemon's UTC: no guessing).
std::optional<std::int64_t> parse_iso(const std::string& s) {
  int y, mo, d;
  if (!digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || static_cast<unsigned>(d) > days_in_month(y, mo))
    return std::nullopt;
  const std::int64_t day_ms =
      days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86'400'000;
  if (s.size() == 10) return day_ms;
  int h, mi, sec = 0, ms = 0;
  if ((s[10] != 'T' && s[10] != ' ') || !digits(s, 11, 2, h) || s.size() < 16 || s[13] != ':' ||
      !digits(s, 14, 2, mi))
    return std::nullopt;
  std::size_t i = 16;
  if (i < s.size() && s[i] == ':') {
    if (!digits(s, i + 1, 2, sec)) return std::nullopt;
    i += 3;
    if (i < s.size() && s[i] == '.') {
      ++i;
      int scale = 100;
      const std::size_t start = i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        ms += (s[i] - '0') * scale;  // digits past the millisecond are cut
        scale /= 10;
        ++i;
      }
      if (i == start) return std::nullopt;
    }
  }
  if (h > 23 || mi > 59 || sec > 59) return std::nullopt;
  std::int64_t offset_ms = 0;
  if (i < s.size() && s[i] == 'Z' && i + 1 == s.size()) {
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-') && s.size() == i + 6 && s[i + 3] == ':') {
    int oh, om;
    if (!digits(s, i + 1, 2, oh) || !digits(s, i + 4, 2, om) || oh > 23 || om > 59)
      return std::nullopt;
    offset_ms = (oh * 60 + om) * 60'000LL * (s[i] == '+' ? 1 : -1);
  } else {
    return std::nullopt;
  }
  return day_ms + ((h * 60LL + mi) * 60 + sec) * 1000 + ms - offset_ms;
}

}  // namespace

bool stdout_colour() {
  const char* no = std::getenv("NO_COLOR");
  if (no != nullptr && *no != '\0') return false;
  return ::isatty(STDOUT_FILENO) == 1;
}

std::string paint(const std::string& text, Colour colour, bool on) {
  if (!on || colour == Colour::none) return text;
  return std::string(code_of(colour)) + text + "\033[0m";
}

std::size_t display_width(const std::string& text) {
  std::size_t n = 0;
  for (const char c : text)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

Table::Table(std::vector<std::string> headers, std::vector<bool> right)
    : headers_(std::move(headers)), right_(std::move(right)) {
  right_.resize(headers_.size(), false);
}

void Table::add(std::vector<Cell> row) {
  row.resize(headers_.size());
  rows_.push_back(std::move(row));
}

void Table::print(std::ostream& out, bool colour) const {
  std::vector<std::size_t> width(headers_.size());
  for (std::size_t c = 0; c < headers_.size(); ++c) width[c] = display_width(headers_[c]);
  for (const auto& row : rows_)
    for (std::size_t c = 0; c < row.size(); ++c)
      width[c] = std::max(width[c], display_width(row[c].text));
  const auto line = [&](const std::vector<Cell>& cells) {
    std::string text;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::size_t pad = width[c] - display_width(cells[c].text);
      const bool last = c + 1 == cells.size();
      if (c > 0) text += "  ";
      if (right_[c]) text.append(pad, ' ');
      text += paint(cells[c].text, cells[c].colour, colour);
      if (!right_[c] && !last) text.append(pad, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out << text << "\n";
  };
  std::vector<Cell> head;
  for (const auto& h : headers_) head.push_back({h, Colour::bold});
  line(head);
  for (const auto& row : rows_) line(row);
}

std::string text_of(const nlohmann::json& j) {
  if (auto n = protocol::number_text(j)) return *n;
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return "-";
  if (j.is_boolean()) return j.get<bool>() ? "yes" : "no";
  return protocol::dump(j);
}

std::string field(const nlohmann::json& object, const char* key) {
  if (!object.is_object() || !object.contains(key)) return "-";
  return text_of(object[key]);
}

std::optional<std::int64_t> parse_iso_ms(const std::string& text) { return parse_iso(text); }

std::optional<std::int64_t> parse_time_option(const std::string& text) {
  if (!text.empty() && text.size() <= 18 &&
      text.find_first_not_of("0123456789") == std::string::npos)
    return std::stoll(text);
  return parse_iso(text);
}

std::string format_iso_ms(std::int64_t ms) {
  const std::int64_t days = ms >= 0 ? ms / 86'400'000 : (ms - 86'399'999) / 86'400'000;
  const std::int64_t t = ms - days * 86'400'000;
  // civil_from_days
  std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", static_cast<long long>(y),
                m, d, static_cast<unsigned>(t / 3'600'000), static_cast<unsigned>(t / 60'000 % 60),
                static_cast<unsigned>(t / 1000 % 60), static_cast<unsigned>(t % 1000));
  return buf;
}

std::string format_age(double s) {
  char buf[64];
  if (s < 0) s = 0;
  if (s < 10) {
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  } else if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.0f s", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%d min", static_cast<int>(s / 60));
  } else if (s < 86400) {
    const auto m = static_cast<long>(s / 60);
    std::snprintf(buf, sizeof buf, "%ld h %ld min", m / 60, m % 60);
  } else {
    const auto h = static_cast<long>(s / 3600);
    std::snprintf(buf, sizeof buf, "%ld d %ld h", h / 24, h % 24);
  }
  return buf;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string age_of(const std::string& iso) {
  const auto t = parse_iso(iso);
  if (!t) return "-";
  return format_age(static_cast<double>(now_ms() - *t) / 1000.0) + " ago";
}

}  // namespace meterd::meterctl
