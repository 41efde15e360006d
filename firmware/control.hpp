// The control socket's requests and answer lines (docs/control.md). Pure:
// parses one request line into a ControlRequest or a ControlError, and
// builds answer lines; the daemon (daemon_control.cpp) executes them.
// Strict like the MQTT commands: an unknown verb or member, a member of the
// wrong type, or a member given twice is refused, never guessed at.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace meterd::firmware {

enum class ControlVerb {
  status,
  meters,
  read,
  backlog,
  tail,
  export_rows,
  scan,
  relay,
  timesync,
  reload
};
std::string_view to_string(ControlVerb v) noexcept;  // "export" for export_rows

struct ControlRequest {
  ControlVerb verb = ControlVerb::status;
  std::string id_json;                  // the request's "id" as JSON text, "" when it had none
  std::string meter;                    // meters? no; read, relay: required; tail, export: filter
  std::string bus;                      // meters, timesync: filter; scan: required
  std::string quantity;                 // tail: filter
  std::vector<std::string> quantities;  // read
  std::string action;                   // relay: "trip" | "close"
  std::string protocol;                 // scan: "dlt645" | "modbus" | "" (the bus decides)
  unsigned first_unit = 1, last_unit = 247;  // scan, modbus
  bool offline = false;                      // meters
  bool events = false;                       // export
  std::int64_t from_ms = INT64_MIN;          // export: from <= ts < to
  std::int64_t to_ms = INT64_MAX;
};

struct ControlError {
  std::string id_json;  // as far as it could be read
  std::string code;     // malformed | invalid
  std::string message;
};

std::variant<ControlRequest, ControlError> parse_control_request(std::string_view line);

// A time argument: an ISO 8601 UTC time ("2026-12-01T08:00:00Z", with
// optional .fff, or "+00:00"), a date ("2026-12-01" = 00:00 UTC), or epoch
// milliseconds as a JSON integer. nullopt if it is none of these.
std::optional<std::int64_t> parse_time_arg(const nlohmann::json& value);

// Answer lines (no '\n'). `result` is written with protocol::dump, so
// exact_number() values stay exact; `row` is already JSON text.
std::string control_ok(const std::string& id_json, const nlohmann::json& result);
std::string control_error(const std::string& id_json, const std::string& code,
                          const std::string& message);
std::string control_data(const std::string& id_json, std::string_view row_json);
std::string control_progress(const std::string& id_json, const nlohmann::json& progress);
std::string control_skipped(const std::string& id_json, std::uint64_t rows);

}  // namespace meterd::firmware
