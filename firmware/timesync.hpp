// Meter time sync (docs/timesync.md): a daily 08H broadcast per bus at a
// local time of day, only while the gateway's own clock is synchronised,
// and a 14H write for a meter whose clock is beyond the ±5 min a broadcast
// may correct, when the config allows it. The plan and the per-meter fix
// are pure (time and the bus come in as functions), so they are tested
// against a simulated meter; the daemon owns the schedule and the buffer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "drivers/transaction.hpp"
#include "firmware/config.hpp"
#include "firmware/tasks.hpp"
#include "protocol/dlt645/frame.hpp"

namespace meterd::firmware {

// ---- the gateway's own clock ------------------------------------------------

struct ClockStatus {
  bool synchronised = false;
  std::int64_t max_error_us = 0;  // the kernel's maximum error bound (timex.maxerror)
  std::int64_t est_error_us = 0;  // its estimated error (timex.esterror)
  std::string why;                // not synchronised: why, for the event and the log
};
using ClockStatusSource = std::function<ClockStatus()>;

// Asks the kernel (adjtimex(2), modes 0: read only, no privilege needed).
// Test hook: METERD_CLOCK_STATUS=synced|unsynced in the environment
// replaces the kernel's answer (any other value counts as unsynchronised).
ClockStatus kernel_clock_status();
// What adjtimex's return value and timex fields mean (pure; for tests).
ClockStatus clock_status_from(int state, int status, long max_error_us, long est_error_us);

// ---- the daily plan ----------------------------------------------------------

// The state keys of a bus's daily broadcast, stored under a gateway-wide owner.
std::string timesync_last_key(const std::string& bus);  // "timesync.<bus>.last": local date done
std::string timesync_unsynced_key(
    const std::string& bus);  // "timesync.<bus>.unsynced": day reported

// How often a day whose broadcast could not go out (gateway clock not
// synchronised, bus down) is retried, until the day ends.
inline constexpr std::int64_t timesync_retry_ms = 10 * 60 * 1000;

// The next instant (UTC ms) the daily broadcast at local time `at` is due,
// given the local day last done ("2026-11-30", "" = never): today's time if
// today is not done (now if it has passed), else tomorrow's.
std::int64_t next_timesync_ms(std::chrono::minutes at, const Zone& zone, std::int64_t now_ms,
                              const std::string& last_done);
bool timesync_due(std::chrono::minutes at, const Zone& zone, std::int64_t now_ms,
                  const std::string& last_done);

struct TimesyncPlanInput {
  std::string bus;
  std::string owner;  // the gateway-wide state owner the daemon stores the keys under
  std::chrono::minutes at{150};
  Zone zone;
  std::int64_t now_ms = 0;
  std::string last_done;          // state timesync_last_key(bus), "" = never
  std::string unsynced_reported;  // state timesync_unsynced_key(bus), "" = never
  ClockStatusSource clock;        // asked only when the broadcast is due
};

struct TimesyncPlan {
  bool broadcast = false;                  // send it now: run_broadcast(..., day)
  std::string day;                         // the local day this is about
  std::int64_t next_ms = 0;                // when to ask timesync_plan again (UTC ms)
  std::vector<buffer::Event> events;       // gateway.clock_unsynchronised, once a day
  std::vector<buffer::StateUpdate> state;  // timesync_unsynced_key(bus) = day
};

// The decision at `now_ms`: not due -> wait until next_timesync_ms; due and
// the gateway clock synchronised -> broadcast; due and not synchronised ->
// skip (an unsynchronised clock is never broadcast to the meters), report
// it once that day, and ask again in timesync_retry_ms so that a late NTP
// sync still gets the day's broadcast. After a broadcast next_ms is a retry
// as well: once run_broadcast's state is stored the day is done and the
// next ask waits for tomorrow; had the bus been down, it tries again.
TimesyncPlan timesync_plan(const TimesyncPlanInput& in);

// ---- the broadcast -------------------------------------------------------------

using BroadcastFn = std::function<drivers::Tally(const protocol::dlt645::Frame&)>;

struct BroadcastInput {
  std::string bus;
  std::string owner;  // as TimesyncPlanInput::owner
  std::string day;    // TimesyncPlan::day
  Zone zone;
  std::function<std::int64_t()> now;  // UTC ms, read at the moment of sending
};

// One 08H broadcast of the gateway's local time (to the nearest second) on
// the bus worker. Sent: event bus.timesync {"bus","time"} and state
// timesync_last_key(bus) = day. Nothing sent (port down): failure bus_down,
// no event, no state.
TaskOutput run_broadcast(const BroadcastFn& broadcast, const BroadcastInput& in);

// ---- the per-meter fix beyond ±5 min ---------------------------------------------

// What a broadcast may correct (DL/T 645-2007 §4.3.x; meters ignore larger
// steps, so a broadcast cannot move a far-off clock at all).
inline constexpr std::int64_t broadcast_limit_ms = 5 * 60 * 1000;
// A read-back farther off than this after a write means the write went
// wrong (a date written across midnight): write once more.
inline constexpr std::int64_t clock_fix_redo_ms = 60 * 1000;

// The meter's state keys of the fix. Unfixable: the local day
// meter.clock_unfixable was stored; "" again once back within ±5 min.
inline constexpr const char* clock_unfixable_key = "timesync.unfixable";
// Fix day: the local day of the last write attempt that got an answer.
inline constexpr const char* clock_fix_day_key = "timesync.fix_day";

struct ClockFixInput {
  std::string meter;
  // Last measured drift, meter minus gateway (state "clock.drift_ms" of the
  // events task); nullopt = not measured yet.
  std::optional<std::int64_t> drift_ms;
  bool write_allowed = false;         // tasks.timesync_write
  ClockStatus clock;                  // the gateway's clock now
  std::function<std::int64_t()> now;  // UTC ms
  Zone zone;
  TaskState state;  // the meter's task state (clock_unfixable_key, clock_fix_day_key)
};

// For one DL/T 645 meter: within ±5 min nothing (the broadcast covers it);
// beyond and timesync_write off: meter.clock_unfixable once; beyond, allowed
// and the gateway clock synchronised: read the meter's clock (the stored
// drift may be stale), write time then date (14H; 2007 04000102/04000101,
// 1997 C011/C010), read back, write once more if the day went wrong, and
// report meter.clock_set or meter.clock_set_refused. At most one write
// attempt per meter per local day (a wrong password may lock a meter).
TaskOutput run_clock_fix(const DltLink& link, const ClockFixInput& in);

}  // namespace meterd::firmware
