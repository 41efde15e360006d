// Small helpers the benchmarks (tests/bench) share. Header-only.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace meterd::testing {

// A progress line on stderr (stdout carries the figures).
inline void progress(const std::string& what) {
  std::fprintf(stderr, "  .. %s\n", what.c_str());
  std::fflush(stderr);
}

// meterd's clock (Daemon's now_ms): the wall clock, ms since the epoch.
inline std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The median of the values that are not NaN; NaN when there are none.
inline double median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// printf of one figure; "n/a" for NaN.
inline std::string fmt(const char* f, double v) {
  if (std::isnan(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace meterd::testing
