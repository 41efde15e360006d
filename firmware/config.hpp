// The daemon's configuration: one TOML file (docs/contracts.md "Config",
// docs/config.md) parsed, validated and frozen. Every error names file,
// line and key ("meterd.toml:12: meter.address: must be 12 digits"); a
// config with any error is refused whole, so a reload never swaps in half
// a config. Pure apart from reading the file: the files it names (keys,
// certificates) are opened by the parts that use them. Any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "drivers/bus.hpp"
#include "firmware/profiles.hpp"
#include "protocol/decimal.hpp"
#include "protocol/dlt645/control.hpp"
#include "protocol/dlt645/frame.hpp"

namespace meterd::firmware {

struct ConfigError {
  std::string file;
  int line = 0;                   // 1-based; 0 when the error is not tied to a line
  std::string key;                // "meter.address", "bus.baud", "gateway.id"
  std::string problem;            // "must be 12 digits, got \"12345\""
  std::string to_string() const;  // "file:line: key: problem"
};

struct GatewayConfig {
  std::string id;              // required
  std::string data_dir;        // required; buffer.db lives here
  std::string control_socket;  // default <data_dir>/meterd.sock
  std::string control_group;   // the socket's group ("" = the daemon's own)
};

struct BufferConfig {
  std::uint64_t max_readings = 10'000'000;
  std::uint64_t max_events = 1'000'000;
  std::uint64_t max_bytes = 0;
  std::string sync = "full";      // full | normal
  std::uint32_t cache_kib = 256;  // SQLite page cache (small board)
};

// The uplink (docs/config.md "[mqtt]"). Without an [mqtt] table the uplink
// is off and readings stay in the buffer (logged at start).
struct MqttConfig {
  bool enabled = false;   // an [mqtt] table is present
  std::string client_id;  // default: gateway.id
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  std::string topic_prefix;  // default meterd/<gateway.id>
  unsigned batch_max = 500;
  unsigned linger_ms = 200;
  unsigned inflight_max = 32;
  unsigned drain_max_per_s = 200;  // backlog drain cap, rows/s; 0 = none
  std::chrono::seconds keepalive{60};
  std::string protocol = "auto";  // auto | 5 | 3.1.1
  std::chrono::milliseconds reconnect_min{1000};
  std::chrono::milliseconds reconnect_max{60000};
  std::chrono::seconds health_interval{60};
  std::string username, password_file;
  std::string tls_ca_file, tls_cert_file, tls_key_file;
};

struct CommandsConfig {
  bool relay_control = false;
  std::string hmac_key_file;
  std::string operator_code = "00000000";  // DL/T 645 operator code C0..C3 sent with 1CH
};

struct PollingConfig {
  unsigned offline_after = 3;                  // consecutive failed reads → meter.offline
  std::chrono::seconds summary_interval{300};  // one log line per bus this often
};

// The concentrator's data tasks (docs/tasks.md, docs/config.md "[tasks]").
struct TasksConfig {
  // Daily frozen data: DL/T 645-2007 meters' own 0506 freezes (with
  // backfill), the others' energy read in the first slot after midnight.
  bool daily = true;
  std::chrono::milliseconds daily_delay{5 * 60 * 1000};  // after local 00:00
  unsigned backfill_days = 7;                            // 0..62
  std::vector<std::uint32_t> daily_items;  // more 0506xx01 items (05060101, 05060201 always)
  bool monthly = true;                     // last settlement (0001FF01, 0002FF01)
  // Meter events: status words, event counters and records, clock, serial.
  std::chrono::milliseconds event_interval{15 * 60 * 1000};  // 0: off
  std::chrono::milliseconds clock_drift_max{60 * 1000};      // meter.clock_drift beyond it
  // Daily 08H broadcast per bus at this local time ("" = off), only while the
  // gateway's own clock is synchronised; 14H write beyond ±5 min if allowed.
  std::string timesync_time = "02:30";
  bool timesync_write = false;
  // Gateway-view checks of the live readings.
  protocol::Decimal voltage_min{1980, -1};         // meter.voltage_out_of_band below
  protocol::Decimal voltage_max{2420, -1};         // ... and above
  protocol::Decimal phase_loss_voltage{1320, -1};  // meter.phase_loss below
};

// The transformer area (台区) for the line loss (docs/tasks.md "Area").
struct AreaConfig {
  bool enabled = false;  // an [area] table is present
  std::string name = "area";
  std::string summary;                             // the summary (总表) meter's id
  std::vector<std::string> households;             // household meter ids
  protocol::Decimal loss_threshold_percent{8, 0};  // area.line_loss_high past it
  int line = 0;
};

enum class MeterProtocol { dlt645_2007, dlt645_1997, modbus };
const char* to_string(MeterProtocol p) noexcept;  // "dlt645-2007", "dlt645-1997", "modbus"

struct MeterConfig {
  std::string id;
  std::string bus;
  MeterProtocol protocol = MeterProtocol::dlt645_2007;
  protocol::dlt645::Address address;  // DL/T 645
  std::uint8_t unit = 0;              // Modbus unit id 1..247
  std::string address_text;           // as written
  std::string profile;                // a built-in profile or a [[profile]] of this file
  std::chrono::milliseconds interval{15 * 60 * 1000};
  std::vector<std::string> quantities;  // empty: the whole profile
  unsigned preamble = 4;                // DL/T 645: FE bytes before a request
  std::string password;                 // DL/T 645: level + password, "02123456"; relay, 14H
  bool hourly = false;                  // DL/T 645-2007: read its hourly freezes (0504)
  int line = 0;                         // where it is defined (for messages)
};

struct Config {
  std::string file;
  GatewayConfig gateway;
  BufferConfig buffer;
  MqttConfig mqtt;
  CommandsConfig commands;
  PollingConfig polling;
  TasksConfig tasks;
  AreaConfig area;
  std::vector<drivers::BusConfig> buses;
  std::vector<MeterConfig> meters;
  // Built-in profiles plus this file's [[profile]] tables.
  std::shared_ptr<const ProfileSet> profiles;

  const drivers::BusConfig* find_bus(const std::string& name) const;
  const MeterConfig* find_meter(const std::string& id) const;
};

struct LoadResult {
  std::optional<Config> config;     // set when errors is empty
  std::vector<ConfigError> errors;  // every problem found, in file order
};

// Reads and checks the file; an unreadable file is one error on line 0
// (key "file"). A TOML syntax error is one error (key "syntax") at the
// line toml++ names: the parser stops there. Otherwise every problem of
// the file is collected, ordered by line.
LoadResult load_config(const std::string& path);
LoadResult parse_config(const std::string& toml_text, const std::string& file_name);

// A meter's read interval (docs/config.md "Intervals"): "15m", "5s", "1h",
// "1d" → a duration; nullopt if malformed or if interval_problem() objects.
std::optional<std::chrono::milliseconds> parse_interval(const std::string& text);

// "<digits><unit>" with unit ms, s, m, h or d ("500ms", "15m") → a duration;
// nullopt if malformed. No rule about the value.
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);

// "02:30" -> 150 min. nullopt for anything else ("2:30", "24:00", "",
// "02:30:00"), with the reason in *problem when given. The config's "" (off)
// is the caller's to recognise before calling.
std::optional<std::chrono::minutes> parse_time_of_day(const std::string& text,
                                                      std::string* problem = nullptr);

// Why a duration cannot be a read interval, or "" if it can. The rule (so
// wall-clock alignment makes sense): whole seconds from 1s to 1d; under a
// minute it divides a minute, up to an hour it divides an hour, over an
// hour it divides a day.
std::string interval_problem(std::chrono::milliseconds interval);

}  // namespace meterd::firmware
