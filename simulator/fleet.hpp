// The whole simulated installation: buses (ptys), Modbus TCP converters,
// the meters on them, the simulated clock, and the control channel (a Unix
// socket speaking JSON lines). Lives on one io_context thread.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>  // before Asio: Boost 1.74 uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "drivers/serial_port.hpp"
#include "simulator/bus.hpp"
#include "simulator/dlt645_meter.hpp"

namespace meterd::simulator {

struct BusSpec {
  std::string name;
  drivers::LineSettings line;
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
};

struct FleetConfig {
  std::uint64_t seed = 1;
  bool static_values = false;
  bool wire_timing = true;
  int utc_offset_minutes = 0;
  std::filesystem::path run_dir;  // ptys' links and the control socket
  std::vector<BusSpec> buses;
  std::vector<TcpSpec> tcp;
  std::vector<MeterSpec> meters;
};

// A config error that names file, line and key.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// sim.toml -> FleetConfig (see simulator/README.md). Throws ConfigError.
FleetConfig load_config(const std::filesystem::path& file);

// The quick-flag fleet: meters spread round-robin over `buses` RS-485 buses
// (Modbus TCP meters behind one converter port, up to 32 units each).
struct QuickCounts {
  unsigned dlt2007 = 0, dlt1997 = 0, modbus_rtu = 0, modbus_tcp = 0, buses = 1, baud = 2400;
};
FleetConfig quick_config(const QuickCounts& counts);

// Checks ids, names, addresses, units, models; throws ConfigError.
void validate(const FleetConfig& config);

class Fleet {
 public:
  Fleet(boost::asio::io_context& io, FleetConfig config);
  ~Fleet();

  // Opens every pty, TCP port and the control socket.
  void start();
  void stop();

  // {"buses":[{name,path,baud,parity,meters:[{id,protocol,address,model}]}],"tcp":[...],"control":...}
  nlohmann::json endpoints() const;
  // A meterd config (docs/contracts.md contract) for exactly this fleet.
  std::string gateway_config(const std::string& gateway_id, const std::string& data_dir) const;

  // One control-channel command -> its answer ({"ok":true,...} | {"ok":false,"error":...}).
  nlohmann::json control(const nlohmann::json& request);

  const SimClock& clock() const noexcept { return clock_; }
  std::size_t meter_count() const noexcept { return seats_.size(); }

 private:
  struct TcpServer;
  struct ControlServer;

  Seat* find_seat(const std::string& id);
  Bus* find_bus(const std::string& name);

  boost::asio::io_context& io_;
  FleetConfig config_;
  SimClock clock_;
  std::vector<std::unique_ptr<Dlt645Meter>> dlt_meters_;
  std::vector<std::unique_ptr<ModbusSlave>> modbus_meters_;
  std::vector<std::unique_ptr<Seat>> seats_;
  std::map<std::string, const MeterSpec*> specs_;
  std::vector<std::unique_ptr<Bus>> buses_;
  std::vector<std::unique_ptr<TcpServer>> tcp_;
  std::unique_ptr<ControlServer> control_;
};

}  // namespace meterd::simulator
