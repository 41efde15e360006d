// A metersim fleet and a meterd reading it, for system tests: metersim
// writes the gateway config (--gateway-config), the test edits it, then
// starts meterd on it. Header-only, doctest for failures.
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/meterd.hpp"
#include "tests/support/metersim.hpp"

namespace meterd::testing {

// sim.toml pieces: a bus and a meter.
inline std::string bus_toml(const std::string& name, unsigned baud, const std::string& parity) {
  return "[[bus]]\nname = \"" + name + "\"\nbaud = " + std::to_string(baud) + "\nparity = \"" +
         parity + "\"\n";
}
inline std::string meter_toml(const std::string& id, const std::string& bus,
                              const std::string& protocol, const std::string& address,
                              const std::string& extra = "") {
  const bool modbus = protocol == "modbus";
  return "[[meter]]\nid = \"" + id + "\"\nbus = \"" + bus + "\"\nprotocol = \"" + protocol +
         "\"\naddress = " + (modbus ? address : "\"" + address + "\"") + "\n" + extra;
}

// A metersim fleet and a meterd reading it. `dir` comes first: metersim
// writes its gateway config there.
struct Rig {
  TempDir dir;
  Metersim sim;
  std::filesystem::path data_dir = dir.path / "meterd";
  std::filesystem::path config = dir.path / "meterd.toml";
  std::unique_ptr<Meterd> meterd;

  Rig(const std::string& sim_toml, std::vector<std::string> sim_args, const std::string& interval,
      const std::function<std::string(std::string)>& edit = {})
      : sim(sim_toml, with_gateway(dir, std::move(sim_args))) {
    std::string text = gateway_config(dir.path / "gateway.toml", data_dir, interval);
    text += "\n[polling]\nsummary_interval = \"2s\"\n";
    if (edit) text = edit(text);
    std::ofstream(config) << text;
  }
  static std::vector<std::string> with_gateway(const TempDir& d, std::vector<std::string> args) {
    args.push_back("--gateway-config");
    args.push_back((d.path / "gateway.toml").string());
    return args;
  }
  void start(std::vector<std::string> args = {}, std::vector<std::string> wrapper = {}) {
    meterd = std::make_unique<Meterd>(config, data_dir, dir.path / "meterd.log", std::move(args),
                                      std::move(wrapper));
  }
  // Every meter of the fleet has at least `n` readings stored.
  bool all_read(std::size_t meters, std::size_t n = 1) const {
    const auto per = meterd->per_meter();
    if (per.size() < meters) return false;
    for (const auto& [id, count] : per)
      if (count < n) return false;
    return true;
  }
};

}  // namespace meterd::testing
