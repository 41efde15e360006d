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

// RS-485 direction control by the UART driver (TIOCSRS485): RTS high while
// sending, with delays before and after. Many adapters switch direction
// themselves and a pty has no such ioctl.
struct Rs485Settings {
  bool enabled = false;
  bool rts_on_send = true;  // RTS level while sending (false: RTS low while sending)
  unsigned delay_before_send_ms = 0;
  unsigned delay_after_send_ms = 0;
};

// Opens a serial device (or a pty slave) in raw mode with these settings,
// non-blocking, close-on-exec. Error: the errno of open/tcsetattr.
Fd open_serial(const std::string& path, const LineSettings& settings, std::error_code& ec);

// Applies RS-485 mode. Returns std::errc::not_supported when the device has
// no RS-485 ioctl (ENOTTY / EINVAL: a pty, an adapter that switches itself);
// callers log that once and carry on.
std::error_code set_rs485(int fd, const Rs485Settings& settings);

// Makes this process the bus's only user: TIOCEXCL (no other open of the
// tty) and flock(LOCK_EX | LOCK_NB). Error: resource_unavailable_try_again
// (or device_or_resource_busy) when another process holds it.
std::error_code lock_exclusive(int fd);
// Undoes TIOCEXCL before the descriptor is closed (the flock goes with it).
void release_exclusive(int fd) noexcept;

// Applies settings to an open descriptor (raw mode, no echo, no flow control).
// A pty slave cannot keep parity or a character size other than 8 (Linux
// forces CS8 and clears PARENB; glibc then reports EINVAL): that one case is
// accepted when the baud rate, stop bits and raw mode did apply. Any other
// refusal is an error.
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
