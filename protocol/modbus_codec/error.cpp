#include "protocol/modbus_codec/error.hpp"

#include <cstdio>

namespace meterd::protocol::modbus {

namespace {

class ExceptionCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "modbus.exception"; }
  std::string message(int ev) const override {
    switch (static_cast<Exception>(ev)) {
      case Exception::illegal_function:
        return "illegal function";
      case Exception::illegal_data_address:
        return "illegal data address";
      case Exception::illegal_data_value:
        return "illegal data value";
      case Exception::server_device_failure:
        return "slave device failure";
      case Exception::acknowledge:
        return "acknowledge";
      case Exception::server_device_busy:
        return "slave device busy";
      case Exception::negative_acknowledge:
        return "negative acknowledge";
      case Exception::memory_parity_error:
        return "memory parity error";
      case Exception::gateway_path_unavailable:
        return "gateway path unavailable";
      case Exception::gateway_target_failed:
        return "gateway target device failed to respond";
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "exception %02X", static_cast<unsigned>(ev) & 0xFFu);
    return buf;
  }
};

class LinkCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "modbus.link"; }
  std::string message(int ev) const override {
    switch (static_cast<LinkError>(ev)) {
      case LinkError::bad_crc:
        return "bad CRC";
      case LinkError::wrong_unit:
        return "response from another unit";
      case LinkError::truncated:
        return "truncated frame";
      case LinkError::unknown_function:
        return "unknown function code";
      case LinkError::unexpected_function:
        return "response function does not match the request";
      case LinkError::malformed:
        return "malformed PDU";
      case LinkError::frame_too_long:
        return "frame longer than an ADU may be";
      case LinkError::bad_protocol_id:
        return "MBAP protocol identifier is not 0";
    }
    return "unknown link error";
  }
};

class ValueCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "modbus.value"; }
  std::string message(int ev) const override {
    switch (static_cast<ValueError>(ev)) {
      case ValueError::wrong_word_count:
        return "wrong number of registers for the encoding";
      case ValueError::not_finite:
        return "float is NaN or infinite";
      case ValueError::out_of_range:
        return "scaled value out of range";
    }
    return "unknown value error";
  }
};

const ExceptionCategory exception_category_instance;
const LinkCategory link_category_instance;
const ValueCategory value_category_instance;

}  // namespace

const std::error_category& exception_category() noexcept { return exception_category_instance; }
const std::error_category& link_category() noexcept { return link_category_instance; }
const std::error_category& value_category() noexcept { return value_category_instance; }

std::error_code make_error_code(Exception e) noexcept {
  return {static_cast<int>(e), exception_category()};
}
std::error_code make_error_code(LinkError e) noexcept {
  return {static_cast<int>(e), link_category()};
}
std::error_code make_error_code(ValueError e) noexcept {
  return {static_cast<int>(e), value_category()};
}

std::error_code exception_error(std::uint8_t code) noexcept {
  return {static_cast<int>(code), exception_category()};
}

std::uint8_t exception_code(const std::error_code& e) noexcept {
  if (is_exception(e) && e.value() > 0 && e.value() <= 0xFF)
    return static_cast<std::uint8_t>(e.value());
  return static_cast<std::uint8_t>(Exception::server_device_failure);
}

bool is_exception(const std::error_code& e) noexcept {
  return e.category() == exception_category();
}
bool is_link_error(const std::error_code& e) noexcept { return e.category() == link_category(); }

}  // namespace meterd::protocol::modbus
