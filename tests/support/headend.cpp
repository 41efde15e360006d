#include "tests/support/headend.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <unistd.h>

namespace meterd::testing {

namespace {

void library_init() {
  static std::once_flag once;
  std::call_once(once, [] { mosquitto_lib_init(); });
}

std::string error_text(const char* what, int rc) {
  return std::string("head-end: ") + what + ": " + mosquitto_strerror(rc);
}

}  // namespace

namespace {
HeadEndOptions on_port(std::uint16_t port, std::string filter) {
  HeadEndOptions options;
  options.port = port;
  options.filters = {std::move(filter)};
  return options;
}
}  // namespace

HeadEnd::HeadEnd(std::uint16_t port, std::string filter)
    : HeadEnd(on_port(port, std::move(filter))) {}

HeadEnd::HeadEnd(HeadEndOptions options) : options_(std::move(options)) {
  library_init();
  if (options_.client_id.empty()) {
    static std::atomic<unsigned> counter{0};
    options_.client_id =
        "test-headend-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  }
  mosq_ = mosquitto_new(options_.client_id.c_str(), true, this);
  if (!mosq_) throw std::runtime_error("head-end: mosquitto_new failed");
  mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_reconnect_delay_set(mosq_, 1, 1, false);
  mosquitto_connect_v5_callback_set(mosq_, &HeadEnd::on_connect);
  mosquitto_disconnect_v5_callback_set(mosq_, &HeadEnd::on_disconnect);
  mosquitto_subscribe_v5_callback_set(mosq_, &HeadEnd::on_subscribe);
  mosquitto_publish_v5_callback_set(mosq_, &HeadEnd::on_publish);
  mosquitto_message_v5_callback_set(mosq_, &HeadEnd::on_message);
  const auto fail = [&](const std::string& why) {
    mosquitto_destroy(mosq_);
    mosq_ = nullptr;
    throw std::runtime_error(why);
  };
  if (!options_.ca_file.empty()) {
    const auto opt = [](const std::string& s) { return s.empty() ? nullptr : s.c_str(); };
    const int rc = mosquitto_tls_set(mosq_, options_.ca_file.c_str(), nullptr,
                                     opt(options_.cert_file), opt(options_.key_file), nullptr);
    if (rc != MOSQ_ERR_SUCCESS) fail(error_text("tls_set", rc));
  }
  // Blocking connect: loopback only, so it is quick.
  int rc =
      mosquitto_connect_bind_v5(mosq_, options_.host.c_str(), options_.port, 30, nullptr, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) fail(error_text("connect", rc));
  rc = mosquitto_loop_start(mosq_);
  if (rc != MOSQ_ERR_SUCCESS) fail(error_text("loop_start", rc));
  if (!wait_connected(options_.timeout)) {
    mosquitto_loop_stop(mosq_, true);
    fail("head-end: no CONNACK/SUBACK within the timeout");
  }
}

HeadEnd::~HeadEnd() {
  if (!mosq_) return;
  mosquitto_disconnect(mosq_);
  {
    // The DISCONNECT is written by the network thread; give it a moment.
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(1), [&] { return !connected_; });
  }
  mosquitto_loop_stop(mosq_, true);
  mosquitto_destroy(mosq_);
}

void HeadEnd::on_connect(mosquitto* mosq, void* self_, int rc, int, const mosquitto_property*) {
  auto* self = static_cast<HeadEnd*>(self_);
  if (rc != 0) return;
  std::lock_guard lock(self->mutex_);
  self->pending_subscribes_.clear();
  for (const auto& filter : self->options_.filters) {
    int mid = 0;
    if (mosquitto_subscribe_v5(mosq, &mid, filter.c_str(), 1, 0, nullptr) == MOSQ_ERR_SUCCESS)
      self->pending_subscribes_.insert(mid);
  }
  if (self->pending_subscribes_.empty()) {
    self->connected_ = true;
    self->changed_.notify_all();
  }
}

void HeadEnd::on_disconnect(mosquitto*, void* self_, int, const mosquitto_property*) {
  auto* self = static_cast<HeadEnd*>(self_);
  std::lock_guard lock(self->mutex_);
  self->connected_ = false;
  self->changed_.notify_all();
}

void HeadEnd::on_subscribe(mosquitto*, void* self_, int mid, int, const int*,
                           const mosquitto_property*) {
  auto* self = static_cast<HeadEnd*>(self_);
  std::lock_guard lock(self->mutex_);
  if (self->pending_subscribes_.erase(mid) && self->pending_subscribes_.empty()) {
    self->connected_ = true;
    self->changed_.notify_all();
  }
}

void HeadEnd::on_publish(mosquitto*, void* self_, int mid, int reason, const mosquitto_property*) {
  auto* self = static_cast<HeadEnd*>(self_);
  std::lock_guard lock(self->mutex_);
  if (reason < 0x80) self->acknowledged_.insert(mid);
  self->changed_.notify_all();
}

void HeadEnd::on_message(mosquitto*, void* self_, const mosquitto_message* msg,
                         const mosquitto_property* props) {
  auto* self = static_cast<HeadEnd*>(self_);
  HeadEndMessage m;
  m.topic = msg->topic;
  m.payload.assign(static_cast<const char*>(msg->payload),
                   static_cast<std::size_t>(msg->payloadlen));
  m.retained = msg->retain;
  m.qos = msg->qos;
  m.at = std::chrono::steady_clock::now();
  char* response_topic = nullptr;
  if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &response_topic, false)) {
    m.response_topic = response_topic;
    std::free(response_topic);
  }
  void* data = nullptr;
  std::uint16_t len = 0;
  if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &data, &len, false)) {
    m.correlation_data.assign(static_cast<const char*>(data), len);
    std::free(data);
  }
  std::lock_guard lock(self->mutex_);
  self->messages_.push_back(std::move(m));
  self->changed_.notify_all();
}

bool HeadEnd::connected() const {
  std::lock_guard lock(mutex_);
  return connected_;
}

bool HeadEnd::wait_connected(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return connected_; });
}

std::vector<HeadEndMessage> HeadEnd::messages() const {
  std::lock_guard lock(mutex_);
  return messages_;
}

void HeadEnd::clear() {
  std::lock_guard lock(mutex_);
  messages_.clear();
}

bool HeadEnd::wait_for(const std::function<bool(const std::vector<HeadEndMessage>&)>& done,
                       std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return done(messages_); });
}

std::vector<HeadEndMessage> HeadEnd::wait_topic(const std::string& topic,
                                                std::chrono::milliseconds timeout) const {
  std::vector<HeadEndMessage> found;
  wait_for(
      [&](const std::vector<HeadEndMessage>& all) {
        for (const auto& m : all) {
          if (m.topic == topic) {
            found = {m};
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

bool HeadEnd::publish(const std::string& topic, const std::string& payload, int qos, bool retain,
                      const std::string& response_topic, const std::string& correlation_data) {
  if (!connected()) return false;
  mosquitto_property* props = nullptr;
  if (!response_topic.empty())
    mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, response_topic.c_str());
  if (!correlation_data.empty())
    mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, correlation_data.data(),
                                  static_cast<std::uint16_t>(correlation_data.size()));
  int mid = 0;
  const int rc = mosquitto_publish_v5(mosq_, &mid, topic.c_str(), static_cast<int>(payload.size()),
                                      payload.data(), qos, retain, props);
  mosquitto_property_free_all(&props);
  if (rc != MOSQ_ERR_SUCCESS) return false;
  if (qos == 0) return true;
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, std::chrono::seconds(5),
                           [&] { return acknowledged_.count(mid) > 0; });
}

}  // namespace meterd::testing
