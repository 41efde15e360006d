#include "drivers/serial_port.hpp"

#include <array>
#include <cerrno>

#include <fcntl.h>
#include <linux/serial.h>
#include <pty.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

namespace meterd::drivers {

namespace {

struct BaudMap {
  unsigned baud;
  speed_t speed;
};
constexpr std::array<BaudMap, 10> bauds{{{300, B300},
                                         {600, B600},
                                         {1200, B1200},
                                         {2400, B2400},
                                         {4800, B4800},
                                         {9600, B9600},
                                         {19200, B19200},
                                         {38400, B38400},
                                         {57600, B57600},
                                         {115200, B115200}}};

std::error_code last_error() { return {errno, std::generic_category()}; }

// Unix98 pty slaves (/dev/pts/N) have majors 136..143, legacy BSD pty
// slaves major 3.
bool is_pty_slave(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) return false;
  const unsigned m = major(st.st_rdev);
  return (m >= 136 && m <= 143) || m == 3;
}

// A Linux pty keeps the baud rate and stop bits but forces CS8 and clears
// PARENB; glibc's tcsetattr re-reads the settings after TCSETS, sees
// parity or the character size gone and reports EINVAL although the rest
// was applied. Accept exactly that: a pty slave whose re-read settings
// equal the wanted ones except in PARENB, PARODD and CSIZE.
bool pty_refused_only_parity(int fd, const termios& wanted) {
  if (!is_pty_slave(fd)) return false;
  termios got{};
  if (::tcgetattr(fd, &got) != 0) return false;
  constexpr tcflag_t pty_forced = CSIZE | PARENB | PARODD;
  return ::cfgetispeed(&got) == ::cfgetispeed(&wanted) &&
         ::cfgetospeed(&got) == ::cfgetospeed(&wanted) &&
         (got.c_cflag & ~pty_forced) == (wanted.c_cflag & ~pty_forced) &&
         got.c_iflag == wanted.c_iflag && got.c_oflag == wanted.c_oflag &&
         got.c_lflag == wanted.c_lflag;
}

}  // namespace

std::string to_string(Parity p) {
  switch (p) {
    case Parity::none:
      return "none";
    case Parity::even:
      return "even";
    case Parity::odd:
      return "odd";
  }
  return "none";
}

bool parse_parity(const std::string& text, Parity& out) {
  if (text == "none")
    out = Parity::none;
  else if (text == "even")
    out = Parity::even;
  else if (text == "odd")
    out = Parity::odd;
  else
    return false;
  return true;
}

bool is_standard_baud(unsigned baud) noexcept {
  for (const auto& b : bauds)
    if (b.baud == baud) return true;
  return false;
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() { reset(); }

void Fd::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::error_code configure(int fd, const LineSettings& s) {
  termios tio{};
  if (::tcgetattr(fd, &tio) != 0) return last_error();
  ::cfmakeraw(&tio);
  speed_t speed = 0;
  for (const auto& b : bauds)
    if (b.baud == s.baud) speed = b.speed;
  if (speed == 0) return std::make_error_code(std::errc::invalid_argument);
  ::cfsetispeed(&tio, speed);
  ::cfsetospeed(&tio, speed);
  tio.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
  tio.c_cflag |= CLOCAL | CREAD;
  switch (s.data_bits) {
    case 7:
      tio.c_cflag |= CS7;
      break;
    case 8:
      tio.c_cflag |= CS8;
      break;
    default:
      return std::make_error_code(std::errc::invalid_argument);
  }
  if (s.parity != Parity::none) tio.c_cflag |= PARENB;
  if (s.parity == Parity::odd) tio.c_cflag |= PARODD;
  if (s.stop_bits == 2)
    tio.c_cflag |= CSTOPB;
  else if (s.stop_bits != 1)
    return std::make_error_code(std::errc::invalid_argument);
  tio.c_iflag &= ~static_cast<tcflag_t>(IXON | IXOFF | IXANY);
  tio.c_cc[VMIN] = 0;
  tio.c_cc[VTIME] = 0;
  if (::tcsetattr(fd, TCSANOW, &tio) != 0) {
    const auto ec = last_error();
    if (ec.value() == EINVAL && pty_refused_only_parity(fd, tio)) return {};
    return ec;
  }
  return {};
}

std::error_code set_rs485(int fd, const Rs485Settings& s) {
  serial_rs485 rs{};
  if (s.enabled) {
    rs.flags =
        SER_RS485_ENABLED | (s.rts_on_send ? SER_RS485_RTS_ON_SEND : SER_RS485_RTS_AFTER_SEND);
    rs.delay_rts_before_send = s.delay_before_send_ms;
    rs.delay_rts_after_send = s.delay_after_send_ms;
  }
  if (::ioctl(fd, TIOCSRS485, &rs) != 0) {
    // ENOTTY: a pty or a driver without the ioctl; EINVAL / EOPNOTSUPP: a
    // UART that cannot switch direction itself (the adapter does).
    if (errno == ENOTTY || errno == EINVAL || errno == EOPNOTSUPP)
      return std::make_error_code(std::errc::not_supported);
    return last_error();
  }
  return {};
}

std::error_code lock_exclusive(int fd) {
  // flock first: it holds against every other open, root's included (TIOCEXCL
  // does not stop CAP_SYS_ADMIN), and a refused lock leaves the tty as it was.
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return std::make_error_code(std::errc::resource_unavailable_try_again);
    return last_error();
  }
  if (::ioctl(fd, TIOCEXCL) != 0 && errno != ENOTTY) return last_error();
  return {};
}

void release_exclusive(int fd) noexcept {
  // The tty stays exclusive after our close while another process (metersim's
  // keep-alive, a getty) holds it open: undo TIOCEXCL. The flock goes with the
  // last descriptor of this open.
  ::ioctl(fd, TIOCNXCL);
}

Fd open_serial(const std::string& path, const LineSettings& settings, std::error_code& ec) {
  Fd fd(::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    ec = last_error();
    return {};
  }
  ec = configure(fd.get(), settings);
  if (ec) return {};
  return fd;
}

Pty open_pty(const LineSettings& settings, std::error_code& ec) {
  int master = -1, slave = -1;
  char name[256] = {};
  if (::openpty(&master, &slave, name, nullptr, nullptr) != 0) {
    ec = last_error();
    return {};
  }
  Pty pty{Fd(master), name, Fd(slave)};
  if ((ec = configure(slave, settings))) return {};
  // The master side has no line settings of its own (Linux refuses them):
  // the slave's raw mode is what both ends see.
  const int flags = ::fcntl(master, F_GETFL);
  if (flags < 0 || ::fcntl(master, F_SETFL, flags | O_NONBLOCK) != 0 ||
      ::fcntl(master, F_SETFD, FD_CLOEXEC) != 0 || ::fcntl(slave, F_SETFD, FD_CLOEXEC) != 0) {
    ec = last_error();
    return {};
  }
  ec.clear();
  return pty;
}

}  // namespace meterd::drivers
