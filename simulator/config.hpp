// metersim's configuration: sim.toml or the quick flags -> a validated
// FleetConfig (see simulator/README.md). Errors name file, line and key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "drivers/serial_port.hpp"

namespace meterd::simulator {

struct BusSpec {
  std::string name;
  drivers::LineSettings line;
  bool echo = false;  // the master hears its own requests (2-wire adapter, receiver on)
};

struct TcpSpec {
  std::string name;
  unsigned port = 0;  // 0: any free loopback port
};

struct MeterSpec {
  std::string id;
  std::string protocol;  // dlt645-2007 | dlt645-1997 | modbus
  std::string bus;       // a bus name, or a tcp name for Modbus TCP
  std::string address;   // DL/T 645: 12 digits; Modbus: unit id 1..247
  std::string model;     // modbus: sdm630 | sdm120 | dtsu666 | dtsu666h | generic; dlt645: ""
  unsigned tariffs = 4;
  unsigned phases = 3;
  unsigned turnaround_ms = 0;  // 0: drawn from 20..60 ms
  double drift_ppm = 0;
  std::string password = "02000000";  // DL/T 645 plaintext level + password
  std::uint64_t seed = 0;             // 0: derived from the fleet seed
  unsigned power_up_ms = 2000;        // silent this long after power_cycle / online
};

// A transformer area (台区): a summary meter (总表) and the households it
// feeds; the summary registers Σ households' load / (1 - loss).
struct AreaSpec {
  std::string summary;                  // a dlt645-2007 meter id
  std::vector<std::string> households;  // DL/T 645 (2007 or 1997) or Modbus meter ids
  std::string loss_percent = "0";       // as written: "3.5" (parse_loss_percent)
};

// "3.5" (percent, up to 4 decimals) -> 35000 ppm; nullopt unless a plain
// decimal in [0, 50).
std::optional<std::int64_t> parse_loss_percent(const std::string& text);

struct FleetConfig {
  std::uint64_t seed = 1;
  bool static_values = false;
  bool wire_timing = true;
  int utc_offset_minutes = 0;
  std::filesystem::path run_dir;  // ptys' links and the control socket
  std::vector<BusSpec> buses;
  std::vector<TcpSpec> tcp;
  std::vector<MeterSpec> meters;
  std::optional<AreaSpec> area;
};

// A config error that names file, line and key.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// sim.toml -> FleetConfig (see simulator/README.md). Throws ConfigError.
FleetConfig load_config(const std::filesystem::path& file);

// The quick-flag fleet: meters spread round-robin over `buses` RS-485 buses
// (Modbus TCP meters behind one converter port, up to 32 units each).
// `area` > 0 adds an area: a DL/T 645-2007 summary meter "area-s" and
// `area` 2007 households "area-h1"... (addresses 880000000000 and up).
struct QuickCounts {
  unsigned dlt2007 = 0, dlt1997 = 0, modbus_rtu = 0, modbus_tcp = 0, buses = 1, baud = 2400;
  unsigned area = 0;
  std::string area_loss_percent = "3";
};
FleetConfig quick_config(const QuickCounts& counts);

// Checks ids, names, addresses, units, models; throws ConfigError.
void validate(const FleetConfig& config);

}  // namespace meterd::simulator
