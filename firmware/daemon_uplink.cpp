// The daemon's uplink wiring: the MQTT client, the Uplink's pump and timer,
// the health message (docs/design.md "Uplink", docs/contracts.md "MQTT").
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "firmware/daemon.hpp"

namespace meterd::firmware {

namespace asio = boost::asio;

namespace {

// The password file's first line (a trailing newline is not part of it).
std::string read_secret(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("mqtt.password_file " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

drivers::MqttSettings mqtt_settings(const Config& c) {
  drivers::MqttSettings s;
  const MqttConfig& m = c.mqtt;
  s.client_id = m.client_id;
  s.host = m.host;
  s.port = m.port;
  s.keepalive = m.keepalive;
  s.username = m.username;
  if (!m.password_file.empty()) s.password = read_secret(m.password_file);
  s.tls_ca_file = m.tls_ca_file;
  s.tls_cert_file = m.tls_cert_file;
  s.tls_key_file = m.tls_key_file;
  s.will_topic = m.topic_prefix + "/status";
  s.will_payload = Uplink::offline_payload();
  s.will_retain = true;
  s.will_qos = 1;
  s.protocol = m.protocol == "5"       ? drivers::MqttProtocol::v5
               : m.protocol == "3.1.1" ? drivers::MqttProtocol::v311
                                       : drivers::MqttProtocol::automatic;
  s.reconnect_min = m.reconnect_min;
  s.reconnect_max = m.reconnect_max;
  s.inflight_max = m.inflight_max;
  return s;
}

bool same_mqtt(const MqttConfig& a, const MqttConfig& b) {
  return a.enabled == b.enabled && a.client_id == b.client_id && a.host == b.host &&
         a.port == b.port && a.topic_prefix == b.topic_prefix && a.batch_max == b.batch_max &&
         a.linger_ms == b.linger_ms && a.inflight_max == b.inflight_max &&
         a.drain_max_per_s == b.drain_max_per_s && a.keepalive == b.keepalive &&
         a.protocol == b.protocol && a.reconnect_min == b.reconnect_min &&
         a.reconnect_max == b.reconnect_max && a.health_interval == b.health_interval &&
         a.username == b.username && a.password_file == b.password_file &&
         a.tls_ca_file == b.tls_ca_file && a.tls_cert_file == b.tls_cert_file &&
         a.tls_key_file == b.tls_key_file;
}

}  // namespace

bool Daemon::uplink_changed(const Config& old) const {
  return !same_mqtt(old.mqtt, config_.mqtt) ||
         old.commands.hmac_key_file != config_.commands.hmac_key_file;
}

void Daemon::start_uplink() {
  // The command key and the replay guard, even without MQTT (the control
  // socket will take commands too).
  hmac_key_.clear();
  key_problem_.clear();
  if (!config_.commands.hmac_key_file.empty()) {
    std::string error;
    if (auto key = load_key_file(config_.commands.hmac_key_file, error))
      hmac_key_ = std::move(*key);
    else
      key_problem_ = error;
    if (!key_problem_.empty())
      spdlog::error("commands: {}: signed commands are refused", key_problem_);
  }
  if (!guard_) {
    auto state = store_->get_state(replay_guard_owner, "cmd.replay_guard");
    if (!state) {
      spdlog::error("commands: cannot read the replay guard: {}; signed commands are refused",
                    state.error().message);
    } else if (auto g = ReplayGuard::from_state(state->value_or(""))) {
      guard_ = std::move(*g);
    } else {
      spdlog::error("commands: the stored replay guard is unreadable; signed commands are refused");
    }
  }

  if (!config_.mqtt.enabled) {
    spdlog::warn("no [mqtt] table: the uplink is off, readings stay in the buffer");
    return;
  }
  drivers::mqtt_library_init();
  drivers::MqttHooks hooks;
  hooks.on_connected = [this](bool v5) {
    spdlog::info("mqtt: connected to {}:{} (MQTT {})", config_.mqtt.host, config_.mqtt.port,
                 v5 ? "5" : "3.1.1");
    uplink_->on_connected(now_ms_());
    kick_uplink();
  };
  hooks.on_disconnected = [this](const std::string& why) {
    const bool was_up = uplink_->counters().connected_since_ms.has_value();
    if (was_up)
      spdlog::warn("mqtt: disconnected: {}", why);
    else
      spdlog::warn("mqtt: cannot connect to {}:{}: {}", config_.mqtt.host, config_.mqtt.port, why);
    uplink_->on_disconnected(now_ms_());
    if (was_up) {
      if (auto st = store_->stats())
        spdlog::info("mqtt: {} rows wait in the buffer", st->readings + st->events);
    }
  };
  hooks.on_published = [this](int mid, int reason) {
    uplink_->on_published(mid, reason, now_ms_());
    // One pump after a burst of PUBACKs, not one per PUBACK: the acks are
    // deleted together and the window refilled at once.
    if (kick_posted_) return;
    kick_posted_ = true;
    asio::post(io_, [this, alive = std::weak_ptr<Inbox>(inbox_)] {
      if (!alive.lock()) return;
      kick_posted_ = false;
      kick_uplink();
    });
  };
  hooks.on_message = [this](drivers::MqttMessage m) { on_command(std::move(m)); };
  mqtt_ = std::make_unique<drivers::MqttClient>(io_, mqtt_settings(config_), std::move(hooks));
  link_ = std::make_unique<MqttLink>(*mqtt_);
  UplinkSettings us;
  us.gateway = config_.gateway.id;
  us.topic_prefix = config_.mqtt.topic_prefix;
  us.batch_max = config_.mqtt.batch_max;
  us.linger_ms = config_.mqtt.linger_ms;
  us.inflight_max = config_.mqtt.inflight_max;
  us.drain_max_per_s = config_.mqtt.drain_max_per_s;
  us.version = meterd_version;
  us.started_ms = started_ms_;
  uplink_ = std::make_unique<Uplink>(us, *store_, *link_);
  mqtt_->subscribe(config_.mqtt.topic_prefix + "/cmd/+", 1);
  spdlog::info("mqtt: uplink to {}:{}{} as {}, topics {}/#", config_.mqtt.host, config_.mqtt.port,
               config_.mqtt.tls_ca_file.empty() ? "" : " (TLS)", config_.mqtt.client_id,
               config_.mqtt.topic_prefix);
  mqtt_->start();
  arm_health();
}

void Daemon::stop_uplink() {
  uplink_timer_.cancel();
  health_timer_.cancel();
  uplink_wake_ms_.reset();
  if (mqtt_) {
    if (mqtt_->connected()) uplink_->publish_offline();
    mqtt_->stop();
    uplink_->on_disconnected(now_ms_());  // in flight → unsent (no hook runs after stop)
    if (auto st = store_->stats(); st && st->readings + st->events > 0)
      spdlog::info("mqtt: stopped; {} rows wait in the buffer", st->readings + st->events);
  }
  uplink_.reset();
  link_.reset();
  mqtt_.reset();
}

void Daemon::kick_uplink() {
  if (!uplink_ || stopped_) return;
  const std::int64_t now = now_ms_();
  const auto wake = uplink_->pump(now);
  if (!wake) return;
  if (uplink_wake_ms_ && *uplink_wake_ms_ <= *wake) return;  // an earlier wake is armed
  uplink_wake_ms_ = *wake;
  uplink_timer_.expires_after(std::chrono::milliseconds(std::max<std::int64_t>(*wake - now, 0)));
  uplink_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    uplink_wake_ms_.reset();
    kick_uplink();
  });
}

void Daemon::arm_health() {
  if (stopped_ || !uplink_) return;
  health_timer_.expires_after(config_.mqtt.health_interval);
  health_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || !uplink_) return;
    uplink_->publish_health(health());
    arm_health();
  });
}

nlohmann::json Daemon::meters_summary() const {
  unsigned online = 0, offline = 0, unknown = 0;
  nlohmann::json offline_ids = nlohmann::json::array();
  for (const auto& m : config_.meters) {
    const MeterTiming* t = schedule_.timing(m.id);
    const Presence p = t ? t->presence : Presence::unknown;
    if (p == Presence::online) {
      ++online;
    } else if (p == Presence::offline) {
      ++offline;
      offline_ids.push_back(m.id);
    } else {
      ++unknown;
    }
  }
  return {{"total", config_.meters.size()},
          {"online", online},
          {"offline", offline},
          {"unknown", unknown},
          {"offline_ids", std::move(offline_ids)}};
}

nlohmann::json Daemon::health() const {
  const std::int64_t now = now_ms_();
  nlohmann::json h{{"gateway", config_.gateway.id},
                   {"ts", iso8601_ms(now)},
                   {"version", meterd_version},
                   {"uptime_s", (now - started_ms_) / 1000}};
  if (store_) {
    auto& s = const_cast<buffer::Store&>(*store_);  // stats() reads only
    if (auto st = s.stats()) {
      nlohmann::json b{{"readings", st->readings},
                       {"events", st->events},
                       {"inflight", st->inflight},
                       {"db_bytes", st->db_bytes},
                       {"evicted_readings", st->evicted_readings},
                       {"evicted_events", st->evicted_events}};
      b["oldest_unsent_age_s"] = st->oldest_unsent_ts_ms
                                     ? nlohmann::json((now - *st->oldest_unsent_ts_ms) / 1000)
                                     : nlohmann::json(nullptr);
      h["buffer"] = std::move(b);
    }
  }
  h["meters"] = meters_summary();
  nlohmann::json buses = nlohmann::json::object();
  for (const auto& [name, bus] : buses_) {
    const drivers::BusStats s = bus.worker->stats();
    buses[name] = {{"up", s.up},
                   {"last_error", s.last_error},
                   {"jobs", s.jobs},
                   {"queued", s.queued},
                   {"attempts", s.tally.attempts},
                   {"timeouts", s.tally.timeouts},
                   {"bad_frames", s.tally.bad_frames},
                   {"mismatches", s.tally.mismatches},
                   {"exceptions", s.tally.meter_errors},
                   {"missed_slots", schedule_.missed_slots(name)}};
  }
  h["buses"] = std::move(buses);
  if (uplink_) h["uplink"] = uplink_->health_counters();
  return h;
}

}  // namespace meterd::firmware
