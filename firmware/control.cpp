#include "firmware/control.hpp"

#include <algorithm>
#include <chrono>
#include <set>

#include "firmware/commands.hpp"
#include "protocol/exact_json.hpp"

namespace meterd::firmware {

using json = nlohmann::json;

std::string_view to_string(ControlVerb v) noexcept {
  switch (v) {
    case ControlVerb::status:
      return "status";
    case ControlVerb::meters:
      return "meters";
    case ControlVerb::read:
      return "read";
    case ControlVerb::backlog:
      return "backlog";
    case ControlVerb::tail:
      return "tail";
    case ControlVerb::export_rows:
      return "export";
    case ControlVerb::scan:
      return "scan";
    case ControlVerb::relay:
      return "relay";
    case ControlVerb::timesync:
      return "timesync";
    case ControlVerb::reload:
      return "reload";
  }
  return "?";
}

namespace {

constexpr ControlVerb all_verbs[] = {
    ControlVerb::status,   ControlVerb::meters,      ControlVerb::read, ControlVerb::backlog,
    ControlVerb::tail,     ControlVerb::export_rows, ControlVerb::scan, ControlVerb::relay,
    ControlVerb::timesync, ControlVerb::reload};

// The members each verb takes besides "verb" and "id".
std::set<std::string> members_of(ControlVerb v) {
  switch (v) {
    case ControlVerb::meters:
      return {"bus", "offline"};
    case ControlVerb::read:
      return {"meter", "quantities"};
    case ControlVerb::tail:
      return {"meter", "quantity"};
    case ControlVerb::export_rows:
      return {"meter", "from", "to", "events"};
    case ControlVerb::scan:
      return {"bus", "protocol", "first", "last"};
    case ControlVerb::relay:
      return {"meter", "action"};
    case ControlVerb::timesync:
      return {"bus"};
    default:
      return {};
  }
}

// Ids, bus and meter names, quantities: printable text of sensible length.
bool name_ok(const std::string& s) {
  return !s.empty() && s.size() <= 128 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

std::optional<std::int64_t> parse_time_arg(const json& value) {
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (value.is_number_unsigned()) {
    const auto u = value.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<std::int64_t>(u);
  }
  if (!value.is_string()) return std::nullopt;
  const auto& s = value.get_ref<const std::string&>();
  if (s.size() == 10) return parse_utc_ms(s + "T00:00:00Z");
  return parse_utc_ms(s);
}

std::variant<ControlRequest, ControlError> parse_control_request(std::string_view line) {
  ControlError error;
  std::string problem;
  const auto parsed = parse_strict_object(line, problem);
  if (!parsed) {
    error.code = "malformed";
    error.message = problem.rfind("payload", 0) == 0 ? "request" + problem.substr(7) : problem;
    return error;
  }
  const json& j = *parsed;
  ControlRequest r;
  if (const auto it = j.find("id"); it != j.end()) {
    r.id_json = it->dump(-1, ' ', false, json::error_handler_t::replace);
    error.id_json = r.id_json;
  }
  const auto refuse = [&](std::string code, std::string message) {
    error.code = std::move(code);
    error.message = std::move(message);
    return error;
  };
  const auto verb = j.find("verb");
  if (verb == j.end() || !verb->is_string())
    return refuse("invalid",
                  "request needs \"verb\" (a string): status, meters, read, backlog, "
                  "tail, export, scan, relay, timesync or reload");
  const auto& name = verb->get_ref<const std::string&>();
  const auto* found = std::find_if(std::begin(all_verbs), std::end(all_verbs),
                                   [&](ControlVerb v) { return to_string(v) == name; });
  if (found == std::end(all_verbs))
    return refuse("invalid", "unknown verb " + quoted_for_message(name));
  r.verb = *found;
  const auto allowed = members_of(r.verb);
  for (const auto& [key, value] : j.items()) {
    if (key == "verb" || key == "id") continue;
    if (!allowed.count(key))
      return refuse("invalid", name + ": unknown member " + quoted_for_message(key));
  }
  // A string member that names something (meter, bus, quantity).
  const auto text = [&](const char* key, std::string& out, bool required) -> bool {
    const auto it = j.find(key);
    if (it == j.end()) {
      if (required) problem = name + ": \"" + key + "\" is required";
      return !required;
    }
    if (!it->is_string() || !name_ok(it->get_ref<const std::string&>())) {
      problem = name + ": \"" + key + "\" must be a non-empty name without spaces";
      return false;
    }
    out = it->get<std::string>();
    return true;
  };
  const auto flag = [&](const char* key, bool& out) -> bool {
    const auto it = j.find(key);
    if (it == j.end()) return true;
    if (!it->is_boolean()) {
      problem = name + ": \"" + key + "\" must be true or false";
      return false;
    }
    out = it->get<bool>();
    return true;
  };
  bool ok = true;
  switch (r.verb) {
    case ControlVerb::status:
    case ControlVerb::backlog:
    case ControlVerb::reload:
      break;
    case ControlVerb::meters:
      ok = text("bus", r.bus, false) && flag("offline", r.offline);
      break;
    case ControlVerb::read:
      ok = text("meter", r.meter, true);
      if (ok) {
        if (const auto it = j.find("quantities"); it != j.end()) {
          if (!it->is_array()) {
            problem = "read: \"quantities\" must be an array of quantity names";
            ok = false;
          }
          for (const auto& q : *it) {
            if (!ok) break;
            if (!q.is_string() || !name_ok(q.get_ref<const std::string&>())) {
              problem = "read: \"quantities\" must be an array of quantity names";
              ok = false;
            } else if (std::find(r.quantities.begin(), r.quantities.end(), q) !=
                       r.quantities.end()) {
              problem = "read: \"quantities\" names " +
                        quoted_for_message(q.get_ref<const std::string&>()) + " twice";
              ok = false;
            } else {
              r.quantities.push_back(q.get<std::string>());
            }
          }
        }
      }
      break;
    case ControlVerb::tail:
      ok = text("meter", r.meter, false) && text("quantity", r.quantity, false);
      break;
    case ControlVerb::export_rows: {
      ok = text("meter", r.meter, false) && flag("events", r.events);
      for (const char* key : {"from", "to"}) {
        if (!ok) break;
        const auto it = j.find(key);
        if (it == j.end()) continue;
        const auto t = parse_time_arg(*it);
        if (!t) {
          problem = std::string("export: \"") + key +
                    "\" must be a UTC time (2026-12-01T08:00:00Z), a date (2026-12-01) or "
                    "epoch milliseconds";
          ok = false;
        } else {
          (std::string_view(key) == "from" ? r.from_ms : r.to_ms) = *t;
        }
      }
      if (ok && r.from_ms >= r.to_ms) {
        problem = "export: \"from\" must come before \"to\"";
        ok = false;
      }
      break;
    }
    case ControlVerb::scan: {
      ok = text("bus", r.bus, true) && text("protocol", r.protocol, false);
      if (ok && !r.protocol.empty() && r.protocol != "dlt645" && r.protocol != "modbus") {
        problem =
            "scan: \"protocol\" must be dlt645 or modbus, got " + quoted_for_message(r.protocol);
        ok = false;
      }
      for (const char* key : {"first", "last"}) {
        if (!ok) break;
        const auto it = j.find(key);
        if (it == j.end()) continue;
        if (!it->is_number_integer() || it->get<std::int64_t>() < 1 ||
            it->get<std::int64_t>() > 247) {
          problem = std::string("scan: \"") + key + "\" must be a Modbus unit id 1..247";
          ok = false;
        } else {
          (std::string_view(key) == "first" ? r.first_unit : r.last_unit) =
              static_cast<unsigned>(it->get<std::int64_t>());
        }
      }
      if (ok && r.first_unit > r.last_unit) {
        problem = "scan: \"first\" must not be above \"last\"";
        ok = false;
      }
      break;
    }
    case ControlVerb::relay:
      ok = text("meter", r.meter, true) && text("action", r.action, true);
      if (ok && r.action != "trip" && r.action != "close") {
        problem = "relay: \"action\" must be trip or close, got " + quoted_for_message(r.action);
        ok = false;
      }
      break;
    case ControlVerb::timesync:
      ok = text("bus", r.bus, false);
      break;
  }
  if (!ok) return refuse("invalid", problem);
  return r;
}

namespace {

std::string head(const std::string& id_json) {
  return id_json.empty() ? "{" : "{\"id\":" + id_json + ",";
}

}  // namespace

std::string control_ok(const std::string& id_json, const json& result) {
  return head(id_json) + "\"ok\":true,\"result\":" + protocol::dump(result) + "}";
}

std::string control_error(const std::string& id_json, const std::string& code,
                          const std::string& message) {
  const json detail{{"code", code}, {"message", message}};
  return head(id_json) +
         "\"ok\":false,\"error\":" + detail.dump(-1, ' ', false, json::error_handler_t::replace) +
         "}";
}

std::string control_data(const std::string& id_json, std::string_view row_json) {
  std::string out = head(id_json) + "\"data\":";
  out += row_json;
  out += '}';
  return out;
}

std::string control_progress(const std::string& id_json, const json& progress) {
  return head(id_json) + "\"progress\":" + progress.dump() + "}";
}

std::string control_skipped(const std::string& id_json, std::uint64_t rows) {
  return head(id_json) + "\"skipped\":" + std::to_string(rows) + "}";
}

}  // namespace meterd::firmware
