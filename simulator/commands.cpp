// The control channel's commands, one table entry each (README: "Control
// channel"). Each entry names what it needs (a meter, a DL/T 645 meter)
// and the dispatcher checks that once.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "protocol/dlt645/requests.hpp"
#include "protocol/dlt645/values.hpp"
#include "simulator/dlt645_meter.hpp"
#include "simulator/fleet.hpp"
#include "simulator/modbus_meter.hpp"

namespace meterd::simulator {

namespace dlt = protocol::dlt645;
using nlohmann::json;

namespace {

json fail(std::string e) { return {{"ok", false}, {"error", std::move(e)}}; }

// A non-negative millisecond argument, `fallback` when absent, nullopt when bad.
std::optional<Millis> ms_arg(const json& req, const char* key, Millis fallback) {
  if (!req.contains(key)) return fallback;
  if (!req[key].is_number_integer() || req[key].get<Millis>() < 0) return std::nullopt;
  return req[key].get<Millis>();
}

bool is_household(const std::optional<AreaSpec>& area, const std::string& id) {
  return area &&
         std::find(area->households.begin(), area->households.end(), id) != area->households.end();
}

// 0.01 kWh units -> "123.45" (negative after a meter clear).
std::string centi_text(std::int64_t c) {
  const std::int64_t a = c < 0 ? -c : c;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%lld.%02lld", c < 0 ? "-" : "", static_cast<long long>(a / 100),
                static_cast<long long>(a % 100));
  return buf;
}

// value / 10^decimals as fixed-point text.
std::string fixed_text(std::int64_t v, int decimals) {
  std::int64_t scale = 1;
  for (int k = 0; k < decimals; ++k) scale *= 10;
  const std::int64_t a = v < 0 ? -v : v;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s%lld.%0*lld", v < 0 ? "-" : "",
                static_cast<long long>(a / scale), decimals, static_cast<long long>(a % scale));
  return buf;
}

std::string local_minute_text(Millis local) {
  const Civil c = civil(local);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d", c.year, c.month, c.day, c.hour,
                c.minute);
  return buf;
}

// "YYYY-MM-DD" -> that local midnight (ms), nullopt unless a real date.
std::optional<Millis> parse_date(const std::string& text) {
  int y = 0, m = 0, d = 0;
  char tail = 0;
  if (text.size() != 10 || std::sscanf(text.c_str(), "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
    return std::nullopt;
  if (m < 1 || m > 12 || d < 1 || d > 31) return std::nullopt;
  const Millis t = from_civil(y, m, d);
  const Civil c = civil(t);
  if (c.year != y || c.month != m || c.day != d) return std::nullopt;  // 2026-02-30
  return t;
}

}  // namespace

enum class Needs { nothing, meter, dlt645 };

struct Fleet::Command {
  const char* name;
  Needs needs;
  json (*run)(Fleet& f, const json& req, Seat* seat, Millis now);
};

const std::vector<Fleet::Command>& Fleet::commands() {
  static const std::vector<Command> table{
      {"time", Needs::nothing,
       [](Fleet& f, const json&, Seat*, Millis now) -> json {
         return {{"ok", true}, {"utc", iso_utc(now)}, {"offset_ms", f.clock_.offset()}};
       }},
      {"advance", Needs::nothing,
       [](Fleet& f, const json& req, Seat*, Millis) -> json {
         const auto ms = ms_arg(req, "ms", -1);
         if (!ms || *ms < 0) return fail("advance: expected \"ms\": milliseconds >= 0");
         f.clock_.advance(*ms);
         return {{"ok", true}, {"utc", iso_utc(f.clock_.now())}, {"offset_ms", f.clock_.offset()}};
       }},
      {"list", Needs::nothing,
       [](Fleet& f, const json&, Seat*, Millis) -> json {
         return {{"ok", true}, {"endpoints", f.endpoints()}};
       }},
      {"endpoints", Needs::nothing,
       [](Fleet& f, const json&, Seat*, Millis) -> json {
         return {{"ok", true}, {"endpoints", f.endpoints()}};
       }},
      {"stats", Needs::nothing,
       [](Fleet& f, const json&, Seat*, Millis) -> json {
         json s = f.stats();
         s["ok"] = true;
         return s;
       }},
      {"vanish", Needs::nothing,
       [](Fleet& f, const json& req, Seat*, Millis) -> json {
         Bus* b = req.contains("bus") && req["bus"].is_string() ? f.find_bus(req["bus"]) : nullptr;
         if (!b) return fail("vanish: expected \"bus\": the name of a bus");
         b->vanish();
         return {
             {"ok", true}, {"bus", b->name()}, {"path", b->link().string()}, {"present", false}};
       }},
      {"reappear", Needs::nothing,
       [](Fleet& f, const json& req, Seat*, Millis) -> json {
         Bus* b = req.contains("bus") && req["bus"].is_string() ? f.find_bus(req["bus"]) : nullptr;
         if (!b) return fail("reappear: expected \"bus\": the name of a bus");
         if (b->vanished())
           if (const auto ec = b->open()) return fail("reappear: " + ec.message());
         return {{"ok", true},
                 {"bus", b->name()},
                 {"path", b->link().string()},
                 {"present", !b->vanished()}};
       }},
      {"fault", Needs::nothing,
       [](Fleet& f, const json& req, Seat*, Millis) -> json {
         std::string transport;
         Faults* target = nullptr;
         if (req.contains("bus")) {
           transport = req["bus"].is_string() ? req["bus"].get<std::string>() : "";
           if (Bus* b = f.find_bus(transport)) target = &b->faults();
           if (TcpConverter* t = f.find_tcp(transport)) target = &t->faults();
           if (!target) return fail("fault: no bus or tcp converter '" + transport + "'");
         } else if (Seat* s = req.contains("meter") && req["meter"].is_string()
                                  ? f.find_seat(req["meter"])
                                  : nullptr) {
           target = &s->faults;
           transport = f.specs_.at(s->id)->bus;
         } else {
           return fail("fault: expected \"meter\" or \"bus\"");
         }
         Faults next = *target;  // all or nothing: a bad key changes no switch
         if (const auto err = next.apply(req.value("faults", json::object())); !err.empty())
           return fail("fault: " + err);
         *target = next;
         f.faults_changed(transport);
         return {{"ok", true}, {"faults", target->to_json()}};
       }},
      {"clear_faults", Needs::nothing,
       [](Fleet& f, const json& req, Seat*, Millis) -> json {
         Faults* target = nullptr;
         const std::string name =
             req.contains("bus") && req["bus"].is_string() ? req["bus"].get<std::string>() : "";
         if (Bus* b = f.find_bus(name)) target = &b->faults();
         if (TcpConverter* t = f.find_tcp(name)) target = &t->faults();
         if (!target && req.contains("meter") && req["meter"].is_string())
           if (Seat* s = f.find_seat(req["meter"])) target = &s->faults;
         if (!target) return fail("clear_faults: expected \"meter\" or \"bus\"");
         *target = Faults{};
         return {{"ok", true}, {"faults", target->to_json()}};
       }},
      {"offline", Needs::meter,
       [](Fleet&, const json&, Seat* s, Millis) -> json {
         s->online = false;
         return {{"ok", true}, {"meter", s->id}, {"online", false}};
       }},
      {"online", Needs::meter,
       [](Fleet&, const json& req, Seat* s, Millis now) -> json {
         const auto up = ms_arg(req, "power_up_ms", s->power_up_ms);
         if (!up) return fail("online: \"power_up_ms\" must be milliseconds >= 0");
         if (!s->online) s->silent_until = now + *up;  // it boots before it talks
         s->online = true;
         return {{"ok", true},
                 {"meter", s->id},
                 {"online", true},
                 {"answers_from", iso_utc(std::max(now, s->silent_until))}};
       }},
      {"power_cycle", Needs::meter,
       [](Fleet&, const json& req, Seat* s, Millis now) -> json {
         const auto off = ms_arg(req, "off_ms", 5000);
         const auto up = ms_arg(req, "power_up_ms", s->power_up_ms);
         if (!off || !up)
           return fail("power_cycle: \"off_ms\" and \"power_up_ms\" must be milliseconds >= 0");
         s->meter->power_cycle(now, *off);
         s->silent_until = now + *off + *up;
         return {{"ok", true}, {"meter", s->id}, {"answers_from", iso_utc(s->silent_until)}};
       }},
      {"truth", Needs::meter,
       [](Fleet& f, const json&, Seat* s, Millis now) -> json {
         json t = s->meter->truth(now);
         if (f.config_.area && f.config_.area->summary == s->id) t["area"] = "summary";
         if (is_household(f.config_.area, s->id)) {
           t["area"] = "household";
           t["bypass_share"] = static_cast<double>(load_model(*s)->bypass_ppm()) / 1e6;
         }
         t["online"] = s->online;
         t["listening"] = s->listening(now);
         t["ok"] = true;
         return t;
       }},
      {"read", Needs::dlt645,
       [](Fleet&, const json& req, Seat* s, Millis now) -> json {
         Dlt645Meter& m = *s->dlt;
         const auto di = req.contains("di") && req["di"].is_string()
                             ? dlt::parse_di(m.config().version, req["di"].get<std::string>())
                             : std::nullopt;
         if (!di) return fail("read: expected \"di\" (8 hex digits for 2007, 4 for 1997)");
         const auto values = m.read(*di, now);
         if (!values) return {{"ok", true}, {"meter", s->id}, {"no_data", true}};
         json list = json::array();
         for (const auto& v : *values) {
           json e{{"quantity", v.quantity}, {"unit", v.unit}};
           if (const auto* d = std::get_if<protocol::Decimal>(&v.value))
             e["value"] = protocol::to_string(*d);
           else if (const auto* t = std::get_if<std::string>(&v.value))
             e["value"] = *t;
           else
             e["value"] = nullptr;
           list.push_back(e);
         }
         return {{"ok", true}, {"meter", s->id}, {"di", req["di"]}, {"values", list}};
       }},
      {"events", Needs::dlt645,
       [](Fleet&, const json&, Seat* s, Millis) -> json {
         return {{"ok", true}, {"meter", s->id}, {"events", s->dlt->events_json()}};
       }},
      {"relay", Needs::dlt645,
       [](Fleet&, const json&, Seat* s, Millis now) -> json {
         const auto t = s->dlt->truth(now);
         return {{"ok", true},          {"meter", s->id},
                 {"relay", t["relay"]}, {"relay_command", t["relay_command"]},
                 {"alarm", t["alarm"]}, {"keep_power", t["keep_power"]}};
       }},
      {"open_cover", Needs::dlt645,
       [](Fleet&, const json& req, Seat* s, Millis now) -> json {
         const auto d = ms_arg(req, "duration_ms", 60000);
         if (!d) return fail("open_cover: \"duration_ms\" must be milliseconds >= 0");
         s->dlt->open_cover(now, *d);
         return {{"ok", true}, {"meter", s->id}};
       }},
      {"press_button", Needs::dlt645,
       [](Fleet&, const json&, Seat* s, Millis now) -> json {
         s->dlt->press_button(now);
         return {{"ok", true},
                 {"meter", s->id},
                 {"relay", s->dlt->relay() == RelayState::closed ? "closed" : "open"}};
       }},
      {"skew_clock", Needs::dlt645,
       [](Fleet&, const json& req, Seat* s, Millis now) -> json {
         if (!req.contains("ms") || !req["ms"].is_number_integer())
           return fail("skew_clock: expected \"ms\" (may be negative)");
         s->dlt->skew_clock(req["ms"].get<Millis>());
         return {{"ok", true}, {"meter", s->id}, {"meter_time", s->dlt->truth(now)["meter_time"]}};
       }},
      {"set_clock", Needs::dlt645,
       [](Fleet&, const json& req, Seat* s, Millis now) -> json {
         const auto t = req.contains("time") && req["time"].is_string()
                            ? dlt::parse_datetime(req["time"].get<std::string>())
                            : std::nullopt;
         if (!t)
           return fail("set_clock: expected \"time\": \"YYYY-MM-DDThh:mm:ss\" (meter local time)");
         s->dlt->set_clock(now,
                           from_civil(t->year, t->month, t->day, t->hour, t->minute, t->second));
         return {{"ok", true}, {"meter", s->id}, {"meter_time", s->dlt->truth(now)["meter_time"]}};
       }},
      {"bypass", Needs::meter,
       [](Fleet& f, const json& req, Seat* s, Millis now) -> json {
         if (!f.config_.area) return fail("bypass: no area configured ([area] or --area N)");
         if (!is_household(f.config_.area, s->id))
           return fail("bypass: meter '" + s->id + "' is not a household of the area (summary " +
                       f.config_.area->summary + ")");
         const double share =
             req.contains("share") && req["share"].is_number() ? req["share"].get<double>() : -1.0;
         if (!(share >= 0.0 && share <= 1.0))
           return fail("bypass: expected \"share\": the unmetered fraction of the load, 0..1");
         const std::int64_t share_ppm = std::llround(share * 1e6);
         load_model(*s)->bypass(now, share_ppm);
         return {{"ok", true}, {"meter", s->id}, {"share", static_cast<double>(share_ppm) / 1e6}};
       }},
      {"area", Needs::nothing,
       [](Fleet& f, const json& req, Seat*, Millis now) -> json {
         if (!f.config_.area) return fail("area: no area configured ([area] or --area N)");
         const AreaSpec& a = *f.config_.area;
         json bypass = json::object();
         for (const auto& h : a.households)
           if (const auto p = load_model(*f.find_seat(h))->bypass_ppm())
             bypass[h] = static_cast<double>(p) / 1e6;
         json out{{"ok", true},
                  {"summary", a.summary},
                  {"households", a.households},
                  {"loss_percent", a.loss_percent},
                  {"bypass", bypass}};
         if (!req.contains("date")) return out;
         const auto from = req["date"].is_string() ? parse_date(req["date"]) : std::nullopt;
         if (!from) return fail("area: \"date\" must be a local date \"YYYY-MM-DD\"");
         const Millis to = *from + ms_per_day;
         // Consumption of the day as the freezes show it: the freeze stamped
         // the next local midnight less the one stamped this midnight, each
         // truncated to the 0.01 kWh the meter answers (05060101).
         std::string error;
         const auto day = [&](const std::string& id) -> std::int64_t {
           Dlt645Meter* m = load_model(*f.find_seat(id));
           std::int64_t c = 0;
           for (const Millis at : {*from, to}) {
             const auto uwh = m->daily_freeze_uwh(now, at);
             if (!uwh && error.empty())
               error = "area: meter '" + id + "' holds no daily freeze stamped " +
                       local_minute_text(at) + " (it keeps the last 62 local midnights)";
             c = (uwh ? *uwh / 10'000'000 : 0) - c;  // µWh -> 0.01 kWh, toward zero
           }
           return c;
         };
         const std::int64_t summary = day(a.summary);
         std::int64_t total = 0;
         json households = json::object();
         for (const auto& h : a.households) {
           const std::int64_t c = day(h);
           households[h] = centi_text(c);
           total += c;
         }
         if (!error.empty()) return fail(error);
         out["date"] = req["date"];
         out["from"] = local_minute_text(*from);
         out["to"] = local_minute_text(to);
         out["summary_kwh"] = centi_text(summary);
         out["households_kwh"] = households;
         out["households_total_kwh"] = centi_text(total);
         out["loss_kwh"] = centi_text(summary - total);
         if (summary == 0) {
           out["rate"] = out["rate_percent"] = nullptr;
         } else {  // (summary - households) / summary, rounded half away from zero at 1e-8
           const std::int64_t num = (summary - total) * 100'000'000;
           std::int64_t q = num / summary;
           if (2 * std::abs(num % summary) >= std::abs(summary))
             q += (num < 0) != (summary < 0) ? -1 : 1;
           out["rate"] = fixed_text(q, 8);
           out["rate_percent"] = fixed_text(q, 6);
         }
         return out;
       }},
  };
  return table;
}

json Fleet::control(const json& req) {
  if (!req.is_object() || !req.contains("cmd") || !req["cmd"].is_string())
    return fail("expected {\"cmd\": ...}");
  const std::string cmd = req["cmd"];
  const auto& table = commands();
  const auto it =
      std::find_if(table.begin(), table.end(), [&](const Command& c) { return cmd == c.name; });
  if (it == table.end()) return fail("unknown command '" + cmd + "'");
  Seat* seat = nullptr;
  if (it->needs != Needs::nothing) {
    if (req.contains("meter") && req["meter"].is_string()) seat = find_seat(req["meter"]);
    if (!seat) return fail(cmd + ": expected \"meter\": the id of a meter (see \"list\")");
    if (it->needs == Needs::dlt645 && !seat->dlt)
      return fail(cmd + ": not available for Modbus meters");
  }
  return it->run(*this, req, seat, clock_.now());
}

json Fleet::stats() const {
  json buses = json::object(), tcp = json::object();
  for (const auto& b : buses_) buses[b->name()] = b->stats().to_json();
  for (const auto& t : tcp_) tcp[t->name()] = t->stats().to_json();
  return {{"buses", buses}, {"tcp", tcp}};
}

void Fleet::faults_changed(const std::string& transport) {
  if (Bus* b = find_bus(transport)) b->faults_changed();
}

}  // namespace meterd::simulator
