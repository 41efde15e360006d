#include "firmware/meter_events.hpp"

#include <algorithm>
#include <optional>
#include <variant>

#include <nlohmann/json.hpp>

#include "firmware/detail/decimal_ops.hpp"
#include "protocol/dlt645/catalogue.hpp"

namespace meterd::firmware {

namespace dlt = protocol::dlt645;
using drivers::Outcome;
using protocol::Decimal;
using protocol::EventPart;
using protocol::Measurand;
using protocol::Parameter;
using Json = nlohmann::ordered_json;  // payload members in the documented order

namespace {

// ERR bit 1: "no requested data" (DL/T 645-2007 §7.2; 1997: wrong DI).
constexpr std::uint16_t err_no_data = 0x02;
// Meters keep the last 10 records of each log (DL/T 645-2007 Appendix A.5:
// DI0 = 01..0A); the catalogue knows no deeper record.
constexpr std::int64_t max_records = 10;

constexpr std::uint32_t di_status_block = 0x040005FF;
constexpr std::uint32_t di_status_1 = 0x04000501;
constexpr std::uint32_t di_date = 0x04000101;  // YYMMDDWW
constexpr std::uint32_t di_time = 0x04000102;  // hhmmss
constexpr std::uint32_t di_number = 0x04000402;
// DL/T 645-1997 meters keep no event logs the task reads: clock and number only.
constexpr std::uint32_t di97_date = 0xC010;
constexpr std::uint32_t di97_time = 0xC011;
constexpr std::uint32_t di97_number = 0xC032;

constexpr std::uint16_t sw1_reverse_active = 1u << 4;  // status word 1 bit 4: active power reverse

// Logs with a count: the count at count_di, record n (1 = newest) at count_di + n.
struct CountedLog {
  const char* name;  // state key "events.<name>.count", payload "counter"
  std::uint32_t count_di;
  const char* type;
};
constexpr CountedLog counted_logs[] = {
    {"power_down", 0x03110000, "meter.power_down"},
    {"cover_open", 0x03300D00, "meter.cover_open"},
    {"clock_adjust", 0x03300400, "meter.clock_adjusted"},
};

// State Grid relay logs: no count, record n at first_di + n - 1. New
// records are the ones newer than the last record time seen.
struct RelayLog {
  const char* name;  // state key "events.<name>.last"
  std::uint32_t first_di;
  const char* type;
};
constexpr RelayLog relay_logs[] = {
    {"relay_trip", 0x1D000001, "meter.relay_open"},
    {"relay_close", 0x1E000001, "meter.relay_closed"},
};

// The state value of a relay log that answered "no such data" for its
// newest record: an empty log (or none at all). Every record that appears
// later is new; without it the first trip ever would be taken as the
// baseline and never published.
constexpr const char* no_record = "none";

std::int64_t ceil_div(std::int64_t a, std::int64_t b) {  // b > 0
  return a / b + ((a % b != 0) && (a > 0) ? 1 : 0);
}

// "2026-11-27T04:00:00Z" of a UTC instant (whole seconds).
std::string iso_utc(std::int64_t utc_ms) { return local_datetime(utc_ms) + "Z"; }

std::optional<std::int64_t> parse_int(const std::string& text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  std::int64_t v = 0;
  std::size_t i = text[0] == '-' ? 1 : 0;
  if (i == text.size()) return std::nullopt;
  for (; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    v = v * 10 + (text[i] - '0');
  }
  return text[0] == '-' ? -v : v;
}

// ---- exact decimals --------------------------------------------------------

using detail::add;
using detail::compare;

// ---- one answer -------------------------------------------------------------

struct Answer {
  dlt::DataItem item;
  std::vector<dlt::Value> values;

  template <class Pred>
  const dlt::ValueData* find(Pred pred) const {
    for (std::size_t i = 0; i < item.fields.size() && i < values.size(); ++i)
      if (pred(item.fields[i].key)) return &values[i].value;
    return nullptr;
  }
  std::optional<std::string> text(EventPart part) const {
    const auto* v = find([&](const protocol::QuantityKey& k) {
      return k.measurand == Measurand::event && k.part == part;
    });
    if (const auto* s = v ? std::get_if<std::string>(v) : nullptr) return *s;
    return std::nullopt;
  }
  std::optional<std::string> parameter(Parameter p) const {
    const auto* v = find([&](const protocol::QuantityKey& k) {
      return k.measurand == Measurand::parameter && k.parameter == p;
    });
    if (const auto* s = v ? std::get_if<std::string>(v) : nullptr) return *s;
    return std::nullopt;
  }
  // An event count (XXXXXX, no decimals).
  std::optional<std::int64_t> count() const {
    const auto* v = find([](const protocol::QuantityKey& k) {
      return k.measurand == Measurand::event && k.part == EventPart::count;
    });
    if (const auto* d = v ? std::get_if<Decimal>(v) : nullptr) return protocol::rescale(*d, 0);
    return std::nullopt;
  }
};

enum class Got {
  answer,   // decoded values
  absent,   // ERR (no such data, ...) or undecodable: skip the item
  stopped,  // no answer, or stopping: the run ends here
};

class EventTask {
 public:
  EventTask(const DltLink& link, const EventTaskInput& in) : link_(link), in_(in) {
    out_.meter = in.meter;
    start_ms_ = in.now_ms();
    answer_ms_ = start_ms_;
  }

  TaskOutput run() {
    if (link_.version == dlt::Version::v1997) {
      if (serial(di97_number)) clock(di97_date, di97_time);
      return std::move(out_);
    }
    // The number first: if the meter was replaced, its counters are not
    // the old meter's and are taken as a new baseline.
    if (!serial(di_number) || !clock(di_date, di_time) || !status()) return std::move(out_);
    for (const auto& log : counted_logs)
      if (!counted(log)) return std::move(out_);
    for (const auto& log : relay_logs)
      if (!relay(log)) return std::move(out_);
    return std::move(out_);
  }

 private:
  // ---- plumbing ---------------------------------------------------------
  bool failed() const { return out_.failure != Outcome::ok; }

  void fail(Outcome o, std::string detail) {
    if (failed()) return;
    out_.failure = o;
    out_.detail = std::move(detail);
  }

  Got read(std::uint32_t di, Answer& answer) {
    if (failed()) return Got::stopped;
    if (link_.stopping()) {
      fail(Outcome::cancelled, "stopping");
      return Got::stopped;
    }
    const std::string name = dlt::di_to_string(link_.version, di);
    auto item = dlt::lookup(link_.version, di);
    if (!item) {
      out_.problems.push_back(name + ": not in the catalogue");
      return Got::absent;
    }
    const auto r = link_.read(di);
    out_.tally += r.tally;
    ++out_.exchanges;
    answer_ms_ = in_.now_ms();
    if (r.outcome == Outcome::meter_error) {
      // ERR 02 is a meter without the item (or an empty log): nothing to
      // report. Another refusal is odd enough to log.
      if (!(r.error_word & err_no_data))
        out_.problems.push_back(name + ": refused (" +
                                (r.detail.empty() ? "meter error" : r.detail) + ")");
      return Got::absent;
    }
    if (r.outcome != Outcome::ok) {
      fail(r.outcome, name + ": " + drivers::to_string(r.outcome) +
                          (r.detail.empty() ? "" : " (" + r.detail + ")"));
      return Got::stopped;
    }
    auto decoded = dlt::decode_values(*item, r.data);
    if (decoded.error) {
      out_.problems.push_back(name + ": " + decoded.message);
      return Got::absent;
    }
    for (const auto& p : decoded.problems) out_.problems.push_back(name + ": " + p);
    answer.item = std::move(*item);
    answer.values = std::move(decoded.values);
    return Got::answer;
  }

  // The stored value of a key, nullptr when there is none. An empty value
  // is none as well (check_live() empties the event baselines when the
  // energy went down); after a replacement the event baselines are void.
  const std::string* stored(const std::string& key) const {
    if (rebaseline_ && key.starts_with("events.")) return nullptr;
    const auto it = in_.state.find(key);
    return it == in_.state.end() || it->second.empty() ? nullptr : &it->second;
  }

  void put(const std::string& key, std::string value) {
    out_.state.push_back({in_.meter, key, std::move(value)});
  }

  void event(const char* type, std::int64_t ts_ms, const Json& payload) {
    out_.events.push_back({0, in_.meter, type, ts_ms, payload.dump()});
  }

  // A meter's local time text -> UTC ms, through the gateway's zone.
  std::optional<std::int64_t> utc_ms(const std::optional<std::string>& meter_text) const {
    if (!meter_text) return std::nullopt;
    const auto local = parse_meter_time(*meter_text);
    if (!local) return std::nullopt;
    return in_.zone.to_utc(*local);
  }
  Json utc_text(const std::optional<std::string>& meter_text) const {
    const auto ms = utc_ms(meter_text);
    return ms ? Json(iso_utc(*ms)) : Json(nullptr);
  }
  static Json raw(const std::optional<std::string>& text) {
    return text ? Json(*text) : Json(nullptr);
  }

  // ---- meter number -------------------------------------------------------
  bool serial(std::uint32_t di) {
    Answer a;
    const Got got = read(di, a);
    if (got != Got::answer) return got == Got::absent;
    const auto number = a.parameter(Parameter::number);
    if (!number) return true;
    const std::string* known = stored("meter.number");
    if (known && *known != *number) {
      event("meter.replaced", answer_ms_,
            Json{{"reason", "serial changed"}, {"before", *known}, {"after", *number}});
      rebaseline_ = true;
    }
    if (!known || *known != *number) put("meter.number", *number);
    return true;
  }

  // ---- clock --------------------------------------------------------------
  bool clock(std::uint32_t date_di, std::uint32_t time_di) {
    Answer date, time;
    Got got = read(date_di, date);
    if (got != Got::answer) return got == Got::absent;
    got = read(time_di, time);
    if (got != Got::answer) return got == Got::absent;
    const std::int64_t gateway_ms = answer_ms_;  // when the time answer arrived
    auto day = date.parameter(Parameter::date);
    const auto hms = time.parameter(Parameter::time);
    if (!day || !hms) {
      out_.problems.push_back("meter clock: date or time unreadable");
      return true;
    }
    // Just after midnight the date may have been read the day before: read
    // it again (the time answer came first, so the new date is the right one).
    if (hms->compare("00:01:00") < 0) {
      Answer again;
      got = read(date_di, again);
      if (got != Got::answer) return got == Got::absent;
      if (auto d = again.parameter(Parameter::date)) day = d;
    }
    const std::string meter_text = *day + "T" + *hms;
    const auto meter_local = parse_meter_time(meter_text);
    if (!meter_local) {
      out_.problems.push_back("meter clock: " + meter_text + " is not a time");
      return true;
    }
    if (!in_.gateway_clock_trusted) return true;

    const std::int64_t gateway_local = in_.zone.to_local(gateway_ms);
    // The meter shows whole seconds: its clock was somewhere in the second
    // it shows, the middle is the best guess (±0.5 s).
    const std::int64_t drift_ms = *meter_local + 500 - gateway_local;
    // Whole seconds as the meter counts them: a meter exactly 125 s behind
    // shows "-125" whatever the millisecond of the read.
    const std::int64_t drift_s = ceil_div(*meter_local - gateway_local, 1000);
    put("clock.drift_ms", std::to_string(drift_ms));

    const std::int64_t max = in_.clock_drift_max.count();
    // Back within only with a margin of the read's uncertainty (the shown
    // second, the exchange time), so a clock at the limit does not flap.
    const std::int64_t ok_below = max > 4000 ? max - 2000 : max / 2;
    const std::int64_t size = drift_ms < 0 ? -drift_ms : drift_ms;
    const std::string* alarm = stored("clock.drift_alarm");
    const bool alarmed = alarm && *alarm == "1";
    Json payload{{"meter_time", iso_utc(in_.zone.to_utc(*meter_local))},
                 {"meter_local", meter_text},
                 {"gateway_time", iso_utc(gateway_ms)},
                 {"drift_s", std::to_string(drift_s)}};
    if (!alarmed && size > max) {
      // A broadcast time sync (08H) moves a clock by 5 minutes at most.
      payload["broadcast_can_fix"] = size <= 5 * 60 * 1000;
      event("meter.clock_drift", gateway_ms, payload);
      put("clock.drift_alarm", "1");
    } else if (alarmed && size <= ok_below) {
      event("meter.clock_ok", gateway_ms, payload);
      put("clock.drift_alarm", "0");
    }
    return true;
  }

  // ---- status words -------------------------------------------------------
  bool status() {
    Answer a;
    Got got = read(di_status_block, a);
    if (got == Got::absent) got = read(di_status_1, a);  // a meter without the block
    if (got != Got::answer) return got == Got::absent;
    const auto* v = a.find([](const protocol::QuantityKey& k) {
      return k.measurand == Measurand::status_word && k.index == 1;
    });
    const auto* text = v ? std::get_if<std::string>(v) : nullptr;
    const auto bytes = text ? dlt::parse_hex(*text) : std::nullopt;
    if (!bytes || bytes->size() != 2) return true;
    const std::uint16_t word = static_cast<std::uint16_t>(((*bytes)[0] << 8) | (*bytes)[1]);
    const bool reverse = (word & sw1_reverse_active) != 0;
    // Absent state counts as "not reverse": a meter already running reverse
    // when first seen is reported (a condition now, not history).
    const std::string* known = stored("status.reverse_power");
    const bool was = known && *known == "1";
    if (reverse != was) {
      event(reverse ? "meter.reverse_power" : "meter.reverse_power_cleared", answer_ms_,
            Json{{"status_word_1", *text}});
      put("status.reverse_power", reverse ? "1" : "0");
    }
    return true;
  }

  // ---- counted logs ---------------------------------------------------------
  bool counted(const CountedLog& log) {
    Answer a;
    Got got = read(log.count_di, a);
    if (got != Got::answer) return got == Got::absent;
    const auto count = a.count();
    if (!count) return true;
    const std::string key = std::string("events.") + log.name + ".count";
    const std::string* text = stored(key);
    const auto known = text ? parse_int(*text) : std::nullopt;
    if (!known) {  // first run: a baseline, not the meter's whole history
      put(key, std::to_string(*count));
      return true;
    }
    if (*count == *known) return true;
    if (*count < *known) {  // cleared or replaced: no record is new for sure
      event("meter.counters_reset", answer_ms_,
            Json{{"counter", log.name}, {"before", *known}, {"after", *count}});
      put(key, std::to_string(*count));
      return true;
    }
    const std::int64_t fresh = *count - *known;
    const std::int64_t want = std::min(fresh, max_records);
    std::vector<Answer> records;  // oldest first
    std::int64_t missing = 0;     // counted but not kept by the meter
    for (std::int64_t n = want; n >= 1; --n) {
      Answer r;
      got = read(log.count_di + static_cast<std::uint32_t>(n), r);
      if (got == Got::stopped) return false;  // the count stays: all read again next run
      if (got == Got::absent)
        ++missing;
      else
        records.push_back(std::move(r));
    }
    // A new event while the records were read moves record n to n + 1: the
    // count must be the one the records were chosen for.
    Answer check;
    got = read(log.count_di, check);
    if (got == Got::stopped) return false;
    if (got == Got::answer && check.count() != count) {
      out_.problems.push_back(dlt::di_to_string(link_.version, log.count_di) +
                              ": count moved while its records were read; read again next run");
      return true;
    }
    if (const std::int64_t lost = fresh - want + missing; lost > 0)
      event("meter.events_lost", start_ms_, Json{{"counter", log.name}, {"missed", lost}});
    for (const auto& r : records) record_event(log, r);
    put(key, std::to_string(*count));
    return true;
  }

  void record_event(const CountedLog& log, const Answer& r) {
    if (log.count_di == 0x03300400) {  // time adjust: operator, before, after
      const auto before = r.text(EventPart::before), after = r.text(EventPart::after);
      // The time after is the corrected clock: the better time of the two.
      const auto ts = utc_ms(after) ? utc_ms(after) : utc_ms(before);
      event(log.type, ts.value_or(start_ms_),
            Json{{"before", utc_text(before)},
                 {"after", utc_text(after)},
                 {"operator", raw(r.text(EventPart::operator_code))},
                 {"meter_before", raw(before)},
                 {"meter_after", raw(after)}});
      return;
    }
    const auto start = r.text(EventPart::start), end = r.text(EventPart::end);
    event(log.type, utc_ms(start).value_or(start_ms_),
          Json{{"start", utc_text(start)},
               {"end", utc_text(end)},
               {"meter_start", raw(start)},
               {"meter_end", raw(end)}});
  }

  // ---- relay logs -----------------------------------------------------------
  bool relay(const RelayLog& log) {
    const std::string key = std::string("events.") + log.name + ".last";
    const std::string* known = stored(key);
    Answer head;
    Got got = read(log.first_di, head);
    if (got == Got::stopped) return false;
    if (got == Got::absent) {
      if (!known || *known != no_record) put(key, no_record);
      return true;
    }
    const std::string newest = head.text(EventPart::time).value_or("");
    if (!known) {  // first run: a baseline
      put(key, newest);
      return true;
    }
    if (*known == newest) return true;
    std::vector<Answer> records{head};  // newest first
    bool reached = false;               // the known record, or the end of the log
    for (std::uint32_t n = 2; n <= max_records; ++n) {
      Answer r;
      got = read(log.first_di + n - 1, r);
      if (got == Got::stopped) return false;
      if (got == Got::absent || r.text(EventPart::time).value_or("") == *known) {
        reached = true;
        break;
      }
      records.push_back(std::move(r));
    }
    // A new record while the log was walked shifts it: the newest must not
    // have changed.
    Answer check;
    got = read(log.first_di, check);
    if (got == Got::stopped) return false;
    if (got == Got::answer && check.text(EventPart::time).value_or("") != newest) {
      out_.problems.push_back(dlt::di_to_string(link_.version, log.first_di) +
                              ": a record was added while the log was read; read again next run");
      return true;
    }
    // Ten new records and the known one not among them: there may be more.
    // Relay logs have no count, so how many is unknown (null).
    if (!reached)
      event("meter.events_lost", start_ms_, Json{{"counter", log.name}, {"missed", nullptr}});
    for (auto it = records.rbegin(); it != records.rend(); ++it) {
      const auto time = it->text(EventPart::time);
      event(log.type, utc_ms(time).value_or(start_ms_),
            Json{{"time", utc_text(time)},
                 {"meter_time", raw(time)},
                 {"operator", raw(it->text(EventPart::operator_code))}});
    }
    put(key, newest);
    return true;
  }

  const DltLink& link_;
  const EventTaskInput& in_;
  TaskOutput out_;
  std::int64_t start_ms_ = 0;
  std::int64_t answer_ms_ = 0;  // gateway time of the last answer
  bool rebaseline_ = false;     // the meter was replaced: event baselines are void
};

// ---- live readings -------------------------------------------------------------

// Hysteresis of the voltage checks: a voltage is back only this far inside
// the limit, so one hovering at 242.0 / 242.1 does not raise an event pair
// at every poll.
constexpr Decimal voltage_deadband{10, -1};  // 1.0 V

const std::string energy_quantity = "energy.active.import.total";
const std::string energy_key = "live.energy.active.import.total";

}  // namespace

TaskOutput run_event_task(const DltLink& link, const EventTaskInput& in) {
  return EventTask(link, in).run();
}

std::vector<buffer::Event> check_live(const std::string& meter,
                                      const std::vector<buffer::Reading>& readings,
                                      const TasksConfig& limits, TaskState& state,
                                      std::vector<buffer::StateUpdate>& updates) {
  std::vector<buffer::Event> events;
  const auto get = [&](const std::string& key) {
    const auto it = state.find(key);
    return it == state.end() ? std::string() : it->second;
  };
  const auto set = [&](const std::string& key, const std::string& value) {
    if (const auto it = state.find(key); it != state.end() && it->second == value) return;
    state[key] = value;
    updates.push_back({meter, key, value});
  };
  const auto emit = [&](const char* type, std::int64_t ts, const Json& payload) {
    events.push_back({0, meter, type, ts, payload.dump()});
  };
  const auto plus = [](const Decimal& a, const Decimal& b) { return add(a, b).value_or(a); };
  const Decimal minus_deadband{-voltage_deadband.mantissa, voltage_deadband.exponent};

  struct Phase {
    unsigned n;
    Decimal v;
    std::int64_t ts;
  };
  std::vector<Phase> phases;
  const buffer::Reading* energy = nullptr;
  for (const auto& r : readings) {
    if (!r.frozen.empty()) continue;
    for (unsigned n = 1; n <= 3; ++n)
      if (r.quantity == "voltage.l" + std::to_string(n))
        phases.push_back({n, {r.mantissa, r.exponent}, r.ts_ms});
    if (r.quantity == energy_quantity) energy = &r;
  }
  std::sort(phases.begin(), phases.end(), [](const Phase& a, const Phase& b) { return a.n < b.n; });

  const auto dead = [&](const Phase& p) { return compare(p.v, limits.phase_loss_voltage) < 0; };
  for (const Phase& p : phases) {
    const std::string l = "l" + std::to_string(p.n);
    const std::string volts = protocol::to_string(p.v);
    const std::string loss_key = "live.phase_loss." + l;
    bool lost = get(loss_key) == "1";
    // A phase loss is one dead phase while another one lives (a three-phase
    // meter). All phases dead is a power cut (the meter's power-down log
    // tells it), not a phase loss; a single-phase meter has no other phase.
    if (phases.size() >= 2) {
      const bool others_alive = std::any_of(phases.begin(), phases.end(),
                                            [&](const Phase& o) { return o.n != p.n && !dead(o); });
      if (!lost && dead(p) && others_alive) {
        emit("meter.phase_loss", p.ts, Json{{"phase", l}, {"voltage", volts}});
        set(loss_key, "1");
        lost = true;
      } else if (lost && compare(p.v, plus(limits.phase_loss_voltage, voltage_deadband)) >= 0) {
        emit("meter.phase_restored", p.ts, Json{{"phase", l}, {"voltage", volts}});
        set(loss_key, "0");
        lost = false;
      }
    }
    // A dead phase is a phase loss or a power cut, not a low voltage.
    if (dead(p) || lost) continue;

    const std::string band_key = "live.voltage." + l;  // "high", "low", "ok"
    const std::string band = get(band_key);
    const Json excursion{{"phase", l},
                         {"voltage", volts},
                         {"min", protocol::to_string(limits.voltage_min)},
                         {"max", protocol::to_string(limits.voltage_max)}};
    if (compare(p.v, limits.voltage_max) > 0) {
      if (band != "high") emit("meter.voltage_out_of_band", p.ts, excursion);
      set(band_key, "high");
    } else if (compare(p.v, limits.voltage_min) < 0) {
      if (band != "low") emit("meter.voltage_out_of_band", p.ts, excursion);
      set(band_key, "low");
    } else if ((band == "high" && compare(p.v, plus(limits.voltage_max, minus_deadband)) <= 0) ||
               (band == "low" && compare(p.v, plus(limits.voltage_min, voltage_deadband)) >= 0)) {
      emit("meter.voltage_normal", p.ts, excursion);
      set(band_key, "ok");
    }
  }

  if (energy) {
    const Decimal now{energy->mantissa, energy->exponent};
    const std::string last = get(energy_key);
    if (const auto before = protocol::parse_decimal(last); before && compare(now, *before) < 0) {
      // A register does not run backwards: a new meter (or a cleared one)
      // answers at this address. Its event logs are not the old ones:
      // empty the event baselines, the events task takes new ones.
      emit("meter.replaced", energy->ts_ms,
           Json{{"reason", "energy went down"},
                {"before", last},
                {"after", protocol::to_string(now)}});
      for (const auto& [key, value] : std::map<std::string, std::string>(state))
        if (key.starts_with("events.") && !value.empty()) set(key, "");
    }
    set(energy_key, protocol::to_string(now));
  }
  return events;
}

}  // namespace meterd::firmware
