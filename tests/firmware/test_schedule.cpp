// The schedule as a pure function of the wall-clock time passed in: a day
// of polling runs here in microseconds (unit tier, no clock, no I/O).
#include <map>

#include <doctest/doctest.h>

#include "firmware/schedule.hpp"

using meterd::firmware::Due;
using meterd::firmware::Presence;
using meterd::firmware::Schedule;
using meterd::firmware::ScheduledMeter;

namespace {

constexpr std::int64_t s = 1000;
constexpr std::int64_t min = 60 * s;
// 2026-11-30T10:07:13.250Z
constexpr std::int64_t t0 = 1'795'946'833'250;
// 2026-11-30T10:07:10.000Z, on a 10 s boundary
constexpr std::int64_t t10 = t0 - 3250;

std::vector<std::string> ids(const std::vector<Due>& due) {
  std::vector<std::string> out;
  for (const auto& d : due) out.push_back(d.id);
  return out;
}

}  // namespace

// Catches: an interval counted from start-up instead of the wall clock
// (a 15m meter started at 10:07 would read at 10:22, 10:37, …).
TEST_CASE("a 15m interval reads on the quarter hours of the wall clock") {
  Schedule sch;
  sch.configure({{"m1", "bus", 15 * min}}, t0);
  const std::int64_t quarter = Schedule::slot_at(t0, 15 * min, 0) + 15 * min;  // 10:15:00.000
  CHECK(quarter % (15 * min) == 0);
  CHECK(sch.next_wakeup() == quarter);
  CHECK(sch.take_due(quarter - 1).empty());
  auto due = sch.take_due(quarter);
  REQUIRE(due.size() == 1);
  CHECK(due[0].slot_ms == quarter);
  sch.completed("m1", quarter + 800, true);
  CHECK(sch.next_wakeup() == quarter + 15 * min);
}

// Catches: every meter of a bus due at the same instant (a burst that
// queues 32 reads at :00 and leaves the bus idle for the rest of the interval).
TEST_CASE("meters of one bus are spread across the interval, each bus on its own") {
  Schedule sch;
  sch.configure({{"a1", "A", 10 * s},
                 {"a2", "A", 10 * s},
                 {"a3", "A", 10 * s},
                 {"a4", "A", 10 * s},
                 {"b1", "B", 10 * s}},
                t10);
  CHECK(sch.timing("a1")->offset_ms == 0);
  CHECK(sch.timing("a2")->offset_ms == 2500);
  CHECK(sch.timing("a3")->offset_ms == 5000);
  CHECK(sch.timing("a4")->offset_ms == 7500);
  CHECK(sch.timing("b1")->offset_ms == 0);
  const std::int64_t base = t10;  // a slot start: offset-0 meters are due at once
  CHECK(ids(sch.take_due(base)) == std::vector<std::string>{"a1", "b1"});
  CHECK(sch.take_due(base + 2499).empty());
  CHECK(ids(sch.take_due(base + 2500)) == std::vector<std::string>{"a2"});
}

// Catches: a meter queued again while its read still waits for the bus,
// and a slow bus "catching up" by reading one meter twice in a row.
TEST_CASE("a slow bus: never queued twice, late read due at once, whole slots missed") {
  Schedule sch;
  sch.configure({{"m1", "bus", 10 * s}}, t0);
  const std::int64_t first = *sch.next_wakeup();
  REQUIRE(sch.take_due(first).size() == 1);
  CHECK(sch.take_due(first + 25 * s).empty());  // still in flight
  CHECK_FALSE(sch.next_wakeup().has_value());
  // The read ends 25 s later: slot first+10 passed entirely (missed), the
  // slot first+20 is running now and due at once.
  sch.completed("m1", first + 25 * s, true);
  CHECK(sch.timing("m1")->missed_slots == 1);
  CHECK(sch.next_wakeup() == first + 20 * s);
  auto due = sch.take_due(first + 25 * s);
  REQUIRE(due.size() == 1);
  CHECK(due[0].slot_ms == first + 20 * s);
  CHECK(sch.missed_slots("bus") == 1);
}

// Catches: no back-off (a dead meter retried at once, hogging its bus),
// back-off without a cap (a meter that comes back is not read for hours),
// and an offline event raised on every failure instead of once.
TEST_CASE("failures back off exponentially, capped at the interval; offline once, online once") {
  Schedule sch(3);
  const std::int64_t interval = 15 * min;
  sch.configure({{"m1", "bus", interval}}, t0);
  std::int64_t now = *sch.next_wakeup();
  std::vector<std::int64_t> delays;
  int offline = 0;
  for (int i = 0; i < 6; ++i) {
    auto due = sch.take_due(now);
    REQUIRE(due.size() == 1);
    CHECK(due[0].retry == (i > 0 && i < 4));
    const std::int64_t end = now + 2 * s;  // timeout × retries
    const auto t = sch.completed("m1", end, false);
    offline += t.went_offline;
    CHECK(t.went_online == false);
    delays.push_back(*sch.next_wakeup() - end);
    now = *sch.next_wakeup();
  }
  // interval / 8 = 112.5 s, doubling, then back on the 15-minute grid.
  CHECK(delays[0] == 112'500);
  CHECK(delays[1] == 225'000);
  CHECK(delays[2] == 450'000);
  CHECK(now % interval == 0);
  CHECK(offline == 1);
  CHECK(sch.timing("m1")->presence == Presence::offline);
  REQUIRE(sch.take_due(now).size() == 1);
  const auto back = sch.completed("m1", now + 300, true);
  CHECK(back.went_online);
  CHECK(sch.timing("m1")->presence == Presence::online);
  CHECK(sch.timing("m1")->failures == 0);
  CHECK(sch.next_wakeup() == now + interval);
}

// Catches: a back-off base so short that a dead meter on a 10 s bus takes
// several attempts per interval from its neighbours.
TEST_CASE("a short interval retries a failed meter on its grid, once per interval") {
  Schedule sch;
  sch.configure({{"m1", "bus", 10 * s}, {"m2", "bus", 10 * s}}, t10);
  const std::int64_t first = *sch.next_wakeup();
  REQUIRE(ids(sch.take_due(first)) == std::vector<std::string>{"m1"});
  sch.completed("m1", first + 2 * s, false);
  CHECK(sch.timing("m1")->next_due_ms == first + 10 * s);
}

// Catches: a reload that resets every meter's timing (all buses re-aligned,
// reads dropped or doubled) when only one bus changed.
TEST_CASE("a reload keeps the timing of meters on unchanged buses") {
  Schedule sch;
  sch.configure({{"a1", "A", 10 * s}, {"b1", "B", 10 * s}, {"b2", "B", 10 * s}}, t10);
  const std::int64_t first = *sch.next_wakeup();
  REQUIRE(sch.take_due(first).size() == 2);  // a1 and b1
  sch.completed("a1", first + 100, true);
  const auto before = *sch.timing("a1");
  // b2 removed, c1 added on a new bus.
  sch.configure({{"a1", "A", 10 * s}, {"b1", "B", 10 * s}, {"c1", "C", 10 * s}}, first + 500);
  CHECK(sch.timing("a1")->next_due_ms == before.next_due_ms);
  CHECK(sch.timing("a1")->reads_ok == 1);
  CHECK(sch.timing("b1")->in_flight);  // its read still runs; its result still counts
  CHECK(sch.timing("b2") == nullptr);
  CHECK(sch.timing("c1")->next_due_ms == first + 10 * s);
  sch.completed("b2", first + 600, true);  // a result for a removed meter is ignored
}

// Catches: drift (a read that takes 800 ms pushing every later read 800 ms
// later) and lost or doubled slots over a day.
TEST_CASE("a day of 15-minute reads: 96 reads, each on its slot, no drift") {
  Schedule sch;
  sch.configure({{"m1", "bus", 15 * min}}, t0);
  std::int64_t now = t0;
  int reads = 0;
  const std::int64_t end = t0 + 24 * 60 * min;
  while (true) {
    const auto next = sch.next_wakeup();
    REQUIRE(next.has_value());
    if (*next >= end) break;
    now = *next;
    auto due = sch.take_due(now);
    REQUIRE(due.size() == 1);
    CHECK(due[0].slot_ms % (15 * min) == 0);
    ++reads;
    sch.completed("m1", now + 800, true);
  }
  CHECK(reads == 96);
  CHECK(sch.timing("m1")->missed_slots == 0);
}
