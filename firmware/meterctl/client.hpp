// meterctl's side of the control socket (docs/control.md): finding the socket, one JSON-lines
// connection, and the lines of one request's answer.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace meterd::meterctl {

// Exit codes (docs/control.md "Exit codes of meterctl").
inline constexpr int exit_failed = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_unreachable = 3;

// What ends a verb early: main prints "meterctl: <message>" on stderr and exits with `code`.
struct Failure {
  int code = exit_failed;
  std::string message;
};

// --socket, else $METERD_SOCKET, else --config's gateway.control_socket (whose default is
// <data_dir>/meterd.sock), else /run/meterd/meterd.sock. Throws Failure (usage) when the config
// cannot be read at all.
std::string find_socket(const std::string& socket_option, const std::string& config_option);

// The text of a top-level member of a JSON object line, exactly as sent (nullopt if absent).
// --json passes results on with it, so not even the key order changes.
std::optional<std::string_view> raw_member(std::string_view object, std::string_view key);

// One line of an answer, parsed with protocol::parse_exact (numbers keep their digits).
struct AnswerLine {
  std::string raw;
  nlohmann::json json;
  bool final() const { return json.contains("ok"); }
};

class Connection {
 public:
  // Connects; Failure{exit_unreachable, "cannot reach meterd at <socket>: <reason>"} if not.
  explicit Connection(std::string socket);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& socket() const noexcept { return socket_; }

  void send(const nlohmann::json& request);
  // The next line; nullopt when the daemon closed the connection. Waits until `deadline` at
  // most (none: for ever), then Failure{exit_unreachable, ... "no answer within N s"}.
  std::optional<AnswerLine> read_line(
      std::optional<std::chrono::steady_clock::time_point> deadline);

  // Sends `request` and reads its answer: every intermediate line goes to `intermediate`, the
  // final line's result is returned (its raw text through `raw_result` when asked). An error
  // answer throws Failure{exit_failed, "<verb>: <code>: <message>"}. `timeout`: how long to wait
  // for the whole answer, or (idle = true, for streaming verbs) for each line; zero: for ever.
  nlohmann::json request(const nlohmann::json& request, std::chrono::milliseconds timeout,
                         bool idle, const std::function<void(const AnswerLine&)>& intermediate,
                         std::string* raw_result = nullptr);

 private:
  [[noreturn]] void unreachable(const std::string& reason) const;
  std::string socket_;
  std::chrono::milliseconds last_timeout_{0};
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace meterd::meterctl
