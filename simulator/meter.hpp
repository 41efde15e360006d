// What every simulated meter is to the rest of metersim, whatever it
// speaks, and the seat it occupies on a bus or behind a converter.
// Not thread-safe; one owner (the simulator's loop).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "simulator/clock.hpp"
#include "simulator/faults.hpp"

namespace meterd::simulator {

class Meter {
 public:
  virtual ~Meter() = default;
  // Ground truth: what the meter would answer right now, as exact decimal
  // strings at the precision it answers with, plus its state.
  virtual nlohmann::json truth(Millis now) = 0;
  // Powered off for `off` ms from `now`: silent, no energy; a model that
  // keeps a power-down log records it.
  virtual void power_cycle(Millis now, Millis off) = 0;
  // The meter's base turnaround (ms between the end of a request and the
  // first byte of its answer); per request the bus draws within a range
  // above it (see turnaround_for in bus.hpp).
  virtual unsigned turnaround_ms() const = 0;
};

class Dlt645Meter;
class ModbusMeter;

// A meter's seat: the meter (owned), typed views of the same object for
// the transport that speaks its protocol, its switches and its power.
struct Seat {
  std::string id;
  std::unique_ptr<Meter> meter;
  Dlt645Meter* dlt = nullptr;     // == meter.get() when it speaks DL/T 645
  ModbusMeter* modbus = nullptr;  // == meter.get() when it speaks Modbus
  bool online = true;
  Millis power_up_ms = 2000;  // silent this long after power_cycle / online
  Millis silent_until = 0;    // simulated time: powering up until then
  Faults faults;

  // Does the meter listen at `now` (online and powered up)?
  bool listening(Millis now) const noexcept { return online && now >= silent_until; }
};

}  // namespace meterd::simulator
