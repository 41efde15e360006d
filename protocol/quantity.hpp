// Quantities keyed by type: what a value measures (measurand, flow,
// tariff, phase, …) as a structured key, and its canonical name derived
// from the key in one place, to_string(). The names are the ones of the
// design's "Canonical quantities" list (energy.active.import.total,
// voltage.l1, …) plus descriptive ones for the items outside it
// (event.power_down.count, meter.address, …). Code that needs to know what
// a value is switches on the enums (so -Wswitch names every gap); only
// presentation and the uplink use the string. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>

namespace meterd::protocol {

// The flow of an energy or demand register: "active.import" in
// "energy.active.import.total".
enum class Flow : std::uint8_t {
  active_combined,
  active_import,
  active_export,
  reactive_import,  // DL/T 645 combined reactive 1 (usual combination Q1+Q2)
  reactive_export,  // combined reactive 2 (Q3+Q4)
  reactive_q1,
  reactive_q2,
  reactive_q3,
  reactive_q4,
  apparent_import,
  apparent_export,
};

enum class Measurand : std::uint8_t {
  energy,                     // energy.<flow>.total | .tN | .lN
  demand_max,                 // demand.<flow>.max[.tN][.time]
  voltage,                    // voltage.lN
  current,                    // current.lN, current.n (phase = neutral)
  power_active,               // power.active.total | .lN
  power_reactive,             // power.reactive.total | .lN
  power_apparent,             // power.apparent.total | .lN
  power_factor,               // power_factor.total | .lN
  angle,                      // angle.lN
  thd_voltage,                // thd.voltage.lN
  thd_current,                // thd.current.lN
  harmonic_voltage,           // harmonic.voltage.lN.hNN (order in `index`)
  harmonic_current,           // harmonic.current.lN.hNN
  frequency,                  // frequency
  power_active_average_1min,  // power.active.average_1min
  power_active_limit_import,  // power.active.limit.import
  power_active_limit_export,  // power.active.limit.export
  demand_active_present,      // demand.active.present
  demand_reactive_present,    // demand.reactive.present
  demand_apparent_present,    // demand.apparent.present
  temperature_meter,          // temperature.meter
  battery_clock_voltage,      // battery.clock.voltage
  battery_reading_voltage,    // battery.reading.voltage
  battery_working_time,       // battery.working_time
  prepaid_remaining_energy,   // prepaid.remaining_energy
  prepaid_remaining_money,    // prepaid.remaining_money
  freeze_time,                // freeze.time
  load_profile_record,        // load_profile.record
  event,                      // event.<event>[.lN].<part>
  parameter,                  // meter.<parameter>[N]
  status_word,                // status.wordN (N in `index`)
  status_meter,               // status.meter (1997)
  status_grid,                // status.grid (1997)
  status_weekend,             // status.weekend (1997)
};

enum class Event : std::uint8_t {
  voltage_loss,
  under_voltage,
  over_voltage,
  phase_break,
  current_loss,
  over_current,
  current_cut,
  reverse_flow,
  overload,
  voltage_loss_total,
  aux_supply_loss,
  voltage_reverse_sequence,
  current_reverse_sequence,
  voltage_unbalance,
  current_unbalance,
  power_down,
  programming,
  meter_clear,
  demand_clear,
  event_clear,
  time_adjust,
  period_table_program,
  zone_table_program,
  weekend_program,
  holiday_program,
  active_combination_program,
  reactive1_combination_program,
  reactive2_combination_program,
  settlement_day_program,
  meter_cover_open,
  terminal_cover_open,
  relay_trip,
  relay_close,
};

// Which part of an event item: its count, or a field of one record.
enum class EventPart : std::uint8_t {
  count,
  minutes,  // cumulative duration
  start,
  end,
  time,
  before,         // time before (time adjust)
  after,          // time after
  operator_code,  // ".operator"
  di,             // the DI an event clear named
  di_n,           // ".diN": the Nth DI a programming record lists (`index`)
  energy,         // ".energy.<flow>.total": energy when it happened (relay records)
  energy_before,  // ".before.energy.<flow>.total" (cover opening)
  energy_after,   // ".after.energy.<flow>.total"
};

enum class Parameter : std::uint8_t {
  weekday,
  date,
  time,
  demand_period,
  demand_slide,
  pulse_width,
  zone_switch_time,
  period_switch_time,
  zone_count,
  period_table_count,
  period_count,
  tariff_count,
  holiday_count,
  harmonic_order,
  address,
  number,
  asset_number,
  rated_voltage,
  rated_current,
  max_current,
  active_class,
  reactive_class,
  active_constant,
  reactive_constant,
  model,
  production_date,
  protocol_version,
  combination_word,  // N in `index`
  baud_word,         // N in `index`
  weekend_word,
  weekend_table,
  load_record_mode,
  freeze_mode,
  load_record_start,
  load_record_interval,  // N in `index`
  settlement_day,        // N in `index`
  password,
  report_status,
  software_version,
  hardware_version,
  vendor,
  user_number,
  device_code,
  display_cycle,
  display_duration,
  display_energy_decimals,
  display_power_decimals,
};

inline constexpr std::uint8_t neutral = 4;  // phase of current.n

// What a value is. Only the members its measurand names are meaningful;
// the others stay at their defaults, so keys compare with ==.
struct QuantityKey {
  Measurand measurand = Measurand::energy;
  Flow flow = Flow::active_import;  // energy, demand_max, event energies
  std::uint8_t tariff = 0;          // energy, demand_max: 0 = total
  std::uint8_t phase = 0;           // 0 = total/none, 1..3 = L1..L3, 4 = neutral
  std::uint8_t index = 0;           // harmonic order, status word, Nth DI / setting
  bool is_time = false;             // demand_max: the time the maximum occurred
  Event event = Event::power_down;
  EventPart part = EventPart::count;
  Parameter parameter = Parameter::address;

  friend bool operator==(const QuantityKey&, const QuantityKey&) = default;
};

// The canonical name: the only place quantity names are spelled.
std::string to_string(const QuantityKey& key);
const char* to_string(Flow flow) noexcept;  // "active.import"

// Constructors for the common shapes.
constexpr QuantityKey energy_key(Flow flow, std::uint8_t tariff = 0, std::uint8_t phase = 0) {
  QuantityKey k;
  k.measurand = Measurand::energy;
  k.flow = flow;
  k.tariff = tariff;
  k.phase = phase;
  return k;
}
constexpr QuantityKey demand_key(Flow flow, std::uint8_t tariff, bool is_time) {
  QuantityKey k;
  k.measurand = Measurand::demand_max;
  k.flow = flow;
  k.tariff = tariff;
  k.is_time = is_time;
  return k;
}
constexpr QuantityKey measurand_key(Measurand m, std::uint8_t phase = 0, std::uint8_t index = 0) {
  QuantityKey k;
  k.measurand = m;
  k.phase = phase;
  k.index = index;
  return k;
}
constexpr QuantityKey event_key(Event e, EventPart part, std::uint8_t phase = 0,
                                Flow flow = Flow::active_import, std::uint8_t index = 0) {
  QuantityKey k;
  k.measurand = Measurand::event;
  k.event = e;
  k.part = part;
  k.phase = phase;
  k.flow = flow;
  k.index = index;
  return k;
}
constexpr QuantityKey parameter_key(Parameter p, std::uint8_t index = 0) {
  QuantityKey k;
  k.measurand = Measurand::parameter;
  k.parameter = p;
  k.index = index;
  return k;
}

}  // namespace meterd::protocol
