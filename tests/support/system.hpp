// System-tier test support: real processes, ptys and sockets, with bounded
// waits. Used by tests that run metersim (and later meterd) for real.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/types.h>

namespace meterd::testing {

// A child process, killed (TERM, then KILL) when the object dies.
class Process {
 public:
  Process(const std::string& program, const std::vector<std::string>& args,
          const std::filesystem::path& log = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  bool running();
  // Sends `sig` and waits (bounded) for the exit; returns the exit status or -1.
  int stop(int sig = 15, std::chrono::milliseconds wait = std::chrono::seconds(5));

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// A fresh directory under /tmp, removed with its contents at the end.
struct TempDir {
  TempDir();
  ~TempDir();
  std::filesystem::path path;
};

// Waits (polling, bounded) until `file` exists; false on timeout.
bool wait_for_file(const std::filesystem::path& file,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));

nlohmann::json read_json(const std::filesystem::path& file);

// One request/answer on a JSON-lines Unix socket.
nlohmann::json control(const std::filesystem::path& socket, const nlohmann::json& request);

// A client of a JSON-lines Unix socket (meterd's and metersim's control
// sockets): raw lines in and out, every wait bounded.
class LineClient {
 public:
  explicit LineClient(const std::filesystem::path& socket);  // ok() tells whether it connected
  ~LineClient();
  LineClient(const LineClient&) = delete;
  LineClient& operator=(const LineClient&) = delete;
  bool ok() const noexcept { return fd_ >= 0; }
  int fd() const noexcept { return fd_; }
  void send(const std::string& text);  // as is: add the '\n' yourself
  // The next line without its '\n'; "<eof>" when the peer closed, "<timeout>".
  std::string line(std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  int fd_ = -1;
  std::string in_;
};

// A shell command line (/bin/sh -c, so pipes work); stdout and stderr apart.
struct ShellRun {
  int status = -1;  // the exit status; -1 if killed by a signal
  std::string out, err;
};
ShellRun run_shell(const std::string& command);

// A serial port opened raw, as a gateway opens its bus.
class Serial {
 public:
  explicit Serial(const std::filesystem::path& path, unsigned baud = 2400, bool even_parity = true,
                  unsigned stop_bits = 1);
  ~Serial();
  int fd() const noexcept { return fd_; }
  void write(const std::vector<std::uint8_t>& bytes);
  // Reads until `done(bytes)` says so or `timeout` passes without it.
  struct Answer {
    std::vector<std::uint8_t> bytes;
    std::chrono::steady_clock::duration first_byte{};  // since the write
    std::chrono::steady_clock::duration last_byte{};
    // Each read: when it returned (since the write) and how many bytes it brought.
    std::vector<std::pair<std::chrono::steady_clock::duration, std::size_t>> reads;
    // The longest pause between two reads from byte `from` on (0: the whole answer).
    std::chrono::steady_clock::duration largest_gap(std::size_t from = 0) const;
  };
  Answer transact(const std::vector<std::uint8_t>& request, std::chrono::milliseconds timeout,
                  bool (*done)(const std::vector<std::uint8_t>&));
  // Reads what arrives within `timeout` (no request sent).
  Answer listen(std::chrono::milliseconds timeout,
                bool (*done)(const std::vector<std::uint8_t>&) = nullptr);
  void drain(std::chrono::milliseconds quiet = std::chrono::milliseconds(50));

 private:
  int fd_ = -1;
};

// `done` predicate for DL/T 645: a whole frame (or a bad one) has arrived.
bool dlt645_complete(const std::vector<std::uint8_t>& bytes);

// `done` predicate for a Modbus RTU answer: a normal read answer, an
// exception or an 8-byte echo/write answer has fully arrived.
bool modbus_rtu_complete(const std::vector<std::uint8_t>& bytes);

// One Modbus/TCP request on a fresh connection to 127.0.0.1:`port`; the raw
// answer bytes (empty if none came within `timeout`). Throws if it cannot send.
std::vector<std::uint8_t> modbus_tcp_ask(int port, const std::vector<std::uint8_t>& request,
                                         std::chrono::milliseconds timeout);

}  // namespace meterd::testing
