// sd_notify over its socket protocol (firmware/notify): the datagrams a
// listening "systemd" receives on a path and on an abstract name, and the
// watchdog interval read from WATCHDOG_USEC / WATCHDOG_PID.
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "firmware/notify.hpp"

using meterd::firmware::Notifier;
using meterd::firmware::watchdog_interval;
using meterd::firmware::watchdog_ping_period;
using namespace std::chrono_literals;

namespace {

// What systemd does: a bound datagram socket, at a path or an abstract name
// ("@..."), read with a bounded wait.
class Listener {
 public:
  explicit Listener(const std::string& name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::string raw = name;
    if (raw[0] == '@')
      raw[0] = '\0';
    else
      path_ = name;
    REQUIRE(raw.size() < sizeof(sa.sun_path));
    std::memcpy(sa.sun_path, raw.data(), raw.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + raw.size() +
                                            (path_.empty() ? 0 : 1));
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), len) == 0);
  }
  ~Listener() {
    ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  // The next datagram, or nullopt after `wait`.
  std::optional<std::string> next(std::chrono::milliseconds wait = 2s) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) != 1) return std::nullopt;
    char buf[4096];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  int fd_ = -1;
  std::string path_;
};

std::string unique_name(const char* what) {
  static int n = 0;
  return std::string("meterd-test-notify-") + what + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(++n);
}

}  // namespace

// Catches: messages not sent, or sent with a trailing NUL or newline (systemd
// would read "READY=1\0" as garbage), a STATUS that lets a newline start a
// second assignment.
TEST_CASE("every state reaches a socket at a path, one datagram each") {
  const std::string path = (std::filesystem::temp_directory_path() / unique_name("path")).string();
  Listener sd(path);
  Notifier n(path.c_str(), std::nullopt);
  REQUIRE(n.enabled());
  CHECK(n.problem().empty());

  CHECK(n.ready());
  CHECK(sd.next() == "READY=1");
  CHECK(n.status("polling 3 meters\non 1 bus"));
  CHECK(sd.next() == "STATUS=polling 3 meters on 1 bus");
  CHECK(n.watchdog_ping());
  CHECK(sd.next() == "WATCHDOG=1");
  CHECK(n.reloading());
  const auto reload = sd.next();
  REQUIRE(reload.has_value());
  CHECK(reload->rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
  const auto usec = reload->substr(reload->find('=', 12) + 1);
  CHECK(!usec.empty());
  CHECK(usec.find_first_not_of("0123456789") == std::string::npos);
  CHECK(n.send("READY=1\nSTATUS=x"));
  CHECK(sd.next() == "READY=1\nSTATUS=x");
  CHECK(n.stopping());
  CHECK(sd.next() == "STOPPING=1");
}

// Catches: an implementation that takes "@name" as a file path (systemd
// hands out abstract names, e.g. in containers and for user services), or
// that puts the abstract name's terminating NUL into the address (a
// different name: the datagram would go nowhere).
TEST_CASE("an @name is a socket in the abstract namespace") {
  const std::string name = "@" + unique_name("abstract");
  Listener sd(name);
  Notifier n(name.c_str(), std::nullopt);
  REQUIRE(n.enabled());
  CHECK(n.ready());
  CHECK(sd.next() == "READY=1");
  CHECK_FALSE(std::filesystem::exists(name));  // nothing created in the cwd
}

// Catches: sending when NOTIFY_SOCKET is unset (to some default socket), a
// relative path taken for a socket, and a watchdog claimed without a socket
// to ping.
TEST_CASE("without NOTIFY_SOCKET, or with a bad one, nothing is sent") {
  Notifier none(nullptr, 30s);
  CHECK_FALSE(none.enabled());
  CHECK(none.problem().empty());
  CHECK_FALSE(none.ready());
  CHECK_FALSE(none.watchdog().has_value());

  Notifier empty("", std::nullopt);
  CHECK_FALSE(empty.enabled());

  Notifier relative("run/notify", std::nullopt);
  CHECK_FALSE(relative.enabled());
  CHECK(relative.problem().find("NOTIFY_SOCKET") != std::string::npos);
  CHECK_FALSE(relative.ready());

  const std::string too_long = "/" + std::string(200, 'x');
  CHECK_FALSE(Notifier(too_long.c_str(), std::nullopt).enabled());

  ::unsetenv("NOTIFY_SOCKET");
  ::setenv("WATCHDOG_USEC", "1000000", 1);
  const auto env = Notifier::from_environment();
  CHECK_FALSE(env.enabled());
  CHECK_FALSE(env.watchdog().has_value());
}

// Catches: a watchdog read from another process's WATCHDOG_PID (a child
// that inherited the environment would ping for its parent), a number with
// junk after it taken for its prefix ("30s" is not 30 µs), a zero interval
// (systemd: watchdog off) taken as "ping constantly".
TEST_CASE("WATCHDOG_USEC and WATCHDOG_PID") {
  const pid_t self = 4242;
  CHECK(watchdog_interval("30000000", nullptr, self) == 30s);
  CHECK(watchdog_interval("30000000", "4242", self) == 30s);
  CHECK(watchdog_interval("2000000", "4242", self) == 2s);
  CHECK_FALSE(watchdog_interval("30000000", "4243", self).has_value());
  CHECK_FALSE(watchdog_interval("30000000", "", self).has_value());
  CHECK_FALSE(watchdog_interval("30000000", "42x", self).has_value());
  CHECK_FALSE(watchdog_interval(nullptr, "4242", self).has_value());
  CHECK_FALSE(watchdog_interval("", nullptr, self).has_value());
  CHECK_FALSE(watchdog_interval("0", nullptr, self).has_value());
  CHECK_FALSE(watchdog_interval("30s", nullptr, self).has_value());
  CHECK_FALSE(watchdog_interval("-5", nullptr, self).has_value());
  CHECK_FALSE(watchdog_interval(" 5", nullptr, self).has_value());
  CHECK_FALSE(watchdog_interval("99999999999999999999999", nullptr, self).has_value());
}

// Catches: pinging at the full interval (every late ping then trips the
// watchdog).
TEST_CASE("the watchdog is pinged at half its interval") {
  CHECK(watchdog_ping_period(30s) == 15s);
  CHECK(watchdog_ping_period(2s) == 1s);
  CHECK(watchdog_ping_period(std::chrono::microseconds(3)) == std::chrono::microseconds(1));
  CHECK(watchdog_ping_period(std::chrono::microseconds(1)) == std::chrono::microseconds(1));
}

// Catches: from_environment ignoring WATCHDOG_PID, and leaving the variables
// in the environment for the programs meterd might start.
TEST_CASE("from the environment: read once, then removed") {
  const std::string path = (std::filesystem::temp_directory_path() / unique_name("env")).string();
  Listener sd(path);
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  ::setenv("WATCHDOG_USEC", "2000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  {
    auto n = Notifier::from_environment();
    REQUIRE(n.enabled());
    CHECK(n.watchdog() == 2s);
    CHECK(std::getenv("NOTIFY_SOCKET") == nullptr);
    CHECK(std::getenv("WATCHDOG_USEC") == nullptr);
    CHECK(std::getenv("WATCHDOG_PID") == nullptr);
    CHECK(n.watchdog_ping());
    CHECK(sd.next() == "WATCHDOG=1");
  }
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  ::setenv("WATCHDOG_USEC", "2000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
  {
    auto n = Notifier::from_environment();
    CHECK(n.enabled());  // notifications are still for us; the watchdog is not
    CHECK_FALSE(n.watchdog().has_value());
  }
}
