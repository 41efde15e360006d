// The control socket's transport (drivers/control_server) with a scripted
// handler and plain POSIX clients. Each case names the careless server it
// would catch.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "drivers/control_server.hpp"
#include "tests/support/system.hpp"

namespace fs = std::filesystem;
namespace asio = boost::asio;
using meterd::drivers::ControlLimits;
using meterd::drivers::ControlServer;
using meterd::drivers::ControlSession;
using meterd::drivers::ControlSocketOptions;
using meterd::testing::LineClient;

namespace {

// A server on its own io_context thread. Requests: "echo X" answers X;
// "later X" answers X after 200 ms; "flood" sends 1 KiB lines until the
// output bound refuses one and answers how many went; "never" streams
// nothing and never finishes (a tail), ending on the client's EOF.
struct Fixture {
  fs::path dir;
  asio::io_context io;
  std::unique_ptr<ControlServer> server;
  std::thread thread;
  std::atomic<int> closes{0};
  std::atomic<int> requests{0};

  explicit Fixture(ControlLimits limits = {}) {
    static int n = 0;
    dir = fs::temp_directory_path() /
          ("ctl-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    fs::create_directories(dir);
    ControlSocketOptions o;
    o.path = dir / "s.sock";
    o.limits = limits;
    server = std::make_unique<ControlServer>(
        io, o,
        [this](std::shared_ptr<ControlSession> s, std::string line) {
          ++requests;
          s->on_close([this] { ++closes; });
          if (line.rfind("echo ", 0) == 0) {
            s->finish(line.substr(5));
          } else if (line.rfind("later ", 0) == 0) {
            auto t = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(200));
            // Only a weak reference, as the daemon's jobs keep: the server
            // must keep the session alive until it is closed.
            t->async_wait([w = std::weak_ptr(s), t, text = line.substr(6)](auto) {
              if (auto s2 = w.lock()) s2->finish(text);
            });
          } else if (line == "flood") {
            int n = 0;
            while (s->send(std::string(1023, 'x'))) ++n;
            s->finish("sent " + std::to_string(n));
          } else if (line == "never") {
            s->end_on_eof();
          } else {
            s->finish("unknown");
          }
        },
        [](const std::string& code, const std::string& text) { return code + ": " + text; });
    REQUIRE_FALSE(server->start());
    thread = std::thread([this] {
      auto guard = asio::make_work_guard(io);
      io.run();
    });
  }
  ~Fixture() {
    asio::post(io, [this] { server->stop(); });
    io.stop();
    thread.join();
    server.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  template <typename F>
  auto on_loop(F f) {
    std::promise<decltype(f())> p;
    asio::post(io, [&] { p.set_value(f()); });
    return p.get_future().get();
  }
};

}  // namespace

TEST_CASE("requests are answered in order, pipelined in one write; blank lines and CR skipped") {
  // Careless: a server that answers only the first request of a read, or
  // answers a slow request after a quick one sent behind it.
  Fixture f;
  LineClient c(f.server->path());
  c.send("later one\n\n echo-not\r\necho two\r\necho three\n");
  CHECK(c.line() == "one");
  CHECK(c.line() == "unknown");
  CHECK(c.line() == "two");
  CHECK(c.line() == "three");
}

TEST_CASE("a client that shuts down its side after sending still gets every answer") {
  // Careless: closing on EOF drops the answer of a request still running
  // (`echo ... | socat - UNIX:` scripts); a server holding sessions only
  // through their pending reads destroys one at EOF.
  Fixture f;
  LineClient c(f.server->path());
  c.send("later slow\necho after\n");
  ::shutdown(c.fd(), SHUT_WR);
  CHECK(c.line() == "slow");
  CHECK(c.line() == "after");
  CHECK(c.line() == "<eof>");
}

TEST_CASE("a streaming request that never finishes ends when the client goes") {
  // Careless: a tail follower kept forever after its client left.
  Fixture f;
  {
    LineClient c(f.server->path());
    c.send("never\n");
    for (int i = 0; i < 200 && f.requests == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int i = 0; i < 400 && f.closes == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(f.closes == 1);
  CHECK(f.on_loop([&] { return f.server->sessions(); }) == 0);
}

TEST_CASE("an over-long line is refused and its connection closed; others carry on") {
  // Careless: an unbounded input buffer (a client streaming without a
  // newline grows the daemon without limit).
  ControlLimits limits;
  limits.max_line = 1024;
  Fixture f(limits);
  LineClient other(f.server->path());
  LineClient c(f.server->path());
  c.send(std::string(4000, 'a'));
  CHECK(c.line() == "malformed: request line longer than 1024 bytes");
  CHECK(c.line() == "<eof>");
  other.send("echo still here\n");
  CHECK(other.line() == "still here");
}

TEST_CASE("past max_clients a connection gets one busy line; a slot freed is reused") {
  // Careless: unbounded connections (a script looping connect() exhausts
  // descriptors), or a refusal without a word.
  ControlLimits limits;
  limits.max_clients = 2;
  Fixture f(limits);
  auto a = std::make_unique<LineClient>(f.server->path());
  LineClient b(f.server->path());
  a->send("echo a\n");
  CHECK(a->line() == "a");
  {
    LineClient c(f.server->path());
    CHECK(c.line() == "busy: too many control connections (2); try again");
    CHECK(c.line() == "<eof>");
  }
  a.reset();
  b.send("echo b\n");
  CHECK(b.line() == "b");
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {  // the close of `a` reaches the loop
    LineClient d(f.server->path());
    d.send("echo d\n");
    served = d.line() == "d";
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(served);
}

TEST_CASE("a client that does not read: output bounded, the loop keeps serving others") {
  // Careless: blocking writes, or an unbounded queue per connection.
  ControlLimits limits;
  limits.max_output = 64 * 1024;
  Fixture f(limits);
  LineClient slow(f.server->path());
  slow.send("flood\necho queued\n");
  LineClient other(f.server->path());
  other.send("echo quick\n");
  CHECK(other.line() == "quick");
  // Now read: the flood stopped at the bound, then its final line, then the
  // next request's answer.
  std::string l;
  int lines = 0;
  while ((l = slow.line()).size() == 1023) ++lines;
  CHECK(lines == 64);
  CHECK(l == "sent 64");
  CHECK(slow.line() == "queued");
}

TEST_CASE("an unfinished line times out; a connection idle between requests too") {
  // Careless: a client that sends half a line holds a slot forever.
  ControlLimits limits;
  limits.line_timeout = std::chrono::milliseconds(200);
  limits.idle_timeout = std::chrono::milliseconds(400);
  Fixture f(limits);
  LineClient half(f.server->path());
  half.send("echo no newline");
  CHECK(half.line(std::chrono::milliseconds(3000)) == "<eof>");
  LineClient idle(f.server->path());
  idle.send("echo x\n");
  CHECK(idle.line() == "x");
  CHECK(idle.line(std::chrono::milliseconds(3000)) == "<eof>");
  // A request that runs longer than the idle timeout is not cut off.
  ControlLimits l2;
  l2.idle_timeout = std::chrono::milliseconds(50);
  Fixture g(l2);
  LineClient c(g.server->path());
  c.send("later kept\n");
  CHECK(c.line() == "kept");
}

TEST_CASE("socket file: mode 0660, a stale one replaced, a live one never stolen") {
  // Careless: unlinking the path at start lets a second daemon steal the
  // first one's socket (meterctl then talks to the wrong process).
  Fixture f;
  struct stat st {};
  REQUIRE(::stat(f.server->path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0660);

  asio::io_context io2;
  ControlSocketOptions o;
  o.path = f.server->path();
  ControlServer second(
      io2, o, [](std::shared_ptr<ControlSession>, std::string) {},
      [](const std::string&, const std::string&) { return std::string(); });
  CHECK(second.start() == std::make_error_code(std::errc::address_in_use));
  second.stop();
  CHECK(fs::exists(f.server->path()));  // the refused one did not remove it
  LineClient c(f.server->path());
  c.send("echo first\n");
  CHECK(c.line() == "first");

  // A socket file nobody answers on (a crashed daemon's) is replaced.
  const fs::path stale = f.dir / "stale.sock";
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", stale.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    ::close(fd);
  }
  ControlSocketOptions o3;
  o3.path = stale;
  ControlServer third(
      io2, o3, [](std::shared_ptr<ControlSession>, std::string) {},
      [](const std::string&, const std::string&) { return std::string(); });
  CHECK_FALSE(third.start());
  third.stop();
  CHECK_FALSE(fs::exists(stale));  // stop removes its own file
}
