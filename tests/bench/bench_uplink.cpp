// bench_uplink: meterd's uplink (firmware::Uplink over drivers::MqttClient, wired as the daemon
// wires them) against a real mosquitto on loopback, each figure next to a like-for-like baseline
// measured in the same run (docs/performance.md "Uplink"):
//   1. drain of a backlog: a buffer file of meterd's kind holding --backlog readings, drained
//      to the broker until every row is acked; against a bare libmosquitto publisher sending
//      exactly the same payload bytes with the same window of 32 publishes in flight. The two
//      alternate, --rounds times each; medians.
//   2. read-to-PUBACK latency at the default linger: one meter's read (20 readings) appended
//      every 50 ms, each append followed by notify_appended + pump, as the poller does.
//   3. resident memory of the uplink during the drain: each uplink drain runs in a process of
//      its own (this program, re-executed), so its VmRSS/VmHWM are the uplink's alone.
// Prints figures and ratios; asserts none. Exit status 1 only when a measurement produced no
// data (a broken harness, not a slow uplink).
//
//   bench_uplink [--rounds N] [--backlog N] [--latency-rows N] [--dir DIR] [--smoke]
//
// --rounds        drains of each side, and latency runs (default 5)
// --backlog       readings in the backlog (default 1000000)
// --latency-rows  readings appended in each latency run (default 3000)
// --dir           where the buffer files go (default /tmp; give a directory on the disk the
//                 gateway would use: every ack is a transaction with an fsync)
// --smoke         tiny sizes, one round, for ctest: proves the benchmark still runs
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <malloc.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include "buffer/store.hpp"
#include "drivers/mqtt.hpp"
#include "firmware/config.hpp"
#include "firmware/uplink.hpp"
#include "tests/support/bench.hpp"
#include "tests/support/broker.hpp"
#include "tests/support/system.hpp"

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace fw = meterd::firmware;
using meterd::buffer::Batch;
using meterd::buffer::Reading;
using meterd::buffer::Store;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

using meterd::testing::progress;
using meterd::testing::wall_ms;

// ---- options and small helpers ------------------------------------------------------------

struct Options {
  int rounds = 5;
  std::uint64_t backlog = 1'000'000;
  std::uint64_t latency_rows = 3000;
  std::string dir = "/tmp";
  bool smoke = false;
  // Internal: this process is one drain, started by the bench (--child uplink|baseline).
  std::string child_side;  // "uplink" or "baseline"; empty in the bench itself
  std::string child_db, child_out;
  std::uint16_t port = 0;
};

// The uplink's settings: meterd's defaults ([mqtt] with nothing but a host), except the drain
// cap (default 200 rows/s), which is off: the bench measures what the uplink can do.
const unsigned batch_max = fw::MqttConfig{}.batch_max;        // 500
const unsigned linger_ms = fw::MqttConfig{}.linger_ms;        // 200
const unsigned inflight_max = fw::MqttConfig{}.inflight_max;  // 32
const std::string gateway = "gw-bench";
const std::string prefix = "meterd/gw-bench";
const std::string readings_topic = prefix + "/readings";

// The broker: quiet (the test Broker logs every packet), the same window of 32 both ways (its
// default, 20, is the receive maximum it announces to MQTT 5 clients, which would cap both
// sides below meterd's inflight_max), and no cap on what it queues for the subscriber (a
// QoS 1 message past max_queued_messages is dropped, and the subscriber must count them all).
const char* const broker_config =
    "log_type none\nlog_type error\nlog_type warning\n"
    "max_inflight_messages 32\nmax_queued_messages 0\n";

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_uplink: %s\n", what.c_str());
  std::exit(1);
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Nearest rank: the smallest value with at least p % of the values at or below it.
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

// A "key:" line of /proc/self/status, in KiB (VmRSS, VmHWM), -1 if absent.
long status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  const std::size_t n = std::strlen(key);
  for (std::string line; std::getline(in, line);)
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':')
      return std::strtol(line.c_str() + n + 1, nullptr, 10);
  return -1;
}

// Resets VmHWM to the current VmRSS (Linux >= 4.0); false where that is not possible.
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5\n";
  out.flush();
  return out.good();
}

double cpu_seconds_self() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  const auto s = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

void copy_db(const fs::path& from, const fs::path& to) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(to.string() + suffix);
  fs::copy_file(from, to);
  const fs::path wal = from.string() + "-wal";
  if (fs::exists(wal)) fs::copy_file(wal, to.string() + "-wal");
}

void remove_db(const fs::path& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path.string() + suffix);
}

// ---- data: 32 meters x 20 quantities, exact decimals as meters send them ------------------

constexpr int meters = 32;
struct Quantity {
  const char* name;
  const char* unit;
  std::int32_t exponent;
  std::int64_t base;  // mantissa of a typical value
  bool counter;       // an energy register: grows from round to round
};
constexpr Quantity quantities[] = {
    {"energy.active.import.total", "kWh", -2, 12'345'678, true},
    {"energy.active.import.t1", "kWh", -2, 3'456'789, true},
    {"energy.active.import.t2", "kWh", -2, 4'567'890, true},
    {"energy.active.import.t3", "kWh", -2, 2'345'678, true},
    {"energy.active.import.t4", "kWh", -2, 1'975'321, true},
    {"energy.active.export.total", "kWh", -2, 123'456, true},
    {"energy.reactive.import.total", "kvarh", -2, 2'345'671, true},
    {"energy.reactive.export.total", "kvarh", -2, 234'567, true},
    {"voltage.l1", "V", -1, 2301, false},
    {"voltage.l2", "V", -1, 2298, false},
    {"voltage.l3", "V", -1, 2305, false},
    {"current.l1", "A", -3, 5123, false},
    {"current.l2", "A", -3, 4876, false},
    {"current.l3", "A", -3, 5012, false},
    {"power.active.total", "kW", -4, 34'567, false},
    {"power.reactive.total", "kvar", -4, 4567, false},
    {"power.apparent.total", "kVA", -4, 35'012, false},
    {"power_factor.total", "", -3, 987, false},
    {"frequency", "Hz", -2, 5001, false},
    {"demand.active.import.max", "kW", -4, 45'678, false},
};
constexpr int per_meter = static_cast<int>(std::size(quantities));
constexpr int per_round = meters * per_meter;      // 640 readings every 15 minutes
constexpr std::int64_t t0_ms = 1'796'083'200'000;  // 2026-12-01T00:00:00Z
constexpr std::int64_t round_ms = 900'000;         // 15 minutes
constexpr std::int64_t meter_spacing_ms = 1'500;   // a bus reads its meters one by one

std::string meter_id(int m) {
  char id[16];
  std::snprintf(id, sizeof id, "m%02d", m);
  return id;
}

// Reading q of meter m in poll round `round`, taken at ts_ms.
Reading make_reading(std::uint64_t round, int m, int q, std::int64_t ts_ms) {
  const Quantity& k = quantities[q];
  Reading r;
  r.meter = meter_id(m);
  r.quantity = k.name;
  r.unit = k.unit;
  r.exponent = k.exponent;
  const auto wobble =
      static_cast<std::int64_t>(((round * 131 + m * 17 + q * 7) * 2'654'435'761u) % 201) - 100;
  r.mantissa =
      k.counter ? k.base + static_cast<std::int64_t>(round) * (40 + m) + m * 1000 : k.base + wobble;
  r.ts_ms = ts_ms;
  return r;
}

// One poll round of every meter, time stamps increasing (meter after meter, 10 ms a value).
Batch make_round(std::uint64_t round) {
  Batch b;
  b.readings.reserve(per_round);
  const std::int64_t start = t0_ms + static_cast<std::int64_t>(round) * round_ms;
  for (int m = 0; m < meters; ++m)
    for (int q = 0; q < per_meter; ++q)
      b.readings.push_back(make_reading(round, m, q, start + m * meter_spacing_ms + q * 10));
  b.now_ms = b.readings.back().ts_ms;
  return b;
}

// meterd's buffer options with an empty [buffer] table (firmware/daemon.cpp buffer_options).
meterd::buffer::Options meterd_buffer_options(const fs::path& path) {
  const fw::BufferConfig c;
  meterd::buffer::Options o;
  o.path = path.string();
  o.max_readings = c.max_readings;
  o.max_events = c.max_events;
  o.max_bytes = c.max_bytes;
  o.sync = c.sync == "normal" ? meterd::buffer::Sync::normal : meterd::buffer::Sync::full;
  o.cache_kib = c.cache_kib;
  o.now_ms = wall_ms();
  return o;
}

Store open_store(const fs::path& path) {
  auto s = Store::open(meterd_buffer_options(path));
  if (!s) die("open " + path.string() + ": " + s.error().message);
  return std::move(s).value();
}

// Fills the backlog in poll rounds (the last one cut to size) and closes it cleanly, so a copy
// opens without a seq_gap event and holds readings only.
void fill_backlog(const fs::path& path, std::uint64_t readings) {
  remove_db(path);
  Store s = open_store(path);
  for (std::uint64_t round = 0, n = 0; n < readings; ++round) {
    Batch b = make_round(round);
    if (readings - n < b.readings.size()) b.readings.resize(readings - n);
    auto r = s.append(b);
    if (!r) die("append: " + r.error().message);
    n += b.readings.size();
  }
  if (auto r = s.close(); !r) die("close: " + r.error().message);
}

// The payloads the uplink publishes for this backlog, built the way it builds them: batches of
// batch_max from next_unsent, in order, numbered from 1 (Uplink's batch counter).
std::vector<std::string> backlog_payloads(const fs::path& backlog, const fs::path& scratch) {
  copy_db(backlog, scratch);
  std::vector<std::string> out;
  {
    Store s = open_store(scratch);
    for (std::uint64_t batch = 1;; ++batch) {
      auto u = s.next_unsent(batch_max);
      if (!u) die("next_unsent: " + u.error().message);
      if (u->empty()) break;
      if (!u->events.empty()) die("the backlog holds events");
      out.push_back(fw::readings_payload(gateway, batch, u->readings));
      s.mark_inflight(u->seqs());
    }
  }
  remove_db(scratch);
  return out;
}

// ---- the head-end: a libmosquitto subscriber that counts ------------------------------------

// Subscribes to meterd/+/readings with QoS 1 (as a head-end would) and keeps, per topic, the
// messages, their bytes and the sum of their hashes: equal sums say the uplink and the baseline
// delivered the same payloads, whatever the order. Stores nothing; its own network thread.
class Counter {
 public:
  struct Tally {
    std::uint64_t messages = 0, bytes = 0, hash_sum = 0;
  };

  explicit Counter(std::uint16_t port) {
    mosq_ = mosquitto_new(("bench-headend-" + std::to_string(::getpid())).c_str(), true, this);
    if (!mosq_) die("subscriber: mosquitto_new");
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_connect_v5_callback_set(mosq_, &Counter::on_connect);
    mosquitto_subscribe_v5_callback_set(mosq_, &Counter::on_subscribe);
    mosquitto_message_v5_callback_set(mosq_, &Counter::on_message);
    if (mosquitto_connect_bind_v5(mosq_, "127.0.0.1", port, 60, nullptr, nullptr) != 0)
      die("subscriber: connect");
    if (mosquitto_loop_start(mosq_) != 0) die("subscriber: loop_start");
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, std::chrono::seconds(10), [&] { return subscribed_; }))
      die("subscriber: no SUBACK");
  }
  ~Counter() {
    mosquitto_disconnect(mosq_);
    mosquitto_loop_stop(mosq_, false);
    mosquitto_destroy(mosq_);
  }
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void reset() {
    std::lock_guard lock(mutex_);
    tallies_.clear();
  }
  // Waits until `messages` have arrived on `topic` since reset(); the tally then (or at the
  // timeout).
  Tally wait(const std::string& topic, std::uint64_t messages, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return tallies_[topic].messages >= messages; });
    return tallies_[topic];
  }

 private:
  static void on_connect(mosquitto* m, void*, int rc, int, const mosquitto_property*) {
    if (rc == 0) mosquitto_subscribe_v5(m, nullptr, "meterd/+/readings", 1, 0, nullptr);
  }
  static void on_subscribe(mosquitto*, void* self_, int, int, const int*,
                           const mosquitto_property*) {
    auto* self = static_cast<Counter*>(self_);
    std::lock_guard lock(self->mutex_);
    self->subscribed_ = true;
    self->changed_.notify_all();
  }
  static void on_message(mosquitto*, void* self_, const mosquitto_message* msg,
                         const mosquitto_property*) {
    auto* self = static_cast<Counter*>(self_);
    const std::string_view payload(static_cast<const char*>(msg->payload),
                                   static_cast<std::size_t>(msg->payloadlen));
    const std::uint64_t h = std::hash<std::string_view>{}(payload);
    std::lock_guard lock(self->mutex_);
    Tally& t = self->tallies_[msg->topic];
    ++t.messages;
    t.bytes += payload.size();
    t.hash_sum += h;
    self->changed_.notify_all();
  }

  mosquitto* mosq_ = nullptr;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool subscribed_ = false;
  std::map<std::string, Tally> tallies_;
};

std::uint64_t hash_sum(const std::vector<std::string>& payloads) {
  std::uint64_t sum = 0;
  for (const auto& p : payloads) sum += std::hash<std::string_view>{}(p);
  return sum;
}

// ---- baseline: a bare libmosquitto publisher ------------------------------------------------

// What a hand-written publisher does at best: the payloads ready in memory, mosquitto_publish_v5
// from this thread, libmosquitto's own loop thread for the socket, QoS 1, at most `window`
// publishes unacknowledged (the same SEND_MAXIMUM as MqttClient sets), done at the last PUBACK.
// No buffer, no payload building, no acks on disk: the rate at which the broker, the
// subscriber and the loopback take these bytes. Returns seconds from the first publish to the
// last PUBACK.
struct BarePublisher {
  std::mutex mutex;
  std::condition_variable changed;
  bool connected = false;
  unsigned inflight = 0;
  std::uint64_t acked = 0, refused = 0;

  static void on_connect(mosquitto*, void* self_, int rc, int, const mosquitto_property*) {
    auto* self = static_cast<BarePublisher*>(self_);
    std::lock_guard lock(self->mutex);
    self->connected = rc == 0;
    self->changed.notify_all();
  }
  static void on_publish(mosquitto*, void* self_, int, int reason, const mosquitto_property*) {
    auto* self = static_cast<BarePublisher*>(self_);
    std::lock_guard lock(self->mutex);
    --self->inflight;
    ++self->acked;
    if (reason >= 0x80) ++self->refused;
    self->changed.notify_all();
  }
};

double bare_publish(std::uint16_t port, const std::vector<std::string>& payloads, double& cpu_s) {
  BarePublisher state;
  mosquitto* m = mosquitto_new(("bench-bare-" + std::to_string(::getpid())).c_str(), true, &state);
  if (!m) die("baseline: mosquitto_new");
  mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, static_cast<int>(inflight_max));
  mosquitto_connect_v5_callback_set(m, &BarePublisher::on_connect);
  mosquitto_publish_v5_callback_set(m, &BarePublisher::on_publish);
  if (mosquitto_connect_bind_v5(m, "127.0.0.1", port, 60, nullptr, nullptr) != 0)
    die("baseline: connect");
  if (mosquitto_loop_start(m) != 0) die("baseline: loop_start");
  {
    std::unique_lock lock(state.mutex);
    if (!state.changed.wait_for(lock, std::chrono::seconds(10), [&] { return state.connected; }))
      die("baseline: no CONNACK");
  }
  const double cpu0 = cpu_seconds_self();
  const auto t0 = Clock::now();
  for (const auto& p : payloads) {
    {
      std::unique_lock lock(state.mutex);
      state.changed.wait(lock, [&] { return state.inflight < inflight_max; });
      ++state.inflight;
    }
    const int rc = mosquitto_publish_v5(m, nullptr, readings_topic.c_str(),
                                        static_cast<int>(p.size()), p.data(), 1, false, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) die(std::string("baseline: publish: ") + mosquitto_strerror(rc));
  }
  {
    std::unique_lock lock(state.mutex);
    if (!state.changed.wait_for(lock, std::chrono::seconds(600),
                                [&] { return state.acked == payloads.size(); }))
      die("baseline: PUBACKs missing");
  }
  const double s = seconds_since(t0);
  cpu_s = cpu_seconds_self() - cpu0;
  if (state.refused > 0) die("baseline: the broker refused publishes");
  mosquitto_disconnect(m);
  mosquitto_loop_stop(m, false);
  mosquitto_destroy(m);
  return s;
}

// ---- the uplink, wired as meterd wires it ---------------------------------------------------

// Time spent in the uplink's calls on the loop thread, for "where the time goes".
struct Spent {
  double pump_s = 0;     // Uplink::pump
  double publish_s = 0;  // of which MqttClient::publish
  double puback_s = 0;   // Uplink::on_published (the acks are deleted in the next pump)
  std::uint64_t pumps = 0, publishes = 0, pubacks = 0;
};

// Daemon::kick_uplink (firmware/daemon_uplink.cpp): pump, and arm the timer for the wake time
// it returns unless an earlier wake is armed; after PUBACKs one pump is posted for the burst
// (post_kick), as the daemon's on_published hook does.
class UplinkDriver {
 public:
  explicit UplinkDriver(asio::io_context& io, Spent* spent = nullptr)
      : io_(io), timer_(io), spent_(spent) {}
  void attach(fw::Uplink& uplink) { uplink_ = &uplink; }
  std::function<void()> after_pump;  // called after every pump (the drain's end check)
  void post_kick() {
    if (posted_) return;
    posted_ = true;
    asio::post(io_, [this] {
      posted_ = false;
      kick();
    });
  }
  void kick() {
    if (!uplink_ || stopped_) return;
    const std::int64_t now = wall_ms();
    const auto t0 = Clock::now();
    const auto wake = uplink_->pump(now);
    if (spent_) {
      spent_->pump_s += seconds_since(t0);
      ++spent_->pumps;
    }
    if (after_pump) after_pump();
    if (stopped_ || !wake) return;
    if (wake_ms_ && *wake_ms_ <= *wake) return;
    wake_ms_ = *wake;
    timer_.expires_after(std::chrono::milliseconds(std::max<std::int64_t>(*wake - now, 0)));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      wake_ms_.reset();
      kick();
    });
  }
  void stop() {
    stopped_ = true;
    timer_.cancel();
  }

 private:
  asio::io_context& io_;
  asio::steady_timer timer_;
  Spent* spent_;
  bool posted_ = false;
  fw::Uplink* uplink_ = nullptr;
  std::optional<std::int64_t> wake_ms_;
  bool stopped_ = false;
};

// MqttLink that also adds up the time spent in MqttClient::publish (two clock reads a publish).
class TimingLink final : public fw::UplinkLink {
 public:
  TimingLink(meterd::drivers::MqttClient& client, Spent& spent) : inner_(client), spent_(spent) {}
  bool connected() const override { return inner_.connected(); }
  std::optional<int> publish(const std::string& topic, const std::string& payload, int qos,
                             bool retain, const std::string& correlation_data) override {
    const auto t0 = Clock::now();
    const auto mid = inner_.publish(topic, payload, qos, retain, correlation_data);
    spent_.publish_s += seconds_since(t0);
    ++spent_.publishes;
    return mid;
  }

 private:
  fw::MqttLink inner_;
  Spent& spent_;
};

meterd::drivers::MqttSettings mqtt_settings(std::uint16_t port, const std::string& topic_prefix) {
  meterd::drivers::MqttSettings s;
  s.client_id = "bench-uplink-" + std::to_string(::getpid());
  s.host = "127.0.0.1";
  s.port = port;
  s.will_topic = topic_prefix + "/status";
  s.will_payload = fw::Uplink::offline_payload();
  s.inflight_max = inflight_max;
  return s;
}

fw::UplinkSettings uplink_settings(const std::string& gateway_id, const std::string& topic_prefix) {
  fw::UplinkSettings s;
  s.gateway = gateway_id;
  s.topic_prefix = topic_prefix;
  s.batch_max = batch_max;
  s.linger_ms = linger_ms;
  s.inflight_max = inflight_max;
  s.drain_max_per_s = 0;
  s.version = "bench";
  s.started_ms = wall_ms();
  return s;
}

// ---- one drain, in a process of its own ------------------------------------------------------

// The uplink side: open the buffer copy, connect, and from the CONNACK on let the uplink drain
// it, driven as meterd's hooks drive it, until every row is acked (the buffer is empty). The
// one addition is timing: two clock reads around each pump, PUBACK and publish (4000 publishes
// and PUBACKs a million readings: well under a millisecond in all). Writes its figures to
// o.child_out as JSON.
int drain_uplink(const Options& o) {
  asio::io_context io;
  Store store = open_store(o.child_db);
  const auto before = store.stats();
  if (!before) die("stats: " + before.error().message);
  const std::uint64_t total = before->readings;
  json out{{"side", "uplink"}, {"readings", total}};
  Spent spent;
  UplinkDriver driver(io, &spent);
  std::unique_ptr<fw::Uplink> uplink;
  Clock::time_point t0, t1;
  double cpu0 = 0, cpu = 0;
  bool done = false;
  std::string failure;

  meterd::drivers::MqttHooks hooks;
  hooks.on_connected = [&](bool v5) {
    out["v5"] = v5;
    out["rss_start_kib"] = status_kib("VmRSS");
    out["peak_reset"] = reset_peak_rss();
    cpu0 = cpu_seconds_self();
    t0 = Clock::now();
    uplink->on_connected(wall_ms());
    driver.kick();
  };
  hooks.on_disconnected = [&](const std::string& why) {
    failure = "disconnected: " + why;
    io.stop();
  };
  hooks.on_published = [&](int mid, int reason) {
    const auto t_ack = Clock::now();
    uplink->on_published(mid, reason, wall_ms());
    spent.puback_s += seconds_since(t_ack);
    ++spent.pubacks;
    driver.post_kick();
  };
  driver.after_pump = [&] {
    if (done || uplink->counters().acked_rows < total) return;
    t1 = Clock::now();
    cpu = cpu_seconds_self() - cpu0;
    done = true;
    driver.stop();
    io.stop();
  };
  meterd::drivers::MqttClient client(io, mqtt_settings(o.port, prefix), std::move(hooks));
  TimingLink link(client, spent);
  uplink = std::make_unique<fw::Uplink>(uplink_settings(gateway, prefix), store, link);
  driver.attach(*uplink);
  asio::steady_timer deadline(io);
  deadline.expires_after(std::chrono::seconds(o.smoke ? 60 : 900));
  deadline.async_wait([&](const boost::system::error_code& ec) {
    if (ec) return;
    failure = "no end of the drain in time";
    io.stop();
  });
  client.start();
  io.run();
  out["hwm_end_kib"] = status_kib("VmHWM");
  out["rss_end_kib"] = status_kib("VmRSS");
  client.stop();
  const auto after = store.stats();
  const fw::UplinkCounters& c = uplink->counters();
  out["seconds"] = done ? std::chrono::duration<double>(t1 - t0).count() : NAN;
  out["cpu_s"] = cpu;
  out["left"] = after ? after->readings + after->events : 0;
  out["publishes"] = c.publishes;
  out["readings_sent"] = c.readings_sent;
  out["acked_rows"] = c.acked_rows;
  out["requeued_rows"] = c.requeued_rows;
  out["publish_failures"] = c.publish_failures + c.ack_failures + c.refused;
  out["pump_s"] = spent.pump_s;
  out["publish_s"] = spent.publish_s;
  out["puback_s"] = spent.puback_s;
  out["pumps"] = spent.pumps;
  out["pubacks"] = spent.pubacks;
  out["failure"] = failure;
  std::ofstream(o.child_out) << out.dump() << "\n";
  return done ? 0 : 1;
}

// The baseline side: the same buffer copy turned into the uplink's payloads before connecting
// (not timed), then published bare.
int drain_bare(const Options& o) {
  std::vector<std::string> payloads;
  std::uint64_t total = 0;
  double read_s = 0, build_s = 0;  // the uplink's two steps before a publish, timed apart
  {
    Store s = open_store(o.child_db);
    for (std::uint64_t batch = 1;; ++batch) {
      const auto t0 = Clock::now();
      auto u = s.next_unsent(batch_max);
      if (!u) die("next_unsent: " + u.error().message);
      if (u->empty()) break;
      s.mark_inflight(u->seqs());
      const auto t1 = Clock::now();
      payloads.push_back(fw::readings_payload(gateway, batch, u->readings));
      build_s += seconds_since(t1);
      read_s += std::chrono::duration<double>(t1 - t0).count();
      total += u->size();
    }
  }
  double cpu = 0;
  const double seconds = bare_publish(o.port, payloads, cpu);
  json out{{"side", "baseline"}, {"readings", total}, {"seconds", seconds}, {"cpu_s", cpu}};
  out["read_s"] = read_s;
  out["build_s"] = build_s;
  out["failure"] = "";
  std::ofstream(o.child_out) << out.dump() << "\n";
  return 0;
}

int run_child(const Options& o) {
  if (o.child_db.empty() || o.child_out.empty() || o.port == 0)
    die("--child needs --db, --out, --port");
  mallopt(M_ARENA_MAX, 2);  // as meterd's main does
  meterd::drivers::mqtt_library_init();
  return o.child_side == "uplink" ? drain_uplink(o) : drain_bare(o);
}

// ---- 2. read-to-PUBACK latency ---------------------------------------------------------------

// UplinkLink over the real client that notes, for each readings publish, the seqs it carries and
// when the uplink handed it over.
class RecordingLink final : public fw::UplinkLink {
 public:
  struct Sent {
    std::vector<std::int64_t> seqs;
    Clock::time_point at;
  };
  explicit RecordingLink(meterd::drivers::MqttClient& client) : inner_(client) {}
  bool connected() const override { return inner_.connected(); }
  std::optional<int> publish(const std::string& topic, const std::string& payload, int qos,
                             bool retain, const std::string& correlation_data) override {
    const auto mid = inner_.publish(topic, payload, qos, retain, correlation_data);
    if (mid && topic.ends_with("/readings")) sent_[*mid] = {seqs_of(payload), Clock::now()};
    return mid;
  }
  std::optional<Sent> take(int mid) {
    const auto it = sent_.find(mid);
    if (it == sent_.end()) return std::nullopt;
    Sent s = std::move(it->second);
    sent_.erase(it);
    return s;
  }

 private:
  static std::vector<std::int64_t> seqs_of(const std::string& payload) {
    static constexpr std::string_view key = "{\"seq\":";
    std::vector<std::int64_t> out;
    for (auto at = payload.find(key); at != std::string::npos; at = payload.find(key, at + 1))
      out.push_back(std::strtoll(payload.c_str() + at + key.size(), nullptr, 10));
    return out;
  }

  fw::MqttLink inner_;
  std::map<int, Sent> sent_;
};

// Per row, in ms.
struct LatencyRun {
  std::vector<double> to_puback;   // append returned -> its PUBACK reached the loop
  std::vector<double> lingered;    // append returned -> the uplink published it
  std::vector<double> link;        // published -> PUBACK on the loop
  std::vector<double> to_deleted;  // append returned -> Uplink::on_published returned (row gone)
  std::uint64_t publishes = 0;
};

constexpr auto pace = std::chrono::milliseconds(50);  // one meter's read finishes every 50 ms

// A fresh buffer, meterd's options; from the CONNACK on, one meter's round of 20 readings is
// appended every 50 ms (notify_appended + pump after each, as the poller's results do), until
// `rows`; ends when the last of them is acked.
LatencyRun latency_run(std::uint16_t port, const fs::path& db, std::uint64_t rows) {
  remove_db(db);
  LatencyRun run;
  {
    const std::string lat_gateway = "gw-latency";
    const std::string lat_prefix = "meterd/" + lat_gateway;
    Store store = open_store(db);
    asio::io_context io;
    UplinkDriver driver(io);
    std::unique_ptr<fw::Uplink> uplink;
    std::unique_ptr<RecordingLink> link;
    std::unordered_map<std::int64_t, Clock::time_point> appended;
    const std::uint64_t appends = (rows + per_meter - 1) / per_meter;
    std::uint64_t made = 0, stored = 0;
    asio::steady_timer pacer(io);
    Clock::time_point start;
    std::string failure;

    std::function<void()> append_next = [&] {
      const std::uint64_t k = made++;
      const std::int64_t now = wall_ms();
      Batch b;
      for (int q = 0; q < per_meter; ++q)
        b.readings.push_back(make_reading(k / meters, static_cast<int>(k % meters), q, now));
      b.now_ms = now;
      const auto r = store.append(b);
      if (!r) {
        failure = "append: " + r.error().message;
        io.stop();
        return;
      }
      const auto t = Clock::now();
      for (auto seq = r->first_seq; seq <= r->last_seq; ++seq) appended[seq] = t;
      stored += b.readings.size();
      uplink->notify_appended(wall_ms(), b.readings.size());
      driver.kick();
      if (made < appends) {
        pacer.expires_at(start + static_cast<int>(made) * pace);
        pacer.async_wait([&](const boost::system::error_code& ec) {
          if (!ec) append_next();
        });
      }
    };

    meterd::drivers::MqttHooks hooks;
    hooks.on_connected = [&](bool) {
      uplink->on_connected(wall_ms());
      driver.kick();
      start = Clock::now();
      append_next();
    };
    hooks.on_disconnected = [&](const std::string& why) {
      failure = "disconnected: " + why;
      io.stop();
    };
    hooks.on_published = [&](int mid, int reason) {
      const auto t = Clock::now();
      const auto sent = link->take(mid);
      uplink->on_published(mid, reason, wall_ms());
      uplink->flush_acks();  // the row is gone from the buffer here
      const auto t_deleted = Clock::now();
      if (sent) {
        ++run.publishes;
        for (const std::int64_t seq : sent->seqs) {
          const auto a = appended.find(seq);
          if (a == appended.end()) continue;
          run.to_puback.push_back(ms_between(a->second, t));
          run.lingered.push_back(ms_between(a->second, sent->at));
          run.link.push_back(ms_between(sent->at, t));
          run.to_deleted.push_back(ms_between(a->second, t_deleted));
        }
      }
      if (made == appends && uplink->counters().acked_rows >= stored) {
        driver.stop();
        io.stop();
        return;
      }
      driver.kick();
    };
    meterd::drivers::MqttClient client(io, mqtt_settings(port, lat_prefix), std::move(hooks));
    link = std::make_unique<RecordingLink>(client);
    uplink = std::make_unique<fw::Uplink>(uplink_settings(lat_gateway, lat_prefix), store, *link);
    driver.attach(*uplink);
    asio::steady_timer deadline(io);
    deadline.expires_after(pace * static_cast<int>(appends) + std::chrono::seconds(30));
    deadline.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      failure = "not every row acked in time";
      io.stop();
    });
    client.start();
    io.run();
    client.stop();
    if (!failure.empty()) die("latency run: " + failure);
    if (run.to_puback.size() != stored) die("latency run: rows acked but not matched to appends");
  }
  remove_db(db);
  return run;
}

// ---- the bench -------------------------------------------------------------------------------

// Runs one drain in a fresh process (this program with --child) and returns what it wrote.
json drain_in_child(const Options& o, const std::string& side, const fs::path& db,
                    const fs::path& dir, std::uint16_t port) {
  const fs::path out = dir / "child.json";
  const fs::path log = dir / "child.log";
  fs::remove(out);
  const std::vector<std::string> args{"--child", side,         "--db",   db.string(),
                                      "--out",   out.string(), "--port", std::to_string(port)};
  std::vector<std::string> all = args;
  if (o.smoke) all.emplace_back("--smoke");
  meterd::testing::Process child(fs::read_symlink("/proc/self/exe").string(), all, log);
  const auto until = Clock::now() + std::chrono::seconds(o.smoke ? 90 : 1200);
  while (child.running() && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int status = child.stop();
  if (status != 0 || !fs::exists(out)) {
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string why = fs::exists(out) ? meterd::testing::read_json(out).value("failure", "") : "";
    die(side + " drain failed (exit " + std::to_string(status) + ") " + why + "\n" + text);
  }
  return meterd::testing::read_json(out);
}

double mib(double kib) { return kib / 1024.0; }

struct Drains {
  std::vector<double> uplink, baseline, ratio;     // readings/s
  std::vector<double> uplink_cpu, baseline_cpu;    // CPU s of the drain's process
  std::vector<double> rss_start, hwm_end, growth;  // KiB, uplink process
  // Where the uplink's drain time goes, s per million readings: wall, in pump (of which in
  // MqttClient::publish), in on_published (the buffer ack), and the rest; and the two steps
  // of a pump timed apart in the baseline's preparation: rows read, payloads built.
  std::vector<double> wall, pump, publish, puback, rest, read, build, ack_ms;
  bool peak_reset = true, v5 = true;
  std::uint64_t mismatches = 0;
};

int run_bench(const Options& o, const fs::path& dir) {
  meterd::testing::BrokerOptions bo;
  bo.extra_config = broker_config;
  meterd::testing::Broker broker(bo);
  Counter counter(broker.port());
  int major = 0, minor = 0, revision = 0;
  mosquitto_lib_version(&major, &minor, &revision);
  std::printf(
      "meterd uplink benchmark: mosquitto on 127.0.0.1:%u (max_inflight_messages 32), "
      "libmosquitto %d.%d.%d, buffer files in %s\n",
      broker.port(), major, minor, revision, dir.c_str());
  std::printf(
      "uplink: batch_max %u, linger %u ms, inflight_max %u, no drain cap; buffer: meterd's "
      "defaults (Sync::full, cache %u KiB)%s\n",
      batch_max, linger_ms, inflight_max, fw::BufferConfig{}.cache_kib,
      o.smoke ? "  [smoke run: sizes too small to mean anything]" : "");

  const fs::path backlog = dir / "backlog.db";
  const fs::path round_db = dir / "round.db";
  progress("filling the backlog");
  const auto t_fill = Clock::now();
  fill_backlog(backlog, o.backlog);
  const double fill_s = seconds_since(t_fill);
  Counter::Tally expected;
  {
    const auto payloads = backlog_payloads(backlog, round_db);
    expected.messages = payloads.size();
    for (const auto& p : payloads) expected.bytes += p.size();
    expected.hash_sum = hash_sum(payloads);
  }
  std::printf(
      "backlog: %llu readings of %d meters x %d quantities (exact decimals, ts increasing), "
      "%.1f MiB file, filled in %.1f s; %llu payloads, %.1f MiB, %.0f bytes a reading\n",
      static_cast<unsigned long long>(o.backlog), meters, per_meter,
      static_cast<double>(fs::file_size(backlog)) / (1 << 20), fill_s,
      static_cast<unsigned long long>(expected.messages),
      static_cast<double>(expected.bytes) / (1 << 20),
      static_cast<double>(expected.bytes) / static_cast<double>(o.backlog));

  Drains d;
  std::vector<LatencyRun> latency;
  for (int round = 0; round < o.rounds; ++round) {
    // Alternate which side goes first, so neither always runs on a warmer machine.
    const std::vector<std::string> sides = round % 2 == 0
                                               ? std::vector<std::string>{"uplink", "baseline"}
                                               : std::vector<std::string>{"baseline", "uplink"};
    double rate[2] = {NAN, NAN};
    for (const auto& side : sides) {
      copy_db(backlog, round_db);
      counter.reset();
      const json r = drain_in_child(o, side, round_db, dir, broker.port());
      const Counter::Tally got =
          counter.wait(readings_topic, expected.messages, std::chrono::seconds(60));
      remove_db(round_db);
      if (got.messages != expected.messages || got.bytes != expected.bytes ||
          got.hash_sum != expected.hash_sum) {
        ++d.mismatches;
        std::printf(
            "  round %d, %s: the subscriber got %llu messages, %llu bytes, not the %llu, "
            "%llu expected (or other payloads)\n",
            round + 1, side.c_str(), static_cast<unsigned long long>(got.messages),
            static_cast<unsigned long long>(got.bytes),
            static_cast<unsigned long long>(expected.messages),
            static_cast<unsigned long long>(expected.bytes));
      }
      const double readings = r.at("readings").get<double>();
      const double seconds = r.at("seconds").get<double>();
      const double per_s = readings / seconds;
      const double cpu_per_m = r.at("cpu_s").get<double>() * 1e6 / readings;
      if (side == "uplink") {
        rate[0] = per_s;
        d.uplink.push_back(per_s);
        d.uplink_cpu.push_back(cpu_per_m);
        const double start = r.at("rss_start_kib").get<double>();
        const double hwm = r.at("hwm_end_kib").get<double>();
        d.rss_start.push_back(start);
        d.hwm_end.push_back(hwm);
        d.growth.push_back(hwm - start);
        d.peak_reset = d.peak_reset && r.value("peak_reset", false);
        d.v5 = d.v5 && r.value("v5", false);
        const double per_m = 1e6 / readings;
        const double pump = r.at("pump_s").get<double>(), puback = r.at("puback_s").get<double>();
        d.wall.push_back(seconds * per_m);
        d.pump.push_back(pump * per_m);
        d.publish.push_back(r.at("publish_s").get<double>() * per_m);
        d.puback.push_back(puback * per_m);
        d.rest.push_back((seconds - pump - puback) * per_m);
        d.ack_ms.push_back(puback * 1e3 / r.at("pubacks").get<double>());
        if (r.at("left").get<std::uint64_t>() != 0 || r.at("requeued_rows").get<std::uint64_t>() ||
            r.at("publish_failures").get<std::uint64_t>()) {
          std::printf("  round %d, uplink: %s\n", round + 1, r.dump().c_str());
        }
      } else {
        rate[1] = per_s;
        d.baseline.push_back(per_s);
        d.baseline_cpu.push_back(cpu_per_m);
        d.read.push_back(r.at("read_s").get<double>() * 1e6 / readings);
        d.build.push_back(r.at("build_s").get<double>() * 1e6 / readings);
      }
      progress("round " + std::to_string(round + 1) + ", " + side + ": " +
               std::to_string(static_cast<long long>(per_s)) + " readings/s in " +
               std::to_string(seconds) + " s");
    }
    d.ratio.push_back(rate[0] / rate[1]);
    latency.push_back(latency_run(broker.port(), dir / "latency.db", o.latency_rows));
    progress("round " + std::to_string(round + 1) + ", latency: p50 " +
             std::to_string(percentile(latency.back().to_puback, 50)) + " ms");
  }

  // ---- 1
  std::printf(
      "\n1. drain of the backlog, every row acked (the buffer empty at the end), against a bare "
      "libmosquitto publisher of the same payloads; %d rounds of each, alternating, each drain "
      "in a fresh process from the same file; medians\n",
      o.rounds);
  std::printf("  %-8s %14s %14s %8s\n", "round", "uplink", "baseline", "ratio");
  for (std::size_t i = 0; i < d.uplink.size(); ++i)
    std::printf("  %-8zu %14.0f %14.0f %8.3f\n", i + 1, d.uplink[i], d.baseline[i], d.ratio[i]);
  std::printf("  %-8s %14.0f %14.0f %8.3f  readings/s; ratio min..max %.3f..%.3f (goal >= 0.7)\n",
              "median", median(d.uplink), median(d.baseline), median(d.ratio),
              *std::min_element(d.ratio.begin(), d.ratio.end()),
              *std::max_element(d.ratio.begin(), d.ratio.end()));
  std::printf(
      "  %-8s %14.2f %14.2f %8s  CPU s per million readings (the drain's process, all "
      "threads)\n",
      "CPU", median(d.uplink_cpu), median(d.baseline_cpu), "");
  std::printf(
      "  payloads identical on both sides (count, bytes, hash at the subscriber): %s; "
      "MQTT %s\n",
      d.mismatches == 0 ? "yes" : "NO", d.v5 ? "5" : "3.1.1 (!)");

  std::printf(
      "  where the uplink's drain time goes, s per million readings (medians; the loop thread "
      "does all of it in turn):\n");
  std::printf("    %-66s %7.2f\n", "the drain, wall time", median(d.wall));
  std::printf("    %-66s %7.2f\n",
              "in Uplink::pump (next_unsent_events, next_unsent, payload, publish)",
              median(d.pump));
  std::printf("    %-66s %7.2f\n", "  of which MqttClient::publish", median(d.publish));
  std::printf("    %-66s %7.2f  (%.2f ms a PUBACK)\n",
              "in Uplink::on_published (bookkeeping; the DELETE is in pump)", median(d.puback),
              median(d.ack_ms));
  std::printf("    %-66s %7.2f\n", "the rest (waiting for PUBACKs, the loop, hooks)",
              median(d.rest));
  std::printf("    %-66s %7.2f\n", "for scale: next_unsent(500) + mark_inflight alone, same rows",
              median(d.read));
  std::printf("    %-66s %7.2f\n", "for scale: readings_payload alone, same rows", median(d.build));

  // ---- 2
  std::vector<double> p50, p99, pooled, pooled_linger, pooled_link, pooled_deleted;
  std::uint64_t publishes = 0, rows = 0;
  for (const auto& l : latency) {
    p50.push_back(percentile(l.to_puback, 50));
    p99.push_back(percentile(l.to_puback, 99));
    pooled.insert(pooled.end(), l.to_puback.begin(), l.to_puback.end());
    pooled_linger.insert(pooled_linger.end(), l.lingered.begin(), l.lingered.end());
    pooled_link.insert(pooled_link.end(), l.link.begin(), l.link.end());
    pooled_deleted.insert(pooled_deleted.end(), l.to_deleted.begin(), l.to_deleted.end());
    publishes += l.publishes;
    rows += l.to_puback.size();
  }
  std::printf(
      "\n2. read-to-PUBACK latency, linger %u ms: %d readings (one meter's read) appended every "
      "%lld ms, %llu readings a run, %d runs; ms\n",
      linger_ms, per_meter, static_cast<long long>(pace.count()),
      static_cast<unsigned long long>(o.latency_rows), o.rounds);
  std::printf("  %-44s %9s %9s\n", "", "p50", "p99");
  std::printf("  %-44s %9.1f %9.1f  (runs: p50 %.1f..%.1f, p99 %.1f..%.1f)\n",
              "append -> PUBACK, median of the runs", median(p50), median(p99),
              *std::min_element(p50.begin(), p50.end()), *std::max_element(p50.begin(), p50.end()),
              *std::min_element(p99.begin(), p99.end()), *std::max_element(p99.begin(), p99.end()));
  std::printf("  %-44s %9.1f %9.1f\n", "append -> PUBACK, all rows pooled", percentile(pooled, 50),
              percentile(pooled, 99));
  std::printf("  %-44s %9.1f %9.1f\n", "  of which append -> publish (lingering)",
              percentile(pooled_linger, 50), percentile(pooled_linger, 99));
  std::printf("  %-44s %9.1f %9.1f\n", "  of which publish -> PUBACK (the link)",
              percentile(pooled_link, 50), percentile(pooled_link, 99));
  std::printf("  %-44s %9.1f %9.1f\n", "append -> row deleted (PUBACK + ack)",
              percentile(pooled_deleted, 50), percentile(pooled_deleted, 99));
  std::printf("  %.1f readings a publish (%llu rows in %llu publishes)\n",
              publishes ? static_cast<double>(rows) / static_cast<double>(publishes) : 0.0,
              static_cast<unsigned long long>(rows), static_cast<unsigned long long>(publishes));

  // ---- 3
  std::printf(
      "\n3. resident memory of the uplink's process during a drain (the process runs only the "
      "drain; VmHWM %s at the CONNACK), MiB, median of %d drains\n",
      d.peak_reset ? "reset to VmRSS"
                   : "NOT reset (no /proc/self/clear_refs): the peak may "
                     "predate the drain",
      o.rounds);
  std::printf("  VmRSS at the CONNACK (store open, client connected):  %7.2f\n",
              mib(median(d.rss_start)));
  std::printf("  VmHWM at the end of the drain:                        %7.2f\n",
              mib(median(d.hwm_end)));
  std::printf("  peak growth during the drain:                         %7.2f  (runs %.2f..%.2f)\n",
              mib(median(d.growth)), mib(*std::min_element(d.growth.begin(), d.growth.end())),
              mib(*std::max_element(d.growth.begin(), d.growth.end())));
  return d.uplink.empty() || pooled.empty() ? 1 : 0;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--rounds") {
      o.rounds = std::max(1, std::stoi(value()));
    } else if (a == "--backlog") {
      o.backlog = std::max<std::uint64_t>(1, std::stoull(value()));
    } else if (a == "--latency-rows") {
      o.latency_rows = std::max<std::uint64_t>(per_meter, std::stoull(value()));
    } else if (a == "--dir") {
      o.dir = value();
    } else if (a == "--smoke") {
      o.smoke = true;
      o.rounds = 1;
      o.backlog = 5000;
      o.latency_rows = 200;
    } else if (a == "--child") {  // internal: one drain (section 3)
      o.child_side = value();
      if (o.child_side != "uplink" && o.child_side != "baseline") die("--child uplink|baseline");
    } else if (a == "--db") {
      o.child_db = value();
    } else if (a == "--out") {
      o.child_out = value();
    } else if (a == "--port") {
      o.port = static_cast<std::uint16_t>(std::stoul(value()));
    } else {
      std::fprintf(stderr,
                   "usage: bench_uplink [--rounds N] [--backlog N] [--latency-rows N] [--dir DIR] "
                   "[--smoke]\n");
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!o.child_side.empty()) return run_child(o);
  meterd::drivers::mqtt_library_init();
  std::string tmpl = o.dir + "/meterd-bench-uplink-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) die("mkdtemp in " + o.dir);
  const fs::path dir = tmpl;
  int rc = 1;
  try {
    rc = run_bench(o, dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_uplink: %s\n", e.what());
  }
  fs::remove_all(dir);
  return rc;
}
