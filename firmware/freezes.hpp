// Frozen data (docs/tasks.md "Daily frozen data"): a DL/T 645-2007 meter's
// own daily freezes (日冻结, 0506), hourly freezes (0504) and last
// settlement data (0001xx01), read after the freeze with backfill (补抄) of
// the days missed while the gateway, the bus or the meter was down. Each
// (meter, freeze) is stored exactly once: the freezes done are state-table
// rows written in the same transaction as their readings.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "firmware/tasks.hpp"

namespace meterd::firmware {

struct FreezeTaskInput {
  std::string meter;
  TaskState state;          // the meter's task state (keys "daily.*", "hourly.*", "monthly.*")
  std::int64_t now_ms = 0;  // gateway UTC
  Zone zone;
  bool daily = true;
  bool hourly = false;
  bool monthly = true;
  std::chrono::milliseconds delay{5 * 60 * 1000};  // after the freeze moment
  unsigned backfill_days = 7;
  // Daily items read per freeze (DI0 is the "last n" index and is replaced):
  // 05060101 and 05060201 first, then the configured ones.
  std::vector<std::uint32_t> daily_items{0x05060101, 0x05060201};
  // Freezes handled per run at most: a 62-day backfill at 2400 baud is a
  // minute of bus time per meter, so it is cut into runs (TaskOutput::more)
  // and the meters' interval reads are queued between them.
  unsigned max_freezes = 4;
};

// Pure: is any freeze due that is not stored yet? (No reads: the daemon asks
// every minute, and posts a bus job only when this says so.)
bool freeze_work_pending(const FreezeTaskInput& in);

// Reads what is due and not stored, newest first, stopping at the first read
// without an answer (what was read before stays in the output).
TaskOutput run_freeze_task(const DltLink& link, const FreezeTaskInput& in);

// The stored daily energy (energy.active.import.total) of a meter at the
// freeze made at local 00:00 of `date` ("2026-12-01"), from its task state:
// what the area line loss is computed from.
std::optional<protocol::Decimal> daily_energy(const TaskState& state, const std::string& date);

// State keys (docs/tasks.md).
inline constexpr const char* daily_done_key = "daily.done";    // "2026-11-29,2026-11-30"
inline constexpr const char* daily_since_key = "daily.since";  // first date collected
inline constexpr const char* daily_unsupported_key = "daily.unsupported";
inline constexpr const char* hourly_done_key = "hourly.done";  // "2026-11-30T13,…"
inline constexpr const char* hourly_since_key = "hourly.since";
inline constexpr const char* monthly_done_key = "monthly.done";  // "2026-11-01T00,…"
inline constexpr const char* monthly_since_key = "monthly.since";
inline constexpr const char* monthly_unsupported_key = "monthly.unsupported";
inline constexpr const char* daily_energy_key = "daily.energy";  // {"2026-12-01":"1234.56",…}

}  // namespace meterd::firmware
