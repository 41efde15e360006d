// The control channel's commands, one table entry each (README: "Control
// channel"). Each entry names what it needs (a meter, a DL/T 645 meter)
// and the dispatcher checks that once.
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
       [](Fleet&, const json&, Seat* s, Millis now) -> json {
         json t = s->meter->truth(now);
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
