#include "simulator/bus.hpp"

#include <algorithm>

#include <unistd.h>

#include "protocol/modbus_codec/crc.hpp"
#include "protocol/modbus_codec/rtu.hpp"

namespace meterd::simulator {

namespace asio = boost::asio;
namespace dlt = protocol::dlt645;
namespace mb = protocol::modbus;

Millis SimClock::now() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count() + offset_;
}

// ---- faults -----------------------------------------------------------------

nlohmann::json Faults::to_json() const {
  return {{"drop", drop},
          {"corrupt", corrupt},
          {"delay_ms", delay_ms},
          {"noise", noise_bytes},
          {"wrong_address", wrong_address},
          {"truncate", truncate}};
}

std::string Faults::apply(const nlohmann::json& j) {
  if (!j.is_object()) return "faults must be an object";
  for (const auto& [key, v] : j.items()) {
    const auto fraction = [&](double& out) -> std::string {
      if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1)
        return key + ": expected a fraction 0..1";
      out = v.get<double>();
      return {};
    };
    std::string err;
    if (key == "drop")
      err = fraction(drop);
    else if (key == "corrupt")
      err = fraction(corrupt);
    else if (key == "truncate")
      err = fraction(truncate);
    else if (key == "delay_ms") {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 0)
        return key + ": expected milliseconds >= 0";
      delay_ms = v.get<Millis>();
    } else if (key == "noise") {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > 200)
        return key + ": expected 0..200 bytes";
      noise_bytes = v.get<std::size_t>();
    } else if (key == "wrong_address") {
      if (!v.is_boolean()) return key + ": expected true or false";
      wrong_address = v.get<bool>();
    } else {
      return "unknown fault '" + key +
             "' (drop, corrupt, delay_ms, noise, wrong_address, truncate)";
    }
    if (!err.empty()) return err;
  }
  return {};
}

nlohmann::json BusStats::to_json() const {
  return {{"rx_bytes", rx_bytes},   {"tx_bytes", tx_bytes},     {"requests", requests},
          {"answers", answers},     {"dropped", dropped},       {"corrupted", corrupted},
          {"truncated", truncated}, {"collisions", collisions}, {"bad_frames", bad_frames}};
}

// ---- bus ----------------------------------------------------------------------

Bus::Bus(asio::io_context& io, std::string name, drivers::LineSettings line,
         std::filesystem::path link, const SimClock& clock, bool wire_timing, std::uint64_t seed)
    : io_(io),
      name_(std::move(name)),
      line_(line),
      link_(std::move(link)),
      clock_(clock),
      wire_timing_(wire_timing),
      rng_(seed),
      silence_(io),
      tx_timer_(io) {}

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
  dlt_.reset();
  modbus_.clear();
  start_read();
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
  std::error_code ec;
  std::filesystem::remove(link_, ec);
}

Bus::Steady::duration Bus::wire_time(std::size_t bytes) const {
  return std::chrono::microseconds(line_.char_time_us() * bytes);
}

void Bus::start_read() {
  if (!master_) return;
  master_->async_read_some(
      asio::buffer(rx_), [this](const boost::system::error_code& ec, std::size_t n) {
        if (ec == asio::error::operation_aborted || !master_) return;
        if (ec) {  // EIO: no reader on the slave side right now; poll again shortly
          auto t = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(50));
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
  stats_.rx_bytes += n;
  if (!receiving_) {
    request_start_ = Steady::now();
    receiving_ = true;
  }
  const bool any_dlt = std::any_of(seats_.begin(), seats_.end(), [](Seat* s) { return s->dlt; });
  const bool any_modbus =
      std::any_of(seats_.begin(), seats_.end(), [](Seat* s) { return s->modbus; });
  if (any_dlt) {
    dlt_.feed(std::span(data, n));
    while (auto r = dlt_.next()) {
      if (r->status == dlt::DecodeStatus::frame) {
        dispatch_dlt645(r->frame, r->skipped + r->frame_size);
        receiving_ = false;
      } else {
        ++stats_.bad_frames;  // a real meter drops a bad frame silently
      }
    }
  }
  if (any_modbus) {
    modbus_.insert(modbus_.end(), data, data + n);
    for (;;) {
      const auto r = mb::decode_rtu_request(modbus_);
      if (r.status == mb::DecodeStatus::need_more) break;
      if (r.status == mb::DecodeStatus::frame) {
        const mb::Pdu pdu = r.pdu;
        modbus_.erase(modbus_.begin(), modbus_.begin() + static_cast<std::ptrdiff_t>(r.consumed));
        dispatch_modbus(pdu, r.frame_size);
        receiving_ = false;
        continue;
      }
      // Foreign traffic or a bad CRC: hunt byte by byte for the next frame.
      modbus_.erase(modbus_.begin());
    }
    if (modbus_.size() > 512) modbus_.clear();
  }
  arm_silence();
}

void Bus::arm_silence() {
  // Modbus frames end at 3.5 character times of silence (at least 2 ms).
  const auto gap = std::max<Steady::duration>(
      std::chrono::microseconds(line_.char_time_us() * 7 / 2), std::chrono::milliseconds(2));
  silence_.expires_after(gap);
  silence_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    modbus_.clear();
    receiving_ = false;
  });
}

void Bus::dispatch_dlt645(const dlt::Frame& request, std::size_t wire_bytes) {
  ++stats_.requests;
  const Millis now = clock_.now();
  std::vector<std::pair<Seat*, std::vector<std::uint8_t>>> answers;
  unsigned turnaround = 0;
  for (Seat* seat : seats_) {
    if (!seat->dlt || !seat->online || !seat->dlt->accepts(request.address)) continue;
    const auto a = seat->dlt->handle(request, now);
    if (!a) continue;
    answers.emplace_back(seat, dlt::encode(*a, seat->dlt->config().answer_preamble));
    turnaround = std::max(turnaround, seat->dlt->config().turnaround_ms);
  }
  send(std::move(answers), turnaround, wire_bytes);
}

void Bus::dispatch_modbus(const mb::Pdu& request, std::size_t wire_bytes) {
  ++stats_.requests;
  if (request.unit == mb::broadcast_unit) return;
  const Millis now = clock_.now();
  for (Seat* seat : seats_) {
    if (!seat->modbus || !seat->online || seat->modbus->unit() != request.unit) continue;
    const auto a = seat->modbus->handle(request, now);
    if (!a) return;
    send({{seat, mb::encode_rtu(*a)}}, seat->modbus->turnaround_ms(), wire_bytes);
    return;
  }
}

std::vector<std::uint8_t> Bus::with_faults(Seat& seat, std::vector<std::uint8_t> wire, bool is_dlt,
                                           bool& dropped) {
  const Faults& a = seat.faults;
  const Faults& b = faults_;
  std::uniform_real_distribution<double> roll(0.0, 1.0);
  const auto hit = [&](double p, double q) { return roll(rng_) < 1.0 - (1.0 - p) * (1.0 - q); };
  dropped = hit(a.drop, b.drop);
  if (dropped) return {};
  if (a.wrong_address || b.wrong_address) {
    if (is_dlt) {
      const auto r = dlt::decode(wire);
      if (r.status == dlt::DecodeStatus::frame) {
        auto f = r.frame;
        auto w = f.address.wire();
        w[0] = static_cast<std::uint8_t>(w[0] == 0x99 ? 0x00
                                                      : ((w[0] & 0x0F) == 9 ? w[0] + 7 : w[0] + 1));
        f.address = dlt::Address::from_wire(w);
        wire = dlt::encode(f, r.skipped);
      }
    } else if (wire.size() >= 4) {
      wire[0] = static_cast<std::uint8_t>(wire[0] % 247 + 1);
      const auto crc = mb::crc16(std::span(wire).first(wire.size() - 2));
      wire[wire.size() - 2] = static_cast<std::uint8_t>(crc & 0xFF);
      wire[wire.size() - 1] = static_cast<std::uint8_t>(crc >> 8);
    }
  }
  if (hit(a.corrupt, b.corrupt) && wire.size() >= 2) {
    wire[wire.size() - (is_dlt ? 2 : 1)] ^= 0x5A;  // the checksum / CRC byte
    ++stats_.corrupted;
  }
  if (hit(a.truncate, b.truncate) && wire.size() >= 2) {
    std::uniform_int_distribution<std::size_t> keep(1, wire.size() - 1);
    wire.resize(keep(rng_));
    ++stats_.truncated;
  }
  const std::size_t noise = a.noise_bytes + b.noise_bytes;
  if (noise) {
    std::uniform_int_distribution<int> byte(0, 255);
    std::vector<std::uint8_t> n;
    while (n.size() < noise) {
      const auto v = static_cast<std::uint8_t>(byte(rng_));
      if (v != dlt::start_byte) n.push_back(v);
    }
    wire.insert(wire.begin(), n.begin(), n.end());
  }
  return wire;
}

void Bus::send(std::vector<std::pair<Seat*, std::vector<std::uint8_t>>> answers,
               unsigned turnaround_ms, std::size_t request_bytes) {
  if (answers.empty() || !master_) return;
  std::vector<std::uint8_t> wire;
  Millis delay = faults_.delay_ms;
  if (answers.size() > 1) {
    // Several meters talk at once (read-address with more than one meter
    // on the line): the bytes collide into garbage.
    ++stats_.collisions;
    for (const auto& [seat, bytes] : answers) {
      if (bytes.size() > wire.size()) wire.resize(bytes.size(), 0x00);
      for (std::size_t i = 0; i < bytes.size(); ++i) wire[i] |= bytes[i];
    }
  } else {
    auto& [seat, bytes] = answers.front();
    bool dropped = false;
    wire = with_faults(*seat, std::move(bytes), seat->dlt != nullptr, dropped);
    delay += seat->faults.delay_ms;
    if (dropped) {
      ++stats_.dropped;
      return;
    }
  }
  ++stats_.answers;
  const auto now = Steady::now();
  Steady::time_point start = now + std::chrono::milliseconds(delay);
  if (wire_timing_) {
    start = std::max(request_start_ + wire_time(request_bytes) +
                         std::chrono::milliseconds(turnaround_ms + delay),
                     now);
    if (!tx_.empty()) start = std::max(start, tx_.back().due);
  }
  for (std::size_t i = 0; i < wire.size(); ++i)
    tx_.push_back({wire_timing_ ? start + wire_time(i + 1) : start, wire[i]});
  arm_tx();
}

void Bus::arm_tx() {
  if (tx_armed_ || (tx_.empty() && unwritten_.empty())) return;
  tx_armed_ = true;
  tx_timer_.expires_at(unwritten_.empty() ? tx_.front().due
                                          : Steady::now() + std::chrono::milliseconds(5));
  tx_timer_.async_wait([this](const boost::system::error_code& ec) {
    tx_armed_ = false;
    if (!ec) on_tx_timer();
  });
}

void Bus::on_tx_timer() {
  if (!master_) return;
  // Release every byte whose time has come (coalesced within 2 ms, so a
  // fast line does not cost one wake-up per byte).
  const auto horizon = Steady::now() + std::chrono::milliseconds(2);
  while (!tx_.empty() && tx_.front().due <= horizon) {
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

}  // namespace meterd::simulator
