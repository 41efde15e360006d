// The transformer area (台区): a summary meter that registers its
// households' true load plus the line loss, the `bypass` and `area`
// commands, and the [area] config. The meters are the pure models with a
// manual clock where order and time must be exact; the commands go
// through Fleet::control (no ptys opened), moved with the "advance" command.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include <doctest/doctest.h>
#include <unistd.h>

#include "protocol/decimal.hpp"
#include "protocol/dlt645/requests.hpp"
#include "protocol/dlt645/values.hpp"
#include "simulator/config.hpp"
#include "simulator/dlt645_meter.hpp"
#include "simulator/fleet.hpp"

using namespace meterd;
using namespace meterd::simulator;
namespace dlt = meterd::protocol::dlt645;
using nlohmann::json;

namespace {

const Millis t0 = from_civil(2026, 11, 27, 12, 0, 0);  // UTC; 20:00 local at +8
constexpr Millis offset = 480 * ms_per_minute;
constexpr std::int64_t loss_ppm = 35'000;  // 3.5 %
constexpr std::int64_t ppm = 1'000'000;

std::unique_ptr<Dlt645Meter> make(const char* id, const char* address, std::uint64_t seed,
                                  unsigned phases, AreaFeed feed = {}) {
  Dlt645MeterConfig c;
  c.id = id;
  c.address = *dlt::Address::parse(address);
  c.seed = seed;
  c.phases = phases;
  c.utc_offset_ms = offset;
  c.password = {0x02, {0x56, 0x34, 0x12}};  // printed 123456
  return std::make_unique<Dlt645Meter>(c, t0, std::move(feed));
}

// Three households (two single-phase, one three-phase) and their summary.
struct Area {
  std::vector<std::unique_ptr<Dlt645Meter>> households;
  std::unique_ptr<Dlt645Meter> summary;

  Area() {
    households.push_back(make("h1", "000000000011", 11, 1));
    households.push_back(make("h2", "000000000012", 12, 1));
    households.push_back(make("h3", "000000000013", 13, 3));
    AreaFeed feed;
    feed.loss_ppm = loss_ppm;
    for (const auto& h : households) feed.households.push_back(h.get());
    summary = make("s0", "000000000010", 10, 3, std::move(feed));
  }
  std::vector<Dlt645Meter*> all() const {
    std::vector<Dlt645Meter*> v{summary.get()};
    for (const auto& h : households) v.push_back(h.get());
    return v;
  }
};

std::string text(const dlt::ValueData& v) {
  if (const auto* d = std::get_if<protocol::Decimal>(&v)) return protocol::to_string(*d);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  return "null";
}

// Forward active total of the n-th last daily freeze (05060101 + n - 1), in
// 0.01 kWh, as a concentrator reads it.
std::int64_t freeze(Dlt645Meter& m, unsigned n, Millis now) {
  const auto v = m.read(0x05060100 + n, now);
  REQUIRE(v);
  return *protocol::rescale(std::get<protocol::Decimal>((*v)[0].value), -2,
                            protocol::Rounding::toward_zero);
}

std::string freeze_time(Dlt645Meter& m, unsigned n, Millis now) {
  const auto v = m.read(0x05060000 + n, now);
  REQUIRE(v);
  return text((*v)[0].value);
}

// Consumption (0.01 kWh) of the day that ends at the n-th last freeze.
std::int64_t day(Dlt645Meter& m, unsigned n, Millis now) {
  return freeze(m, n, now) - freeze(m, n + 1, now);
}

// summary x (1 - loss) == Σ households, up to the truncation of every
// 0.01 kWh register read (two per consumption, each < 0.01 kWh).
void check_loss(std::int64_t summary, std::int64_t households, std::size_t count,
                std::int64_t loss = loss_ppm) {
  const std::int64_t gap = summary * (ppm - loss) - households * ppm;
  CHECK(std::abs(gap) <= static_cast<std::int64_t>(count + 1) * ppm);
}

// The totals of an area's day: summary, Σ households.
std::pair<std::int64_t, std::int64_t> area_day(Area& a, unsigned n, Millis now) {
  std::int64_t h = 0;
  for (const auto& m : a.households) h += day(*m, n, now);
  return {day(*a.summary, n, now), h};
}

Millis next_local_midnight(Millis utc) {
  return (floor_div(utc + offset, ms_per_day) + 1) * ms_per_day - offset;
}

}  // namespace

// Catches a summary that walks its own seeded load curve through the year
// of history (only live minutes following the households), or that keeps
// random past outages of its own: every past day's loss would be off.
TEST_CASE("area history: every one of the 61 past days gives the configured loss") {
  Area a;
  REQUIRE(a.summary->history(dlt::Frozen::daily) == 62);
  for (unsigned n = 1; n <= 61; ++n) {
    CAPTURE(n);
    const std::string stamp = freeze_time(*a.summary, n, t0);
    CHECK(stamp.substr(11) == "00:00");
    for (const auto& h : a.households) CHECK(freeze_time(*h, n, t0) == stamp);
    const auto [s, h] = area_day(a, n, t0);
    CHECK(h > 1000);  // at least 10 kWh a day between three homes
    check_loss(s, h, a.households.size());
  }
}

// Catches a summary that adds up its households' register deltas since
// they were last read (lazy meters: read first, the summary would see
// nothing of the three days) and a summary whose instantaneous power is
// its own curve's.
TEST_CASE("area live days: the summary alone, read first after three days, follows its homes") {
  Area a;
  const Millis now = t0 + 3 * ms_per_day + 5 * ms_per_hour;
  const auto s_freezes = freeze(*a.summary, 1, now);  // the summary catches up first
  CHECK(s_freezes > 0);
  for (unsigned n = 1; n <= 3; ++n) {  // live days: freezes taken after t0
    CAPTURE(n);
    const auto [s, h] = area_day(a, n, now);
    check_loss(s, h, a.households.size());
  }
  // Instantaneous active power (kW, 4 decimals): summary = Σ / (1 - loss),
  // within one truncated digit per meter.
  const auto kw = [&](Dlt645Meter& m) {
    return *protocol::rescale(std::get<protocol::Decimal>((*m.read(0x02030000, now))[0].value), -4,
                              protocol::Rounding::toward_zero);
  };
  std::int64_t sum = 0;
  for (const auto& h : a.households) sum += kw(*h);
  CHECK(sum > 0);
  CHECK(std::abs(kw(*a.summary) * (ppm - loss_ppm) - sum * ppm) <= 4 * ppm);
}

// Catches a summary that, when it catches up, integrates past minutes with
// its households' *current* relay state, power or bypass share (or their
// registers): reading the summary before or after a household's trip, outage
// or bypass would then change what it registered.
TEST_CASE("area: read order does not change any register") {
  Area a, b;
  const auto addr = *dlt::Address::parse("000000000011");
  const auto trip = dlt::request::relay_control(
      addr, *dlt::parse_password("02123456"), *dlt::parse_operator("00000001"),
      dlt::RelayCommand::trip, *dlt::parse_datetime("2099-01-01T00:00:00"));
  const Millis t1 = t0 + 5 * ms_per_hour + 17'123, t2 = t0 + 9 * ms_per_hour + 31'000,
               t3 = t0 + 20 * ms_per_hour + 45'500, t4 = t0 + 2 * ms_per_day + 3 * ms_per_hour;
  // Area a: the summary read first at every step; area b: households only
  // until the end, then households before the summary.
  for (auto* m : a.all()) m->read(0x00010000, t1);
  for (const auto& h : b.households) h->read(0x00010000, t1);
  for (Area* x : {&a, &b}) REQUIRE(x->households[0]->handle(trip, t2));
  a.summary->read(0x00010000, t2 + 1);
  for (Area* x : {&a, &b}) {
    x->households[1]->power_cycle(t3, 2 * ms_per_hour);
    x->households[2]->bypass(t3, 300'000);
  }
  a.summary->read(0x00010000, t3 + 1);
  std::vector<std::uint32_t> dis{0x0001FF00, 0x00030000, 0x02030000, 0x05040101, 0x05040102};
  for (std::uint32_t n = 1; n <= 4; ++n) dis.push_back(0x05060100 + n);
  const auto answers = [&](std::vector<Dlt645Meter*> order) {
    std::map<std::string, std::string> out;
    for (auto* m : order)
      for (const auto di : dis) {
        const auto values = m->read(di, t4);
        REQUIRE(values);
        for (const auto& v : *values)
          out[m->config().id + std::to_string(di) + v.quantity] += text(v.value);
      }
    return out;
  };
  auto b_order = b.all();
  std::rotate(b_order.begin(), b_order.begin() + 1, b_order.end());  // summary last
  const auto ra = answers(a.all()), rb = answers(b_order);
  CHECK(ra.size() > 40);
  CHECK(ra == rb);
  CHECK(a.households[0]->relay() == RelayState::open);
}

// Catches a bypass that also lowers the summary (the rate would not move),
// one that only changes the instantaneous values (the freezes would not
// show it), and one that never ends at share 0.
TEST_CASE("bypass of 40% for a whole day: the rate from the freezes rises by the bypassed energy") {
  Area a, b;  // a: honest; b: h2 bypasses 40 % of its load for one local day
  const Millis m1 = next_local_midnight(t0), m2 = m1 + ms_per_day;
  b.households[1]->bypass(m1, 400'000);
  b.households[1]->bypass(m2, 0);
  const Millis now = m2 + 2 * ms_per_day + ms_per_hour;  // freezes: m2+2d, m2+1d, m2, m1
  const Civil c1 = civil(m1 + offset);
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT00:00", c1.year, c1.month, c1.day);
  for (Area* x : {&a, &b}) REQUIRE(freeze_time(*x->summary, 4, now) == stamp);
  const unsigned bypassed = 3, after = 2;  // the day [m1, m2) ends at the 3rd last freeze
  for (unsigned n = 1; n <= 4; ++n) CHECK(freeze(*a.summary, n, now) == freeze(*b.summary, n, now));
  const auto [s, ha] = area_day(a, bypassed, now);
  const auto [sb, hb] = area_day(b, bypassed, now);
  REQUIRE(s == sb);
  check_loss(s, ha, a.households.size());
  const std::int64_t h2 = day(*a.households[1], bypassed, now);  // h2's true consumption
  const std::int64_t h2b = day(*b.households[1], bypassed, now);
  CHECK(std::abs(h2b * 10 - h2 * 6) <= 20);  // 60 % metered, ±0.01 kWh on each read
  // rate_b - rate_a = (Σa - Σb) / S, predicted 0.4 · h2 / S.
  CHECK(std::abs((ha - hb) * 10 - 4 * h2) <= 20);
  const double rate_a = static_cast<double>(s - ha) / static_cast<double>(s);
  const double rate_b = static_cast<double>(s - hb) / static_cast<double>(s);
  MESSAGE("rate honest " << rate_a << ", with 40% of h2 bypassed " << rate_b << ", predicted "
                         << rate_a + 0.4 * static_cast<double>(h2) / static_cast<double>(s));
  CHECK(rate_b > rate_a + 0.05);
  // Share 0 ended it: the next day h2 meters all of its load again.
  CHECK(std::abs(day(*b.households[1], after, now) - day(*a.households[1], after, now)) <= 1);
  CHECK(b.households[1]->bypass_ppm() == 0);
}

namespace {

FleetConfig fleet_config() {
  FleetConfig c;
  c.seed = 5;
  c.utc_offset_minutes = 480;
  c.run_dir = "/nonexistent/metersim-test-area";  // never opened: start() is not called
  BusSpec bus;
  bus.name = "rs485-1";
  c.buses.push_back(bus);
  const auto meter = [&](const char* id, const char* protocol, const char* address,
                         const char* model, unsigned phases) {
    MeterSpec m;
    m.id = id;
    m.protocol = protocol;
    m.bus = "rs485-1";
    m.address = address;
    m.model = model;
    m.phases = phases;
    c.meters.push_back(m);
  };
  // The households come first and last around the summary: the fleet must
  // build them before it, whatever the order in the config.
  meter("h1", "dlt645-2007", "000000000001", "", 1);
  meter("s0", "dlt645-2007", "000000000010", "", 3);
  meter("h2", "dlt645-1997", "000000000002", "", 1);
  meter("h3", "modbus", "7", "sdm120", 1);
  meter("other", "dlt645-2007", "000000000009", "", 3);
  AreaSpec area;
  area.summary = "s0";
  area.households = {"h1", "h2", "h3"};
  area.loss_percent = "3.5";
  c.area = area;
  return c;
}

json ok(Fleet& f, const json& request) {
  const json a = f.control(request);
  CAPTURE(request.dump());
  CAPTURE(a.dump());
  REQUIRE(a.value("ok", false));
  return a;
}

std::string error(Fleet& f, const json& request) {
  const json a = f.control(request);
  CAPTURE(a.dump());
  REQUIRE(!a.value("ok", true));
  return a.value("error", "");
}

// "123.45" -> 12345.
std::int64_t centi(const std::string& s) {
  return *protocol::rescale(*protocol::parse_decimal(s), -2, protocol::Rounding::toward_zero);
}

}  // namespace

// Catches treating an offline household (comms silent) as one without
// load: the summary would lose its consumption and the rate go negative;
// and an `area` command whose figures are not what the freezes hold.
TEST_CASE("area and bypass commands: an offline household still counts; figures = freezes") {
  boost::asio::io_context io;
  Fleet f(io, fleet_config());
  const json conf = ok(f, {{"cmd", "area"}});
  CHECK(conf["summary"] == "s0");
  CHECK(conf["households"] == json::array({"h1", "h2", "h3"}));
  CHECK(conf["loss_percent"] == "3.5");
  CHECK(f.endpoints()["area"]["summary"] == "s0");

  CHECK(error(f, {{"cmd", "bypass"}, {"meter", "s0"}, {"share", 0.4}}).find("not a household") !=
        std::string::npos);
  CHECK(error(f, {{"cmd", "bypass"}, {"meter", "other"}, {"share", 0.4}}).find("not a household") !=
        std::string::npos);
  CHECK(error(f, {{"cmd", "bypass"}, {"meter", "h1"}, {"share", 1.5}}).find("share") !=
        std::string::npos);
  CHECK(error(f, {{"cmd", "bypass"}, {"meter", "h1"}}).find("share") != std::string::npos);
  CHECK(error(f, {{"cmd", "area"}, {"date", "2026-02-30"}}).find("date") != std::string::npos);
  CHECK(error(f, {{"cmd", "area"}, {"date", "2001-01-01"}}).find("no daily freeze") !=
        std::string::npos);

  // The Modbus home's bypass shows in its truth and in `area`.
  const json by = ok(f, {{"cmd", "bypass"}, {"meter", "h3"}, {"share", 0.25}});
  CHECK(by["share"] == 0.25);
  CHECK(ok(f, {{"cmd", "truth"}, {"meter", "h3"}})["bypass_share"] == 0.25);
  CHECK(ok(f, {{"cmd", "truth"}, {"meter", "h1"}})["bypass_share"] == 0.0);
  CHECK(ok(f, {{"cmd", "truth"}, {"meter", "s0"}})["area"] == "summary");
  CHECK(ok(f, {{"cmd", "area"}})["bypass"]["h3"] == 0.25);
  ok(f, {{"cmd", "bypass"}, {"meter", "h3"}, {"share", 0}});
  CHECK(ok(f, {{"cmd", "area"}})["bypass"].empty());

  // h1 offline for two days, h2 powered off for three hours on the way.
  ok(f, {{"cmd", "offline"}, {"meter", "h1"}});
  ok(f, {{"cmd", "advance"}, {"ms", ms_per_day}});
  ok(f, {{"cmd", "power_cycle"}, {"meter", "h2"}, {"off_ms", 3 * ms_per_hour}});
  ok(f, {{"cmd", "advance"}, {"ms", ms_per_day}});
  // The day before today (local) was lived entirely after the start.
  const Millis local = f.clock().now() + offset - ms_per_day;
  const Civil c = civil(local);
  char date[16];
  std::snprintf(date, sizeof date, "%04d-%02d-%02d", c.year, c.month, c.day);
  const json d = ok(f, {{"cmd", "area"}, {"date", date}});
  MESSAGE(d.dump());
  const std::int64_t s = centi(d["summary_kwh"].get<std::string>());
  std::int64_t h = 0;
  for (const char* id : {"h1", "h2", "h3"}) h += centi(d["households_kwh"][id].get<std::string>());
  CHECK(h == centi(d["households_total_kwh"].get<std::string>()));
  CHECK(centi(d["loss_kwh"].get<std::string>()) == s - h);
  check_loss(s, h, 3);
  CHECK(std::abs(std::stod(d["rate"].get<std::string>()) - 0.035) < 0.002);
  CHECK(std::stod(d["rate_percent"].get<std::string>()) ==
        doctest::Approx(std::stod(d["rate"].get<std::string>()) * 100));
  // The 2007 meters' figures are what 05060101 answers (found by their
  // freeze times, so a midnight between two commands cannot mislead).
  for (const char* id : {"s0", "h1"}) {
    CAPTURE(id);
    std::map<std::string, std::int64_t> by_stamp;
    for (int n = 1; n <= 3; ++n) {
      char di[16];
      std::snprintf(di, sizeof di, "0506%02X%02X", 0, n);
      const auto stamp = ok(f, {{"cmd", "read"}, {"meter", id}, {"di", di}})["values"][0]["value"];
      std::snprintf(di, sizeof di, "0506%02X%02X", 1, n);
      const auto kwh = ok(f, {{"cmd", "read"}, {"meter", id}, {"di", di}})["values"][0]["value"];
      by_stamp[stamp.get<std::string>()] = centi(kwh.get<std::string>());
    }
    const auto from = d["from"].get<std::string>(), to = d["to"].get<std::string>();
    REQUIRE(by_stamp.count(from) == 1);
    REQUIRE(by_stamp.count(to) == 1);
    const json& figure = std::string(id) == "s0" ? d["summary_kwh"] : d["households_kwh"][id];
    CHECK(by_stamp[to] - by_stamp[from] == centi(figure.get<std::string>()));
  }
}

namespace {

std::filesystem::path write_toml(const std::string& body) {
  static int n = 0;
  const auto p = std::filesystem::temp_directory_path() /
                 ("test_area_" + std::to_string(::getpid()) + "_" + std::to_string(++n) + ".toml");
  std::ofstream(p) << body;
  return p;
}

const char* const meters_toml = R"([[bus]]
name = "rs485-1"

[[meter]]
id = "s0"
bus = "rs485-1"
address = "1"

[[meter]]
id = "h1"
bus = "rs485-1"
address = "2"

[[meter]]
id = "old"
bus = "rs485-1"
protocol = "dlt645-1997"
address = "3"
)";

std::string load_error(const std::string& area) {
  const auto p = write_toml(std::string(meters_toml) + "\n[area]\n" + area);
  std::string what;
  try {
    load_config(p);
  } catch (const ConfigError& e) {
    what = e.what();
  }
  std::filesystem::remove(p);
  return what;
}

}  // namespace

// Catches an [area] that accepts a summary counted as its own household
// (the loss would be negative), a home listed twice (counted twice), an id
// that is no meter, or a loss of 50 % and more; each error names its key.
TEST_CASE("area config: errors name the key and its line") {
  CHECK(load_error("summary = \"s0\"\nhouseholds = [\"h1\", \"old\"]\nloss_percent = \"3.5\"\n")
            .empty());
  CHECK(load_error("summary = \"s0\"\nhouseholds = [\"h1\"]\nloss_percent = 49.9999\n").empty());
  const auto has = [](const std::string& what, const char* part) {
    CAPTURE(what);
    CHECK(what.find(part) != std::string::npos);
  };
  has(load_error("summary = \"nope\"\nhouseholds = [\"h1\"]\n"), ":21: area.summary: no meter");
  has(load_error("summary = \"old\"\nhouseholds = [\"h1\"]\n"),
      "area.summary: 'old' is dlt645-1997");
  has(load_error("summary = \"s0\"\nhouseholds = [\"h1\", \"s0\"]\n"),
      ":22: area.households: 's0' is the summary meter");
  has(load_error("summary = \"s0\"\nhouseholds = [\"h1\", \"h1\"]\n"),
      "area.households: 'h1' listed twice");
  has(load_error("summary = \"s0\"\nhouseholds = [\"h1\", \"h9\"]\n"),
      "area.households: no meter 'h9'");
  has(load_error("summary = \"s0\"\nhouseholds = []\n"), "area.households: the area has no");
  has(load_error("summary = \"s0\"\n"), "area.households: required");
  for (const char* bad : {"\"50\"", "\"-1\"", "\"3.12345\"", "\"abc\"", "\"\"", "\"3.\"", "75"})
    has(load_error(std::string("summary = \"s0\"\nhouseholds = [\"h1\"]\nloss_percent = ") + bad +
                   "\n"),
        ":23: area.loss_percent");
  has(load_error("summary = \"s0\"\nhouseholds = [\"h1\"]\nloss = 3\n"), "loss: unknown key");

  CHECK(parse_loss_percent("3.5") == 35'000);
  CHECK(parse_loss_percent("0") == 0);
  CHECK(parse_loss_percent("49.9999") == 499'999);
  CHECK(!parse_loss_percent("50"));
}

// Catches quick-flag area meters whose ids or addresses collide with the
// quick fleet's, or that are left out of the gateway config.
TEST_CASE("--area N: a summary and N households on the quick buses, in the gateway config") {
  QuickCounts n;
  n.dlt2007 = 4;
  n.buses = 2;
  n.area = 3;
  n.area_loss_percent = "2.5";
  const FleetConfig c = quick_config(n);
  REQUIRE(c.area);
  CHECK(c.area->summary == "area-s");
  CHECK(c.area->households == std::vector<std::string>{"area-h1", "area-h2", "area-h3"});
  CHECK(c.area->loss_percent == "2.5");
  REQUIRE(c.meters.size() == 8);
  std::set<std::string> buses;
  for (std::size_t k = 4; k < 8; ++k) {
    CHECK(c.meters[k].protocol == "dlt645-2007");
    CHECK(c.meters[k].address.substr(0, 2) == "88");
    buses.insert(c.meters[k].bus);
  }
  CHECK(buses.size() == 2);
  n.area_loss_percent = "50";
  std::string what;
  try {
    quick_config(n);
  } catch (const ConfigError& e) {
    what = e.what();
  }
  CHECK(what.find("--area-loss-percent") == 0);

  boost::asio::io_context io;
  FleetConfig fc = c;
  fc.run_dir = "/nonexistent/metersim-test-area";
  Fleet f(io, fc);
  const std::string gw = f.gateway_config("gw", "/tmp/gw");
  for (const char* id : {"area-s", "area-h1", "area-h3"})
    CHECK(gw.find(std::string("id = \"") + id + "\"") != std::string::npos);
  CHECK(gw.find("address = \"880000000000\"") != std::string::npos);
}
