#include "simulator/bus.hpp"

#include <algorithm>
#include <map>

#include <termios.h>
#include <unistd.h>

#include "protocol/dlt645/control.hpp"
#include "protocol/modbus_codec/rtu.hpp"
#include "simulator/dlt645_meter.hpp"
#include "simulator/modbus_meter.hpp"

namespace meterd::simulator {

namespace asio = boost::asio;
namespace dlt = protocol::dlt645;
namespace mb = protocol::modbus;
using namespace std::chrono;

namespace {

// A State Grid active report (DL/T 645-2007 with Q/GDW 1645 extensions): a
// read answer with D5 = 1 carrying the active-report status word.
constexpr std::uint8_t active_report_control =
    dlt::control::direction_bit | dlt::control::follow_up_bit | dlt::fn2007::read;
constexpr std::uint32_t di_active_report_status = 0x04001501;

// How long the scheduler may be late before a gap inside a Modbus request
// counts as a t1.5 violation (the simulator's own tolerance, not the
// standard's).
constexpr microseconds gap_slack{500};

// Does a read ask for a block or for history (the meter gathers more)?
bool long_dlt_read(const dlt::Frame& f) {
  if (f.control == dlt::fn2007::read && f.data.size() >= 4) {
    const std::uint32_t di =
        f.data[0] | f.data[1] << 8 | f.data[2] << 16 | static_cast<std::uint32_t>(f.data[3]) << 24;
    for (int k = 0; k < 4; ++k)
      if (((di >> (8 * k)) & 0xFF) == 0xFF) return true;
    const unsigned di3 = di >> 24;
    return di3 == 0x03 || di3 == 0x05 || di3 == 0x06 || (di3 == 0x00 && (di & 0xFF) != 0);
  }
  if (f.control == dlt::fn1997::read && f.data.size() >= 2) {
    const unsigned di = f.data[0] | f.data[1] << 8;
    return (di & 0x000F) == 0x000F || (di & 0x00F0) == 0x00F0;
  }
  return false;
}

unsigned baud_of(speed_t s) {
  static constexpr std::pair<speed_t, unsigned> table[] = {
      {B300, 300},   {B600, 600},     {B1200, 1200},   {B2400, 2400},   {B4800, 4800},
      {B9600, 9600}, {B19200, 19200}, {B38400, 38400}, {B57600, 57600}, {B115200, 115200}};
  for (const auto& [speed, baud] : table)
    if (speed == s) return baud;
  return 0;
}

}  // namespace

unsigned turnaround_for(unsigned base_ms, bool long_read, double u) noexcept {
  return base_ms + static_cast<unsigned>(u * (base_ms / 4 + 1)) + (long_read ? base_ms / 2 : 0);
}

microseconds t15(const drivers::LineSettings& line) noexcept {
  if (line.baud > 19200) return microseconds(750);
  return microseconds(line.char_time_us() * 3 / 2);
}

microseconds t35(const drivers::LineSettings& line) noexcept {
  if (line.baud > 19200) return microseconds(1750);
  return microseconds(line.char_time_us() * 7 / 2);
}

nlohmann::json BusStats::to_json() const {
  return {{"rx_bytes", rx_bytes},     {"tx_bytes", tx_bytes},
          {"requests", requests},     {"answers", answers},
          {"dropped", dropped},       {"corrupted", corrupted},
          {"truncated", truncated},   {"collisions", collisions},
          {"bad_frames", bad_frames}, {"settings_mismatch", settings_mismatch},
          {"not_heard", not_heard},   {"unsolicited", unsolicited}};
}

Bus::Bus(asio::io_context& io, std::string name, drivers::LineSettings line,
         std::filesystem::path link, const SimClock& clock, BusOptions options, std::uint64_t seed)
    : io_(io),
      name_(std::move(name)),
      line_(line),
      link_(std::move(link)),
      clock_(clock),
      options_(options),
      rng_(seed),
      silence_(io),
      tx_timer_(io),
      unsolicited_timer_(io) {}

Bus::~Bus() { vanish(); }

std::error_code Bus::open() {
  std::error_code ec;
  auto pty = drivers::open_pty(line_, ec);
  if (ec) return ec;
  const auto tmp = link_.string() + ".new";
  std::filesystem::remove(tmp, ec);
  std::filesystem::create_symlink(pty.slave_path, tmp, ec);
  if (ec) return ec;
  std::filesystem::rename(tmp, link_, ec);
  if (ec) return ec;
  master_ = std::make_unique<asio::posix::stream_descriptor>(io_, pty.master.release());
  slave_keepalive_ = std::move(pty.slave_keepalive);
  any_dlt_ = std::any_of(seats_.begin(), seats_.end(), [](const auto& s) { return s->dlt; });
  any_modbus_ = std::any_of(seats_.begin(), seats_.end(), [](const auto& s) { return s->modbus; });
  dlt_.reset();
  frame_.clear();
  receiving_ = false;
  start_read();
  faults_changed();
  return {};
}

void Bus::vanish() {
  if (master_) {
    boost::system::error_code ignored;
    master_->cancel(ignored);
    master_->close(ignored);
    master_.reset();
  }
  slave_keepalive_.reset();
  tx_.clear();
  unwritten_.clear();
  tx_timer_.cancel();
  silence_.cancel();
  unsolicited_timer_.cancel();
  std::error_code ec;
  std::filesystem::remove(link_, ec);
}

Bus::Steady::duration Bus::char_time() const { return microseconds(line_.char_time_us()); }

// An answer that lasts at most this long on the wire leaves in one write
// when its last byte is due: no gap opens inside it, however busy the
// machine (per-character writes opened 13-40 ms gaps at 2400 baud on a
// loaded 2-core machine, 7-13 ms at 9600). Its first byte arrives late by
// the answer's duration, which this bound keeps inside a 1 s response
// timeout. Every answer qualifies from 9600 baud up (256 bytes: 293 ms);
// longer ones (slow lines, long DL/T 645 blocks) go out a character at a
// time, each when it is due.
constexpr milliseconds one_write_max{400};

void Bus::start_read() {
  if (!master_) return;
  master_->async_read_some(
      asio::buffer(rx_), [this](const boost::system::error_code& ec, std::size_t n) {
        if (ec == asio::error::operation_aborted || !master_) return;
        if (ec) {  // EIO: no reader on the slave side right now; poll again shortly
          auto t = std::make_shared<asio::steady_timer>(io_, milliseconds(50));
          t->async_wait([this, t](const boost::system::error_code& e) {
            if (!e) start_read();
          });
          return;
        }
        on_bytes(rx_.data(), n);
        start_read();
      });
}

void Bus::on_bytes(const std::uint8_t* data, std::size_t n) {
  const auto now = Steady::now();
  stats_.rx_bytes += n;
  if (options_.echo && master_) {
    // The adapter's own receiver hears the request as it goes out.
    const ssize_t w = ::write(master_->native_handle(), data, n);
    if (w > 0) stats_.tx_bytes += static_cast<std::uint64_t>(w);
  }
  // A silence the timer has not reported yet (a busy machine) still ends the frame.
  if (receiving_ && now >= rx_wire_end_ + t35(line_)) on_silence();
  if (!receiving_) {
    receiving_ = true;
    garbled_ = gap_too_long_ = dlt_in_burst_ = false;
    frame_.clear();
    quiet_ms_ = last_traffic_end_ == Steady::time_point{}
                    ? ms_per_day
                    : duration_cast<milliseconds>(now - last_traffic_end_).count();
    rx_wire_end_ = now;
  } else if (now > rx_wire_end_ + t15(line_) + gap_slack) {
    gap_too_long_ = true;  // MODBUS over Serial Line §2.5.1.1: t1.5 exceeded
  }
  const auto from = std::max(now, rx_wire_end_);
  rx_wire_end_ = from + static_cast<std::int64_t>(n) * char_time();
  last_traffic_end_ = std::max(last_traffic_end_, rx_wire_end_);
  if (options_.wire_timing && collide(from, data, n)) {
    garbled_ = true;
    dlt_.reset();
    frame_.clear();
  }
  if (!garbled_) {
    if (any_dlt_) {
      dlt_.feed(std::span(data, n));
      while (auto r = dlt_.next()) {
        if (r->status == dlt::DecodeStatus::frame) {
          dlt_in_burst_ = true;
          dispatch_dlt645(r->frame);
        } else {
          ++stats_.bad_frames;  // a real meter drops a bad frame silently
        }
      }
    }
    if (any_modbus_ && frame_.size() < 2 * mb::max_rtu_size)
      frame_.insert(frame_.end(), data, data + n);
  }
  arm_silence();
}

bool Bus::collide(Steady::time_point from, const std::uint8_t* data, std::size_t n) {
  const auto c = char_time();
  const auto until = from + static_cast<std::int64_t>(n) * c;
  bool hit = false;
  for (auto& p : tx_) {
    const auto begins = p.due - c;
    if (begins >= until) break;
    if (p.due <= from) continue;
    const auto k =
        std::clamp<std::int64_t>((begins - from) / c, 0, static_cast<std::int64_t>(n) - 1);
    p.byte |= data[k];  // two drivers on one pair: a 0 bit (space) wins
    hit = true;
  }
  if (hit) ++stats_.collisions;
  return hit;
}

void Bus::arm_silence() {
  silence_.expires_at(rx_wire_end_ + t35(line_));
  silence_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) on_silence();
  });
}

void Bus::on_silence() {
  if (!receiving_) return;
  receiving_ = false;
  if (garbled_) {
    dlt_.reset();
  } else if (any_modbus_ && !frame_.empty()) {
    // Heard only if the silence-delimited frame is exactly one request.
    const auto r = mb::decode_rtu_request(frame_, /*complete=*/true);
    if (!gap_too_long_ && r.status == mb::DecodeStatus::frame && r.consumed == frame_.size())
      dispatch_modbus(r.pdu);
    else if (!dlt_in_burst_)
      ++stats_.bad_frames;
  }
  frame_.clear();
}

bool Bus::settings_match() {
  if (!master_) return true;
  termios t{};
  if (::tcgetattr(master_->native_handle(), &t) != 0) return true;
  // A pty keeps only these two: the kernel forces CS8 and clears PARENB.
  const unsigned stop = (t.c_cflag & CSTOPB) ? 2 : 1;
  return baud_of(::cfgetospeed(&t)) == line_.baud && stop == line_.stop_bits;
}

void Bus::dispatch_dlt645(const dlt::Frame& request) {
  ++stats_.requests;
  const Millis now = clock_.now();
  const bool long_read = long_dlt_read(request);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<Answer> answers;
  for (const auto& seat : seats_) {
    if (!seat->dlt || !seat->listening(now) || !seat->dlt->accepts(request.address)) continue;
    const auto a = seat->dlt->handle(request, now);
    if (!a) continue;
    answers.push_back({seat.get(), dlt::encode(*a, seat->dlt->config().answer_preamble),
                       Framing::dlt645,
                       turnaround_for(seat->dlt->turnaround_ms(), long_read, u(rng_))});
  }
  send(std::move(answers));
}

void Bus::dispatch_modbus(const mb::Pdu& request) {
  ++stats_.requests;
  if (request.unit == mb::broadcast_unit) return;
  const Millis now = clock_.now();
  for (const auto& seat : seats_) {
    if (!seat->modbus || seat->modbus->unit() != request.unit) continue;
    if (!seat->listening(now)) return;
    const auto a = seat->modbus->handle(request, now, quiet_ms_);
    if (!a) {
      ++stats_.not_heard;
      return;
    }
    const bool long_read =
        request.data.size() >= 4 && (request.data[2] << 8 | request.data[3]) > 40;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    send({{seat.get(), mb::encode_rtu(*a), Framing::modbus_rtu,
           turnaround_for(seat->modbus->turnaround_ms(), long_read, u(rng_))}});
    return;
  }
}

void Bus::send(std::vector<Answer> answers) {
  if (answers.empty() || !master_) return;
  const bool mismatch = !settings_match();
  if (mismatch) ++stats_.settings_mismatch;
  const auto now = Steady::now();
  const auto c = char_time();
  const auto floor = tx_.empty() ? now : std::max(now, tx_.back().due);
  std::vector<std::vector<Pending>> streams;
  for (auto& a : answers) {
    const FaultRoll r = roll(a.seat->faults, faults_, rng_);
    if (r.drop) {
      ++stats_.dropped;
      continue;
    }
    auto injected = inject(r, std::move(a.wire), a.framing, rng_);
    if (r.corrupt || r.corrupt_checksum) ++stats_.corrupted;
    if (r.truncate) ++stats_.truncated;
    if (r.stray_byte) ++stats_.unsolicited;
    if (mismatch) injected.bytes = scramble(injected.bytes);
    ++stats_.answers;
    const auto delay = milliseconds(r.delay_ms);
    const auto stall = milliseconds(r.stall_ms);
    const auto start = options_.wire_timing
                           ? std::max(rx_wire_end_ + milliseconds(a.turnaround_ms) + delay, floor)
                           : now + delay;
    std::vector<Pending> s;
    for (std::size_t k = 0; k < injected.bytes.size(); ++k) {
      Steady::time_point due = start;
      if (options_.wire_timing) due += static_cast<std::int64_t>(k + 1) * c;
      if (injected.stall_at && k >= injected.stall_at) due += stall;
      s.push_back({due, injected.bytes[k]});
    }
    streams.push_back(std::move(s));
  }
  if (streams.empty()) return;
  if (streams.size() == 1) return queue(std::move(streams.front()));
  // Several meters answer one request (wildcard, read-address): each
  // starts at its own turnaround; bytes that overlap on the wire OR.
  std::map<std::int64_t, std::pair<std::uint8_t, int>> slots;
  std::vector<Pending> merged;
  if (!options_.wire_timing) {
    for (const auto& s : streams)
      for (std::size_t k = 0; k < s.size(); ++k) {
        auto& [byte, count] = slots[static_cast<std::int64_t>(k)];
        byte |= s[k].byte;
        ++count;
      }
    for (const auto& [k, v] : slots) merged.push_back({now, v.first});
    ++stats_.collisions;
    return queue(std::move(merged));
  }
  auto base = streams.front().front().due;
  for (const auto& s : streams) base = std::min(base, s.front().due);
  for (const auto& s : streams)
    for (const auto& p : s) {
      auto& [byte, count] = slots[(p.due - base) / c];
      byte |= p.byte;
      ++count;
    }
  bool overlap = false;
  for (const auto& [slot, v] : slots) {
    merged.push_back({base + slot * c, v.first});
    overlap = overlap || v.second > 1;
  }
  if (overlap) ++stats_.collisions;
  queue(std::move(merged));
}

void Bus::queue(std::vector<Pending> bytes) {
  if (bytes.empty()) return;
  // Each run of back-to-back characters (a stall or a gap between two
  // meters' answers ends a run) short enough leaves in one write, at its end.
  const auto c = char_time();
  std::size_t run = 0;
  for (std::size_t k = 1; k <= bytes.size(); ++k) {
    if (k < bytes.size() && bytes[k].due - bytes[k - 1].due <= c + c / 2) continue;
    const bool one_write = bytes[k - 1].due - bytes[run].due + c <= one_write_max;
    for (std::size_t j = run; j < k; ++j)
      bytes[j].release = one_write ? bytes[k - 1].due : bytes[j].due;
    run = k;
  }
  for (const auto& p : bytes) tx_.push_back(p);
  last_traffic_end_ = std::max(last_traffic_end_, tx_.back().due);
  arm_tx();
}

void Bus::arm_tx() {
  if (tx_armed_ || (tx_.empty() && unwritten_.empty())) return;
  tx_armed_ = true;
  tx_timer_.expires_at(unwritten_.empty() ? tx_.front().release : Steady::now() + milliseconds(5));
  tx_timer_.async_wait([this](const boost::system::error_code& ec) {
    tx_armed_ = false;
    if (!ec) on_tx_timer();
  });
}

void Bus::on_tx_timer() {
  if (!master_) return;
  // Every byte whose time has come, never one early: a master must not see
  // the end of an answer before it could have crossed the wire.
  const auto now = Steady::now();
  while (!tx_.empty() && tx_.front().release <= now) {
    unwritten_.push_back(tx_.front().byte);
    tx_.pop_front();
  }
  if (!unwritten_.empty()) {
    const ssize_t w = ::write(master_->native_handle(), unwritten_.data(), unwritten_.size());
    if (w > 0) {
      stats_.tx_bytes += static_cast<std::uint64_t>(w);
      unwritten_.erase(unwritten_.begin(), unwritten_.begin() + w);
    }
  }
  arm_tx();
}

// ---- unsolicited traffic ----------------------------------------------------------

void Bus::faults_changed() {
  if (!unsolicited_armed_) arm_unsolicited();
}

void Bus::arm_unsolicited() {
  const bool wanted = master_ && (faults_.unsolicited > 0 ||
                                  std::any_of(seats_.begin(), seats_.end(), [](const auto& s) {
                                    return s->dlt && s->faults.unsolicited > 0;
                                  }));
  if (!wanted) return;
  unsolicited_armed_ = true;
  unsolicited_timer_.expires_after(seconds(1));
  unsolicited_timer_.async_wait([this](const boost::system::error_code& ec) {
    unsolicited_armed_ = false;
    if (ec || !master_) return;
    // Once a second each 2007 meter rolls its `unsolicited` chance of an
    // active report (State Grid: an answer frame with D5 = 1 carrying the
    // active-report status word 04001501), sent only on an idle line.
    const Millis now = clock_.now();
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (const auto& s : seats_) {
      if (!s->dlt || s->dlt->config().version != dlt::Version::v2007 || !s->listening(now))
        continue;
      const double p = 1.0 - (1.0 - s->faults.unsolicited) * (1.0 - faults_.unsolicited);
      if (u(rng_) >= p || receiving_ || !tx_.empty()) continue;
      dlt::Frame f{s->dlt->config().address, active_report_control, {}};
      for (int k = 0; k < 4; ++k)
        f.data.push_back(static_cast<std::uint8_t>(di_active_report_status >> (8 * k)));
      for (int k = 0; k < 12; ++k) f.data.push_back(k == 0 ? 0x01 : 0x00);  // bit 0: report
      const auto wire = dlt::encode(f, s->dlt->config().answer_preamble);
      std::vector<Pending> bytes;
      const auto start = Steady::now();
      for (std::size_t k = 0; k < wire.size(); ++k)
        bytes.push_back(
            {options_.wire_timing ? start + static_cast<std::int64_t>(k + 1) * char_time() : start,
             wire[k]});
      ++stats_.unsolicited;
      queue(std::move(bytes));
    }
    arm_unsolicited();
  });
}

}  // namespace meterd::simulator
