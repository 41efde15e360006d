// Error categories of the Modbus layer. Three domains, kept apart so that
// callers can count them separately (STYLE.md rule 5):
//
//  - Exception ("modbus.exception"): the slave understood the request and
//    refused it with an exception response (MODBUS Application Protocol
//    V1.1b3 §7). The error value is the exception code on the wire.
//  - LinkError ("modbus.link"): the bytes were not a usable answer: bad
//    CRC, another unit answered, a truncated or malformed frame.
//  - ValueError ("modbus.value"): the frame was fine but a register's words
//    do not make a number (NaN/Inf float, wrong word count).
//
// All functions are pure and may be called from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <system_error>

namespace meterd::protocol::modbus {

// Exception codes, MODBUS Application Protocol V1.1b3 §7. Codes a slave
// sends that are not listed here still travel in the error value.
enum class Exception : std::uint8_t {
  illegal_function = 0x01,
  illegal_data_address = 0x02,
  illegal_data_value = 0x03,
  server_device_failure = 0x04,  // "slave device failure"
  acknowledge = 0x05,
  server_device_busy = 0x06,  // "slave device busy"
  negative_acknowledge = 0x07,
  memory_parity_error = 0x08,
  gateway_path_unavailable = 0x0A,
  gateway_target_failed = 0x0B,
};
const std::error_category& exception_category() noexcept;
std::error_code make_error_code(Exception e) noexcept;
// The error for an exception code as received (any value 1..255).
// Precondition: code != 0 (0 is not an exception; decoders report it as
// LinkError::malformed).
std::error_code exception_error(std::uint8_t code) noexcept;
// The code to send for an error of exception_category(); 0x04 (server
// device failure) for an error of any other category.
std::uint8_t exception_code(const std::error_code& e) noexcept;

enum class LinkError {
  bad_crc = 1,          // CRC-16 of an RTU frame does not match
  wrong_unit,           // a response from another unit than the one asked
  truncated,            // the frame ended (silence, caller said complete) before its length
  unknown_function,     // a function code whose frame length this codec does not know
  unexpected_function,  // response function is neither the request's nor its exception form
  malformed,            // sizes inside the PDU disagree (byte count, exception code 0, …)
  frame_too_long,       // header announces more than an ADU may hold (RTU 256, TCP 260 bytes)
  bad_protocol_id,      // MBAP protocol identifier is not 0
};
const std::error_category& link_category() noexcept;
std::error_code make_error_code(LinkError e) noexcept;

enum class ValueError {
  wrong_word_count = 1,  // the span does not hold the register's 1 or 2 words
  not_finite,            // float32 NaN or ±Inf: the meter has no value
  out_of_range,          // scaling overflowed the decimal's 64-bit mantissa
};
const std::error_category& value_category() noexcept;
std::error_code make_error_code(ValueError e) noexcept;

bool is_exception(const std::error_code& e) noexcept;  // category is exception_category()
bool is_link_error(const std::error_code& e) noexcept;

}  // namespace meterd::protocol::modbus

template <>
struct std::is_error_code_enum<meterd::protocol::modbus::Exception> : std::true_type {};
template <>
struct std::is_error_code_enum<meterd::protocol::modbus::LinkError> : std::true_type {};
template <>
struct std::is_error_code_enum<meterd::protocol::modbus::ValueError> : std::true_type {};
