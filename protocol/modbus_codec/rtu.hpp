// Modbus RTU framing (MODBUS over Serial Line V1.02, §2.5.1): one byte of
// unit address, the PDU, and the CRC-16 low byte first. Frames on the wire
// are delimited only by silence (>= 3.5 character times, §2.5.1.1); the
// codec cannot see time, so:
//
//  - the decoder computes the frame length from the header, step by step
//    as libmodbus does (compute_meta_length_after_function /
//    compute_data_length_after_meta): the function code says how many
//    bytes follow, or where the byte count sits;
//  - the driver owns time (STYLE.md rule 2): at a silence it drops what
//    it buffered, or passes `complete = true` so that an unfinished frame
//    is reported as LinkError::truncated instead of need_more.
//
// The decoders look at the head of `input` only and never read outside it.
// Pure functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include "protocol/modbus_codec/crc.hpp"
#include "protocol/modbus_codec/error.hpp"
#include "protocol/modbus_codec/pdu.hpp"

namespace meterd::protocol::modbus {

inline constexpr std::size_t max_rtu_size = 256;  // unit + 253-byte PDU + CRC, §2.5.1
inline constexpr std::size_t min_rtu_size = 4;    // unit + function + CRC

// unit, function, data, CRC (low byte first). Precondition: the PDU fits
// (1 + data.size() <= 253).
std::vector<std::uint8_t> encode_rtu(const Pdu& pdu);

enum class DecodeStatus { frame, need_more, error };

// One decode step over the head of a byte buffer.
//  - frame:     `pdu` holds the frame; drop `consumed` (= frame_size) bytes.
//               For a response, `error` is set to the slave's Exception when
//               the frame is an exception response (is_exception()).
//  - need_more: the head is a frame prefix; `need` more bytes are needed
//               before the decoder can say more (at least 1). Nothing is
//               consumed. Empty input is always need_more.
//  - error:     `error` is a LinkError; drop `consumed` bytes and call again.
//               A header that cannot start a frame (unknown or unexpected
//               function, impossible length) consumes 1 byte. Otherwise the
//               two sides differ on purpose:
//                 * decode_rtu_request (slave) hunts: bad_crc and truncated
//                   consume 1 byte too, so a request that starts inside a
//                   bad candidate (line noise, DL/T 645 traffic on the same
//                   wire) is still found. `frame_size` tells how long the
//                   bad candidate was, for a caller that prefers to drop it.
//                 * decode_rtu_response (master) expects one answer and
//                   drops a bad one whole, as libmodbus flushes it: bad_crc
//                   and wrong_unit consume the candidate, truncated all input.
struct DecodeResult {
  DecodeStatus status = DecodeStatus::need_more;
  std::size_t consumed = 0;
  std::size_t need = 0;
  std::size_t frame_size = 0;  // frame, or the bad candidate, when its length was known
  Pdu pdu;                     // frame; also wrong_unit (the frame that arrived)
  std::error_code error;
  std::uint16_t got_crc = 0;       // bad_crc: CRC on the wire
  std::uint16_t expected_crc = 0;  // bad_crc: CRC computed

  bool is_frame() const noexcept { return status == DecodeStatus::frame; }
  // A well-formed exception response (error is then an Exception).
  bool is_exception() const noexcept { return is_frame() && pdu.is_exception(); }
};

// Slave side: a request addressed to any unit (the caller filters units).
// Known lengths: FC 01-06, 08 → 8 bytes; 07, 0B, 0C, 11 → 4; 0F, 10 →
// 7 + byte count + 2; 16 → 10; 17 → 11 + byte count + 2; 2B/0E → 7. Any
// other function: LinkError::unknown_function (1 byte consumed).
DecodeResult decode_rtu_request(std::span<const std::uint8_t> input, bool complete = false);

// Master side: the answer to a request with `expected_function` (bit 7
// clear) sent to `expected_unit`. Normal answers: FC 01-04, 0C, 11, 17 →
// 3 + byte count + 2; 05, 06, 08, 0B, 0F, 10 → 8; 07 → 5; 16 → 10.
// Exception answer (function | 0x80, code): 5 bytes. A frame from another
// unit, with a good CRC, is LinkError::wrong_unit (checked after the CRC).
DecodeResult decode_rtu_response(std::span<const std::uint8_t> input, std::uint8_t expected_unit,
                                 std::uint8_t expected_function, bool complete = false);

}  // namespace meterd::protocol::modbus
