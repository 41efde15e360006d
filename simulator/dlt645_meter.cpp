// The simulated DL/T 645 meter, part 1: construction, the load model, time and
// life events (power, cover, clock, button, relay). Values: dlt645_meter_values.cpp;
// the request/answer function: dlt645_meter_frames.cpp.
#include "simulator/dlt645_meter.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>

#include "protocol/bcd.hpp"
#include "protocol/dlt645/values.hpp"

namespace meterd::simulator {

namespace {

using protocol::Decimal;
using protocol::Event;
using protocol::EventPart;
using protocol::Flow;
using protocol::Measurand;
using protocol::Parameter;

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Deterministic uniform in [0, 1) from a seed and a key.
double unit(std::uint64_t seed, std::uint64_t key) {
  return static_cast<double>(splitmix(seed * 0x100000001B3ull ^ key) >> 11) * 0x1.0p-53;
}

// The state a minute counts with: the last change before the minute's end
// (the meter integrates a minute only once it is over).
template <typename T>
T state_in(const std::vector<std::pair<Millis, T>>& changes, std::int64_t minute, T initial) {
  const Millis end = (minute + 1) * ms_per_minute;
  for (auto it = changes.rbegin(); it != changes.rend(); ++it)
    if (it->first < end) return it->second;
  return initial;
}

constexpr std::int64_t ppm = 1'000'000;

}  // namespace

// ---- construction and time ----------------------------------------------------

Dlt645Meter::Dlt645Meter(Dlt645MeterConfig config, Millis start, AreaFeed area)
    : config_(std::move(config)), start_(start), area_(std::move(area)) {
  config_.tariffs = std::clamp(config_.tariffs, 1u, 63u);
  config_.phases = config_.phases == 1 ? 1 : 3;
  const auto u = [&](std::uint64_t key) { return unit(config_.seed, key); };
  const double scale = config_.phases == 3 ? 3.0 : 1.0;
  base_w_ = (150 + 350 * u(1)) * scale;
  peak_w_ = (800 + 2200 * u(2)) * scale;
  pf_ = 0.90 + 0.09 * u(3);
  if (config_.phases == 3) {
    const double a = 0.30 + 0.06 * u(4), b = 0.30 + 0.06 * u(5);
    phase_share_ = {a, b, 1.0 - a - b};
  } else {
    phase_share_ = {1.0};
  }

  // Past events (before the history walk, so outages show in the energy).
  // A summary meter sits at the transformer: a past outage there would have
  // been the whole area's, so it keeps none and its households' show.
  const unsigned outages = area_.households.empty() ? 1 + static_cast<unsigned>(u(10) * 4) : 0;
  for (unsigned k = 0; k < outages; ++k) {
    const Millis at = start - static_cast<Millis>((1 + 58 * u(20 + k)) * ms_per_day);
    const Millis len = static_cast<Millis>((5 + 175 * u(40 + k)) * ms_per_minute);
    outages_.emplace_back(at, at + len);
  }
  std::sort(outages_.begin(), outages_.end());

  // A year of history: start from seeded registers and walk forward in
  // coarse steps, freezing at the meter's local midnights as it goes.
  registers_.r.assign(config_.tariffs + 1, {});
  const std::array<double, 8> split{0.12, 0.30, 0.33, 0.25, 0, 0, 0, 0};
  const double base_kwh = 2000 + 18000 * u(6);
  for (unsigned t = 1; t <= config_.tariffs; ++t) {
    const double share =
        config_.tariffs >= 4 ? (t <= 4 ? split[t - 1] : 0.0) : 1.0 / config_.tariffs;
    registers_.r[t][imp] = static_cast<std::int64_t>(base_kwh * share * 1e9);
    registers_.r[t][q1] = registers_.r[t][imp] / 4;
    registers_.r[t][app_imp] = registers_.r[t][imp] * 105 / 100;
    registers_.r[t][exp] = static_cast<std::int64_t>(u(7) * 10 * share * 1e9);
  }
  for (unsigned t = 1; t <= config_.tariffs; ++t)
    for (int k = 0; k < kinds; ++k) registers_.r[0][k] += registers_.r[t][k];
  demand_.assign(config_.tariffs + 1, {});

  const Millis history_from = floor_div(start - 366 * ms_per_day, ms_per_hour) * ms_per_hour;
  minute_ = history_from / ms_per_minute;
  const std::int64_t end_minute = floor_div(start, ms_per_minute);
  while (minute_ < end_minute) {
    const Millis at = minute_ * ms_per_minute;
    const std::int64_t step = at < start - 62 * ms_per_day ? 60 : 15;
    const std::int64_t n = std::min<std::int64_t>(step, end_minute - minute_);
    const Millis prev_local = local_time(at);
    if (!config_.static_values) integrate(minute_, n * ms_per_minute, registers_);
    minute_ += n;
    on_local_boundaries(prev_local, local_time(minute_ * ms_per_minute));
  }

  for (const auto& [from, to] : outages_) {
    MeterEvent e;
    e.start = local_time(from);
    e.end = local_time(to);
    record(power_downs_, e, power_down_count_);
  }
  const unsigned adjusts = 1 + static_cast<unsigned>(u(60) * 2);
  for (unsigned k = 0; k < adjusts; ++k) {
    MeterEvent e;
    e.start = local_time(start - static_cast<Millis>((2 + 50 * u(61 + k)) * ms_per_day));
    e.end = e.start + static_cast<Millis>((u(70 + k) - 0.5) * 120'000);
    e.op = {0x01, 0x00, 0x00, 0x00};
    record(time_adjusts_, e, time_adjust_count_);
  }
  if (u(80) < 0.3) {
    MeterEvent e;
    e.start = local_time(start - static_cast<Millis>((3 + 40 * u(81)) * ms_per_day));
    e.end = e.start + 10 * ms_per_minute;
    e.before = e.after = snapshot(start);
    record(cover_opens_, e, cover_open_count_);
  }
  programming_count_ = 1;
}

Millis Dlt645Meter::local_time(Millis now) const noexcept {
  const double drift = config_.drift_ppm * 1e-6 * static_cast<double>(now - start_);
  return now + config_.utc_offset_ms + skew_ms_ + static_cast<Millis>(drift);
}

double Dlt645Meter::noise(std::int64_t key) const {
  return unit(config_.seed, static_cast<std::uint64_t>(key)) * 2.0 - 1.0;
}

std::int64_t Dlt645Meter::load_mw(std::int64_t minute) const {
  const Millis at = minute * ms_per_minute;
  for (const auto& [from, to] : outages_)
    if (at >= from && at < to) return 0;
  if (!area_.households.empty()) {  // a summary meter: Σ households / (1 - loss)
    std::int64_t sum = 0;
    for (const Dlt645Meter* h : area_.households) sum += h->consumed_mw(minute);
    return sum * ppm / (ppm - area_.loss_ppm);
  }
  if (config_.static_values) return static_cast<std::int64_t>(base_w_ * 1000);
  // Real local time (the load does not follow the meter's clock).
  const Millis local = at + config_.utc_offset_ms;
  const double h =
      static_cast<double>(local - floor_div(local, ms_per_day) * ms_per_day) / ms_per_hour;
  const double shape =
      0.25 + 0.6 * std::exp(-(h - 8) * (h - 8) / 2) + std::exp(-(h - 19.5) * (h - 19.5) / 4.5);
  const double w = (base_w_ + peak_w_ * shape) * (1.0 + 0.15 * noise(minute));
  return static_cast<std::int64_t>(w * 1000);
}

std::int64_t Dlt645Meter::consumed_mw(std::int64_t minute) const {
  return state_in(relay_changes_, minute, RelayState::closed) == RelayState::open ? 0
                                                                                  : load_mw(minute);
}

std::int64_t Dlt645Meter::metered_mw(std::int64_t minute) const {
  return consumed_mw(minute) * (ppm - state_in(bypass_changes_, minute, std::int64_t{0})) / ppm;
}

void Dlt645Meter::bypass(Millis now, std::int64_t share_ppm) {
  advance(now);  // the minutes before now keep the share they had
  bypass_changes_.emplace_back(now, std::clamp<std::int64_t>(share_ppm, 0, ppm));
}

std::int64_t Dlt645Meter::bypass_ppm() const noexcept {
  return bypass_changes_.empty() ? 0 : bypass_changes_.back().second;
}

std::optional<std::int64_t> Dlt645Meter::daily_freeze_uwh(Millis now, Millis local_midnight) {
  advance(now);
  for (const auto& f : daily_)
    if (f.local_time == local_midnight) return f.regs.r[0][imp];
  return std::nullopt;
}

// Time-of-use table (SG style): T1 sharp 19-21, T2 peak 08-11 and 17-19 and
// 21-23, T4 valley 23-07, T3 flat otherwise; fewer tariffs fold downwards.
unsigned Dlt645Meter::tariff_at(Millis local) const {
  const int h = civil(local).hour;
  unsigned t = 3;
  if (h >= 19 && h < 21)
    t = 1;
  else if ((h >= 8 && h < 11) || (h >= 17 && h < 19) || (h >= 21 && h < 23))
    t = 2;
  else if (h >= 23 || h < 7)
    t = 4;
  return std::min(t, config_.tariffs);
}

void Dlt645Meter::integrate(std::int64_t minute, Millis span_ms, Registers& regs) {
  const std::int64_t p = metered_mw(minute);
  const double tan_phi = std::tan(std::acos(pf_));
  const std::int64_t de = p * span_ms / 3600;  // mW·ms -> µWh
  const auto dq = static_cast<std::int64_t>(static_cast<double>(de) * tan_phi);
  const auto ds = static_cast<std::int64_t>(static_cast<double>(de) / pf_);
  const unsigned t = tariff_at(local_time(minute * ms_per_minute));
  for (unsigned slot : {0u, t}) {
    regs.r[slot][imp] += de;
    regs.r[slot][q1] += dq;
    regs.r[slot][app_imp] += ds;
  }
  // Demand: 15-minute block averages.
  block_sum_w10_ += p / 100 * (span_ms / ms_per_minute);
  block_minutes_ += static_cast<int>(span_ms / ms_per_minute);
  if (block_minutes_ >= 15) {
    const std::int64_t avg = block_sum_w10_ / block_minutes_;
    const Millis at = local_time((minute + span_ms / ms_per_minute) * ms_per_minute);
    for (unsigned slot : {0u, t})
      if (avg > demand_[slot].max_w10) demand_[slot] = {avg, at};
    block_sum_w10_ = 0;
    block_minutes_ = 0;
  }
}

void Dlt645Meter::on_local_boundaries(Millis prev, Millis next) {
  if (floor_div(prev, ms_per_hour) == floor_div(next, ms_per_hour)) return;
  const Millis hour = floor_div(next, ms_per_hour) * ms_per_hour;
  const auto push = [&](std::deque<Freeze>& list, Millis at, std::size_t depth) {
    list.push_front({at, registers_, demand_});
    if (list.size() > depth) list.pop_back();
  };
  // Hourly freezes hold totals only (0504 items): 254 of them per meter.
  hourly_.push_front({hour, Registers{{registers_.r[0]}}, {}});
  if (hourly_.size() > 254) hourly_.pop_back();
  if (floor_div(prev, ms_per_day) == floor_div(next, ms_per_day)) return;
  const Millis midnight = floor_div(next, ms_per_day) * ms_per_day;
  push(daily_, midnight, 62);
  if (civil(midnight).day == 1) {  // settlement day 1, 00:00 (04000B01 = 0100)
    push(monthly_, midnight, 12);
    demand_.assign(config_.tariffs + 1, {});
  }
}

void Dlt645Meter::advance(Millis now) {
  const std::int64_t target = floor_div(now, ms_per_minute);
  while (minute_ < target) {
    const Millis prev_local = local_time(minute_ * ms_per_minute);
    if (!config_.static_values) integrate(minute_, ms_per_minute, registers_);
    ++minute_;
    on_local_boundaries(prev_local, local_time(minute_ * ms_per_minute));
  }
}

Dlt645Meter::Registers Dlt645Meter::registers_at(Millis now) const {
  Registers regs = registers_;
  if (config_.static_values || relay_ == RelayState::open) return regs;
  const Millis part = now - minute_ * ms_per_minute;
  if (part <= 0) return regs;
  const std::int64_t de = metered_mw(minute_) * part / 3600;
  const unsigned t = tariff_at(local_time(minute_ * ms_per_minute));
  for (unsigned slot : {0u, t}) {
    regs.r[slot][imp] += de;
    regs.r[slot][q1] +=
        static_cast<std::int64_t>(static_cast<double>(de) * std::tan(std::acos(pf_)));
    regs.r[slot][app_imp] += static_cast<std::int64_t>(static_cast<double>(de) / pf_);
  }
  return regs;
}

Dlt645Meter::Instant Dlt645Meter::instant(Millis now) const {
  Instant v;
  const std::int64_t minute = floor_div(now, ms_per_minute);
  const bool live = relay_ == RelayState::closed && powered(now);
  const double p_w = live ? static_cast<double>(metered_mw(minute)) / 1000 : 0.0;
  const double wobble = config_.static_values ? 0.0 : 1.0;
  const double pf = std::clamp(pf_ + 0.01 * wobble * noise(minute * 7 + 3), 0.5, 1.0);
  v.pf[0] = static_cast<std::int64_t>(pf * 1000);
  for (std::size_t l = 1; l <= phase_share_.size(); ++l) {
    const double share = phase_share_[l - 1];
    const double volts = 220.0 + 4.0 * wobble * noise(minute * 7 + static_cast<std::int64_t>(l));
    const double pl = p_w * share;
    v.v_dv[l] = static_cast<std::int64_t>(volts * 10);
    v.p_w10[l] = static_cast<std::int64_t>(pl * 10);
    v.pf[l] = v.pf[0];
    v.s_w10[l] = static_cast<std::int64_t>(pl / pf * 10);
    v.q_w10[l] = static_cast<std::int64_t>(pl * std::tan(std::acos(pf)) * 10);
    v.i_ma[l] = static_cast<std::int64_t>(pl / (volts * pf) * 1000);
    v.p_w10[0] += v.p_w10[l];
    v.q_w10[0] += v.q_w10[l];
    v.s_w10[0] += v.s_w10[l];
  }
  if (phase_share_.size() == 3)
    v.i_ma[0] = std::abs(v.i_ma[1] - v.i_ma[2]) / 3 + std::abs(v.i_ma[2] - v.i_ma[3]) / 3;
  v.f_chz = 5000 + static_cast<std::int64_t>(3 * wobble * noise(minute * 7 + 5));
  v.temp_dc = 250 + static_cast<std::int64_t>(60 * wobble * noise(minute / 30));
  return v;
}

std::array<std::int64_t, 6> Dlt645Meter::snapshot(Millis now) {
  const Registers regs = registers_at(now);
  return {regs.r[0][imp], regs.r[0][exp], regs.r[0][q1],
          regs.r[0][q2],  regs.r[0][q3],  regs.r[0][q4]};
}

void Dlt645Meter::set_relay(Millis now, RelayState state) {
  relay_ = state;
  relay_changes_.emplace_back(now, state);
}

void Dlt645Meter::record(std::deque<MeterEvent>& log, MeterEvent e, unsigned& count) {
  log.push_front(e);
  if (log.size() > 10) log.pop_back();
  ++count;
}

// ---- life events ---------------------------------------------------------------

void Dlt645Meter::power_cycle(Millis now, Millis off) {
  advance(now);
  outages_.emplace_back(now, now + off);
  powered_from_ = now + off;
  MeterEvent e;
  e.start = local_time(now);
  e.end = local_time(now + off);
  record(power_downs_, e, power_down_count_);
}

void Dlt645Meter::open_cover(Millis now, Millis duration) {
  advance(now);
  MeterEvent e;
  e.start = local_time(now);
  e.end = local_time(now + duration);
  e.before = e.after = snapshot(now);
  cover_open_until_ = now + duration;
  record(cover_opens_, e, cover_open_count_);
}

void Dlt645Meter::set_clock(Millis now, Millis meter_local) {
  advance(now);
  MeterEvent e;
  e.start = local_time(now);
  skew_ms_ += meter_local - e.start;
  e.end = local_time(now);
  record(time_adjusts_, e, time_adjust_count_);
}

void Dlt645Meter::press_button(Millis now) {
  if (relay_ == RelayState::open && close_allowed_) {
    advance(now);
    set_relay(now, RelayState::closed);
    close_allowed_ = false;
    MeterEvent e;
    e.start = e.end = local_time(now);
    e.after = snapshot(now);
    record(closes_, e, close_count_);
  }
}

void Dlt645Meter::relay_command(dlt::RelayCommand c, Millis now, const dlt::OperatorCode& op) {
  MeterEvent e;
  e.start = e.end = local_time(now);
  e.op = op;
  e.after = snapshot(now);
  switch (c) {
    case dlt::RelayCommand::trip:
      trip_commanded_ = true;
      close_allowed_ = false;
      if (relay_ == RelayState::closed) {
        set_relay(now, RelayState::open);
        record(trips_, e, trip_count_);
      }
      break;
    case dlt::RelayCommand::close_allowed:
      trip_commanded_ = false;
      close_allowed_ = relay_ == RelayState::open;
      break;
    case dlt::RelayCommand::direct_close:
      trip_commanded_ = false;
      close_allowed_ = false;
      if (relay_ == RelayState::open) {
        set_relay(now, RelayState::closed);
        record(closes_, e, close_count_);
      }
      break;
    case dlt::RelayCommand::alarm:
      alarm_ = true;
      break;
    case dlt::RelayCommand::alarm_release:
      alarm_ = false;
      break;
    case dlt::RelayCommand::keep_power:
      keep_power_ = true;
      trip_commanded_ = false;
      if (relay_ == RelayState::open) {
        set_relay(now, RelayState::closed);
        record(closes_, e, close_count_);
      }
      break;
    case dlt::RelayCommand::keep_power_release:
      keep_power_ = false;
      break;
  }
}

}  // namespace meterd::simulator
