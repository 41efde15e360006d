// Control code C and error words (DL/T 645-2007 §4.1.4 and §7, DL/T 645-1997
// §4.1.4 and §6): what the bits mean and which function each code names.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meterd::protocol::dlt645 {

enum class Version { v2007, v1997 };

std::string_view to_string(Version v) noexcept;  // "dlt645-2007" | "dlt645-1997"
std::optional<Version> parse_version(std::string_view text) noexcept;

namespace control {
inline constexpr std::uint8_t direction_bit = 0x80;  // D7: 1 = slave -> master
inline constexpr std::uint8_t abnormal_bit = 0x40;   // D6: 1 = error answer
inline constexpr std::uint8_t follow_up_bit = 0x20;  // D5: 1 = more frames follow
inline constexpr std::uint8_t function_mask = 0x1F;  // D4..D0

constexpr bool is_response(std::uint8_t c) noexcept { return (c & direction_bit) != 0; }
constexpr bool is_abnormal(std::uint8_t c) noexcept { return (c & abnormal_bit) != 0; }
constexpr bool has_follow_up(std::uint8_t c) noexcept { return (c & follow_up_bit) != 0; }
constexpr std::uint8_t function(std::uint8_t c) noexcept { return c & function_mask; }
}  // namespace control

// Function codes (D4..D0).
namespace fn2007 {
inline constexpr std::uint8_t security = 0x03;  // ESAM authentication [State Grid]
inline constexpr std::uint8_t broadcast_time = 0x08;
inline constexpr std::uint8_t read = 0x11;
inline constexpr std::uint8_t read_follow_up = 0x12;
inline constexpr std::uint8_t read_address = 0x13;
inline constexpr std::uint8_t write = 0x14;
inline constexpr std::uint8_t write_address = 0x15;
inline constexpr std::uint8_t freeze = 0x16;
inline constexpr std::uint8_t change_baud = 0x17;
inline constexpr std::uint8_t change_password = 0x18;
inline constexpr std::uint8_t demand_reset = 0x19;
inline constexpr std::uint8_t meter_clear = 0x1A;
inline constexpr std::uint8_t event_clear = 0x1B;
inline constexpr std::uint8_t relay_control = 0x1C;
inline constexpr std::uint8_t output_select = 0x1D;
}  // namespace fn2007

namespace fn1997 {
inline constexpr std::uint8_t read = 0x01;
inline constexpr std::uint8_t read_follow_up = 0x02;
inline constexpr std::uint8_t reread = 0x03;
inline constexpr std::uint8_t write = 0x04;
inline constexpr std::uint8_t broadcast_time = 0x08;
inline constexpr std::uint8_t write_address = 0x0A;
inline constexpr std::uint8_t change_baud = 0x0C;
inline constexpr std::uint8_t change_password = 0x0F;
inline constexpr std::uint8_t demand_reset = 0x10;
}  // namespace fn1997

// Which version a frame speaks, from its function code. The codes of the
// two versions overlap only in 08 (broadcast time, same layout in both: we
// answer 2007) and 03 (1997 re-read has no data; 2007 security does).
Version infer_version(std::uint8_t control, std::size_t data_size) noexcept;

// "read data", "relay control", …; "unknown function 1E" if not defined
// in that version.
std::string function_name(Version v, std::uint8_t control);
bool is_known_function(Version v, std::uint8_t control) noexcept;

// Meaning of a normal/abnormal error word (ERR, 1 byte), bits OR-ed:
// the same bit reads differently in 2007 and 1997 (see docs/dlt645.md, error words).
// Returns e.g. "no requested data" or "password error; tariff count exceeded".
std::string error_meaning(Version v, std::uint8_t err);

// State Grid security error word SERR (2 bytes, 03H and encrypted 1CH).
std::string security_error_meaning(std::uint16_t serr);

// Relay/alarm command N1 of function 1CH.
enum class RelayCommand : std::uint8_t {
  trip = 0x1A,           // 跳闸
  close_allowed = 0x1B,  // 合闸允许: the customer presses the button
  direct_close = 0x1C,   // 直接合闸 [State Grid]
  alarm = 0x2A,
  alarm_release = 0x2B,
  keep_power = 0x3A,  // 保电: relay locked closed
  keep_power_release = 0x3B,
};
std::optional<RelayCommand> parse_relay_command(std::string_view name) noexcept;
std::optional<RelayCommand> relay_command_from_byte(std::uint8_t n1) noexcept;
std::string_view to_string(RelayCommand c) noexcept;  // "trip", "close-allowed", …

// Baud-rate characteristic word Z (2007 §4.3.4 / 1997): one bit per rate.
std::optional<std::uint8_t> baud_word(unsigned baud) noexcept;
std::optional<unsigned> baud_from_word(std::uint8_t z) noexcept;

}  // namespace meterd::protocol::dlt645
