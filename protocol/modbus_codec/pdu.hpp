// Modbus PDUs (MODBUS Application Protocol V1.1b3): function codes, the
// request and response builders for the functions meterd uses, and their
// parsers. A Pdu here also carries the unit id (the RTU address field or
// the MBAP unit identifier), because every consumer needs the two together.
//
// Error conventions of the parsers:
//  - parse_*_request (slave side) fail with an Exception: the code the
//    slave should answer (§6 state diagrams: a bad quantity is 03, an
//    address range past 0xFFFF is 02).
//  - parse_*_response (master side) fail with the Exception the slave sent,
//    or with a LinkError (malformed, unexpected_function).
// Pure functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include "protocol/modbus_codec/error.hpp"
#include "protocol/modbus_codec/result.hpp"

namespace meterd::protocol::modbus {

// Public function codes (§5.1). meterd reads with 03/04 and writes with
// 06/10; the others are framed so a slave can answer them properly.
namespace fc {
inline constexpr std::uint8_t read_coils = 0x01;
inline constexpr std::uint8_t read_discrete_inputs = 0x02;
inline constexpr std::uint8_t read_holding_registers = 0x03;
inline constexpr std::uint8_t read_input_registers = 0x04;
inline constexpr std::uint8_t write_single_coil = 0x05;
inline constexpr std::uint8_t write_single_register = 0x06;
inline constexpr std::uint8_t read_exception_status = 0x07;
inline constexpr std::uint8_t diagnostics = 0x08;
inline constexpr std::uint8_t get_comm_event_counter = 0x0B;
inline constexpr std::uint8_t get_comm_event_log = 0x0C;
inline constexpr std::uint8_t write_multiple_coils = 0x0F;
inline constexpr std::uint8_t write_multiple_registers = 0x10;
inline constexpr std::uint8_t report_server_id = 0x11;
inline constexpr std::uint8_t mask_write_register = 0x16;
inline constexpr std::uint8_t read_write_multiple_registers = 0x17;
inline constexpr std::uint8_t encapsulated_interface = 0x2B;  // MEI 0x0E: read device id
inline constexpr std::uint8_t exception_flag = 0x80;          // set in an exception response
}  // namespace fc

inline constexpr std::uint8_t broadcast_unit = 0;          // slaves never answer it
inline constexpr std::uint16_t max_read_registers = 125;   // 0x7D, §6.3/§6.4
inline constexpr std::uint16_t max_write_registers = 123;  // 0x7B, §6.12
inline constexpr std::uint16_t max_read_bits = 2000;       // 0x7D0, §6.1/§6.2
inline constexpr std::size_t max_pdu_size = 253;           // function + data, §4.1

struct Pdu {
  std::uint8_t unit = 0;
  std::uint8_t function = 0;
  std::vector<std::uint8_t> data;  // everything after the function code

  bool is_exception() const noexcept { return (function & fc::exception_flag) != 0; }
  friend bool operator==(const Pdu&, const Pdu&) = default;
};

// The exception an exception response carries (function has bit 7 set):
// an Exception error; LinkError::malformed if its data is not exactly one
// non-zero code byte. Empty for a normal response.
std::error_code exception_of(const Pdu& pdu);

// ---- builders (preconditions are asserted by the caller's own checks) ----

namespace request {
// FC 01/02/03/04: address, quantity.
Pdu read(std::uint8_t unit, std::uint8_t function, std::uint16_t address, std::uint16_t count);
Pdu read_holding(std::uint8_t unit, std::uint16_t address, std::uint16_t count);
Pdu read_input(std::uint8_t unit, std::uint16_t address, std::uint16_t count);
// FC 06.
Pdu write_single(std::uint8_t unit, std::uint16_t address, std::uint16_t value);
// FC 10. Precondition: 1 <= values.size() <= 123.
Pdu write_multiple(std::uint8_t unit, std::uint16_t address, std::span<const std::uint16_t> values);
}  // namespace request

namespace response {
// FC 03/04: byte count, then the words big-endian. Precondition: <= 125 words.
Pdu read(std::uint8_t unit, std::uint8_t function, std::span<const std::uint16_t> words);
// FC 06: the echo of the request.
Pdu write_single(std::uint8_t unit, std::uint16_t address, std::uint16_t value);
// FC 10: address and quantity written.
Pdu write_multiple(std::uint8_t unit, std::uint16_t address, std::uint16_t count);
// function | 0x80, code. `function` is the request's (bit 7 clear).
Pdu exception(std::uint8_t unit, std::uint8_t function, std::uint8_t code);
Pdu exception(std::uint8_t unit, std::uint8_t function, Exception code);
}  // namespace response

// ---- parsers ----

// A run of registers (or bits): a read request, or what a FC 10 response
// acknowledges.
struct RegisterRange {
  std::uint16_t address = 0;
  std::uint16_t count = 0;
  friend bool operator==(const RegisterRange&, const RegisterRange&) = default;
};
using ReadRequest = RegisterRange;
// FC 01/02 (1..2000 bits) and 03/04 (1..125 registers). Exception 03 for a
// wrong data size or quantity, 02 if address + count passes 0x10000, 01 for
// another function.
Result<ReadRequest> parse_read_request(const Pdu& pdu);

struct WriteSingle {
  std::uint16_t address = 0;
  std::uint16_t value = 0;
  friend bool operator==(const WriteSingle&, const WriteSingle&) = default;
};
// FC 05/06 request. FC 05 accepts only 0x0000 and 0xFF00 (else 03).
Result<WriteSingle> parse_write_single_request(const Pdu& pdu);

struct WriteMultiple {
  std::uint16_t address = 0;
  std::vector<std::uint16_t> values;
  friend bool operator==(const WriteMultiple&, const WriteMultiple&) = default;
};
// FC 10 request: quantity 1..123, byte count = 2 × quantity (else 03),
// address + quantity within 0x10000 (else 02).
Result<WriteMultiple> parse_write_multiple_request(const Pdu& pdu);

// FC 03/04 response to a read of `expected_count` registers (with the
// request's function). Fails with the slave's Exception, or with
// LinkError::unexpected_function / malformed (byte count odd, not matching
// the data, or not 2 × expected_count).
Result<std::vector<std::uint16_t>> parse_read_response(const Pdu& pdu, std::uint8_t function,
                                                       std::uint16_t expected_count);
// FC 06 response: the echo. Use `==` on the result to check it matches.
Result<WriteSingle> parse_write_single_response(const Pdu& pdu);
// FC 10 response: address and quantity written.
Result<RegisterRange> parse_write_multiple_response(const Pdu& pdu);

}  // namespace meterd::protocol::modbus
