// metersim: a fleet of virtual DL/T 645 and Modbus meters on virtual
// RS-485 buses (ptys) and Modbus TCP converters, with wire timing, history
// and fault injection. See simulator/README.md.
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <unistd.h>

#include "simulator/fleet.hpp"

namespace {

void write_atomically(const std::filesystem::path& file, const std::string& text) {
  const auto tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, file);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"metersim: virtual DL/T 645 and Modbus meters on ptys and TCP"};
  std::string config_file, endpoints_file, gateway_file, run_dir, gateway_id = "gw-sim", data_dir;
  meterd::simulator::QuickCounts n;
  std::uint64_t seed = 1;
  bool is_static = false, no_wire_timing = false;
  int utc_offset = 0;
  app.add_option("--config", config_file, "A sim.toml describing buses, converters and meters");
  app.add_option("--dlt645-2007", n.dlt2007, "Number of DL/T 645-2007 meters");
  app.add_option("--dlt645-1997", n.dlt1997, "Number of DL/T 645-1997 meters");
  app.add_option("--modbus-rtu", n.modbus_rtu,
                 "Number of Modbus RTU meters (SDM630, SDM120, DTSU666, generic in turn)");
  app.add_option("--modbus-tcp", n.modbus_tcp,
                 "Number of Modbus TCP meters (32 units per converter port)");
  app.add_option("--area", n.area,
                 "Add a transformer area: a DL/T 645-2007 summary meter area-s and N 2007 "
                 "households area-h1..area-hN")
      ->check(CLI::Range(1u, 1024u));
  app.add_option("--area-loss-percent", n.area_loss_percent,
                 "The area's technical line loss in percent, [0, 50) (default 3)");
  app.add_option("--buses", n.buses, "RS-485 buses to spread the serial meters over")
      ->check(CLI::Range(1u, 256u));
  app.add_option("--baud", n.baud, "Baud rate of the quick buses (8E1)")
      ->check(
          CLI::IsMember({300u, 600u, 1200u, 2400u, 4800u, 9600u, 19200u, 38400u, 57600u, 115200u}));
  app.add_option("--seed", seed, "Seed of every load curve and history (deterministic)");
  app.add_flag("--static", is_static, "Values stay at their seeded start values");
  app.add_flag("--no-wire-timing", no_wire_timing, "Answer at once instead of at line rate");
  app.add_option("--utc-offset-minutes", utc_offset, "Meter local time = UTC + this")
      ->check(CLI::Range(-720, 840));
  app.add_option("--run-dir", run_dir,
                 "Where bus links and the control socket live (default /tmp/metersim-PID)");
  app.add_option("--endpoints", endpoints_file, "Write the endpoints JSON here once ready");
  app.add_option("--gateway-config", gateway_file, "Write a meterd config for this fleet here");
  app.add_option("--gateway-id", gateway_id, "Gateway id for --gateway-config");
  app.add_option("--data-dir", data_dir, "data_dir for --gateway-config (default RUN_DIR/meterd)");
  CLI11_PARSE(app, argc, argv);

  try {
    meterd::simulator::FleetConfig config;
    if (!config_file.empty()) {
      config = meterd::simulator::load_config(config_file);
    } else {
      if (n.dlt2007 + n.dlt1997 + n.modbus_rtu + n.modbus_tcp + n.area == 0)
        throw meterd::simulator::ConfigError(
            "no meters: give --config FILE or "
            "--dlt645-2007/--dlt645-1997/--modbus-rtu/--modbus-tcp/--area counts");
      config = meterd::simulator::quick_config(n);
    }
    if (app.count("--seed") || config_file.empty()) config.seed = seed;
    if (is_static) config.static_values = true;
    if (no_wire_timing) config.wire_timing = false;
    if (app.count("--utc-offset-minutes")) config.utc_offset_minutes = utc_offset;
    if (!run_dir.empty()) config.run_dir = run_dir;
    if (config.run_dir.empty()) config.run_dir = "/tmp/metersim-" + std::to_string(::getpid());
    if (data_dir.empty()) data_dir = (config.run_dir / "meterd").string();

    boost::asio::io_context io;
    meterd::simulator::Fleet fleet(io, config);
    fleet.start();
    if (!gateway_file.empty())
      write_atomically(gateway_file, fleet.gateway_config(gateway_id, data_dir));
    const auto endpoints = fleet.endpoints();
    if (!endpoints_file.empty()) write_atomically(endpoints_file, endpoints.dump(2) + "\n");

    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int) {
      fleet.stop();
      io.stop();
    });
    std::cout << "metersim: " << fleet.meter_count() << " meters on " << endpoints["buses"].size()
              << " buses and " << endpoints["tcp"].size() << " tcp ports; control "
              << endpoints["control"].get<std::string>()
              << (config.wire_timing ? "" : "; wire timing off")
              << (config.static_values ? "; static values" : "") << std::endl;
    for (const auto& b : endpoints["buses"])
      std::cout << "  bus " << b["name"].get<std::string>() << ": " << b["path"].get<std::string>()
                << " " << b["baud"] << " baud, " << b["meters"].size() << " meters" << std::endl;
    for (const auto& t : endpoints["tcp"])
      std::cout << "  tcp " << t["name"].get<std::string>() << ": 127.0.0.1:" << t["port"] << ", "
                << t["meters"].size() << " units" << std::endl;
    io.run();
    return 0;
  } catch (const meterd::simulator::ConfigError& e) {
    std::cerr << "metersim: config: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "metersim: " << e.what() << "\n";
    return 1;
  }
}
