#include "firmware/config.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <tuple>
#include <utility>

#include "firmware/detail/config_reader.hpp"
#include "protocol/dlt645/requests.hpp"

namespace meterd::firmware {

namespace dlt = protocol::dlt645;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string ConfigError::to_string() const {
  return file + ":" + std::to_string(line) + ": " + key + ": " + problem;
}

const char* to_string(MeterProtocol p) noexcept {
  switch (p) {
    case MeterProtocol::dlt645_2007:
      return "dlt645-2007";
    case MeterProtocol::dlt645_1997:
      return "dlt645-1997";
    case MeterProtocol::modbus:
      return "modbus";
  }
  return "";
}

const drivers::BusConfig* Config::find_bus(const std::string& name) const {
  for (const auto& b : buses)
    if (b.name == name) return &b;
  return nullptr;
}

const MeterConfig* Config::find_meter(const std::string& id) const {
  for (const auto& m : meters)
    if (m.id == id) return &m;
  return nullptr;
}

// ---- durations --------------------------------------------------------------------

std::optional<milliseconds> parse_duration(const std::string& text) {
  std::size_t i = 0;
  std::int64_t n = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    if (i >= 9) return std::nullopt;  // past any sensible duration: no overflow
    n = n * 10 + (text[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;
  const std::string_view unit = std::string_view(text).substr(i);
  std::int64_t per = 0;
  if (unit == "ms")
    per = 1;
  else if (unit == "s")
    per = 1000;
  else if (unit == "m")
    per = 60'000;
  else if (unit == "h")
    per = 3'600'000;
  else if (unit == "d")
    per = 86'400'000;
  else
    return std::nullopt;
  return milliseconds(n * per);
}

std::string interval_problem(milliseconds interval) {
  const auto ms = interval.count();
  if (ms < 1000 || ms % 1000 != 0) return "must be a whole number of seconds, at least 1s";
  const auto s = ms / 1000;
  if (s > 86'400) return "must be at most 1d";
  if (s < 60 && 60 % s != 0)
    return "under a minute it must divide a minute evenly (1, 2, 3, 4, 5, 6, 10, 12, 15, 20 or "
           "30s) so the reads keep their place on the clock";
  if (s >= 60 && s <= 3600 && 3600 % s != 0)
    return "from a minute to an hour it must divide an hour evenly (1m, 2m, 3m, 4m, 5m, 6m, 10m, "
           "12m, 15m, 20m, 30m, 1h, or whole seconds that do) so the reads keep their place on "
           "the clock";
  if (s > 3600 && 86'400 % s != 0)
    return "over an hour it must divide a day evenly (2h, 3h, 4h, 6h, 8h, 12h, 1d, or minutes "
           "that do) so the reads keep their place on the clock";
  return {};
}

std::optional<std::chrono::minutes> parse_time_of_day(const std::string& text,
                                                      std::string* problem) {
  const auto fail = [&](std::string why) -> std::optional<std::chrono::minutes> {
    if (problem) *problem = "\"" + text + "\": " + why;
    return std::nullopt;
  };
  const auto digit = [&](std::size_t i) { return text[i] >= '0' && text[i] <= '9'; };
  if (text.size() != 5 || text[2] != ':' || !digit(0) || !digit(1) || !digit(3) || !digit(4))
    return fail("expected a local time of day HH:MM (00:00 to 23:59)");
  const int h = (text[0] - '0') * 10 + (text[1] - '0');
  const int m = (text[3] - '0') * 10 + (text[4] - '0');
  if (h > 23) return fail("hour " + text.substr(0, 2) + " is not 00 to 23");
  if (m > 59) return fail("minute " + text.substr(3, 2) + " is not 00 to 59");
  return std::chrono::minutes{h * 60 + m};
}

std::optional<milliseconds> parse_interval(const std::string& text) {
  const auto d = parse_duration(text);
  if (!d || !interval_problem(*d).empty()) return std::nullopt;
  return d;
}

namespace {

using detail::line_of;
using detail::Loader;
using detail::quoted;
using detail::Scope;
using detail::type_name;

// ---- sections ------------------------------------------------------------------------

bool topic_safe(std::string_view s) {
  return s.find_first_of("+#") == std::string_view::npos &&
         std::none_of(s.begin(), s.end(), [](char c) { return c == 0 || c == ' ' || c == '\t'; });
}

void load_gateway(Loader& L, const toml::table& root, GatewayConfig& g) {
  const toml::table* t = L.table(root, "", "gateway");
  static const toml::table empty;
  const Scope s{t ? *t : empty, "gateway", t ? line_of(*t) : 0};
  L.check_keys(s, {"id", "data_dir", "control_socket", "control_group"});
  if (auto v = L.string(s, "id", true)) {
    if (!topic_safe(*v) || v->find('/') != std::string::npos)
      L.error(line_of(*s.table.get("id")), "gateway.id",
              "must not contain '/', '+', '#' or blanks (it is an MQTT topic level), got " +
                  quoted(*v));
    else
      g.id = *v;
  }
  if (auto v = L.string(s, "data_dir", true)) g.data_dir = *v;
  if (auto v = L.string(s, "control_socket")) g.control_socket = *v;
  if (auto v = L.string(s, "control_group")) g.control_group = *v;
  if (g.control_socket.empty() && !g.data_dir.empty())
    g.control_socket = g.data_dir + "/meterd.sock";
}

void load_buffer(Loader& L, const toml::table& root, BufferConfig& b) {
  const toml::table* t = L.table(root, "", "buffer");
  if (!t) return;
  const Scope s{*t, "buffer", line_of(*t)};
  L.check_keys(s, {"max_readings", "max_events", "max_bytes", "sync", "cache_kib"});
  constexpr std::int64_t billion = 1'000'000'000;
  if (auto v = L.integer(s, "max_readings", 1, billion))
    b.max_readings = static_cast<std::uint64_t>(*v);
  if (auto v = L.integer(s, "max_events", 1, billion))
    b.max_events = static_cast<std::uint64_t>(*v);
  if (auto v = L.integer(s, "max_bytes", 0, std::int64_t{1} << 50)) {
    if (*v != 0 && *v < (1 << 20))
      L.error(line_of(*t->get("max_bytes")), "buffer.max_bytes",
              "must be 0 (no limit) or at least 1048576 (1 MiB), got " + std::to_string(*v));
    else
      b.max_bytes = static_cast<std::uint64_t>(*v);
  }
  if (auto v = L.string(s, "sync")) {
    if (*v != "full" && *v != "normal")
      L.error(line_of(*t->get("sync")), "buffer.sync",
              "expected full or normal, got " + quoted(*v));
    else
      b.sync = *v;
  }
  if (auto v = L.integer(s, "cache_kib", 64, 1 << 20)) b.cache_kib = static_cast<std::uint32_t>(*v);
}

void load_mqtt(Loader& L, const toml::table& root, const GatewayConfig& g, MqttConfig& m) {
  const toml::table* t = L.table(root, "", "mqtt");
  if (t) {
    const Scope s{*t, "mqtt", line_of(*t)};
    L.check_keys(s, {"host", "port", "topic_prefix", "batch_max", "linger_ms", "inflight_max",
                     "username", "password_file", "tls", "client_id", "drain_max_per_s",
                     "keepalive", "protocol", "reconnect_min", "reconnect_max", "health_interval"});
    m.enabled = true;
    if (auto v = L.string(s, "host")) m.host = *v;
    if (auto v = L.string(s, "client_id")) {
      if (v->empty() || v->size() > 64)
        L.error(line_of(*t->get("client_id")), "mqtt.client_id", "must be 1 to 64 characters");
      else
        m.client_id = *v;
    }
    if (auto v = L.integer(s, "drain_max_per_s", 0, 1'000'000))
      m.drain_max_per_s = static_cast<unsigned>(*v);
    if (auto v = L.string(s, "protocol")) {
      if (*v != "auto" && *v != "5" && *v != "3.1.1")
        L.error(line_of(*t->get("protocol")), "mqtt.protocol",
                "must be \"auto\", \"5\" or \"3.1.1\", got " + quoted(*v));
      else
        m.protocol = *v;
    }
    const auto whole_seconds = [&](const char* key, std::int64_t lo, std::int64_t hi, auto& out) {
      if (auto d = L.duration(s, key)) {
        if (d->count() % 1000 != 0 || d->count() < lo * 1000 || d->count() > hi * 1000)
          L.error(line_of(*t->get(key)), std::string("mqtt.") + key,
                  "must be whole seconds from " + std::to_string(lo) + "s to " +
                      std::to_string(hi) + "s");
        else
          out = std::chrono::duration_cast<seconds>(*d);
      }
    };
    whole_seconds("keepalive", 5, 3600, m.keepalive);
    whole_seconds("health_interval", 1, 86'400, m.health_interval);
    if (auto d = L.duration(s, "reconnect_min")) {
      if (*d < milliseconds(100) || *d > seconds(3600))
        L.error(line_of(*t->get("reconnect_min")), "mqtt.reconnect_min",
                "must be from 100ms to 1h");
      else
        m.reconnect_min = *d;
    }
    if (auto d = L.duration(s, "reconnect_max")) {
      if (*d < milliseconds(100) || *d > seconds(3600))
        L.error(line_of(*t->get("reconnect_max")), "mqtt.reconnect_max",
                "must be from 100ms to 1h");
      else
        m.reconnect_max = *d;
    }
    if (m.reconnect_max < m.reconnect_min)
      L.error(line_of(*t), "mqtt.reconnect_max", "must not be below reconnect_min");
    if (auto v = L.integer(s, "port", 1, 65535)) m.port = static_cast<std::uint16_t>(*v);
    if (auto v = L.string(s, "topic_prefix")) {
      if (!topic_safe(*v) || v->front() == '/' || v->back() == '/')
        L.error(
            line_of(*t->get("topic_prefix")), "mqtt.topic_prefix",
            "must not contain '+', '#' or blanks, nor start or end with '/', got " + quoted(*v));
      else
        m.topic_prefix = *v;
    }
    if (auto v = L.integer(s, "batch_max", 1, 10'000)) m.batch_max = static_cast<unsigned>(*v);
    if (auto v = L.integer(s, "linger_ms", 0, 60'000)) m.linger_ms = static_cast<unsigned>(*v);
    if (auto v = L.integer(s, "inflight_max", 1, 1000)) m.inflight_max = static_cast<unsigned>(*v);
    if (auto v = L.string(s, "username")) m.username = *v;
    if (auto v = L.string(s, "password_file")) m.password_file = *v;
    if (!m.password_file.empty() && m.username.empty())
      L.error(line_of(*t->get("password_file")), "mqtt.password_file",
              "needs mqtt.username (MQTT sends a password only with a user name)");
    if (const toml::table* tls = L.table(*t, "mqtt", "tls")) {
      const Scope ts{*tls, "mqtt.tls", line_of(*tls)};
      L.check_keys(ts, {"ca_file", "cert_file", "key_file"});
      if (auto v = L.string(ts, "ca_file")) m.tls_ca_file = *v;
      if (auto v = L.string(ts, "cert_file")) m.tls_cert_file = *v;
      if (auto v = L.string(ts, "key_file")) m.tls_key_file = *v;
      if (m.tls_cert_file.empty() != m.tls_key_file.empty())
        L.error(line_of(*tls), m.tls_cert_file.empty() ? "mqtt.tls.cert_file" : "mqtt.tls.key_file",
                "cert_file and key_file go together (client certificate)");
    }
  }
  if (m.topic_prefix.empty() && !g.id.empty()) m.topic_prefix = "meterd/" + g.id;
  if (m.client_id.empty()) m.client_id = g.id;
}

void load_commands(Loader& L, const toml::table& root, CommandsConfig& c) {
  const toml::table* t = L.table(root, "", "commands");
  if (!t) return;
  const Scope s{*t, "commands", line_of(*t)};
  L.check_keys(s, {"relay_control", "hmac_key_file", "operator"});
  if (auto v = L.boolean(s, "relay_control")) c.relay_control = *v;
  if (auto v = L.string(s, "hmac_key_file")) c.hmac_key_file = *v;
  if (auto v = L.string(s, "operator")) {
    if (!protocol::dlt645::parse_operator(*v))
      L.error(line_of(*t->get("operator")), "commands.operator",
              "must be 8 hex digits (DL/T 645 operator code), got " + quoted(*v));
    else
      c.operator_code = *v;
  }
  if (c.relay_control && c.hmac_key_file.empty())
    L.error(line_of(*t->get("relay_control")), "commands.relay_control",
            "relay control needs hmac_key_file (unsigned relay commands are refused)");
}

void load_polling(Loader& L, const toml::table& root, PollingConfig& p) {
  const toml::table* t = L.table(root, "", "polling");
  if (!t) return;
  const Scope s{*t, "polling", line_of(*t)};
  L.check_keys(s, {"offline_after", "summary_interval"});
  if (auto v = L.integer(s, "offline_after", 1, 1000)) p.offline_after = static_cast<unsigned>(*v);
  if (auto d = L.duration(s, "summary_interval")) {
    if (d->count() % 1000 != 0 || *d < seconds(1) || *d > seconds(86'400))
      L.error(line_of(*t->get("summary_interval")), "polling.summary_interval",
              "must be whole seconds from 1s to 1d");
    else
      p.summary_interval = std::chrono::duration_cast<seconds>(*d);
  }
}

void load_tasks(Loader& L, const toml::table& root, TasksConfig& c) {
  const toml::table* t = L.table(root, "", "tasks");
  if (!t) return;
  const Scope s{*t, "tasks", line_of(*t)};
  L.check_keys(s, {"daily", "daily_delay", "backfill_days", "daily_items", "monthly",
                   "event_interval", "clock_drift_max", "timesync_time", "timesync_write",
                   "voltage_min", "voltage_max", "phase_loss_voltage"});
  if (auto v = L.boolean(s, "daily")) c.daily = *v;
  if (auto v = L.boolean(s, "monthly")) c.monthly = *v;
  if (auto v = L.boolean(s, "timesync_write")) c.timesync_write = *v;
  if (auto d = L.duration(s, "daily_delay")) {
    if (*d < seconds(0) || *d > milliseconds(6 * 3'600'000))
      L.error(line_of(*t->get("daily_delay")), "tasks.daily_delay", "must be from 0s to 6h");
    else
      c.daily_delay = *d;
  }
  if (auto v = L.integer(s, "backfill_days", 0, 62)) c.backfill_days = static_cast<unsigned>(*v);
  if (auto items = L.string_list(s, "daily_items")) {
    for (const auto& [text, line] : *items) {
      const auto di = dlt::parse_di(dlt::Version::v2007, text);
      const auto item = di ? dlt::lookup(dlt::Version::v2007, *di) : std::nullopt;
      if (!item || (*di >> 16) != 0x0506 || (*di & 0xFF) != 0x01 || ((*di >> 8) & 0xFF) == 0)
        L.error(line, "tasks.daily_items",
                "expected a daily-freeze item 0506xx01 (the \"last 1\" form, xx not 00), got " +
                    quoted(text));
      else if (std::find(c.daily_items.begin(), c.daily_items.end(), *di) == c.daily_items.end() &&
               *di != 0x05060101 && *di != 0x05060201)
        c.daily_items.push_back(*di);
    }
  }
  if (auto d = L.duration(s, "event_interval")) {
    if (d->count() != 0 && !interval_problem(*d).empty())
      L.error(line_of(*t->get("event_interval")), "tasks.event_interval",
              "0 (off) or a read interval: " + interval_problem(*d));
    else
      c.event_interval = *d;
  }
  if (auto d = L.duration(s, "clock_drift_max")) {
    if (*d < seconds(1) || *d > milliseconds(3'600'000))
      L.error(line_of(*t->get("clock_drift_max")), "tasks.clock_drift_max",
              "must be from 1s to 1h");
    else
      c.clock_drift_max = *d;
  }
  if (auto v = L.string(s, "timesync_time", false, true)) {
    std::string why;
    if (!v->empty() && !parse_time_of_day(*v, &why))
      L.error(
          line_of(*t->get("timesync_time")), "tasks.timesync_time",
          "expected a local time \"HH:MM\" or \"\" (off), got " + (why.empty() ? quoted(*v) : why));
    else
      c.timesync_time = *v;
  }
  const auto volts = [&](const char* key, protocol::Decimal& out) {
    if (auto v = L.string(s, key)) {
      const auto d = protocol::parse_decimal(*v);
      if (!d || d->mantissa < 0)
        L.error(line_of(*t->get(key)), std::string("tasks.") + key,
                "expected volts as a decimal string such as \"198.0\", got " + quoted(*v));
      else
        out = *d;
    }
  };
  volts("voltage_min", c.voltage_min);
  volts("voltage_max", c.voltage_max);
  volts("phase_loss_voltage", c.phase_loss_voltage);
  if (!(c.voltage_min < c.voltage_max))
    L.error(line_of(*t), "tasks.voltage_max", "must be above voltage_min");
}

void load_area(Loader& L, const toml::table& root, const std::vector<MeterConfig>& meters,
               AreaConfig& a) {
  const toml::table* t = L.table(root, "", "area");
  if (!t) return;
  const Scope s{*t, "area", line_of(*t)};
  L.check_keys(s, {"name", "summary", "households", "loss_threshold_percent"});
  a.enabled = true;
  a.line = s.line;
  const auto known = [&](const std::string& id) {
    return std::any_of(meters.begin(), meters.end(), [&](auto& m) { return m.id == id; });
  };
  if (auto v = L.string(s, "name")) {
    if (v->empty())
      L.error(line_of(*t->get("name")), "area.name", "must not be empty");
    else
      a.name = *v;
  }
  if (auto v = L.string(s, "summary", true)) {
    if (!known(*v))
      L.error(line_of(*t->get("summary")), "area.summary", "no [[meter]] with id " + quoted(*v));
    else
      a.summary = *v;
  }
  if (auto list = L.string_list(s, "households")) {
    std::set<std::string> seen;
    for (const auto& [id, line] : *list) {
      if (!known(id))
        L.error(line, "area.households", "no [[meter]] with id " + quoted(id));
      else if (id == a.summary)
        L.error(line, "area.households", quoted(id) + " is the summary meter");
      else if (!seen.insert(id).second)
        L.error(line, "area.households", quoted(id) + " is listed twice");
      else
        a.households.push_back(id);
    }
    if (list->empty()) L.error(line_of(*t->get("households")), "area.households", "is empty");
  } else if (!t->get("households")) {
    L.error(s.line, "area.households", "is required");
  }
  if (auto v = L.string(s, "loss_threshold_percent")) {
    const auto d = protocol::parse_decimal(*v);
    if (!d || d->mantissa <= 0 || !(*d < protocol::Decimal{100, 0}))
      L.error(line_of(*t->get("loss_threshold_percent")), "area.loss_threshold_percent",
              "expected a percentage above 0 and below 100 as a string such as \"8.0\", got " +
                  quoted(*v));
    else
      a.loss_threshold_percent = *d;
  }
}

// ---- buses -----------------------------------------------------------------------------

void load_buses(Loader& L, const toml::table& root, std::vector<drivers::BusConfig>& buses,
                std::map<std::string, int>& bus_lines) {
  for (const toml::table* t : L.tables(root, "bus", "bus")) {
    const Scope s{*t, "bus", line_of(*t)};
    L.check_keys(s,
                 {"name", "port", "tcp", "baud", "parity", "data_bits", "stop_bits",
                  "response_timeout_ms", "byte_timeout_ms", "retries", "echo", "rs485",
                  "rts_delay_before_ms", "rts_delay_after_ms", "reopen_min_ms", "reopen_max_ms"});
    drivers::BusConfig b;
    bool good = true;
    if (auto v = L.string(s, "name", true)) {
      const auto [it, fresh] = bus_lines.emplace(*v, line_of(*t->get("name")));
      if (!fresh) {
        L.error(line_of(*t->get("name")), "bus.name",
                "duplicate bus name " + quoted(*v) + " (first defined on line " +
                    std::to_string(it->second) + ")");
        good = false;
      }
      b.name = *v;
    } else {
      good = false;
    }
    const auto port = L.string(s, "port");
    const auto tcp = L.string(s, "tcp");
    if (port && tcp) {
      L.error(line_of(*t->get("tcp")), "bus.tcp",
              "a bus is either a serial port or a Modbus TCP endpoint: give port or tcp, not both");
    } else if (!port && !tcp && !t->get("port") && !t->get("tcp")) {
      L.error(line_of(*t), "bus.port",
              "required key missing: port (a serial device) or tcp (\"host:port\")");
    }
    if (port) b.device = *port;
    if (tcp && !port) {
      // "host:port"; an IPv6 host in brackets ("[::1]:502").
      const auto colon = tcp->rfind(':');
      std::string host = colon == std::string::npos ? "" : tcp->substr(0, colon);
      if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
      const std::string digits = colon == std::string::npos ? "" : tcp->substr(colon + 1);
      unsigned long p = 0;
      const bool numeric =
          !digits.empty() && digits.size() <= 5 &&
          std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (numeric) p = std::stoul(digits);
      if (host.empty() || !numeric || p < 1 || p > 65535)
        L.error(line_of(*t->get("tcp")), "bus.tcp",
                "expected \"host:port\" with port 1..65535, got " + quoted(*tcp));
      else {
        b.tcp_host = host;
        b.tcp_port = static_cast<std::uint16_t>(p);
      }
    }
    const bool is_tcp = tcp && !port;
    if (is_tcp) {
      for (const char* serial_only : {"baud", "parity", "data_bits", "stop_bits", "echo", "rs485",
                                      "rts_delay_before_ms", "rts_delay_after_ms"})
        if (const toml::node* n = t->get(serial_only))
          L.error(line_of(*n), std::string("bus.") + serial_only,
                  "a serial line setting, but this bus is Modbus TCP (tcp = ...)");
    } else {
      if (const toml::node* n = t->get("baud")) {
        if (!n->is_integer())
          L.error(line_of(*n), "bus.baud",
                  std::string("expected an integer, got ") + type_name(*n));
        else {
          const auto v = n->as_integer()->get();
          if (v <= 0 || v > 4'000'000 || !drivers::is_standard_baud(static_cast<unsigned>(v)))
            L.error(line_of(*n), "bus.baud",
                    "not a standard rate (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, "
                    "115200), got " +
                        std::to_string(v));
          else
            b.line.baud = static_cast<unsigned>(v);
        }
      }
      if (auto v = L.string(s, "parity")) {
        if (!drivers::parse_parity(*v, b.line.parity))
          L.error(line_of(*t->get("parity")), "bus.parity",
                  "expected none, even or odd, got " + quoted(*v));
      }
      if (const toml::node* n = t->get("data_bits")) {
        if (!n->is_integer())
          L.error(line_of(*n), "bus.data_bits",
                  std::string("expected an integer, got ") + type_name(*n));
        else if (const auto v = n->as_integer()->get(); v != 7 && v != 8)
          L.error(line_of(*n), "bus.data_bits", "must be 7 or 8, got " + std::to_string(v));
        else
          b.line.data_bits = static_cast<unsigned>(v);
      }
      if (const toml::node* n = t->get("stop_bits")) {
        if (!n->is_integer())
          L.error(line_of(*n), "bus.stop_bits",
                  std::string("expected an integer, got ") + type_name(*n));
        else if (const auto v = n->as_integer()->get(); v != 1 && v != 2)
          L.error(line_of(*n), "bus.stop_bits", "must be 1 or 2, got " + std::to_string(v));
        else
          b.line.stop_bits = static_cast<unsigned>(v);
      }
      if (auto v = L.boolean(s, "echo")) b.echo = *v;
      if (auto v = L.boolean(s, "rs485")) b.rs485.enabled = *v;
      if (auto v = L.integer(s, "rts_delay_before_ms", 0, 1000))
        b.rs485.delay_before_send_ms = static_cast<unsigned>(*v);
      if (auto v = L.integer(s, "rts_delay_after_ms", 0, 1000))
        b.rs485.delay_after_send_ms = static_cast<unsigned>(*v);
    }
    if (auto v = L.integer(s, "response_timeout_ms", 10, 60'000))
      b.limits.response_timeout = milliseconds(*v);
    if (auto v = L.integer(s, "byte_timeout_ms", 1, 10'000))
      b.limits.byte_timeout = milliseconds(*v);
    if (auto v = L.integer(s, "retries", 0, 10)) b.retries = static_cast<unsigned>(*v);
    if (auto v = L.integer(s, "reopen_min_ms", 10, 600'000)) b.reopen_min = milliseconds(*v);
    if (auto v = L.integer(s, "reopen_max_ms", 10, 3'600'000)) b.reopen_max = milliseconds(*v);
    if (b.reopen_max < b.reopen_min)
      L.error(line_of(t->get("reopen_max_ms") ? *t->get("reopen_max_ms") : *t), "bus.reopen_max_ms",
              "must be at least reopen_min_ms (" + std::to_string(b.reopen_min.count()) + ")");
    if (good) buses.push_back(std::move(b));
  }
}

// ---- meters ----------------------------------------------------------------------------

std::optional<MeterProtocol> parse_protocol(const std::string& s) {
  if (s == "dlt645-2007") return MeterProtocol::dlt645_2007;
  if (s == "dlt645-1997") return MeterProtocol::dlt645_1997;
  if (s == "modbus") return MeterProtocol::modbus;
  return std::nullopt;
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void load_meters(Loader& L, const toml::table& root, const std::vector<drivers::BusConfig>& buses,
                 const std::map<std::string, int>& bus_lines, const ProfileSet& profiles,
                 std::vector<MeterConfig>& meters) {
  std::map<std::string, int> ids;
  // (bus, "dlt" | "modbus", address) -> the meter that has it
  std::map<std::tuple<std::string, std::string, std::string>, std::pair<std::string, int>> taken;
  for (const toml::table* t : L.tables(root, "meter", "meter")) {
    const Scope s{*t, "meter", line_of(*t)};
    L.check_keys(s, {"id", "bus", "protocol", "address", "profile", "interval", "quantities",
                     "preamble", "password", "hourly"});
    MeterConfig m;
    m.line = s.line;
    bool good = true;
    if (auto v = L.string(s, "id", true)) {
      const int line = line_of(*t->get("id"));
      if (const auto [it, fresh] = ids.emplace(*v, line); !fresh) {
        L.error(line, "meter.id",
                "duplicate meter id " + quoted(*v) + " (first defined on line " +
                    std::to_string(it->second) + ")");
        good = false;
      }
      m.id = *v;
    } else {
      good = false;
    }
    const drivers::BusConfig* bus = nullptr;
    if (auto v = L.string(s, "bus", true)) {
      m.bus = *v;
      for (const auto& b : buses)
        if (b.name == *v) bus = &b;
      if (!bus) {
        if (!bus_lines.count(*v))  // a bus with errors of its own is not "undefined"
          L.error(line_of(*t->get("bus")), "meter.bus", "no [[bus]] named " + quoted(*v));
        good = false;
      }
    } else {
      good = false;
    }
    std::optional<MeterProtocol> protocol;
    if (auto v = L.string(s, "protocol", true)) {
      protocol = parse_protocol(*v);
      if (!protocol)
        L.error(line_of(*t->get("protocol")), "meter.protocol",
                "expected dlt645-2007, dlt645-1997 or modbus, got " + quoted(*v));
    }
    if (!protocol) good = false;
    const bool is_dlt = protocol && *protocol != MeterProtocol::modbus;
    if (protocol) m.protocol = *protocol;
    if (is_dlt && bus && bus->is_tcp()) {
      L.error(line_of(*t->get("bus")), "meter.bus",
              "bus " + quoted(bus->name) +
                  " is Modbus TCP; DL/T 645 meters need a serial bus (DL/T 645 over TCP is not "
                  "supported)");
      good = false;
    }
    // address: DL/T 645 exactly 12 digits; Modbus a unit id 1..247, as an
    // integer or a string of digits (metersim writes "1").
    std::string normal;  // the address as compared for duplicates
    if (const toml::node* n = L.node(s, "address", true); n && protocol) {
      const int line = line_of(*n);
      if (is_dlt) {
        if (!n->is_string()) {
          L.error(line, "meter.address",
                  std::string("DL/T 645 address must be a string of exactly 12 digits, got ") +
                      type_name(*n));
          good = false;
        } else {
          const std::string a = n->as_string()->get();
          const auto parsed = dlt::Address::parse(a);
          if (a.size() != 12 || !all_digits(a) || !parsed) {
            L.error(line, "meter.address",
                    "DL/T 645 address must be exactly 12 digits, got " + quoted(a));
            good = false;
          } else if (parsed->is_broadcast()) {
            L.error(line, "meter.address", "999999999999 is the broadcast address, not a meter's");
            good = false;
          } else {
            m.address = *parsed;
            m.address_text = a;
            normal = a;
          }
        }
      } else {
        std::optional<std::int64_t> unit;
        std::string text;
        if (n->is_integer()) {
          unit = n->as_integer()->get();
          text = std::to_string(*unit);
        } else if (n->is_string()) {
          text = n->as_string()->get();
          if (all_digits(text) && text.size() <= 3) unit = std::stoll(text);
        } else {
          text = type_name(*n);
        }
        if (!unit || *unit < 1 || *unit > 247) {
          L.error(line, "meter.address",
                  "Modbus unit id must be 1..247, got " + (n->is_string() ? quoted(text) : text));
          good = false;
        } else {
          m.unit = static_cast<std::uint8_t>(*unit);
          m.address_text = text;
          normal = std::to_string(*unit);
        }
      }
    }
    const Profile* profile = nullptr;
    if (auto v = L.string(s, "profile", true)) {
      m.profile = *v;
      profile = profiles.find(*v);
      const int line = line_of(*t->get("profile"));
      if (!profile) {
        std::string known;
        for (const auto& n : profiles.names()) known += (known.empty() ? "" : ", ") + n;
        L.error(line, "meter.profile", "unknown profile " + quoted(*v) + " (known: " + known + ")");
        good = false;
      } else if (protocol) {
        const bool fits =
            profile->kind == Profile::Kind::modbus
                ? !is_dlt
                : is_dlt && profile->version == (*protocol == MeterProtocol::dlt645_2007
                                                     ? dlt::Version::v2007
                                                     : dlt::Version::v1997);
        if (!fits) {
          const std::string pk = profile->kind == Profile::Kind::modbus
                                     ? "modbus"
                                     : std::string(dlt::to_string(profile->version));
          L.error(line, "meter.profile",
                  "profile " + quoted(*v) + " is for " + pk + " meters, this meter is " +
                      to_string(*protocol));
          profile = nullptr;
          good = false;
        }
      }
    } else {
      good = false;
    }
    if (const toml::node* n = t->get("interval")) {
      if (!n->is_string()) {
        L.error(line_of(*n), "meter.interval",
                std::string("expected a duration such as \"15m\", got ") + type_name(*n));
        good = false;
      } else {
        const std::string text = n->as_string()->get();
        const auto d = parse_duration(text);
        if (!d) {
          L.error(line_of(*n), "meter.interval",
                  "expected a number and a unit (s, m, h, d) such as \"15m\", got " + quoted(text));
          good = false;
        } else if (const auto why = interval_problem(*d); !why.empty()) {
          L.error(line_of(*n), "meter.interval", quoted(text) + ": " + why);
          good = false;
        } else {
          m.interval = *d;
        }
      }
    }
    if (auto q = L.string_list(s, "quantities")) {
      if (profile) {
        const auto can = profile->quantities();
        std::set<std::string> seen;
        for (const auto& [name, line] : *q) {
          if (std::find(can.begin(), can.end(), name) == can.end()) {
            L.error(line, "meter.quantities",
                    "profile " + quoted(profile->name) + " cannot deliver " + quoted(name));
            good = false;
          } else if (!seen.insert(name).second) {
            L.error(line, "meter.quantities", quoted(name) + " is listed twice");
            good = false;
          } else {
            m.quantities.push_back(name);
          }
        }
      }
    } else if (t->get("quantities")) {
      good = false;
    }
    if (const toml::node* n = t->get("preamble"); n && protocol && !is_dlt) {
      L.error(line_of(*n), "meter.preamble",
              "only for DL/T 645 meters (FE bytes before a request)");
      good = false;
    } else if (auto v = L.integer(s, "preamble", 0, 8)) {
      m.preamble = static_cast<unsigned>(*v);
    }
    if (const toml::node* n = t->get("password"); n && protocol && !is_dlt) {
      L.error(line_of(*n), "meter.password", "only for DL/T 645 meters (relay control)");
      good = false;
    } else if (auto v = L.string(s, "password")) {
      if (v->size() != 8 || !protocol::dlt645::parse_password(*v)) {
        L.error(line_of(*n), "meter.password",
                "must be 8 hex digits, level then password (\"02123456\")");
        good = false;
      } else {
        m.password = *v;
      }
    }
    if (const toml::node* n = t->get("hourly");
        n && protocol && *protocol != MeterProtocol::dlt645_2007) {
      L.error(line_of(*n), "meter.hourly", "only DL/T 645-2007 meters keep hourly freezes (0504)");
      good = false;
    } else if (auto v = L.boolean(s, "hourly")) {
      m.hourly = *v;
    }
    if (!normal.empty() && bus) {
      const auto key = std::tuple(m.bus, std::string(is_dlt ? "dlt" : "modbus"), normal);
      if (const auto [it, fresh] = taken.emplace(key, std::pair(m.id, line_of(*t->get("address"))));
          !fresh) {
        L.error(line_of(*t->get("address")), "meter.address",
                std::string(is_dlt ? "address " : "unit id ") + quoted(m.address_text) +
                    " is already used on bus " + quoted(m.bus) + " by meter " +
                    quoted(it->second.first) + " (line " + std::to_string(it->second.second) + ")");
        good = false;
      }
    }
    if (good) meters.push_back(std::move(m));
  }
}

}  // namespace

// ---- entry points --------------------------------------------------------------------

LoadResult parse_config(const std::string& toml_text, const std::string& file_name) {
  LoadResult result;
  toml::table root;
  try {
    root = toml::parse(toml_text, file_name);
  } catch (const toml::parse_error& e) {
    result.errors.push_back({file_name, static_cast<int>(e.source().begin.line), "syntax",
                             std::string(e.description())});
    return result;
  }
  Loader L(file_name);
  const Scope top{root, "", 0};
  L.check_keys(top, {"gateway", "buffer", "mqtt", "bus", "meter", "profile", "commands", "polling",
                     "tasks", "area"});
  Config c;
  c.file = file_name;
  load_gateway(L, root, c.gateway);
  load_buffer(L, root, c.buffer);
  load_mqtt(L, root, c.gateway, c.mqtt);
  load_commands(L, root, c.commands);
  load_polling(L, root, c.polling);
  auto profiles = ProfileSet::builtin();
  load_profiles(L, root, *profiles);
  std::map<std::string, int> bus_lines;
  load_buses(L, root, c.buses, bus_lines);
  load_meters(L, root, c.buses, bus_lines, *profiles, c.meters);
  load_tasks(L, root, c.tasks);
  load_area(L, root, c.meters, c.area);
  c.profiles = std::move(profiles);
  result.errors = L.take_errors();
  if (result.errors.empty()) result.config = std::move(c);
  return result;
}

LoadResult load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult r;
    r.errors.push_back({path, 0, "file", std::string("cannot read: ") + std::strerror(errno)});
    return r;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    LoadResult r;
    r.errors.push_back({path, 0, "file", "cannot read: I/O error"});
    return r;
  }
  return parse_config(text.str(), path);
}

}  // namespace meterd::firmware
