// The simulated DL/T 645 meter, part 2: what it answers for each data item
// (values, history, event records, status words) and its ground truth.
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
using protocol::EventPart;
using protocol::Flow;
using protocol::Measurand;
using protocol::Parameter;

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

}  // namespace meterd::simulator
