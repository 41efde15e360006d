// A local control channel's transport: a Unix stream socket speaking JSON
// lines (docs/control.md "Framing" and "Limits"). One request line in at a
// time per connection; the handler answers with any number of lines and
// then finish(), after which the next request line is read. What the lines
// mean is the handler's business (meterd's verbs, metersim's commands).
//
// A slow or hostile client never blocks the loop: every connection's input
// and output are bounded, a line not finished in time closes it, at most
// max_clients are served at once.
//
// Thread: everything runs on the io_context's thread, including the
// handler; Session's members may only be called there.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <utility>  // before Asio: Boost 1.74 uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>

namespace meterd::drivers {

struct ControlLimits {
  std::size_t max_line = 64 * 1024;                 // a longer request line: answered, then closed
  std::size_t max_clients = 32;                     // more: answered "busy", then closed
  std::size_t max_output = 1024 * 1024;             // unsent bytes per connection
  std::chrono::milliseconds line_timeout{10'000};   // a started line must end within this
  std::chrono::milliseconds idle_timeout{600'000};  // no request running and nothing sent
};

struct ControlSocketOptions {
  std::filesystem::path path;
  unsigned mode = 0660;  // applied after bind
  std::string group;     // chgrp to this group after bind; "" keeps the process's group
  ControlLimits limits;
};

class ControlServer;

// One connection. Held by the server while it is open; a handler that
// answers later (after a bus exchange) keeps a shared_ptr and checks open().
class ControlSession : public std::enable_shared_from_this<ControlSession> {
 public:
  // Queues one line ('\n' added). False (and nothing queued) when the
  // session is closed or its unsent output would pass max_output: the
  // caller decides whether to drop (tail) or wait for on_drained (export).
  bool send(std::string line);
  // Queues the request's final line and, once it is written, reads the next
  // request. Always queued (a final line is never dropped), even past the
  // output bound. A second finish() for the same request is ignored.
  void finish(std::string line);
  // Called (once per registration) when the unsent output falls to half of
  // max_output or below; cleared when the session closes.
  void on_drained(std::function<void()> hook);
  // Called when the connection closes (client gone, limit, server stop).
  void on_close(std::function<void()> hook);
  bool open() const noexcept { return open_; }
  std::size_t unsent() const noexcept { return unsent_; }
  std::uint64_t number() const noexcept { return number_; }  // 1, 2, ... per server
  void close();
  // A client's end of input (EOF) normally lets the running request finish
  // (a script may shut down its side after sending); a request that never
  // finishes (tail) asks to end on it instead.
  void end_on_eof() noexcept { end_on_eof_ = true; }

  ControlSession(boost::asio::local::stream_protocol::socket socket, ControlServer& server,
                 std::uint64_t number);
  ~ControlSession();

 private:
  friend class ControlServer;
  void read_next();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void write_next();
  void arm_idle();
  void eof_after_write();

  boost::asio::local::stream_protocol::socket socket_;
  boost::asio::steady_timer timer_;
  ControlServer* server_;
  std::uint64_t number_;
  std::string in_;
  std::deque<std::string> out_;
  std::size_t unsent_ = 0;
  bool writing_ = false;
  bool open_ = true;
  bool busy_ = false;  // a request is running (between dispatch and finish)
  bool read_after_write_ = false;
  bool reading_ = false;
  bool eof_ = false;                // the client shut down its side
  bool close_after_write_ = false;  // close once the output is written
  bool end_on_eof_ = false;
  std::array<char, 4096> chunk_{};
  std::function<void()> drained_, closed_;
};

class ControlServer {
 public:
  // The handler gets each request line without its '\n' (not parsed: that
  // is the handler's job, so a bad line gets the handler's own error).
  using Handler = std::function<void(std::shared_ptr<ControlSession>, std::string line)>;
  // Builds the single line sent to a refused connection (too many clients)
  // and to a too-long request line, given "busy" or "malformed" and a text.
  using Refusal = std::function<std::string(const std::string& code, const std::string& text)>;

  ControlServer(boost::asio::io_context& io, ControlSocketOptions options, Handler handler,
                Refusal refusal);
  ~ControlServer();  // stop()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds and accepts. A socket file left by a dead process is replaced; a
  // path another live server answers on is refused (ec = address_in_use),
  // so a second daemon cannot steal the first one's socket.
  std::error_code start();
  // Stops accepting, closes every connection, removes the socket file (only
  // if it is still ours).
  void stop();
  const std::filesystem::path& path() const noexcept { return options_.path; }
  std::size_t sessions() const noexcept { return live_.size(); }
  std::uint64_t accepted() const noexcept { return next_number_ - 1; }

 private:
  friend class ControlSession;
  void accept();
  void closed(ControlSession* s);

  boost::asio::io_context& io_;
  ControlSocketOptions options_;
  Handler handler_;
  Refusal refusal_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  // Open sessions, owned here: a request that answers later holds only a
  // weak_ptr, and a session must outlive its client's end of input.
  std::vector<std::shared_ptr<ControlSession>> live_;
  std::uint64_t next_number_ = 1;
  bool started_ = false;
  std::uint64_t inode_ = 0;  // the socket file we bound, to remove only ours
};

}  // namespace meterd::drivers
