// The concentrator's data tasks (docs/tasks.md): daily, monthly and hourly
// frozen data with backfill (补抄), meter events from status words and
// event counters, the meter clock watch and time sync, and the area line
// loss. Each task is a short program of DL/T 645 reads that runs as one job
// on the bus worker; the code here sees the bus only through a DltLink, so
// it is tested against a simulated meter without a port. What a task
// learned travels back as a TaskOutput: readings, events and state-table
// updates stored in one buffer transaction, so a restart neither repeats
// nor misses what was stored.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "buffer/store.hpp"
#include "drivers/dlt645_master.hpp"
#include "drivers/transaction.hpp"
#include "protocol/decimal.hpp"
#include "protocol/dlt645/control.hpp"

namespace meterd::firmware {

// The bus as a task sees it: one meter, reads and writes already bound to
// its address, options and the bus counters.
struct DltLink {
  protocol::dlt645::Version version = protocol::dlt645::Version::v2007;
  std::function<drivers::Dlt645Read(std::uint32_t di)> read;
  // A 14H write of `data` (already encoded) to `di` with the meter's
  // password and the gateway's operator code; outcome ok, meter_error (the
  // meter refused: wrong password, ...) or no answer.
  std::function<drivers::Dlt645Answer(std::uint32_t di, const std::vector<std::uint8_t>& data)>
      write;
  // The daemon is stopping: finish the exchange in flight, start no other.
  std::function<bool()> stopping = [] { return false; };
};

// Civil time in the gateway's zone: meters keep local time (freeze times,
// event records, the clock), the buffer and MQTT keep UTC.
struct Zone {
  // Offset of local time from UTC at a UTC instant (ms; +8 h for China).
  std::function<std::int64_t(std::int64_t utc_ms)> offset_ms;
  std::int64_t to_local(std::int64_t utc_ms) const { return utc_ms + offset_ms(utc_ms); }
  // The UTC instant of a local wall-clock time (the offset before it, for
  // a time a DST change skips or repeats; China has none).
  std::int64_t to_utc(std::int64_t local_ms) const;
};
Zone system_zone();                   // the process's TZ (localtime_r)
Zone fixed_zone(int offset_minutes);  // for tests

// "20YY-MM-DDThh:mm[:ss]" as the catalogue decodes a meter's time -> local
// ms since the epoch; nullopt when malformed.
std::optional<std::int64_t> parse_meter_time(const std::string& text);
// Local ms -> "2026-11-30" / "2026-11-30T00:00:00".
std::string local_date(std::int64_t local_ms);
std::string local_datetime(std::int64_t local_ms);

// What one task run produced, stored in one transaction.
struct TaskOutput {
  std::string meter;
  std::vector<buffer::Reading> readings;
  std::vector<buffer::Event> events;
  std::vector<buffer::StateUpdate> state;
  std::vector<std::string> problems;  // answers that could not be used (logged)
  // The first read without an answer (the run stopped there; what was
  // stored before it stays stored, the rest is asked again next time).
  drivers::Outcome failure = drivers::Outcome::ok;
  std::string detail;
  unsigned exchanges = 0;
  drivers::Tally tally;
  // The run stopped at its budget with work left (a long backfill is cut
  // into jobs so the schedule's reads go on between them): run again soon.
  bool more = false;
};

// A meter's task state: the buffer's state table rows of that meter whose
// keys the tasks own ("daily.done", "events.03110000", ...).
using TaskState = std::map<std::string, std::string>;

}  // namespace meterd::firmware
