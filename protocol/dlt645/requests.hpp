// Request builders for the master side (DL/T 645-2007 §7, DL/T 645-1997 §7).
// Each returns a Frame (data unscrambled); dlt645::encode() puts it on the
// wire. Pure functions. Arguments are checked by the caller's parser; the
// builders only assert the sizes the frame format imposes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "protocol/dlt645/control.hpp"
#include "protocol/dlt645/frame.hpp"

namespace meterd::protocol::dlt645 {

// A civil date and time as meters keep it (local time, no zone; year 2000–2099).
struct DateTime {
  int year = 2000, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  friend bool operator==(const DateTime&, const DateTime&) = default;
};
// "2026-11-27T12:00:00", "2026-11-27 12:00:00" or "2026-11-27T12:00" (seconds 0).
// nullopt if malformed or out of range (year 2000..2099, real calendar day).
std::optional<DateTime> parse_datetime(std::string_view text);
bool valid(const DateTime& t) noexcept;

// Password: level PA and three password bytes P0..P2, as the technician
// writes them: "02" + "123456" -> PA=02, P0P1P2 = 56 34 12 on the wire
// (low byte first, BCD-like digits taken as printed).
struct Password {
  std::uint8_t level = 0x02;
  std::array<std::uint8_t, 3> bytes{};  // P0 P1 P2 (P0 = lowest printed pair)
};
// "123456" (level from `level`) or "02123456" (level first). Hex digits.
std::optional<Password> parse_password(std::string_view text, std::uint8_t level = 0x02);

// Operator code C0..C3 (4 bytes, printed "12345678", sent low byte first).
using OperatorCode = std::array<std::uint8_t, 4>;
std::optional<OperatorCode> parse_operator(std::string_view text);

namespace request {

// ---- 2007 ---------------------------------------------------------------
Frame read(const Address& a, std::uint32_t di);
// Load profile: N blocks (1..99, BCD [?]) and optionally from a start time
// (mm hh DD MM YY, 5 bytes [?]).
Frame read_blocks(const Address& a, std::uint32_t di, unsigned n,
                  std::optional<DateTime> from = std::nullopt);
Frame read_follow_up(const Address& a, std::uint32_t di, std::uint8_t seq);
Frame read_address();  // to AAAAAAAAAAAA, point-to-point only
Frame write(const Address& a, std::uint32_t di, const Password& p, const OperatorCode& op,
            const std::vector<std::uint8_t>& data);
Frame write_address(const Address& new_address);  // to AAAAAAAAAAAA
// Broadcast time sync (to 999999999999; meters never answer).
Frame broadcast_time(const DateTime& t);
// Freeze: mm hh DD MM, 99 = wildcard per field (99999999 = freeze now).
Frame freeze(const Address& a, std::array<std::uint8_t, 4> pattern_mm_hh_dd_MM);
Frame change_baud(const Address& a, std::uint8_t baud_word);
Frame change_password(const Address& a, std::uint32_t di, const Password& old_p,
                      const Password& new_p);
Frame demand_reset(const Address& a, const Password& p, const OperatorCode& op);
Frame meter_clear(const Address& a, const Password& p, const OperatorCode& op);
Frame event_clear(const Address& a, const Password& p, const OperatorCode& op, std::uint32_t di);
// 1CH: PA P0..P2, C0..C3, N1 command, N2 = 00, N3..N8 valid-until ss mm hh DD MM YY.
Frame relay_control(const Address& a, const Password& p, const OperatorCode& op,
                    RelayCommand command, const DateTime& valid_until);

// ---- 1997 ---------------------------------------------------------------
namespace v1997 {
Frame read(const Address& a, std::uint16_t di);
Frame read_follow_up(const Address& a, std::uint16_t di);
Frame reread(const Address& a);
Frame write(const Address& a, std::uint16_t di, const Password& p,
            const std::vector<std::uint8_t>& data);
Frame broadcast_time(const DateTime& t);
Frame write_address(const Address& a, const Address& new_address);
Frame change_baud(const Address& a, std::uint8_t baud_word);
Frame change_password(const Address& a, const Password& old_p, const Password& new_p);
Frame demand_reset(const Address& a, const Password& p);
}  // namespace v1997

}  // namespace request

// Wire order of a date-time: ss mm hh DD MM YY (6 BCD bytes).
std::array<std::uint8_t, 6> encode_datetime(const DateTime& t);
std::optional<DateTime> decode_datetime(std::span<const std::uint8_t, 6> wire);

}  // namespace meterd::protocol::dlt645
