// Modbus TCP framing (MODBUS Messaging on TCP/IP Implementation Guide
// V1.0b, §3.1.3): the 7-byte MBAP header, then the PDU; no CRC.
//
//   transaction id (2) | protocol id = 0 (2) | length (2) | unit id (1) | PDU
//
// `length` counts the unit id and the PDU (2..254). All fields big-endian.
// TCP is a byte stream without a resynchronisation point: after an error
// the caller should close the connection. Pure functions; any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include "protocol/modbus_codec/pdu.hpp"
#include "protocol/modbus_codec/rtu.hpp"

namespace meterd::protocol::modbus {

inline constexpr std::size_t mbap_size = 7;
inline constexpr std::size_t max_tcp_size = mbap_size + max_pdu_size;  // 260

struct MbapHeader {
  std::uint16_t transaction = 0;
  std::uint16_t protocol = 0;
  std::uint16_t length = 0;  // unit id + PDU
  std::uint8_t unit = 0;
  friend bool operator==(const MbapHeader&, const MbapHeader&) = default;
};

std::array<std::uint8_t, mbap_size> encode_mbap(const MbapHeader& header);

// The header at the head of `input`: need_more below 7 bytes, else the
// fields as they are (no validation; see decode_tcp).
struct MbapResult {
  DecodeStatus status = DecodeStatus::need_more;
  std::size_t need = 0;
  MbapHeader header;
};
MbapResult decode_mbap(std::span<const std::uint8_t> input);

// MBAP header (length from the PDU) + function + data.
// Precondition: 1 + pdu.data.size() <= 253.
std::vector<std::uint8_t> encode_tcp(const Pdu& pdu, std::uint16_t transaction);

// One ADU at the head of `input`.
//  - frame: `pdu` (unit from the MBAP header) and `header`; drop `consumed`.
//    For an exception response, `error` holds the Exception.
//  - need_more: `need` bytes missing.
//  - error: LinkError::bad_protocol_id (protocol id != 0), malformed (length
//    < 2) or frame_too_long (length > 254); `consumed` = the 7 header bytes.
struct TcpDecodeResult {
  DecodeStatus status = DecodeStatus::need_more;
  std::size_t consumed = 0;
  std::size_t need = 0;
  MbapHeader header;
  Pdu pdu;
  std::error_code error;

  bool is_frame() const noexcept { return status == DecodeStatus::frame; }
  bool is_exception() const noexcept { return is_frame() && pdu.is_exception(); }
};
TcpDecodeResult decode_tcp(std::span<const std::uint8_t> input);

}  // namespace meterd::protocol::modbus
