#include "firmware/meterctl/client.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <toml++/toml.h>
#include <unistd.h>

#include "firmware/config.hpp"
#include "protocol/exact_json.hpp"

namespace meterd::meterctl {

namespace {

constexpr const char* default_socket = "/run/meterd/meterd.sock";
// A line longer than this is not an answer meterd sends (rows are ~200 bytes, a scan's config
// a few KiB): refuse rather than grow without bound.
constexpr std::size_t max_line = 16 * 1024 * 1024;

// A config the daemon would refuse (the technician is editing it, a reload was refused) still
// names the socket the running daemon uses: read just [gateway] then.
std::optional<std::string> socket_from_toml(const std::string& file) {
  try {
    const toml::table root = toml::parse_file(file);
    if (auto s = root["gateway"]["control_socket"].value<std::string>(); s && !s->empty()) return s;
    if (auto d = root["gateway"]["data_dir"].value<std::string>(); d && !d->empty())
      return *d + "/meterd.sock";
  } catch (const toml::parse_error&) {
  }
  return std::nullopt;
}

}  // namespace

std::string find_socket(const std::string& socket_option, const std::string& config_option) {
  if (!socket_option.empty()) return socket_option;
  if (const char* env = std::getenv("METERD_SOCKET"); env != nullptr && *env != '\0') return env;
  if (!config_option.empty()) {
    const auto loaded = firmware::load_config(config_option);
    if (loaded.config) return loaded.config->gateway.control_socket;
    if (auto s = socket_from_toml(config_option)) return *s;
    const std::string why = loaded.errors.empty() ? "no gateway.control_socket or gateway.data_dir"
                                                  : loaded.errors.front().to_string();
    throw Failure{exit_usage, "--config " + config_option + ": " + why};
  }
  return default_socket;
}

std::optional<std::string_view> raw_member(std::string_view text, std::string_view key) {
  // Skips one JSON value starting at i; returns the index after it (npos if malformed).
  const auto skip_ws = [&](std::size_t i) {
    while (i < text.size() &&
           (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
      ++i;
    return i;
  };
  const auto skip_string = [&](std::size_t i) -> std::size_t {  // text[i] == '"'
    for (++i; i < text.size(); ++i) {
      if (text[i] == '\\') {
        ++i;
      } else if (text[i] == '"') {
        return i + 1;
      }
    }
    return std::string_view::npos;
  };
  const auto skip_value = [&](std::size_t i) -> std::size_t {
    if (i >= text.size()) return std::string_view::npos;
    if (text[i] == '"') return skip_string(i);
    if (text[i] == '{' || text[i] == '[') {
      int depth = 0;
      while (i < text.size()) {
        const char c = text[i];
        if (c == '"') {
          i = skip_string(i);
          if (i == std::string_view::npos) return i;
          continue;
        }
        if (c == '{' || c == '[') ++depth;
        if (c == '}' || c == ']') {
          if (--depth == 0) return i + 1;
        }
        ++i;
      }
      return std::string_view::npos;
    }
    while (i < text.size() && text[i] != ',' && text[i] != '}' && text[i] != ']' &&
           text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n')
      ++i;
    return i;
  };

  std::size_t i = skip_ws(0);
  if (i >= text.size() || text[i] != '{') return std::nullopt;
  i = skip_ws(i + 1);
  while (i < text.size() && text[i] == '"') {
    const std::size_t key_end = skip_string(i);
    if (key_end == std::string_view::npos) return std::nullopt;
    // Keys meterd sends need no escapes; compare the text between the quotes.
    const std::string_view this_key = text.substr(i + 1, key_end - i - 2);
    i = skip_ws(key_end);
    if (i >= text.size() || text[i] != ':') return std::nullopt;
    i = skip_ws(i + 1);
    const std::size_t value_end = skip_value(i);
    if (value_end == std::string_view::npos) return std::nullopt;
    if (this_key == key) return text.substr(i, value_end - i);
    i = skip_ws(value_end);
    if (i < text.size() && text[i] == ',') i = skip_ws(i + 1);
  }
  return std::nullopt;
}

Connection::Connection(std::string socket) : socket_(std::move(socket)) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_.size() >= sizeof addr.sun_path)
    unreachable("the path is longer than " + std::to_string(sizeof addr.sun_path - 1) + " bytes");
  std::memcpy(addr.sun_path, socket_.data(), socket_.size());
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) unreachable(std::strerror(errno));
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    unreachable(std::strerror(e));
  }
}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

void Connection::unreachable(const std::string& reason) const {
  throw Failure{exit_unreachable, "cannot reach meterd at " + socket_ + ": " + reason};
}

void Connection::send(const nlohmann::json& request) {
  const std::string line = request.dump() + "\n";
  std::size_t done = 0;
  while (done < line.size()) {
    // MSG_NOSIGNAL: a daemon that went away is a message, not a SIGPIPE death.
    const ssize_t n = ::send(fd_, line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      unreachable(std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
}

std::optional<AnswerLine> Connection::read_line(
    std::optional<std::chrono::steady_clock::time_point> deadline) {
  for (;;) {
    if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
      AnswerLine line;
      line.raw = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.raw.empty() && line.raw.back() == '\r') line.raw.pop_back();
      line.json = protocol::parse_exact(line.raw);
      if (line.json.is_discarded() || !line.json.is_object()) {
        throw Failure{exit_failed,
                      "meterd sent a line that is not a JSON object: " + line.raw.substr(0, 200)};
      }
      return line;
    }
    if (buffer_.size() > max_line) throw Failure{exit_failed, "meterd sent an endless line"};
    int wait_ms = -1;
    if (deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          *deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        char secs[32];
        std::snprintf(secs, sizeof secs, "%g", static_cast<double>(last_timeout_.count()) / 1000.0);
        unreachable(std::string("no answer within ") + secs + " s (--timeout)");
      }
      wait_ms = static_cast<int>(std::min<std::int64_t>(left.count(), 1 << 30));
    }
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, wait_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      unreachable(std::strerror(errno));
    }
    if (r == 0) continue;  // the deadline check above names it
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      unreachable(std::strerror(errno));
    }
    if (n == 0) {
      if (!buffer_.empty()) unreachable("the connection closed in the middle of a line");
      return std::nullopt;
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

nlohmann::json Connection::request(const nlohmann::json& req, std::chrono::milliseconds timeout,
                                   bool idle,
                                   const std::function<void(const AnswerLine&)>& intermediate,
                                   std::string* raw_result) {
  const std::string verb = req.value("verb", "");
  last_timeout_ = timeout;
  const auto deadline_from_now = [&]() -> std::optional<std::chrono::steady_clock::time_point> {
    if (timeout.count() <= 0) return std::nullopt;
    return std::chrono::steady_clock::now() + timeout;
  };
  send(req);
  auto deadline = deadline_from_now();
  for (;;) {
    auto line = read_line(deadline);
    if (!line) unreachable("the connection closed before the answer was complete");
    if (!line->final()) {
      if (intermediate) intermediate(*line);
      if (idle) deadline = deadline_from_now();
      continue;
    }
    const auto& j = line->json;
    if (j["ok"] == true) {
      if (raw_result) {
        const auto raw = raw_member(line->raw, "result");
        *raw_result = raw ? std::string(*raw) : protocol::dump(j.value("result", nlohmann::json()));
      }
      return j.value("result", nlohmann::json::object());
    }
    const auto error = j.value("error", nlohmann::json::object());
    const std::string code = error.is_object() ? error.value("code", "error") : "error";
    const std::string message = error.is_object() ? error.value("message", "") : "";
    throw Failure{exit_failed, verb + ": " + code + ": " + message};
  }
}

}  // namespace meterd::meterctl
