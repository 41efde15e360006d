// meterctl's human output: aligned tables, colour only on a terminal (and never with NO_COLOR
// set), times and ages, and the exact text of the daemon's numbers.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace meterd::meterctl {

enum class Colour { none, green, red, yellow, bold, dim };

// Colour for stdout: on when stdout is a terminal and NO_COLOR is unset or empty
// (https://no-color.org).
bool stdout_colour();
// "\033[32m" + text + "\033[0m" when `on`, else text.
std::string paint(const std::string& text, Colour colour, bool on);

// Columns padded to their widest cell (colour codes do not count), two spaces apart, the last
// column not padded. Right-aligned columns suit numbers.
class Table {
 public:
  struct Cell {
    std::string text;
    Colour colour = Colour::none;
  };
  explicit Table(std::vector<std::string> headers, std::vector<bool> right = {});
  void add(std::vector<Cell> row);
  bool empty() const noexcept { return rows_.empty(); }
  void print(std::ostream& out, bool colour) const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<Cell>> rows_;
};

// Display width of UTF-8 text: code points (meter ids and units are narrow).
std::size_t display_width(const std::string& text);

// A JSON value as a person reads it: strings bare, numbers with their exact digits, null "-".
std::string text_of(const nlohmann::json& j);
// A member of an object as text_of(); "-" when missing.
std::string field(const nlohmann::json& object, const char* key);

// "2026-12-01T08:00:00.000Z" -> ms since the epoch; nullopt if not that shape.
std::optional<std::int64_t> parse_iso_ms(const std::string& text);
// For --from/--to: ISO 8601 with Z or an offset ("2026-12-01T08:00:00Z",
// "2026-12-01T10:00+02:00"), a date alone (00:00 UTC that day), or epoch ms (digits only).
std::optional<std::int64_t> parse_time_option(const std::string& text);
std::string format_iso_ms(std::int64_t ms);
// "0.2 s", "42 s", "3 min", "2 h 5 min", "3 d 4 h".
std::string format_age(double seconds);
// The age of an ISO time against the local clock: "2.1 s ago"; "-" if unparsable.
std::string age_of(const std::string& iso);
std::int64_t now_ms();

}  // namespace meterd::meterctl
