// A metersim process for a system test: started in a temp dir with its own
// run dir and endpoints file, stopped when the fixture goes. Header-only:
// it fails the test through doctest and finds the binary in METERD_BIN_DIR.
#pragma once

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/support/system.hpp"

namespace meterd::testing {

struct Metersim {
  TempDir dir;
  std::unique_ptr<Process> proc;
  nlohmann::json endpoints;

  // `toml` non-empty: a sim.toml with that text; `args`: more flags.
  explicit Metersim(const std::string& toml, std::vector<std::string> args = {}) {
    if (!toml.empty()) {
      std::ofstream(dir.path / "sim.toml") << toml;
      args.push_back("--config");
      args.push_back((dir.path / "sim.toml").string());
    }
    args.push_back("--run-dir");
    args.push_back((dir.path / "run").string());
    args.push_back("--endpoints");
    args.push_back((dir.path / "endpoints.json").string());
    proc = std::make_unique<Process>(std::string(METERD_BIN_DIR) + "/metersim", args,
                                     dir.path / "metersim.log");
    REQUIRE_MESSAGE(wait_for_file(dir.path / "endpoints.json"),
                    "metersim did not start; see its log");
    endpoints = read_json(dir.path / "endpoints.json");
  }
  nlohmann::json ctl(const nlohmann::json& req) {
    return control(endpoints["control"].get<std::string>(), req);
  }
  nlohmann::json bus_stats(const char* bus = "b1") { return ctl({{"cmd", "stats"}})["buses"][bus]; }
  std::string bus_path(std::size_t i = 0) const { return endpoints["buses"][i]["path"]; }
};

}  // namespace meterd::testing
