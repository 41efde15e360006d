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
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "drivers/bus.hpp"

namespace meterd::firmware {

struct ScanRequest {
  std::string protocol = "dlt645";           // "dlt645" | "modbus"
  unsigned first_unit = 1, last_unit = 247;  // modbus
  // DL/T 645: after the search with 2007 reads, search again with 1997
  // reads (01H), for 1997 meters that stay silent to 2007 frames. Meters
  // that answer any frame to their address (an ERR answer counts) are found
  // by the first search; this doubles the bus time.
  bool search_1997 = false;
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

// The bus as the search uses it: a BusPort in the daemon and in meterctl's
// direct mode (PortLink in scan.cpp), scripted meters in the unit tests.
class ScanLink {
 public:
  virtual ~ScanLink() = default;
  // DL/T 645: one request, everything heard in its window (drivers::dlt645_listen_all).
  virtual drivers::Dlt645Heard listen(const protocol::dlt645::Frame& request) = 0;
  // DL/T 645: one exchange with one meter, with the bus's retries.
  virtual drivers::Dlt645Answer exchange(protocol::dlt645::Version version,
                                         const protocol::dlt645::Frame& request) = 0;
  // Modbus: one read, one try (FC 03/04).
  virtual drivers::RegisterRead read_registers(std::uint8_t unit, std::uint8_t function,
                                               std::uint16_t address, std::uint16_t count) = 0;
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
  // The same on any link (tests).
  void step(ScanLink& link);
  ScanProgress progress() const;
  // The wire counters of the probes since the last call (the daemon adds
  // them to the bus's, so a scan shows in its exchanges and time on the wire).
  drivers::Tally take_tally();
  const std::vector<FoundMeter>& found() const noexcept;  // in the order found
  const std::string& error() const noexcept;              // "" unless the scan failed
  // What the scan could not settle (a pattern still garbled after retries,
  // an address that answered the search but not a read), for people.
  const std::vector<std::string>& warnings() const noexcept;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// {"protocol", "address", "profile", "note"}
nlohmann::json to_json(const FoundMeter& m);
// Ready-to-paste [[meter]] tables for the found meters of `bus`.
std::string meter_config_toml(const std::vector<FoundMeter>& found, const std::string& bus);

}  // namespace meterd::firmware
