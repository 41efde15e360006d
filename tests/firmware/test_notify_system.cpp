// The real meterd under a fake systemd: NOTIFY_SOCKET names a datagram
// socket of the test, WATCHDOG_USEC asks for a 2 s watchdog. meterd must
// say READY=1 once it polls, ping WATCHDOG=1 on and on, wrap a SIGHUP
// reload in RELOADING=1 ... READY=1, and say STOPPING=1 on SIGTERM.
// Every wait is bounded; nothing asserts on wall-clock speed.
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/support/rig.hpp"

using namespace meterd::testing;
using namespace std::chrono_literals;

namespace {

struct FakeSystemd {
  int fd = -1;
  std::string path;
  explicit FakeSystemd(std::string p) : path(std::move(p)) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof(sa.sun_path));
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  }
  ~FakeSystemd() { ::close(fd); }
  std::optional<std::string> next(std::chrono::milliseconds wait) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) != 1) return std::nullopt;
    char buf[4096];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }
  // Datagrams until one contains `what` (returned), at most `limit` of them
  // and each within `wait`; every one received is appended to `seen`.
  std::optional<std::string> until(const std::string& what, std::vector<std::string>& seen,
                                   std::chrono::milliseconds wait = 20s, int limit = 100) {
    for (int i = 0; i < limit; ++i) {
      auto m = next(wait);
      if (!m) return std::nullopt;
      seen.push_back(*m);
      if (m->find(what) != std::string::npos) return m;
    }
    return std::nullopt;
  }
};

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& m : v) s += "[" + m + "] ";
  return s;
}

}  // namespace

// Catches: READY=1 sent before the buses are up (or never), no watchdog
// pings (or pings only once, from start-up rather than from a timer on the
// loop), a reload that leaves systemd in "reloading" (no READY=1 after
// RELOADING=1), no STOPPING=1 on SIGTERM, and NOTIFY_SOCKET ignored.
TEST_CASE("meterd under a fake systemd: READY, periodic WATCHDOG, RELOADING, STOPPING") {
  Rig rig(bus_toml("d", 9600, "even") + meter_toml("d1", "d", "dlt645-2007", "000000000001"), {},
          "3s");
  FakeSystemd sd((rig.dir.path / "notify.sock").string());
  ::setenv("NOTIFY_SOCKET", sd.path.c_str(), 1);
  ::setenv("WATCHDOG_USEC", "2000000", 1);
  rig.start();  // the child inherits the two variables
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");

  std::vector<std::string> seen;
  const auto ready = sd.until("READY=1", seen);
  REQUIRE_MESSAGE(ready.has_value(), joined(seen) << "\n" << rig.meterd->log_text());
  CHECK(ready->find("STATUS=polling 1 meter on 1 bus") != std::string::npos);

  // Pings keep coming: three more after READY (1 s apart for a 2 s watchdog).
  int pings = 0;
  for (int i = 0; i < 20 && pings < 3; ++i) {
    const auto m = sd.next(5s);
    REQUIRE_MESSAGE(m.has_value(), "no datagram within 5 s; seen: " << joined(seen));
    seen.push_back(*m);
    if (*m == "WATCHDOG=1") ++pings;
  }
  CHECK_MESSAGE(pings == 3, joined(seen));

  // And meterd really polls meanwhile.
  REQUIRE_MESSAGE(eventually([&] { return rig.all_read(1); }, 30s), rig.meterd->log_text());

  ::kill(rig.meterd->proc->pid(), SIGHUP);
  seen.clear();
  REQUIRE_MESSAGE(sd.until("RELOADING=1", seen).has_value(), joined(seen));
  const auto after = sd.until("READY=1", seen);
  REQUIRE_MESSAGE(after.has_value(), joined(seen));
  CHECK(after->find("STATUS=polling 1 meter on 1 bus") != std::string::npos);

  ::kill(rig.meterd->proc->pid(), SIGTERM);
  seen.clear();
  CHECK_MESSAGE(sd.until("STOPPING=1", seen).has_value(), joined(seen));
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
}

// Catches: pinging for a watchdog that systemd set up for another process
// (WATCHDOG_PID names someone else, e.g. meterd started by a wrapper).
TEST_CASE("meterd sends no WATCHDOG=1 when WATCHDOG_PID is another process") {
  Rig rig(bus_toml("d", 9600, "even") + meter_toml("d1", "d", "dlt645-2007", "000000000001"), {},
          "3s");
  FakeSystemd sd((rig.dir.path / "notify.sock").string());
  ::setenv("NOTIFY_SOCKET", sd.path.c_str(), 1);
  ::setenv("WATCHDOG_USEC", "200000", 1);  // 0.1 s pings, if any
  ::setenv("WATCHDOG_PID", "1", 1);
  rig.start();
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");

  std::vector<std::string> seen;
  REQUIRE_MESSAGE(sd.until("READY=1", seen).has_value(), joined(seen));
  // A reload is a marker: any ping (every 0.1 s) sent meanwhile arrives before it.
  REQUIRE(eventually([&] { return rig.all_read(1); }, 30s));
  ::kill(rig.meterd->proc->pid(), SIGHUP);
  REQUIRE_MESSAGE(sd.until("RELOADING=1", seen).has_value(), joined(seen));
  REQUIRE_MESSAGE(sd.until("READY=1", seen).has_value(), joined(seen));
  for (const auto& m : seen) CHECK_MESSAGE(m.find("WATCHDOG=1") == std::string::npos, m);
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
}
