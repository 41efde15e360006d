#include "simulator/clock.hpp"

#include <cstdio>

namespace meterd::simulator {

Civil civil(Millis ms) {
  using namespace std::chrono;
  const auto day = floor_div(ms, ms_per_day);
  const Millis in_day = ms - day * ms_per_day;
  const year_month_day ymd{sys_days{days{day}}};
  const weekday wd{sys_days{days{day}}};
  return {static_cast<int>(ymd.year()),
          static_cast<int>(static_cast<unsigned>(ymd.month())),
          static_cast<int>(static_cast<unsigned>(ymd.day())),
          static_cast<int>(in_day / ms_per_hour),
          static_cast<int>(in_day % ms_per_hour / ms_per_minute),
          static_cast<int>(in_day % ms_per_minute / 1000),
          static_cast<int>(wd.c_encoding())};
}

Millis from_civil(int y, int mo, int d, int h, int mi, int s) {
  using namespace std::chrono;
  const sys_days day{year{y} / month{static_cast<unsigned>(mo)} / static_cast<unsigned>(d)};
  return day.time_since_epoch().count() * ms_per_day + h * ms_per_hour + mi * ms_per_minute +
         s * Millis{1000};
}

std::string iso_utc(Millis ms) {
  const Civil c = civil(ms);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", c.year, c.month, c.day,
                c.hour, c.minute, c.second, static_cast<int>(ms - floor_div(ms, 1000) * 1000));
  return buf;
}

}  // namespace meterd::simulator
