#include "firmware/timesync.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <nlohmann/json.hpp>
#include <sys/timex.h>

#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/requests.hpp"

namespace meterd::firmware {

namespace dlt = protocol::dlt645;

namespace {

constexpr std::int64_t ms_per_day = 86'400'000;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

std::int64_t day_start(std::int64_t local_ms) {
  return floor_div(local_ms, ms_per_day) * ms_per_day;
}

// Whole seconds, to the nearest (a meter keeps seconds; truncating would
// leave every meter up to a second behind).
std::int64_t round_to_second(std::int64_t ms) { return floor_div(ms + 500, 1000) * 1000; }

dlt::DateTime to_datetime(std::int64_t local_ms) {
  using namespace std::chrono;
  const year_month_day ymd{sys_days{days{floor_div(local_ms, ms_per_day)}}};
  const std::int64_t s = (local_ms - day_start(local_ms)) / 1000;
  return {static_cast<int>(ymd.year()),
          static_cast<int>(static_cast<unsigned>(ymd.month())),
          static_cast<int>(static_cast<unsigned>(ymd.day())),
          static_cast<int>(s / 3600),
          static_cast<int>(s / 60 % 60),
          static_cast<int>(s % 60)};
}

// Seconds, to the nearest, for event payloads (a meter's clock has 1 s resolution).
std::int64_t seconds(std::int64_t ms) { return floor_div(ms + 500, 1000); }

}  // namespace

// ---- the gateway's own clock ------------------------------------------------

// adjtimex(2) with modes 0 only reads the kernel's NTP state. An NTP client
// that disciplines the clock (chronyd, ntpd, systemd-timesyncd) clears
// STA_UNSYNC and sets maxerror/esterror when it has a synchronised source;
// chronyd and ntpd set STA_UNSYNC again when they lose it. Without updates
// the kernel grows maxerror by 500 µs each second and sets STA_UNSYNC itself
// once it passes 16 s (about 9 h after the last update), and adjtimex then
// returns TIME_ERROR. A clock set by hand or from an RTC at boot stays
// STA_UNSYNC: it may be right, but nothing vouches for it.
ClockStatus clock_status_from(int state, int status, long max_error_us, long est_error_us) {
  ClockStatus c;
  c.max_error_us = max_error_us;
  c.est_error_us = est_error_us;
  if ((status & STA_UNSYNC) != 0) {
    c.why = "kernel clock not synchronised (STA_UNSYNC: no NTP client disciplines it)";
  } else if (state == TIME_ERROR) {
    c.why = "kernel clock reports TIME_ERROR (status 0x" + [&] {
      char hex[16];
      std::snprintf(hex, sizeof hex, "%04X", static_cast<unsigned>(status));
      return std::string(hex);
    }() + ")";
  } else {
    c.synchronised = true;
  }
  return c;
}

ClockStatus kernel_clock_status() {
  // Test hook (docs/timesync.md): system tests run on machines whose clock
  // may or may not be synchronised; they say which they want.
  if (const char* forced = std::getenv("METERD_CLOCK_STATUS")) {
    const std::string v = forced;
    ClockStatus c;
    if (v == "synced") {
      c.synchronised = true;
    } else if (v == "unsynced") {
      c.why = "METERD_CLOCK_STATUS=unsynced";
    } else {
      c.why = "METERD_CLOCK_STATUS=" + v + ": expected synced or unsynced";
    }
    return c;
  }
  timex t{};
  t.modes = 0;
  const int state = ::adjtimex(&t);
  if (state == -1) {
    // EPERM for a mere read is a seccomp filter: systemd's ProtectClock=yes,
    // or a SystemCallFilter= without adjtimex/clock_adjtime (docs/timesync.md).
    const int e = errno;
    ClockStatus c;
    c.why = std::string("adjtimex: ") + std::strerror(e);
    if (e == EPERM) c.why += " (a seccomp filter such as systemd's ProtectClock=yes blocks it)";
    return c;
  }
  return clock_status_from(state, t.status, t.maxerror, t.esterror);
}

// ---- the daily plan ----------------------------------------------------------

std::string timesync_last_key(const std::string& bus) { return "timesync." + bus + ".last"; }
std::string timesync_unsynced_key(const std::string& bus) {
  return "timesync." + bus + ".unsynced";
}

namespace {

struct Day {
  std::string date;           // local "2026-11-30"
  std::int64_t due_today;     // UTC ms of today's time
  std::int64_t due_tomorrow;  // UTC ms of tomorrow's
};

Day day_of(std::chrono::minutes at, const Zone& zone, std::int64_t now_ms) {
  const std::int64_t local = zone.to_local(now_ms);
  const std::int64_t start = day_start(local);
  const std::int64_t offset = std::chrono::milliseconds(at).count();
  return {local_date(local), zone.to_utc(start + offset), zone.to_utc(start + ms_per_day + offset)};
}

}  // namespace

std::int64_t next_timesync_ms(std::chrono::minutes at, const Zone& zone, std::int64_t now_ms,
                              const std::string& last_done) {
  const Day d = day_of(at, zone, now_ms);
  if (last_done == d.date) return d.due_tomorrow;
  return std::max(now_ms, d.due_today);
}

bool timesync_due(std::chrono::minutes at, const Zone& zone, std::int64_t now_ms,
                  const std::string& last_done) {
  return next_timesync_ms(at, zone, now_ms, last_done) <= now_ms;
}

TimesyncPlan timesync_plan(const TimesyncPlanInput& in) {
  const Day d = day_of(in.at, in.zone, in.now_ms);
  TimesyncPlan p;
  p.day = d.date;
  if (!timesync_due(in.at, in.zone, in.now_ms, in.last_done)) {
    p.next_ms = next_timesync_ms(in.at, in.zone, in.now_ms, in.last_done);
    return p;
  }
  // Past the day's end the day is given up: tomorrow's time comes first.
  p.next_ms = std::min(in.now_ms + timesync_retry_ms, d.due_tomorrow);
  const ClockStatus clock = in.clock ? in.clock() : kernel_clock_status();
  if (clock.synchronised) {
    p.broadcast = true;
    return p;
  }
  if (in.unsynced_reported != d.date) {
    const nlohmann::json payload{{"bus", in.bus}, {"why", clock.why}};
    p.events.push_back({0, "", "gateway.clock_unsynchronised", in.now_ms, payload.dump()});
    p.state.push_back({in.owner, timesync_unsynced_key(in.bus), d.date});
  }
  return p;
}

// ---- the broadcast -------------------------------------------------------------

TaskOutput run_broadcast(const BroadcastFn& broadcast, const BroadcastInput& in) {
  TaskOutput out;
  out.meter = in.owner;
  const std::int64_t utc = in.now();
  const std::int64_t local = round_to_second(in.zone.to_local(utc));
  const dlt::DateTime t = to_datetime(local);
  if (!dlt::valid(t)) {
    out.problems.push_back("bus " + in.bus + ": local time " + local_datetime(local) +
                           " outside 2000..2099, not broadcast");
    return out;
  }
  out.tally = broadcast(dlt::request::broadcast_time(t));
  out.exchanges = 1;
  if (out.tally.attempts == 0) {
    out.failure = drivers::Outcome::bus_down;
    out.detail = "bus " + in.bus + ": time sync broadcast not sent";
    return out;
  }
  const nlohmann::json payload{{"bus", in.bus}, {"time", local_datetime(local)}};
  out.events.push_back({0, "", "bus.timesync", utc, payload.dump()});
  out.state.push_back({in.owner, timesync_last_key(in.bus), in.day});
  return out;
}

// ---- the per-meter fix beyond ±5 min ---------------------------------------------

namespace {

struct ClockDis {
  std::uint32_t date;  // YYMMDDWW
  std::uint32_t time;  // hhmmss
};

ClockDis clock_dis(dlt::Version v) {
  return v == dlt::Version::v2007 ? ClockDis{0x04000101, 0x04000102} : ClockDis{0xC010, 0xC011};
}

// The meter's clock as read, and the gateway's local time it is compared with.
struct MeterClock {
  std::int64_t meter_local = 0;
  std::int64_t gateway_local = 0;
  std::string text;  // "2026-11-30T02:40:00", as the meter said it
  std::int64_t drift() const { return meter_local - gateway_local; }
};

class Fix {
 public:
  Fix(const DltLink& link, const ClockFixInput& in, TaskOutput& out)
      : link_(link), in_(in), out_(out), dis_(clock_dis(link.version)) {}

  // Reads date and time. A meter samples its clock when the request
  // arrives: compared with the gateway's time just before sending (the
  // answer's way back and any retries say nothing about it).
  std::optional<MeterClock> read_clock() {
    auto date = read_text(dis_.date, 1);
    if (!date) return std::nullopt;
    const std::int64_t sent = in_.now();
    auto time = read_text(dis_.time, 0);
    if (!time) return std::nullopt;
    // The date read just before may be from before the meter's midnight:
    // early in the day, ask again (this date belongs with this time).
    if (time->compare("00:01:00") < 0) {
      date = read_text(dis_.date, 1);
      if (!date) return std::nullopt;
    }
    const std::string text = *date + "T" + *time;
    const auto meter = parse_meter_time(text);
    if (!meter) {
      out_.problems.push_back("meter clock " + text + " is not a date and time");
      return std::nullopt;
    }
    return MeterClock{*meter, in_.zone.to_local(sent), text};
  }

  // Time first, then date: once the time is right, only a midnight between
  // taking the gateway's date and the meter acting on it makes the date
  // wrong (a date written first keeps the meter's own, far-off time of day,
  // whose midnight may fall anywhere between the two writes). The read-back
  // catches what is left.
  bool write_clock() {
    const std::int64_t time_at = round_to_second(in_.zone.to_local(in_.now()));
    const std::string time_text = local_datetime(time_at).substr(11);
    if (!write(dis_.time, {time_text})) return false;
    // The date as the gateway has it now, unrounded: the meter's time of day
    // has just been set from the same clock.
    const std::int64_t date_at = in_.zone.to_local(in_.now());
    using namespace std::chrono;
    const auto wd = weekday{sys_days{days{floor_div(date_at, ms_per_day)}}}.c_encoding();
    return write(dis_.date,
                 {protocol::Decimal{static_cast<std::int64_t>(wd), 0}, local_date(date_at)});
  }

  bool refused() const { return !refusal_.empty(); }
  const std::string& refusal() const { return refusal_; }
  std::uint32_t refused_di() const { return refused_di_; }

 private:
  bool go_on() {
    if (!link_.stopping()) return true;
    out_.failure = drivers::Outcome::cancelled;
    out_.detail = "stopping";
    return false;
  }

  std::string di_text(std::uint32_t di) const { return dlt::di_to_string(link_.version, di); }

  // The text value at `index` of a read: "2026-11-30" or "02:40:00".
  std::optional<std::string> read_text(std::uint32_t di, std::size_t index) {
    if (!go_on()) return std::nullopt;
    const auto r = link_.read(di);
    ++out_.exchanges;
    out_.tally += r.tally;
    if (r.outcome == drivers::Outcome::meter_error) {
      out_.problems.push_back(di_text(di) + ": " + r.detail);
      return std::nullopt;
    }
    if (r.outcome != drivers::Outcome::ok) {
      out_.failure = r.outcome;
      out_.detail = di_text(di) + ": " + r.detail;
      return std::nullopt;
    }
    const auto item = dlt::lookup(link_.version, di);
    const auto decoded = dlt::decode_values(*item, r.data);
    const std::string* text = decoded.error || decoded.values.size() <= index
                                  ? nullptr
                                  : std::get_if<std::string>(&decoded.values[index].value);
    if (!text) {
      out_.problems.push_back(di_text(di) + ": " + dlt::to_hex(r.data) + " is not a date or time");
      return std::nullopt;
    }
    return *text;
  }

  // `values` in the item's field order, encoded as the catalogue reads them.
  bool write(std::uint32_t di, const std::vector<dlt::ValueData>& values) {
    if (!go_on()) return false;
    const auto item = dlt::lookup(link_.version, di);
    const auto data = dlt::encode_values(*item, values);
    if (!data) {
      out_.problems.push_back(di_text(di) + ": the gateway's time cannot be encoded");
      return false;
    }
    const auto a = link_.write(di, *data);
    ++out_.exchanges;
    out_.tally += a.tally;
    if (a.outcome == drivers::Outcome::meter_error) {
      refusal_ = dlt::error_meaning(link_.version, static_cast<std::uint8_t>(a.error_word));
      refused_di_ = di;
      return false;
    }
    if (a.outcome != drivers::Outcome::ok) {
      out_.failure = a.outcome;
      out_.detail = di_text(di) + " write: " + a.detail;
      return false;
    }
    return true;
  }

  const DltLink& link_;
  const ClockFixInput& in_;
  TaskOutput& out_;
  ClockDis dis_;
  std::string refusal_;
  std::uint32_t refused_di_ = 0;
};

}  // namespace

TaskOutput run_clock_fix(const DltLink& link, const ClockFixInput& in) {
  TaskOutput out;
  out.meter = in.meter;
  const auto state = [&](const char* key) {
    const auto it = in.state.find(key);
    return it == in.state.end() ? std::string() : it->second;
  };
  const auto clear_unfixable = [&] {
    if (!state(clock_unfixable_key).empty())
      out.state.push_back({in.meter, clock_unfixable_key, ""});
  };
  if (!in.drift_ms) return out;
  // Within ±5 min the daily broadcast corrects the clock without a password.
  if (std::abs(*in.drift_ms) <= broadcast_limit_ms) {
    clear_unfixable();
    return out;
  }
  const std::int64_t now = in.now();
  const std::string today = local_date(in.zone.to_local(now));
  if (!in.write_allowed) {
    if (state(clock_unfixable_key).empty()) {
      const nlohmann::json payload{
          {"drift_s", seconds(*in.drift_ms)},
          {"reason", "beyond the ±5 min a broadcast may correct; timesync_write is off"}};
      out.events.push_back({0, in.meter, "meter.clock_unfixable", now, payload.dump()});
      out.state.push_back({in.meter, clock_unfixable_key, today});
    }
    return out;
  }
  // The gateway's clock would be written into the meter as it is.
  if (!in.clock.synchronised) {
    out.problems.push_back("clock " + std::to_string(seconds(*in.drift_ms)) +
                           " s off, not written: the gateway clock is not synchronised (" +
                           in.clock.why + ")");
    return out;
  }
  // One attempt a day: a meter that refuses keeps refusing (and may lock
  // after a few wrong passwords), one that loses time loses it again.
  if (state(clock_fix_day_key) == today) return out;

  Fix fix(link, in, out);
  const auto before = fix.read_clock();
  if (!before) return out;
  // The stored drift may be older than a broadcast that fixed it since.
  if (std::abs(before->drift()) <= broadcast_limit_ms) {
    clear_unfixable();
    return out;
  }
  bool written = fix.write_clock();
  std::optional<MeterClock> after;
  if (written) after = fix.read_clock();
  if (after && std::abs(after->drift()) > clock_fix_redo_ms) {
    // A date written across midnight: the day is wrong. Once more, now
    // that midnight is behind.
    written = fix.write_clock();
    after = written ? fix.read_clock() : std::nullopt;
  }
  if (fix.refused()) {
    const nlohmann::json payload{{"error", fix.refusal()},
                                 {"di", dlt::di_to_string(link.version, fix.refused_di())}};
    out.events.push_back({0, in.meter, "meter.clock_set_refused", in.now(), payload.dump()});
    out.state.push_back({in.meter, clock_fix_day_key, today});
    return out;
  }
  // No answer to a write: the meter may or may not have taken it; the next
  // run reads its clock again.
  if (!written) return out;
  nlohmann::json payload{{"before", before->text},
                         {"after", nullptr},
                         {"drift_s", seconds(before->drift())},
                         {"residual_s", nullptr}};
  if (after) {
    payload["after"] = after->text;
    payload["residual_s"] = seconds(after->drift());
    if (std::abs(after->drift()) > clock_fix_redo_ms)
      out.problems.push_back("clock written but still " + std::to_string(seconds(after->drift())) +
                             " s off");
  }
  out.events.push_back({0, in.meter, "meter.clock_set", in.now(), payload.dump()});
  out.state.push_back({in.meter, clock_fix_day_key, today});
  clear_unfixable();
  return out;
}

}  // namespace meterd::firmware
