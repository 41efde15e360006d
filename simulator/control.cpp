#include "simulator/control.hpp"

namespace meterd::simulator {

namespace asio = boost::asio;

struct ControlServer::Conn : std::enable_shared_from_this<Conn> {
  Conn(asio::local::stream_protocol::socket s, Handler& h) : sock(std::move(s)), handler(h) {}
  void read() {
    auto self = shared_from_this();
    asio::async_read_until(
        sock, asio::dynamic_buffer(in, 1 << 20), '\n',
        [self](const boost::system::error_code& ec, std::size_t n) {
          if (ec) return;
          const std::string line = self->in.substr(0, n);
          self->in.erase(0, n);
          nlohmann::json answer;
          try {
            answer = self->handler(nlohmann::json::parse(line));
          } catch (const nlohmann::json::exception& e) {
            answer = {{"ok", false}, {"error", std::string("bad JSON: ") + e.what()}};
          }
          auto out = std::make_shared<std::string>(answer.dump() + "\n");
          asio::async_write(self->sock, asio::buffer(*out),
                            [self, out](const boost::system::error_code& e, std::size_t) {
                              if (!e) self->read();
                            });
        });
  }
  asio::local::stream_protocol::socket sock;
  Handler& handler;
  std::string in;
};

ControlServer::ControlServer(asio::io_context& io, std::filesystem::path path, Handler handler)
    : path_(std::move(path)), acceptor_(io), handler_(std::move(handler)) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::start() {
  std::error_code ec;
  std::filesystem::remove(path_, ec);
  acceptor_.open();
  acceptor_.bind(asio::local::stream_protocol::endpoint(path_.string()));
  acceptor_.listen();
  accept();
}

void ControlServer::stop() {
  if (!acceptor_.is_open()) return;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

void ControlServer::accept() {
  acceptor_.async_accept(
      [this](const boost::system::error_code& ec, asio::local::stream_protocol::socket s) {
        if (ec) return;
        std::make_shared<Conn>(std::move(s), handler_)->read();
        accept();
      });
}

}  // namespace meterd::simulator
