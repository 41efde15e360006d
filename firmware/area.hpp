// The transformer area's line loss (台区线损, docs/tasks.md "Area line
// loss"): for one day, from the daily freezes at its two midnights, the
// summary meter's consumption against the sum of its households'. Pure.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "protocol/decimal.hpp"

namespace meterd::firmware {

// A meter's energy.active.import.total at the freezes that open and close
// the day (00:00 of the day and of the next one); nullopt when not stored.
struct AreaMeterDay {
  std::string meter;
  std::optional<protocol::Decimal> start, end;
  bool present() const { return start.has_value() && end.has_value(); }
};

struct AreaDayInput {
  std::string area;
  std::string date;      // "2026-11-30": from its 00:00 to the next day's 00:00
  std::string from, to;  // the freeze times ("2026-11-30T00:00", "2026-12-01T00:00")
  AreaMeterDay summary;
  std::vector<AreaMeterDay> households;
  protocol::Decimal threshold_percent{8, 0};
};

struct AreaDay {
  bool computable = false;           // the summary's two freezes are there
  std::vector<std::string> missing;  // households without both freezes
  bool complete() const { return computable && missing.empty(); }
  protocol::Decimal summary_kwh, households_kwh, loss_kwh;
  // (summary - Σ households) ÷ summary × 100, 4 decimals, rounded half away
  // from zero; nullopt when the summary measured nothing.
  std::optional<protocol::Decimal> rate_percent;
  // Past the threshold, on a complete day only: a household that did not
  // report cannot be told from a theft.
  bool high = false;
  std::string problem;  // why not computable, or a meter whose register went down
};

AreaDay compute_area_day(const AreaDayInput& in);

// The event payload: every figure it was computed from, decimals as strings
// with the meters' own digits, so a head-end can recompute it.
std::string area_day_json(const AreaDayInput& in, const AreaDay& day, bool revised);

}  // namespace meterd::firmware
