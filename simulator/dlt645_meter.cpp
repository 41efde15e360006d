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

// Truncates toward zero to `decimals` places: a meter shows the digits its
// register has, it does not round up. (protocol::rescale; the model's values
// never overflow int64, so the fallback 0 is never taken.)
Decimal quantize(Decimal d, int decimals) {
  const std::int32_t target = -decimals;
  return {protocol::rescale(d, target, protocol::Rounding::toward_zero).value_or(0), target};
}

std::string time_text(std::string_view format, Millis local) {
  const Civil c = civil(local);
  char buf[32];
  const int yy = c.year % 100;
  if (format == "YYMMDDhhmmss")
    std::snprintf(buf, sizeof buf, "20%02d-%02d-%02dT%02d:%02d:%02d", yy, c.month, c.day, c.hour,
                  c.minute, c.second);
  else if (format == "YYMMDDhhmm")
    std::snprintf(buf, sizeof buf, "20%02d-%02d-%02dT%02d:%02d", yy, c.month, c.day, c.hour,
                  c.minute);
  else if (format == "YYMMDD")
    std::snprintf(buf, sizeof buf, "20%02d-%02d-%02d", yy, c.month, c.day);
  else if (format == "hhmmss")
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", c.hour, c.minute, c.second);
  else if (format == "MMDDhhmm")
    std::snprintf(buf, sizeof buf, "%02d-%02dT%02d:%02d", c.month, c.day, c.hour, c.minute);
  else
    std::snprintf(buf, sizeof buf, "%02dT%02d", c.day, c.hour);
  return buf;
}

// All-zero date/time in a field's text form ("2000-00-00T00:00"): what a
// meter sends for a maximum demand that has not occurred yet.
std::string zero_time(std::string_view format) {
  std::string t = time_text(format, 0);
  for (std::size_t i = format.substr(0, 2) == "YY" ? 2 : 0; i < t.size(); ++i)
    if (t[i] >= '0' && t[i] <= '9') t[i] = '0';
  return t;
}

}  // namespace

// ---- construction and time ----------------------------------------------------

Dlt645Meter::Dlt645Meter(Dlt645MeterConfig config, Millis start)
    : config_(std::move(config)), start_(start) {
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
  const unsigned outages = 1 + static_cast<unsigned>(u(10) * 4);
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
    if (!config_.static_values) integrate(minute_, n * ms_per_minute, registers_, false);
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

void Dlt645Meter::integrate(std::int64_t minute, Millis span_ms, Registers& regs, bool live) {
  const std::int64_t p = relay_ == RelayState::open && live ? 0 : load_mw(minute);
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
    if (!config_.static_values) integrate(minute_, ms_per_minute, registers_, true);
    ++minute_;
    on_local_boundaries(prev_local, local_time(minute_ * ms_per_minute));
  }
}

Dlt645Meter::Registers Dlt645Meter::registers_at(Millis now) const {
  Registers regs = registers_;
  if (config_.static_values || relay_ == RelayState::open) return regs;
  const Millis part = now - minute_ * ms_per_minute;
  if (part <= 0) return regs;
  const std::int64_t de = load_mw(minute_) * part / 3600;
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
  const double p_w = live ? static_cast<double>(load_mw(minute)) / 1000 : 0.0;
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

void Dlt645Meter::record(std::deque<MeterEvent>& log, MeterEvent e, unsigned& count) {
  log.push_front(e);
  if (log.size() > 10) log.pop_back();
  ++count;
}

// ---- values ---------------------------------------------------------------------

std::uint16_t Dlt645Meter::status_word(unsigned n, Millis now) const {
  std::uint16_t w = 0;
  if (n == 3) {
    if (relay_ == RelayState::open) w |= 1u << 4;
    if (trip_commanded_) w |= 1u << 6;
    if (alarm_) w |= 1u << 7;
  }
  if (n == 7 && now < cover_open_until_) w |= 1u << 9;
  return w;
}

bool Dlt645Meter::models(const protocol::QuantityKey& key) noexcept {
  switch (key.measurand) {
    case Measurand::load_profile_record:
    case Measurand::prepaid_remaining_energy:
    case Measurand::prepaid_remaining_money:
      return false;
    case Measurand::event:  // counters of the whole meter and the records it keeps
      return key.phase == 0 && key.part != EventPart::di_n;
    case Measurand::parameter:
      switch (key.parameter) {
        case Parameter::pulse_width:
        case Parameter::zone_switch_time:
        case Parameter::period_switch_time:
        case Parameter::harmonic_order:
        case Parameter::weekend_word:
        case Parameter::weekend_table:
        case Parameter::load_record_mode:
        case Parameter::freeze_mode:
        case Parameter::load_record_start:
        case Parameter::load_record_interval:
        case Parameter::password:
        case Parameter::report_status:
        case Parameter::display_cycle:
        case Parameter::display_duration:
        case Parameter::display_energy_decimals:
        case Parameter::display_power_decimals:
          return false;
        case Parameter::weekday:
        case Parameter::date:
        case Parameter::time:
        case Parameter::demand_period:
        case Parameter::demand_slide:
        case Parameter::zone_count:
        case Parameter::period_table_count:
        case Parameter::period_count:
        case Parameter::tariff_count:
        case Parameter::holiday_count:
        case Parameter::address:
        case Parameter::number:
        case Parameter::asset_number:
        case Parameter::rated_voltage:
        case Parameter::rated_current:
        case Parameter::max_current:
        case Parameter::active_class:
        case Parameter::reactive_class:
        case Parameter::active_constant:
        case Parameter::reactive_constant:
        case Parameter::model:
        case Parameter::production_date:
        case Parameter::protocol_version:
        case Parameter::combination_word:
        case Parameter::baud_word:
        case Parameter::settlement_day:
        case Parameter::software_version:
        case Parameter::hardware_version:
        case Parameter::vendor:
        case Parameter::user_number:
        case Parameter::device_code:
          return true;
      }
      return false;
    case Measurand::energy:
    case Measurand::demand_max:
    case Measurand::voltage:
    case Measurand::current:
    case Measurand::power_active:
    case Measurand::power_reactive:
    case Measurand::power_apparent:
    case Measurand::power_factor:
    case Measurand::angle:
    case Measurand::thd_voltage:
    case Measurand::thd_current:
    case Measurand::harmonic_voltage:
    case Measurand::harmonic_current:
    case Measurand::frequency:
    case Measurand::power_active_average_1min:
    case Measurand::power_active_limit_import:
    case Measurand::power_active_limit_export:
    case Measurand::demand_active_present:
    case Measurand::demand_reactive_present:
    case Measurand::demand_apparent_present:
    case Measurand::temperature_meter:
    case Measurand::battery_clock_voltage:
    case Measurand::battery_reading_voltage:
    case Measurand::battery_working_time:
    case Measurand::freeze_time:
    case Measurand::status_word:
    case Measurand::status_meter:
    case Measurand::status_grid:
    case Measurand::status_weekend:
      return true;
  }
  return false;
}

std::size_t Dlt645Meter::history(dlt::Frozen kind) const noexcept {
  switch (kind) {
    case dlt::Frozen::none:
      return 0;
    case dlt::Frozen::monthly:
      return monthly_.size();
    case dlt::Frozen::daily:
      return daily_.size();
    case dlt::Frozen::hourly:
      return hourly_.size();
    case dlt::Frozen::instant:
      return instant_freezes_.size();
    case dlt::Frozen::timed:
    case dlt::Frozen::switchover:
      return timed_.size();
  }
  return 0;
}

std::size_t Dlt645Meter::records(Event event) const noexcept {
  switch (event) {
    case Event::power_down:
      return power_downs_.size();
    case Event::meter_cover_open:
      return cover_opens_.size();
    case Event::time_adjust:
      return time_adjusts_.size();
    case Event::relay_trip:
      return trips_.size();
    case Event::relay_close:
      return closes_.size();
    case Event::event_clear:
      return event_clears_.size();
    default:  // no record log kept for the others (counts only)
      return 0;
  }
}

std::optional<Dlt645Meter::Data> Dlt645Meter::energy_value(const protocol::QuantityKey& key,
                                                           const dlt::DataItem& item, Millis now) {
  Registers regs;
  switch (item.frozen) {
    case dlt::Frozen::none:
      regs = registers_at(now);
      break;
    case dlt::Frozen::monthly:
    case dlt::Frozen::daily:
    case dlt::Frozen::hourly:
    case dlt::Frozen::timed:
    case dlt::Frozen::instant:
    case dlt::Frozen::switchover: {
      const auto& list = item.frozen == dlt::Frozen::monthly   ? monthly_
                         : item.frozen == dlt::Frozen::daily   ? daily_
                         : item.frozen == dlt::Frozen::hourly  ? hourly_
                         : item.frozen == dlt::Frozen::instant ? instant_freezes_
                                                               : timed_;
      if (item.period == 0 || item.period > list.size()) return std::nullopt;
      regs = list[item.period - 1].regs;
      break;
    }
  }
  const unsigned tariff = key.phase != 0 ? 0 : key.tariff;
  if (tariff > config_.tariffs || tariff >= regs.r.size())
    return std::nullopt;  // (hourly freezes keep totals only)
  const auto& r = regs.r[tariff];
  std::int64_t v = 0;
  switch (key.flow) {
    case Flow::active_import:
      v = r[imp];
      break;
    case Flow::active_export:
      v = r[exp];
      break;
    case Flow::active_combined:
      v = r[imp] + r[exp];
      break;
    case Flow::reactive_import:
      v = r[q1] + r[q2];
      break;
    case Flow::reactive_export:
      v = r[q3] + r[q4];
      break;
    case Flow::reactive_q1:
      v = r[q1];
      break;
    case Flow::reactive_q2:
      v = r[q2];
      break;
    case Flow::reactive_q3:
      v = r[q3];
      break;
    case Flow::reactive_q4:
      v = r[q4];
      break;
    case Flow::apparent_import:
      v = r[app_imp];
      break;
    case Flow::apparent_export:
      v = r[app_exp];
      break;
  }
  if (key.phase != 0) {  // per-phase energy
    if (key.phase > phase_share_.size()) return Data{};
    v = static_cast<std::int64_t>(static_cast<double>(v) * phase_share_[key.phase - 1u]);
  }
  return Data{Decimal{v, -9}};  // µWh -> kWh
}

std::optional<Dlt645Meter::Data> Dlt645Meter::event_value(const protocol::QuantityKey& key,
                                                          unsigned n, Millis now) {
  std::deque<MeterEvent>* log = nullptr;
  const unsigned* count = nullptr;
  switch (key.event) {
    case Event::power_down:
      log = &power_downs_, count = &power_down_count_;
      break;
    case Event::meter_cover_open:
      log = &cover_opens_, count = &cover_open_count_;
      break;
    case Event::time_adjust:
      log = &time_adjusts_, count = &time_adjust_count_;
      break;
    case Event::relay_trip:
      log = &trips_, count = &trip_count_;
      break;
    case Event::relay_close:
      log = &closes_, count = &close_count_;
      break;
    case Event::event_clear:
      log = &event_clears_, count = &event_clear_count_;
      break;
    case Event::programming:
      count = &programming_count_;
      break;
    case Event::meter_clear:
      count = &meter_clear_count_;
      break;
    case Event::demand_clear:
      count = &demand_clear_count_;
      break;
    case Event::voltage_loss:
    case Event::under_voltage:
    case Event::over_voltage:
    case Event::phase_break:
    case Event::current_loss:
    case Event::over_current:
    case Event::current_cut:
    case Event::reverse_flow:
    case Event::overload:
    case Event::voltage_loss_total:
    case Event::aux_supply_loss:
    case Event::voltage_reverse_sequence:
    case Event::current_reverse_sequence:
    case Event::voltage_unbalance:
    case Event::current_unbalance:
    case Event::period_table_program:
    case Event::zone_table_program:
    case Event::weekend_program:
    case Event::holiday_program:
    case Event::active_combination_program:
    case Event::reactive1_combination_program:
    case Event::reactive2_combination_program:
    case Event::settlement_day_program:
    case Event::terminal_cover_open:
      break;  // never happens on this meter: counts 0, no records
  }
  // Per-phase counters (voltage loss on L1, …) are not modelled: ERR 02.
  if (key.phase != 0) return std::nullopt;
  if (key.part == EventPart::count) return Data{Decimal{count ? *count : 0, 0}};
  if (key.part == EventPart::minutes) return Data{Decimal{0, 0}};
  if (!log) {
    // 1997 "last programming / demand-clear time" exists even when zero.
    if (config_.version == dlt::Version::v1997 && key.part == EventPart::time)
      return Data{std::string("00-00T00:00")};
    return std::nullopt;
  }
  if (n == 0 || n > log->size()) return std::nullopt;
  const MeterEvent& e = (*log)[n - 1];
  (void)now;
  // Index of an event's energy snapshot: forward, reverse active, Q1..Q4.
  const auto snapshot = [&](Flow flow) -> std::optional<std::size_t> {
    switch (flow) {
      case Flow::active_import:
        return 0;
      case Flow::active_export:
        return 1;
      case Flow::reactive_q1:
        return 2;
      case Flow::reactive_q2:
        return 3;
      case Flow::reactive_q3:
        return 4;
      case Flow::reactive_q4:
        return 5;
      case Flow::active_combined:
      case Flow::reactive_import:
      case Flow::reactive_export:
      case Flow::apparent_import:
      case Flow::apparent_export:
        return std::nullopt;
    }
    return std::nullopt;
  };
  // Times travel as Decimal milliseconds; value() formats them for the field.
  switch (key.part) {
    case EventPart::start:
    case EventPart::time:
    case EventPart::before:
      return Data{Decimal{e.start, 0}};
    case EventPart::end:
    case EventPart::after:
      return Data{Decimal{e.end, 0}};
    case EventPart::operator_code: {
      std::vector<std::uint8_t> be(e.op.rbegin(), e.op.rend());
      return Data{dlt::to_hex(be)};
    }
    case EventPart::di:
      return Data{std::string("FFFFFFFF")};
    case EventPart::energy_before:
      if (const auto k = snapshot(key.flow)) return Data{Decimal{e.before[*k], -9}};
      return std::nullopt;
    case EventPart::energy:
    case EventPart::energy_after:
      if (const auto k = snapshot(key.flow)) return Data{Decimal{e.after[*k], -9}};
      return std::nullopt;
    case EventPart::count:
    case EventPart::minutes:
    case EventPart::di_n:
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<Dlt645Meter::Data> Dlt645Meter::value(const dlt::DataItem& item,
                                                    const dlt::Field& field, Millis now) {
  const protocol::QuantityKey& key = field.key;
  if (!models(key)) return std::nullopt;  // not in the declared table: ERR 02
  const Millis local = local_time(now);
  auto number = [&](std::int64_t m, std::int32_t e) -> std::optional<Data> {
    return Data{quantize(Decimal{m, e}, field.decimals)};
  };
  // A per-phase array [total, L1, L2, L3]: the total only where the item has
  // one; FF FF for a phase a single-phase meter does not have.
  auto phase_value = [&](const auto& arr, std::int32_t e, bool with_total) -> std::optional<Data> {
    if (key.phase == 0) return with_total ? number(arr[0], e) : std::nullopt;
    if (key.phase > 3) return std::nullopt;
    if (key.phase > phase_share_.size()) return Data{};  // absent phase: FF FF
    return number(arr[key.phase], e);
  };
  auto text = [](const char* s) -> std::optional<Data> { return Data{std::string(s)}; };
  // Instantaneous variables, from the load curve at `now`.
  auto instant_value = [&]() -> std::optional<Data> {
    const Instant v = instant(now);
    switch (key.measurand) {
      case Measurand::voltage:
        return phase_value(v.v_dv, -1, false);
      case Measurand::current:
        if (key.phase == protocol::neutral)
          return phase_share_.size() == 3 ? number(v.i_ma[0], -3) : Data{};
        return phase_value(v.i_ma, -3, false);
      case Measurand::power_active_limit_import:
      case Measurand::power_active_limit_export:
        return number(999999, -4);
      case Measurand::power_active_average_1min:
        return number(v.p_w10[0], -4);
      case Measurand::power_active:
        return phase_value(v.p_w10, -4, true);
      case Measurand::power_reactive:
        return phase_value(v.q_w10, -4, true);
      case Measurand::power_apparent:
        return phase_value(v.s_w10, -4, true);
      case Measurand::power_factor:
        return phase_value(v.pf, -3, true);
      case Measurand::frequency:
        return number(v.f_chz, -2);
      case Measurand::temperature_meter:
        return number(v.temp_dc, -1);
      case Measurand::demand_active_present:
        return number(v.p_w10[0], -4);
      case Measurand::demand_reactive_present:
        return number(v.q_w10[0], -4);
      case Measurand::demand_apparent_present:
        return number(v.s_w10[0], -4);
      case Measurand::angle: {
        std::array<std::int64_t, 4> deg{};
        for (std::size_t l = 1; l <= 3; ++l)
          deg[l] = static_cast<std::int64_t>(std::acos(static_cast<double>(v.pf[l]) / 1000) * 1800 /
                                             std::numbers::pi);
        return phase_value(deg, -1, false);
      }
      case Measurand::thd_voltage:
      case Measurand::thd_current: {
        const std::array<std::int64_t, 4> pct{0, 180, 190, 170};  // 1.80 %, …
        return phase_value(pct, -2, false);
      }
      case Measurand::harmonic_voltage:
      case Measurand::harmonic_current:
        return number(key.index == 1 ? 9999 : 50, -2);  // XX.XX cannot hold 100.00
      default:  // not an instantaneous variable (value() routes only those here)
        return std::nullopt;
    }
  };

  switch (key.measurand) {
    case Measurand::energy: {
      auto v = energy_value(key, item, now);
      if (v && std::holds_alternative<Decimal>(*v))
        return Data{quantize(std::get<Decimal>(*v), field.decimals)};
      return v;
    }
    case Measurand::event: {
      auto v = event_value(key, item.period, now);
      if (!v) return v;
      if (const auto* d = std::get_if<Decimal>(&*v)) {
        if (field.kind == dlt::FieldKind::datetime)
          return Data{time_text(field.format, d->mantissa)};
        return Data{quantize(*d, field.decimals)};
      }
      return v;
    }
    case Measurand::demand_max: {
      if (key.flow != Flow::active_import)  // not tracked by the model: zero, as a fresh meter
        return key.is_time ? Data{zero_time(field.format)}
                           : Data{quantize(Decimal{0, 0}, field.decimals)};
      if (key.tariff > config_.tariffs) return std::nullopt;
      const std::vector<Demand>* list = &demand_;
      if (item.frozen == dlt::Frozen::monthly) {
        if (item.period == 0 || item.period > monthly_.size()) return std::nullopt;
        list = &monthly_[item.period - 1].demand;
      } else if (item.frozen == dlt::Frozen::daily) {
        if (item.period == 0 || item.period > daily_.size()) return std::nullopt;
        list = &daily_[item.period - 1].demand;
      } else if (item.frozen != dlt::Frozen::none) {
        return std::nullopt;
      }
      advance(now);
      const Demand& d = (*list)[key.tariff];
      if (key.is_time)
        return Data{d.at_local == 0 ? zero_time(field.format)
                                    : time_text(field.format, d.at_local)};
      return number(d.max_w10, -4);  // 0.1 W = 0.0001 kW
    }
    case Measurand::freeze_time: {
      const auto& list = item.frozen == dlt::Frozen::daily     ? daily_
                         : item.frozen == dlt::Frozen::hourly  ? hourly_
                         : item.frozen == dlt::Frozen::monthly ? monthly_
                         : item.frozen == dlt::Frozen::instant ? instant_freezes_
                                                               : timed_;
      if (item.period == 0 || item.period > list.size()) return std::nullopt;
      return Data{time_text(field.format, list[item.period - 1].local_time)};
    }
    case Measurand::load_profile_record:
    case Measurand::prepaid_remaining_energy:
    case Measurand::prepaid_remaining_money:
      return std::nullopt;  // not modelled: ERR 02
    case Measurand::voltage:
    case Measurand::current:
    case Measurand::power_active:
    case Measurand::power_reactive:
    case Measurand::power_apparent:
    case Measurand::power_factor:
    case Measurand::angle:
    case Measurand::thd_voltage:
    case Measurand::thd_current:
    case Measurand::harmonic_voltage:
    case Measurand::harmonic_current:
    case Measurand::frequency:
    case Measurand::power_active_average_1min:
    case Measurand::power_active_limit_import:
    case Measurand::power_active_limit_export:
    case Measurand::demand_active_present:
    case Measurand::demand_reactive_present:
    case Measurand::demand_apparent_present:
    case Measurand::temperature_meter:
      return instant_value();
    case Measurand::battery_clock_voltage:
      return number(360, -2);
    case Measurand::battery_reading_voltage:
      return number(600, -2);
    case Measurand::battery_working_time:
      return number((now - start_) / ms_per_minute, 0);
    case Measurand::status_word: {
      char buf[8];
      std::snprintf(buf, sizeof buf, "%04X", status_word(key.index, now));
      return Data{std::string(buf)};
    }
    case Measurand::status_meter:
    case Measurand::status_grid:
    case Measurand::status_weekend:
      return text("00");
    case Measurand::parameter:
      break;
  }

  switch (key.parameter) {
    case Parameter::date:
    case Parameter::time:
      return Data{time_text(field.format, local)};
    case Parameter::weekday:
      return number(civil(local).weekday, 0);
    case Parameter::address:
    case Parameter::number:
    case Parameter::device_code:
      return Data{config_.address.to_string()};
    case Parameter::user_number:
      return text("000000000000");
    case Parameter::tariff_count:
      return number(config_.tariffs, 0);
    case Parameter::active_constant:
    case Parameter::reactive_constant:
      return number(1200, 0);
    case Parameter::settlement_day:  // day 1 at 00:00; the others unset: FF FF
      return key.index == 1 ? text("01T00") : Data{};
    case Parameter::demand_period:
      return number(15, 0);
    case Parameter::demand_slide:
      return number(1, 0);
    case Parameter::zone_count:
    case Parameter::period_table_count:
      return number(1, 0);
    case Parameter::period_count:
      return number(8, 0);
    case Parameter::holiday_count:
      return number(0, 0);
    case Parameter::asset_number:
      return Data{config_.id};
    case Parameter::rated_voltage:
      return text(config_.phases == 3 ? "3x220V" : "220V");
    case Parameter::rated_current:
      return text("5A");
    case Parameter::max_current:
      return text("60A");
    case Parameter::active_class:
      return text("1.0");
    case Parameter::reactive_class:
      return text("2.0");
    case Parameter::model:
      return text(config_.phases == 3 ? "METERSIM-3" : "METERSIM-1");
    case Parameter::production_date:
      return text("2024-01-01");
    case Parameter::protocol_version:
      return text(config_.version == dlt::Version::v2007 ? "DL/T645-2007" : "DL/T645-1997");
    case Parameter::software_version:
      return text("metersim 1");
    case Parameter::hardware_version:
      return text("virtual");
    case Parameter::vendor:
      return text("meterd");
    case Parameter::baud_word:
      return text("08");
    case Parameter::combination_word:
      return text(key.index == 3 ? "50" : "05");
    case Parameter::pulse_width:
    case Parameter::zone_switch_time:
    case Parameter::period_switch_time:
    case Parameter::harmonic_order:
    case Parameter::weekend_word:
    case Parameter::weekend_table:
    case Parameter::load_record_mode:
    case Parameter::freeze_mode:
    case Parameter::load_record_start:
    case Parameter::load_record_interval:
    case Parameter::password:
    case Parameter::report_status:
    case Parameter::display_cycle:
    case Parameter::display_duration:
    case Parameter::display_energy_decimals:
    case Parameter::display_power_decimals:
      break;
  }
  return std::nullopt;  // the meter has no such data: ERR 02
}

std::optional<std::vector<dlt::ValueData>> Dlt645Meter::values_for(const dlt::DataItem& item,
                                                                   Millis now) {
  std::size_t n = item.fields.size();
  if (item.group_size) {
    const std::size_t prefix = item.fields.size() % item.group_size;
    n = std::min(n, prefix + (1 + config_.tariffs) * item.group_size);
  }
  std::vector<Data> out;
  for (std::size_t i = 0; i < n; ++i) {
    auto v = value(item, item.fields[i], now);
    if (!v) return std::nullopt;
    out.push_back(std::move(*v));
  }
  return out;
}

std::optional<std::vector<dlt::Value>> Dlt645Meter::read(std::uint32_t di, Millis now) {
  advance(now);
  const auto item = dlt::lookup(config_.version, di);
  if (!item) return std::nullopt;
  const auto values = values_for(*item, now);
  if (!values) return std::nullopt;
  std::vector<dlt::Value> out;
  for (std::size_t i = 0; i < values->size(); ++i)
    out.push_back({item->fields[i].quantity, item->fields[i].unit, (*values)[i]});
  return out;
}

nlohmann::json Dlt645Meter::truth(Millis now) {
  nlohmann::json values = nlohmann::json::object();
  const bool v7 = config_.version == dlt::Version::v2007;
  const std::vector<std::uint32_t> dis =
      v7 ? std::vector<std::uint32_t>{0x0001FF00, 0x0002FF00, 0x00030000, 0x00040000,
                                      0x0201FF00, 0x0202FF00, 0x0203FF00, 0x0204FF00,
                                      0x0206FF00, 0x02800002, 0x02800007}
         : std::vector<std::uint32_t>{0x901F, 0x902F, 0x9110, 0x9120, 0xB61F,
                                      0xB62F, 0xB63F, 0xB64F, 0xB65F};
  for (const auto di : dis) {
    const auto vs = read(di, now);
    if (!vs) continue;
    for (const auto& v : *vs) {
      if (const auto* d = std::get_if<Decimal>(&v.value))
        values[v.quantity] = protocol::to_string(*d);
      else
        values[v.quantity] = nullptr;
    }
  }
  return {{"meter", config_.id},
          {"protocol", dlt::to_string(config_.version)},
          {"address", config_.address.to_string()},
          {"utc", iso_utc(now)},
          {"meter_time", time_text("YYMMDDhhmmss", local_time(now))},
          {"relay", relay_ == RelayState::closed ? "closed" : "open"},
          {"relay_command", trip_commanded_  ? "trip"
                            : close_allowed_ ? "close-allowed"
                                             : "none"},
          {"alarm", alarm_},
          {"keep_power", keep_power_},
          {"powered", powered(now)},
          {"values", values},
          {"counters",
           {{"power_down", power_down_count_},
            {"meter_cover_open", cover_open_count_},
            {"time_adjust", time_adjust_count_},
            {"relay_trip", trip_count_},
            {"relay_close", close_count_}}}};
}

nlohmann::json Dlt645Meter::events_json() const {
  nlohmann::json out = nlohmann::json::object();
  const auto dump = [&](const char* name, const std::deque<MeterEvent>& log) {
    auto list = nlohmann::json::array();
    for (const auto& e : log)
      list.push_back({{"start", time_text("YYMMDDhhmmss", e.start)},
                      {"end", time_text("YYMMDDhhmmss", e.end)}});
    out[name] = list;
  };
  dump("power_down", power_downs_);
  dump("meter_cover_open", cover_opens_);
  dump("time_adjust", time_adjusts_);
  dump("relay_trip", trips_);
  dump("relay_close", closes_);
  return out;
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
    relay_ = RelayState::closed;
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
        relay_ = RelayState::open;
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
        relay_ = RelayState::closed;
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
        relay_ = RelayState::closed;
        record(closes_, e, close_count_);
      }
      break;
    case dlt::RelayCommand::keep_power_release:
      keep_power_ = false;
      break;
  }
}

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
