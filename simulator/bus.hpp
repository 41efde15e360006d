// One simulated RS-485 bus: a pseudo-terminal whose slave path (a stable
// symlink) the gateway opens as its serial device, and the meters that
// share it. It behaves as the pair of wires does:
//  - Half duplex. Every frame occupies the wire for its bytes × character
//    time. A request whose bytes overlap an answer still on the wire
//    collides: the rest of the answer is OR-ed with it (two drivers on one
//    pair) and no meter hears the request.
//  - Framing as the meters do it: DL/T 645 by its 68H head (meters hunt
//    for it through noise); Modbus RTU by silence (MODBUS over Serial Line
//    V1.02 §2.5.1.1): a frame is what lies between 3.5-character silences,
//    is heard only if it is exactly one request with a good CRC and no gap
//    over 1.5 characters inside.
//  - Timing: an answer starts no earlier than the request's end on the wire
//    plus the meter's turnaround (drawn per request); no byte reaches the
//    master before it could have crossed the wire, and an answer of up to
//    400 ms (every answer from 9600 baud up) arrives in one write, so no
//    gap opens inside it; longer ones leave a character at a time.
//    Answers of several meters each start at their own turnaround;
//    overlapping bytes are OR-ed.
//  - The slave's line settings (baud, stop bits: all a pty keeps) are
//    compared with the bus's on every request; a mismatch garbles.
//  - Fault switches (faults.hpp) act on the answers; `echo` returns every
//    request to the master as a 2-wire adapter with its receiver on does.
// Runs on the simulator's io_context thread only.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
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
#include "simulator/faults.hpp"
#include "simulator/meter.hpp"

namespace meterd::simulator {

struct BusStats {
  std::uint64_t rx_bytes = 0, tx_bytes = 0, requests = 0, answers = 0, dropped = 0, corrupted = 0,
                truncated = 0, collisions = 0, bad_frames = 0, settings_mismatch = 0, not_heard = 0,
                unsolicited = 0;
  nlohmann::json to_json() const;
};

// Per-request turnaround: drawn in [base, base + base/4] by `u` in [0, 1),
// plus base/2 for block and history reads (the meter gathers more). Pure.
unsigned turnaround_for(unsigned base_ms, bool long_read, double u) noexcept;

// Modbus RTU character timers at a line setting (§2.5.1.1: fixed 750 µs and
// 1750 µs above 19200 baud).
std::chrono::microseconds t15(const drivers::LineSettings& line) noexcept;
std::chrono::microseconds t35(const drivers::LineSettings& line) noexcept;

struct BusOptions {
  bool wire_timing = true;
  bool echo = false;
};

class Bus {
 public:
  Bus(boost::asio::io_context& io, std::string name, drivers::LineSettings line,
      std::filesystem::path link, const SimClock& clock, BusOptions options, std::uint64_t seed);
  ~Bus();

  // Creates the pty and points `link` at its slave side.
  std::error_code open();
  // A USB adapter unplugged: the pty closes and the link disappears.
  void vanish();
  bool vanished() const noexcept { return !master_; }

  void add(std::shared_ptr<Seat> seat) { seats_.push_back(std::move(seat)); }
  const std::vector<std::shared_ptr<Seat>>& seats() const noexcept { return seats_; }

  const std::string& name() const noexcept { return name_; }
  const std::filesystem::path& link() const noexcept { return link_; }
  const drivers::LineSettings& line() const noexcept { return line_; }
  const BusOptions& options() const noexcept { return options_; }
  Faults& faults() noexcept { return faults_; }
  const BusStats& stats() const noexcept { return stats_; }
  // Call after any switch changed (bus or seat): starts or stops the
  // unsolicited-traffic timer.
  void faults_changed();

 private:
  using Steady = std::chrono::steady_clock;
  struct Pending {
    Steady::time_point due;  // when the byte has fully left on the wire (its stop bit)
    std::uint8_t byte;
    Steady::time_point release{};  // when it is written to the pty (>= due)
  };
  struct Answer {
    Seat* seat;
    std::vector<std::uint8_t> wire;
    Framing framing;
    unsigned turnaround_ms;
  };

  void start_read();
  void on_bytes(const std::uint8_t* data, std::size_t n);
  void on_silence();
  bool collide(Steady::time_point from, const std::uint8_t* data, std::size_t n);
  bool settings_match();
  void dispatch_dlt645(const protocol::dlt645::Frame& request);
  void dispatch_modbus(const protocol::modbus::Pdu& request);
  void send(std::vector<Answer> answers);
  void queue(std::vector<Pending> bytes);
  void arm_tx();
  void on_tx_timer();
  void arm_silence();
  void arm_unsolicited();
  Steady::duration char_time() const;

  boost::asio::io_context& io_;
  std::string name_;
  drivers::LineSettings line_;
  std::filesystem::path link_;
  const SimClock& clock_;
  BusOptions options_;
  std::mt19937_64 rng_;

  std::unique_ptr<boost::asio::posix::stream_descriptor> master_;
  drivers::Fd slave_keepalive_;
  std::array<std::uint8_t, 512> rx_{};
  std::vector<std::shared_ptr<Seat>> seats_;
  bool any_dlt_ = false, any_modbus_ = false;
  Faults faults_;
  BusStats stats_;

  // Receiving: one burst of master bytes between silences.
  protocol::dlt645::StreamDecoder dlt_;
  std::vector<std::uint8_t> frame_;  // Modbus: the bytes since the last silence
  bool receiving_ = false;
  bool garbled_ = false;                   // collided with an answer: nobody hears this burst
  bool gap_too_long_ = false;              // a gap over t1.5 inside: not a Modbus frame
  bool dlt_in_burst_ = false;              // a DL/T 645 frame was heard in this burst
  Steady::time_point rx_wire_end_{};       // when the received bytes finish on the wire
  Steady::time_point quiet_from_{};        // end of the frame before this burst
  Steady::time_point last_traffic_end_{};  // end of the last frame on the wire
  Millis quiet_ms_ = ms_per_day;           // silence before the current burst
  boost::asio::steady_timer silence_;

  // Sending.
  std::deque<Pending> tx_;
  boost::asio::steady_timer tx_timer_;
  bool tx_armed_ = false;
  std::vector<std::uint8_t> unwritten_;  // the pty's buffer was full
  boost::asio::steady_timer unsolicited_timer_;
  bool unsolicited_armed_ = false;
};

}  // namespace meterd::simulator
