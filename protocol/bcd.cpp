#include "protocol/bcd.hpp"

namespace meterd::protocol::bcd {

std::optional<unsigned> decode_byte(std::uint8_t byte) noexcept {
  const unsigned hi = byte >> 4;
  const unsigned lo = byte & 0x0F;
  if (hi > 9 || lo > 9) return std::nullopt;
  return hi * 10 + lo;
}

std::optional<std::uint8_t> parse_pair(char hi, char lo) noexcept {
  if (hi < '0' || hi > '9' || lo < '0' || lo > '9') return std::nullopt;
  return static_cast<std::uint8_t>(((hi - '0') << 4) | (lo - '0'));
}

std::uint8_t encode_byte(unsigned value) noexcept {
  return static_cast<std::uint8_t>(((value / 10) << 4) | (value % 10));
}

std::optional<std::uint64_t> decode_le(std::span<const std::uint8_t> bytes) noexcept {
  if (bytes.size() > 9) return std::nullopt;
  std::uint64_t value = 0;
  for (std::size_t i = bytes.size(); i-- > 0;) {
    const auto pair = decode_byte(bytes[i]);
    if (!pair) return std::nullopt;
    value = value * 100 + *pair;
  }
  return value;
}

bool encode_le(std::uint64_t value, std::span<std::uint8_t> out) noexcept {
  for (auto& byte : out) {
    byte = encode_byte(static_cast<unsigned>(value % 100));
    value /= 100;
  }
  return value == 0;
}

}  // namespace meterd::protocol::bcd
