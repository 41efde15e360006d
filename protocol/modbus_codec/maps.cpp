// The built-in register maps. Every address, type, unit and default below
// comes from the manufacturers' protocol documents (Eastron SDM630 Modbus
// protocol V1.8 / 2018 v2.0, SDM120 V2.4 / V2.5, Chint DTSU666 user manual
// ZTY0.464.1448 §5.3), as tabled in tests/data/modbus/register-tables.md
// (section numbers in the comments refer to it); where sources disagree, the
// choice is stated here and in docs/modbus.md. Names marked "(ext)" are
// extensions of the canonical list (docs/contracts.md).
#include "protocol/modbus_codec/detail/maps.hpp"

#include <algorithm>
#include <utility>

namespace meterd::protocol::modbus::detail {

namespace {

constexpr Decimal one{1, 0};
constexpr Decimal deci{1, -1};         // 0.1
constexpr Decimal centi{1, -2};        // 0.01
constexpr Decimal milli{1, -3};        // 0.001: W → kW, mA → A, PF × 1000
constexpr Decimal tenth_milli{1, -4};  // 0.0001: 0.1 W → kW

// Appends registers to one model with a fixed table/encoding per call site.
class Builder {
 public:
  explicit Builder(std::vector<Register>& out) : out_(out) {}

  Builder& add(std::uint16_t address, Table table, Encoding encoding, Decimal scale,
               std::string quantity, std::string unit, std::string description,
               Access access = Access::read, std::uint8_t alternative = 0) {
    out_.push_back(Register{address, table, encoding, scale, std::move(quantity), std::move(unit),
                            std::move(description), access, alternative});
    return *this;
  }
  // float32 input register (Eastron measurements).
  Builder& in(std::uint16_t address, Decimal scale, std::string quantity, std::string unit,
              std::string description) {
    return add(address, Table::input, Encoding::float32, scale, std::move(quantity),
               std::move(unit), std::move(description));
  }
  // float32 holding register.
  Builder& hf(std::uint16_t address, Decimal scale, std::string quantity, std::string unit,
              std::string description, Access access = Access::read, std::uint8_t alternative = 0) {
    return add(address, Table::holding, Encoding::float32, scale, std::move(quantity),
               std::move(unit), std::move(description), access, alternative);
  }

 private:
  std::vector<Register>& out_;
};

// Three registers l1, l2, l3 spaced two apart.
template <class F>
void phases(std::uint16_t first, F&& add_one) {
  static const char* const suffix[] = {"l1", "l2", "l3"};
  for (int i = 0; i < 3; ++i) add_one(static_cast<std::uint16_t>(first + 2 * i), suffix[i], i + 1);
}

std::string n(int phase) { return std::to_string(phase); }

// ---- Eastron SDM630 (register-tables.md §1) ---------------------------------------

Model sdm630() {
  Model m;
  m.name = "sdm630";
  m.description = "Eastron SDM630-Modbus v1/v2 incl. MID (three-phase), float32 registers";
  Builder b(m.registers);
  // §1.2 input registers, float32, FC 04.
  phases(0x0000, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("voltage.") + p, "V", "Phase " + n(i) + " line to neutral volts");
  });
  phases(0x0006, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("current.") + p, "A", "Phase " + n(i) + " current");
  });
  phases(0x000C, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, milli, std::string("power.active.") + p, "kW", "Phase " + n(i) + " active power (W)");
  });
  phases(0x0012, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, milli, std::string("power.apparent.") + p, "kVA",
         "Phase " + n(i) + " apparent power (VA)");
  });
  phases(0x0018, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, milli, std::string("power.reactive.") + p, "kvar",
         "Phase " + n(i) + " reactive power (var)");
  });
  phases(0x001E, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("power_factor.") + p, "",
         "Phase " + n(i) + " power factor (sign: see docs, V1.8 and v2.0 disagree)");
  });
  phases(0x0024, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("phase_angle.") + p, "°", "Phase " + n(i) + " phase angle");
  });
  b.in(0x002A, one, "voltage.ln_avg", "V", "Average line to neutral volts")
      .in(0x002E, one, "current.avg", "A", "Average line current")
      .in(0x0030, one, "current.sum", "A", "Sum of line currents")
      .in(0x0034, milli, "power.active.total", "kW", "Total system power (W)")
      .in(0x0038, milli, "power.apparent.total", "kVA", "Total system volt amps (VA)")
      .in(0x003C, milli, "power.reactive.total", "kvar", "Total system VAr (var)")
      .in(0x003E, one, "power_factor.total", "", "Total system power factor")
      .in(0x0042, one, "phase_angle.total", "°", "Total system phase angle")
      .in(0x0046, one, "frequency", "Hz", "Frequency of supply voltages")
      .in(0x0048, one, "energy.active.import.total", "kWh",
          "Total import kWh (MWh if the energy prefix 0x001E is set to M, v2.0)")
      .in(0x004A, one, "energy.active.export.total", "kWh", "Total export kWh (MWh if prefix M)")
      .in(0x004C, one, "energy.reactive.import.total", "kvarh", "Total import kVArh")
      .in(0x004E, one, "energy.reactive.export.total", "kvarh", "Total export kVArh")
      .in(0x0050, one, "energy.apparent.total", "kVAh", "Total VAh (kVAh)")
      .in(0x0052, one, "charge.total", "Ah", "Ah")
      .in(0x0054, milli, "demand.active.total", "kW", "Total system power demand (W)")
      .in(0x0056, milli, "demand.active.max", "kW",
          "Maximum total system power demand (W; the V1.8 table says VA, a typo)")
      .in(0x0064, milli, "demand.apparent.total", "kVA", "Total system VA demand (VA)")
      .in(0x0066, milli, "demand.apparent.max", "kVA", "Maximum total system VA demand (VA)")
      .in(0x0068, one, "demand.current.n", "A", "Neutral current demand")
      .in(0x006A, one, "demand.current.n.max", "A", "Maximum neutral current demand");
  b.in(0x00C8, one, "voltage.l1_l2", "V", "Line 1 to line 2 volts")
      .in(0x00CA, one, "voltage.l2_l3", "V", "Line 2 to line 3 volts")
      .in(0x00CC, one, "voltage.l3_l1", "V", "Line 3 to line 1 volts")
      .in(0x00CE, one, "voltage.ll_avg", "V", "Average line to line volts")
      .in(0x00E0, one, "current.n", "A", "Neutral current");
  phases(0x00EA, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("thd.voltage.") + p, "%", "Phase " + n(i) + " L/N volts THD");
  });
  phases(0x00F0, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("thd.current.") + p, "%", "Phase " + n(i) + " current THD");
  });
  b.in(0x00F8, one, "thd.voltage.avg", "%", "Average line to neutral volts THD")
      .in(0x00FA, one, "thd.current.avg", "%", "Average line current THD")
      .in(0x00FE, one, "power_factor.total_inverted", "",
          "Total system power factor with the sign inverted (v2.0 only; its unit column says "
          "Degrees)");
  phases(0x0102, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("demand.current.") + p, "A", "Phase " + n(i) + " current demand");
  });
  phases(0x0108, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("demand.current.") + p + ".max", "A",
         "Maximum phase " + n(i) + " current demand");
  });
  b.in(0x014E, one, "thd.voltage.l1_l2", "%", "Line 1 to line 2 volts THD")
      .in(0x0150, one, "thd.voltage.l2_l3", "%", "Line 2 to line 3 volts THD")
      .in(0x0152, one, "thd.voltage.l3_l1", "%", "Line 3 to line 1 volts THD")
      .in(0x0154, one, "thd.voltage.ll_avg", "%", "Average line to line volts THD")
      .in(0x0156, one, "energy.active.total", "kWh",
          "Total kWh = import + export (V1.8 note 3; a B+G manual page says export only)")
      .in(0x0158, one, "energy.reactive.total", "kvarh", "Total kVArh = import + export");
  phases(0x015A, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("energy.active.import.") + p, "kWh", "L" + n(i) + " import kWh");
  });
  phases(0x0160, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("energy.active.export.") + p, "kWh", "L" + n(i) + " export kWh");
  });
  phases(0x0166, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("energy.active.total.") + p, "kWh", "L" + n(i) + " total kWh");
  });
  phases(0x016C, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("energy.reactive.import.") + p, "kvarh", "L" + n(i) + " import kVArh");
  });
  phases(0x0172, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("energy.reactive.export.") + p, "kvarh", "L" + n(i) + " export kVArh");
  });
  phases(0x0178, [&](std::uint16_t a, const char* p, int i) {
    b.in(a, one, std::string("energy.reactive.total.") + p, "kvarh", "L" + n(i) + " total kVArh");
  });

  // §1.3 holding registers: float32, FC 03 read, FC 10 write, one parameter per write.
  const Access rw = Access::read_write;
  b.hf(0x0000, one, "info.demand_time", "min",
       "Demand Time: minutes into the first demand period "
       "(v2.0 table only)")
      .hf(0x0002, one, "setting.demand_period", "min",
          "Demand Period: 0, 5, 8, 10, 15, 20, 30, 60 min; default 60", rw)
      .hf(0x0006, one, "info.system_voltage", "V", "System Volts (v2.0 only)")
      .hf(0x0008, one, "info.system_current", "A",
          "System Current (v2.0 only; its table prints 00 06, a typo for 0x0008)")
      .hf(0x000A, one, "setting.system_type", "",
          "System Type: 1 = 1P2W, 2 = 3P3W, 3 = 3P4W; "
          "needs the password",
          rw)
      .hf(0x000C, one, "setting.pulse_width", "ms",
          "Pulse 1 / relay pulse width: 60, 100, 200 ms (default 100 in V1.8, 200 in v2.0)", rw)
      .hf(0x000E, one, "info.password_lock", "", "Password Lock: 0 = locked, 1 = unlocked")
      .hf(0x0012, one, "setting.parity_stop", "",
          "Network Parity Stop: 0 = N1 (default), 1 = E1, 2 = O1, 3 = N2; after restart", rw)
      .hf(0x0014, one, "setting.unit_id", "", "Network Node: 1-247, default 1; after restart", rw)
      .hf(0x0016, one, "setting.pulse_divisor", "",
          "Pulse divisor (V1.8: index 0-5 = 0.0025..100 kWh/imp; v2.0: n = 2..6, Wh/10^n)", rw)
      .hf(0x0018, one, "setting.password", "", "Password (default 0000; unlocks for 1 min)", rw)
      .hf(0x001C, one, "setting.baud_code", "",
          "Network Baud Rate: 0 = 2400, 1 = 4800, 2 = 9600 (default), 3 = 19200, 4 = 38400; "
          "after restart",
          rw)
      .hf(0x001E, one, "setting.energy_prefix", "",
          "Energy units prefix: 0 = k (default), 1 = M (v2.0 only)", rw)
      .hf(0x0024, milli, "info.system_power", "kW", "System Power (W; v2.0 only)")
      .hf(0x0028, one, "setting.register_order", "",
          "Register Order: write 2141.0 in the desired word order", rw)
      .hf(0x002A, one, "info.serial_number_hi", "", "Serial Number Hi (v2.0; format unverified)")
      .hf(0x002C, one, "info.serial_number_lo", "", "Serial Number Lo (v2.0; format unverified)")
      .hf(0x0056, one, "setting.pulse1_energy_type", "",
          "Pulse 1 energy type (V1.8 and v2.0 codes disagree)", rw)
      .hf(0x0058, one, "setting.relay2_energy_type", "", "Relay 2 energy type (v2.0 only)", rw)
      .hf(0x00D8, one, "command.reset_logged_data", "",
          "Reset logged data: 1 = energy, 2 = demand max, 3 = demand max + time (v2.0 only)",
          Access::write);
  b.add(0xF010, Table::holding, Encoding::uint16, one, "command.reset_demand", "",
        "Reset: write 0x0000 (2 bytes, hex) to reset maximum demand (V1.8 only)", Access::write)
      .add(0xFC00, Table::holding, Encoding::uint32, one, "info.serial_number", "",
           "Serial number (uint32, V1.8)");

  Quirks& q = m.quirks;
  q.max_read_registers = 80;  // 40 values (§1.1)
  q.plan_max_registers = 80;
  q.plan_max_gap = 40;  // unlisted addresses inside a read answer 0.0 (ESPHome, mbmd #63)
  q.even_alignment = true;
  q.single_register_answer = 0x0000;  // mbmd issue #63 trace
  q.unlisted_read_as_zero = true;
  q.one_parameter_per_write = true;
  q.min_request_gap_ms = 60;           // V1.8/v2.0 §1.5
  q.recommended_request_gap_ms = 100;  // openWB PR #2184
  q.default_unit = 1;
  q.default_baud = 9600;  // 8N1 (§1.4)
  return m;
}

// ---- Eastron SDM120 (register-tables.md §2) ---------------------------------------

Model sdm120() {
  Model m;
  m.name = "sdm120";
  m.description = "Eastron SDM120-Modbus / SDM120M (single-phase), float32 registers";
  Builder b(m.registers);
  // §2.2 input registers, float32, FC 04. The single phase maps to l1; its
  // power and PF are the totals.
  b.in(0x0000, one, "voltage.l1", "V", "Voltage (L-N)")
      .in(0x0006, one, "current.l1", "A", "Current")
      .in(0x000C, milli, "power.active.total", "kW", "Active power (W); = power.active.l1")
      .in(0x0012, milli, "power.apparent.total", "kVA", "Apparent power (VA)")
      .in(0x0018, milli, "power.reactive.total", "kvar", "Reactive power (var)")
      .in(0x001E, one, "power_factor.total", "", "Power factor; = power_factor.l1")
      .in(0x0024, one, "phase_angle.l1", "°", "Phase angle (Eastron-Europe document only)")
      .in(0x0046, one, "frequency", "Hz", "Frequency")
      .in(0x0048, one, "energy.active.import.total", "kWh", "Import active energy")
      .in(0x004A, one, "energy.active.export.total", "kWh", "Export active energy")
      .in(0x004C, one, "energy.reactive.import.total", "kvarh", "Import reactive energy")
      .in(0x004E, one, "energy.reactive.export.total", "kvarh", "Export reactive energy")
      .in(0x0054, milli, "demand.active.total", "kW", "Total system power demand (W; V2.4/V2.5)")
      .in(0x0056, milli, "demand.active.max", "kW", "Maximum total system power demand (W)")
      .in(0x0058, milli, "demand.active.import", "kW", "Import system power demand (W)")
      .in(0x005A, milli, "demand.active.import.max", "kW", "Maximum import system power demand (W)")
      .in(0x005C, milli, "demand.active.export", "kW", "Export system power demand (W)")
      .in(0x005E, milli, "demand.active.export.max", "kW", "Maximum export system power demand (W)")
      .in(0x0102, one, "demand.current.l1", "A", "Current demand")
      .in(0x0108, one, "demand.current.l1.max", "A", "Maximum current demand")
      .in(0x0156, one, "energy.active.total", "kWh",
          "Total active energy, per measurement mode 0xF920 (default import + export)")
      .in(0x0158, one, "energy.reactive.total", "kvarh", "Total reactive energy");

  // §2.3 holding registers (V2.4/V2.5, Zhejiang Eastron).
  const Access rw = Access::read_write;
  b.hf(0x000C, one, "setting.pulse_width", "ms", "Relay pulse width: 60/100/200 ms, default 100",
       rw)
      .hf(0x0012, one, "setting.parity_stop", "",
          "Network parity/stop: 0 = N1 (default), 1 = E1, 2 = O1, 3 = N2; after restart", rw)
      .hf(0x0014, one, "setting.unit_id", "", "Meter ID: 1-247, default 1", rw)
      .hf(0x001C, one, "setting.baud_code", "",
          "Baud rate: 0 = 2400 (default), 1 = 4800, 2 = 9600, 5 = 1200 (V2.4/V2.5)", rw)
      .hf(0x0056, one, "setting.pulse1_output_mode", "",
          "Pulse 1 output mode: 1 imp kWh, 2 imp+exp kWh, 4 exp kWh (default), 5/6/8 kvarh", rw);
  b.add(0xF900, Table::holding, Encoding::uint16, one, "setting.scroll_time", "s",
        "Time of scroll display 0-30 s, 0 = no scrolling (2 bytes hex; nmakel says float)", rw)
      .add(0xF910, Table::holding, Encoding::uint16, one, "setting.pulse1_constant", "",
           "Pulse 1 output: 0 = 0.001 kWh/imp (default), 1 = 0.01, 2 = 0.1, 3 = 1 (2 bytes hex)",
           rw)
      .add(0xF920, Table::holding, Encoding::uint16, one, "setting.measurement_mode", "",
           "Measurement mode: 1 total = import, 2 total = import + export (default), 3 total = "
           "import - export (2 bytes hex)",
           rw)
      .add(0xFC00, Table::holding, Encoding::uint32, one, "info.serial_number", "",
           "Serial number (uint32)")
      .add(0xFC02, Table::holding, Encoding::uint16, one, "info.meter_code", "",
           "Meter code (0x0020)")
      .add(0xFC03, Table::holding, Encoding::uint16, one, "info.software_version", "",
           "Software version");

  Quirks& q = m.quirks;
  q.max_read_registers = 80;  // Eastron-Europe document; V2.x silent (§2.1)
  q.plan_max_registers = 80;
  q.plan_max_gap = 40;
  q.even_alignment = true;
  q.single_register_answer = 0x0000;
  q.unlisted_read_as_zero = true;
  q.one_parameter_per_write = true;
  q.min_request_gap_ms = 60;
  q.recommended_request_gap_ms = 100;
  q.default_unit = 1;
  q.default_baud = 2400;  // 8N1 (§2.4; the Eastron-Europe PDF says 9600)
  return m;
}

// ---- Chint DTSU666, native firmware (register-tables.md §3) -----------------------

Model dtsu666() {
  Model m;
  m.name = "dtsu666";
  m.description =
      "Chint DTSU666 (three-phase), native Chint map: scaled float32 measurements, int16 "
      "configuration";
  Builder b(m.registers);
  const Access rw = Access::read_write;
  auto cfg = [&](std::uint16_t a, Decimal scale, const char* q, const char* unit, const char* d,
                 Access acc) { b.add(a, Table::holding, Encoding::int16, scale, q, unit, d, acc); };
  // §3.2 configuration registers, int16, FC 03 / FC 10.
  cfg(0x0000, one, "info.software_version", "", "REV.: software version (204 observed)",
      Access::read);
  cfg(0x0001, one, "setting.programming_code", "", "UCode: programming code 1-9999 (701 observed)",
      rw);
  cfg(0x0002, one, "command.energy_clear", "", "ClrE: 1 = clear energy", rw);
  cfg(0x0003, one, "setting.wiring", "", "net: 0 = 3P4W, 1 = 3P3W", rw);
  cfg(0x0006, one, "setting.ct_ratio", "", "IrAt: CT ratio 1-9999 (default 1)", rw);
  cfg(0x0007, deci, "setting.pt_ratio", "",
      "UrAt: PT ratio in 0.1 (raw 1-9999; raw 10 = ratio 1.0, the default)", rw);
  cfg(0x000A, one, "setting.display_time", "s", "Disp: rotating display time", rw);
  cfg(0x000B, one, "setting.backlight_time", "",
      "B.LCD: backlight time (ZTY0.464.1448); the 2016 manual calls it 'Meter type' (R), "
      "Solax emulators put a device type here (166)",
      rw);
  cfg(0x000C, one, "setting.endian", "", "Endian: reserved (0)", Access::read);
  cfg(0x002C, one, "setting.protocol", "",
      "Protocol: 1 = DL/T645, 2 = n.2, 3 = n.1 (default), 4 = E.1, 5 = o.1", rw);
  cfg(0x002D, one, "setting.baud_code", "",
      "bAud: 0 = 1200, 1 = 2400, 2 = 4800, 3 = 9600 (default), 4 = 19200 (the 2016 manual swaps "
      "0x002D and 0x002E)",
      rw);
  cfg(0x002E, one, "setting.unit_id", "", "Addr: 1-247 (default 1)", rw);
  cfg(0x002F, one, "clock.second", "", "Clock: second", rw);
  cfg(0x0030, one, "clock.minute", "", "Clock: minute", rw);
  cfg(0x0031, one, "clock.hour", "", "Clock: hour", rw);
  cfg(0x0032, one, "clock.day", "", "Clock: day", rw);
  cfg(0x0033, one, "clock.month", "", "Clock: month", rw);
  cfg(0x0034, one, "clock.year", "", "Clock: year", rw);

  // §3.4 energy, block A (0x101E-0x1030, newer manual generation): the primary addresses.
  b.hf(0x101E, one, "energy.active.import.total", "kWh",
       "ImpEp: total import active energy "
       "(block A; × IrAt × UrAt/10)");
  phases(0x1020, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, one, std::string("energy.active.import.") + p, "kWh",
         std::string("ImpEp") + static_cast<char>('A' + i - 1) + ": phase import (block A)");
  });
  b.hf(0x1026, one, "energy.active.import.net", "kWh", "NetImpEp: net import (block A)")
      .hf(0x1028, one, "energy.active.export.total", "kWh",
          "ExpEp: total export active energy (block A)");
  phases(0x102A, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, one, std::string("energy.active.export.") + p, "kWh",
         std::string("ExpEp") + static_cast<char>('A' + i - 1) + ": phase export (block A)");
  });
  b.hf(0x1030, one, "energy.active.export.net", "kWh", "NetExpEp: net export (block A)");

  // §3.3 measurements: float32 in scaled units, FC 03 (FC 04 answered too).
  b.hf(0x2000, deci, "voltage.l1_l2", "V", "Uab (0.1 V); invalid in 3P4W")
      .hf(0x2002, deci, "voltage.l2_l3", "V", "Ubc (0.1 V); invalid in 3P4W")
      .hf(0x2004, deci, "voltage.l3_l1", "V", "Uca (0.1 V); invalid in 3P4W");
  phases(0x2006, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, deci, std::string("voltage.") + p, "V",
         std::string("U") + static_cast<char>('a' + i - 1) + " phase voltage (0.1 V)");
  });
  phases(0x200C, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, milli, std::string("current.") + p, "A",
         std::string("I") + static_cast<char>('a' + i - 1) + " current (0.001 A)");
  });
  b.hf(0x2012, tenth_milli, "power.active.total", "kW",
       "Pt total active power (0.1 W); > 0 = import");
  phases(0x2014, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, tenth_milli, std::string("power.active.") + p, "kW",
         std::string("P") + static_cast<char>('a' + i - 1) + " active power (0.1 W)");
  });
  b.hf(0x201A, tenth_milli, "power.reactive.total", "kvar", "Qt total reactive power (0.1 var)");
  phases(0x201C, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, tenth_milli, std::string("power.reactive.") + p, "kvar",
         std::string("Q") + static_cast<char>('a' + i - 1) + " reactive power (0.1 var)");
  });
  b.hf(0x2022, tenth_milli, "power.apparent.total", "kVA",
       "St total apparent power (0.1 VA, inferred): UNCONFIRMED, not in the Chint tables; used "
       "by salakrzy and a Tasmota fork");
  phases(0x2024, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, tenth_milli, std::string("power.apparent.") + p, "kVA",
         std::string("S") + static_cast<char>('a' + i - 1) +
             " apparent power (0.1 VA, inferred): UNCONFIRMED");
  });
  b.hf(0x202A, milli, "power_factor.total", "", "PFt total power factor (0.001)");
  phases(0x202C, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, milli, std::string("power_factor.") + p, "",
         std::string("PF") + static_cast<char>('a' + i - 1) + " power factor (0.001)");
  });
  b.hf(0x2044, centi, "frequency", "Hz", "Freq (0.01 Hz)")
      .hf(0x2050, tenth_milli, "demand.active.total", "kW",
          "DmPt total active power demand (0.1 W presumed; 2016 quick manual)");

  // §3.4 energy, block B (0x401E-0x4050, 2016 quick manual): fallbacks for
  // import/export, and the only source of the quadrant reactive energies.
  b.hf(0x4000, one, "energy.active.import.total", "kWh",
       "Total active energy: in neither Chint table; OpenEMS (FC 04) and an mbpoll page read it",
       Access::read, 2)
      .hf(0x401E, one, "energy.active.import.total", "kWh",
          "ImpEp (current) positive active total energy (block B)", Access::read, 1)
      .hf(0x4028, one, "energy.active.export.total", "kWh",
          "ExpEp (current) negative active total energy (block B)", Access::read, 1)
      .hf(0x4032, one, "energy.reactive.q1.total", "kvarh",
          "Q1Eq quadrant I reactive energy (import kvarh = Q1 + Q2, assumed)")
      .hf(0x403C, one, "energy.reactive.q2.total", "kvarh", "Q2Eq quadrant II reactive energy")
      .hf(0x4046, one, "energy.reactive.q3.total", "kvarh",
          "Q3Eq quadrant III reactive energy (export kvarh = Q3 + Q4, assumed)")
      .hf(0x4050, one, "energy.reactive.q4.total", "kvarh", "Q4Eq quadrant IV reactive energy");

  Quirks& q = m.quirks;
  q.max_read_registers = 125;  // no documented limit (§3.1)
  q.plan_max_registers = 34;   // the largest read known to work (ztardik 0x2000 × 34)
  q.plan_max_gap = 10;  // the largest unlisted run a real unit answered in one read (salakrzy)
  q.unlisted_read_as_zero = true;
  q.fc04_reads_holding = true;  // OpenEMS, mbpoll notes
  q.default_unit = 1;
  q.default_baud = 9600;  // 8N1 (ZTY0.464.1448 §5.3); 2016 units: Modbus n.2
  return m;
}

// ---- Chint DTSU666-H, Huawei map (register-tables.md §3.7) ------------------------

Model dtsu666h() {
  Model m;
  m.name = "dtsu666h";
  m.description =
      "Chint DTSU666-H (Huawei Smart Power Sensor): float32 in engineering units at 2102, as a "
      "SUN2000 inverter polls it";
  Builder b(m.registers);
  b.add(0x07D1, Table::holding, Encoding::uint16, one, "info.meter_status", "",
        "Handshake: 0x3B11 = meter active (0x3F80 on old firmware)");
  phases(0x0836, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, one, std::string("current.") + p, "A",
         std::string("I") + static_cast<char>('a' + i - 1));
  });
  b.hf(0x083C, one, "voltage.ln_avg", "V",
       "Average L-N voltage (pazzero; salakrzy marks it unknown)");
  phases(0x083E, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, one, std::string("voltage.") + p, "V",
         std::string("U") + static_cast<char>('a' + i - 1));
  });
  b.hf(0x0844, one, "voltage.ll_avg", "V",
       "Average L-L voltage (pazzero; salakrzy marks it unknown)")
      .hf(0x0846, one, "voltage.l1_l2", "V", "Uab")
      .hf(0x0848, one, "voltage.l2_l3", "V", "Ubc")
      .hf(0x084A, one, "voltage.l3_l1", "V", "Uca")
      .hf(0x084C, one, "frequency", "Hz", "Frequency")
      .hf(0x084E, milli, "power.active.total", "kW", "Pt total active power (W)");
  phases(0x0850, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, milli, std::string("power.active.") + p, "kW",
         std::string("P") + static_cast<char>('a' + i - 1) + " (W)");
  });
  b.hf(0x0856, milli, "power.reactive.total", "kvar", "Qt total reactive power (var)");
  phases(0x0858, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, milli, std::string("power.reactive.") + p, "kvar",
         std::string("Q") + static_cast<char>('a' + i - 1) + " (var)");
  });
  b.hf(0x085E, milli, "power.apparent.total", "kVA", "St total apparent power (VA)");
  phases(0x0860, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, milli, std::string("power.apparent.") + p, "kVA",
         std::string("S") + static_cast<char>('a' + i - 1) + " (VA)");
  });
  b.hf(0x0866, one, "power_factor.total", "", "PFt");
  phases(0x0868, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, one, std::string("power_factor.") + p, "",
         std::string("PF") + static_cast<char>('a' + i - 1));
  });
  b.hf(0x086E, milli, "demand.active.total", "kW", "Active power demand total (W; pazzero)");
  phases(0x0870, [&](std::uint16_t a, const char* p, int i) {
    b.hf(a, milli, std::string("demand.active.") + p, "kW",
         std::string("Active power demand phase ") + static_cast<char>('A' + i - 1) +
             " (W; pazzero)");
  });
  b.hf(0x0876, one, "energy.active.import.total", "kWh", "ImpEp total import active energy")
      .hf(0x087E, one, "energy.active.export.total", "kWh", "ExpEp total export active energy");
  // Parameter block 0x08A6 × 10 (2214..2223), uint16; 2214/2215 unknown.
  auto par = [&](std::uint16_t a, const char* q, const char* d) {
    b.add(a, Table::holding, Encoding::uint16, one, q, "", d);
  };
  par(0x08A8, "setting.energy_clear", "2216 energy clear (0)");
  par(0x08A9, "setting.wiring", "2217 net: 0 = 3P4W");
  par(0x08AA, "setting.ct_ratio", "2218 IrAt (1)");
  par(0x08AB, "setting.pt_ratio", "2219 UrAt (1)");
  par(0x08AC, "setting.protocol", "2220 protocol (3)");
  par(0x08AD, "setting.unit_id", "2221 address (11)");
  par(0x08AE, "setting.baud_code", "2222 baud: 0 = 4800, 1 = 9600");
  par(0x08AF, "info.meter_type", "2223 meter type: 1 = three-phase");

  Quirks& q = m.quirks;
  q.max_read_registers = 125;
  q.plan_max_registers = 80;  // the inverter reads 0x0836 × 80
  q.plan_max_gap = 80;        // emulators return 0 for the unknown slots
  q.unlisted_read_as_zero = true;
  q.default_unit = 11;
  q.default_baud = 9600;  // 8N1 (pazzero) or 8N2 (salakrzy); the inverter accepts both
  return m;
}

// ---- generic integer-scaled map (designed for meterd) --------------------
//
// The shape of many Chinese three-phase meters' Modbus maps: holding
// registers, FC 03, 32-bit integers high word first with fixed decimal
// scales (0.1 V, 0.001 A, W, 0.01 kWh, 0.0001 kW demand as in DL/T 645),
// 16-bit PF/frequency/temperature. Strict: unlisted addresses answer
// exception 02, so planners must not bridge holes.

Model generic() {
  Model m;
  m.name = "generic";
  m.description =
      "Generic integer-scaled three-phase map (meterd's reference layout): int32/uint32 high word "
      "first, FC 03, FC 06/10 writes";
  Builder b(m.registers);
  const Table h = Table::holding;
  phases(0x0000, [&](std::uint16_t a, const char* p, int i) {
    b.add(a, h, Encoding::uint32, deci, std::string("voltage.") + p, "V",
          "Phase " + n(i) + " voltage, 0.1 V");
  });
  phases(0x0006, [&](std::uint16_t a, const char* p, int i) {
    b.add(a, h, Encoding::uint32, milli, std::string("current.") + p, "A",
          "Phase " + n(i) + " current, 0.001 A");
  });
  b.add(0x000C, h, Encoding::uint32, milli, "current.n", "A", "Neutral current, 0.001 A")
      .add(0x000E, h, Encoding::int32, milli, "power.active.total", "kW",
           "Total active power, W (signed, > 0 = import)");
  phases(0x0010, [&](std::uint16_t a, const char* p, int i) {
    b.add(a, h, Encoding::int32, milli, std::string("power.active.") + p, "kW",
          "Phase " + n(i) + " active power, W");
  });
  b.add(0x0016, h, Encoding::int32, milli, "power.reactive.total", "kvar",
        "Total reactive power, var")
      .add(0x0018, h, Encoding::uint32, milli, "power.apparent.total", "kVA",
           "Total apparent power, VA")
      .add(0x001A, h, Encoding::int16, milli, "power_factor.total", "", "Total power factor, 0.001")
      .add(0x001B, h, Encoding::int16, milli, "power_factor.l1", "", "Phase 1 power factor, 0.001")
      .add(0x001C, h, Encoding::int16, milli, "power_factor.l2", "", "Phase 2 power factor, 0.001")
      .add(0x001D, h, Encoding::int16, milli, "power_factor.l3", "", "Phase 3 power factor, 0.001")
      .add(0x001E, h, Encoding::uint16, centi, "frequency", "Hz", "Frequency, 0.01 Hz")
      .add(0x001F, h, Encoding::int16, deci, "temperature.meter", "°C",
           "Meter temperature, 0.1 °C");
  b.add(0x0100, h, Encoding::uint32, centi, "energy.active.import.total", "kWh",
        "Forward active energy, 0.01 kWh");
  for (int t = 1; t <= 4; ++t)
    b.add(static_cast<std::uint16_t>(0x0100 + 2 * t), h, Encoding::uint32, centi,
          "energy.active.import.t" + n(t), "kWh", "Forward active energy, tariff " + n(t));
  b.add(0x010A, h, Encoding::uint32, centi, "energy.active.export.total", "kWh",
        "Reverse active energy, 0.01 kWh")
      .add(0x010C, h, Encoding::uint32, centi, "energy.reactive.import.total", "kvarh",
           "Reactive energy import, 0.01 kvarh")
      .add(0x010E, h, Encoding::uint32, centi, "energy.reactive.export.total", "kvarh",
           "Reactive energy export, 0.01 kvarh")
      .add(0x0110, h, Encoding::int32, centi, "energy.active.combined.total", "kWh",
           "Combined active energy, 0.01 kWh (signed)")
      .add(0x0112, h, Encoding::uint32, tenth_milli, "demand.active.import.max", "kW",
           "Maximum forward active demand, 0.0001 kW");
  b.add(0x0200, h, Encoding::uint16, one, "setting.unit_id", "", "Modbus address 1-247",
        Access::read_write)
      .add(0x0201, h, Encoding::uint16, one, "setting.baud_code", "",
           "0 = 1200, 1 = 2400, 2 = 4800, 3 = 9600 (default), 4 = 19200", Access::read_write);

  Quirks& q = m.quirks;
  q.max_read_registers = 125;
  q.plan_max_registers = 125;
  q.plan_max_gap = 32;  // over listed registers only (unlisted answer exception 02)
  q.unlisted_read_as_zero = false;
  q.fc06_write = true;
  q.default_unit = 1;
  q.default_baud = 9600;
  return m;
}

}  // namespace

std::vector<Model> build_models() {
  std::vector<Model> all;
  all.push_back(sdm630());
  all.push_back(sdm120());
  all.push_back(dtsu666());
  all.push_back(dtsu666h());
  all.push_back(generic());
  for (Model& m : all)
    std::stable_sort(m.registers.begin(), m.registers.end(),
                     [](const Register& a, const Register& b) {
                       return std::pair{a.table, a.address} < std::pair{b.table, b.address};
                     });
  return all;
}

}  // namespace meterd::protocol::modbus::detail
