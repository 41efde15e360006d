// The MQTT client (docs/design.md "Uplink"): libmosquitto with its own
// network thread; every callback is posted to the io_context as a value,
// so the uplink (firmware/uplink) sees connects, PUBACKs, disconnects and
// downlink messages on the loop thread only.
//
// Reconnects are ours, not libmosquitto's: after a disconnect (or a failed
// connect) the mosquitto handle is destroyed with whatever it still held,
// and a fresh one connects after a back-off that doubles from
// reconnect_min to reconnect_max, with ±25 % jitter, so a fleet that lost
// its broker together does not come back in step. Nothing is queued inside
// libmosquitto across a disconnect: the buffer is the only queue, and the
// uplink requeues what was in flight (at-least-once).
//
// Protocol: MQTT 5 first (ProtocolVersion::automatic); a broker that
// refuses it ("unsupported protocol version") gets MQTT 3.1.1 from then on.
//
// Connecting never waits on the network on the io thread: libmosquitto's
// connect_async starts a non-blocking TCP connect (and TLS handshake) and the
// loop thread finishes it. What does run synchronously: resolving `host`
// (getaddrinfo; instant for a numeric address, so configure one where a
// resolver may hang) and reading the TLS files. No CONNACK within the
// keepalive (clamped to 5..30 s) counts as a failed attempt.
//
// Thread: construct, call and destroy on the io_context thread. Hooks run
// there too (posted), never inside a libmosquitto callback.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

namespace meterd::drivers {

enum class MqttProtocol { automatic, v5, v311 };

struct MqttSettings {
  std::string client_id;  // required
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  std::chrono::seconds keepalive{60};
  std::string username;
  std::string password;  // the contents of password_file, not the path
  // TLS when ca_file is set; a client certificate when cert_file/key_file are.
  std::string tls_ca_file, tls_cert_file, tls_key_file;
  // Last will (published by the broker when the link dies without DISCONNECT).
  std::string will_topic;
  std::string will_payload;
  bool will_retain = true;
  int will_qos = 1;
  MqttProtocol protocol = MqttProtocol::automatic;
  std::chrono::milliseconds reconnect_min{1000};
  std::chrono::milliseconds reconnect_max{60000};
  unsigned inflight_max = 32;  // libmosquitto's max_inflight_messages
};

// A message from the broker (downlink).
struct MqttMessage {
  std::string topic;
  std::string payload;
  std::string response_topic;    // MQTT 5 property; "" when absent (or 3.1.1)
  std::string correlation_data;  // MQTT 5 property, raw bytes; "" when absent
};

struct MqttHooks {
  // CONNACK accepted and every subscribe() filter acknowledged (SUBACK) on
  // the new session. `v5` says which protocol the session speaks.
  std::function<void(bool v5)> on_connected;
  // The link is down (also after a failed connect attempt); why, for logs.
  // Every publish not yet acknowledged is lost with it.
  std::function<void(const std::string& why)> on_disconnected;
  // The broker acknowledged a QoS 1 publish (PUBACK) or, for QoS 0, the
  // message was written out. MQTT 5: `reason` is the PUBACK reason code
  // (>= 0x80 means refused: treat as not delivered).
  std::function<void(int mid, int reason)> on_published;
  std::function<void(MqttMessage)> on_message;
};

struct MqttCounters {
  std::uint64_t connects = 0;          // CONNACKs accepted
  std::uint64_t connect_failures = 0;  // attempts refused or failed
  std::uint64_t disconnects = 0;       // links lost after a connect
  std::uint64_t published = 0;         // publish calls accepted by libmosquitto
  std::uint64_t acknowledged = 0;      // on_published callbacks
  std::uint64_t received = 0;          // downlink messages
};

class MqttClient {
 public:
  MqttClient(boost::asio::io_context& io, MqttSettings settings, MqttHooks hooks);
  ~MqttClient();  // stop()
  MqttClient(const MqttClient&) = delete;
  MqttClient& operator=(const MqttClient&) = delete;

  // Starts connecting (asynchronously; hooks report the outcome).
  void start();
  // Sends DISCONNECT after whatever was already published (so a retained
  // offline status published just before goes out first; the broker does not
  // publish the will after a clean DISCONNECT), and joins the network thread.
  // Blocks up to `flush` in all: first for the broker to acknowledge what is
  // in flight or queued, then for the DISCONNECT to be written; past it the
  // thread is cancelled (what is left is lost, and the broker publishes the
  // will). No hook runs afterwards, not even for events already posted.
  // Idempotent.
  void stop(std::chrono::milliseconds flush = std::chrono::milliseconds(2000));

  // True from on_connected until the link is lost (before on_disconnected).
  bool connected() const noexcept;
  // The protocol of the current (or last) session.
  bool v5() const noexcept;

  // Subscriptions made on every (re)connect; made at once on a live session.
  void subscribe(std::string topic_filter, int qos);

  // Queues one publish on the live session; returns its mid, or nullopt when
  // not connected or libmosquitto refused it (the caller keeps the rows; a
  // refusal is in last_error()). on_published(mid) comes later, posted, so
  // never before this returns. correlation_data is sent as the MQTT 5
  // property when the session is v5, and dropped on 3.1.1.
  std::optional<int> publish(const std::string& topic, const std::string& payload, int qos,
                             bool retain, const std::string& correlation_data = {});

  MqttCounters counters() const noexcept;
  // Why the last attempt or link failed (libmosquitto's text, with OpenSSL's
  // where there is one), or the last refused publish/subscribe; "" if none.
  std::string last_error() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

// libmosquitto's global init, once per process (thread-safe); the
// MqttClient constructor calls it. No cleanup: process exit does that.
void mqtt_library_init();

}  // namespace meterd::drivers
