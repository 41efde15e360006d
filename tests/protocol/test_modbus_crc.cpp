// Modbus CRC-16 against known frames (MODBUS over Serial Line V1.02 §6.2.2;
// the Eastron and Chint examples of tests/data/modbus/register-tables.md).
#include <array>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include "protocol/modbus_codec/crc.hpp"

using namespace meterd::protocol::modbus;

namespace {

// CRC of everything but the last two bytes, which must be its low/high bytes.
void check_frame(std::vector<std::uint8_t> frame) {
  CAPTURE(frame.size());
  REQUIRE(frame.size() >= 3);
  const std::vector<std::uint8_t> body(frame.begin(), frame.end() - 2);
  const std::uint16_t crc = crc16(body);
  CHECK((crc & 0xFF) == frame[frame.size() - 2]);
  CHECK((crc >> 8) == frame[frame.size() - 1]);
  CHECK(carried_crc(frame) == crc);
  CHECK(crc_ok(frame));
  auto rebuilt = body;
  append_crc(rebuilt);
  CHECK(rebuilt == frame);
}

}  // namespace

TEST_CASE("CRC-16/MODBUS of the standard check string") {
  const std::array<std::uint8_t, 9> check{'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  CHECK(crc16(check) == 0x4B37);
  CHECK(crc16({}) == 0xFFFF);
  static_assert(crc16(std::array<std::uint8_t, 9>{'1', '2', '3', '4', '5', '6', '7', '8', '9'}) ==
                0x4B37);
}

TEST_CASE("CRC of known request and response frames, low byte first") {
  check_frame({0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD});  // the brief's vector
  // Eastron V1.8 §3.8/§3.9 reference frames.
  check_frame({0x01, 0x04, 0x00, 0x00, 0x00, 0x02, 0x71, 0xCB});
  check_frame({0x01, 0x04, 0x04, 0x43, 0x66, 0x33, 0x34, 0x1B, 0x38});
  check_frame({0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0B});
  check_frame({0x01, 0x03, 0x04, 0x3F, 0x80, 0x00, 0x00, 0xF7, 0xCF});
  check_frame({0x01, 0x10, 0x00, 0x02, 0x00, 0x02, 0x04, 0x42, 0x70, 0x00, 0x00, 0x67, 0xD5});
  check_frame({0x01, 0x10, 0x00, 0x02, 0x00, 0x02, 0xE0, 0x08});
  // DTSU666-H handshake and data requests of a Huawei inverter (register-tables.md §3.7).
  check_frame({0x0B, 0x03, 0x07, 0xD1, 0x00, 0x01, 0xD5, 0xED});
  check_frame({0x0B, 0x03, 0x08, 0x36, 0x00, 0x50, 0xA7, 0x32});
  check_frame({0x0B, 0x03, 0x08, 0xA6, 0x00, 0x0A, 0x27, 0x24});
}

TEST_CASE("crc16_update continues a CRC across chunks") {
  const std::array<std::uint8_t, 6> frame{0x01, 0x03, 0x00, 0x00, 0x00, 0x0A};
  const auto span = std::span<const std::uint8_t>(frame);
  for (std::size_t cut = 0; cut <= frame.size(); ++cut)
    CHECK(crc16_update(crc16(span.first(cut)), span.subspan(cut)) == 0xCDC5);
}

TEST_CASE("crc_ok rejects a flipped bit and too-short input") {
  std::vector<std::uint8_t> frame{0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD};
  for (std::size_t i = 0; i < frame.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = frame;
      bad[i] ^= static_cast<std::uint8_t>(1u << bit);
      CHECK_FALSE(crc_ok(bad));
    }
  }
  CHECK_FALSE(crc_ok(std::vector<std::uint8_t>{0xFF, 0xFF}));
  CHECK_FALSE(crc_ok(std::vector<std::uint8_t>{}));
}
