// meterd against metersim, each figure next to a like-for-like baseline
// measured in the same run (docs/performance.md says how and why):
//   1. bus efficiency at 2400 and 9600 baud 8E1 with wire timing, against a
//      bare libmodbus loop on the same simulated bus (interleaved, medians);
//   2. 16 buses polled at once against the slowest of them polled alone;
//   3. DL/T 645 block reads against the same quantities read DI by DI;
//   4. CPU per 1000 exchanges and resident memory, 32 and 1024 meters;
//   5. CPU per value and memory against collectd's modbus plugin polling an
//      identical fleet at the same interval, both at once.
// Every meterd publishes (QoS 1) to a mosquitto of its own, read back by a
// head-end subscriber there; what it read is counted from what the head-end
// received (and what was still buffered at its stop). Broker and head-end
// are other processes and threads: meterd's CPU and memory stay its own.
// Prints figures and ratios; asserts none. Exit status 1 only when a
// measurement produced no data at all (a broken harness, not a slow daemon).
//
//   bench_meterd [--seconds S] [--reps N] [--sections 12345] [--collectd PATH]
//                [--no-uplink] [--mqtt-toml KEYS] [--smoke]
//   --seconds: the measurement window of a saturated run (default 10; the
//   CPU and memory runs of sections 4 and 5 measure over 3 × S).
//   --no-uplink: meterd without an [mqtt] table (for comparison: the buffer keeps
//   everything). --mqtt-toml: lines added to the [mqtt] table, e.g.
//   'drain_max_per_s = 0'.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <modbus.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "drivers/serial_port.hpp"
#include "firmware/profiles.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/modbus_codec/registers.hpp"
#include "tests/support/bench.hpp"
#include "tests/support/broker.hpp"
#include "tests/support/meterd.hpp"
#include "tests/support/sim_bus.hpp"
#include "tests/support/system.hpp"

namespace fs = std::filesystem;
namespace fw = meterd::firmware;
namespace mb = meterd::protocol::modbus;
namespace dlt = meterd::protocol::dlt645;
using namespace meterd::testing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

using meterd::testing::fmt;
using meterd::testing::median;
using meterd::testing::progress;
using meterd::testing::wall_ms;

// ---- options and small helpers ------------------------------------------------------------

struct Options {
  double seconds = 10;  // window of a saturated run
  unsigned reps = 3;
  bool smoke = false;
  std::string sections = "12345";
  std::string collectd = "/usr/sbin/collectd";
  bool uplink = true;     // --no-uplink: meterd without [mqtt], as before the uplink
  std::string mqtt_toml;  // --mqtt-toml: more keys for the [mqtt] table
  bool has(char s) const { return sections.find(s) != std::string::npos; }
  // Window of the CPU and memory runs (sections 4 and 5).
  double long_window() const { return smoke ? seconds : 3 * seconds; }
};

std::string bin(const char* name) { return std::string(METERD_BIN_DIR) + "/" + name; }

void sleep_s(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

std::string tail(const fs::path& file, std::size_t lines = 8) {
  std::vector<std::string> all;
  std::ifstream in(file);
  for (std::string l; std::getline(in, l);) all.push_back(l);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += "    | " + all[i] + "\n";
  return out;
}

// ---- /proc -------------------------------------------------------------------------------

// utime + stime of the whole process (all its threads), in clock ticks.
long cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(s.substr(close + 2));
  std::string f;
  long utime = 0;
  for (int i = 3; fields >> f; ++i) {  // field 3 is the state, 14 utime, 15 stime
    if (i == 14) utime = std::stol(f);
    if (i == 15) return utime + std::stol(f);
  }
  return -1;
}

// A "key:" line in KiB of /proc/PID/status (VmRSS, VmHWM, RssAnon, RssFile)
// or another /proc/PID file of that form (smaps_rollup: Pss), -1 if absent.
long status_kib(pid_t pid, const std::string& key, const char* file = "status") {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  return -1;
}

double ticks_to_s(long ticks) {
  return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// CPU and memory of one process over a window.
struct Usage {
  double cpu_s = NAN;  // utime + stime within the window
  long rss_kib = -1, hwm_kib = -1;
  long anon_kib = -1, file_kib = -1;  // RSS: heap and stacks / mapped files (code, libraries)
  long pss_kib = -1;                  // RSS with shared pages divided among their users
};

class UsageProbe {
 public:
  explicit UsageProbe(pid_t pid) : pid_(pid), t0_(cpu_ticks(pid)) {}
  Usage take() const {
    Usage u;
    const long t1 = cpu_ticks(pid_);
    if (t0_ >= 0 && t1 >= 0) u.cpu_s = ticks_to_s(t1 - t0_);
    u.rss_kib = status_kib(pid_, "VmRSS");
    u.hwm_kib = status_kib(pid_, "VmHWM");
    u.anon_kib = status_kib(pid_, "RssAnon");
    u.file_kib = status_kib(pid_, "RssFile");
    u.pss_kib = status_kib(pid_, "Pss", "smaps_rollup");
    return u;
  }

 private:
  pid_t pid_;
  long t0_;
};

// ---- metersim fleets ---------------------------------------------------------------------

struct SimMeter {
  std::string id, protocol, model, address;
  unsigned turnaround_ms = 0;  // 0: drawn by metersim from 20..60 ms
};

struct SimBus {
  std::string name;
  unsigned baud = 9600;
  std::string parity = "even";
  std::vector<SimMeter> meters;
};

std::string dlt_address(unsigned n) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%012u", n);
  return buf;
}

// A bus of `count` meters of one kind: "dtsu666" (Modbus, units 1..) or
// "dlt645-2007" (addresses first_id..). Ids are unique across a fleet.
SimBus make_bus(const std::string& name, unsigned baud, const std::string& parity,
                const std::string& kind, unsigned count, unsigned& next_id,
                const std::function<unsigned(unsigned)>& turnaround = {}) {
  SimBus b{name, baud, parity, {}};
  for (unsigned k = 1; k <= count; ++k, ++next_id) {
    SimMeter m;
    m.id = "m" + std::to_string(next_id);
    if (kind == "dlt645-2007") {
      m.protocol = "dlt645-2007";
      m.address = dlt_address(next_id);
    } else {
      m.protocol = "modbus";
      m.model = kind;
      m.address = std::to_string(k);
    }
    if (turnaround) m.turnaround_ms = turnaround(k);
    b.meters.push_back(m);
  }
  return b;
}

std::string sim_toml(const std::vector<SimBus>& buses) {
  std::ostringstream o;
  o << "seed = 7\nwire_timing = true\n";
  for (const auto& b : buses)
    o << "\n[[bus]]\nname = \"" << b.name << "\"\nbaud = " << b.baud << "\nparity = \"" << b.parity
      << "\"\ndata_bits = 8\nstop_bits = 1\n";
  for (const auto& b : buses)
    for (const auto& m : b.meters) {
      o << "\n[[meter]]\nid = \"" << m.id << "\"\nbus = \"" << b.name << "\"\nprotocol = \""
        << m.protocol << "\"\n";
      if (m.protocol == "modbus")
        o << "model = \"" << m.model << "\"\naddress = " << m.address << "\n";
      else
        o << "address = \"" << m.address << "\"\n";
      if (m.turnaround_ms) o << "turnaround_ms = " << m.turnaround_ms << "\n";
    }
  return o.str();
}

// A metersim process with its own run dir; stopped when the object goes.
class Sim {
 public:
  // `toml` non-empty: a sim.toml with that text; `args`: more flags (quick counts).
  explicit Sim(const std::string& toml, std::vector<std::string> args = {}) {
    if (!toml.empty()) {
      std::ofstream(dir_.path / "sim.toml") << toml;
      args.insert(args.end(), {"--config", (dir_.path / "sim.toml").string()});
    }
    args.insert(args.end(), {"--run-dir", (dir_.path / "run").string(), "--endpoints",
                             (dir_.path / "endpoints.json").string()});
    proc_ = std::make_unique<Process>(bin("metersim"), args, dir_.path / "metersim.log");
    if (!wait_for_file(dir_.path / "endpoints.json", 120s))
      throw std::runtime_error("metersim did not start:\n" + tail(dir_.path / "metersim.log"));
    endpoints_ = read_json(dir_.path / "endpoints.json");
  }
  const json& endpoints() const { return endpoints_; }
  const json& bus(const std::string& name) const {
    for (const auto& b : endpoints_["buses"])
      if (b["name"] == name) return b;
    throw std::runtime_error("no bus " + name + " in the fleet");
  }
  json stats() const {
    return control(endpoints_["control"].get<std::string>(), {{"cmd", "stats"}});
  }
  pid_t pid() const { return proc_->pid(); }

 private:
  TempDir dir_;
  std::unique_ptr<Process> proc_;
  json endpoints_;
};

// ---- meterd configs ----------------------------------------------------------------------

struct MeterdSetup {
  std::vector<std::string> buses;              // bus names of the fleet to poll (empty: all)
  std::string interval = "1s";                 // short enough to saturate a bus
  std::map<std::string, std::string> profile;  // protocol ("dlt645-2007") → profile name
  std::vector<std::string> quantities;         // narrow every meter (empty: whole profile)
  std::string extra_toml;                      // [[profile]] tables
};

std::string default_profile(const json& meter) {
  const std::string p = meter["protocol"];
  if (p == "dlt645-2007") return "dlt645-basic";
  if (p == "dlt645-1997") return "dlt645-1997-basic";
  return meter["model"];
}

std::string toml_list(const std::vector<std::string>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", \"" : "\"") + v[i] + "\"";
  return s + "]";
}

// The contract's keys (docs/contracts.md), as metersim --gateway-config
// writes them, for the chosen buses of a fleet.
// mqtt_table: the [mqtt] table ("": none, the uplink off).
std::string meterd_config(const json& endpoints, const MeterdSetup& s, const fs::path& data_dir,
                          const std::string& summary_interval, const std::string& mqtt_table) {
  std::ostringstream o;
  o << "[gateway]\nid = \"bench\"\ndata_dir = \"" << data_dir.string() << "\"\ncontrol_socket = \""
    << (data_dir / "meterd.sock").string() << "\"\n\n"
    << "[polling]\nsummary_interval = " << summary_interval << "\n";
  o << mqtt_table;
  o << s.extra_toml;
  std::vector<const json*> buses;
  for (const auto& b : endpoints["buses"])
    if (s.buses.empty() ||
        std::find(s.buses.begin(), s.buses.end(), b["name"].get<std::string>()) != s.buses.end())
      buses.push_back(&b);
  for (const json* b : buses)
    o << "\n[[bus]]\nname = \"" << (*b)["name"].get<std::string>() << "\"\nport = \""
      << (*b)["path"].get<std::string>() << "\"\nbaud = " << (*b)["baud"] << "\nparity = \""
      << (*b)["parity"].get<std::string>() << "\"\ndata_bits = " << (*b)["data_bits"]
      << "\nstop_bits = " << (*b)["stop_bits"]
      << "\nresponse_timeout_ms = 1000\nbyte_timeout_ms = 500\nretries = 1\n";
  for (const json* b : buses)
    for (const auto& m : (*b)["meters"]) {
      const std::string protocol = m["protocol"];
      const auto p = s.profile.find(protocol);
      o << "\n[[meter]]\nid = \"" << m["id"].get<std::string>() << "\"\nbus = \""
        << (*b)["name"].get<std::string>() << "\"\nprotocol = \"" << protocol << "\"\naddress = \""
        << m["address"].get<std::string>() << "\"\nprofile = \""
        << (p != s.profile.end() ? p->second : default_profile(m)) << "\"\ninterval = \""
        << s.interval << "\"\n";
      if (!s.quantities.empty()) o << "quantities = " << toml_list(s.quantities) << "\n";
    }
  return o.str();
}

// The shortest summary period this meterd accepts, found once with
// --check-config ("2s" wanted; the loader may insist on more, or on an
// integer): the first period is the warm-up, so shorter is cheaper.
std::string summary_interval_for(const std::string& sample_config_with_placeholder) {
  static std::optional<std::string> chosen;
  if (chosen) return *chosen;
  TempDir dir;
  std::string last_output;
  for (const std::string candidate : {"\"2s\"", "2", "\"10s\"", "10"}) {
    std::string text = sample_config_with_placeholder;
    text.replace(text.find("@SUMMARY@"), 9, candidate);
    std::ofstream(dir.path / "check.toml") << text;
    const auto r =
        run_program(bin("meterd"), {"--check-config", (dir.path / "check.toml").string()});
    if (r.status == 0) {
      chosen = candidate;
      if (candidate != "\"2s\"")
        std::printf(
            "  note: meterd refuses summary_interval = \"2s\"; using %s (warm-up = one "
            "period)\n",
            candidate.c_str());
      return *chosen;
    }
    last_output = r.output;
  }
  throw std::runtime_error("meterd --check-config refuses the bench's config:\n" + last_output);
}

// ---- meterd's summary lines --------------------------------------------------------------

struct SummaryLine {
  std::int64_t at_ms = 0;
  std::string bus;
  bool up = false;
  std::uint64_t reads_ok = 0, reads_failed = 0, exchanges = 0, values = 0, timeouts = 0,
                bad_frames = 0, mismatches = 0, exceptions = 0;
  std::uint64_t busy_ms = 0, period_ms = 0, missed = 0, missed_total = 0, queued = 0;
};

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil): no timezone, no C library.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// "2026-12-01T02:06:39.412Z" → ms since the epoch (UTC); -1 if not a stamp.
std::int64_t parse_stamp(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS.mmmZ, fixed width, as meterd writes it.
  if (s.size() < 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
      s[19] != '.' || s[23] != 'Z')
    return -1;
  const auto num = [&](std::size_t at, std::size_t len) -> long {
    long v = 0;
    for (std::size_t i = at; i < at + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return -1;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  const long y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2),
             sec = num(17, 2), ms = num(20, 3);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      sec < 0 || sec > 60 || ms < 0)
    return -1;
  const std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000 + ms;
}

// Daemon::log_summary's line (firmware/daemon.cpp):
//   STAMP info bus NAME: up, reads ok N failed N, exchanges N, values N,
//   timeouts N, bad frames N, mismatches N, exceptions N, busy P% (B of T ms),
//   missed slots N (total N), queued N
// ("down (why)" for "up"). Parsed by hand: std::regex warns under ASan.
std::optional<SummaryLine> parse_summary(const std::string& line) {
  const auto bus = line.find(" bus ");
  const auto counts = line.find(", reads ok ");
  if (bus == std::string::npos || counts == std::string::npos || bus > counts) return std::nullopt;
  const auto colon = line.find(": ", bus + 5);
  if (colon == std::string::npos || colon > counts) return std::nullopt;
  SummaryLine s;
  s.at_ms = parse_stamp(line.substr(0, line.find(' ')));
  s.bus = line.substr(bus + 5, colon - bus - 5);
  s.up = line.compare(colon + 2, 2, "up") == 0;
  unsigned long long v[15] = {};
  double pct = 0;
  const int n = std::sscanf(line.c_str() + counts,
                            ", reads ok %llu failed %llu, exchanges %llu, values %llu, timeouts "
                            "%llu, bad frames %llu, mismatches %llu, exceptions %llu, busy %lf%% "
                            "(%llu of %llu ms), missed slots %llu (total %llu), queued %llu",
                            &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &pct, &v[8],
                            &v[9], &v[10], &v[11], &v[12]);
  if (n != 14 || s.at_ms < 0) return std::nullopt;
  s.reads_ok = v[0], s.reads_failed = v[1], s.exchanges = v[2], s.values = v[3];
  s.timeouts = v[4], s.bad_frames = v[5], s.mismatches = v[6], s.exceptions = v[7];
  s.busy_ms = v[8], s.period_ms = v[9], s.missed = v[10], s.missed_total = v[11];
  s.queued = v[12];
  return s;
}

std::vector<SummaryLine> parse_summaries(const std::string& log) {
  std::vector<SummaryLine> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);)
    if (auto s = parse_summary(line)) out.push_back(*s);
  return out;
}

// ---- the head-end --------------------------------------------------------------------------

// One reading as the head-end received it (or as the buffer still held it at the stop).
struct Received {
  std::int64_t seq = 0;
  std::string meter;
  std::int64_t ts_ms = 0;  // acquisition time ("read_ts" of frozen data, else "ts")
};

// What the head-end saw of one meterd, after meterd stopped.
struct HeadEndTally {
  std::uint64_t reading_publishes = 0, readings = 0, duplicates = 0;  // readings: distinct seqs
  std::uint64_t events = 0, status_messages = 0, other_messages = 0, bad_payloads = 0;
  std::string last_status;         // the last payload on <prefix>/status ("" when none came)
  std::vector<Received> received;  // distinct seqs, ascending
  std::set<std::int64_t> event_seqs;
};

// A head-end on libmosquitto (its own network thread), subscribed with QoS 1 to
// meterd/bench/#. Lighter than tests/support/headend.hpp's HeadEnd, which keeps every
// payload: each readings payload is parsed on arrival into (seq, meter, ts) records.
class HeadEndTap {
 public:
  explicit HeadEndTap(std::uint16_t port, std::string filter = "meterd/bench/#")
      : filter_(std::move(filter)) {
    static std::once_flag once;
    std::call_once(once, [] { mosquitto_lib_init(); });
    static unsigned counter = 0;
    const std::string id =
        "bench-headend-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    mosq_ = mosquitto_new(id.c_str(), true, this);
    if (!mosq_) throw std::runtime_error("head-end: mosquitto_new failed");
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_connect_v5_callback_set(mosq_, &HeadEndTap::on_connect);
    mosquitto_subscribe_v5_callback_set(mosq_, &HeadEndTap::on_subscribe);
    mosquitto_message_v5_callback_set(mosq_, &HeadEndTap::on_message);
    if (mosquitto_connect_bind_v5(mosq_, "127.0.0.1", port, 60, nullptr, nullptr) != 0 ||
        mosquitto_loop_start(mosq_) != 0) {
      mosquitto_destroy(mosq_);
      throw std::runtime_error("head-end: cannot connect to the broker");
    }
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, 10s, [&] { return subscribed_; })) {
      lock.unlock();
      mosquitto_loop_stop(mosq_, true);
      mosquitto_destroy(mosq_);
      throw std::runtime_error("head-end: no SUBACK from the broker");
    }
  }
  ~HeadEndTap() {
    mosquitto_disconnect(mosq_);
    mosquitto_loop_stop(mosq_, false);
    mosquitto_destroy(mosq_);
  }
  HeadEndTap(const HeadEndTap&) = delete;
  HeadEndTap& operator=(const HeadEndTap&) = delete;

  // Waits (at most `timeout`) for meterd's offline status, published at its stop after
  // everything else, then for nothing more to arrive for 300 ms.
  void settle(std::chrono::milliseconds timeout = 5s) {
    const auto until = Clock::now() + timeout;
    std::unique_lock lock(mutex_);
    changed_.wait_until(lock, until,
                        [&] { return tally_.last_status.find("offline") != std::string::npos; });
    for (std::uint64_t seen = messages_; Clock::now() < until; seen = messages_) {
      changed_.wait_for(lock, 300ms, [&] { return messages_ != seen; });
      if (messages_ == seen) break;
    }
  }

  // The tally so far: distinct readings sorted by seq.
  HeadEndTally tally() const {
    std::lock_guard lock(mutex_);
    HeadEndTally t = tally_;
    t.received.clear();
    t.received.reserve(by_seq_.size());
    for (const auto& [seq, r] : by_seq_) t.received.push_back(r);
    t.readings = by_seq_.size();
    return t;
  }

 private:
  static void on_connect(mosquitto* m, void* self_, int rc, int, const mosquitto_property*) {
    if (rc == 0)
      mosquitto_subscribe_v5(m, nullptr, static_cast<HeadEndTap*>(self_)->filter_.c_str(), 1, 0,
                             nullptr);
  }
  static void on_subscribe(mosquitto*, void* self_, int, int, const int*,
                           const mosquitto_property*) {
    auto* self = static_cast<HeadEndTap*>(self_);
    std::lock_guard lock(self->mutex_);
    self->subscribed_ = true;
    self->changed_.notify_all();
  }
  static bool ends_with(std::string_view s, std::string_view tail) {
    return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
  }
  static void on_message(mosquitto*, void* self_, const mosquitto_message* msg,
                         const mosquitto_property*) {
    auto* self = static_cast<HeadEndTap*>(self_);
    const std::string_view topic(msg->topic);
    const std::string_view payload(static_cast<const char*>(msg->payload),
                                   static_cast<std::size_t>(msg->payloadlen));
    std::vector<Received> got;
    std::optional<std::int64_t> event_seq;
    bool bad = false;
    if (ends_with(topic, "/readings") || ends_with(topic, "/events")) {
      // Parsed outside the lock: the network thread only waits on itself.
      const json j = json::parse(payload, nullptr, false);
      try {
        if (ends_with(topic, "/events")) {
          event_seq = j.at("seq").get<std::int64_t>();
        } else {
          for (const auto& x : j.at("readings")) {
            Received r;
            r.seq = x.at("seq").get<std::int64_t>();
            r.meter = x.at("meter").get<std::string>();
            r.ts_ms = parse_stamp(x.contains("read_ts") ? x["read_ts"].get<std::string>()
                                                        : x.at("ts").get<std::string>());
            got.push_back(std::move(r));
          }
        }
      } catch (const std::exception&) {
        bad = true;
      }
    }
    std::lock_guard lock(self->mutex_);
    HeadEndTally& t = self->tally_;
    ++self->messages_;
    if (bad) {
      ++t.bad_payloads;
    } else if (event_seq) {
      ++t.events;
      t.event_seqs.insert(*event_seq);
    } else if (ends_with(topic, "/readings")) {
      ++t.reading_publishes;
      for (auto& r : got)
        if (!self->by_seq_.emplace(r.seq, std::move(r)).second) ++t.duplicates;
    } else if (ends_with(topic, "/status")) {
      ++t.status_messages;
      t.last_status.assign(payload);
    } else {
      ++t.other_messages;
    }
    self->changed_.notify_all();
  }

  std::string filter_;
  mosquitto* mosq_ = nullptr;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool subscribed_ = false;
  std::uint64_t messages_ = 0;
  HeadEndTally tally_;
  std::map<std::int64_t, Received> by_seq_;
};

// The broker each meterd publishes to: quiet (errors and warnings only), a window of 32
// unacknowledged publishes as meterd's inflight_max, no queue limit for the head-end.
BrokerOptions bench_broker_options() {
  BrokerOptions o;
  o.extra_config =
      "log_type none\nlog_type error\nlog_type warning\nmax_inflight_messages 32\n"
      "max_queued_messages 0\n";
  return o;
}

// One bus over the measurement window: the sum of its summary lines after
// the first (the first period holds the start-up), and what the buffer
// stored meanwhile. The summary counts bus time exchange by exchange, and
// reads, exchanges and values read by read, when a read ends.
struct BusWindow {
  unsigned lines = 0;
  std::uint64_t reads_ok = 0, reads_failed = 0, exchanges = 0, values = 0, timeouts = 0,
                bad_frames = 0, mismatches = 0, exceptions = 0;
  std::uint64_t busy_ms = 0, period_ms = 0, missed = 0, missed_total = 0, queued = 0;
  bool down = false;
  unsigned meters = 0;
  std::int64_t first_line_ms = 0, last_line_ms = 0;  // the window's summary lines
  // From the buffer, whose every value carries the time its exchange ended:
  // the last exchange that ended by the first line and the last by the
  // last line. The busy of the lines in between is exactly that span's.
  std::int64_t exchange_before_ms = -1, exchange_last_ms = -1;
  // Meter reads (one buffer batch each) that ended in the window, and the
  // time from the first of them to the last (completion to completion).
  std::size_t db_reads = 0;
  double db_span_ms = 0;

  std::uint64_t reads() const { return reads_ok + reads_failed; }
  // Data to report: reads in the window; a smoke run's windows are too short
  // to be sure of one, so there meterd's summary lines are enough.
  bool has_data(const Options& opt) const { return opt.smoke ? lines > 0 : reads() > 0; }
  // busy / T as the summary lines log it: T runs from line to line, so the
  // idle tail of an exchange still running at a line counts against it.
  double logged_efficiency() const {
    return period_ms ? static_cast<double>(busy_ms) / static_cast<double>(period_ms) : NAN;
  }
  // The same busy over the time its exchanges took (exchange end to exchange end).
  double efficiency() const {
    if (exchange_before_ms < 0 || exchange_last_ms <= exchange_before_ms) return NAN;
    return static_cast<double>(busy_ms) /
           static_cast<double>(exchange_last_ms - exchange_before_ms);
  }
  // Reads completed per second, from the buffer's time stamps.
  double read_rate() const {
    return db_reads >= 2 && db_span_ms > 0 ? 1000.0 * static_cast<double>(db_reads - 1) / db_span_ms
                                           : NAN;
  }
  // Bus time per meter read, ms: bus time per second x seconds per read.
  double busy_per_read_ms() const { return efficiency() / read_rate() * 1000.0; }
  double round_s() const { return meters / read_rate(); }
};

struct MeterdResult {
  std::int64_t from_ms = 0, to_ms = 0;  // the window (first summary line .. the stop)
  std::map<std::string, BusWindow> buses;
  Usage usage;                        // over the window
  std::uint64_t db_values = 0;        // readings read with a time stamp in the window
  std::vector<std::string> problems;  // warnings and errors from the log, first few
  // The uplink: connected (meterd's log), what the head-end received, what the buffer
  // still held at the stop, seqs in neither place.
  struct Uplink {
    bool connected = false;
    unsigned connects = 0, disconnects = 0;
    std::string stop_line;  // meterd's "mqtt: stopped; N rows wait in the buffer", if any
    HeadEndTally headend;
    std::uint64_t left_readings = 0, left_events = 0;  // in the buffer at the stop
    std::uint64_t left_received = 0;                   // of those, received by the head-end too
    std::uint64_t readings = 0;  // distinct readings: received or left in the buffer
    std::int64_t first_seq = 0, last_seq = 0;
    std::uint64_t missing = 0;  // seqs in first..last neither received nor left
  } uplink;
  bool uplink_on = true;
  BusWindow total() const {
    BusWindow t;
    for (const auto& [n, b] : buses) {
      t.reads_ok += b.reads_ok, t.reads_failed += b.reads_failed, t.exchanges += b.exchanges;
      t.values += b.values, t.timeouts += b.timeouts, t.bad_frames += b.bad_frames;
      t.mismatches += b.mismatches, t.exceptions += b.exceptions, t.busy_ms += b.busy_ms;
      t.missed += b.missed, t.missed_total += b.missed_total, t.queued += b.queued;
      t.meters += b.meters, t.down = t.down || b.down;
    }
    return t;
  }
};

// A meterd process polling (part of) a fleet. warm_up() waits for every
// bus's first summary line; finish() stops it (its stop summary closes the
// window), reads its log and buffer.
class MeterdProc {
 public:
  MeterdProc(const json& endpoints, const MeterdSetup& setup, const Options& opt) : opt_(opt) {
    std::string mqtt;
    if (opt.uplink) {
      broker_ = std::make_unique<Broker>(bench_broker_options());
      headend_ = std::make_unique<HeadEndTap>(broker_->port());
      mqtt = "\n[mqtt]\nhost = \"127.0.0.1\"\nport = " + std::to_string(broker_->port()) +
             "\ntopic_prefix = \"meterd/bench\"\n" + opt.mqtt_toml + "\n";
    }
    const auto data = dir_.path / "data";
    const std::string summary =
        summary_interval_for(meterd_config(endpoints, setup, data, "@SUMMARY@", mqtt));
    const std::string text = meterd_config(endpoints, setup, data, summary, mqtt);
    std::ofstream(dir_.path / "meterd.toml") << text;
    for (const auto& b : endpoints["buses"])
      if (setup.buses.empty() || std::find(setup.buses.begin(), setup.buses.end(),
                                           b["name"].get<std::string>()) != setup.buses.end()) {
        bus_meters_[b["name"]] = static_cast<unsigned>(b["meters"].size());
        for (const auto& m : b["meters"]) meter_bus_[m["id"]] = b["name"];
      }
    proc_ = std::make_unique<Meterd>(dir_.path / "meterd.toml", data, dir_.path / "meterd.log");
  }

  pid_t pid() const { return proc_->proc->pid(); }

  // Smoke runs take the whole run as the window (the first summary may not
  // come within them); real runs wait out the first summary period.
  bool warm_up() {
    if (opt_.smoke) {
      sleep_s(0.5);
      from_ms_ = wall_ms();
    } else {
      const auto until = Clock::now() + 60s;
      for (;;) {
        std::set<std::string> seen;
        std::int64_t last = 0;
        for (const auto& s : parse_summaries(proc_->log_text())) {
          seen.insert(s.bus);
          last = std::max(last, s.at_ms);
        }
        if (seen.size() >= bus_meters_.size()) {
          from_ms_ = last;
          break;
        }
        if (!proc_->proc->running() || Clock::now() > until) return false;
        std::this_thread::sleep_for(50ms);
      }
    }
    probe_ = std::make_unique<UsageProbe>(pid());
    return true;
  }

  // Opens the window now (CPU and stored values counted from here).
  void restart_window() {
    from_ms_ = wall_ms();
    probe_ = std::make_unique<UsageProbe>(pid());
  }

  MeterdResult finish() {
    MeterdResult r;
    r.uplink_on = opt_.uplink;
    r.from_ms = from_ms_;
    if (probe_) r.usage = probe_->take();
    r.to_ms = wall_ms();
    proc_->proc->stop(SIGTERM, 20s);
    const std::string log = proc_->log_text();
    std::map<std::string, unsigned> seen;
    for (const auto& s : parse_summaries(log)) {
      BusWindow& b = r.buses[s.bus];
      if (!opt_.smoke && seen[s.bus]++ == 0) {  // the warm-up period
        b.first_line_ms = s.at_ms;
        continue;
      }
      if (s.at_ms < from_ms_ - 5) {
        b.first_line_ms = s.at_ms;
        continue;
      }
      if (opt_.smoke && b.lines == 0 && b.first_line_ms == 0) b.first_line_ms = from_ms_;
      b.last_line_ms = s.at_ms;
      ++b.lines;
      b.reads_ok += s.reads_ok, b.reads_failed += s.reads_failed, b.exchanges += s.exchanges;
      b.values += s.values, b.timeouts += s.timeouts, b.bad_frames += s.bad_frames;
      b.mismatches += s.mismatches, b.exceptions += s.exceptions, b.busy_ms += s.busy_ms;
      b.period_ms += s.period_ms, b.missed += s.missed;
      b.missed_total = s.missed_total, b.queued = s.queued;
      b.down = b.down || !s.up;
    }
    for (const auto& [name, n] : bus_meters_) r.buses[name].meters = n;
    std::istringstream in(log);
    for (std::string line; std::getline(in, line) && r.problems.size() < 6;)
      if (line.find(" warning ") != std::string::npos ||
          line.find(" error ") != std::string::npos || line.find(" critical ") != std::string::npos)
        r.problems.push_back(line);
    std::istringstream again(log);
    for (std::string line; std::getline(again, line);) {
      if (line.find(" mqtt: connected to ") != std::string::npos) {
        r.uplink.connected = true;
        ++r.uplink.connects;
      }
      if (line.find(" mqtt: disconnected") != std::string::npos) ++r.uplink.disconnects;
      if (line.find(" mqtt: stopped; ") != std::string::npos)
        r.uplink.stop_line = line.substr(line.find("mqtt: "));
    }
    if (headend_) headend_->settle();
    read_buffer(r);
    return r;
  }

  std::string log_file() const { return proc_->log.string(); }

 private:
  // Groups the readings meterd read into meter reads (one buffer batch per read:
  // consecutive seqs of one meter), each ending with its last value's time
  // stamp, and finds each bus's exchange ends around its window's lines. The
  // readings are those the head-end received, and those still in the buffer
  // at the stop (not yet published or acknowledged), by seq.
  void read_buffer(MeterdResult& r) {
    auto& u = r.uplink;
    if (headend_) u.headend = headend_->tally();
    std::map<std::int64_t, Received> by_seq;
    for (auto& x : u.headend.received) by_seq.emplace(x.seq, std::move(x));
    u.headend.received.clear();
    std::set<std::int64_t> seqs(u.headend.event_seqs.begin(), u.headend.event_seqs.end());
    for (const auto& x : proc_->readings()) {
      ++u.left_readings;
      if (!by_seq.emplace(x.seq, Received{x.seq, x.meter, x.ts_ms}).second) ++u.left_received;
    }
    for (const auto& e : proc_->events()) {
      ++u.left_events;
      seqs.insert(e.seq);
    }
    std::vector<Received> readings;
    readings.reserve(by_seq.size());
    for (auto& [seq, x] : by_seq) {
      seqs.insert(seq);
      readings.push_back(std::move(x));
    }
    u.readings = readings.size();
    if (!seqs.empty()) {
      u.first_seq = *seqs.begin(), u.last_seq = *seqs.rbegin();
      u.missing = static_cast<std::uint64_t>(u.last_seq - u.first_seq + 1) - seqs.size();
    }
    struct Done {
      std::string bus;
      std::int64_t at = 0;
    };
    std::vector<Done> done;
    std::string meter;
    std::int64_t prev_seq = -2;
    for (const auto& x : readings) {
      if (x.ts_ms >= r.from_ms && x.ts_ms <= r.to_ms) ++r.db_values;
      if (x.meter != meter || x.seq != prev_seq + 1) {
        done.push_back({meter_bus_[x.meter], x.ts_ms});
        meter = x.meter;
      }
      done.back().at = std::max(done.back().at, x.ts_ms);
      prev_seq = x.seq;
      BusWindow& b = r.buses[meter_bus_[x.meter]];
      if (b.lines == 0) continue;
      if (x.ts_ms <= b.first_line_ms)
        b.exchange_before_ms = std::max(b.exchange_before_ms, x.ts_ms);
      if (x.ts_ms <= b.last_line_ms) b.exchange_last_ms = std::max(b.exchange_last_ms, x.ts_ms);
    }
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> span;
    for (const auto& d : done) {
      BusWindow& b = r.buses[d.bus];
      if (b.lines == 0 || d.at <= b.first_line_ms || d.at > b.last_line_ms) continue;
      auto& [first, last] = span[d.bus];
      if (b.db_reads++ == 0) first = d.at;
      last = std::max(last, d.at);
    }
    for (auto& [bus, s] : span) r.buses[bus].db_span_ms = static_cast<double>(s.second - s.first);
  }

  const Options& opt_;
  TempDir dir_;
  // Destroyed after meterd (members go in reverse order): meterd's last publishes and its
  // offline status reach them.
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<HeadEndTap> headend_;
  std::unique_ptr<Meterd> proc_;
  std::map<std::string, unsigned> bus_meters_;
  std::map<std::string, std::string> meter_bus_;
  std::int64_t from_ms_ = 0;
  std::unique_ptr<UsageProbe> probe_;
};

// A saturation run: start, warm up, measure for `window` seconds, stop.
MeterdResult run_meterd(const Sim& sim, const MeterdSetup& setup, const Options& opt,
                        double window) {
  MeterdProc p(sim.endpoints(), setup, opt);
  if (!p.warm_up())
    throw std::runtime_error("meterd logged no summary line:\n" + tail(p.log_file()));
  sleep_s(window);
  return p.finish();
}

// The uplink in a few words, for the figures' table.
std::string uplink_note(const MeterdResult& r) {
  const auto& u = r.uplink;
  if (!r.uplink_on) return "uplink off (--no-uplink)";
  return std::string(u.connected ? "uplink connected" : "uplink NOT CONNECTED") + ", " +
         std::to_string(u.headend.reading_publishes) + " publishes, " +
         std::to_string(u.left_readings) + " left in the buffer";
}

// meterd's warnings and errors, and what its uplink delivered.
void print_problems(const MeterdResult& r) {
  for (const auto& p : r.problems) std::printf("    log: %s\n", p.c_str());
  const auto& u = r.uplink;
  const auto n = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  if (!r.uplink_on) {
    std::printf("    uplink: off (--no-uplink); %llu readings stored\n", n(u.readings));
    return;
  }
  std::printf(
      "    uplink: %s (%u connect%s, %u disconnect%s); the head-end received %llu readings in "
      "%llu publishes (%llu duplicates), %llu events, status %s\n",
      u.connected ? "connected" : "NOT CONNECTED", u.connects, u.connects == 1 ? "" : "s",
      u.disconnects, u.disconnects == 1 ? "" : "s", n(u.headend.readings),
      n(u.headend.reading_publishes), n(u.headend.duplicates), n(u.headend.events),
      u.headend.last_status.empty() ? "none" : u.headend.last_status.c_str());
  std::printf(
      "    uplink: meterd stored %llu readings (seqs %lld..%lld, %llu in neither place): %llu "
      "received, %llu still in the buffer at the stop (%llu of them received too), %llu "
      "events left%s%s\n",
      n(u.readings), static_cast<long long>(u.first_seq), static_cast<long long>(u.last_seq),
      n(u.missing), n(u.headend.readings), n(u.left_readings), n(u.left_received), n(u.left_events),
      u.stop_line.empty() ? "" : "; ", u.stop_line.c_str());
  if (u.headend.bad_payloads)
    std::printf("    uplink: %llu payloads the head-end could not parse\n",
                n(u.headend.bad_payloads));
}

// ---- the bare libmodbus baseline ---------------------------------------------------------

struct BaselineResult {
  double efficiency = NAN;
  double rate = NAN;  // exchanges per second
  std::uint64_t exchanges = 0, failures = 0;
  double exchange_ms = NAN;  // mean, send → last byte
  bool parity_refused = false;
};

void sleep_until(Clock::time_point t) {
  const auto ns = t.time_since_epoch();
  timespec ts{};
  ts.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(ns).count();
  ts.tv_nsec = static_cast<long>((ns - std::chrono::seconds(ts.tv_sec)).count());
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// What the best hand-written master does on this bus: libmodbus on a
// descriptor opened by drivers::open_serial (modbus_set_socket, no
// modbus_connect), one 2-register read per meter in turn, the next request
// exactly 3.5 characters after the last byte received. Efficiency =
// Σ(send → last byte + t3.5) / wall time.
BaselineResult modbus_baseline(const json& bus, std::uint16_t address, double seconds) {
  BaselineResult r;
  namespace drv = meterd::drivers;
  auto port = meterd::testing::open_sim_bus(bus);
  r.parity_refused = port.parity_refused;
  const drv::LineSettings& line = port.settings;
  drv::Fd& fd = port.fd;
  const std::string path = bus["path"];
  const char parity = line.parity == drv::Parity::even  ? 'E'
                      : line.parity == drv::Parity::odd ? 'O'
                                                        : 'N';
  modbus_t* ctx =
      modbus_new_rtu(path.c_str(), static_cast<int>(line.baud), parity,
                     static_cast<int>(line.data_bits), static_cast<int>(line.stop_bits));
  if (ctx == nullptr) throw std::runtime_error("modbus_new_rtu failed");
  modbus_set_socket(ctx, fd.get());
  modbus_set_response_timeout(ctx, 1, 0);
  const auto t35 =
      std::chrono::microseconds(line.baud > 19200 ? 1750 : (line.char_time_us() * 7 + 1) / 2);
  std::vector<int> units;
  for (const auto& m : bus["meters"])
    if (m["protocol"] == "modbus") units.push_back(std::stoi(m["address"].get<std::string>()));
  if (units.empty()) throw std::runtime_error("no Modbus meter on bus " + bus["name"].dump());

  std::uint16_t regs[2];
  Clock::duration busy{};
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  auto next = start;
  for (std::size_t i = 0; Clock::now() < end; ++i) {
    sleep_until(next);
    modbus_set_slave(ctx, units[i % units.size()]);
    const auto sent = Clock::now();
    const int n = modbus_read_registers(ctx, address, 2, regs);
    const auto last = Clock::now();
    if (n == 2) {
      ++r.exchanges;
      busy += (last - sent) + t35;
    } else {
      ++r.failures;
    }
    next = last + t35;
  }
  // The wall time ends with the last exchange's silence, as it began with
  // the first request.
  const auto wall = next - start;
  modbus_free(ctx);  // the descriptor stays fd's
  const double wall_s = std::chrono::duration<double>(wall).count();
  r.efficiency = std::chrono::duration<double>(busy).count() / wall_s;
  r.rate = static_cast<double>(r.exchanges) / wall_s;
  if (r.exchanges)
    r.exchange_ms = (std::chrono::duration<double, std::milli>(busy).count() -
                     static_cast<double>(r.exchanges) * t35.count() / 1000.0) /
                    static_cast<double>(r.exchanges);
  return r;
}

// ---- profiles the bench shares with meterd -----------------------------------------------

// The registers meterd's built-in dtsu666 profile reads (what collectd is told to read).
std::vector<const mb::Register*> dtsu666_registers() {
  static const auto set = fw::ProfileSet::builtin();  // the registers point into its models
  const fw::Profile* p = set->find("dtsu666");
  if (p == nullptr) throw std::runtime_error("meterd has no dtsu666 profile");
  return p->registers;
}

// The single DIs behind dlt645-basic's reads: each block's fallback singles,
// and the reads that are single DIs already.
std::vector<std::string> dlt645_basic_singles() {
  const auto set = fw::ProfileSet::builtin();
  const fw::Profile* p = set->find("dlt645-basic");
  if (p == nullptr) throw std::runtime_error("meterd has no dlt645-basic profile");
  std::vector<std::string> out;
  for (const auto& read : p->dlt_reads) {
    if (read.singles.empty()) out.push_back(dlt::di_to_string(dlt::Version::v2007, read.item.di));
    for (const auto& s : read.singles) out.push_back(dlt::di_to_string(dlt::Version::v2007, s.di));
  }
  return out;
}

// ---- the figures table -------------------------------------------------------------------

struct Figure {
  std::string what, value, goal;
};
std::vector<Figure> figures;

void figure(std::string what, std::string value, std::string goal = "") {
  figures.push_back({std::move(what), std::move(value), std::move(goal)});
}

std::string verdict(bool met, const std::string& miss) { return met ? "met" : "MISSED " + miss; }

// ---- 1. bus efficiency -------------------------------------------------------------------

bool section_efficiency(const Options& opt) {
  std::printf("\n1. Bus efficiency, 8E1, wire timing, bus saturated (interval 1s)\n");
  std::printf(
      "   bus time used (exchanges + required silences) / wall time; %u runs each,\n"
      "   interleaved, medians; meterd: busy from the summary lines over the time its\n"
      "   exchanges took (their ends are stamped on the stored values); in brackets\n"
      "   busy/T as the summary lines log it (line to line)\n",
      opt.reps);
  const std::vector<unsigned> bauds =
      opt.smoke ? std::vector<unsigned>{9600} : std::vector<unsigned>{2400, 9600};
  // The Modbus bus carries enough meters that one 2-register read of each
  // takes longer than the shortest interval (1s) at 9600 too: saturated.
  const unsigned nmb = opt.smoke ? 2 : 32, ndl = opt.smoke ? 1 : 8;
  struct Row {
    std::vector<double> base, base_rate, mbus, mbus_logged, mbus_rate, dlt, dlt_logged;
    bool parity_refused = false;
  };
  std::map<unsigned, Row> rows;
  bool data = true;
  for (const unsigned baud : bauds) {
    unsigned id = 1;
    const std::vector<SimBus> fleet{make_bus("mb", baud, "even", "dtsu666", nmb, id),
                                    make_bus("dl", baud, "even", "dlt645-2007", ndl, id)};
    Sim sim(sim_toml(fleet));
    Row& row = rows[baud];
    MeterdSetup modbus;
    modbus.buses = {"mb"};
    modbus.quantities = {"voltage.l1"};  // the baseline's read: 2 registers at 0x2006
    MeterdSetup dl;
    dl.buses = {"dl"};
    for (unsigned rep = 1; rep <= opt.reps; ++rep) {
      progress(std::to_string(baud) + " baud, run " + std::to_string(rep) + ": libmodbus loop");
      const auto b = modbus_baseline(sim.bus("mb"), 0x2006, opt.seconds);
      row.base.push_back(b.efficiency);
      row.base_rate.push_back(b.rate);
      row.parity_refused = row.parity_refused || b.parity_refused;
      if (b.failures)
        std::printf("   baseline: %llu failed exchanges\n",
                    static_cast<unsigned long long>(b.failures));
      progress(std::to_string(baud) + " baud, run " + std::to_string(rep) +
               ": meterd, DTSU666 voltage.l1");
      const auto m = run_meterd(sim, modbus, opt, opt.seconds);
      const BusWindow& mw = m.buses.at("mb");
      row.mbus.push_back(mw.efficiency());
      row.mbus_logged.push_back(mw.logged_efficiency());
      row.mbus_rate.push_back(mw.read_rate());
      print_problems(m);
      progress(std::to_string(baud) + " baud, run " + std::to_string(rep) +
               ": meterd, DL/T 645 dlt645-basic");
      const auto d = run_meterd(sim, dl, opt, opt.seconds);
      const BusWindow& dw = d.buses.at("dl");
      row.dlt.push_back(dw.efficiency());
      row.dlt_logged.push_back(dw.logged_efficiency());
      print_problems(d);
      if (!mw.has_data(opt) || !dw.has_data(opt) || b.exchanges == 0) data = false;
      if (mw.reads_failed || dw.reads_failed)
        std::printf("   meterd: failed reads: DTSU666 %llu, DL/T %llu\n",
                    static_cast<unsigned long long>(mw.reads_failed),
                    static_cast<unsigned long long>(dw.reads_failed));
    }
  }
  std::printf("   %-44s", "");
  for (const unsigned baud : bauds) std::printf(" %19u baud", baud);
  std::printf("\n");
  const auto line = [&](const char* label, const std::function<std::string(const Row&)>& cell) {
    std::printf("   %-44s", label);
    for (const unsigned baud : bauds) std::printf(" %24s", cell(rows[baud]).c_str());
    std::printf("\n");
  };
  const std::string mbn = std::to_string(nmb), dln = std::to_string(ndl);
  line(("bare libmodbus loop, " + mbn + " x DTSU666, 2 registers").c_str(),
       [](const Row& r) { return fmt("%.4f", median(r.base)); });
  line("meterd, same bus, same read (voltage.l1)", [](const Row& r) {
    return fmt("%.4f", median(r.mbus)) + " (" + fmt("%.4f", median(r.mbus_logged)) + ")";
  });
  line(("meterd, " + dln + " x DL/T 645-2007, dlt645-basic").c_str(), [](const Row& r) {
    return fmt("%.4f", median(r.dlt)) + " (" + fmt("%.4f", median(r.dlt_logged)) + ")";
  });
  line("ratio meterd Modbus / libmodbus loop",
       [](const Row& r) { return fmt("%.4f", median(r.mbus) / median(r.base)); });
  line("exchanges/s: libmodbus loop",
       [](const Row& r) { return fmt("%.2f", median(r.base_rate)); });
  line("exchanges/s: meterd (same read)",
       [](const Row& r) { return fmt("%.2f", median(r.mbus_rate)); });
  line("rate ratio meterd / libmodbus loop",
       [](const Row& r) { return fmt("%.4f", median(r.mbus_rate) / median(r.base_rate)); });
  for (const unsigned baud : bauds) {
    const Row& r = rows[baud];
    if (r.parity_refused)
      std::printf(
          "   note: open_serial refused even parity on the pty; the loop opened it 8N1 "
          "(wire timing stays 8E1)\n");
    const std::string b = std::to_string(baud);
    const double mm = median(r.mbus), dd = median(r.dlt), base = median(r.base);
    figure("1. efficiency at " + b + ": libmodbus loop (baseline)", fmt("%.4f", base));
    figure("1. efficiency at " + b + ": meterd Modbus (DTSU666)", fmt("%.4f", mm),
           ">= 0.97: " + verdict(mm >= 0.97, "by " + fmt("%.4f", 0.97 - mm)));
    figure("1. efficiency at " + b + ": meterd DL/T 645 (dlt645-basic)", fmt("%.4f", dd),
           ">= 0.97: " + verdict(dd >= 0.97, "by " + fmt("%.4f", 0.97 - dd)));
    figure("1. ratio meterd Modbus / baseline at " + b, fmt("%.4f", mm / base));
    figure("1. exchange rate ratio meterd / baseline at " + b,
           fmt("%.4f", median(r.mbus_rate) / median(r.base_rate)), "same meters, same read");
  }
  return data;
}

// ---- 2. 16 buses at once vs the slowest alone ---------------------------------------------

bool section_parallel(const Options& opt) {
  const unsigned nbus = opt.smoke ? 2 : 16, per = opt.smoke ? 2 : 8;
  std::printf(
      "\n2. %u buses x %u DL/T 645-2007 meters (dlt645-basic, 9600 8E1, interval 1s) "
      "at once vs the slowest bus alone\n",
      nbus, per);
  std::printf(
      "   round time = meters / reads per second (stored time stamps), bus saturated;\n"
      "   every bus has the same turnarounds (20 + 5k ms for its k-th meter)\n");
  std::vector<SimBus> fleet;
  unsigned id = 1;
  for (unsigned b = 1; b <= nbus; ++b)
    fleet.push_back(make_bus("rs485-" + std::to_string(b), 9600, "even", "dlt645-2007", per, id,
                             [](unsigned k) { return 20 + 5 * k; }));
  Sim sim(sim_toml(fleet));
  progress(std::to_string(nbus) + " buses at once");
  MeterdSetup all;
  const auto many = run_meterd(sim, all, opt, opt.seconds);
  print_problems(many);
  std::string slowest;
  double worst = 0, best = 1e18;
  for (const auto& [name, b] : many.buses) {
    const double r = b.round_s();
    if (std::isnan(r)) continue;
    if (r > worst) worst = r, slowest = name;
    best = std::min(best, r);
  }
  if (slowest.empty()) {  // no bus completed two reads (a smoke run): take any with data
    for (const auto& [name, b] : many.buses)
      if (b.has_data(opt)) {
        slowest = name;
        break;
      }
    if (slowest.empty()) return false;
  }
  progress(slowest + " alone");
  MeterdSetup one;
  one.buses = {slowest};
  const auto alone = run_meterd(sim, one, opt, opt.seconds);
  print_problems(alone);
  const BusWindow& a = alone.buses.at(slowest);
  const BusWindow& m = many.buses.at(slowest);
  const double ratio = worst / a.round_s();
  std::printf("   %-44s %14s %14s\n", "", "all buses", "alone");
  std::printf("   %-44s %14.3f %14.3f\n", ("round time of " + slowest + ", s").c_str(), worst,
              a.round_s());
  std::printf("   %-44s %14.3f %14s\n", "round time of the fastest bus, s", best, "");
  std::printf("   %-44s %14.1f %14.1f\n", ("bus time per read on " + slowest + ", ms").c_str(),
              m.busy_per_read_ms(), a.busy_per_read_ms());
  std::printf("   %-44s %14.4f %14.4f\n", ("efficiency of " + slowest).c_str(), m.efficiency(),
              a.efficiency());
  std::printf("   %-44s %14.3f\n", "ratio (goal <= 1.1)", ratio);
  const BusWindow t = many.total();
  std::printf("   all buses: reads ok %llu failed %llu, timeouts %llu, CPU %.2f s over %.1f s\n",
              static_cast<unsigned long long>(t.reads_ok),
              static_cast<unsigned long long>(t.reads_failed),
              static_cast<unsigned long long>(t.timeouts), many.usage.cpu_s,
              static_cast<double>(many.to_ms - many.from_ms) / 1000.0);
  figure("2. round time, slowest of " + std::to_string(nbus) + " buses x " + std::to_string(per) +
             " meters, s",
         fmt("%.3f", worst));
  figure("2. round time, that bus alone, s", fmt("%.3f", a.round_s()));
  figure("2. ratio " + std::to_string(nbus) + " buses / alone", fmt("%.3f", ratio),
         "<= 1.1: " + verdict(ratio <= 1.1, "by " + fmt("%.3f", ratio - 1.1)));
  return a.has_data(opt) && m.has_data(opt);
}

// ---- 3. block reads vs single DIs ---------------------------------------------------------

bool section_blocks(const Options& opt) {
  const unsigned n = opt.smoke ? 1 : 8;
  const auto singles = dlt645_basic_singles();
  std::printf(
      "\n3. DL/T 645-2007 block reads (dlt645-basic) vs the same quantities DI by DI "
      "(%zu single DIs), %u meters, 9600 8E1, saturated\n",
      singles.size(), n);
  unsigned id = 1;
  Sim sim(sim_toml({make_bus("dl", 9600, "even", "dlt645-2007", n, id)}));
  MeterdSetup blocks;
  MeterdSetup single;
  single.profile["dlt645-2007"] = "dlt645-singles";
  single.extra_toml =
      "\n[[profile]]\nname = \"dlt645-singles\"\nprotocol = \"dlt645-2007\"\n"
      "dis = " +
      toml_list(singles) + "\n";
  // A smoke run still needs one whole DI-by-DI read (about 3 s at 9600).
  const double window = opt.smoke ? std::max(opt.seconds, 4.5) : opt.seconds;
  progress("block reads");
  const auto b = run_meterd(sim, blocks, opt, window);
  print_problems(b);
  progress("single DIs");
  const auto s = run_meterd(sim, single, opt, window);
  print_problems(s);
  const BusWindow& bw = b.buses.at("dl");
  const BusWindow& sw = s.buses.at("dl");
  const auto per = [](std::uint64_t x, std::uint64_t reads) {
    return reads ? static_cast<double>(x) / static_cast<double>(reads) : NAN;
  };
  std::printf("   %-44s %14s %14s %10s\n", "", "blocks", "single DIs", "ratio");
  std::printf("   %-44s %14.1f %14.1f %10.2f\n", "bus time per meter read, ms",
              bw.busy_per_read_ms(), sw.busy_per_read_ms(),
              sw.busy_per_read_ms() / bw.busy_per_read_ms());
  std::printf("   %-44s %14.1f %14.1f\n", "exchanges per read", per(bw.exchanges, bw.reads()),
              per(sw.exchanges, sw.reads()));
  std::printf("   %-44s %14.1f %14.1f\n", "values per read", per(bw.values, bw.reads()),
              per(sw.values, sw.reads()));
  std::printf("   %-44s %14.3f %14.3f\n",
              ("round time (" + std::to_string(n) + " meters), s").c_str(), bw.round_s(),
              sw.round_s());
  figure("3. bus time per DL/T read, blocks, ms", fmt("%.1f", bw.busy_per_read_ms()));
  figure("3. bus time per DL/T read, single DIs, ms", fmt("%.1f", sw.busy_per_read_ms()));
  figure("3. ratio single DIs / blocks",
         fmt("%.2f", sw.busy_per_read_ms() / bw.busy_per_read_ms()));
  return bw.has_data(opt) && sw.has_data(opt);
}

// ---- 4. CPU and memory --------------------------------------------------------------------

struct Scale {
  std::string label;
  unsigned d7, d9, rtu, buses;
  unsigned meters() const { return d7 + d9 + rtu; }
};

double mib(long kib) { return kib < 0 ? NAN : static_cast<double>(kib) / 1024.0; }

bool section_resources(const Options& opt) {
  std::vector<Scale> scales{{"32 meters, 4 buses", 20, 4, 8, 4}};
  if (opt.smoke)
    scales = {{"8 meters, 2 buses", 5, 1, 2, 2}};
  else
    scales.push_back({"1024 meters, 16 buses", 640, 128, 256, 16});
  const double window = opt.long_window();
  const unsigned interval = opt.smoke ? 1 : 10;
  std::printf(
      "\n4. CPU and memory of meterd, interval %us, 9600 8E1 (5/8 DL/T 645-2007, 1/8 "
      "-1997, 1/4 Modbus RTU: SDM630, SDM120, DTSU666, generic), %.0f s window\n",
      interval, window);
  std::printf(
      "   CPU: utime + stime over the window (/proc/PID/stat); memory at its end "
      "(/proc/PID/status, smaps_rollup), MiB; meterd publishes every reading to a local "
      "mosquitto (QoS 1, [mqtt] defaults), whose CPU and memory, and the head-end's, are "
      "not meterd's\n");
  bool data = true;
  std::printf("   %-22s %9s %7s %9s %8s %7s %7s %7s %7s %7s %7s %7s\n", "", "exchanges", "CPU s",
              "CPU s/1k", "reads/s", "VmRSS", "VmHWM", "anon", "file", "Pss", "missed", "queued");
  for (const auto& sc : scales) {
    progress(sc.label);
    Sim sim("", {"--dlt645-2007", std::to_string(sc.d7), "--dlt645-1997", std::to_string(sc.d9),
                 "--modbus-rtu", std::to_string(sc.rtu), "--buses", std::to_string(sc.buses),
                 "--baud", "9600"});
    MeterdSetup s;
    s.interval = std::to_string(interval) + "s";
    const auto r = run_meterd(sim, s, opt, window);
    print_problems(r);
    const BusWindow t = r.total();
    const double secs = static_cast<double>(r.to_ms - r.from_ms) / 1000.0;
    const double per_k =
        t.exchanges ? 1000.0 * r.usage.cpu_s / static_cast<double>(t.exchanges) : NAN;
    const Usage& u = r.usage;
    std::printf("   %-22s %9llu %7.2f %9.3f %8.2f %7.1f %7.1f %7.1f %7.1f %7.1f %7llu %7llu\n",
                sc.label.c_str(), static_cast<unsigned long long>(t.exchanges), u.cpu_s, per_k,
                static_cast<double>(t.reads_ok) / secs, mib(u.rss_kib), mib(u.hwm_kib),
                mib(u.anon_kib), mib(u.file_kib), mib(u.pss_kib),
                static_cast<unsigned long long>(t.missed),
                static_cast<unsigned long long>(t.queued));
    const bool small = sc.meters() <= 32;
    const double goal = small ? 6.0 : 16e6 / (1024.0 * 1024.0);
    figure("4. CPU s per 1000 exchanges, " + sc.label, fmt("%.3f", per_k));
    figure("4. VmRSS / VmHWM, " + sc.label + ", MiB",
           fmt("%.1f", mib(u.rss_kib)) + " / " + fmt("%.1f", mib(u.hwm_kib)),
           std::string(small ? "< 6 MiB" : "< 16 MB") + ": " +
               verdict(mib(u.hwm_kib) < goal, "by " + fmt("%.1f", mib(u.hwm_kib) - goal) + " MiB"));
    figure("4. of which anon (heap, stacks) / file (code), " + sc.label + ", MiB",
           fmt("%.1f", mib(u.anon_kib)) + " / " + fmt("%.1f", mib(u.file_kib)));
    figure("4. readings received by the head-end / stored, " + sc.label,
           std::to_string(r.uplink.headend.readings) + " / " + std::to_string(r.uplink.readings),
           uplink_note(r));
    // What fits: the reads a bus completes in one interval, against its meters.
    double fit = 0;
    unsigned nb = 0;
    for (const auto& [name, b] : r.buses)
      if (!std::isnan(b.read_rate())) fit += b.read_rate() * interval, ++nb;
    fit = nb ? fit / nb : NAN;
    const unsigned per_bus = sc.meters() / sc.buses;
    std::printf(
        "   %s: missed slots in the window %llu; a bus completes %.1f meter reads per "
        "%us (it has %u meters: one round takes %.0f s)\n",
        sc.label.c_str(), static_cast<unsigned long long>(t.missed), fit, interval, per_bus,
        per_bus / fit * interval);
    figure("4. meter reads per bus per " + std::to_string(interval) + "s, " + sc.label + " (" +
               std::to_string(per_bus) + " a bus)",
           fmt("%.1f", fit), "missed slots " + std::to_string(t.missed) + " in the window");
    for (const auto& [name, b] : r.buses)
      if (!b.has_data(opt)) data = false;
    if (opt.uplink && !r.uplink.connected) data = false;  // a broken harness: no publishing
  }
  return data;
}

// ---- 5. collectd --------------------------------------------------------------------------

std::string collectd_config(const json& endpoints, const std::vector<const mb::Register*>& regs,
                            unsigned interval_s, const fs::path& dir) {
  std::ostringstream o;
  o << "Hostname \"bench\"\nFQDNLookup false\nInterval " << interval_s << "\nBaseDir \""
    << dir.string() << "\"\nPIDFile \"" << (dir / "collectd.pid").string()
    << "\"\nPluginDir \"/usr/lib/collectd\"\nTypesDB \"/usr/share/collectd/types.db\"\n"
    << "ReadThreads " << std::max<std::size_t>(5, endpoints["buses"].size()) << "\n"
    << "LoadPlugin logfile\n<Plugin logfile>\n  LogLevel info\n  File STDOUT\n"
    << "  Timestamp true\n</Plugin>\nLoadPlugin csv\n<Plugin csv>\n  DataDir \""
    << (dir / "csv").string() << "\"\n</Plugin>\nLoadPlugin modbus\n<Plugin modbus>\n";
  for (const auto* r : regs)
    o << "  <Data \"r" << r->address << "\">\n    RegisterBase " << r->address
      << "\n    RegisterType "
      << (r->encoding == mb::Encoding::float32  ? "Float"
          : r->encoding == mb::Encoding::int16  ? "Int16"
          : r->encoding == mb::Encoding::int32  ? "Int32"
          : r->encoding == mb::Encoding::uint32 ? "Uint32"
                                                : "Uint16")
      << "\n    RegisterCmd " << (r->table == mb::Table::holding ? "ReadHolding" : "ReadInput")
      << "\n    Type gauge\n    Instance \"r" << r->address << "\"\n  </Data>\n";
  for (const auto& b : endpoints["buses"]) {
    o << "  <Host \"" << b["name"].get<std::string>() << "\">\n    Device \""
      << b["path"].get<std::string>() << "\"\n    Baudrate " << b["baud"] << "\n    Interval "
      << interval_s << "\n";
    for (const auto& m : b["meters"]) {
      o << "    <Slave " << m["address"].get<std::string>() << ">\n      Instance \""
        << m["id"].get<std::string>() << "\"\n";
      for (const auto* r : regs) o << "      Collect \"r" << r->address << "\"\n";
      o << "    </Slave>\n";
    }
    o << "  </Host>\n";
  }
  o << "</Plugin>\n";
  return o.str();
}

// Values collectd's csv plugin wrote with a time stamp in [from, to] (ms).
std::uint64_t csv_values(const fs::path& dir, std::int64_t from_ms, std::int64_t to_ms) {
  std::uint64_t n = 0;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return 0;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path());
    for (std::string line; std::getline(in, line);) {
      const double t = std::atof(line.c_str());  // "epoch,value"; the header reads 0
      if (t * 1000 >= static_cast<double>(from_ms) && t * 1000 <= static_cast<double>(to_ms)) ++n;
    }
  }
  return n;
}

std::uint64_t sim_requests(const Sim& sim) {
  const json stats = sim.stats();
  std::uint64_t n = 0;
  for (const auto& bus : stats["buses"]) n += bus["requests"].get<std::uint64_t>();
  return n;
}

bool section_collectd(const Options& opt) {
  const unsigned nbus = opt.smoke ? 1 : 8, per_bus = opt.smoke ? 2 : 4;
  const unsigned interval = opt.smoke ? 2 : 10;
  std::printf(
      "\n5. meterd vs collectd's modbus plugin: %u DTSU666 on %u buses at 9600 8N1 each "
      "(two identical fleets), interval %us, both at once\n",
      nbus * per_bus, nbus, interval);
  if (::access(opt.collectd.c_str(), X_OK) != 0) {
    std::printf("   skipped: %s not found (Debian: apt-get install collectd-core)\n",
                opt.collectd.c_str());
    figure("5. collectd comparison", "skipped", "no " + opt.collectd);
    return true;
  }
  const auto regs = dtsu666_registers();
  std::vector<SimBus> fleet;
  unsigned id = 1;
  for (unsigned b = 1; b <= nbus; ++b)
    fleet.push_back(make_bus("rs485-" + std::to_string(b), 9600, "none", "dtsu666", per_bus, id,
                             [](unsigned) { return 20u; }));
  const std::string toml = sim_toml(fleet);
  Sim for_meterd(toml), for_collectd(toml);

  TempDir cd;
  std::ofstream(cd.path / "collectd.conf")
      << collectd_config(for_collectd.endpoints(), regs, interval, cd.path);
  const auto started = Clock::now();
  Process collectd(opt.collectd, {"-f", "-C", (cd.path / "collectd.conf").string()},
                   cd.path / "collectd.log");
  MeterdSetup s;
  s.interval = std::to_string(interval) + "s";
  progress("collectd and meterd side by side");
  MeterdProc meterd(for_meterd.endpoints(), s, opt);
  if (!meterd.warm_up())
    throw std::runtime_error("meterd logged no summary line:\n" + tail(meterd.log_file()));
  // Both have polled at least once before the window opens.
  if (!opt.smoke) std::this_thread::sleep_until(started + std::chrono::seconds(interval + 1));
  meterd.restart_window();
  UsageProbe cprobe(collectd.pid());
  const std::int64_t from = wall_ms();
  const std::uint64_t req_m0 = sim_requests(for_meterd), req_c0 = sim_requests(for_collectd);
  sleep_s(opt.long_window());
  const std::uint64_t req_m = sim_requests(for_meterd) - req_m0;
  const std::uint64_t req_c = sim_requests(for_collectd) - req_c0;
  const Usage cu = cprobe.take();
  const bool collectd_alive = collectd.running();
  const auto mr = meterd.finish();  // meterd's usage and stored values, same window
  const std::int64_t to = mr.to_ms;
  collectd.stop(SIGTERM, 10s);
  print_problems(mr);
  const std::uint64_t cvalues = csv_values(cd.path / "csv", from, to);
  const std::uint64_t mvalues = mr.db_values;
  std::istringstream clog(slurp(cd.path / "collectd.log"));
  unsigned shown = 0;
  for (std::string line; std::getline(clog, line);)
    if ((line.find("rror") != std::string::npos || line.find("ailed") != std::string::npos ||
         line.find("too long") != std::string::npos) &&
        shown++ < 6)
      std::printf("    collectd log: %s\n", line.c_str());
  if (!collectd_alive) std::printf("   collectd exited early; see its log above\n");

  const double secs = static_cast<double>(to - from) / 1000.0;
  const double polls = secs / interval;
  const auto per = [](double a, std::uint64_t b) { return b ? a / static_cast<double>(b) : NAN; };
  const double m_cpu_v = per(mr.usage.cpu_s, mvalues), c_cpu_v = per(cu.cpu_s, cvalues);
  std::printf(
      "   window %.1f s (%.1f intervals); %zu registers a meter (meterd's dtsu666 "
      "profile)\n",
      secs, polls, regs.size());
  std::printf("   %-44s %14s %14s %10s\n", "", "meterd", "collectd", "ratio");
  std::printf("   %-44s %14llu %14llu\n", "values read in the window",
              static_cast<unsigned long long>(mvalues), static_cast<unsigned long long>(cvalues));
  std::printf("   %-44s %14.1f %14.1f\n", "  = per meter per interval",
              per(static_cast<double>(mvalues), nbus * per_bus) / polls,
              per(static_cast<double>(cvalues), nbus * per_bus) / polls);
  std::printf("   %-44s %14llu %14llu\n", "requests on the wire (metersim stats)",
              static_cast<unsigned long long>(req_m), static_cast<unsigned long long>(req_c));
  std::printf("   %-44s %14.2f %14.2f %10.2f\n", "CPU s (utime+stime) in the window",
              mr.usage.cpu_s, cu.cpu_s, cu.cpu_s / mr.usage.cpu_s);
  std::printf("   %-44s %14.2f %14.2f %10.2f\n", "CPU us per value", 1e6 * m_cpu_v, 1e6 * c_cpu_v,
              c_cpu_v / m_cpu_v);
  const auto mem = [&](const char* label, long Usage::*field) {
    std::printf("   %-44s %11.1fMiB %11.1fMiB %10.2f\n", label, mib(mr.usage.*field),
                mib(cu.*field), mib(cu.*field) / mib(mr.usage.*field));
  };
  mem("VmRSS at the end", &Usage::rss_kib);
  mem("  of which anon (heap, stacks)", &Usage::anon_kib);
  mem("  of which file (code, libraries)", &Usage::file_kib);
  mem("Pss (shared pages divided)", &Usage::pss_kib);
  mem("VmHWM", &Usage::hwm_kib);
  std::printf(
      "   meterd does strictly more work: it stores every value in its SQLite buffer (sync = "
      "full, one transaction per meter read), publishes it to the broker (QoS 1) and deletes "
      "it at the PUBACK; collectd only appends csv lines and publishes nothing. meterd's "
      "values are those the head-end received (and any still buffered at the stop)\n");
  figure("5. CPU us per value: meterd (buffered in SQLite, published QoS 1)",
         fmt("%.1f", 1e6 * m_cpu_v));
  figure("5. CPU us per value: collectd modbus + csv", fmt("%.1f", 1e6 * c_cpu_v));
  figure("5. ratio collectd / meterd, CPU per value", fmt("%.2f", c_cpu_v / m_cpu_v),
         "> 1: meterd cheaper");
  figure("5. VmRSS meterd / collectd, MiB",
         fmt("%.1f", mib(mr.usage.rss_kib)) + " / " + fmt("%.1f", mib(cu.rss_kib)),
         "collectd reference ~2.7 MiB");
  figure("5. RssAnon meterd / collectd, MiB",
         fmt("%.1f", mib(mr.usage.anon_kib)) + " / " + fmt("%.1f", mib(cu.anon_kib)));
  figure("5. readings received by meterd's head-end / stored",
         std::to_string(mr.uplink.headend.readings) + " / " + std::to_string(mr.uplink.readings),
         uplink_note(mr));
  // No uplink connection: the harness is broken (meterd would not be doing the work).
  if (opt.uplink && !mr.uplink.connected) return false;
  if (opt.smoke) return !mr.buses.empty() && mr.buses.begin()->second.has_data(opt);
  return mvalues > 0 && cvalues > 0;
}

// ---- main ---------------------------------------------------------------------------------

void print_figures() {
  std::size_t w = 0;
  for (const auto& f : figures) w = std::max(w, f.what.size());
  std::printf("\nFigures\n");
  std::printf("  %-*s  %16s  %s\n", static_cast<int>(w), "figure", "value", "goal");
  for (const auto& f : figures)
    std::printf("  %-*s  %16s  %s\n", static_cast<int>(w), f.what.c_str(), f.value.c_str(),
                f.goal.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  bool seconds_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool more = i + 1 < argc;
    if (a == "--smoke") {
      opt.smoke = true;
    } else if (a == "--seconds" && more) {
      opt.seconds = std::stod(argv[++i]);
      seconds_given = true;
    } else if (a == "--reps" && more) {
      opt.reps = static_cast<unsigned>(std::stoul(argv[++i]));
    } else if (a == "--sections" && more) {
      opt.sections = argv[++i];
    } else if (a == "--collectd" && more) {
      opt.collectd = argv[++i];
    } else if (a == "--no-uplink") {
      opt.uplink = false;
    } else if (a == "--mqtt-toml" && more) {
      opt.mqtt_toml = argv[++i];
    } else {
      std::cerr << "usage: bench_meterd [--seconds S] [--reps N] [--sections 12345] "
                   "[--collectd PATH] [--no-uplink] [--mqtt-toml KEYS] [--smoke]\n";
      return 2;
    }
  }
  if (opt.smoke) {
    if (!seconds_given) opt.seconds = 2;
    opt.reps = 1;
  }
  std::printf("bench_meterd: meterd against metersim (%s; window %.1f s, %u repetitions)\n",
              opt.smoke ? "smoke run: tiny fleets, figures meaningless" : "full run", opt.seconds,
              opt.reps);
  const auto t0 = Clock::now();
  bool ok = true;
  const std::vector<std::pair<char, std::function<bool(const Options&)>>> sections{
      {'1', section_efficiency},
      {'2', section_parallel},
      {'3', section_blocks},
      {'4', section_resources},
      {'5', section_collectd}};
  for (const auto& [key, run] : sections) {
    if (!opt.has(key)) continue;
    try {
      if (!run(opt)) {
        std::printf("   section %c: no data\n", key);
        ok = false;
      }
    } catch (const std::exception& e) {
      std::printf("   section %c failed: %s\n", key, e.what());
      ok = false;
    }
    std::fflush(stdout);
  }
  print_figures();
  std::printf("\nbench time %.0f s\n", std::chrono::duration<double>(Clock::now() - t0).count());
  return ok ? 0 : 1;
}
