// Errors of the buffer layer as values: an error_code in the `buffer` category, the SQLite
// result code behind it and a message, carried in a small expected-like Result<T>.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace meterd::buffer {

// What went wrong, coarse enough for a caller to decide what to do next.
enum class errc {
  disk_full = 1,     // SQLITE_FULL: the disk (or Options::max_page_count) is full; retry later
  io_error,          // SQLITE_IOERR_*: a read/write/fsync failed; retry later
  busy,              // SQLITE_BUSY/LOCKED: another process holds the write lock past busy_timeout
  corrupt,           // SQLITE_CORRUPT: the file is damaged
  cannot_open,       // SQLITE_CANTOPEN or a journal mode that could not be set
  not_a_buffer,      // the file is not a meterd buffer (not SQLite, or another application's)
  schema_too_new,    // the database was written by a newer meterd; refused, nothing changed
  invalid_argument,  // the caller passed something the store cannot take (named in the message)
  sqlite_error,      // any other SQLite failure (message carries sqlite3_errmsg)
};

const std::error_category& buffer_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

struct Error {
  std::error_code code;  // in buffer_category()
  int sqlite_code = 0;   // SQLite extended result code, 0 when the error is not from SQLite
  std::string message;   // what the store was doing, then SQLite's own text

  bool is(errc e) const noexcept { return code == make_error_code(e); }
};

namespace detail {
[[noreturn]] inline void bad_result_access(const char* what) noexcept {
  std::fprintf(stderr, "meterd::buffer::Result: %s\n", what);
  std::abort();
}
}  // namespace detail

// Holds a T or an Error. Reading value() of an error (or error() of a value) is a programming
// error and aborts; check has_value() / operator bool first.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Error>);

 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & { return has_value() ? std::get<0>(v_) : fail<T&>("value() of an error"); }
  const T& value() const& {
    return has_value() ? std::get<0>(v_) : fail<const T&>("value() of an error");
  }
  T&& value() && {
    return has_value() ? std::get<0>(std::move(v_)) : fail<T&&>("value() of an error");
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& {
    return has_value() ? fail<const Error&>("error() of a value") : std::get<1>(v_);
  }

 private:
  template <typename R>
  [[noreturn]] static R fail(const char* what) {
    detail::bad_result_access(what);
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}

  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  void value() const {
    if (!ok_) detail::bad_result_access("value() of an error");
  }
  const Error& error() const& {
    if (ok_) detail::bad_result_access("error() of a value");
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace meterd::buffer

template <>
struct std::is_error_code_enum<meterd::buffer::errc> : std::true_type {};
