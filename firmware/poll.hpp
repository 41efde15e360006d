// One meter's read: its profile turned into master exchanges on the bus
// worker, and the answers turned into exact readings. poll_meter() runs on
// the bus worker thread and touches nothing but the port it is given and
// the values in its request; its result travels back to the io_context
// thread as a value (docs/design.md "Threads").
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "buffer/store.hpp"
#include "drivers/bus.hpp"
#include "drivers/transaction.hpp"
#include "firmware/config.hpp"
#include "firmware/profiles.hpp"

namespace meterd::firmware {

// What the poller learned about a meter, so it does not ask again what the
// meter refused (kept while the daemon runs; a reload of a changed meter
// forgets it).
struct MeterMemory {
  std::set<std::uint32_t> refused_blocks;  // DL/T 645 blocks answered ERR 02: read as single DIs
  std::set<std::uint32_t> refused_dis;     // single DIs answered ERR 02 (no such data)
  bool modbus_no_bridging = false;         // a read across unwanted registers got exception 02
  std::optional<std::uint16_t> modbus_max_registers;  // after exception 03 (too many registers)
  std::set<std::pair<std::uint8_t, std::uint16_t>> refused_registers;  // (table, address): exc. 02
};

struct PollRequest {
  MeterConfig meter;
  std::shared_ptr<const Profile> profile;  // already narrowed to the meter's `quantities`
  MeterMemory memory;
  std::function<std::int64_t()> now_ms;  // wall clock, ms since the epoch UTC
  // Set when the daemon stops: the exchange in flight finishes, no new one
  // starts (the values read so far are kept).
  std::shared_ptr<const std::atomic<bool>> stopping;
  // Called on the worker thread after each exchange with its tally (the
  // bus's counters follow the wire exchange by exchange, not meter by meter).
  std::function<void(const drivers::Tally&)> on_exchange;
};

struct PollResult {
  std::string meter;
  // The meter answered: no exchange ended without an answer (timeout, bad
  // frame, mismatch, bus down, I/O error). Refusals (ERR words,
  // exceptions) are answers.
  bool ok = false;
  drivers::Outcome failure = drivers::Outcome::ok;  // the first exchange that had no answer
  std::string detail;                               // why, for the log: "00010000: timeout"
  std::vector<buffer::Reading> readings;            // exact values, each with its acquisition time
  std::vector<std::string> problems;                // answers that could not be decoded (logged)
  drivers::Tally tally;
  unsigned exchanges = 0;
  MeterMemory memory;  // updated
  std::int64_t started_ms = 0;
  std::int64_t finished_ms = 0;
};

// Every read of the profile, in order. The first exchange without an answer
// ends the meter's read (a dead meter costs its bus one exchange's timeout
// × retries); values read before it are kept — they are real readings.
PollResult poll_meter(drivers::BusPort& port, const drivers::BusConfig& bus,
                      const PollRequest& request);

}  // namespace meterd::firmware
