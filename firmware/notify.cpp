#include "firmware/notify.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace meterd::firmware {

namespace {

// A whole string of decimal digits, no sign, no blanks, no overflow.
std::optional<unsigned long long> decimal(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  const char* end = text + std::strlen(text);
  unsigned long long v = 0;
  const auto [p, ec] = std::from_chars(text, end, v);
  if (ec != std::errc{} || p != end) return std::nullopt;
  return v;
}

}  // namespace

std::optional<std::chrono::microseconds> watchdog_interval(const char* usec, const char* pid,
                                                           pid_t self) {
  const auto us = decimal(usec);
  if (!us || *us == 0 || *us > static_cast<unsigned long long>(INT64_MAX)) return std::nullopt;
  if (pid != nullptr) {
    const auto p = decimal(pid);
    if (!p || *p != static_cast<unsigned long long>(self)) return std::nullopt;
  }
  return std::chrono::microseconds(static_cast<std::int64_t>(*us));
}

std::chrono::microseconds watchdog_ping_period(std::chrono::microseconds interval) {
  return std::max(interval / 2, std::chrono::microseconds(1));
}

Notifier::Notifier(const char* socket, std::optional<std::chrono::microseconds> watchdog)
    : watchdog_(watchdog) {
  if (socket == nullptr || *socket == '\0') return;
  const std::string name(socket);
  // sun_path holds at most sizeof - 1 bytes of a path (plus its NUL); an
  // abstract name may use every byte after the leading NUL.
  if (name[0] == '@') {
    if (name.size() > sizeof(sockaddr_un::sun_path)) {
      problem_ = "NOTIFY_SOCKET: name too long";
      return;
    }
    address_ = '\0' + name.substr(1);
  } else if (name[0] == '/') {
    if (name.size() >= sizeof(sockaddr_un::sun_path)) {
      problem_ = "NOTIFY_SOCKET: path too long";
      return;
    }
    address_ = name;
  } else {
    problem_ = "NOTIFY_SOCKET: neither an absolute path nor an @abstract name: " + name;
    return;
  }
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) problem_ = std::string("NOTIFY_SOCKET: socket: ") + std::strerror(errno);
}

Notifier::~Notifier() {
  if (fd_ >= 0) ::close(fd_);
}

Notifier Notifier::from_environment() {
  const char* raw = std::getenv("NOTIFY_SOCKET");
  const std::string socket = raw ? raw : "";
  const auto watchdog =
      watchdog_interval(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"), ::getpid());
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  return Notifier(socket.c_str(), watchdog);
}

bool Notifier::send(std::string_view state) {
  if (fd_ < 0) return false;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, address_.data(), address_.size());
  // An abstract name is exactly its bytes: no NUL terminator in the length.
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
  ssize_t n;
  do {
    n = ::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&sa),
                 len);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(state.size());
}

bool Notifier::status(std::string_view line) {
  std::string msg = "STATUS=";
  for (char c : line) msg += (c == '\n' || c == '\r') ? ' ' : c;
  return send(msg);
}

bool Notifier::reloading() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const long long usec = static_cast<long long>(ts.tv_sec) * 1000000LL + ts.tv_nsec / 1000;
  return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

}  // namespace meterd::firmware
