#include "firmware/area.hpp"

#include <cstdint>

#include <nlohmann/json.hpp>

#include "firmware/detail/decimal_ops.hpp"

namespace meterd::firmware {

using protocol::Decimal;

namespace {

std::optional<Decimal> combine(const Decimal& a, const Decimal& b, bool subtract) {
  return subtract ? detail::subtract(a, b) : detail::add(a, b);
}

// loss ÷ summary × 100 with 4 decimals, in integers: both at one exponent,
// then (loss × 10^6) / summary, rounded half away from zero.
std::optional<Decimal> percent(const Decimal& loss, const Decimal& summary) {
  const std::int32_t e = std::min(loss.exponent, summary.exponent);
  const auto l = protocol::rescale(loss, e);
  const auto s = protocol::rescale(summary, e);
  if (!l || !s || *s <= 0) return std::nullopt;
  std::int64_t scaled = 0;
  if (__builtin_mul_overflow(*l, std::int64_t{1'000'000}, &scaled)) return std::nullopt;
  std::int64_t q = scaled / *s;
  const std::int64_t rem = scaled % *s;
  if (2 * (rem < 0 ? -rem : rem) >= *s) q += scaled < 0 ? -1 : 1;
  return Decimal{q, -4};
}

}  // namespace

AreaDay compute_area_day(const AreaDayInput& in) {
  AreaDay day;
  for (const auto& h : in.households)
    if (!h.present()) day.missing.push_back(h.meter);
  if (!in.summary.present()) {
    day.problem = "the summary meter's freezes of that day are not stored";
    return day;
  }
  const auto s = combine(*in.summary.end, *in.summary.start, true);
  if (!s || s->mantissa < 0) {
    day.problem = "the summary meter's register went down (replaced or cleared)";
    return day;
  }
  day.summary_kwh = *s;
  Decimal sum{0, 0};
  for (const auto& h : in.households) {
    if (!h.present()) continue;
    const auto used = combine(*h.end, *h.start, true);
    if (!used || used->mantissa < 0) {
      day.problem = "meter " + h.meter + "'s register went down (replaced or cleared)";
      return day;
    }
    const auto total = combine(sum, *used, false);
    if (!total) {
      day.problem = "overflow";
      return day;
    }
    sum = *total;
  }
  day.households_kwh = sum;
  const auto loss = combine(*s, sum, true);
  if (!loss) {
    day.problem = "overflow";
    return day;
  }
  day.loss_kwh = *loss;
  day.computable = true;
  day.rate_percent = percent(*loss, *s);
  day.high = day.missing.empty() && day.rate_percent && in.threshold_percent < *day.rate_percent;
  return day;
}

std::string area_day_json(const AreaDayInput& in, const AreaDay& day, bool revised) {
  using nlohmann::json;
  const auto text = [](const std::optional<Decimal>& d) -> json {
    return d ? json(protocol::to_string(*d)) : json(nullptr);
  };
  const auto used = [&](const AreaMeterDay& m) -> json {
    if (!m.present()) return nullptr;
    const auto d = combine(*m.end, *m.start, true);
    return d ? json(protocol::to_string(*d)) : json(nullptr);
  };
  json households = json::array();
  for (const auto& h : in.households)
    households.push_back(
        {{"meter", h.meter}, {"start", text(h.start)}, {"end", text(h.end)}, {"kwh", used(h)}});
  json j{{"area", in.area},
         {"date", in.date},
         {"from", in.from},
         {"to", in.to},
         {"summary",
          {{"meter", in.summary.meter},
           {"start", text(in.summary.start)},
           {"end", text(in.summary.end)},
           {"kwh", used(in.summary)}}},
         {"households", households},
         {"summary_kwh", protocol::to_string(day.summary_kwh)},
         {"households_kwh", protocol::to_string(day.households_kwh)},
         {"loss_kwh", protocol::to_string(day.loss_kwh)},
         {"rate_percent", text(day.rate_percent)},
         {"threshold_percent", protocol::to_string(in.threshold_percent)},
         {"households_total", in.households.size()},
         {"households_missing", day.missing.size()},
         {"missing", day.missing},
         {"complete", day.complete()}};
  if (revised) j["revised"] = true;
  return j.dump();
}

}  // namespace meterd::firmware
