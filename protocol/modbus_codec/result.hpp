// Result<T>: a value or a std::error_code (an expected-like type; C++20
// has no std::expected). Used at the boundaries of protocol/modbus.
#pragma once

#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace meterd::protocol::modbus {

template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  // Precondition: error is set (non-zero).
  Result(std::error_code error) : error_(error) {}  // NOLINT
  template <class E>
  requires std::is_error_code_enum_v<E> Result(E e) : error_(make_error_code(e)) {}  // NOLINT

  bool ok() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }

  // Precondition: ok().
  const T& value() const& { return *value_; }
  T& value() & { return *value_; }
  T&& value() && { return std::move(*value_); }
  const T& operator*() const& { return *value_; }
  T& operator*() & { return *value_; }
  const T* operator->() const { return &*value_; }
  T* operator->() { return &*value_; }

  // Empty when ok().
  std::error_code error() const noexcept { return error_; }

 private:
  std::optional<T> value_;
  std::error_code error_;
};

}  // namespace meterd::protocol::modbus
