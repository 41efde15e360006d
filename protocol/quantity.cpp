#include "protocol/quantity.hpp"

#include <cstdio>

namespace meterd::protocol {

namespace {

std::string phase_suffix(std::uint8_t phase) {
  if (phase == neutral) return ".n";
  return phase == 0 ? ".total" : ".l" + std::to_string(phase);
}

const char* event_name(Event e) {
  switch (e) {
    case Event::voltage_loss:
      return "voltage_loss";
    case Event::under_voltage:
      return "under_voltage";
    case Event::over_voltage:
      return "over_voltage";
    case Event::phase_break:
      return "phase_break";
    case Event::current_loss:
      return "current_loss";
    case Event::over_current:
      return "over_current";
    case Event::current_cut:
      return "current_cut";
    case Event::reverse_flow:
      return "reverse_flow";
    case Event::overload:
      return "overload";
    case Event::voltage_loss_total:
      return "voltage_loss_total";
    case Event::aux_supply_loss:
      return "aux_supply_loss";
    case Event::voltage_reverse_sequence:
      return "voltage_reverse_sequence";
    case Event::current_reverse_sequence:
      return "current_reverse_sequence";
    case Event::voltage_unbalance:
      return "voltage_unbalance";
    case Event::current_unbalance:
      return "current_unbalance";
    case Event::power_down:
      return "power_down";
    case Event::programming:
      return "programming";
    case Event::meter_clear:
      return "meter_clear";
    case Event::demand_clear:
      return "demand_clear";
    case Event::event_clear:
      return "event_clear";
    case Event::time_adjust:
      return "time_adjust";
    case Event::period_table_program:
      return "period_table_program";
    case Event::zone_table_program:
      return "zone_table_program";
    case Event::weekend_program:
      return "weekend_program";
    case Event::holiday_program:
      return "holiday_program";
    case Event::active_combination_program:
      return "active_combination_program";
    case Event::reactive1_combination_program:
      return "reactive1_combination_program";
    case Event::reactive2_combination_program:
      return "reactive2_combination_program";
    case Event::settlement_day_program:
      return "settlement_day_program";
    case Event::meter_cover_open:
      return "meter_cover_open";
    case Event::terminal_cover_open:
      return "terminal_cover_open";
    case Event::relay_trip:
      return "relay_trip";
    case Event::relay_close:
      return "relay_close";
  }
  return "unknown";
}

std::string event_part(const QuantityKey& k) {
  const std::string energy = std::string("energy.") + to_string(k.flow) + ".total";
  switch (k.part) {
    case EventPart::count:
      return "count";
    case EventPart::minutes:
      return "minutes";
    case EventPart::start:
      return "start";
    case EventPart::end:
      return "end";
    case EventPart::time:
      return "time";
    case EventPart::before:
      return "before";
    case EventPart::after:
      return "after";
    case EventPart::operator_code:
      return "operator";
    case EventPart::di:
      return "di";
    case EventPart::di_n:
      return "di" + std::to_string(k.index);
    case EventPart::energy:
      return energy;
    case EventPart::energy_before:
      return "before." + energy;
    case EventPart::energy_after:
      return "after." + energy;
  }
  return "unknown";
}

std::string parameter_name(const QuantityKey& k) {
  const std::string n = std::to_string(k.index);
  switch (k.parameter) {
    case Parameter::weekday:
      return "weekday";
    case Parameter::date:
      return "date";
    case Parameter::time:
      return "time";
    case Parameter::demand_period:
      return "demand_period";
    case Parameter::demand_slide:
      return "demand_slide";
    case Parameter::pulse_width:
      return "pulse_width";
    case Parameter::zone_switch_time:
      return "zone_switch_time";
    case Parameter::period_switch_time:
      return "period_switch_time";
    case Parameter::zone_count:
      return "zone_count";
    case Parameter::period_table_count:
      return "period_table_count";
    case Parameter::period_count:
      return "period_count";
    case Parameter::tariff_count:
      return "tariff_count";
    case Parameter::holiday_count:
      return "holiday_count";
    case Parameter::harmonic_order:
      return "harmonic_order";
    case Parameter::address:
      return "address";
    case Parameter::number:
      return "number";
    case Parameter::asset_number:
      return "asset_number";
    case Parameter::rated_voltage:
      return "rated_voltage";
    case Parameter::rated_current:
      return "rated_current";
    case Parameter::max_current:
      return "max_current";
    case Parameter::active_class:
      return "active_class";
    case Parameter::reactive_class:
      return "reactive_class";
    case Parameter::active_constant:
      return "active_constant";
    case Parameter::reactive_constant:
      return "reactive_constant";
    case Parameter::model:
      return "model";
    case Parameter::production_date:
      return "production_date";
    case Parameter::protocol_version:
      return "protocol_version";
    case Parameter::combination_word:
      return "combination_word" + n;
    case Parameter::baud_word:
      return "baud_word" + n;
    case Parameter::weekend_word:
      return "weekend_word";
    case Parameter::weekend_table:
      return "weekend_table";
    case Parameter::load_record_mode:
      return "load_record_mode";
    case Parameter::freeze_mode:
      return "freeze_mode";
    case Parameter::load_record_start:
      return "load_record_start";
    case Parameter::load_record_interval:
      return "load_record_interval" + n;
    case Parameter::settlement_day:
      return "settlement_day" + n;
    case Parameter::password:
      return "password";
    case Parameter::report_status:
      return "report_status";
    case Parameter::software_version:
      return "software_version";
    case Parameter::hardware_version:
      return "hardware_version";
    case Parameter::vendor:
      return "vendor";
    case Parameter::user_number:
      return "user_number";
    case Parameter::device_code:
      return "device_code";
    case Parameter::display_cycle:
      return "display_cycle";
    case Parameter::display_duration:
      return "display_duration";
    case Parameter::display_energy_decimals:
      return "display_energy_decimals";
    case Parameter::display_power_decimals:
      return "display_power_decimals";
  }
  return "unknown";
}

}  // namespace

const char* to_string(Flow flow) noexcept {
  switch (flow) {
    case Flow::active_combined:
      return "active.combined";
    case Flow::active_import:
      return "active.import";
    case Flow::active_export:
      return "active.export";
    case Flow::reactive_import:
      return "reactive.import";
    case Flow::reactive_export:
      return "reactive.export";
    case Flow::reactive_q1:
      return "reactive.q1";
    case Flow::reactive_q2:
      return "reactive.q2";
    case Flow::reactive_q3:
      return "reactive.q3";
    case Flow::reactive_q4:
      return "reactive.q4";
    case Flow::apparent_import:
      return "apparent.import";
    case Flow::apparent_export:
      return "apparent.export";
  }
  return "unknown";
}

std::string to_string(const QuantityKey& k) {
  const std::string l = ".l" + std::to_string(k.phase);
  switch (k.measurand) {
    case Measurand::energy: {
      const std::string base = std::string("energy.") + to_string(k.flow);
      if (k.phase != 0) return base + l;
      return base + (k.tariff == 0 ? ".total" : ".t" + std::to_string(k.tariff));
    }
    case Measurand::demand_max:
      return std::string("demand.") + to_string(k.flow) + ".max" +
             (k.tariff == 0 ? "" : ".t" + std::to_string(k.tariff)) + (k.is_time ? ".time" : "");
    case Measurand::voltage:
      return "voltage" + l;
    case Measurand::current:
      return "current" + phase_suffix(k.phase);
    case Measurand::power_active:
      return "power.active" + phase_suffix(k.phase);
    case Measurand::power_reactive:
      return "power.reactive" + phase_suffix(k.phase);
    case Measurand::power_apparent:
      return "power.apparent" + phase_suffix(k.phase);
    case Measurand::power_factor:
      return "power_factor" + phase_suffix(k.phase);
    case Measurand::angle:
      return "angle" + l;
    case Measurand::thd_voltage:
      return "thd.voltage" + l;
    case Measurand::thd_current:
      return "thd.current" + l;
    case Measurand::harmonic_voltage:
    case Measurand::harmonic_current: {
      char h[8];
      std::snprintf(h, sizeof h, ".h%02u", static_cast<unsigned>(k.index));
      return std::string(k.measurand == Measurand::harmonic_voltage ? "harmonic.voltage"
                                                                    : "harmonic.current") +
             l + h;
    }
    case Measurand::frequency:
      return "frequency";
    case Measurand::power_active_average_1min:
      return "power.active.average_1min";
    case Measurand::power_active_limit_import:
      return "power.active.limit.import";
    case Measurand::power_active_limit_export:
      return "power.active.limit.export";
    case Measurand::demand_active_present:
      return "demand.active.present";
    case Measurand::demand_reactive_present:
      return "demand.reactive.present";
    case Measurand::demand_apparent_present:
      return "demand.apparent.present";
    case Measurand::temperature_meter:
      return "temperature.meter";
    case Measurand::battery_clock_voltage:
      return "battery.clock.voltage";
    case Measurand::battery_reading_voltage:
      return "battery.reading.voltage";
    case Measurand::battery_working_time:
      return "battery.working_time";
    case Measurand::prepaid_remaining_energy:
      return "prepaid.remaining_energy";
    case Measurand::prepaid_remaining_money:
      return "prepaid.remaining_money";
    case Measurand::freeze_time:
      return "freeze.time";
    case Measurand::load_profile_record:
      return "load_profile.record";
    case Measurand::event:
      return std::string("event.") + event_name(k.event) + (k.phase ? l : "") + "." + event_part(k);
    case Measurand::parameter:
      return "meter." + parameter_name(k);
    case Measurand::status_word:
      return "status.word" + std::to_string(k.index);
    case Measurand::status_meter:
      return "status.meter";
    case Measurand::status_grid:
      return "status.grid";
    case Measurand::status_weekend:
      return "status.weekend";
  }
  return "unknown";
}

}  // namespace meterd::protocol
