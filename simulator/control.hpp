// metersim's control channel: a Unix socket speaking JSON lines, one
// request object per line in, one answer object per line out, served by
// the daemon's own transport (drivers/control_server.hpp). What the
// commands do is the fleet's business (commands.cpp). Runs on the
// simulator's io_context thread only.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>

#include <nlohmann/json.hpp>

#include "drivers/control_server.hpp"

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
  const std::filesystem::path& path() const noexcept { return server_.path(); }

 private:
  Handler handler_;
  drivers::ControlServer server_;
};

}  // namespace meterd::simulator
