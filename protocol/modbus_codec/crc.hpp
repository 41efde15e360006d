// Modbus RTU CRC-16 (MODBUS over Serial Line V1.02, §2.5.1.2 and §6.2.2):
// reflected polynomial 0xA001 (x^16 + x^15 + x^2 + 1), initial value
// 0xFFFF, no final XOR. The CRC travels LOW byte first, the only
// little-endian field of an RTU frame. Pure, constexpr, any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace meterd::protocol::modbus {

namespace detail {

constexpr std::array<std::uint16_t, 256> make_crc_table() {
  std::array<std::uint16_t, 256> table{};
  for (unsigned i = 0; i < 256; ++i) {
    auto crc = static_cast<std::uint16_t>(i);
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 1u) ? static_cast<std::uint16_t>((crc >> 1) ^ 0xA001u)
                       : static_cast<std::uint16_t>(crc >> 1);
    table[i] = crc;
  }
  return table;
}

inline constexpr std::array<std::uint16_t, 256> crc_table = make_crc_table();

}  // namespace detail

inline constexpr std::uint16_t crc_init = 0xFFFF;

// Continues a CRC over more bytes (start with crc_init).
constexpr std::uint16_t crc16_update(std::uint16_t crc,
                                     std::span<const std::uint8_t> bytes) noexcept {
  for (const std::uint8_t b : bytes)
    crc = static_cast<std::uint16_t>((crc >> 8) ^ detail::crc_table[(crc ^ b) & 0xFFu]);
  return crc;
}

// CRC of `bytes` (unit id through the last data byte).
constexpr std::uint16_t crc16(std::span<const std::uint8_t> bytes) noexcept {
  return crc16_update(crc_init, bytes);
}

// Appends the CRC of everything in `frame`, low byte first.
inline void append_crc(std::vector<std::uint8_t>& frame) {
  const std::uint16_t crc = crc16(frame);
  frame.push_back(static_cast<std::uint8_t>(crc & 0xFFu));
  frame.push_back(static_cast<std::uint8_t>(crc >> 8));
}

// The CRC carried in the last two bytes of `frame` (low byte first).
// Precondition: frame.size() >= 2.
constexpr std::uint16_t carried_crc(std::span<const std::uint8_t> frame) noexcept {
  const std::size_t n = frame.size();
  return static_cast<std::uint16_t>(frame[n - 2] | (frame[n - 1] << 8));
}

// True if `frame` (at least 3 bytes) ends with the CRC of what precedes it.
constexpr bool crc_ok(std::span<const std::uint8_t> frame) noexcept {
  if (frame.size() < 3) return false;
  return crc16(frame.first(frame.size() - 2)) == carried_crc(frame);
}

}  // namespace meterd::protocol::modbus
