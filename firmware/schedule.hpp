// When each meter is due (docs/config.md "Scheduling"). Pure: no clock of
// its own, no I/O; the caller passes the wall-clock time (ms since the Unix
// epoch, UTC) to every call, so tests run a day of schedule in microseconds.
// Owned by the io_context thread.
//
// Every meter reads on a grid aligned to the wall clock: an interval of 15m
// reads at :00, :15, :30, :45 plus the meter's offset, and the meters of one
// bus get offsets spread evenly across the interval (meter k of n at
// k × interval / n), so a bus is busy evenly instead of in bursts.
//
// A read that fails is retried with exponential back-off capped at the
// interval: after the f-th failure in a row the next attempt comes
// min(interval, base × 2^(f−1)) later, base = interval / 8 but at least 10 s
// (a dead meter costs its bus at most one attempt per base); once the delay
// reaches the interval the attempts fall back onto the meter's grid.
//
// A bus too slow for its meters does not starve any of them: a meter is
// never queued twice, a read that completes after its next slot began is
// due again at once (and so goes to the back of its bus's queue), and slots
// that passed entirely while it waited are counted as missed (the
// shortfall), never read twice to catch up.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace meterd::firmware {

struct ScheduledMeter {
  std::string id;
  std::string bus;
  std::int64_t interval_ms = 0;
  friend bool operator==(const ScheduledMeter&, const ScheduledMeter&) = default;
};

// A meter whose read should start now.
struct Due {
  std::string id;
  std::string bus;
  std::int64_t slot_ms = 0;  // the grid slot (or back-off time) this read serves
  bool retry = false;        // an attempt after a failure
};

enum class Presence { unknown, online, offline };

// What a completed read changed.
struct Transition {
  bool went_offline = false;  // this failure made `offline_after` in a row
  bool went_online = false;   // the first success after the meter was offline
};

struct MeterTiming {
  std::int64_t offset_ms = 0;
  std::int64_t next_due_ms = 0;
  bool in_flight = false;
  unsigned failures = 0;  // consecutive
  Presence presence = Presence::unknown;
  std::uint64_t reads_ok = 0;
  std::uint64_t reads_failed = 0;
  std::uint64_t missed_slots = 0;  // slots that passed while the meter waited for its bus
  std::uint64_t late_reads = 0;    // reads that started after their slot's end
  std::optional<std::int64_t> last_success_ms;
};

class Schedule {
 public:
  explicit Schedule(unsigned offline_after = 3) : offline_after_(offline_after) {}

  // Replaces the set of meters. Offsets are recomputed for every bus whose
  // set of meters changed; a meter whose id, bus, interval and offset stay
  // the same keeps its timing and counters, so a reload does not disturb
  // the other buses. New meters are due at their next grid slot at or
  // after `now_ms` (or at once if `read_now`).
  void configure(const std::vector<ScheduledMeter>& meters, std::int64_t now_ms,
                 bool read_now = false);
  void set_offline_after(unsigned n) noexcept { offline_after_ = n == 0 ? 1 : n; }

  // Meters due at `now_ms` that are not in flight, earliest first (ties in
  // configuration order); each is marked in flight.
  std::vector<Due> take_due(std::int64_t now_ms);
  // When the next meter not in flight is due; nullopt when all are in flight.
  std::optional<std::int64_t> next_wakeup() const;

  // The read of `id` that take_due() handed out ended at `now_ms`.
  Transition completed(const std::string& id, std::int64_t now_ms, bool ok);

  const MeterTiming* timing(const std::string& id) const;
  std::vector<std::string> meters() const;  // configuration order
  // Missed slots summed over a bus's meters.
  std::uint64_t missed_slots(const std::string& bus) const;

  // The grid: the latest slot start <= t for this interval and offset.
  static std::int64_t slot_at(std::int64_t t, std::int64_t interval_ms, std::int64_t offset_ms);

 private:
  struct Entry {
    ScheduledMeter meter;
    MeterTiming timing;
    std::int64_t slot_ms = 0;  // slot of the pending or running read
    bool retry = false;
    std::size_t order = 0;
  };
  std::int64_t backoff_ms(const Entry& e) const;

  std::map<std::string, Entry> entries_;
  unsigned offline_after_ = 3;
};

}  // namespace meterd::firmware
