// One simulated RS-485 bus: a pseudo-terminal whose slave path (a stable
// symlink) the gateway opens as its serial device, and the meters that
// share it. The bus frames what the master sends (DL/T 645 by its 68H
// header, Modbus RTU by its length and silence), lets every addressed
// meter answer, and puts the answers on the wire no earlier than the
// wire itself would allow: the request's own transmission time at this
// baud rate, then the meter's turnaround, then the answer at line rate.
// Fault switches act on the answers. Runs on the simulator's io_context
// thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>  // before Asio: Boost 1.74 uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "drivers/serial_port.hpp"
#include "protocol/dlt645/frame.hpp"
#include "protocol/modbus_codec/pdu.hpp"
#include "simulator/clock.hpp"
#include "simulator/dlt645_meter.hpp"

namespace meterd::simulator {

// The simulated time source: wall clock plus an offset that `advance` grows.
class SimClock {
 public:
  Millis now() const;
  void advance(Millis ms) noexcept { offset_ += ms; }
  Millis offset() const noexcept { return offset_; }

 private:
  Millis offset_ = 0;
};

struct Faults {
  double drop = 0;              // fraction of answers never sent
  double corrupt = 0;           // fraction sent with a bad checksum / CRC
  Millis delay_ms = 0;          // extra delay before answering (beyond a timeout)
  std::size_t noise_bytes = 0;  // line noise put on the wire before each answer
  bool wrong_address = false;   // answer carries a foreign address / unit id
  double truncate = 0;          // fraction of answers cut short

  nlohmann::json to_json() const;
  // Applies the keys present in `j`; returns an error text for a bad key/value.
  std::string apply(const nlohmann::json& j);
};

// A Modbus slave model on a bus or behind a TCP port.
class ModbusSlave {
 public:
  virtual ~ModbusSlave() = default;
  virtual std::uint8_t unit() const = 0;
  virtual unsigned turnaround_ms() const = 0;
  // The answer PDU to a request for this unit at `now`, or nullopt for silence.
  virtual std::optional<protocol::modbus::Pdu> handle(const protocol::modbus::Pdu& request,
                                                      Millis now) = 0;
};

// A meter's seat on a bus: its model and its own switches.
struct Seat {
  std::string id;
  Dlt645Meter* dlt = nullptr;
  ModbusSlave* modbus = nullptr;
  bool online = true;
  Faults faults;
};

struct BusStats {
  std::uint64_t rx_bytes = 0, tx_bytes = 0, requests = 0, answers = 0, dropped = 0, corrupted = 0,
                truncated = 0, collisions = 0, bad_frames = 0;
  nlohmann::json to_json() const;
};

class Bus {
 public:
  Bus(boost::asio::io_context& io, std::string name, drivers::LineSettings line,
      std::filesystem::path link, const SimClock& clock, bool wire_timing, std::uint64_t seed);
  ~Bus();

  // Creates the pty and points `link` at its slave side.
  std::error_code open();
  // A USB adapter unplugged: the pty closes and the link disappears.
  void vanish();
  bool vanished() const noexcept { return !master_; }

  void add(Seat* seat) { seats_.push_back(seat); }
  const std::vector<Seat*>& seats() const noexcept { return seats_; }

  const std::string& name() const noexcept { return name_; }
  const std::filesystem::path& link() const noexcept { return link_; }
  const drivers::LineSettings& line() const noexcept { return line_; }
  Faults& faults() noexcept { return faults_; }
  const BusStats& stats() const noexcept { return stats_; }

 private:
  using Steady = std::chrono::steady_clock;

  void start_read();
  void on_bytes(const std::uint8_t* data, std::size_t n);
  void dispatch_dlt645(const protocol::dlt645::Frame& request, std::size_t wire_bytes);
  void dispatch_modbus(const protocol::modbus::Pdu& request, std::size_t wire_bytes);
  // Queues answers to one request: several answers at once collide.
  void send(std::vector<std::pair<Seat*, std::vector<std::uint8_t>>> answers,
            unsigned turnaround_ms, std::size_t request_bytes);
  std::vector<std::uint8_t> with_faults(Seat& seat, std::vector<std::uint8_t> wire, bool dlt645,
                                        bool& dropped);
  void arm_tx();
  void on_tx_timer();
  void arm_silence();
  Steady::duration wire_time(std::size_t bytes) const;

  boost::asio::io_context& io_;
  std::string name_;
  drivers::LineSettings line_;
  std::filesystem::path link_;
  const SimClock& clock_;
  bool wire_timing_;
  std::mt19937_64 rng_;

  std::unique_ptr<boost::asio::posix::stream_descriptor> master_;
  drivers::Fd slave_keepalive_;
  std::array<std::uint8_t, 512> rx_{};
  std::vector<Seat*> seats_;
  Faults faults_;
  BusStats stats_;

  protocol::dlt645::StreamDecoder dlt_;
  std::size_t dlt_bytes_ = 0;  // bytes seen since the last DL/T 645 frame (incl. FE)
  std::vector<std::uint8_t> modbus_;
  Steady::time_point request_start_{};
  bool receiving_ = false;
  boost::asio::steady_timer silence_;

  struct Pending {
    Steady::time_point due;
    std::uint8_t byte;
  };
  std::deque<Pending> tx_;
  boost::asio::steady_timer tx_timer_;
  bool tx_armed_ = false;
  std::vector<std::uint8_t> unwritten_;  // the pty's buffer was full
};

}  // namespace meterd::simulator
