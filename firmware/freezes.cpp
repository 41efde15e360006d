#include "firmware/freezes.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "protocol/dlt645/catalogue.hpp"

namespace meterd::firmware {

namespace dlt = protocol::dlt645;
using drivers::Outcome;

namespace {

constexpr std::int64_t ms_per_hour = 3'600'000;
constexpr std::int64_t ms_per_day = 24 * ms_per_hour;
constexpr std::uint16_t err_no_data = 0x02;
constexpr unsigned max_walk = 8;  // steps from the guessed index to the right freeze

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

std::set<std::string> split(const TaskState& state, const char* key) {
  std::set<std::string> out;
  const auto it = state.find(key);
  if (it == state.end()) return out;
  std::istringstream in(it->second);
  for (std::string s; std::getline(in, s, ',');)
    if (!s.empty()) out.insert(s);
  return out;
}

std::string join(const std::set<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += ',';
    out += s;
  }
  return out;
}

std::optional<std::string> get(const TaskState& state, const std::string& key) {
  const auto it = state.find(key);
  if (it == state.end()) return std::nullopt;
  return it->second;
}

// A periodic freeze the meter keeps "last 1..depth" of: daily (0506) or hourly (0504).
struct Series {
  const char* frozen;  // "daily" / "hourly"
  std::int64_t period;
  std::uint32_t time_di;  // DI0 = n
  unsigned depth;
  const char* done_key;
  const char* since_key;
  const char* unsupported_key;  // "" when the series has none
  std::vector<std::uint32_t> items;
  unsigned window;  // periods before the latest one that are still asked for

  // The freeze made at local slot * period, labelled as the technician reads it.
  std::string label(std::int64_t slot) const {
    const std::int64_t local = slot * period;
    return period == ms_per_day ? local_date(local) : local_datetime(local).substr(0, 13);
  }
};

struct Civil {
  int year;
  unsigned month, day;
};
Civil civil(std::int64_t local_ms) {
  using namespace std::chrono;
  const year_month_day ymd{sys_days{days{floor_div(local_ms, ms_per_day)}}};
  return {static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
          static_cast<unsigned>(ymd.day())};
}
std::int64_t local_ms_of(int y, unsigned m, unsigned d, unsigned h) {
  using namespace std::chrono;
  // A settlement day past the month's end settles on its last day.
  year_month_day ymd{year{y}, month{m}, day{d}};
  if (!ymd.ok()) ymd = year_month_day{year_month_day_last{year{y}, month_day_last{month{m}}}};
  return sys_days{ymd}.time_since_epoch().count() * ms_per_day + std::int64_t{h} * ms_per_hour;
}

// The settlement moment of month index k (year * 12 + month - 1).
std::int64_t settlement_of(std::int64_t k, unsigned day, unsigned hour) {
  return local_ms_of(static_cast<int>(floor_div(k, 12)),
                     static_cast<unsigned>(k - floor_div(k, 12) * 12) + 1, day, hour);
}
std::string settlement_label(std::int64_t local_ms) {
  return local_datetime(local_ms).substr(0, 13);
}

struct SettlementDay {
  unsigned day = 1, hour = 0;
};
std::optional<SettlementDay> parse_settlement_day(const std::string& text) {  // "DDThh"
  unsigned d = 0, h = 0;
  int used = 0;
  if (std::sscanf(text.c_str(), "%2uT%2u%n", &d, &h, &used) != 2 || used != 5) return std::nullopt;
  if (d < 1 || d > 28 || h > 23) return std::nullopt;  // the standard allows days 1..28
  return SettlementDay{d, h};
}

class FreezeRun {
 public:
  FreezeRun(const DltLink& link, const FreezeTaskInput& in) : link_(link), in_(in) {
    out_.meter = in.meter;
    local_now_ = in.zone.to_local(in.now_ms);
  }

  TaskOutput run() {
    if (in_.daily && link_.version == dlt::Version::v2007) series(daily());
    if (ok() && !out_.more && in_.hourly && link_.version == dlt::Version::v2007) series(hourly());
    if (ok() && !out_.more && in_.monthly && link_.version == dlt::Version::v2007) monthly();
    return std::move(out_);
  }

  // Without reads: is there a freeze due that is not stored?
  bool pending() const {
    if (link_.version != dlt::Version::v2007) return false;
    if (in_.daily && !wanted(daily()).empty()) return true;
    if (in_.hourly && !wanted(hourly()).empty()) return true;
    if (in_.monthly && !get(in_.state, monthly_unsupported_key)) {
      const auto day = get(in_.state, "monthly.day");
      const auto sd = day ? parse_settlement_day(*day) : std::nullopt;
      if (!sd) return true;  // the first run reads the settlement day
      return !wanted_months(*sd).empty();
    }
    return false;
  }

  Series daily() const {
    Series s{"daily",
             ms_per_day,
             0x05060000,
             62,
             daily_done_key,
             daily_since_key,
             daily_unsupported_key,
             in_.daily_items,
             std::min(in_.backfill_days, 62u)};
    return s;
  }
  Series hourly() const {
    return {"hourly",
            ms_per_hour,
            0x05040000,
            254,
            hourly_done_key,
            hourly_since_key,
            "hourly.unsupported",
            {0x05040101, 0x05040201},
            std::min(254u, 24 * std::max(1u, in_.backfill_days))};
  }

 private:
  bool ok() const { return out_.failure == Outcome::ok; }

  void fail(Outcome o, std::string detail) {
    if (out_.failure != Outcome::ok) return;
    out_.failure = o;
    out_.detail = std::move(detail);
  }

  void put(const std::string& key, const std::string& value) {
    out_.state.push_back({in_.meter, key, value});
  }

  std::int64_t delay() const { return in_.delay.count(); }

  // The newest slot whose freeze is due, and the first one collected.
  std::int64_t latest_due(const Series& s) const {
    return floor_div(local_now_ - delay(), s.period);
  }

  std::int64_t since(const Series& s) const {
    const auto text = get(in_.state, s.since_key);
    if (text) {
      const auto t = parse_meter_time(*text + (s.period == ms_per_day ? "T00:00" : ":00"));
      if (t) return floor_div(*t, s.period);
    }
    return latest_due(s);  // the first run collects from the latest freeze on
  }

  // Slots due and not stored, newest first.
  std::vector<std::int64_t> wanted(const Series& s) const {
    std::vector<std::int64_t> out;
    if (*s.unsupported_key && get(in_.state, s.unsupported_key)) return out;
    const auto done = split(in_.state, s.done_key);
    const std::int64_t latest = latest_due(s);
    const std::int64_t first = std::max(since(s), latest - static_cast<std::int64_t>(s.window));
    for (std::int64_t slot = latest; slot >= first; --slot)
      if (!done.contains(s.label(slot))) out.push_back(slot);
    return out;
  }

  // One read; nullopt when the read had no answer (the run stops) or was
  // refused (`refused` set).
  std::optional<std::vector<dlt::Value>> read(std::uint32_t di, bool& refused) {
    refused = false;
    if (link_.stopping()) {
      fail(Outcome::cancelled, "stopping");
      return std::nullopt;
    }
    const auto answer = link_.read(di);
    out_.tally += answer.tally;
    ++out_.exchanges;
    const std::string name = dlt::di_to_string(link_.version, di);
    if (answer.outcome == Outcome::meter_error) {
      refused = true;
      if (!(answer.error_word & err_no_data))
        out_.problems.push_back(name + ": refused (" + answer.detail + ")");
      return std::nullopt;
    }
    if (answer.outcome != Outcome::ok) {
      fail(answer.outcome, name + ": " + drivers::to_string(answer.outcome) +
                               (answer.detail.empty() ? "" : " (" + answer.detail + ")"));
      return std::nullopt;
    }
    const auto item = dlt::lookup(link_.version, di);
    if (!item) {
      out_.problems.push_back(name + ": not in the catalogue");
      refused = true;
      return std::nullopt;
    }
    auto decoded = dlt::decode_values(*item, answer.data);
    if (decoded.error) {
      out_.problems.push_back(name + ": " + decoded.message);
      refused = true;
      return std::nullopt;
    }
    for (const auto& p : decoded.problems) out_.problems.push_back(name + ": " + p);
    return std::move(decoded.values);
  }

  // The local time a freeze-time read names, or nullopt (no answer: the run
  // stops; refused or unreadable: `refused`).
  std::optional<std::int64_t> read_time(std::uint32_t di, bool& refused) {
    const auto values = read(di, refused);
    if (!values) return std::nullopt;
    for (const auto& v : *values)
      if (const auto* text = std::get_if<std::string>(&v.value))
        if (const auto t = parse_meter_time(*text)) return t;
    out_.problems.push_back(dlt::di_to_string(link_.version, di) + ": no valid freeze time");
    refused = true;
    return std::nullopt;
  }

  // Reads the items of the freeze at index n and adds them as readings.
  // false when a read had no answer.
  bool read_items(const std::vector<std::uint32_t>& items, unsigned n, const char* frozen,
                  std::int64_t freeze_local, std::optional<protocol::Decimal>* energy) {
    const std::int64_t freeze_utc = in_.zone.to_utc(freeze_local);
    // A freeze is stored whole or not at all: the next run asks for all of it.
    const std::size_t before = out_.readings.size();
    const std::optional<protocol::Decimal> energy_before = energy ? *energy : std::nullopt;
    for (const std::uint32_t base : items) {
      const std::uint32_t di = (base & 0xFFFFFF00u) | n;
      bool refused = false;
      const auto values = read(di, refused);
      if (!values) {
        if (refused) continue;  // the meter does not keep this item: the others still count
        out_.readings.resize(before);
        if (energy) *energy = energy_before;
        return false;
      }
      for (const auto& v : *values) {
        const auto* d = std::get_if<protocol::Decimal>(&v.value);
        if (d == nullptr) continue;  // FF filler (a tariff not configured)
        buffer::Reading r;
        r.meter = in_.meter;
        r.quantity = v.quantity;
        r.unit = v.unit;
        r.mantissa = d->mantissa;
        r.exponent = d->exponent;
        r.ts_ms = in_.now_ms;
        r.frozen = frozen;
        r.freeze_ts_ms = freeze_utc;
        if (energy && v.quantity == "energy.active.import.total") *energy = *d;
        out_.readings.push_back(std::move(r));
      }
    }
    return true;
  }

  void missing(const char* frozen, const std::string& label, const std::string& why) {
    nlohmann::json payload{{"frozen", frozen}, {"freeze", label}, {"reason", why}};
    out_.events.push_back({0, in_.meter, "meter.freeze_missing", in_.now_ms, payload.dump()});
  }

  void series(const Series& s) {
    const auto want = wanted(s);
    const bool first_run = !get(in_.state, s.since_key);
    if (first_run) put(s.since_key, s.label(latest_due(s)));
    if (want.empty()) return;
    auto done = split(in_.state, s.done_key);
    const std::int64_t oldest_kept = latest_due(s) - static_cast<std::int64_t>(s.window);
    const auto save = [&] {
      std::erase_if(done, [&](const std::string& l) { return l < s.label(oldest_kept); });
      put(s.done_key, join(done));
      if (s.period == ms_per_day && !energies_.empty()) save_energies(s.label(oldest_kept - 1));
    };
    bool refused = false;
    const auto t1 = read_time(s.time_di | 1, refused);
    if (!t1) {
      if (refused) {
        put(s.unsupported_key, "1");
        out_.problems.push_back(std::string("no ") + s.frozen + " freezes: the meter refused " +
                                dlt::di_to_string(link_.version, s.time_di | 1));
      }
      return;
    }
    std::map<unsigned, std::int64_t> slot_at{{1u, floor_div(*t1, s.period)}};
    std::map<unsigned, std::int64_t> time_at{{1u, *t1}};
    const std::int64_t s1 = slot_at[1];
    bool changed = false;
    unsigned handled = 0;
    for (const std::int64_t slot : want) {
      if (slot > s1) continue;  // not frozen yet (a meter clock behind, a late freeze)
      if (handled == std::max(1u, in_.max_freezes)) {
        out_.more = true;  // the rest in the next run
        break;
      }
      ++handled;
      auto n = static_cast<long>(s1 - slot + 1);
      std::set<long> seen;
      std::optional<unsigned> found;
      std::string why;
      for (unsigned step = 0; step < max_walk; ++step) {
        if (n < 1 || n > static_cast<long>(s.depth)) {
          why = "older than the " + std::to_string(s.depth) + " freezes the meter keeps";
          break;
        }
        if (!seen.insert(n).second) {
          why = "the meter holds no freeze for it";
          break;
        }
        const auto un = static_cast<unsigned>(n);
        if (!slot_at.contains(un)) {
          const auto t = read_time(s.time_di | un, refused);
          if (!t && !refused) {
            if (changed) save();
            return;
          }
          // A refused index lies beyond the meter's history: older than any day.
          slot_at[un] = t ? floor_div(*t, s.period) : std::numeric_limits<std::int64_t>::min();
          time_at[un] = t.value_or(0);
        }
        if (slot_at[un] == slot) {
          found = un;
          break;
        }
        n += slot_at[un] > slot ? 1 : -1;  // the list runs newest first
      }
      const std::string label = s.label(slot);
      if (!found) {
        if (why.empty()) why = "not found within " + std::to_string(max_walk) + " reads";
        missing(s.frozen, label, why);
        done.insert(label);
        changed = true;
        continue;
      }
      std::optional<protocol::Decimal> energy;
      const bool is_daily = s.period == ms_per_day;
      if (!read_items(s.items, *found, s.frozen, time_at[*found], is_daily ? &energy : nullptr)) {
        if (changed) save();
        return;
      }
      if (is_daily && energy) energies_[label] = protocol::to_string(*energy);
      done.insert(label);
      changed = true;
    }
    if (changed) save();
  }

  // ---- monthly (settlement) --------------------------------------------
  // The month index of the newest settlement due ("last 1" on the meter).
  std::int64_t latest_month(const SettlementDay& sd) const {
    const Civil now = civil(local_now_ - delay());
    std::int64_t k = std::int64_t{now.year} * 12 + (now.month - 1);
    if (settlement_of(k, sd.day, sd.hour) > local_now_ - delay()) --k;
    return k;
  }

  std::vector<std::int64_t> wanted_months(const SettlementDay& sd) const {
    std::vector<std::int64_t> out;
    const auto done = split(in_.state, monthly_done_key);
    const std::int64_t k = latest_month(sd);
    std::int64_t first = k - 11;  // the meter keeps 12 settlements
    if (const auto since = get(in_.state, monthly_since_key)) {
      const auto t = parse_meter_time(*since + ":00");
      if (t) {
        const Civil c = civil(*t);
        first = std::max(first, std::int64_t{c.year} * 12 + (c.month - 1));
      }
    } else {
      first = k;
    }
    for (std::int64_t m = k; m >= first; --m)
      if (!done.contains(settlement_label(settlement_of(m, sd.day, sd.hour)))) out.push_back(m);
    return out;
  }

  void monthly() {
    if (get(in_.state, monthly_unsupported_key)) return;
    // The settlement day known and nothing due: no read (a daily round
    // must not pay for 04000B01 every day). When a settlement is due the
    // day is read again, so a reprogrammed day is followed.
    if (const auto day = get(in_.state, "monthly.day")) {
      const auto sd = parse_settlement_day(*day);
      if (sd && get(in_.state, monthly_since_key) && wanted_months(*sd).empty()) return;
    }
    bool refused = false;
    const auto values = read(0x04000B01, refused);
    if (!values) {
      if (refused) put(monthly_unsupported_key, "1");
      return;
    }
    std::optional<SettlementDay> sd;
    for (const auto& v : *values)
      if (const auto* text = std::get_if<std::string>(&v.value)) sd = parse_settlement_day(*text);
    if (!sd) {
      out_.problems.push_back("04000B01: no valid settlement day");
      return;
    }
    char day[8];
    std::snprintf(day, sizeof day, "%02uT%02u", sd->day, sd->hour);
    if (get(in_.state, "monthly.day") != std::string(day)) put("monthly.day", day);
    const auto want = wanted_months(*sd);
    const std::int64_t latest = latest_month(*sd);
    if (!get(in_.state, monthly_since_key))
      put(monthly_since_key, settlement_label(settlement_of(latest, sd->day, sd->hour)));
    if (want.empty()) return;
    auto done = split(in_.state, monthly_done_key);
    bool changed = false;
    for (const std::int64_t m : want) {
      const auto n = static_cast<unsigned>(latest - m + 1);
      const std::int64_t at = settlement_of(m, sd->day, sd->hour);
      if (!read_items({0x0001FF01, 0x0002FF01}, n, "monthly", at, nullptr)) break;
      done.insert(settlement_label(at));
      changed = true;
    }
    if (changed) {
      const std::string oldest = settlement_label(settlement_of(latest - 11, sd->day, sd->hour));
      std::erase_if(done, [&](const std::string& l) { return l < oldest; });
      put(monthly_done_key, join(done));
    }
  }

  // The daily energies of this run joined to the stored ones, the oldest
  // beyond the window dropped (one state row per meter, not one per day).
  void save_energies(const std::string& oldest) {
    nlohmann::json all = nlohmann::json::object();
    if (const auto stored = get(in_.state, daily_energy_key)) {
      auto parsed = nlohmann::json::parse(*stored, nullptr, false);
      if (parsed.is_object()) all = std::move(parsed);
    }
    for (const auto& [date, value] : energies_) all[date] = value;
    for (auto it = all.begin(); it != all.end();)
      it = it.key() < oldest ? all.erase(it) : std::next(it);
    put(daily_energy_key, all.dump());
  }

  std::map<std::string, std::string> energies_;  // date -> energy.active.import.total
  const DltLink& link_;
  const FreezeTaskInput& in_;
  TaskOutput out_;
  std::int64_t local_now_ = 0;
};

}  // namespace

bool freeze_work_pending(const FreezeTaskInput& in) {
  DltLink none;
  return FreezeRun(none, in).pending();
}

TaskOutput run_freeze_task(const DltLink& link, const FreezeTaskInput& in) {
  return FreezeRun(link, in).run();
}

std::optional<protocol::Decimal> daily_energy(const TaskState& state, const std::string& date) {
  const auto it = state.find(daily_energy_key);
  if (it == state.end()) return std::nullopt;
  const auto all = nlohmann::json::parse(it->second, nullptr, false);
  if (!all.is_object() || !all.contains(date) || !all[date].is_string()) return std::nullopt;
  return protocol::parse_decimal(all[date].get<std::string>());
}

}  // namespace meterd::firmware
