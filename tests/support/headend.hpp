// System-tier test support: the utility's head-end as seen from a test. An
// MQTT 5 client on libmosquitto directly (not meterd's drivers/mqtt, which it
// exists to check), with its own network thread: it records every message on
// its filters and publishes downlink commands.
//
// libmosquitto reconnects it by itself (about 1 s after a broker restart)
// and it subscribes again on every connect, so one HeadEnd can outlive a
// broker restart. Thread-safe: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

struct mosquitto;
struct mosquitto_message;
struct mqtt5__property;

namespace meterd::testing {

struct HeadEndMessage {
  std::string topic;
  std::string payload;
  bool retained = false;  // delivered from the broker's retained store
  int qos = 0;
  std::string response_topic;                // MQTT 5 property, "" when absent
  std::string correlation_data;              // MQTT 5 property, raw bytes, "" when absent
  std::chrono::steady_clock::time_point at;  // arrival
};

struct HeadEndOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  std::string client_id;                            // "": a unique test-headend-<pid>-<n>
  std::vector<std::string> filters{"meterd/gw/#"};  // subscribed with QoS 1
  // TLS when ca_file is set; a client certificate when cert_file/key_file are.
  std::string ca_file, cert_file, key_file;
  std::chrono::milliseconds timeout{5000};  // for the first CONNACK + SUBACKs
};

class HeadEnd {
 public:
  // Connects and subscribes; returns once the SUBACKs are in. Throws
  // std::runtime_error when that does not happen within options.timeout.
  explicit HeadEnd(HeadEndOptions options);
  HeadEnd(std::uint16_t port, std::string filter = "meterd/gw/#");
  ~HeadEnd();
  HeadEnd(const HeadEnd&) = delete;
  HeadEnd& operator=(const HeadEnd&) = delete;

  // Connected and subscribed to every filter.
  bool connected() const;
  bool wait_connected(std::chrono::milliseconds timeout) const;

  // Every message so far, in arrival order.
  std::vector<HeadEndMessage> messages() const;
  void clear();
  // Waits until `done(messages())` holds; false on timeout.
  bool wait_for(const std::function<bool(const std::vector<HeadEndMessage>&)>& done,
                std::chrono::milliseconds timeout) const;
  // Waits for a message on exactly `topic`; the first one, or nothing.
  std::vector<HeadEndMessage> wait_topic(const std::string& topic,
                                         std::chrono::milliseconds timeout) const;

  // Publishes (MQTT 5 properties when response_topic / correlation_data are
  // not empty) and, for QoS > 0, waits (bounded, 5 s) for the broker's
  // acknowledgement. False when not connected, refused or not acknowledged.
  bool publish(const std::string& topic, const std::string& payload, int qos = 1,
               bool retain = false, const std::string& response_topic = {},
               const std::string& correlation_data = {});

 private:
  static void on_connect(mosquitto*, void*, int, int, const mqtt5__property*);
  static void on_disconnect(mosquitto*, void*, int, const mqtt5__property*);
  static void on_subscribe(mosquitto*, void*, int, int, const int*, const mqtt5__property*);
  static void on_publish(mosquitto*, void*, int, int, const mqtt5__property*);
  static void on_message(mosquitto*, void*, const mosquitto_message*, const mqtt5__property*);

  HeadEndOptions options_;
  mosquitto* mosq_ = nullptr;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  bool connected_ = false;
  std::set<int> pending_subscribes_;
  std::set<int> acknowledged_;  // mids of QoS > 0 publishes the broker acknowledged
  std::vector<HeadEndMessage> messages_;
};

}  // namespace meterd::testing
