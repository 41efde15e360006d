#include "firmware/meterctl/verbs.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <iostream>
#include <limits>
#include <vector>

#include <unistd.h>

#include "buffer/reader.hpp"
#include "firmware/meterctl/client.hpp"
#include "firmware/meterctl/output.hpp"
#include "firmware/uplink.hpp"
#include "protocol/exact_json.hpp"

namespace meterd::meterctl {

namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// Time range defaults when --from / --to are not given: everything a buffer can hold.
constexpr std::int64_t from_default = 0;
constexpr std::int64_t to_default = 253'402'300'800'000;  // 10000-01-01T00:00:00Z

const std::vector<std::string> csv_columns = {"seq",  "meter", "quantity", "value",
                                              "unit", "ts",    "frozen",   "read_ts"};
const std::vector<std::string> csv_event_columns = {"event", "data"};

Colour state_colour(const std::string& state) {
  if (state == "up" || state == "online" || state == "connected" || state == "closed")
    return Colour::green;
  if (state == "down" || state == "offline" || state == "disconnected" || state == "open")
    return Colour::red;
  if (state == "unknown" || state == "starting") return Colour::yellow;
  return Colour::none;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string member_text(const json& row, const char* key) {
  if (!row.contains(key)) return "";
  const json& v = row[key];
  if (auto n = protocol::number_text(v)) return *n;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return protocol::dump(v);
}

// Writes export rows as CSV or JSON lines; the same whether they came from meterd or from the
// buffer file, since both are the row text of docs/control.md.
class RowWriter {
 public:
  RowWriter(bool csv, bool events) : csv_(csv), events_(events) {
    if (!csv_) return;
    std::string header;
    for (const auto& c : csv_columns) header += (header.empty() ? "" : ",") + c;
    if (events_)
      for (const auto& c : csv_event_columns) header += "," + c;
    std::cout << header << "\n";
  }
  void row(std::string_view raw, const json& row) {
    if (!csv_) {
      std::cout << raw << "\n";
      return;
    }
    std::string line;
    for (std::size_t i = 0; i < csv_columns.size(); ++i) {
      if (i > 0) line += ',';
      line += csv_field(member_text(row, csv_columns[i].c_str()));
    }
    if (events_) {
      for (const auto& c : csv_event_columns) line += "," + csv_field(member_text(row, c.c_str()));
    }
    std::cout << line << "\n";
  }

 private:
  bool csv_;
  bool events_;
};

// Scan progress on stderr, redrawn in place; only on a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(std::string bus) : bus_(std::move(bus)), on_(::isatty(STDERR_FILENO) == 1) {}
  ~ProgressBar() { clear(); }
  void update(const json& p) {
    if (!on_) return;
    const double done = p.value("done", 0.0), total = p.value("total", 0.0);
    const int width = 30;
    const int filled = total > 0 ? static_cast<int>(width * std::min(1.0, done / total)) : 0;
    std::cerr << "\rscanning " << bus_ << " [" << std::string(static_cast<std::size_t>(filled), '#')
              << std::string(static_cast<std::size_t>(width - filled), '.') << "] "
              << text_of(p.value("done", json(0))) << "/" << text_of(p.value("total", json(0)))
              << "  found " << text_of(p.value("found", json(0))) << std::flush;
    drawn_ = true;
  }
  void clear() {
    if (drawn_) std::cerr << "\r\033[K" << std::flush;
    drawn_ = false;
  }

 private:
  std::string bus_;
  bool on_;
  bool drawn_ = false;
};

// A found meter's members in a sensible order, then whatever else the daemon sent.
std::vector<std::string> found_columns(const json& found) {
  static const std::vector<std::string> preferred = {"protocol", "address", "unit",    "profile",
                                                     "id",       "serial",  "answered"};
  std::vector<std::string> cols;
  for (const auto& k : preferred)
    for (const auto& f : found)
      if (f.is_object() && f.contains(k)) {
        cols.push_back(k);
        break;
      }
  for (const auto& f : found) {
    if (!f.is_object()) continue;
    for (const auto& [k, v] : f.items())
      if (std::find(cols.begin(), cols.end(), k) == cols.end()) cols.push_back(k);
  }
  return cols;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (auto& c : s)
    if (c == '_') c = ' ';
  return s;
}

std::string percent(const json& share) {
  const auto text = protocol::number_text(share);
  if (!text) return "-";
  // A display figure, not a billing value: a double is fine here.
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", std::strtod(text->c_str(), nullptr) * 100.0);
  return buf;
}

std::string bytes(const json& n) {
  const auto text = protocol::number_text(n);
  if (!text) return "-";
  const double b = std::strtod(text->c_str(), nullptr);
  char buf[32];
  if (b < 1024) {
    std::snprintf(buf, sizeof buf, "%.0f B", b);
  } else if (b < 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024 * 1024));
  }
  return buf;
}

std::string seconds_age(const json& s) {
  const auto text = protocol::number_text(s);
  if (!text) return "-";
  return format_age(std::strtod(text->c_str(), nullptr));
}

std::int64_t time_option(const char* name, const std::string& text, std::int64_t fallback) {
  if (text.empty()) return fallback;
  const auto t = parse_time_option(text);
  if (!t) {
    throw Failure{exit_usage, std::string(name) +
                                  ": expected ISO 8601 with a zone (2026-12-01T08:00:00Z), a "
                                  "date (00:00 UTC) or epoch ms, got '" +
                                  text + "'"};
  }
  return *t;
}

}  // namespace

DaemonVerbs::DaemonVerbs(CLI::App& app) {
  app.add_option("--socket", socket_,
                 "The control socket (default: $METERD_SOCKET, --config's, "
                 "/run/meterd/meterd.sock)");
  app.add_option("--config", config_, "Take the socket from this meterd config")
      ->check(CLI::ExistingFile);
  app.add_option("--timeout", timeout_s_,
                 "Seconds to wait for an answer (streaming verbs: between lines; 0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--json", json_, "The daemon's JSON result (streaming verbs: JSON lines)");

  status_ = app.add_subcommand("status", "The gateway at a glance: buses, meters, buffer, MQTT");
  meters_ =
      app.add_subcommand("meters", "Every meter: state, last success, counters, latest value");
  meters_->add_option("--bus", bus_, "Only this bus");
  meters_->add_flag("--offline", offline_, "Only meters that are offline");
  read_ = app.add_subcommand("read", "Read a meter now, ahead of its schedule");
  read_->add_option("METER", meter_, "Meter id")->required();
  read_->add_option("QUANTITY", quantities_, "Quantities (default: the meter's profile)");
  scan_ = app.add_subcommand("scan", "Find the meters on a bus; prints ready-to-paste config");
  scan_->add_option("BUS", bus_, "Bus name from the config");
  scan_->add_option("--protocol", protocol_, "dlt645 or modbus (default: what the bus speaks)")
      ->check(CLI::IsMember({"dlt645", "modbus"}));
  scan_->add_option("--first", first_, "Modbus: first unit id (default 1)")
      ->check(CLI::Range(1, 247));
  scan_->add_option("--last", last_, "Modbus: last unit id (default 247)")
      ->check(CLI::Range(1, 247));
  backlog_ = app.add_subcommand("backlog", "What the buffer holds and has not sent");
  tail_ = app.add_subcommand("tail", "Follow readings as they are stored (Ctrl-C to stop)");
  tail_->add_option("--meter", meter_, "Only this meter");
  tail_->add_option("--quantity", quantity_, "Only this quantity");
  export_ = app.add_subcommand("export", "Stored rows as CSV or JSON lines");
  export_->add_option("--meter", meter_, "Only this meter (default: all)");
  export_->add_option("--from", from_, "From this time on, inclusive (ISO 8601 or epoch ms)");
  export_->add_option("--to", to_, "Up to this time, exclusive (ISO 8601 or epoch ms)");
  export_->add_option("--format", format_, "csv (default) or jsonl")
      ->check(CLI::IsMember({"csv", "jsonl"}));
  export_->add_flag("--events", events_, "Events too");
  export_
      ->add_option("--data-dir", data_dir_,
                   "Read DIR/buffer.db directly (meterd stopped or not), not through meterd")
      ->check(CLI::ExistingDirectory);
  relay_ = app.add_subcommand("relay", "Trip or close a meter's relay ([commands] relay_control)");
  relay_->add_option("METER", meter_, "Meter id")->required();
  relay_->add_option("ACTION", action_, "trip or close")
      ->required()
      ->check(CLI::IsMember({"trip", "close"}));
  timesync_ = app.add_subcommand("timesync", "Broadcast the time on a bus (default: every bus)");
  timesync_->add_option("BUS", bus_, "Bus name");
  reload_ = app.add_subcommand("reload", "Re-read the config; refused whole if it has an error");
}

bool DaemonVerbs::chosen() const {
  for (const CLI::App* s :
       {status_, meters_, read_, scan_, backlog_, tail_, export_, relay_, timesync_, reload_})
    if (s->parsed()) return true;
  return false;
}

int DaemonVerbs::run() {
  if (status_->parsed()) return status();
  if (meters_->parsed()) return meters();
  if (read_->parsed()) return read();
  if (scan_->parsed()) return scan();
  if (backlog_->parsed()) return backlog();
  if (tail_->parsed()) return tail();
  if (export_->parsed()) return export_rows();
  if (relay_->parsed()) return relay();
  if (timesync_->parsed()) return timesync();
  return reload();
}

namespace {

struct Session {
  Connection connection;
  milliseconds timeout;
};

milliseconds to_ms(double seconds) {
  return milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000.0)));
}

// A non-streaming verb: one request, one result. --json prints the result as sent.
json simple(const std::string& socket, double timeout_s, const json& request, bool print_json) {
  Connection c(socket);
  std::string raw;
  json result = c.request(request, to_ms(timeout_s), false, nullptr, &raw);
  if (print_json) std::cout << raw << "\n";
  return result;
}

}  // namespace

int DaemonVerbs::status() {
  const json r = simple(find_socket(socket_, config_), timeout_s_, {{"verb", "status"}}, json_);
  if (json_) return 0;
  const bool c = stdout_colour();
  const json meters = r.value("meters", json::object());
  const json buffer = r.value("buffer", json::object());
  const json mqtt = r.value("mqtt", json::object());
  const json buses = r.value("buses", json::array());

  bool healthy = true;
  for (const auto& b : buses)
    if (b.value("state", "") != "up") healthy = false;
  if (meters.value("offline", json(0)) != json(0)) healthy = false;
  if (mqtt.value("enabled", false) && mqtt.value("state", "") != "connected") healthy = false;

  std::cout << paint("●", healthy ? Colour::green : Colour::red, c) << " "
            << paint("meterd " + field(r, "version"), Colour::bold, c) << "  gateway "
            << field(r, "gateway") << "  up " << seconds_age(r.value("uptime_s", json()))
            << " (since " << field(r, "started") << ")\n";

  std::vector<std::pair<std::string, std::string>> lines;
  lines.emplace_back("config", field(r, "config_file"));
  {
    std::string m = paint(field(meters, "online") + " online", Colour::green, c) + ", ";
    const std::string off = field(meters, "offline") + " offline";
    m += paint(off, meters.value("offline", json(0)) != json(0) ? Colour::red : Colour::none, c);
    std::string ids;
    for (const auto& id : meters.value("offline_ids", json::array()))
      ids += (ids.empty() ? "" : " ") + text_of(id);
    if (!ids.empty()) m += " (" + ids + ")";
    m += ", " + field(meters, "unknown") + " unknown; " + field(meters, "total") + " in all";
    lines.emplace_back("meters", m);
  }
  {
    std::string b = field(buffer, "readings") + " readings, " + field(buffer, "events") +
                    " events unsent (" + field(buffer, "inflight") + " in flight)";
    if (buffer.contains("oldest_unsent") && !buffer["oldest_unsent"].is_null())
      b += "; oldest " + seconds_age(buffer.value("oldest_unsent_age_s", json())) + " old";
    lines.emplace_back("buffer", b);
  }
  {
    std::string m;
    if (!mqtt.value("enabled", true)) {
      m = "off";
    } else {
      const std::string state = mqtt.value("state", "-");
      m = paint(state, state_colour(state), c) + " to " + field(mqtt, "broker");
      if (mqtt.contains("last_puback") && mqtt["last_puback"].is_string())
        m += "; last PUBACK " + age_of(mqtt["last_puback"].get<std::string>());
      else
        m += "; no PUBACK yet";
      m += "; " + field(mqtt, "publishes") + " published, " + field(mqtt, "acked_rows") +
           " rows acked";
    }
    lines.emplace_back("mqtt", m);
  }
  for (const auto& [k, v] : lines) {
    std::string key = k;
    key.resize(8, ' ');
    std::cout << "  " << key << v << "\n";
  }
  std::cout << "\n";
  Table t({"BUS", "PORT", "STATE", "METERS", "READS OK", "FAILED", "TIMEOUTS", "BAD FRAMES",
           "MISSED", "UTIL", "LAST ERROR"},
          {false, false, false, true, true, true, true, true, true, true, false});
  for (const auto& b : buses) {
    const std::string state = field(b, "state");
    const std::string failed = field(b, "reads_failed");
    t.add({{field(b, "name")},
           {field(b, "port")},
           {state, state_colour(state)},
           {field(b, "meters")},
           {field(b, "reads_ok")},
           {failed, failed != "0" ? Colour::yellow : Colour::none},
           {field(b, "timeouts")},
           {field(b, "bad_frames")},
           {field(b, "missed_slots")},
           {percent(b.value("utilisation", json()))},
           {b.value("last_error", "")}});
  }
  t.print(std::cout, c);
  return 0;
}

int DaemonVerbs::meters() {
  json req = {{"verb", "meters"}};
  if (!bus_.empty()) req["bus"] = bus_;
  if (offline_) req["offline"] = true;
  const json r = simple(find_socket(socket_, config_), timeout_s_, req, json_);
  if (json_) return 0;
  const bool c = stdout_colour();
  const json list = r.value("meters", json::array());
  if (list.empty()) {
    std::cout << (offline_ ? "no meter is offline" : "no meters") << "\n";
    return 0;
  }
  Table t({"ID", "BUS", "PROTOCOL", "ADDRESS", "STATE", "LAST SUCCESS", "OK", "FAILED", "TIMEOUTS",
           "LATEST", "LAST ERROR"},
          {false, false, false, false, false, false, true, true, true, false, false});
  for (const auto& m : list) {
    const std::string state = field(m, "state");
    std::string last = "never";
    if (m.contains("last_success") && m["last_success"].is_string())
      last = age_of(m["last_success"].get<std::string>());
    std::string latest = "-";
    const json l = m.value("latest", json::array());
    if (!l.empty()) {
      latest = field(l[0], "value") + " " + field(l[0], "unit");
      if (l.size() > 1) latest += " (+" + std::to_string(l.size() - 1) + ")";
    }
    t.add({{field(m, "id")},
           {field(m, "bus")},
           {field(m, "protocol")},
           {field(m, "address")},
           {state, state_colour(state)},
           {last},
           {field(m, "successes")},
           {field(m, "failures")},
           {field(m, "timeouts")},
           {latest},
           {m.value("last_error", "")}});
  }
  t.print(std::cout, c);
  return 0;
}

int DaemonVerbs::read() {
  json req = {{"verb", "read"}, {"meter", meter_}};
  if (!quantities_.empty()) req["quantities"] = quantities_;
  const json r = simple(find_socket(socket_, config_), timeout_s_, req, json_);
  const bool complete = r.value("complete", true);
  if (!json_) {
    const bool c = stdout_colour();
    Table t({"QUANTITY", "VALUE", "UNIT", "TIME"}, {false, true, false, false});
    for (const auto& x : r.value("readings", json::array()))
      t.add({{field(x, "quantity")}, {field(x, "value")}, {x.value("unit", "")}, {field(x, "ts")}});
    std::cout << paint(field(r, "meter"), Colour::bold, c) << "\n";
    t.print(std::cout, c);
  }
  if (!complete) {
    std::cout.flush();
    throw Failure{exit_failed, "read: " + meter_ + " did not answer every quantity"};
  }
  return 0;
}

int DaemonVerbs::scan() {
  if (bus_.empty()) throw Failure{exit_usage, "scan: BUS is required (see meterctl scan --help)"};
  json req = {{"verb", "scan"}, {"bus", bus_}};
  if (!protocol_.empty()) req["protocol"] = protocol_;
  if (first_ > 0) req["first"] = first_;
  if (last_ > 0) req["last"] = last_;
  if (first_ > 0 && last_ > 0 && first_ > last_)
    throw Failure{exit_usage, "scan: --first must not be above --last"};
  Connection conn(find_socket(socket_, config_));
  ProgressBar bar(bus_);
  std::string raw;
  const json r = conn.request(
      req, to_ms(timeout_s_), /*idle=*/true,
      [&](const AnswerLine& line) {
        if (line.json.contains("progress")) {
          bar.update(line.json["progress"]);
        } else if (json_ && line.json.contains("data")) {
          bar.clear();
          if (auto d = raw_member(line.raw, "data")) std::cout << *d << "\n" << std::flush;
        }
      },
      &raw);
  bar.clear();
  const json found = r.value("found", json::array());
  if (json_) {
    std::cout << raw << "\n";
  } else {
    const bool c = stdout_colour();
    std::cout << "found " << found.size() << (found.size() == 1 ? " meter" : " meters") << " on "
              << field(r, "bus") << " in "
              << format_age(static_cast<double>(r.value("elapsed_ms", std::int64_t{0})) / 1000.0)
              << "\n";
    if (!found.empty()) {
      const auto cols = found_columns(found);
      std::vector<std::string> heads;
      for (const auto& k : cols) heads.push_back(upper(k));
      Table t(heads);
      for (const auto& f : found) {
        std::vector<Table::Cell> row;
        for (const auto& k : cols) row.push_back({field(f, k.c_str())});
        t.add(std::move(row));
      }
      std::cout << "\n";
      t.print(std::cout, c);
      std::cout << "\n" << paint("# ready to paste into the config:", Colour::dim, c) << "\n";
      std::string config = r.value("config", "");
      if (!config.empty() && config.back() != '\n') config += '\n';
      std::cout << config;
    }
  }
  if (found.empty()) {
    std::cout.flush();
    throw Failure{exit_failed, "scan: no meter answered on " + bus_};
  }
  return 0;
}

int DaemonVerbs::backlog() {
  const json r = simple(find_socket(socket_, config_), timeout_s_, {{"verb", "backlog"}}, json_);
  if (json_) return 0;
  const bool c = stdout_colour();
  std::string oldest = "-";
  if (r.contains("oldest_unsent") && r["oldest_unsent"].is_string())
    oldest = r["oldest_unsent"].get<std::string>() + " (" +
             seconds_age(r.value("oldest_unsent_age_s", json())) + " ago)";
  const std::string mqtt = field(r, "mqtt");
  const std::vector<std::pair<std::string, std::string>> lines = {
      {"readings", field(r, "readings") + " (" + field(r, "inflight") + " in flight)"},
      {"events", field(r, "events")},
      {"oldest unsent", oldest},
      {"database",
       bytes(r.value("db_bytes", json())) + " (WAL " + bytes(r.value("wal_bytes", json())) + ")"},
      {"evicted",
       field(r, "evicted_readings") + " readings, " + field(r, "evicted_events") + " events"},
      {"mqtt", paint(mqtt, state_colour(mqtt), c)},
  };
  for (const auto& [k, v] : lines) {
    std::string key = k + ":";
    key.resize(15, ' ');
    std::cout << key << v << "\n";
  }
  return 0;
}

int DaemonVerbs::tail() {
  json req = {{"verb", "tail"}};
  if (!meter_.empty()) req["meter"] = meter_;
  if (!quantity_.empty()) req["quantity"] = quantity_;
  Connection conn(find_socket(socket_, config_));
  conn.send(req);
  const bool c = stdout_colour();
  std::size_t w_meter = 0, w_quantity = 0, w_value = 0;
  const auto pad = [](std::string s, std::size_t& w, bool right = false) {
    w = std::max(w, display_width(s));
    const std::string fill(w - display_width(s), ' ');
    return right ? fill + s : s + fill;
  };
  for (;;) {
    // No timeout: readings come at the meters' pace. SIGPIPE (tail | head) ends us quietly.
    auto line = conn.read_line(std::nullopt);
    if (!line)
      throw Failure{exit_unreachable,
                    "cannot reach meterd at " + conn.socket() + ": the connection closed"};
    const json& j = line->json;
    if (j.contains("ok")) {
      if (j["ok"] == true) return 0;
      const json e = j.value("error", json::object());
      throw Failure{exit_failed, "tail: " + e.value("code", std::string("error")) + ": " +
                                     e.value("message", std::string())};
    }
    if (j.contains("skipped")) {
      if (json_) {
        std::cout << "{\"skipped\":" << text_of(j["skipped"]) << "}" << std::endl;
      }
      std::cerr << "meterctl: tail: " << text_of(j["skipped"])
                << " rows skipped (read too slowly)\n";
      continue;
    }
    if (!j.contains("data")) continue;
    if (json_) {
      if (auto d = raw_member(line->raw, "data")) std::cout << *d << std::endl;
      continue;
    }
    const json& d = j["data"];
    std::string out =
        paint(field(d, "ts"), Colour::dim, c) + "  " + pad(field(d, "meter"), w_meter) + "  ";
    if (d.contains("event")) {
      out += paint(pad("event " + field(d, "event"), w_quantity), Colour::yellow, c);
      if (d.contains("data")) out += "  " + protocol::dump(d["data"]);
    } else {
      out += pad(field(d, "quantity"), w_quantity) + "  " + pad(field(d, "value"), w_value, true) +
             " " + d.value("unit", "");
      if (d.contains("frozen")) out += "  (frozen " + field(d, "frozen") + ")";
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    std::cout << out << std::endl;
  }
}

int DaemonVerbs::export_rows() {
  const bool csv = !json_ && format_ == "csv";
  const std::int64_t from = time_option("--from", from_, from_default);
  const std::int64_t to = time_option("--to", to_, to_default);
  if (from >= to && !from_.empty() && !to_.empty())
    throw Failure{exit_usage, "export: --from must be before --to"};

  if (!data_dir_.empty()) {
    // Straight from the file: a Reader never writes, so the daemon may even be running.
    const std::string path = data_dir_ + "/buffer.db";
    auto reader = buffer::Reader::open(path);
    if (!reader) throw Failure{exit_failed, "export: " + reader.error().message};
    std::vector<std::string> meters;
    if (!meter_.empty()) {
      meters.push_back(meter_);
    } else {
      auto m = reader->meters();
      if (!m) throw Failure{exit_failed, "export: " + m.error().message};
      meters = std::move(*m);
      if (events_) meters.insert(meters.begin(), "");  // gateway events first
    }
    RowWriter out(csv, events_);
    const auto emit = [&](const std::string& text) { out.row(text, protocol::parse_exact(text)); };
    for (const auto& m : meters) {
      std::vector<buffer::Event> events;
      if (events_) {
        auto n = reader->export_events(m, from, to, [&](const buffer::Event& e) {
          events.push_back(e);
          return true;
        });
        if (!n) throw Failure{exit_failed, "export: " + n.error().message};
      }
      // Readings and events of one meter in seq order, as meterd sends them.
      std::size_t next_event = 0;
      if (!m.empty()) {
        auto n = reader->export_readings(m, from, to, [&](const buffer::Reading& r) {
          while (next_event < events.size() && events[next_event].seq < r.seq)
            emit(firmware::event_row_json(events[next_event++]));
          emit(firmware::reading_json(r));
          return true;
        });
        if (!n) throw Failure{exit_failed, "export: " + n.error().message};
      }
      while (next_event < events.size()) emit(firmware::event_row_json(events[next_event++]));
    }
    std::cout.flush();
    return 0;
  }

  json req = {{"verb", "export"}, {"from", from}, {"to", to}};
  if (!meter_.empty()) req["meter"] = meter_;
  if (events_) req["events"] = true;
  Connection conn(find_socket(socket_, config_));
  RowWriter out(csv, events_);
  conn.request(req, to_ms(timeout_s_), /*idle=*/true, [&](const AnswerLine& line) {
    if (!line.json.contains("data")) return;
    const auto raw = raw_member(line.raw, "data");
    out.row(raw ? *raw : protocol::dump(line.json["data"]), line.json["data"]);
  });
  std::cout.flush();
  return 0;
}

int DaemonVerbs::relay() {
  const json r = simple(find_socket(socket_, config_), timeout_s_,
                        {{"verb", "relay"}, {"meter", meter_}, {"action", action_}}, json_);
  if (json_) return 0;
  const std::string state = field(r, "relay");
  std::cout << field(r, "meter") << ": relay " << paint(state, state_colour(state), stdout_colour())
            << "\n";
  return 0;
}

int DaemonVerbs::timesync() {
  json req = {{"verb", "timesync"}};
  if (!bus_.empty()) req["bus"] = bus_;
  const json r = simple(find_socket(socket_, config_), timeout_s_, req, json_);
  bool all_ok = true;
  for (const auto& b : r.value("buses", json::array()))
    if (!b.value("ok", false)) all_ok = false;
  if (!json_) {
    const bool c = stdout_colour();
    Table t({"BUS", "OK", "TIME SENT"});
    for (const auto& b : r.value("buses", json::array())) {
      const bool ok = b.value("ok", false);
      t.add({{field(b, "bus")},
             {ok ? "yes" : "no", ok ? Colour::green : Colour::red},
             {field(b, "time")}});
    }
    t.print(std::cout, c);
  }
  if (!all_ok) {
    std::cout.flush();
    throw Failure{exit_failed, "timesync: not every bus took the time"};
  }
  return 0;
}

int DaemonVerbs::reload() {
  simple(find_socket(socket_, config_), timeout_s_, {{"verb", "reload"}}, json_);
  if (!json_) std::cout << "reloaded\n";
  return 0;
}

}  // namespace meterd::meterctl
