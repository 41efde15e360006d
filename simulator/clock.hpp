// Simulated time and calendar helpers for metersim. Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace meterd::simulator {

// Milliseconds since the Unix epoch, UTC. All simulator state is a function
// of such a time passed in by the caller, so tests can run days of meter
// life in milliseconds.
using Millis = std::int64_t;

inline constexpr Millis ms_per_minute = 60'000;
inline constexpr Millis ms_per_hour = 3'600'000;
inline constexpr Millis ms_per_day = 86'400'000;

// Civil time of a (local) millisecond count.
struct Civil {
  int year, month, day, hour, minute, second, weekday;  // weekday 0 = Sunday
};
Civil civil(Millis local_ms);
Millis from_civil(int year, int month, int day, int hour = 0, int minute = 0, int second = 0);

// Floor division that also works for negative values.
constexpr std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

// "2026-11-27T12:00:00Z" (UTC) for logs and the control channel.
std::string iso_utc(Millis ms);

// The simulated time source: wall clock plus an offset that `advance` grows
// (the control channel's "advance"), so a test moves days of meter life
// forward without waiting. One owner: the simulator's loop.
class SimClock {
 public:
  Millis now() const {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count() + offset_;
  }
  void advance(Millis ms) noexcept { offset_ += ms; }
  Millis offset() const noexcept { return offset_; }

 private:
  Millis offset_ = 0;
};

}  // namespace meterd::simulator
