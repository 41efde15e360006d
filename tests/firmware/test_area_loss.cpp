// The area line loss of one day (firmware/area), from freezes given by hand.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "firmware/area.hpp"

using namespace meterd;
using namespace meterd::firmware;
using protocol::Decimal;

namespace {

std::optional<Decimal> d(const char* text) { return protocol::parse_decimal(text); }

AreaDayInput normal_day() {
  AreaDayInput in;
  in.area = "t1";
  in.date = "2026-11-30";
  in.from = "2026-11-30T00:00";
  in.to = "2026-12-01T00:00";
  in.summary = {"s0", d("1000.00"), d("1100.00")};    // 100 kWh
  in.households = {{"h1", d("500.00"), d("530.00")},  // 30
                   {"h2", d("200.0"), d("260.5")},    // 60.5 (one decimal)
                   {"h3", d("10.00"), d("16.00")}};   // 6
  in.threshold_percent = *d("8.0");
  return in;
}

}  // namespace

// A rate through double prints 3.4999999; one that ignores the households'
// own precision misreads 260.5 - 200.0.
TEST_CASE("line loss of a complete day, exact") {
  const auto day = compute_area_day(normal_day());
  CHECK(day.complete());
  CHECK(protocol::to_string(day.summary_kwh) == "100.00");
  CHECK(protocol::to_string(day.households_kwh) == "96.50");
  CHECK(protocol::to_string(day.loss_kwh) == "3.50");
  REQUIRE(day.rate_percent);
  CHECK(protocol::to_string(*day.rate_percent) == "3.5000");
  CHECK_FALSE(day.high);
  const auto j = nlohmann::json::parse(area_day_json(normal_day(), day, false));
  CHECK(j["rate_percent"] == "3.5000");
  CHECK(j["households"][1]["kwh"] == "60.5");
  CHECK(j["complete"] == true);
  CHECK_FALSE(j.contains("revised"));
}

// Rounding half away from zero at the 4th decimal: 1/3 and 2/3 of a kWh.
TEST_CASE("line loss rounds the rate to 4 decimals, half away from zero") {
  auto in = normal_day();
  in.summary = {"s0", d("0.00"), d("3.00")};
  in.households = {{"h1", d("0.00"), d("2.00")}};
  CHECK(protocol::to_string(*compute_area_day(in).rate_percent) == "33.3333");
  in.households = {{"h1", d("0.00"), d("1.00")}};
  CHECK(protocol::to_string(*compute_area_day(in).rate_percent) == "66.6667");
  in.households = {{"h1", d("0.00"), d("3.50")}};  // more metered than the summary saw
  CHECK(protocol::to_string(*compute_area_day(in).rate_percent) == "-16.6667");
}

// A household missing is not loss: the day is incomplete and never "high",
// however high the rate over the others is.
TEST_CASE("a missing household: incomplete, counted, no high alarm") {
  auto in = normal_day();
  in.households[1].end.reset();
  const auto day = compute_area_day(in);
  CHECK(day.computable);
  CHECK_FALSE(day.complete());
  CHECK(day.missing == std::vector<std::string>{"h2"});
  CHECK(protocol::to_string(*day.rate_percent) == "64.0000");
  CHECK_FALSE(day.high);
  const auto j = nlohmann::json::parse(area_day_json(in, day, false));
  CHECK(j["households_missing"] == 1);
  CHECK(j["households"][1]["kwh"].is_null());
}

// Past the threshold on a complete day (a bypass), exactly at it not.
TEST_CASE("high only past the threshold") {
  auto in = normal_day();
  in.households[0].end = d("525.50");  // 25.5: loss 8.00 kWh = 8.0000 %
  auto day = compute_area_day(in);
  CHECK(protocol::to_string(*day.rate_percent) == "8.0000");
  CHECK_FALSE(day.high);
  in.households[0].end = d("525.49");
  day = compute_area_day(in);
  CHECK(day.high);
}

// A register that went down (a replaced or cleared meter) is no consumption.
TEST_CASE("a register that went down is not computed") {
  auto in = normal_day();
  in.households[2].end = d("5.00");
  const auto day = compute_area_day(in);
  CHECK_FALSE(day.computable);
  CHECK(day.problem.find("h3") != std::string::npos);
  in = normal_day();
  in.summary.end.reset();
  CHECK_FALSE(compute_area_day(in).computable);
  in = normal_day();
  in.summary.end = in.summary.start;  // nothing measured: no rate
  const auto idle = compute_area_day(in);
  CHECK(idle.computable);
  CHECK_FALSE(idle.rate_percent);
}
