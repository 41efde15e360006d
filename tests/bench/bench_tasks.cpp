// The data tasks' bus cost (docs/tasks.md "Daily frozen data", docs/performance.md
// "Daily frozen data"): the freeze task run as the daemon runs it, against metersim
// with wire timing, each figure next to a like-for-like baseline from the same run:
//   1. a daily round per meter (05060001, 05060101, 05060201) through
//      run_freeze_task on a DltLink bound to drivers::dlt645_read, as
//      Daemon::post_task binds it, against a bare loop of the same three
//      dlt645_read calls (interleaved, medians over rounds and meters), split
//      into wire time (bytes × bits per character / baud), the silences the
//      line waited, and the rest (the meters' turnarounds and our own time);
//   2. backfill (补抄) of D days on M meters (the state says the meter was
//      last collected D + 1 days ago), timed and checked: each meter gets D
//      distinct freezes, the right ones, with metersim's own values; the time
//      of 62 days × all meters is extrapolated from the measured exchanges
//      unless --full measures it.
// Prints figures; asserts none. Exit status 1 when a correctness check fails
// or a measurement produced no data.
//
//   bench_tasks [--meters N] [--baud B] [--rounds R] [--backfill-meters M] [--days D]
//               [--full] [--sections 12] [--smoke]
//   defaults: 32 meters at 2400 baud 8E1, 3 rounds, backfill 2 meters × 62 days.
//   --full: backfill all meters × 62 days (about half an hour at 2400 baud).
//   --smoke: 2 meters at 9600, 2 rounds, backfill 2 × 3 days (what ctest runs).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "drivers/bus.hpp"
#include "drivers/dlt645_master.hpp"
#include "drivers/line.hpp"
#include "drivers/serial_port.hpp"
#include "firmware/config.hpp"
#include "firmware/freezes.hpp"
#include "firmware/profiles.hpp"
#include "protocol/decimal.hpp"
#include "tests/support/bench.hpp"
#include "tests/support/sim_bus.hpp"
#include "tests/support/system.hpp"

namespace fs = std::filesystem;
namespace fw = meterd::firmware;
namespace drv = meterd::drivers;
namespace dlt = meterd::protocol::dlt645;
using namespace meterd::testing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

using meterd::testing::fmt;
using meterd::testing::median;
using meterd::testing::progress;
using meterd::testing::wall_ms;

constexpr std::int64_t ms_per_day = 86'400'000;
constexpr int utc_offset_minutes = 480;  // China: metersim's meters and the gateway alike
constexpr unsigned meter_depth = 62;     // daily freezes a DL/T 645-2007 meter keeps

// ---- options and small helpers ------------------------------------------------------------

struct Options {
  unsigned meters = 32;
  unsigned baud = 2400;
  unsigned rounds = 3;
  unsigned backfill_meters = 2;
  unsigned days = 62;
  bool full = false;
  bool smoke = false;
  std::string sections = "12";
  bool has(char s) const { return sections.find(s) != std::string::npos; }
};

std::string duration_text(double s) {
  if (std::isnan(s)) return "n/a";
  if (s < 120) return fmt("%.1f s", s);
  return fmt("%.1f min", s / 60) + " (" + fmt("%.0f s", s) + ")";
}

double ms_of(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
double ms_of(std::chrono::microseconds d) { return static_cast<double>(d.count()) / 1000.0; }

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

std::string tail(const fs::path& file, std::size_t lines = 8) {
  std::vector<std::string> all;
  std::ifstream in(file);
  for (std::string l; std::getline(in, l);) all.push_back(l);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += "    | " + all[i] + "\n";
  return out;
}

// ---- the figures table -------------------------------------------------------------------

struct Figure {
  std::string what, value, note;
};
std::vector<Figure> figures;

void figure(std::string what, std::string value, std::string note = "") {
  figures.push_back({std::move(what), std::move(value), std::move(note)});
}

void print_figures() {
  std::size_t w = 0;
  for (const auto& f : figures) w = std::max(w, f.what.size());
  std::printf("\nFigures\n");
  std::printf("  %-*s  %18s  %s\n", static_cast<int>(w), "figure", "value", "note");
  for (const auto& f : figures)
    std::printf("  %-*s  %18s  %s\n", static_cast<int>(w), f.what.c_str(), f.value.c_str(),
                f.note.c_str());
}

// Correctness failures: any of them makes the exit status 1.
std::vector<std::string> failures;

// Section 1's bus time per exchange over every meter's daily round (its
// median), for section 2's second extrapolation.
double daily_ms_per_exchange = NAN;
void check(bool ok, const std::string& what) {
  if (ok) return;
  failures.push_back(what);
  std::printf("   CHECK FAILED: %s\n", what.c_str());
}

// ---- metersim ----------------------------------------------------------------------------

// One bus of `meters` DL/T 645-2007 meters (addresses 000000000001..), wire
// timing on; each meter draws its own turnaround (20..60 ms, half as much
// again for history reads) as metersim does for a fleet.
std::string sim_toml(unsigned meters, unsigned baud) {
  std::string o =
      "seed = 7\nwire_timing = true\nutc_offset_minutes = " + std::to_string(utc_offset_minutes) +
      "\n\n[[bus]]\nname = \"dl\"\nbaud = " + std::to_string(baud) +
      "\nparity = \"even\"\ndata_bits = 8\nstop_bits = 1\n";
  for (unsigned k = 1; k <= meters; ++k) {
    char address[16];
    std::snprintf(address, sizeof address, "%012u", k);
    o += "\n[[meter]]\nid = \"m" + std::to_string(k) +
         "\"\nbus = \"dl\"\nprotocol = \"dlt645-2007\"\naddress = \"" + address + "\"\n";
  }
  return o;
}

// A metersim process with its own run dir; stopped when the object goes.
class Sim {
 public:
  explicit Sim(const std::string& toml) {
    std::ofstream(dir_.path / "sim.toml") << toml;
    const std::vector<std::string> args{"--config",    (dir_.path / "sim.toml").string(),
                                        "--run-dir",   (dir_.path / "run").string(),
                                        "--endpoints", (dir_.path / "endpoints.json").string()};
    proc_ = std::make_unique<Process>(std::string(METERD_BIN_DIR) + "/metersim", args,
                                      dir_.path / "metersim.log");
    if (!wait_for_file(dir_.path / "endpoints.json", 120s))
      throw std::runtime_error("metersim did not start:\n" + tail(dir_.path / "metersim.log"));
    endpoints_ = read_json(dir_.path / "endpoints.json");
  }
  const json& bus() const { return endpoints_["buses"][0]; }
  json ctl(const json& req) const { return control(endpoints_["control"].get<std::string>(), req); }

 private:
  TempDir dir_;
  std::unique_ptr<Process> proc_;
  json endpoints_;
};

// ---- the bus as the daemon binds it ------------------------------------------------------

struct Meter {
  std::string id;
  dlt::Address address;
};

// The bus opened as meterd's bus worker opens it, with the options
// Daemon::post_task gives a freeze job: the bus's limits and retries at
// meterd's defaults, the meter's preamble at its default, the profile's
// min_gap (dlt645-basic, the profile of a 2007 meter without one).
struct Bus {
  std::unique_ptr<drv::SerialLine> line;
  drv::Dlt645Options options;
  std::vector<Meter> meters;
  bool parity_refused = false;

  explicit Bus(const json& bus) {
    auto port = meterd::testing::open_sim_bus(bus);
    parity_refused = port.parity_refused;
    line = std::make_unique<drv::SerialLine>(std::move(port.fd), port.settings);

    options = drv::dlt645_options(drv::BusConfig{});
    options.preamble = fw::MeterConfig{}.preamble;
    const auto profiles = fw::ProfileSet::builtin();
    const fw::Profile* p = profiles->find("dlt645-basic");
    if (p == nullptr) throw std::runtime_error("meterd has no dlt645-basic profile");
    options.min_gap = p->min_gap;

    for (const auto& m : bus["meters"]) {
      const auto a = dlt::Address::parse(m["address"].get<std::string>());
      if (!a) throw std::runtime_error("bad meter address " + m["address"].dump());
      meters.push_back({m["id"], *a});
    }
  }

  drv::Dlt645Read read(const Meter& m, std::uint32_t di) {
    return drv::dlt645_read(*line, dlt::Version::v2007, m.address, di, options);
  }

  // The DltLink of Daemon::post_task (without the worker's counters).
  fw::DltLink link(const Meter& m) {
    fw::DltLink l;
    l.version = dlt::Version::v2007;
    l.read = [this, &m](std::uint32_t di) { return read(m, di); };
    l.write = [](std::uint32_t, const std::vector<std::uint8_t>&) {
      drv::Dlt645Answer a;  // the freeze task writes nothing
      a.outcome = drv::Outcome::cancelled;
      a.detail = "the bench writes nothing";
      return a;
    };
    return l;
  }

  double bits_per_char() const { return line->settings().bits_per_char(); }
  double baud() const { return line->settings().baud; }
  double wire_ms(const drv::Tally& t) const {
    return static_cast<double>(t.tx_bytes + t.rx_bytes) * bits_per_char() * 1000.0 / baud();
  }
};

// The task input of one meter at `now_ms`: daily freezes (no hourly), backfill
// `days`, a state that says the meter was collected up to and including
// `first_done` days before the newest freeze due. `monthly`: the settlement
// data on too, as the daemon's default [tasks] has it, with this month's
// settlement stored already (metersim's meters settle on the 1st at 00:00):
// no settlement is due, so a run reads nothing for it (04000B01 only when one is). Delay 0: a run
// just after 00:00 still wants the freeze the meter made at 00:00 (with the daemon's 5 min default
// it would want yesterday's and see the list one place further on).
fw::FreezeTaskInput task_input(const std::string& meter, std::int64_t now_ms, const fw::Zone& zone,
                               unsigned days, unsigned first_done, bool monthly = false) {
  fw::FreezeTaskInput in;
  in.meter = meter;
  in.now_ms = now_ms;
  in.zone = zone;
  in.daily = true;
  in.hourly = false;
  in.monthly = monthly;
  in.delay = std::chrono::milliseconds(0);
  in.backfill_days = days;
  const std::int64_t latest = floor_div(zone.to_local(now_ms), ms_per_day);
  const std::string since = fw::local_date((latest - first_done) * ms_per_day);
  in.state = {{fw::daily_since_key, since}, {fw::daily_done_key, since}};
  if (monthly) {
    const std::string settled = fw::local_date(latest * ms_per_day).substr(0, 8) + "01T00";
    in.state["monthly.day"] = "01T00";
    in.state[fw::monthly_since_key] = settled;
    in.state[fw::monthly_done_key] = settled;
  }
  return in;
}

// ---- 1. a daily round per meter ----------------------------------------------------------

struct RoundSample {
  double wall_ms = NAN, wire_ms = NAN, silence_ms = NAN;
  double bytes = NAN, exchanges = NAN;
};

bool section_daily(const Options& opt, Bus& bus) {
  const fw::Zone zone = fw::fixed_zone(utc_offset_minutes);
  std::printf(
      "\n1. Daily round per meter (05060001 + 05060101 + 05060201), %u meters, %u baud "
      "8E1, wire timing\n",
      static_cast<unsigned>(bus.meters.size()), opt.baud);
  std::printf(
      "   run_freeze_task on a DltLink bound to drivers::dlt645_read (as Daemon::post_task binds\n"
      "   it), daily only, against a bare loop of the same 3 dlt645_read calls; and the task\n"
      "   with monthly on as [tasks] has it by default (04000B01 is read only when a settlement is "
      "due); %u rounds,\n"
      "   the three interleaved (order rotating); a meter's figure is its median over the\n"
      "   rounds, the figure below the median over the meters. Wire time = bytes x %u bits /\n"
      "   %u baud; gaps = silence the line waited before requests (frame gap, min_gap)\n",
      opt.rounds, static_cast<unsigned>(bus.bits_per_char()), opt.baud);
  const std::vector<std::uint32_t> dis{0x05060001, 0x05060101, 0x05060201};
  std::map<std::string, std::vector<RoundSample>> task, base, task_monthly;
  bool data = true;
  for (unsigned round = 1; round <= opt.rounds; ++round) {
    progress("daily rounds: round " + std::to_string(round) + " of " + std::to_string(opt.rounds));
    for (std::size_t k = 0; k < bus.meters.size(); ++k) {
      const Meter& m = bus.meters[k];
      const auto run_task = [&](bool monthly) {
        const std::int64_t now = wall_ms();
        const auto in = task_input(m.id, now, zone, 7, 1, monthly);
        // The settlement day is not read while no settlement is due.
        const unsigned expected = 3;
        const fw::DltLink link = bus.link(m);
        const auto t0 = Clock::now();
        const fw::TaskOutput out = fw::run_freeze_task(link, in);
        const auto t1 = Clock::now();
        RoundSample s;
        s.wall_ms = ms_of(t1 - t0);
        s.wire_ms = bus.wire_ms(out.tally);
        s.silence_ms = ms_of(out.tally.silence);
        s.bytes = static_cast<double>(out.tally.tx_bytes + out.tally.rx_bytes);
        s.exchanges = out.exchanges;
        // Today's freeze, whole, and nothing else.
        const std::int64_t today = floor_div(zone.to_local(now), ms_per_day) * ms_per_day;
        bool today_only = !out.readings.empty();
        for (const auto& r : out.readings)
          today_only = today_only && r.freeze_ts_ms == zone.to_utc(today);
        check(out.failure == drv::Outcome::ok,
              "daily round " + m.id + ": " + drv::to_string(out.failure) + " " + out.detail);
        check(out.exchanges == expected, "daily round " + m.id + ": " +
                                             std::to_string(out.exchanges) + " exchanges, not " +
                                             std::to_string(expected));
        check(today_only, "daily round " + m.id + ": readings are not today's freeze (" +
                              std::to_string(out.readings.size()) + " readings)");
        check(out.events.empty(), "daily round " + m.id + ": unexpected events");
        if (out.failure != drv::Outcome::ok) s.wall_ms = NAN;
        (monthly ? task_monthly : task)[m.id].push_back(s);
      };
      const auto run_base = [&] {
        drv::Tally tally;
        bool ok = true;
        const auto t0 = Clock::now();
        for (const auto di : dis) {
          const auto r = bus.read(m, di);
          tally += r.tally;
          ok = ok && r.outcome == drv::Outcome::ok;
        }
        const auto t1 = Clock::now();
        check(ok, "baseline " + m.id + ": a read failed");
        RoundSample s;
        s.wall_ms = ok ? ms_of(t1 - t0) : NAN;
        s.wire_ms = bus.wire_ms(tally);
        s.silence_ms = ms_of(tally.silence);
        s.bytes = static_cast<double>(tally.tx_bytes + tally.rx_bytes);
        s.exchanges = static_cast<double>(dis.size());
        base[m.id].push_back(s);
      };
      // The three in turn, each first in a third of the rounds and meters.
      const std::function<void()> kinds[] = {[&] { run_task(false); }, run_base,
                                             [&] { run_task(true); }};
      for (std::size_t j = 0; j < 3; ++j) kinds[(round + k + j) % 3]();
    }
  }
  // Per meter medians over the rounds, then medians over the meters.
  struct Summary {
    RoundSample median;
    double min_ms = NAN, max_ms = NAN;
    double sum_ms = 0, sum_exchanges = 0;  // every meter once: the whole bus's round
  };
  const auto summarise = [&](std::map<std::string, std::vector<RoundSample>>& all) {
    std::vector<double> wall, wire, silence, bytes, exchanges;
    for (auto& [id, samples] : all) {
      const auto pick = [&](double RoundSample::*f) {
        std::vector<double> v;
        for (const auto& s : samples) v.push_back(s.*f);
        return median(v);
      };
      wall.push_back(pick(&RoundSample::wall_ms));
      wire.push_back(pick(&RoundSample::wire_ms));
      silence.push_back(pick(&RoundSample::silence_ms));
      bytes.push_back(pick(&RoundSample::bytes));
      exchanges.push_back(pick(&RoundSample::exchanges));
    }
    Summary s;
    s.median.wall_ms = median(wall);
    s.median.wire_ms = median(wire);
    s.median.silence_ms = median(silence);
    s.median.bytes = median(bytes);
    s.median.exchanges = median(exchanges);
    s.min_ms = *std::min_element(wall.begin(), wall.end());
    s.max_ms = *std::max_element(wall.begin(), wall.end());
    for (std::size_t i = 0; i < wall.size(); ++i) {
      s.sum_ms += wall[i];
      s.sum_exchanges += exchanges[i];
    }
    return s;
  };
  const Summary ts = summarise(task), bs = summarise(base), ms = summarise(task_monthly);
  const RoundSample &t = ts.median, &b = bs.median;
  daily_ms_per_exchange = ts.sum_ms / ts.sum_exchanges;
  if (std::isnan(t.wall_ms) || std::isnan(b.wall_ms)) data = false;
  const auto row = [&](const char* label, const Summary& sum) {
    const RoundSample& s = sum.median;
    const double rest = s.wall_ms - s.wire_ms - s.silence_ms;
    std::printf(
        "   %-34s %8s ms  (%s..%s over the meters)  %2.0f exchanges, %4.0f bytes;\n"
        "   %-34s wire %s ms (%s), gaps %s ms (%s), turnaround and the rest %s ms (%s)\n",
        label, fmt("%.1f", s.wall_ms).c_str(), fmt("%.0f", sum.min_ms).c_str(),
        fmt("%.0f", sum.max_ms).c_str(), s.exchanges, s.bytes, "", fmt("%.1f", s.wire_ms).c_str(),
        fmt("%.1f%%", 100 * s.wire_ms / s.wall_ms).c_str(), fmt("%.1f", s.silence_ms).c_str(),
        fmt("%.1f%%", 100 * s.silence_ms / s.wall_ms).c_str(), fmt("%.1f", rest).c_str(),
        fmt("%.1f%%", 100 * rest / s.wall_ms).c_str());
  };
  row("freeze task (run_freeze_task)", ts);
  row("bare loop of the 3 dlt645_read", bs);
  row("freeze task, monthly on (default)", ms);
  std::printf("   ratio task / bare loop              %s\n",
              fmt("%.4f", t.wall_ms / b.wall_ms).c_str());
  std::printf(
      "   all %zu meters once (sum of their medians): task %s, bare loop %s, task with "
      "monthly on %s\n",
      bus.meters.size(), duration_text(ts.sum_ms / 1000).c_str(),
      duration_text(bs.sum_ms / 1000).c_str(), duration_text(ms.sum_ms / 1000).c_str());
  if (bus.parity_refused)
    std::printf(
        "   note: open_serial refused even parity on the pty; opened 8N1 (wire timing "
        "stays 8E1)\n");
  const std::string at = " at " + std::to_string(opt.baud);
  figure("1. daily round per meter" + at + ": freeze task", fmt("%.0f ms", t.wall_ms),
         fmt("%.0f", t.exchanges) + " exchanges, " + fmt("%.0f", t.bytes) + " bytes, wire " +
             fmt("%.0f%%", 100 * t.wire_ms / t.wall_ms));
  figure("1. daily round per meter" + at + ": bare dlt645_read loop", fmt("%.0f ms", b.wall_ms),
         "baseline, same run, interleaved");
  figure("1. ratio freeze task / bare loop", fmt("%.4f", t.wall_ms / b.wall_ms));
  figure("1. daily round per meter" + at + ": freeze task, monthly on",
         fmt("%.0f ms", ms.median.wall_ms),
         fmt("%.0f", ms.median.exchanges) + " exchanges (no settlement due: no 04000B01), " +
             fmt("%.0f", ms.median.bytes) + " bytes");
  figure("1. daily round, all " + std::to_string(bus.meters.size()) + " meters" + at,
         duration_text(ts.sum_ms / 1000), "sum of the meters' medians");
  return data;
}

// ---- 2. backfill -------------------------------------------------------------------------

// metersim's own value list of one DI of one meter ("quantity" → "value"; FF fillers left out).
std::map<std::string, std::string> truth(Sim& sim, const std::string& meter, std::uint32_t di) {
  char text[16];
  std::snprintf(text, sizeof text, "%08X", di);
  const json r = sim.ctl({{"cmd", "read"}, {"meter", meter}, {"di", text}});
  std::map<std::string, std::string> out;
  if (!r.value("ok", false) || !r.contains("values")) return out;
  for (const auto& v : r["values"])
    if (v["value"].is_string()) out[v["quantity"].get<std::string>()] = v["value"];
  return out;
}

bool section_backfill(const Options& opt, Sim& sim, Bus& bus) {
  const fw::Zone zone = fw::fixed_zone(utc_offset_minutes);
  const unsigned days = opt.days;
  const std::size_t n_meters = std::min<std::size_t>(opt.backfill_meters, bus.meters.size());
  std::printf("\n2. Backfill (补抄) of %u days on %zu of %zu meters, %u baud 8E1, wire timing\n",
              days, n_meters, bus.meters.size(), opt.baud);
  std::printf(
      "   state: daily.since = daily.done = the day %u days before today's freeze (collected\n"
      "   then, nothing stored since); backfill_days = %u; each meter's freeze task runs once\n",
      days, days);
  // The meters measured, spread over the bus (their turnarounds differ).
  std::vector<const Meter*> chosen;
  for (std::size_t i = 0; i < n_meters; ++i)
    chosen.push_back(&bus.meters[i * bus.meters.size() / n_meters]);
  double total_ms = 0, total_wire_ms = 0, total_silence_ms = 0;
  unsigned long long exchanges = 0, bytes = 0;
  std::vector<double> per_meter_s;
  for (const Meter* m : chosen) {
    progress("backfill " + m->id + ": " + std::to_string(days) + " days");
    const std::int64_t now = wall_ms();
    const auto in = task_input(m->id, now, zone, days, days);
    const fw::DltLink link = bus.link(*m);
    const auto t0 = Clock::now();
    // The daemon runs a backfill in parts of in.max_freezes, the next part
    // queued at once: the parts back to back, as on an otherwise idle bus.
    fw::TaskOutput out;
    for (auto part_in = in;;) {
      fw::TaskOutput part = fw::run_freeze_task(link, part_in);
      for (const auto& u : part.state) part_in.state[u.key] = u.value;
      out.readings.insert(out.readings.end(), part.readings.begin(), part.readings.end());
      out.events.insert(out.events.end(), part.events.begin(), part.events.end());
      out.state.insert(out.state.end(), part.state.begin(), part.state.end());
      out.tally += part.tally;
      out.exchanges += part.exchanges;
      out.failure = part.failure;
      out.detail = part.detail;
      if (!part.more || part.failure != drv::Outcome::ok) break;
    }
    const double ms = ms_of(Clock::now() - t0);
    total_ms += ms;
    total_wire_ms += bus.wire_ms(out.tally);
    total_silence_ms += ms_of(out.tally.silence);
    exchanges += out.exchanges;
    bytes += out.tally.tx_bytes + out.tally.rx_bytes;
    per_meter_s.push_back(ms / 1000);

    // The freezes wanted: today's midnight and the days - 1 before it.
    const std::int64_t latest = floor_div(zone.to_local(now), ms_per_day);
    std::set<std::int64_t> want;
    for (unsigned d = 0; d < days; ++d)
      want.insert(zone.to_utc((latest - static_cast<std::int64_t>(d)) * ms_per_day));
    std::set<std::int64_t> got;
    for (const auto& r : out.readings)
      if (r.freeze_ts_ms) got.insert(*r.freeze_ts_ms);
    std::string done;
    for (const auto& u : out.state)
      if (u.key == fw::daily_done_key) done = u.value;
    const auto done_count =
        done.empty() ? 0 : static_cast<unsigned>(std::count(done.begin(), done.end(), ',') + 1);
    std::printf(
        "   %-6s %s  %4u exchanges, %6llu bytes, %zu distinct freeze times, %zu readings, "
        "%zu events\n",
        m->id.c_str(), duration_text(ms / 1000).c_str(), out.exchanges,
        static_cast<unsigned long long>(out.tally.tx_bytes + out.tally.rx_bytes), got.size(),
        out.readings.size(), out.events.size());
    check(out.failure == drv::Outcome::ok,
          "backfill " + m->id + ": " + drv::to_string(out.failure) + " " + out.detail);
    check(got.size() == days, "backfill " + m->id + ": " + std::to_string(got.size()) +
                                  " distinct freeze times, not " + std::to_string(days));
    check(got == want, "backfill " + m->id + ": the freeze times are not the " +
                           std::to_string(days) + " midnights up to today");
    check(out.exchanges == 3 * days, "backfill " + m->id + ": " + std::to_string(out.exchanges) +
                                         " exchanges, not 3 x " + std::to_string(days));
    check(out.events.empty(),
          "backfill " + m->id + ": " + std::to_string(out.events.size()) + " events (missing?)");
    // daily.done keeps the day before the window too (it was the state's).
    check(done_count == days + 1, "backfill " + m->id + ": daily.done has " +
                                      std::to_string(done_count) + " dates, not " +
                                      std::to_string(days + 1));
    for (const auto& p : out.problems)
      std::printf("   problem: %s: %s\n", m->id.c_str(), p.c_str());

    // Values: the newest, the middle and the oldest freeze against metersim's own.
    std::set<unsigned> ns{1u, (days + 1) / 2, days};
    unsigned compared = 0;
    for (const unsigned n : ns) {
      const auto time = truth(sim, m->id, 0x05060000 | n);
      const auto text = time.empty() ? std::string() : time.begin()->second;
      const auto t = fw::parse_meter_time(text);
      check(t.has_value(), "backfill " + m->id + ": metersim gave no time for freeze " +
                               std::to_string(n) + " (" + text + ")");
      if (!t) continue;
      const std::int64_t at = zone.to_utc(*t);
      for (const std::uint32_t base : {0x05060100u, 0x05060200u}) {
        const auto values = truth(sim, m->id, base | n);
        char di[16];
        std::snprintf(di, sizeof di, "%08X", base | n);
        check(!values.empty(), "backfill " + m->id + ": metersim has no values for " + di);
        for (const auto& [quantity, value] : values) {
          std::string stored;
          for (const auto& r : out.readings)
            if (r.freeze_ts_ms == at && r.quantity == quantity)
              stored =
                  meterd::protocol::to_string(meterd::protocol::Decimal{r.mantissa, r.exponent});
          check(stored == value, "backfill " + m->id + ": " + di + " " + quantity + " stored " +
                                     (stored.empty() ? "nothing" : stored) + ", metersim says " +
                                     value);
          ++compared;
        }
      }
    }
    std::printf("   %-6s values of freezes", m->id.c_str());
    for (const unsigned n : ns) std::printf(" %u", n);
    std::printf(" (050601nn, 050602nn): %u compared with metersim's read\n", compared);
  }
  if (exchanges == 0) return false;
  const double per_exchange_ms = total_ms / static_cast<double>(exchanges);
  std::printf(
      "   measured: %s for %llu exchanges on %zu meters (%s per meter); %s ms per exchange\n",
      duration_text(total_ms / 1000).c_str(), exchanges, n_meters,
      duration_text(median(per_meter_s)).c_str(), fmt("%.1f", per_exchange_ms).c_str());
  std::printf("   wire %.1f%%, gaps %.1f%%, turnaround and the rest %.1f%%; %llu bytes\n",
              100 * total_wire_ms / total_ms, 100 * total_silence_ms / total_ms,
              100 * (total_ms - total_wire_ms - total_silence_ms) / total_ms, bytes);
  const std::string at = " at " + std::to_string(opt.baud);
  const std::string what =
      std::to_string(days) + " days x " + std::to_string(n_meters) + " meters" + at;
  figure("2. backfill " + what + ": measured", duration_text(total_ms / 1000),
         std::to_string(exchanges) + " exchanges, " + fmt("%.1f ms", per_exchange_ms) + " each");
  figure("2. backfill " + std::to_string(days) + " days, one meter" + at,
         duration_text(median(per_meter_s)), "median over the meters measured");
  // 62 days × every meter on the bus: 3 exchanges a day (time + 2 items).
  const unsigned long long full_exchanges = 3ull * meter_depth * bus.meters.size();
  if (days == meter_depth && n_meters == bus.meters.size()) {
    std::printf("   62 days x %zu meters measured whole: %s\n", bus.meters.size(),
                duration_text(total_ms / 1000).c_str());
  } else {
    const double extrapolated_s = per_exchange_ms * static_cast<double>(full_exchanges) / 1000;
    std::printf(
        "   62 days x %zu meters (%llu exchanges): %s, EXTRAPOLATED from %llu measured "
        "exchanges (--full measures it)\n",
        bus.meters.size(), full_exchanges, duration_text(extrapolated_s).c_str(), exchanges);
    if (!std::isnan(daily_ms_per_exchange))
      std::printf(
          "   cross-check: %s, EXTRAPOLATED from section 1's daily rounds of all %zu meters "
          "(%s ms per exchange)\n",
          duration_text(daily_ms_per_exchange * static_cast<double>(full_exchanges) / 1000).c_str(),
          bus.meters.size(), fmt("%.1f", daily_ms_per_exchange).c_str());
    figure("2. backfill 62 days x " + std::to_string(bus.meters.size()) + " meters" + at,
           duration_text(extrapolated_s),
           "EXTRAPOLATED from " + std::to_string(exchanges) + " measured exchanges (" +
               std::to_string(full_exchanges) + " needed)");
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  bool meters_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool more = i + 1 < argc;
    const auto number = [&] { return static_cast<unsigned>(std::stoul(argv[++i])); };
    if (a == "--smoke") {
      opt.smoke = true;
    } else if (a == "--full") {
      opt.full = true;
    } else if (a == "--meters" && more) {
      opt.meters = number();
      meters_given = true;
    } else if (a == "--baud" && more) {
      opt.baud = number();
    } else if (a == "--rounds" && more) {
      opt.rounds = number();
    } else if (a == "--backfill-meters" && more) {
      opt.backfill_meters = number();
    } else if (a == "--days" && more) {
      opt.days = number();
    } else if (a == "--sections" && more) {
      opt.sections = argv[++i];
    } else {
      std::cerr << "usage: bench_tasks [--meters N] [--baud B] [--rounds R] [--backfill-meters M] "
                   "[--days D] [--full] [--sections 12] [--smoke]\n";
      return 2;
    }
  }
  if (opt.smoke) {
    if (!meters_given) opt.meters = 2;
    opt.baud = 9600;
    opt.rounds = 2;
    opt.days = 3;
  }
  if (opt.full) {
    opt.days = meter_depth;
    opt.backfill_meters = opt.meters;
  }
  if (opt.meters == 0 || opt.rounds == 0 || opt.backfill_meters == 0 || opt.days == 0 ||
      opt.days > meter_depth) {
    std::cerr << "bench_tasks: meters, rounds and backfill meters at least 1, days 1..62\n";
    return 2;
  }
  std::printf(
      "bench_tasks: the freeze task against metersim (%s; %u meters, %u baud 8E1, %u "
      "rounds, backfill %u x %u days)\n",
      opt.smoke  ? "smoke run: figures meaningless"
      : opt.full ? "full run"
                 : "default run",
      opt.meters, opt.baud, opt.rounds, std::min(opt.backfill_meters, opt.meters), opt.days);
  const auto t0 = Clock::now();
  bool ok = true;
  try {
    progress("metersim: " + std::to_string(opt.meters) + " meters");
    Sim sim(sim_toml(opt.meters, opt.baud));
    Bus bus(sim.bus());
    if (opt.has('1') && !section_daily(opt, bus)) {
      std::printf("   section 1: no data\n");
      ok = false;
    }
    std::fflush(stdout);
    if (opt.has('2') && !section_backfill(opt, sim, bus)) {
      std::printf("   section 2: no data\n");
      ok = false;
    }
  } catch (const std::exception& e) {
    std::printf("   failed: %s\n", e.what());
    ok = false;
  }
  print_figures();
  if (!failures.empty()) {
    std::printf("\n%zu correctness checks FAILED (first: %s)\n", failures.size(),
                failures.front().c_str());
    ok = false;
  }
  std::printf("\nbench time %.0f s\n", std::chrono::duration<double>(Clock::now() - t0).count());
  return ok ? 0 : 1;
}
