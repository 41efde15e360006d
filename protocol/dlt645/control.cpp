#include "protocol/dlt645/control.hpp"

#include <array>
#include <cstdio>
#include <utility>

namespace meterd::protocol::dlt645 {

std::string_view to_string(Version v) noexcept {
  return v == Version::v2007 ? "dlt645-2007" : "dlt645-1997";
}

std::optional<Version> parse_version(std::string_view text) noexcept {
  if (text == "dlt645-2007" || text == "2007") return Version::v2007;
  if (text == "dlt645-1997" || text == "1997") return Version::v1997;
  return std::nullopt;
}

namespace {

struct FunctionName {
  std::uint8_t code;
  const char* name;
};

// DL/T 645-2007 Table 3 (plus State Grid 03H).
constexpr std::array<FunctionName, 15> functions_2007{{
    {0x03, "security authentication"},
    {0x08, "broadcast time"},
    {0x11, "read data"},
    {0x12, "read follow-up data"},
    {0x13, "read address"},
    {0x14, "write data"},
    {0x15, "write address"},
    {0x16, "freeze"},
    {0x17, "change baud rate"},
    {0x18, "change password"},
    {0x19, "maximum demand reset"},
    {0x1A, "meter clear"},
    {0x1B, "event clear"},
    {0x1C, "relay control"},
    {0x1D, "multi-function output select"},
}};

// DL/T 645-1997 Table 2.
constexpr std::array<FunctionName, 9> functions_1997{{
    {0x01, "read data"},
    {0x02, "read follow-up data"},
    {0x03, "re-read data"},
    {0x04, "write data"},
    {0x08, "broadcast time"},
    {0x0A, "write address"},
    {0x0C, "change baud rate"},
    {0x0F, "change password"},
    {0x10, "maximum demand reset"},
}};

template <std::size_t N>
const char* find_function(const std::array<FunctionName, N>& table, std::uint8_t code) {
  for (const auto& f : table)
    if (f.code == code) return f.name;
  return nullptr;
}

const char* lookup(Version v, std::uint8_t fn) {
  return v == Version::v2007 ? find_function(functions_2007, fn)
                             : find_function(functions_1997, fn);
}

constexpr std::array<const char*, 8> err_2007{"other error",
                                              "no requested data",
                                              "password error or unauthorised",
                                              "baud rate cannot be changed",
                                              "year time-zone count exceeded",
                                              "daily period count exceeded",
                                              "tariff count exceeded",
                                              "reserved bit 7"};
constexpr std::array<const char*, 8> err_1997{"illegal data",
                                              "data identifier error",
                                              "password error",
                                              "reserved bit 3",
                                              "year time-zone count exceeded",
                                              "daily period count exceeded",
                                              "tariff count exceeded",
                                              "reserved bit 7"};
constexpr std::array<const char*, 7> serr_bits{"other error",
                                               "repeated top-up",
                                               "ESAM verification failed",
                                               "identity authentication failed",
                                               "customer number mismatch",
                                               "top-up count error",
                                               "purchase exceeds hoarding limit"};

struct RelayName {
  RelayCommand command;
  std::string_view name;
};
constexpr std::array<RelayName, 7> relay_names{{
    {RelayCommand::trip, "trip"},
    {RelayCommand::close_allowed, "close-allowed"},
    {RelayCommand::direct_close, "close"},
    {RelayCommand::alarm, "alarm"},
    {RelayCommand::alarm_release, "alarm-release"},
    {RelayCommand::keep_power, "keep-power"},
    {RelayCommand::keep_power_release, "release"},
}};

constexpr std::array<std::pair<unsigned, std::uint8_t>, 6> baud_words{{
    {600, 0x02},
    {1200, 0x04},
    {2400, 0x08},
    {4800, 0x10},
    {9600, 0x20},
    {19200, 0x40},
}};

}  // namespace

Version infer_version(std::uint8_t c, std::size_t data_size) noexcept {
  const auto fn = control::function(c);
  if (fn == fn2007::security) {
    // 1997 re-read: request without data, answer = DI(2) + data.
    // 2007 security: request DI + operator + data; error answer SERR (2).
    if (!control::is_response(c)) return data_size == 0 ? Version::v1997 : Version::v2007;
    return control::is_abnormal(c) && data_size == 2 ? Version::v2007 : Version::v1997;
  }
  if (find_function(functions_2007, fn)) return Version::v2007;
  if (find_function(functions_1997, fn)) return Version::v1997;
  return Version::v2007;
}

bool is_known_function(Version v, std::uint8_t c) noexcept {
  return lookup(v, control::function(c)) != nullptr;
}

std::string function_name(Version v, std::uint8_t c) {
  if (const char* name = lookup(v, control::function(c))) return name;
  char buf[32];
  std::snprintf(buf, sizeof buf, "unknown function %02X", control::function(c));
  return buf;
}

std::string error_meaning(Version v, std::uint8_t err) {
  if (err == 0) return "no error bit set";
  const auto& table = v == Version::v2007 ? err_2007 : err_1997;
  std::string out;
  for (unsigned bit = 0; bit < 8; ++bit) {
    if ((err & (1u << bit)) == 0) continue;
    if (!out.empty()) out += "; ";
    out += table[bit];
  }
  return out;
}

std::string security_error_meaning(std::uint16_t serr) {
  if (serr == 0) return "no error bit set";
  std::string out;
  for (unsigned bit = 0; bit < 16; ++bit) {
    if ((serr & (1u << bit)) == 0) continue;
    if (!out.empty()) out += "; ";
    out += bit < serr_bits.size() ? serr_bits[bit] : "reserved bit " + std::to_string(bit);
  }
  return out;
}

std::optional<RelayCommand> parse_relay_command(std::string_view name) noexcept {
  for (const auto& r : relay_names)
    if (r.name == name) return r.command;
  if (name == "direct-close") return RelayCommand::direct_close;
  if (name == "keep-power-release") return RelayCommand::keep_power_release;
  return std::nullopt;
}

std::optional<RelayCommand> relay_command_from_byte(std::uint8_t n1) noexcept {
  for (const auto& r : relay_names)
    if (static_cast<std::uint8_t>(r.command) == n1) return r.command;
  return std::nullopt;
}

std::string_view to_string(RelayCommand c) noexcept {
  for (const auto& r : relay_names)
    if (r.command == c) return r.name;
  return "unknown";
}

std::optional<std::uint8_t> baud_word(unsigned baud) noexcept {
  for (const auto& [rate, word] : baud_words)
    if (rate == baud) return word;
  return std::nullopt;
}

std::optional<unsigned> baud_from_word(std::uint8_t z) noexcept {
  for (const auto& [rate, word] : baud_words)
    if (word == z) return rate;
  return std::nullopt;
}

}  // namespace meterd::protocol::dlt645
