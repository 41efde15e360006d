// The uplink's policy (docs/design.md "Uplink"): what leaves the buffer,
// in which order, in which batches, how fast, and when a row may be
// deleted. The MQTT client is behind UplinkLink (drivers::MqttClient in
// meterd, a fake in unit tests); the clock is passed in. Runs on the
// io_context thread; the Store is the daemon's.
//
// Rules:
// - Rows go out in seq order: next_unsent() hands out the lowest unsent
//   seqs; events among them are published first (one message each on
//   <prefix>/events), then the readings as one batch on <prefix>/readings.
// - QoS 1, at most inflight_max publishes unacknowledged. A row is acked
//   (deleted) in the buffer only on its publish's PUBACK; on a disconnect
//   everything in flight is requeued and goes again from the lowest seq.
// - A partial batch (fewer than batch_max readings) waits up to linger_ms
//   from the moment the uplink first saw it, so a round of meter reads
//   travels together; a full batch goes at once.
// - A backlog drains no faster than drain_max_per_s rows per second above the
//   gateway's live production (token bucket: time refills one second's worth,
//   each row appended while connected adds one), so gateways coming back
//   together do not flatten the head-end, and live rows are never held back.
//   A capped publish waits for min(batch_max, cap) rows of budget. 0 = no cap.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "buffer/store.hpp"
#include "drivers/mqtt.hpp"

namespace meterd::firmware {

// What the uplink needs of the MQTT client.
class UplinkLink {
 public:
  virtual ~UplinkLink() = default;
  virtual bool connected() const = 0;
  // The mid of the queued publish, or nullopt (not connected, refused).
  virtual std::optional<int> publish(const std::string& topic, const std::string& payload, int qos,
                                     bool retain, const std::string& correlation_data) = 0;
};

// UplinkLink over the real MQTT client.
class MqttLink final : public UplinkLink {
 public:
  explicit MqttLink(drivers::MqttClient& client) : client_(client) {}
  bool connected() const override { return client_.connected(); }
  std::optional<int> publish(const std::string& topic, const std::string& payload, int qos,
                             bool retain, const std::string& correlation_data) override {
    return client_.publish(topic, payload, qos, retain, correlation_data);
  }

 private:
  drivers::MqttClient& client_;
};

struct UplinkSettings {
  std::string gateway;       // gateway.id
  std::string topic_prefix;  // <prefix>
  unsigned batch_max = 500;
  unsigned linger_ms = 200;
  unsigned inflight_max = 32;
  unsigned drain_max_per_s = 0;
  std::string version;  // meterd's version, in the birth message
  std::int64_t started_ms = 0;
};

struct UplinkCounters {
  std::uint64_t publishes = 0;      // reading batches and events published (QoS 1)
  std::uint64_t readings_sent = 0;  // readings in those publishes (resends included)
  std::uint64_t events_sent = 0;
  std::uint64_t acked_rows = 0;        // rows deleted from the buffer after PUBACK
  std::uint64_t requeued_rows = 0;     // rows put back after a disconnect
  std::uint64_t refused = 0;           // PUBACKs with a reason >= 0x80 (rows requeued)
  std::uint64_t publish_failures = 0;  // publish calls the client refused
  std::uint64_t ack_failures = 0;      // buffer acks that failed (retried)
  std::uint64_t connects = 0;
  std::uint64_t disconnects = 0;
  std::optional<std::int64_t> last_puback_ms;
  std::optional<std::int64_t> connected_since_ms;
};

class Uplink {
 public:
  Uplink(UplinkSettings settings, buffer::Store& store, UplinkLink& link);

  // The link is up: publishes the retained birth message and starts pumping.
  void on_connected(std::int64_t now_ms);
  // The link is down: everything in flight goes back to unsent.
  void on_disconnected(std::int64_t now_ms);
  // A PUBACK (or a QoS 0 write) for `mid`; reason >= 0x80: refused, requeue.
  // The rows are deleted from the buffer at the next pump() (or flush_acks()),
  // with every other PUBACK that arrived meanwhile, in one transaction.
  void on_published(int mid, int reason, std::int64_t now_ms);
  // Deletes the acknowledged rows now; false if the buffer refused (kept, retried).
  bool flush_acks();

  // `rows` were appended to the buffer: starts the linger clock and, while
  // connected, adds their budget to the drain cap (live rows are never held
  // back by the cap; only a backlog is).
  void notify_appended(std::int64_t now_ms, std::size_t rows);
  // Publishes whatever may go now. Returns when it wants to be called again
  // (linger or rate cap pending), or nullopt when it waits for an event
  // (append, PUBACK, connect).
  std::optional<std::int64_t> pump(std::int64_t now_ms);

  // QoS 0 health message on <prefix>/health (not buffered: a missed one is
  // simply superseded by the next). Returns whether it was handed to the link.
  bool publish_health(const nlohmann::json& health);
  // QoS 1 command result on <prefix>/cmd/result, and on the MQTT 5 response
  // topic with its correlation data when the command carried one.
  void publish_result(const std::string& payload, const std::string& response_topic,
                      const std::string& correlation_data);

  // The retained offline status, published by a clean stop before DISCONNECT.
  void publish_offline();

  const UplinkCounters& counters() const noexcept { return counters_; }
  std::size_t inflight_publishes() const noexcept { return inflight_.size(); }
  nlohmann::json health_counters() const;  // the uplink part of <prefix>/health

  // Payloads (public for tests; docs/contracts.md "MQTT").
  static std::string birth_payload(const std::string& version, std::int64_t started_ms);
  static std::string offline_payload();

 private:
  UplinkSettings settings_;
  buffer::Store& store_;
  UplinkLink& link_;
  UplinkCounters counters_;
  std::map<int, std::vector<std::int64_t>> inflight_;  // mid -> seqs
  std::vector<std::int64_t> acks_pending_;             // acked by the broker, not yet deleted
  std::optional<std::int64_t> pending_since_ms_;       // a partial batch has waited since
  std::optional<std::int64_t> hold_until_ms_;          // after a refused PUBACK
  double tokens_ = 0;                                  // drain rate bucket
  std::optional<std::int64_t> tokens_at_ms_;
  std::uint64_t batch_no_ = 0;
};

// Payload builders (pure; exact numbers, UTC ISO 8601 with ms).
std::string iso8601_ms(std::int64_t ms);  // "2026-12-01T04:53:33.123Z"
std::string readings_payload(const std::string& gateway, std::uint64_t batch,
                             const std::vector<buffer::Reading>& readings);
std::string event_payload(const buffer::Event& event);
// One row of the control socket's tail and export (docs/control.md "A row"), one line of JSON:
// a reading exactly as in readings_payload(), an event as {seq, meter, event, ts, data}.
// meterctl's offline export writes the same text, so both paths give the same file.
std::string reading_json(const buffer::Reading& reading);
std::string event_row_json(const buffer::Event& event);

}  // namespace meterd::firmware
