// The simulated DL/T 645 meter, part 3: the request/answer function (address,
// control code, password, error answers) for 2007 and 1997.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>

#include "protocol/bcd.hpp"
#include "protocol/dlt645/values.hpp"
#include "simulator/dlt645_meter.hpp"

namespace meterd::simulator {

namespace {

using protocol::Decimal;
using protocol::Event;

}  // namespace

// ---- the request/answer function ---------------------------------------------

bool Dlt645Meter::accepts(const dlt::Address& a) const noexcept {
  return a.is_broadcast() || a.addresses(config_.address);
}

dlt::Frame Dlt645Meter::answer(std::uint8_t control, std::vector<std::uint8_t> data) const {
  return dlt::Frame{config_.address, control, std::move(data)};
}

// DL/T 645-2007 §7.1 error word ERR bits (the 1997 word reads its bits
// differently, see docs/dlt645.md, error words; its handler keeps them as
// the 1997 table gives them).
constexpr std::uint8_t err_other = 0x01;     // other error
constexpr std::uint8_t err_no_data = 0x02;   // no requested data
constexpr std::uint8_t err_password = 0x04;  // password error / not authorised
constexpr std::uint8_t err_baud = 0x08;      // baud rate cannot be changed

// The control code of a normal answer to function `fn` (D7 = 1).
constexpr std::uint8_t answer_to(std::uint8_t fn) noexcept {
  return static_cast<std::uint8_t>(dlt::control::direction_bit | fn);
}

dlt::Frame Dlt645Meter::error(std::uint8_t request_control, std::uint8_t err) const {
  return answer(static_cast<std::uint8_t>(request_control | dlt::control::direction_bit |
                                          dlt::control::abnormal_bit),
                {err});
}

bool Dlt645Meter::password_ok(std::span<const std::uint8_t> p) const {
  for (const auto& pw : {config_.password, config_.password_low})
    if (p[0] == pw.level && std::equal(pw.bytes.begin(), pw.bytes.end(), p.begin() + 1))
      return true;
  return false;
}

std::optional<dlt::Frame> Dlt645Meter::handle(const dlt::Frame& f, Millis now) {
  if (!powered(now) || dlt::control::is_response(f.control) || !accepts(f.address))
    return std::nullopt;
  advance(now);
  auto a = config_.version == dlt::Version::v2007 ? handle_2007(f, now) : handle_1997(f, now);
  if (f.address.is_broadcast()) return std::nullopt;  // slaves never answer a broadcast
  if (a) last_answer_ = a;
  return a;
}

std::optional<dlt::Frame> Dlt645Meter::handle_2007(const dlt::Frame& f, Millis now) {
  const auto fn = dlt::control::function(f.control);
  const auto& d = f.data;
  switch (fn) {
    case dlt::fn2007::broadcast_time: {
      if (d.size() != 6) return std::nullopt;
      const auto t = dlt::decode_datetime(std::span<const std::uint8_t, 6>(d.data(), 6));
      if (!t) return std::nullopt;
      const Millis wanted = from_civil(t->year, t->month, t->day, t->hour, t->minute, t->second);
      const Millis delta = wanted - local_time(now);
      if (std::abs(delta) <= config_.broadcast_time_limit_ms) set_clock(now, wanted);
      return std::nullopt;
    }
    case dlt::fn2007::read: {
      if (d.size() < 4) return error(f.control, err_other);
      const std::uint32_t di = dlt::read_di(dlt::Version::v2007, d);
      const auto item = dlt::lookup(dlt::Version::v2007, di);
      if (!item || d.size() != 4)
        return error(f.control, err_no_data);  // load-profile forms: no data
      const auto values = values_for(*item, now);
      if (!values) return error(f.control, err_no_data);
      const auto payload = dlt::encode_values(*item, *values);
      if (!payload) return error(f.control, err_other);
      std::vector<std::uint8_t> data(d.begin(), d.begin() + 4);
      constexpr std::size_t first = 196, later = 195;
      if (payload->size() <= first) {
        data.insert(data.end(), payload->begin(), payload->end());
        return answer(answer_to(dlt::fn2007::read), std::move(data));
      }
      // Long answer: the first 196 bytes now, the rest by 12H follow-up reads.
      data.insert(data.end(), payload->begin(), payload->begin() + first);
      follow_di_ = di;
      follow_chunks_.clear();
      for (std::size_t at = first; at < payload->size(); at += later)
        follow_chunks_.emplace_back(
            payload->begin() + static_cast<std::ptrdiff_t>(at),
            payload->begin() + static_cast<std::ptrdiff_t>(std::min(at + later, payload->size())));
      return answer(answer_to(dlt::fn2007::read) | dlt::control::follow_up_bit, std::move(data));
    }
    case dlt::fn2007::read_follow_up: {
      if (d.size() != 5) return error(f.control, err_other);
      const std::uint32_t di = dlt::read_di(dlt::Version::v2007, d);
      const std::uint8_t seq = d[4];
      if (di != follow_di_ || seq == 0 || seq > follow_chunks_.size())
        return error(f.control, err_no_data);
      std::vector<std::uint8_t> data(d.begin(), d.begin() + 4);
      const auto& chunk = follow_chunks_[seq - 1];
      data.insert(data.end(), chunk.begin(), chunk.end());
      data.push_back(seq);
      return answer(answer_to(dlt::fn2007::read_follow_up) |
                        (seq < follow_chunks_.size() ? dlt::control::follow_up_bit : 0),
                    std::move(data));
    }
    case dlt::fn2007::read_address:
      if (f.address != dlt::Address::wildcard()) return std::nullopt;
      return answer(answer_to(dlt::fn2007::read_address),
                    {config_.address.wire().begin(), config_.address.wire().end()});
    case dlt::fn2007::write: {
      if (d.size() < 12) return error(f.control, err_other);
      if (!password_ok(std::span(d).subspan(4, 4))) return error(f.control, err_password);
      const std::uint32_t di = dlt::read_di(dlt::Version::v2007, d);
      const auto v = std::span(d).subspan(12);
      const Civil c = civil(local_time(now));
      std::optional<Millis> wanted;
      const auto b = [&](std::size_t i) {
        return static_cast<int>(protocol::bcd::decode_byte(v[i]).value_or(99));
      };
      if (di == 0x04000101 && v.size() == 4)
        wanted = from_civil(2000 + b(3), b(2), b(1), c.hour, c.minute, c.second);
      else if (di == 0x04000102 && v.size() == 3)
        wanted = from_civil(c.year, c.month, c.day, b(2), b(1), b(0));
      else
        return error(f.control, err_other);
      dlt::OperatorCode op{d[8], d[9], d[10], d[11]};
      set_clock(now, *wanted);
      time_adjusts_.front().op = op;
      ++programming_count_;
      return answer(answer_to(dlt::fn2007::write), {});
    }
    case dlt::fn2007::freeze:
      if (d.size() != 4) return error(f.control, err_other);
      if (d[0] == 0x99 && d[1] == 0x99 && d[2] == 0x99 && d[3] == 0x99) {
        instant_freezes_.push_front({local_time(now), registers_at(now), demand_});
        if (instant_freezes_.size() > 3) instant_freezes_.pop_back();
      }
      return answer(answer_to(dlt::fn2007::freeze), {});
    case dlt::fn2007::change_baud:
      return error(f.control, err_baud);
    case dlt::fn2007::demand_reset:
    case dlt::fn2007::meter_clear:
    case dlt::fn2007::event_clear: {
      if (d.size() < 8) return error(f.control, err_other);
      if (!password_ok(std::span(d).first(4))) return error(f.control, err_password);
      if (fn == dlt::fn2007::demand_reset) {
        demand_.assign(config_.tariffs + 1, {});
        ++demand_clear_count_;
      } else if (fn == dlt::fn2007::meter_clear) {
        for (auto& t : registers_.r) t.fill(0);
        ++meter_clear_count_;
      } else {
        power_downs_.clear();
        cover_opens_.clear();
        trips_.clear();
        closes_.clear();
        power_down_count_ = cover_open_count_ = trip_count_ = close_count_ = 0;
        MeterEvent e;
        e.start = local_time(now);
        e.op = {d[4], d[5], d[6], d[7]};
        record(event_clears_, e, event_clear_count_);
      }
      return answer(answer_to(fn), {});
    }
    case dlt::fn2007::relay_control: {
      if (d.size() != 16) return error(f.control, err_other);
      if (!password_ok(std::span(d).first(4))) return error(f.control, err_password);
      const auto cmd = dlt::relay_command_from_byte(d[8]);
      if (!cmd) return error(f.control, err_other);
      const auto until = dlt::decode_datetime(std::span<const std::uint8_t, 6>(d.data() + 10, 6));
      if (!until) return error(f.control, err_other);
      const Millis expiry = from_civil(until->year, until->month, until->day, until->hour,
                                       until->minute, until->second);
      if (expiry < local_time(now)) return error(f.control, err_other);  // expired command
      if (*cmd == dlt::RelayCommand::trip && keep_power_) return error(f.control, err_other);
      relay_command(*cmd, now, {d[4], d[5], d[6], d[7]});
      return answer(answer_to(dlt::fn2007::relay_control), {});
    }
    default:
      return error(f.control, err_other);
  }
}

std::optional<dlt::Frame> Dlt645Meter::handle_1997(const dlt::Frame& f, Millis now) {
  const auto fn = dlt::control::function(f.control);
  const auto& d = f.data;
  switch (fn) {
    case dlt::fn1997::broadcast_time:
      return handle_2007(f, now);  // same layout
    case dlt::fn1997::read: {
      if (d.size() != 2) return error(f.control, 0x01);
      const std::uint32_t di = dlt::read_di(dlt::Version::v1997, d);
      const auto item = dlt::lookup(dlt::Version::v1997, di);
      if (!item) return error(f.control, 0x02);
      const auto values = values_for(*item, now);
      if (!values) return error(f.control, 0x02);
      const auto payload = dlt::encode_values(*item, *values);
      if (!payload) return error(f.control, 0x01);
      std::vector<std::uint8_t> data(d.begin(), d.end());
      data.insert(data.end(), payload->begin(), payload->end());
      return answer(answer_to(dlt::fn1997::read), std::move(data));
    }
    case dlt::fn1997::reread:
      if (last_answer_) return last_answer_;
      return error(f.control, 0x01);
    case dlt::fn1997::write: {
      if (d.size() < 6) return error(f.control, 0x01);
      if (!password_ok(std::span(d).subspan(2, 4))) return error(f.control, 0x04);
      const std::uint32_t di = dlt::read_di(dlt::Version::v1997, d);
      const auto v = std::span(d).subspan(6);
      const Civil c = civil(local_time(now));
      const auto b = [&](std::size_t i) {
        return static_cast<int>(protocol::bcd::decode_byte(v[i]).value_or(99));
      };
      if (di == 0xC010 && v.size() == 4)
        set_clock(now, from_civil(2000 + b(3), b(2), b(1), c.hour, c.minute, c.second));
      else if (di == 0xC011 && v.size() == 3)
        set_clock(now, from_civil(c.year, c.month, c.day, b(2), b(1), b(0)));
      else
        return error(f.control, 0x01);
      return answer(answer_to(dlt::fn1997::write), {});
    }
    default:
      return error(f.control, 0x01);
  }
}

}  // namespace meterd::simulator
