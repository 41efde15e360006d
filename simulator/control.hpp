// The control channel's transport: a Unix socket speaking JSON lines, one
// request object per line in, one answer object per line out. What the
// commands do is the fleet's business (commands.cpp). Runs on the
// simulator's io_context thread only.
#pragma once

#include <filesystem>
#include <functional>
#include <utility>  // before Asio: Boost 1.74 uses std::exchange without it

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

namespace meterd::simulator {

class ControlServer {
 public:
  using Handler = std::function<nlohmann::json(const nlohmann::json&)>;
  ControlServer(boost::asio::io_context& io, std::filesystem::path path, Handler handler);
  ~ControlServer();

  // Binds (replacing a stale socket file) and accepts. Throws on failure.
  void start();
  // Stops accepting and removes the socket file.
  void stop();
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  struct Conn;
  void accept();

  std::filesystem::path path_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  Handler handler_;
};

}  // namespace meterd::simulator
