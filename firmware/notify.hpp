// systemd readiness and watchdog notifications (sd_notify(3)) over the
// documented socket protocol, without linking libsystemd: one datagram per
// state change, sent to the AF_UNIX socket named by $NOTIFY_SOCKET
// (https://systemd.io/NOTIFY/ and sd_notify(3)). Outside systemd (no
// NOTIFY_SOCKET) every call is a no-op, so meterd runs the same by hand.
//
// The watchdog: systemd sets WATCHDOG_USEC (and WATCHDOG_PID, the process it
// is meant for); the daemon must send WATCHDOG=1 more often than that. meterd
// pings at half the interval from a timer on its io_context thread, so a
// loop that stops turning stops the pings and systemd restarts the service.
//
// Not thread-safe; call from the io_context thread (main before io.run()).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <sys/types.h>

namespace meterd::firmware {

// The watchdog interval systemd asks for, from the raw WATCHDOG_USEC and
// WATCHDOG_PID values (nullptr: unset). nullopt when no watchdog applies to
// `self`: WATCHDOG_USEC unset, not a positive decimal integer, or
// WATCHDOG_PID set but naming another process (a child that inherited the
// environment must not ping for its parent), or not a number.
std::optional<std::chrono::microseconds> watchdog_interval(const char* usec, const char* pid,
                                                           pid_t self);

// How often to ping for a watchdog `interval`: half of it (sd_watchdog_enabled(3)
// recommends half, so one late ping does not trip the watchdog).
std::chrono::microseconds watchdog_ping_period(std::chrono::microseconds interval);

class Notifier {
 public:
  // `socket` is NOTIFY_SOCKET's value (nullptr or "": notifications off): an
  // absolute path, or '@' then a name in the abstract namespace. `watchdog`:
  // see watchdog_interval().
  Notifier(const char* socket, std::optional<std::chrono::microseconds> watchdog);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // From NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, which it then removes
  // from the environment (as sd_notify(unset_environment=1) does): a program
  // meterd starts must not inherit them and notify in its name.
  static Notifier from_environment();

  // Whether NOTIFY_SOCKET named a usable socket.
  bool enabled() const noexcept { return fd_ >= 0; }
  // Why notifications are off although NOTIFY_SOCKET was set ("" otherwise).
  const std::string& problem() const noexcept { return problem_; }
  // The watchdog interval, only when notifications are on.
  std::optional<std::chrono::microseconds> watchdog() const noexcept {
    return enabled() ? watchdog_ : std::nullopt;
  }

  // Sends one datagram of newline-separated assignments ("READY=1\nSTATUS=...").
  // False when off or when the send failed (systemd gone: nothing to do about it).
  bool send(std::string_view state);

  bool ready() { return send("READY=1"); }
  bool status(std::string_view line);  // one line: newlines become blanks
  bool watchdog_ping() { return send("WATCHDOG=1"); }
  bool stopping() { return send("STOPPING=1"); }
  // RELOADING=1 with MONOTONIC_USEC, which systemd >= 253 wants for
  // Type=notify-reload (older ones ignore it); ready() ends the reload.
  bool reloading();

 private:
  int fd_ = -1;
  std::string address_;  // raw sun_path bytes, a leading NUL for abstract names
  std::optional<std::chrono::microseconds> watchdog_;
  std::string problem_;
};

}  // namespace meterd::firmware
