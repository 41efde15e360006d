#include "simulator/control.hpp"

#include <stdexcept>

namespace meterd::simulator {

namespace {

std::string refusal(const std::string&, const std::string& text) {
  return nlohmann::json{{"ok", false}, {"error", text}}.dump();
}

}  // namespace

ControlServer::ControlServer(boost::asio::io_context& io, std::filesystem::path path,
                             Handler handler)
    : handler_(std::move(handler)),
      server_(
          io, drivers::ControlSocketOptions{std::move(path), 0660, {}, {}},
          [this](std::shared_ptr<drivers::ControlSession> session, std::string line) {
            nlohmann::json answer;
            try {
              answer = handler_(nlohmann::json::parse(line));
            } catch (const nlohmann::json::exception& e) {
              answer = {{"ok", false}, {"error", std::string("bad JSON: ") + e.what()}};
            }
            session->finish(answer.dump());
          },
          refusal) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::start() {
  if (const auto ec = server_.start())
    throw std::runtime_error("control socket " + server_.path().string() + ": " + ec.message());
}

void ControlServer::stop() { server_.stop(); }

}  // namespace meterd::simulator
