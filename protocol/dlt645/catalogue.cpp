// The catalogue is a list of families. Each family names the DI bytes it
// covers (DI3..DI0, each a few ranges) and a builder that lays out one DI.
// lookup() and catalogued() both walk the same list, so what is counted is
// exactly what decodes.
#include "protocol/dlt645/catalogue.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <utility>

namespace meterd::protocol::dlt645 {

using protocol::to_string;

namespace {

// ---- building blocks ------------------------------------------------------

Field num(std::uint8_t size, std::int8_t decimals, bool is_signed, const QuantityKey& key,
          std::string unit) {
  Field f;
  f.kind = FieldKind::number;
  f.size = size;
  f.decimals = decimals;
  f.is_signed = is_signed;
  f.key = key;
  f.quantity = to_string(key);
  f.unit = std::move(unit);
  return f;
}

Field when(std::string_view format, const QuantityKey& key) {
  Field f;
  f.kind = FieldKind::datetime;
  f.size = static_cast<std::uint8_t>(format.size() / 2);
  f.format = format;
  f.key = key;
  f.quantity = to_string(key);
  return f;
}

Field text(FieldKind kind, std::uint8_t size, const QuantityKey& key) {
  Field f;
  f.kind = kind;
  f.size = size;
  f.key = key;
  f.quantity = to_string(key);
  return f;
}

Field count(std::uint8_t size, const QuantityKey& key, std::string unit = "") {
  return num(size, 0, false, key, std::move(unit));
}

// Day of the week, 0 = Sunday .. 6 = Saturday (DL/T 645-2007 Appendix A.4, 04000101).
Field weekday() {
  Field f = count(1, parameter_key(Parameter::weekday));
  f.max = 6;
  return f;
}

std::string ordinal(unsigned n) {
  const char* suffix = "th";
  if (n % 100 < 11 || n % 100 > 13) {
    if (n % 10 == 1) suffix = "st";
    if (n % 10 == 2) suffix = "nd";
    if (n % 10 == 3) suffix = "rd";
  }
  return std::to_string(n) + suffix;
}

// Status-word bit meanings (DL/T 645-2007 Appendix A.4, State Grid additions).
constexpr BitNames sw1_bits{nullptr,
                            "demand by block",
                            "clock battery low",
                            "reading battery low",
                            "active power reverse",
                            "reactive power reverse"};
constexpr BitNames sw2_bits{"phase A active power reverse",   "phase B active power reverse",
                            "phase C active power reverse",   nullptr,
                            "phase A reactive power reverse", "phase B reactive power reverse",
                            "phase C reactive power reverse"};
constexpr BitNames sw3_bits{"second daily-period set in use",
                            "supply: auxiliary",
                            "supply: battery",
                            "programming enabled",
                            "relay open (supply off)",
                            "second time-zone set in use",
                            "relay command: trip",
                            "pre-trip alarm",
                            "prepaid by energy",
                            "prepaid by money",
                            "second tariff price set in use",
                            "second step price set in use"};
constexpr BitNames phase_fault_bits{"loss of voltage",    "under-voltage", "over-voltage",
                                    "loss of current",    "over-current",  "overload",
                                    "reverse power flow", "phase break",   "current cut"};
constexpr BitNames sw7_bits{"voltage reverse sequence", "current reverse sequence",
                            "voltage unbalance",        "current unbalance",
                            "auxiliary supply lost",    "power down",
                            "demand over limit",        "total power factor below limit",
                            "severe current unbalance", "meter cover open",
                            "terminal cover open"};

Field status_word(unsigned n) {
  Field f = text(FieldKind::hex, 2,
                 measurand_key(Measurand::status_word, 0, static_cast<std::uint8_t>(n)));
  static const BitNames* const tables[] = {&sw1_bits,         &sw2_bits,         &sw3_bits,
                                           &phase_fault_bits, &phase_fault_bits, &phase_fault_bits,
                                           &sw7_bits};
  f.bits = tables[n - 1];
  return f;
}

// ---- DI byte sets ----------------------------------------------------------

struct ByteSet {
  std::array<std::pair<std::uint8_t, std::uint8_t>, 4> spans{};
  std::size_t n = 0;

  bool contains(std::uint8_t b) const {
    for (std::size_t i = 0; i < n; ++i)
      if (b >= spans[i].first && b <= spans[i].second) return true;
    return false;
  }
  template <typename F>
  void each(F&& f) const {
    for (std::size_t i = 0; i < n; ++i)
      for (unsigned b = spans[i].first; b <= spans[i].second; ++b) f(static_cast<std::uint8_t>(b));
  }
};

ByteSet one(std::uint8_t b) { return {{{{b, b}}}, 1}; }
ByteSet span(std::uint8_t lo, std::uint8_t hi) { return {{{{lo, hi}}}, 1}; }
ByteSet spans(std::initializer_list<std::pair<std::uint8_t, std::uint8_t>> list) {
  ByteSet s;
  for (const auto& p : list) s.spans[s.n++] = p;
  return s;
}

struct Family {
  Version version;
  ByteSet d3, d2, d1, d0;  // 1997 uses d1 and d0 only (d3 = d2 = {0})
  std::function<DataItem(std::uint32_t)> build;
};

std::uint8_t byte_of(std::uint32_t di, int k) { return static_cast<std::uint8_t>(di >> (8 * k)); }

// ---- 2007: energy (00) and demand (01) -------------------------------------

struct EnergyKind {
  std::uint8_t code;
  Flow flow;
  const char* unit;
  const char* name;
  bool is_signed;  // §5 / Appendix A notes: combined items carry a sign
};

// DL/T 645-2007 Appendix A.1. Combined reactive 1/2 map to import/export
// with the usual combination words (04000602 = Q1+Q2, 04000603 = Q3+Q4).
constexpr std::array<EnergyKind, 11> energy_kinds{{
    {0x00, Flow::active_combined, "kWh", "combined active energy", true},
    {0x01, Flow::active_import, "kWh", "forward active energy", false},
    {0x02, Flow::active_export, "kWh", "reverse active energy", false},
    {0x03, Flow::reactive_import, "kvarh", "combined reactive 1 energy", true},
    {0x04, Flow::reactive_export, "kvarh", "combined reactive 2 energy", true},
    {0x05, Flow::reactive_q1, "kvarh", "quadrant I reactive energy", false},
    {0x06, Flow::reactive_q2, "kvarh", "quadrant II reactive energy", false},
    {0x07, Flow::reactive_q3, "kvarh", "quadrant III reactive energy", false},
    {0x08, Flow::reactive_q4, "kvarh", "quadrant IV reactive energy", false},
    {0x09, Flow::apparent_import, "kVAh", "forward apparent energy", false},
    {0x0A, Flow::apparent_export, "kVAh", "reverse apparent energy", false},
}};

const EnergyKind& energy_kind(std::uint8_t code) { return energy_kinds[code]; }

constexpr std::uint8_t max_tariffs_2007 = 63;
constexpr std::uint8_t block = 0xFF;

// Per-phase items: A from 15H, B from 29H, C from 3DH, in the order of
// energy kinds 01..0A.
constexpr std::array<std::uint8_t, 3> phase_base{0x15, 0x29, 0x3D};

std::string tariff_name(std::uint8_t d1) {
  if (d1 == block) return "block (total and tariffs)";
  if (d1 == 0) return "total";
  return "tariff " + std::to_string(d1);
}

std::string period_name(std::uint8_t d0) {
  return d0 == 0 ? "" : ", last " + ordinal(d0) + " settlement period";
}

void set_period(DataItem& item, std::uint8_t d0) {
  if (d0 == 0) return;
  item.frozen = Frozen::monthly;
  item.period = d0;
}

Field energy_field(const EnergyKind& k, unsigned tariff) {
  return num(4, 2, k.is_signed, energy_key(k.flow, static_cast<std::uint8_t>(tariff)), k.unit);
}

// A "total + tariffs" block of one energy kind: groups of one field.
void energy_block(DataItem& item, const EnergyKind& k, std::uint8_t max_tariffs) {
  for (unsigned t = 0; t <= max_tariffs; ++t) item.fields.push_back(energy_field(k, t));
  item.group_size = 1;
}

std::string demand_unit(const EnergyKind& k) {
  std::string u = k.unit;
  u.pop_back();  // kWh -> kW, kvarh -> kvar, kVAh -> kVA
  return u;
}

void demand_group(DataItem& item, const EnergyKind& k, unsigned tariff) {
  const auto t = static_cast<std::uint8_t>(tariff);
  item.fields.push_back(num(3, 4, k.is_signed, demand_key(k.flow, t, false), demand_unit(k)));
  item.fields.push_back(when("YYMMDDhhmm", demand_key(k.flow, t, true)));
}

DataItem energy_2007(std::uint32_t di) {
  const auto d2 = byte_of(di, 2), d1 = byte_of(di, 1), d0 = byte_of(di, 0);
  const auto& k = energy_kind(d2);
  DataItem item{Version::v2007, di, k.name + (", " + tariff_name(d1)) + period_name(d0)};
  if (d1 == block)
    energy_block(item, k, max_tariffs_2007);
  else
    item.fields.push_back(energy_field(k, d1));
  set_period(item, d0);
  return item;
}

DataItem phase_energy_2007(std::uint32_t di) {
  const auto d2 = byte_of(di, 2), d0 = byte_of(di, 0);
  unsigned phase = 0;
  while (phase + 1 < phase_base.size() && d2 >= phase_base[phase + 1]) ++phase;
  const auto& k = energy_kind(static_cast<std::uint8_t>(d2 - phase_base[phase] + 1));
  DataItem item{Version::v2007, di,
                std::string("phase ") + "ABC"[phase] + " " + k.name + period_name(d0)};
  item.fields.push_back(
      num(4, 2, k.is_signed, energy_key(k.flow, 0, static_cast<std::uint8_t>(phase + 1)), k.unit));
  set_period(item, d0);
  return item;
}

DataItem demand_2007(std::uint32_t di) {
  const auto d2 = byte_of(di, 2), d1 = byte_of(di, 1), d0 = byte_of(di, 0);
  const auto& k = energy_kind(d2);
  DataItem item{Version::v2007, di,
                "maximum " + std::string(k.name).substr(0, std::string(k.name).size() - 7) +
                    " demand and time, " + tariff_name(d1) + period_name(d0)};
  if (d1 == block) {
    for (unsigned t = 0; t <= max_tariffs_2007; ++t) demand_group(item, k, t);
    item.group_size = 2;
  } else {
    demand_group(item, k, d1);
  }
  set_period(item, d0);
  return item;
}

// ---- 2007: variables (02) ---------------------------------------------------

struct Variable {
  std::uint8_t d2;
  Measurand measurand;
  const char* unit;
  const char* name;
  std::uint8_t size, decimals;
  bool is_signed;
  bool has_total;  // DI1 = 00 is the total (powers, power factor)
};

// DL/T 645-2007 Appendix A.3.
constexpr std::array<Variable, 9> variables{{
    {0x01, Measurand::voltage, "V", "voltage", 2, 1, false, false},
    {0x02, Measurand::current, "A", "current", 3, 3, true, false},
    {0x03, Measurand::power_active, "kW", "active power", 3, 4, true, true},
    {0x04, Measurand::power_reactive, "kvar", "reactive power", 3, 4, true, true},
    {0x05, Measurand::power_apparent, "kVA", "apparent power", 3, 4, true, true},
    {0x06, Measurand::power_factor, "", "power factor", 2, 3, true, true},
    {0x07, Measurand::angle, "°", "phase angle", 2, 1, false, false},
    {0x08, Measurand::thd_voltage, "%", "voltage distortion", 2, 2, false, false},
    {0x09, Measurand::thd_current, "%", "current distortion", 2, 2, false, false},
}};

const Variable* find_variable(std::uint8_t d2) {
  for (const auto& v : variables)
    if (v.d2 == d2) return &v;
  return nullptr;
}

Field variable_field(const Variable& v, unsigned phase) {
  return num(v.size, static_cast<std::int8_t>(v.decimals), v.is_signed,
             measurand_key(v.measurand, static_cast<std::uint8_t>(phase)), v.unit);
}

DataItem variable_2007(std::uint32_t di) {
  const auto d2 = byte_of(di, 2), d1 = byte_of(di, 1);
  const Variable& v = *find_variable(d2);
  DataItem item{Version::v2007, di, ""};
  if (d1 == block) {
    item.name = std::string(v.name) + " block";
    for (unsigned p = v.has_total ? 0 : 1; p <= 3; ++p) item.fields.push_back(variable_field(v, p));
  } else {
    item.name = d1 == 0 ? "total " + std::string(v.name)
                        : std::string("phase ") + "ABC"[d1 - 1] + " " + v.name;
    item.fields.push_back(variable_field(v, d1));
  }
  return item;
}

DataItem harmonic_2007(std::uint32_t di) {
  const auto d2 = byte_of(di, 2), d1 = byte_of(di, 1), d0 = byte_of(di, 0);
  const bool voltage = d2 == 0x0A;
  const auto field = [&](unsigned n) {
    return num(2, 2, false,
               measurand_key(voltage ? Measurand::harmonic_voltage : Measurand::harmonic_current,
                             d1, static_cast<std::uint8_t>(n)),
               "%");
  };
  DataItem item{Version::v2007, di,
                std::string("phase ") + "ABC"[d1 - 1] + (voltage ? " voltage" : " current") +
                    " harmonic content"};
  if (d0 == block) {
    item.name += " block";
    for (unsigned n = 1; n <= 21; ++n) item.fields.push_back(field(n));
  } else {
    item.name += ", order " + std::to_string(d0);
    item.fields.push_back(field(d0));
  }
  return item;
}

DataItem misc_variable_2007(std::uint32_t di) {
  DataItem item{Version::v2007, di, ""};
  switch (byte_of(di, 0)) {
    case 0x01:
      item.name = "neutral current";
      item.fields.push_back(num(3, 3, true, measurand_key(Measurand::current, neutral), "A"));
      break;
    case 0x02:
      item.name = "grid frequency";
      item.fields.push_back(num(2, 2, false, measurand_key(Measurand::frequency), "Hz"));
      break;
    case 0x03:
      item.name = "one-minute average total active power";
      item.fields.push_back(
          num(3, 4, true, measurand_key(Measurand::power_active_average_1min), "kW"));
      break;
    case 0x04:
      item.name = "current active demand";
      item.fields.push_back(num(3, 4, true, measurand_key(Measurand::demand_active_present), "kW"));
      break;
    case 0x05:
      item.name = "current reactive demand";
      item.fields.push_back(
          num(3, 4, true, measurand_key(Measurand::demand_reactive_present), "kvar"));
      break;
    case 0x06:
      item.name = "current apparent demand";
      item.fields.push_back(
          num(3, 4, true, measurand_key(Measurand::demand_apparent_present), "kVA"));
      break;
    case 0x07:
      item.name = "meter internal temperature";
      item.fields.push_back(num(2, 1, true, measurand_key(Measurand::temperature_meter), "°C"));
      break;
    case 0x08:
      item.name = "clock battery voltage";
      item.fields.push_back(num(2, 2, false, measurand_key(Measurand::battery_clock_voltage), "V"));
      break;
    case 0x09:
      item.name = "meter-reading battery voltage";
      item.fields.push_back(
          num(2, 2, false, measurand_key(Measurand::battery_reading_voltage), "V"));
      break;
    case 0x0A:
      item.name = "internal battery working time";
      item.fields.push_back(count(4, measurand_key(Measurand::battery_working_time), "min"));
      break;
  }
  return item;
}

// ---- 2007: events (03) ------------------------------------------------------

struct PhaseEvent {
  std::uint8_t d2;
  Event event;
  const char* name;
};
// Per-phase count and cumulative minutes, 3 × (XXXXXX, XXXXXX) (Appendix A.5).
constexpr std::array<PhaseEvent, 9> phase_events{{
    {0x01, Event::voltage_loss, "loss of voltage"},
    {0x02, Event::under_voltage, "under-voltage"},
    {0x03, Event::over_voltage, "over-voltage"},
    {0x04, Event::phase_break, "phase break"},
    {0x0B, Event::current_loss, "loss of current"},
    {0x0C, Event::over_current, "over-current"},
    {0x0D, Event::current_cut, "current cut"},
    {0x0E, Event::reverse_flow, "reverse power flow"},
    {0x0F, Event::overload, "overload"},
}};
// Whole-meter count and cumulative minutes (XXXXXX, XXXXXX).
constexpr std::array<PhaseEvent, 6> meter_events{{
    {0x05, Event::voltage_loss_total, "total loss of voltage"},
    {0x06, Event::aux_supply_loss, "auxiliary supply loss"},
    {0x07, Event::voltage_reverse_sequence, "voltage reverse sequence"},
    {0x08, Event::current_reverse_sequence, "current reverse sequence"},
    {0x09, Event::voltage_unbalance, "voltage unbalance"},
    {0x0A, Event::current_unbalance, "current unbalance"},
}};

DataItem phase_event_counts(std::uint32_t di) {
  const auto d2 = byte_of(di, 2);
  const auto* e = std::find_if(phase_events.begin(), phase_events.end(),
                               [&](const PhaseEvent& p) { return p.d2 == d2; });
  DataItem item{Version::v2007, di,
                std::string(e->name) + " count and cumulative time, phases A/B/C"};
  for (unsigned p = 1; p <= 3; ++p) {
    const auto l = static_cast<std::uint8_t>(p);
    item.fields.push_back(count(3, event_key(e->event, EventPart::count, l)));
    item.fields.push_back(count(3, event_key(e->event, EventPart::minutes, l), "min"));
  }
  return item;
}

DataItem meter_event_counts(std::uint32_t di) {
  const auto d2 = byte_of(di, 2);
  const auto* e = std::find_if(meter_events.begin(), meter_events.end(),
                               [&](const PhaseEvent& p) { return p.d2 == d2; });
  DataItem item{Version::v2007, di, std::string(e->name) + " count and cumulative time"};
  item.fields.push_back(count(3, event_key(e->event, EventPart::count)));
  item.fields.push_back(count(3, event_key(e->event, EventPart::minutes), "min"));
  return item;
}

void snapshot_energies(DataItem& item, Event event, EventPart part) {
  // forward active, reverse active, quadrant I..IV reactive totals
  static constexpr std::array<std::uint8_t, 6> kinds{0x01, 0x02, 0x05, 0x06, 0x07, 0x08};
  for (auto code : kinds) {
    const auto& k = energy_kind(code);
    item.fields.push_back(num(4, 2, false, event_key(event, part, 0, k.flow), k.unit));
  }
}

DataItem power_down(std::uint32_t di) {
  const auto d0 = byte_of(di, 0);
  if (d0 == 0)
    return {Version::v2007,
            di,
            "power-down count",
            {count(3, event_key(Event::power_down, EventPart::count))}};
  DataItem item{Version::v2007, di, "power-down record, last " + ordinal(d0)};
  item.fields = {when("YYMMDDhhmmss", event_key(Event::power_down, EventPart::start)),
                 when("YYMMDDhhmmss", event_key(Event::power_down, EventPart::end))};
  item.period = d0;
  return item;
}

struct Programming {
  std::uint8_t d1;
  Event event;
  const char* name;
};
// 0330xx00 counts (Appendix A.5, programming-type events).
constexpr std::array<Programming, 15> programming_events{{
    {0x00, Event::programming, "programming"},
    {0x01, Event::meter_clear, "meter clear"},
    {0x02, Event::demand_clear, "demand clear"},
    {0x03, Event::event_clear, "event clear"},
    {0x04, Event::time_adjust, "time adjust"},
    {0x05, Event::period_table_program, "daily period table programming"},
    {0x06, Event::zone_table_program, "time-zone table programming"},
    {0x07, Event::weekend_program, "weekend programming"},
    {0x08, Event::holiday_program, "holiday programming"},
    {0x09, Event::active_combination_program, "active combination programming"},
    {0x0A, Event::reactive1_combination_program, "reactive 1 combination programming"},
    {0x0B, Event::reactive2_combination_program, "reactive 2 combination programming"},
    {0x0C, Event::settlement_day_program, "settlement day programming"},
    {0x0D, Event::meter_cover_open, "meter cover open"},
    {0x0E, Event::terminal_cover_open, "terminal cover open"},
}};

DataItem programming_event(std::uint32_t di) {
  const auto d1 = byte_of(di, 1), d0 = byte_of(di, 0);
  const auto& p = programming_events[d1];
  const auto key = [&](EventPart part, std::uint8_t index = 0) {
    return event_key(p.event, part, 0, Flow::active_import, index);
  };
  if (d0 == 0)
    return {Version::v2007, di, std::string(p.name) + " count", {count(3, key(EventPart::count))}};
  DataItem item{Version::v2007, di, std::string(p.name) + " record, last " + ordinal(d0)};
  item.period = d0;
  switch (d1) {
    case 0x00:  // time, operator, up to 10 DIs written
      item.fields = {when("YYMMDDhhmmss", key(EventPart::time)),
                     text(FieldKind::hex, 4, key(EventPart::operator_code))};
      for (std::uint8_t i = 1; i <= 10; ++i)
        item.fields.push_back(text(FieldKind::hex, 4, key(EventPart::di_n, i)));
      break;
    case 0x03:  // time, operator, event-class DI cleared
      item.fields = {when("YYMMDDhhmmss", key(EventPart::time)),
                     text(FieldKind::hex, 4, key(EventPart::operator_code)),
                     text(FieldKind::hex, 4, key(EventPart::di))};
      break;
    case 0x04:  // operator, time before, time after
      item.fields = {text(FieldKind::hex, 4, key(EventPart::operator_code)),
                     when("YYMMDDhhmmss", key(EventPart::before)),
                     when("YYMMDDhhmmss", key(EventPart::after))};
      break;
    default:  // 0D / 0E: start, end, 6 energies before, 6 after
      item.fields = {when("YYMMDDhhmmss", key(EventPart::start)),
                     when("YYMMDDhhmmss", key(EventPart::end))};
      snapshot_energies(item, p.event, EventPart::energy_before);
      snapshot_energies(item, p.event, EventPart::energy_after);
      break;
  }
  return item;
}

// State Grid trip (1D) / close (1E) records: time, operator, 6 energies.
DataItem relay_record(std::uint32_t di) {
  const bool trip = byte_of(di, 3) == 0x1D;
  const auto d0 = byte_of(di, 0);
  const Event event = trip ? Event::relay_trip : Event::relay_close;
  DataItem item{Version::v2007, di,
                std::string(trip ? "relay trip" : "relay close") + " record, last " + ordinal(d0)};
  item.fields = {when("YYMMDDhhmmss", event_key(event, EventPart::time)),
                 text(FieldKind::hex, 4, event_key(event, EventPart::operator_code))};
  snapshot_energies(item, event, EventPart::energy);
  item.period = d0;
  return item;
}

// ---- 2007: parameters (04) -------------------------------------------------

DataItem parameter_2007(std::uint32_t di) {
  const auto d2 = byte_of(di, 2), d1 = byte_of(di, 1), d0 = byte_of(di, 0);
  DataItem item{Version::v2007, di, ""};
  auto& f = item.fields;
  const auto set = [&](std::string name, std::vector<Field> fields) {
    item.name = std::move(name);
    f = std::move(fields);
  };
  if (d2 == 0x80) {
    static constexpr const char* names[] = {"", "vendor software version",
                                            "vendor hardware version", "vendor id"};
    static constexpr Parameter keys[] = {Parameter::software_version, Parameter::software_version,
                                         Parameter::hardware_version, Parameter::vendor};
    set(names[d0], {text(FieldKind::ascii, 32, parameter_key(keys[d0]))});
    return item;
  }
  switch (d1) {
    case 0x01:
      switch (d0) {
        case 0x01:
          set("date and weekday", {weekday(), when("YYMMDD", parameter_key(Parameter::date))});
          break;
        case 0x02:
          set("time", {when("hhmmss", parameter_key(Parameter::time))});
          break;
        case 0x03:
          set("demand period", {count(1, parameter_key(Parameter::demand_period), "min")});
          break;
        case 0x04:
          set("demand sliding time", {count(1, parameter_key(Parameter::demand_slide), "min")});
          break;
        case 0x05:
          set("calibration pulse width", {count(2, parameter_key(Parameter::pulse_width), "ms")});
          break;
        case 0x06:
          set("two-set time-zone switch time",
              {when("YYMMDDhhmm", parameter_key(Parameter::zone_switch_time))});
          break;
        case 0x07:
          set("two-set daily-period switch time",
              {when("YYMMDDhhmm", parameter_key(Parameter::period_switch_time))});
          break;
        case 0x0C:  // State Grid: YYMMDDWWhhmmss, wire ss mm hh WW DD MM YY
          set("date, weekday and time", {when("hhmmss", parameter_key(Parameter::time)), weekday(),
                                         when("YYMMDD", parameter_key(Parameter::date))});
          break;
      }
      break;
    case 0x02: {
      static constexpr const char* names[] = {"",
                                              "year time-zone count",
                                              "daily period table count",
                                              "daily periods",
                                              "tariff count",
                                              "public holiday count",
                                              "harmonic analysis order"};
      static constexpr Parameter keys[] = {Parameter::zone_count,         Parameter::zone_count,
                                           Parameter::period_table_count, Parameter::period_count,
                                           Parameter::tariff_count,       Parameter::holiday_count,
                                           Parameter::harmonic_order};
      set(names[d0], {count(d0 == 0x05 ? 2 : 1, parameter_key(keys[d0]))});
      break;
    }
    case 0x04:
      switch (d0) {
        case 0x01:
          set("communication address",
              {text(FieldKind::digits, 6, parameter_key(Parameter::address))});
          break;
        case 0x02:
          set("meter number", {text(FieldKind::digits, 6, parameter_key(Parameter::number))});
          break;
        case 0x03:
          set("asset number", {text(FieldKind::ascii, 32, parameter_key(Parameter::asset_number))});
          break;
        case 0x04:
          set("rated voltage",
              {text(FieldKind::ascii, 6, parameter_key(Parameter::rated_voltage))});
          break;
        case 0x05:
          set("rated (basic) current",
              {text(FieldKind::ascii, 6, parameter_key(Parameter::rated_current))});
          break;
        case 0x06:
          set("maximum current",
              {text(FieldKind::ascii, 6, parameter_key(Parameter::max_current))});
          break;
        case 0x07:
          set("active accuracy class",
              {text(FieldKind::ascii, 4, parameter_key(Parameter::active_class))});
          break;
        case 0x08:
          set("reactive accuracy class",
              {text(FieldKind::ascii, 4, parameter_key(Parameter::reactive_class))});
          break;
        case 0x09:
          set("active meter constant",
              {count(3, parameter_key(Parameter::active_constant), "imp/kWh")});
          break;
        case 0x0A:
          set("reactive meter constant",
              {count(3, parameter_key(Parameter::reactive_constant), "imp/kvarh")});
          break;
        case 0x0B:
          set("meter model", {text(FieldKind::ascii, 10, parameter_key(Parameter::model))});
          break;
        case 0x0C:
          set("production date",
              {text(FieldKind::ascii, 10, parameter_key(Parameter::production_date))});
          break;
        case 0x0D:
          set("protocol version",
              {text(FieldKind::ascii, 16, parameter_key(Parameter::protocol_version))});
          break;
      }
      break;
    case 0x05:
      if (d0 == block) {
        item.name = "status words 1-7";
        for (unsigned n = 1; n <= 7; ++n) f.push_back(status_word(n));
      } else {
        set("meter running status word " + std::to_string(d0), {status_word(d0)});
      }
      break;
    case 0x06: {
      static constexpr const char* names[] = {"", "active combination word",
                                              "reactive 1 combination word",
                                              "reactive 2 combination word"};
      set(names[d0], {text(FieldKind::hex, 1, parameter_key(Parameter::combination_word, d0))});
      break;
    }
    case 0x07: {
      static constexpr const char* names[] = {
          "", "modulated infrared", "contact infrared", "port 1", "port 2", "port 3"};
      set(std::string(names[d0]) + " baud-rate word",
          {text(FieldKind::hex, 1, parameter_key(Parameter::baud_word, d0))});
      break;
    }
    case 0x08:
      set(d0 == 1 ? "weekend characteristic word" : "weekend daily-period table number",
          {text(FieldKind::hex, 1,
                d0 == 1 ? parameter_key(Parameter::weekend_word)
                        : parameter_key(Parameter::weekend_table))});
      break;
    case 0x09:
      set(d0 == 1 ? "load-record mode word" : "freeze mode word",
          {text(FieldKind::hex, 1,
                d0 == 1 ? parameter_key(Parameter::load_record_mode)
                        : parameter_key(Parameter::freeze_mode))});
      break;
    case 0x0A:
      if (d0 == 1)
        set("load-record start time",
            {when("MMDDhhmm", parameter_key(Parameter::load_record_start))});
      else
        set("load-record class " + std::to_string(d0 - 1) + " interval",
            {count(
                2,
                parameter_key(Parameter::load_record_interval, static_cast<std::uint8_t>(d0 - 1)),
                "min")});
      break;
    case 0x0B:
      set("settlement day " + std::to_string(d0),
          {when("DDhh", parameter_key(Parameter::settlement_day, d0))});
      break;
    case 0x0C:
      set("password of level " + std::to_string(d0 - 1),
          {text(FieldKind::hex, 4, parameter_key(Parameter::password))});
      break;
    case 0x15:
      set("active-report status word",
          {text(FieldKind::raw, 12, parameter_key(Parameter::report_status))});
      break;
  }
  return item;
}

// ---- 2007: freezes (05) ----------------------------------------------------

Frozen freeze_kind(std::uint8_t d2) {
  switch (d2) {
    case 0x00:
      return Frozen::timed;
    case 0x01:
      return Frozen::instant;
    case 0x02:
    case 0x03:
      return Frozen::switchover;
    case 0x04:
      return Frozen::hourly;
    default:
      return Frozen::daily;
  }
}

std::string freeze_name(std::uint8_t d2) {
  static constexpr const char* names[] = {"timed freeze",
                                          "instantaneous freeze",
                                          "time-zone switch freeze",
                                          "daily-period switch freeze",
                                          "hourly freeze",
                                          "",
                                          "daily freeze"};
  return names[d2];
}

DataItem freeze_2007(std::uint32_t di) {
  const auto d2 = byte_of(di, 2), d1 = byte_of(di, 1), d0 = byte_of(di, 0);
  DataItem item{Version::v2007, di, freeze_name(d2) + ", last " + ordinal(d0) + ": "};
  item.frozen = freeze_kind(d2);
  item.period = d0;
  if (d1 == 0x00) {
    item.name += "time";
    item.fields.push_back(when("YYMMDDhhmm", measurand_key(Measurand::freeze_time)));
  } else if (d2 == 0x04) {  // hourly: totals only [State Grid]
    const auto& k = energy_kind(d1);
    item.name += std::string(k.name) + ", total";
    item.fields.push_back(energy_field(k, 0));
  } else if (d1 <= 0x08) {
    const auto& k = energy_kind(d1);
    item.name += std::string(k.name) + ", block";
    energy_block(item, k, max_tariffs_2007);
  } else if (d1 == 0x09 || d1 == 0x0A) {
    const auto& k = energy_kind(d1 == 0x09 ? 0x01 : 0x02);
    item.name += "maximum " + std::string(d1 == 0x09 ? "forward" : "reverse") +
                 " active demand and time, block";
    for (unsigned t = 0; t <= max_tariffs_2007; ++t) demand_group(item, k, t);
    item.group_size = 2;
  } else {  // 0x10: active and reactive power, total and phases
    item.name += "variables";
    for (unsigned p = 0; p <= 3; ++p)
      item.fields.push_back(variable_field(*find_variable(0x03), p));
    for (unsigned p = 0; p <= 3; ++p)
      item.fields.push_back(variable_field(*find_variable(0x04), p));
  }
  return item;
}

// ---- 2007: load profile (06) -----------------------------------------------

DataItem load_profile_2007(std::uint32_t di) {
  const auto d2 = byte_of(di, 2), d0 = byte_of(di, 0);
  static constexpr const char* which[] = {"earliest records", "records from a given time",
                                          "latest records"};
  DataItem item{Version::v2007, di,
                "load profile " +
                    (d2 == 0 ? std::string("all classes") : "class " + std::to_string(d2)) + ", " +
                    which[d0]};
  // The record layout (A0 A0 len time … E5 E5) is not verified against the
  // standard's text [?]: kept opaque for now.
  item.fields.push_back(text(FieldKind::raw, 0, measurand_key(Measurand::load_profile_record)));
  return item;
}

// ---- 1997 --------------------------------------------------------------------

struct Kind1997 {
  std::uint8_t nibble;
  Flow flow;
  const char* name;
};
constexpr std::array<Kind1997, 2> active_1997{{
    {1, Flow::active_import, "forward active"},
    {2, Flow::active_export, "reverse active"},
}};
// DL/T 645-1997 appendix: 911x forward reactive, 912x reverse reactive,
// 913x Q1, 914x Q4, 915x Q2, 916x Q3.
constexpr std::array<Kind1997, 6> reactive_1997{{
    {1, Flow::reactive_import, "forward reactive"},
    {2, Flow::reactive_export, "reverse reactive"},
    {3, Flow::reactive_q1, "quadrant I reactive"},
    {4, Flow::reactive_q4, "quadrant IV reactive"},
    {5, Flow::reactive_q2, "quadrant II reactive"},
    {6, Flow::reactive_q3, "quadrant III reactive"},
}};
constexpr std::uint8_t max_tariffs_1997 = 14;

struct Decoded1997 {
  const Kind1997* kind;
  bool reactive;
  unsigned month;   // 0 current, 1 last month, 2 month before
  unsigned tariff;  // 0 total, 1..14, 15 block
};

Decoded1997 split_1997(std::uint32_t di) {
  const auto d1 = byte_of(di, 1), d0 = byte_of(di, 0);
  const bool reactive = (d1 & 0x01) != 0;
  const auto& kinds =
      reactive ? std::span<const Kind1997>(reactive_1997) : std::span<const Kind1997>(active_1997);
  return {&kinds[(d0 >> 4) - 1], reactive, static_cast<unsigned>((d1 & 0x0C) >> 2), d0 & 0x0Fu};
}

std::string month_name(unsigned month) {
  return month == 0 ? "" : month == 1 ? ", last month" : ", month before last";
}

std::string tariff_name_1997(unsigned t) {
  return t == 0x0F ? "block (total and tariffs)" : t == 0 ? "total" : "tariff " + std::to_string(t);
}

void set_month(DataItem& item, unsigned month) {
  if (month == 0) return;
  item.frozen = Frozen::monthly;
  item.period = month;
}

DataItem energy_1997(std::uint32_t di) {
  const auto s = split_1997(di);
  const char* unit = s.reactive ? "kvarh" : "kWh";
  DataItem item{
      Version::v1997, di,
      std::string(s.kind->name) + " energy, " + tariff_name_1997(s.tariff) + month_name(s.month)};
  const auto field = [&](unsigned t) {
    return num(4, 2, false, energy_key(s.kind->flow, static_cast<std::uint8_t>(t)), unit);
  };
  if (s.tariff == 0x0F) {
    for (unsigned t = 0; t <= max_tariffs_1997; ++t) item.fields.push_back(field(t));
    item.group_size = 1;
  } else {
    item.fields.push_back(field(s.tariff));
  }
  set_month(item, s.month);
  return item;
}

// Axxx: maximum demand XX.XXXX (3); Bxxx with the same low bits: its time MMDDhhmm (4).
DataItem demand_1997(std::uint32_t di) {
  const auto s = split_1997(di);
  const bool is_time = (byte_of(di, 1) >> 4) == 0x0B;
  const char* unit = s.reactive ? "kvar" : "kW";
  DataItem item{Version::v1997, di,
                "maximum " + std::string(s.kind->name) + " demand" + (is_time ? " time, " : ", ") +
                    tariff_name_1997(s.tariff) + month_name(s.month)};
  const auto field = [&](unsigned t) {
    const auto key = demand_key(s.kind->flow, static_cast<std::uint8_t>(t), is_time);
    return is_time ? when("MMDDhhmm", key) : num(3, 4, false, key, unit);
  };
  if (s.tariff == 0x0F) {
    for (unsigned t = 0; t <= max_tariffs_1997; ++t) item.fields.push_back(field(t));
    item.group_size = 1;
  } else {
    item.fields.push_back(field(s.tariff));
  }
  set_month(item, s.month);
  return item;
}

DataItem variable_1997(std::uint32_t di) {
  const auto d0 = byte_of(di, 0);
  const unsigned group = d0 >> 4, idx = d0 & 0x0F;
  struct V {
    Measurand measurand;
    const char* unit;
    const char* name;
    std::uint8_t size, decimals;
    bool has_total;
  };
  // B61x voltage XXX (integer V), B62x current XX.XX, B63x power XX.XXXX,
  // B64x reactive XX.XX, B65x power factor X.XXX.
  static constexpr V table[] = {{Measurand::voltage, "", "", 0, 0, false},
                                {Measurand::voltage, "V", "voltage", 2, 0, false},
                                {Measurand::current, "A", "current", 2, 2, false},
                                {Measurand::power_active, "kW", "active power", 3, 4, true},
                                {Measurand::power_reactive, "kvar", "reactive power", 2, 2, true},
                                {Measurand::power_factor, "", "power factor", 2, 3, true}};
  const V& v = table[group];
  const auto field = [&](unsigned p) {
    return num(v.size, static_cast<std::int8_t>(v.decimals), false,
               measurand_key(v.measurand, static_cast<std::uint8_t>(p)), v.unit);
  };
  DataItem item{Version::v1997, di, ""};
  if (group == 3 && (idx == 4 || idx == 5)) {
    item.name = idx == 4 ? "forward active power limit" : "reverse active power limit";
    item.fields.push_back(num(3, 4, false,
                              idx == 4 ? measurand_key(Measurand::power_active_limit_import)
                                       : measurand_key(Measurand::power_active_limit_export),
                              "kW"));
  } else if (idx == 0x0F) {
    item.name = std::string(v.name) + " block";
    for (unsigned p = v.has_total ? 0 : 1; p <= 3; ++p) item.fields.push_back(field(p));
  } else {
    item.name = idx == 0 ? "total " + std::string(v.name)
                         : std::string("phase ") + "ABC"[idx - 1] + " " + v.name;
    item.fields.push_back(field(idx));
  }
  return item;
}

DataItem misc_1997(std::uint32_t di) {
  DataItem item{Version::v1997, di, ""};
  const auto set = [&](std::string name, std::vector<Field> fields) {
    item.name = std::move(name);
    item.fields = std::move(fields);
  };
  switch (di) {
    case 0xB210:
      set("last programming time",
          {when("MMDDhhmm", event_key(Event::programming, EventPart::time))});
      break;
    case 0xB211:
      set("last demand-clear time",
          {when("MMDDhhmm", event_key(Event::demand_clear, EventPart::time))});
      break;
    case 0xB212:
      set("programming count", {count(2, event_key(Event::programming, EventPart::count))});
      break;
    case 0xB213:
      set("demand-clear count", {count(2, event_key(Event::demand_clear, EventPart::count))});
      break;
    case 0xB214:
      set("battery working time",
          {count(3, measurand_key(Measurand::battery_working_time), "min")});
      break;
    case 0xB310:
      set("phase-break count, total", {count(2, event_key(Event::phase_break, EventPart::count))});
      break;
    case 0xB311:
    case 0xB312:
    case 0xB313: {
      const unsigned p = di - 0xB310;
      set(std::string("phase-break count, phase ") + "ABC" [p - 1], {
        count(2, event_key(Event::phase_break, EventPart::count, static_cast<std::uint8_t>(p)))
      });
      break;
    }
    case 0xC010:
      set("date and weekday", {weekday(), when("YYMMDD", parameter_key(Parameter::date))});
      break;
    case 0xC011:
      set("time", {when("hhmmss", parameter_key(Parameter::time))});
      break;
    case 0xC020:
      set("meter status byte", {text(FieldKind::hex, 1, measurand_key(Measurand::status_meter))});
      break;
    case 0xC021:
      set("grid status byte", {text(FieldKind::hex, 1, measurand_key(Measurand::status_grid))});
      break;
    case 0xC022:
      set("weekend status byte",
          {text(FieldKind::hex, 1, measurand_key(Measurand::status_weekend))});
      break;
    case 0xC030:
      set("active meter constant",
          {count(3, parameter_key(Parameter::active_constant), "imp/kWh")});
      break;
    case 0xC031:
      set("reactive meter constant",
          {count(3, parameter_key(Parameter::reactive_constant), "imp/kvarh")});
      break;
    case 0xC032:
      set("meter number", {text(FieldKind::digits, 6, parameter_key(Parameter::number))});
      break;
    case 0xC033:
      set("user number", {text(FieldKind::digits, 6, parameter_key(Parameter::user_number))});
      break;
    case 0xC034:
      set("device code", {text(FieldKind::digits, 6, parameter_key(Parameter::device_code))});
      break;
    case 0xC111:
      set("demand period", {count(1, parameter_key(Parameter::demand_period), "min")});
      break;
    case 0xC112:
      set("demand sliding time", {count(1, parameter_key(Parameter::demand_slide), "min")});
      break;
    case 0xC113:
      set("display cycle time", {count(1, parameter_key(Parameter::display_cycle), "s")});
      break;
    case 0xC114:
      set("display duration", {count(1, parameter_key(Parameter::display_duration), "s")});
      break;
    case 0xC115:
      set("display energy decimals", {count(1, parameter_key(Parameter::display_energy_decimals))});
      break;
    case 0xC116:
      set("display power decimals", {count(1, parameter_key(Parameter::display_power_decimals))});
      break;
    case 0xC117:
      set("automatic reading day", {when("DDhh", parameter_key(Parameter::settlement_day, 1))});
      break;
    case 0xC212:
      set("password level and password",
          {text(FieldKind::hex, 4, parameter_key(Parameter::password))});
      break;
    case 0xC310:
      set("year time-zone count", {count(1, parameter_key(Parameter::zone_count))});
      break;
    case 0xC311:
      set("daily period table count", {count(1, parameter_key(Parameter::period_table_count))});
      break;
    case 0xC312:
      set("daily periods", {count(1, parameter_key(Parameter::period_count))});
      break;
    case 0xC313:
      set("tariff count", {count(1, parameter_key(Parameter::tariff_count))});
      break;
    case 0xC314:
      set("public holiday count", {count(1, parameter_key(Parameter::holiday_count))});
      break;
  }
  return item;
}

// ---- the family list ---------------------------------------------------------

const std::vector<Family>& families() {
  static const std::vector<Family> list = [] {
    const auto v7 = Version::v2007;
    const auto v9 = Version::v1997;
    const ByteSet tariffs = spans({{0x00, max_tariffs_2007}, {block, block}});
    const ByteSet periods = span(0x00, 0x0C);
    std::vector<Family> f;
    // 00: energy, total / tariffs / block, current and last 1..12 settlement periods
    f.push_back({v7, one(0x00), span(0x00, 0x0A), tariffs, periods, energy_2007});
    f.push_back({v7, one(0x00), spans({{0x15, 0x1E}, {0x29, 0x32}, {0x3D, 0x46}}), one(0x00),
                 periods, phase_energy_2007});
    f.push_back({v7, one(0x00), one(0x90), span(0x01, 0x02), one(0x00), [](std::uint32_t di) {
                   const bool money = byte_of(di, 1) == 0x02;
                   return DataItem{
                       Version::v2007,
                       di,
                       money ? "remaining money (prepaid)" : "remaining energy (prepaid)",
                       {num(4, 2, false,
                            money ? measurand_key(Measurand::prepaid_remaining_money)
                                  : measurand_key(Measurand::prepaid_remaining_energy),
                            money ? "CNY" : "kWh")}};
                 }});
    // 01: maximum demand and its time
    f.push_back({v7, one(0x01), span(0x01, 0x0A), tariffs, periods, demand_2007});
    // 02: variables
    f.push_back({v7, one(0x02), spans({{0x01, 0x02}, {0x07, 0x09}}),
                 spans({{0x01, 0x03}, {block, block}}), one(0x00), variable_2007});
    f.push_back({v7, one(0x02), span(0x03, 0x06), spans({{0x00, 0x03}, {block, block}}), one(0x00),
                 variable_2007});
    f.push_back({v7, one(0x02), span(0x0A, 0x0B), span(0x01, 0x03),
                 spans({{0x01, 0x15}, {block, block}}), harmonic_2007});
    f.push_back({v7, one(0x02), one(0x80), one(0x00), span(0x01, 0x0A), misc_variable_2007});
    // 03: events
    f.push_back({v7, one(0x03), spans({{0x01, 0x04}, {0x0B, 0x0F}}), one(0x00), one(0x00),
                 phase_event_counts});
    f.push_back({v7, one(0x03), span(0x05, 0x0A), one(0x00), one(0x00), meter_event_counts});
    f.push_back({v7, one(0x03), one(0x11), one(0x00), span(0x00, 0x0A), power_down});
    f.push_back({v7, one(0x03), one(0x30), span(0x00, 0x0E), one(0x00), programming_event});
    f.push_back({v7, one(0x03), one(0x30), spans({{0x00, 0x00}, {0x03, 0x04}, {0x0D, 0x0E}}),
                 span(0x01, 0x0A), programming_event});
    f.push_back({v7, span(0x1D, 0x1E), one(0x00), one(0x00), span(0x01, 0x0A), relay_record});
    // 04: parameters
    f.push_back(
        {v7, one(0x04), one(0x00), one(0x01), spans({{0x01, 0x07}, {0x0C, 0x0C}}), parameter_2007});
    f.push_back({v7, one(0x04), one(0x00), one(0x02), span(0x01, 0x06), parameter_2007});
    f.push_back({v7, one(0x04), one(0x00), one(0x04), span(0x01, 0x0D), parameter_2007});
    f.push_back({v7, one(0x04), one(0x00), one(0x05), spans({{0x01, 0x07}, {block, block}}),
                 parameter_2007});
    f.push_back({v7, one(0x04), one(0x00), one(0x06), span(0x01, 0x03), parameter_2007});
    f.push_back({v7, one(0x04), one(0x00), one(0x07), span(0x01, 0x05), parameter_2007});
    f.push_back({v7, one(0x04), one(0x00), span(0x08, 0x09), span(0x01, 0x02), parameter_2007});
    f.push_back({v7, one(0x04), one(0x00), one(0x0A), span(0x01, 0x07), parameter_2007});
    f.push_back({v7, one(0x04), one(0x00), one(0x0B), span(0x01, 0x03), parameter_2007});
    f.push_back({v7, one(0x04), one(0x00), one(0x0C), span(0x01, 0x0A), parameter_2007});
    f.push_back({v7, one(0x04), one(0x00), one(0x15), one(0x01), parameter_2007});
    f.push_back({v7, one(0x04), one(0x80), one(0x00), span(0x01, 0x03), parameter_2007});
    // 05: freezes
    const ByteSet freeze_items = spans({{0x00, 0x0A}, {0x10, 0x10}});
    f.push_back({v7, one(0x05), one(0x00), freeze_items, span(0x01, 0x0C), freeze_2007});
    f.push_back({v7, one(0x05), one(0x01), freeze_items, span(0x01, 0x03), freeze_2007});
    f.push_back({v7, one(0x05), span(0x02, 0x03), freeze_items, span(0x01, 0x02), freeze_2007});
    f.push_back({v7, one(0x05), one(0x04), span(0x00, 0x02), span(0x01, 0xFE), freeze_2007});
    f.push_back({v7, one(0x05), one(0x06), freeze_items, span(0x01, 0x3E), freeze_2007});
    // 06: load profile
    f.push_back({v7, one(0x06), span(0x00, 0x06), one(0x00), span(0x00, 0x02), load_profile_2007});
    // 1997 (DI1 in d1, DI0 in d0)
    const ByteSet energy_d0 = span(0x10, 0x2F);
    f.push_back({v9, one(0), one(0), spans({{0x90, 0x90}, {0x94, 0x94}, {0x98, 0x98}}), energy_d0,
                 energy_1997});
    f.push_back({v9, one(0), one(0), spans({{0x91, 0x91}, {0x95, 0x95}, {0x99, 0x99}}),
                 span(0x10, 0x6F), energy_1997});
    f.push_back({v9, one(0), one(0),
                 spans({{0xA0, 0xA0}, {0xA4, 0xA4}, {0xA8, 0xA8}, {0xB0, 0xB0}}), energy_d0,
                 demand_1997});
    f.push_back({v9, one(0), one(0), spans({{0xB4, 0xB4}, {0xB8, 0xB8}}), energy_d0, demand_1997});
    f.push_back({v9, one(0), one(0),
                 spans({{0xA1, 0xA1}, {0xA5, 0xA5}, {0xA9, 0xA9}, {0xB1, 0xB1}}), span(0x10, 0x6F),
                 demand_1997});
    f.push_back(
        {v9, one(0), one(0), spans({{0xB5, 0xB5}, {0xB9, 0xB9}}), span(0x10, 0x6F), demand_1997});
    f.push_back({v9, one(0), one(0), one(0xB6),
                 spans({{0x11, 0x13}, {0x1F, 0x1F}, {0x21, 0x23}, {0x2F, 0x2F}}), variable_1997});
    f.push_back({v9, one(0), one(0), one(0xB6),
                 spans({{0x30, 0x35}, {0x3F, 0x43}, {0x4F, 0x53}, {0x5F, 0x5F}}), variable_1997});
    f.push_back({v9, one(0), one(0), one(0xB2), span(0x10, 0x14), misc_1997});
    f.push_back({v9, one(0), one(0), one(0xB3), span(0x10, 0x13), misc_1997});
    f.push_back({v9, one(0), one(0), one(0xC0), spans({{0x10, 0x11}, {0x20, 0x22}, {0x30, 0x34}}),
                 misc_1997});
    f.push_back({v9, one(0), one(0), one(0xC1), span(0x11, 0x17), misc_1997});
    f.push_back({v9, one(0), one(0), one(0xC2), one(0x12), misc_1997});
    f.push_back({v9, one(0), one(0), one(0xC3), span(0x10, 0x14), misc_1997});
    return f;
  }();
  return list;
}

// 1997 energy/demand DI0: low nibble 0..E tariffs and F block are valid,
// but B64x has no "4" etc.; the byte sets above already keep to what exists.
bool family_contains(const Family& f, std::uint32_t di) {
  return f.d3.contains(byte_of(di, 3)) && f.d2.contains(byte_of(di, 2)) &&
         f.d1.contains(byte_of(di, 1)) && f.d0.contains(byte_of(di, 0));
}

}  // namespace

std::string_view to_string(Frozen f) noexcept {
  switch (f) {
    case Frozen::none:
      return "";
    case Frozen::monthly:
      return "monthly";
    case Frozen::daily:
      return "daily";
    case Frozen::hourly:
      return "hourly";
    case Frozen::timed:
      return "timed";
    case Frozen::instant:
      return "instant";
    case Frozen::switchover:
      return "switchover";
  }
  return "";
}

std::size_t DataItem::min_size() const {
  std::size_t n = 0;
  const std::size_t fixed =
      group_size ? fields.size() - (fields.size() / group_size - 1) * group_size : fields.size();
  for (std::size_t i = 0; i < fixed; ++i) n += fields[i].size;
  return n;
}

std::size_t DataItem::max_size() const {
  std::size_t n = 0;
  for (const auto& f : fields) n += f.size;
  return n;
}

std::optional<DataItem> lookup(Version version, std::uint32_t di) {
  for (const auto& f : families())
    if (f.version == version && family_contains(f, di)) return f.build(di);
  return std::nullopt;
}

std::vector<std::uint32_t> catalogued(Version version) {
  std::vector<std::uint32_t> out;
  for (const auto& f : families()) {
    if (f.version != version) continue;
    f.d3.each([&](std::uint8_t a) {
      f.d2.each([&](std::uint8_t b) {
        f.d1.each([&](std::uint8_t c) {
          f.d0.each([&](std::uint8_t d) {
            out.push_back((std::uint32_t{a} << 24) | (std::uint32_t{b} << 16) |
                          (std::uint32_t{c} << 8) | d);
          });
        });
      });
    });
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::size_t di_size(Version version) noexcept { return version == Version::v2007 ? 4 : 2; }

std::string di_to_string(Version version, std::uint32_t di) {
  char buf[16];
  if (version == Version::v2007)
    std::snprintf(buf, sizeof buf, "%08X", di);
  else
    std::snprintf(buf, sizeof buf, "%04X", di & 0xFFFF);
  return buf;
}

std::optional<std::uint32_t> parse_di(Version version, std::string_view text) {
  const auto bytes = parse_hex(text);
  if (!bytes || bytes->size() != di_size(version)) return std::nullopt;
  std::uint32_t di = 0;
  for (auto b : *bytes) di = (di << 8) | b;
  return di;
}

std::uint32_t read_di(Version version, std::span<const std::uint8_t> bytes) {
  std::uint32_t di = 0;
  for (std::size_t i = di_size(version); i-- > 0;) di = (di << 8) | bytes[i];
  return di;
}

void append_di(Version version, std::uint32_t di, std::vector<std::uint8_t>& out) {
  for (std::size_t i = 0; i < di_size(version); ++i)
    out.push_back(byte_of(di, static_cast<int>(i)));
}

DecodedValues decode_values(const DataItem& item, std::span<const std::uint8_t> data) {
  DecodedValues out;
  const bool variable = std::any_of(item.fields.begin(), item.fields.end(), [](const Field& f) {
    return f.kind == FieldKind::raw && f.size == 0;
  });
  std::size_t n_fields = item.fields.size();
  if (!variable) {
    const std::size_t lo = item.min_size(), hi = item.max_size();
    bool fits = data.size() >= lo && data.size() <= hi;
    if (fits && item.group_size) {
      std::size_t group_bytes = 0;
      for (std::size_t i = item.fields.size() - item.group_size; i < item.fields.size(); ++i)
        group_bytes += item.fields[i].size;
      const std::size_t prefix = lo - group_bytes;
      fits = (data.size() - prefix) % group_bytes == 0;
      n_fields = item.fields.size() - item.fields.size() / item.group_size * item.group_size +
                 (data.size() - prefix) / group_bytes * item.group_size;
    } else if (fits) {
      fits = data.size() == hi;
    }
    if (!fits) {
      out.error = ValueError::length_mismatch;
      out.message = "expected " +
                    (item.group_size
                         ? std::to_string(lo) + ".." + std::to_string(hi) + " bytes in whole groups"
                         : std::to_string(hi) + " bytes") +
                    ", got " + std::to_string(data.size());
      return out;
    }
  }
  std::size_t pos = 0;
  for (std::size_t i = 0; i < n_fields; ++i) {
    const Field& f = item.fields[i];
    const std::size_t size = f.kind == FieldKind::raw && f.size == 0 ? data.size() - pos : f.size;
    const auto bytes = data.subspan(pos, size);
    out.values.push_back({f.quantity, f.unit, decode_field(f, bytes)});
    if (auto why = field_problem(f, bytes); !why.empty())
      out.problems.push_back(f.quantity + ": " + why + " (wire " + to_hex(bytes, true) +
                             "), not a valid value");
    pos += size;
  }
  return out;
}

std::optional<std::vector<std::uint8_t>> encode_values(const DataItem& item,
                                                       const std::vector<ValueData>& values) {
  if (values.size() > item.fields.size()) return std::nullopt;
  if (item.group_size == 0 && values.size() != item.fields.size()) return std::nullopt;
  if (item.group_size) {
    const std::size_t prefix = item.fields.size() % item.group_size;
    if (values.size() < prefix + item.group_size || (values.size() - prefix) % item.group_size != 0)
      return std::nullopt;
  }
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const auto bytes = encode_field(item.fields[i], values[i]);
    if (!bytes) return std::nullopt;
    out.insert(out.end(), bytes->begin(), bytes->end());
  }
  return out;
}

}  // namespace meterd::protocol::dlt645
