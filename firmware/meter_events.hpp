// The meter-events task and the gateway's view of live readings
// (docs/tasks.md "Meter events"). The task reads a meter's event counters
// and records, status words, clock and meter number, and turns what changed
// since the last run into events; check_live() looks at every normal poll's
// readings for voltage excursions, phase loss and an energy register that
// went down. Both keep what they last saw in the meter's task state, and
// hand the state updates back with the events so that the caller stores
// both in one transaction: a restart neither repeats nor misses an event.
// Pure policy: the bus is a DltLink, the clock and the zone are passed in.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "buffer/store.hpp"
#include "firmware/config.hpp"
#include "firmware/tasks.hpp"

namespace meterd::firmware {

struct EventTaskInput {
  std::string meter;  // meter id
  TaskState state;    // the meter's task state as stored
  // The gateway's clock (UTC ms). Called when the task starts (the time of
  // events that have none of their own) and at the moment the meter's time
  // answer arrived: the clock compare must not include the reads before it.
  std::function<std::int64_t()> now_ms;
  Zone zone;  // the gateway's zone: meters keep local time
  std::chrono::milliseconds clock_drift_max{60 * 1000};
  // False while the gateway's own clock is not synchronised: its time says
  // nothing about the meter's, so the clock is not compared (no drift
  // stored, no clock event).
  bool gateway_clock_trusted = true;
};

// One run of the events task for one meter. Readings stay empty. Stops at
// the first read without an answer (failure, detail); a counter or relay
// log whose records were not all read keeps its old state, so its records
// are read again next time.
TaskOutput run_event_task(const DltLink& link, const EventTaskInput& in);

// The gateway view of one normal poll's live readings (frozen ones are
// ignored): voltage out of band, phase loss, energy that went down. Updates
// `state` in place and appends the changed keys to `updates`; returns the
// events (ts = the readings' time).
std::vector<buffer::Event> check_live(const std::string& meter,
                                      const std::vector<buffer::Reading>& readings,
                                      const TasksConfig& limits, TaskState& state,
                                      std::vector<buffer::StateUpdate>& updates);

}  // namespace meterd::firmware
