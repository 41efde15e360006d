// Bus search (a concentrator's 搜表): finds the meters on one bus, one
// probe at a time, so the daemon can interleave the probes with its
// schedule and meterctl's direct mode can run them in a loop.
//
// DL/T 645: a lone meter answers read-address (13H, AA..AA). On a
// multi-drop bus the search addresses AA-wildcarded patterns and narrows
// them digit by digit: silence means nobody there, one clean frame (or
// several clean frames one after another) names meters, garbage means
// several answered at once and the pattern splits further.
// Modbus: unit ids first..last, each with a cheap read.
//
// Thread: a Scanner is used by one thread at a time (the bus worker runs
// step(); the loop reads progress() and found() between steps).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "drivers/bus.hpp"

namespace meterd::firmware {

struct ScanRequest {
  std::string protocol = "dlt645";  // "dlt645" | "modbus"
  unsigned first_unit = 1, last_unit = 247;  // modbus
};

struct FoundMeter {
  std::string protocol;  // "dlt645-2007" | "dlt645-1997" | "modbus"
  std::string address;   // DL/T 645: 12 digits; Modbus: the unit id as text
  std::string profile;   // a built-in profile guessed from the answers ("" if none fits)
  std::string note;      // what the guess rests on, for people
};

struct ScanProgress {
  std::size_t done = 0;   // probes, or share of the address space covered
  std::size_t total = 0;  // same unit as done; done == total at the end
  std::size_t found = 0;
  std::size_t probes = 0;  // requests sent so far
};

class Scanner {
 public:
  Scanner(ScanRequest request, const drivers::BusConfig& bus);
  ~Scanner();
  Scanner(Scanner&&) noexcept;
  Scanner& operator=(Scanner&&) noexcept;

  bool finished() const noexcept;
  // One probe: at most a few exchanges (well under a second at 2400 baud),
  // on the thread that owns the port. A down port finishes the scan with
  // error() set.
  void step(drivers::BusPort& port);
  ScanProgress progress() const;
  const std::vector<FoundMeter>& found() const noexcept;  // in the order found
  const std::string& error() const noexcept;             // "" unless the scan failed

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// {"protocol", "address", "profile", "note"}
nlohmann::json to_json(const FoundMeter& m);
// Ready-to-paste [[meter]] tables for the found meters of `bus`.
std::string meter_config_toml(const std::vector<FoundMeter>& found, const std::string& bus);

}  // namespace meterd::firmware
