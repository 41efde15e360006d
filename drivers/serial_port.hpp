// Serial ports and pseudo-terminals: opening, line settings, raw mode.
// The RS-485 bus of a concentrator is a serial device (/dev/ttyS1,
// /dev/ttyUSB0); in tests and the demo it is the slave side of a pty that
// metersim holds. Functions here may be called from any thread; the file
// descriptors they return have one owner (the bus worker).
#pragma once

#include <cstdint>
#include <string>
#include <system_error>

namespace meterd::drivers {

enum class Parity { none, even, odd };

struct LineSettings {
  unsigned baud = 2400;
  Parity parity = Parity::even;
  unsigned data_bits = 8;
  unsigned stop_bits = 1;

  // Bits on the wire per character: start + data + parity + stop
  // (11 for 8E1, 10 for 8N1). Wire timing is derived from it.
  unsigned bits_per_char() const noexcept {
    return 1 + data_bits + (parity == Parity::none ? 0 : 1) + stop_bits;
  }
  // Microseconds one character takes at this baud rate.
  std::uint64_t char_time_us() const noexcept { return 1'000'000ull * bits_per_char() / baud; }
};

std::string to_string(Parity p);
bool parse_parity(const std::string& text, Parity& out);  // "none" | "even" | "odd"
bool is_standard_baud(unsigned baud) noexcept;

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();

  int get() const noexcept { return fd_; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  void reset() noexcept;

 private:
  int fd_ = -1;
};

// Opens a serial device (or a pty slave) in raw mode with these settings,
// non-blocking, close-on-exec. Error: the errno of open/tcsetattr.
Fd open_serial(const std::string& path, const LineSettings& settings, std::error_code& ec);

// Applies settings to an open descriptor (raw mode, no echo, no flow control).
std::error_code configure(int fd, const LineSettings& settings);

// A pseudo-terminal pair: the master side is the simulated bus, the slave
// path is what the gateway opens as its serial device.
struct Pty {
  Fd master;
  std::string slave_path;
  Fd slave_keepalive;  // held open so the master never reads EIO between clients
};
// Opens a pty pair in raw mode, master non-blocking.
Pty open_pty(const LineSettings& settings, std::error_code& ec);

}  // namespace meterd::drivers
