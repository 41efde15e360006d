#include "firmware/tasks.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace meterd::firmware {

namespace {

constexpr std::int64_t ms_per_day = 86'400'000;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

}  // namespace

std::int64_t Zone::to_utc(std::int64_t local_ms) const {
  // Two rounds: the offset at the guess, then at the corrected guess.
  const std::int64_t guess = local_ms - offset_ms(local_ms);
  return local_ms - offset_ms(guess);
}

Zone system_zone() {
  return {[](std::int64_t utc_ms) {
    const std::time_t t = static_cast<std::time_t>(floor_div(utc_ms, 1000));
    std::tm tm{};
    localtime_r(&t, &tm);
    return static_cast<std::int64_t>(tm.tm_gmtoff) * 1000;
  }};
}

Zone fixed_zone(int offset_minutes) {
  const std::int64_t offset = std::int64_t{offset_minutes} * 60'000;
  return {[offset](std::int64_t) { return offset; }};
}

std::optional<std::int64_t> parse_meter_time(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  int used = 0;
  if (text.size() == 16) {
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d%n", &y, &mo, &d, &h, &mi, &used) != 5 ||
        used != 16)
      return std::nullopt;
  } else if (text.size() == 19) {
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &used) !=
            6 ||
        used != 19)
      return std::nullopt;
  } else {
    return std::nullopt;
  }
  using namespace std::chrono;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                           day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || s > 59) return std::nullopt;
  const std::int64_t days = sys_days{ymd}.time_since_epoch().count();
  return days * ms_per_day + ((h * 60 + mi) * 60 + s) * std::int64_t{1000};
}

std::string local_date(std::int64_t local_ms) {
  using namespace std::chrono;
  const year_month_day ymd{sys_days{days{floor_div(local_ms, ms_per_day)}}};
  char out[16];
  std::snprintf(out, sizeof out, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return out;
}

std::string local_datetime(std::int64_t local_ms) {
  const std::int64_t in_day = local_ms - floor_div(local_ms, ms_per_day) * ms_per_day;
  const std::int64_t s = in_day / 1000;
  char out[16];
  std::snprintf(out, sizeof out, "T%02d:%02d:%02d", static_cast<int>(s / 3600),
                static_cast<int>(s / 60 % 60), static_cast<int>(s % 60));
  return local_date(local_ms) + out;
}

}  // namespace meterd::firmware
