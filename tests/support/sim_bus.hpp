// A metersim bus (one entry of its endpoints file) opened for a benchmark's
// own master, the way meterd's bus worker opens a port. Header-only; the
// user links meterd::drivers.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

#include <nlohmann/json.hpp>

#include "drivers/serial_port.hpp"

namespace meterd::testing {

struct SimBusPort {
  drivers::Fd fd;
  drivers::LineSettings settings;  // the bus's own (8E1 stays 8E1 here)
  bool parity_refused = false;     // the pty refused parity: opened 8N1
};

// A pty keeps no parity (the kernel clears PARENB) and older serial_port code
// reports EINVAL for it: the port is then opened 8N1 and parity_refused set.
// The wire timing stays the bus's own (metersim keeps it), and so do
// `settings`, from which a SerialLine takes its character clock.
inline SimBusPort open_sim_bus(const nlohmann::json& bus) {
  SimBusPort p;
  p.settings.baud = bus["baud"];
  drivers::parse_parity(bus["parity"], p.settings.parity);
  p.settings.data_bits = bus["data_bits"];
  p.settings.stop_bits = bus["stop_bits"];
  const std::string path = bus["path"];
  std::error_code ec;
  p.fd = drivers::open_serial(path, p.settings, ec);
  if (ec == std::errc::invalid_argument && p.settings.parity != drivers::Parity::none) {
    drivers::LineSettings none = p.settings;
    none.parity = drivers::Parity::none;
    p.fd = drivers::open_serial(path, none, ec);
    p.parity_refused = true;
  }
  if (ec) throw std::runtime_error("open " + path + ": " + ec.message());
  return p;
}

}  // namespace meterd::testing
