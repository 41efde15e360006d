#include "protocol/modbus_codec/pdu.hpp"

namespace meterd::protocol::modbus {

namespace {

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xFFu));
}

std::uint16_t get16(const std::vector<std::uint8_t>& d, std::size_t at) {
  return static_cast<std::uint16_t>((d[at] << 8) | d[at + 1]);
}

bool is_read_function(std::uint8_t f) {
  return f == fc::read_coils || f == fc::read_discrete_inputs || f == fc::read_holding_registers ||
         f == fc::read_input_registers;
}

bool bit_read(std::uint8_t f) { return f == fc::read_coils || f == fc::read_discrete_inputs; }

// An exception response or a function other than `function` (master side).
std::error_code response_mismatch(const Pdu& pdu, std::uint8_t function) {
  if (pdu.function == (function | fc::exception_flag)) return exception_of(pdu);
  if (pdu.function != function) return LinkError::unexpected_function;
  return {};
}

}  // namespace

std::error_code exception_of(const Pdu& pdu) {
  if (!pdu.is_exception()) return {};
  if (pdu.data.size() != 1 || pdu.data[0] == 0) return LinkError::malformed;
  return exception_error(pdu.data[0]);
}

// ---- builders -------------------------------------------------------------

namespace request {

Pdu read(std::uint8_t unit, std::uint8_t function, std::uint16_t address, std::uint16_t count) {
  Pdu pdu{unit, function, {}};
  pdu.data.reserve(4);
  put16(pdu.data, address);
  put16(pdu.data, count);
  return pdu;
}

Pdu read_holding(std::uint8_t unit, std::uint16_t address, std::uint16_t count) {
  return read(unit, fc::read_holding_registers, address, count);
}

Pdu read_input(std::uint8_t unit, std::uint16_t address, std::uint16_t count) {
  return read(unit, fc::read_input_registers, address, count);
}

Pdu write_single(std::uint8_t unit, std::uint16_t address, std::uint16_t value) {
  Pdu pdu{unit, fc::write_single_register, {}};
  put16(pdu.data, address);
  put16(pdu.data, value);
  return pdu;
}

Pdu write_multiple(std::uint8_t unit, std::uint16_t address,
                   std::span<const std::uint16_t> values) {
  Pdu pdu{unit, fc::write_multiple_registers, {}};
  pdu.data.reserve(5 + values.size() * 2);
  put16(pdu.data, address);
  put16(pdu.data, static_cast<std::uint16_t>(values.size()));
  pdu.data.push_back(static_cast<std::uint8_t>(values.size() * 2));
  for (const auto v : values) put16(pdu.data, v);
  return pdu;
}

}  // namespace request

namespace response {

Pdu read(std::uint8_t unit, std::uint8_t function, std::span<const std::uint16_t> words) {
  Pdu pdu{unit, function, {}};
  pdu.data.reserve(1 + words.size() * 2);
  pdu.data.push_back(static_cast<std::uint8_t>(words.size() * 2));
  for (const auto w : words) put16(pdu.data, w);
  return pdu;
}

Pdu write_single(std::uint8_t unit, std::uint16_t address, std::uint16_t value) {
  return request::write_single(unit, address, value);
}

Pdu write_multiple(std::uint8_t unit, std::uint16_t address, std::uint16_t count) {
  Pdu pdu{unit, fc::write_multiple_registers, {}};
  put16(pdu.data, address);
  put16(pdu.data, count);
  return pdu;
}

Pdu exception(std::uint8_t unit, std::uint8_t function, std::uint8_t code) {
  return Pdu{unit, static_cast<std::uint8_t>(function | fc::exception_flag), {code}};
}

Pdu exception(std::uint8_t unit, std::uint8_t function, Exception code) {
  return exception(unit, function, static_cast<std::uint8_t>(code));
}

}  // namespace response

// ---- parsers --------------------------------------------------------------

Result<ReadRequest> parse_read_request(const Pdu& pdu) {
  if (!is_read_function(pdu.function)) return Exception::illegal_function;
  if (pdu.data.size() != 4) return Exception::illegal_data_value;
  const ReadRequest r{get16(pdu.data, 0), get16(pdu.data, 2)};
  const std::uint16_t limit = bit_read(pdu.function) ? max_read_bits : max_read_registers;
  if (r.count < 1 || r.count > limit) return Exception::illegal_data_value;
  if (std::uint32_t{r.address} + r.count > 0x10000u) return Exception::illegal_data_address;
  return r;
}

Result<WriteSingle> parse_write_single_request(const Pdu& pdu) {
  if (pdu.function != fc::write_single_register && pdu.function != fc::write_single_coil)
    return Exception::illegal_function;
  if (pdu.data.size() != 4) return Exception::illegal_data_value;
  const WriteSingle w{get16(pdu.data, 0), get16(pdu.data, 2)};
  if (pdu.function == fc::write_single_coil && w.value != 0x0000 && w.value != 0xFF00)
    return Exception::illegal_data_value;
  return w;
}

Result<WriteMultiple> parse_write_multiple_request(const Pdu& pdu) {
  if (pdu.function != fc::write_multiple_registers) return Exception::illegal_function;
  if (pdu.data.size() < 5) return Exception::illegal_data_value;
  const std::uint16_t address = get16(pdu.data, 0);
  const std::uint16_t count = get16(pdu.data, 2);
  const std::size_t byte_count = pdu.data[4];
  if (count < 1 || count > max_write_registers || byte_count != std::size_t{count} * 2 ||
      pdu.data.size() != 5 + byte_count)
    return Exception::illegal_data_value;
  if (std::uint32_t{address} + count > 0x10000u) return Exception::illegal_data_address;
  WriteMultiple w{address, {}};
  w.values.reserve(count);
  for (std::size_t i = 0; i < count; ++i) w.values.push_back(get16(pdu.data, 5 + 2 * i));
  return w;
}

Result<std::vector<std::uint16_t>> parse_read_response(const Pdu& pdu, std::uint8_t function,
                                                       std::uint16_t expected_count) {
  if (auto e = response_mismatch(pdu, function)) return e;
  if (pdu.data.empty()) return LinkError::malformed;
  const std::size_t byte_count = pdu.data[0];
  if (byte_count % 2 != 0 || pdu.data.size() != 1 + byte_count ||
      byte_count != std::size_t{expected_count} * 2)
    return LinkError::malformed;
  std::vector<std::uint16_t> words;
  words.reserve(expected_count);
  for (std::size_t i = 0; i < expected_count; ++i) words.push_back(get16(pdu.data, 1 + 2 * i));
  return words;
}

Result<WriteSingle> parse_write_single_response(const Pdu& pdu) {
  if (auto e = response_mismatch(pdu, fc::write_single_register)) return e;
  if (pdu.data.size() != 4) return LinkError::malformed;
  return WriteSingle{get16(pdu.data, 0), get16(pdu.data, 2)};
}

Result<RegisterRange> parse_write_multiple_response(const Pdu& pdu) {
  if (auto e = response_mismatch(pdu, fc::write_multiple_registers)) return e;
  if (pdu.data.size() != 4) return LinkError::malformed;
  return RegisterRange{get16(pdu.data, 0), get16(pdu.data, 2)};
}

}  // namespace meterd::protocol::modbus
