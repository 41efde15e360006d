#include "simulator/tcp_converter.hpp"

#include "protocol/modbus_codec/tcp.hpp"
#include "simulator/modbus_meter.hpp"

namespace meterd::simulator {

namespace asio = boost::asio;
namespace mb = protocol::modbus;

nlohmann::json TcpStats::to_json() const {
  return {{"requests", requests},      {"answers", answers},
          {"dropped", dropped},        {"corrupted", corrupted},
          {"truncated", truncated},    {"gateway_exceptions", gateway_exceptions},
          {"connections", connections}};
}

struct TcpConverter::Conn : std::enable_shared_from_this<Conn> {
  Conn(asio::ip::tcp::socket s, TcpConverter& c) : sock(std::move(s)), srv(c) {}
  void read() {
    auto self = shared_from_this();
    sock.async_read_some(
        asio::buffer(buf), [self](const boost::system::error_code& ec, std::size_t n) {
          if (ec) return;
          self->in.insert(self->in.end(), self->buf.begin(),
                          self->buf.begin() + static_cast<std::ptrdiff_t>(n));
          for (;;) {
            const auto r = mb::decode_tcp(self->in);
            if (r.status == mb::DecodeStatus::need_more) break;
            if (r.status == mb::DecodeStatus::error) {  // not Modbus/TCP: drop the connection
              self->sock.close();
              return;
            }
            self->in.erase(self->in.begin(),
                           self->in.begin() + static_cast<std::ptrdiff_t>(r.consumed));
            auto [bytes, after] = self->srv.answer(r.header.transaction, r.pdu);
            if (bytes.empty()) continue;
            auto out = std::make_shared<std::vector<std::uint8_t>>(std::move(bytes));
            auto timer = std::make_shared<asio::steady_timer>(self->sock.get_executor(),
                                                              std::chrono::milliseconds(after));
            timer->async_wait([self, timer, out](const boost::system::error_code& e) {
              if (!e) asio::async_write(self->sock, asio::buffer(*out), [self, out](auto, auto) {});
            });
          }
          self->read();
        });
  }
  asio::ip::tcp::socket sock;
  TcpConverter& srv;
  std::array<std::uint8_t, 512> buf{};
  std::vector<std::uint8_t> in;
};

TcpConverter::TcpConverter(asio::io_context& io, std::string name, unsigned port,
                           const SimClock& clock, std::uint64_t seed)
    : name_(std::move(name)), port_(port), acceptor_(io), clock_(clock), rng_(seed) {}

TcpConverter::~TcpConverter() { stop(); }

void TcpConverter::start() {
  const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"),
                                   static_cast<unsigned short>(port_));
  acceptor_.open(ep.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(ep);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  accept();
}

void TcpConverter::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

void TcpConverter::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, asio::ip::tcp::socket s) {
    if (ec) return;
    ++stats_.connections;
    std::make_shared<Conn>(std::move(s), *this)->read();
    accept();
  });
}

std::pair<std::vector<std::uint8_t>, Millis> TcpConverter::answer(std::uint16_t transaction,
                                                                  const mb::Pdu& req) {
  ++stats_.requests;
  const Millis now = clock_.now();
  const auto gateway_failed = [&](Millis after) {
    ++stats_.gateway_exceptions;
    return std::make_pair(
        mb::encode_tcp(mb::response::exception(req.unit, req.function & 0x7F,
                                               mb::Exception::gateway_target_failed),
                       transaction),
        after);
  };
  Seat* seat = nullptr;
  for (const auto& s : seats_)
    if (s->modbus && s->modbus->unit() == req.unit) seat = s.get();
  // No such unit behind this converter, or it is off: its RS-485 side
  // times out and says so.
  if (!seat || !seat->listening(now)) return gateway_failed(0);
  // The converter forwards one request at a time; the unit's silent gap
  // is timed (in simulated time) from the last request it heard.
  Millis& last = last_heard_[req.unit];
  const auto a = seat->modbus->handle(req, now, last ? now - last : ms_per_day);
  if (a) last = now;
  if (!a) return gateway_failed(seat->meter->turnaround_ms());
  // The RS-485 side: the same injector as a bus, on the RTU answer.
  const FaultRoll r = roll(seat->faults, faults_, rng_);
  const Millis after = static_cast<Millis>(seat->meter->turnaround_ms()) + r.delay_ms + r.stall_ms;
  if (r.drop) {
    ++stats_.dropped;
    return {{}, 0};
  }
  // What the converter's RS-485 receiver makes of the answer: a bad CRC
  // (corrupt, corrupt_checksum) or a cut answer fails its check, so the
  // client gets 0BH; a foreign unit id passes (the CRC is good).
  if (r.corrupt || r.corrupt_checksum) ++stats_.corrupted;
  if (r.truncate) ++stats_.truncated;
  if (r.corrupt || r.corrupt_checksum || r.truncate) return gateway_failed(after);
  mb::Pdu out = *a;
  if (r.wrong_address) out.unit = static_cast<std::uint8_t>(out.unit % 247 + 1);
  auto bytes = mb::encode_tcp(out, transaction);
  // Junk before the MBAP header (noise on the Ethernet side of a cheap converter).
  if (r.noise_bytes) {
    const auto n = noise(r.noise_bytes, Framing::modbus_rtu, rng_);
    bytes.insert(bytes.begin(), n.begin(), n.end());
  }
  ++stats_.answers;
  return {bytes, after};
}

}  // namespace meterd::simulator
