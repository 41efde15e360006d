// A Modbus TCP converter (an RS-485-to-Ethernet gateway) on a loopback
// port: Modbus/TCP in, its units' answers out. Its RS-485 side goes
// through the same fault injector as a bus: an answer that arrives there
// corrupted, from a silent unit or from none fails the converter's check,
// and the client gets exception 0BH (gateway target failed to respond).
// Runs on the simulator's io_context thread only.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>  // before Asio: Boost 1.74 uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "protocol/modbus_codec/pdu.hpp"
#include "simulator/clock.hpp"
#include "simulator/faults.hpp"
#include "simulator/meter.hpp"

namespace meterd::simulator {

struct TcpStats {
  std::uint64_t requests = 0, answers = 0, dropped = 0, corrupted = 0, truncated = 0,
                gateway_exceptions = 0, connections = 0;
  nlohmann::json to_json() const;
};

class TcpConverter {
 public:
  TcpConverter(boost::asio::io_context& io, std::string name, unsigned port, const SimClock& clock,
               std::uint64_t seed);
  ~TcpConverter();

  // Listens on 127.0.0.1:port (0: a free port, see port()). Throws on failure.
  void start();
  void stop();

  void add(std::shared_ptr<Seat> seat) { seats_.push_back(std::move(seat)); }
  const std::vector<std::shared_ptr<Seat>>& seats() const noexcept { return seats_; }
  const std::string& name() const noexcept { return name_; }
  unsigned port() const noexcept { return port_; }
  Faults& faults() noexcept { return faults_; }
  const TcpStats& stats() const noexcept { return stats_; }

 private:
  struct Conn;
  void accept();
  // The bytes to send back for one request (empty: nothing, a dropped answer),
  // and how long the RS-485 side took.
  std::pair<std::vector<std::uint8_t>, Millis> answer(std::uint16_t transaction,
                                                      const protocol::modbus::Pdu& request);

  std::string name_;
  unsigned port_;
  boost::asio::ip::tcp::acceptor acceptor_;
  const SimClock& clock_;
  std::mt19937_64 rng_;
  std::vector<std::shared_ptr<Seat>> seats_;
  Faults faults_;  // converter-wide switches
  TcpStats stats_;
  std::map<std::uint8_t, Millis> last_heard_;  // per unit, simulated time
};

}  // namespace meterd::simulator
