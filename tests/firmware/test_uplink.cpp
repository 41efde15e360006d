// firmware/uplink against a fake link and a :memory: buffer, on a manual
// clock: order, batching, linger, window, PUBACK -> ack, requeue, events
// first, the drain cap, and the payloads' exact numbers.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "buffer/store.hpp"
#include "firmware/uplink.hpp"
#include "tests/buffer/support.hpp"

using namespace meterd;
using firmware::Uplink;

namespace {

struct Sent {
  int mid;
  std::string topic, payload;
  int qos;
  bool retain;
};

class FakeLink : public firmware::UplinkLink {
 public:
  bool up = true;
  bool refuse = false;
  std::vector<Sent> sent;
  bool connected() const override { return up; }
  std::optional<int> publish(const std::string& topic, const std::string& payload, int qos,
                             bool retain, const std::string&) override {
    if (!up || refuse) return std::nullopt;
    sent.push_back({++mid_, topic, payload, qos, retain});
    return mid_;
  }
  std::vector<Sent> on(const std::string& suffix) const {
    std::vector<Sent> out;
    for (const auto& s : sent)
      if (s.topic.size() >= suffix.size() &&
          s.topic.compare(s.topic.size() - suffix.size(), suffix.size(), suffix) == 0)
        out.push_back(s);
    return out;
  }

 private:
  int mid_ = 0;
};

// buffer's make_reading, with a seq (the payload builders take rows as the buffer returns them).
buffer::Reading reading(std::int64_t seq, std::string meter, std::string quantity,
                        std::int64_t mantissa, std::int32_t exponent, std::string unit,
                        std::int64_t ts) {
  buffer::Reading r = buffer::test::make_reading(std::move(meter), std::move(quantity), mantissa,
                                                 exponent, std::move(unit), ts);
  r.seq = seq;
  return r;
}

buffer::Store memory_store() {
  buffer::Options o;
  o.path = ":memory:";
  auto s = buffer::Store::open(o);
  REQUIRE(s);
  return std::move(*s);
}

void add_readings(buffer::Store& s, int n, std::int64_t ts = 1'764'565'413'123) {
  buffer::Batch b;
  for (int i = 0; i < n; ++i)
    b.readings.push_back(
        reading(0, "m1", "energy.active.import.total", 1'234'567 + i, -2, "kWh", ts));
  REQUIRE(s.append(b));
}

void add_event(buffer::Store& s, std::string type) {
  buffer::Batch b;
  b.events.push_back({0, "m1", std::move(type), 1'764'565'413'000, "{\"failures\":3}"});
  REQUIRE(s.append(b));
}

firmware::UplinkSettings settings(unsigned batch = 500, unsigned window = 32, unsigned cap = 0) {
  firmware::UplinkSettings u;
  u.gateway = "gw";
  u.topic_prefix = "meterd/gw";
  u.batch_max = batch;
  u.linger_ms = 200;
  u.inflight_max = window;
  u.drain_max_per_s = cap;
  u.version = "0.1.0";
  u.started_ms = 0;
  return u;
}

std::vector<std::int64_t> seqs_of(const Sent& s) {
  std::vector<std::int64_t> out;
  const auto j = nlohmann::json::parse(s.payload);
  if (j.contains("readings")) {
    for (const auto& r : j["readings"]) out.push_back(r["seq"].get<std::int64_t>());
  } else {
    out.push_back(j["seq"].get<std::int64_t>());
  }
  return out;
}

}  // namespace

TEST_CASE("payloads: exact numbers, UTC ms timestamps, escaping") {
  CHECK(firmware::iso8601_ms(0) == "1970-01-01T00:00:00.000Z");
  CHECK(firmware::iso8601_ms(1'764'565'413'123) == "2025-12-01T05:03:33.123Z");
  CHECK(firmware::iso8601_ms(951'782'400'000) == "2000-02-29T00:00:00.000Z");  // leap day

  std::vector<buffer::Reading> rs{
      reading(7, "m\"1", "energy.active.import.total", 1'234'567, -2, "kWh", 1'000),
      reading(8, "m1", "voltage.l1", 2201, -1, "V", 1'000),
      reading(9, "m1", "current.l1", -5, -3, "A", 1'000),
      reading(10, "m1", "energy.active.import.total", 12, 40, "kWh", 1'000),  // still exact
      reading(11, "m1", "power.active.total", 1500, 0, "kW", 1'000)};
  rs[1].frozen = "daily";
  rs[1].freeze_ts_ms = 0;
  const std::string p = firmware::readings_payload("gw", 3, rs);
  // A float round trip would print 12345.67 as 12345.670000000002 or 2.201e2 — the text must
  // be the meter's decimal exactly, with its precision (220.1, not 220.10 nor 220.09999).
  CHECK(p.find("\"value\":12345.67,") != std::string::npos);
  CHECK(p.find("\"value\":220.1,") != std::string::npos);
  CHECK(p.find("\"value\":-0.005,") != std::string::npos);
  CHECK(p.find("\"value\":12e40,") != std::string::npos);
  CHECK(p.find("\"value\":1500,") != std::string::npos);
  CHECK(p.find("\"meter\":\"m\\\"1\"") != std::string::npos);
  const auto j = nlohmann::json::parse(p);
  CHECK(j["gateway"] == "gw");
  CHECK(j["batch"] == 3);
  REQUIRE(j["readings"].size() == 5);
  CHECK(j["readings"][0]["ts"] == "1970-01-01T00:00:01.000Z");
  CHECK(j["readings"][1]["frozen"] == "daily");
  CHECK(j["readings"][1]["ts"] == "1970-01-01T00:00:00.000Z");  // the freeze time
  CHECK(j["readings"][1]["read_ts"] == "1970-01-01T00:00:01.000Z");
  CHECK_FALSE(j["readings"][0].contains("frozen"));
}

TEST_CASE("event payloads keep the stored members' text exactly") {
  buffer::Event e{42, "m1", "meter.offline", 0, "{\"failures\":3,\"limit\":220.10}"};
  const std::string p = firmware::event_payload(e);
  CHECK(p ==
        "{\"seq\":42,\"meter\":\"m1\",\"type\":\"meter.offline\",\"ts\":\"1970-01-01T00:00:00."
        "000Z\",\"failures\":3,\"limit\":220.10}");
  // A payload that would override the envelope, or is not an object, goes under "data".
  e.payload_json = "{\"seq\":1}";
  auto j = nlohmann::json::parse(firmware::event_payload(e));
  CHECK(j["seq"] == 42);
  CHECK(j["data"]["seq"] == 1);
  e.payload_json = "not json";
  j = nlohmann::json::parse(firmware::event_payload(e));
  CHECK(j["data"] == "not json");
  e.meter = "";
  e.payload_json = "{}";
  j = nlohmann::json::parse(firmware::event_payload(e));
  CHECK_FALSE(j.contains("meter"));  // a gateway event
}

TEST_CASE("batches in seq order; a partial batch lingers; rows go only on PUBACK") {
  auto store = memory_store();
  FakeLink link;
  Uplink up(settings(500, 32), store, link);
  add_readings(store, 1200);
  up.on_connected(0);
  REQUIRE(link.on("/status").size() == 1);
  CHECK(link.on("/status")[0].retain);
  CHECK(nlohmann::json::parse(link.on("/status")[0].payload)["state"] == "online");

  up.notify_appended(0, 1200);
  const auto wake = up.pump(0);
  // Two full batches at once; the last 200 wait for the rest of their round.
  auto batches = link.on("/readings");
  REQUIRE(batches.size() == 2);
  CHECK(seqs_of(batches[0]).front() == 1);
  CHECK(seqs_of(batches[0]).size() == 500);
  CHECK(seqs_of(batches[1]).front() == 501);
  REQUIRE(wake.has_value());
  CHECK(*wake == 200);
  CHECK(batches[0].qos == 1);
  CHECK_FALSE(batches[0].retain);

  // Not acked before the broker says so (a careless uplink deletes on publish).
  CHECK(store.stats()->readings == 1200);
  up.on_published(batches[0].mid, 0, 50);
  CHECK(up.pump(50) == std::optional<std::int64_t>(200));  // deletes them, still lingers
  CHECK(store.stats()->readings == 700);
  CHECK(up.counters().acked_rows == 500);

  CHECK(up.pump(150) == std::optional<std::int64_t>(200));
  up.pump(200);
  batches = link.on("/readings");
  REQUIRE(batches.size() == 3);
  CHECK(seqs_of(batches[2]).size() == 200);
  CHECK(seqs_of(batches[2]).front() == 1001);
  // Nothing left: no wake wanted, nothing sent twice.
  CHECK_FALSE(up.pump(300).has_value());
  CHECK(link.on("/readings").size() == 3);
}

TEST_CASE("the in-flight window bounds unacknowledged publishes") {
  auto store = memory_store();
  FakeLink link;
  Uplink up(settings(10, 2), store, link);
  add_readings(store, 100);
  up.on_connected(0);
  up.pump(0);
  auto batches = link.on("/readings");
  REQUIRE(batches.size() == 2);
  CHECK(up.inflight_publishes() == 2);
  up.on_published(batches[1].mid, 0, 1);  // out of order
  up.pump(1);
  batches = link.on("/readings");
  REQUIRE(batches.size() == 3);
  CHECK(seqs_of(batches[2]).front() == 21);
  CHECK(store.stats()->readings == 90);
}

TEST_CASE("a disconnect requeues what was in flight; it goes again from the lowest seq") {
  auto store = memory_store();
  FakeLink link;
  Uplink up(settings(10, 4), store, link);
  add_readings(store, 50);
  up.on_connected(0);
  up.pump(0);
  auto batches = link.on("/readings");
  REQUIRE(batches.size() == 4);
  up.on_published(batches[0].mid, 0, 1);  // 1..10 acked
  link.up = false;
  up.on_disconnected(2);
  CHECK(up.counters().requeued_rows == 30);
  // A PUBACK from the dead session changes nothing.
  up.on_published(batches[1].mid, 0, 3);
  CHECK(store.stats()->readings == 40);
  link.sent.clear();
  link.up = true;
  up.on_connected(5);
  up.pump(5);
  batches = link.on("/readings");
  REQUIRE(batches.size() == 4);
  CHECK(seqs_of(batches[0]).front() == 11);  // resent: seqs 11..20 first
  CHECK(link.on("/status").size() == 1);     // a birth on every connect
  std::vector<std::int64_t> all;
  for (const auto& b : batches)
    for (auto s : seqs_of(b)) all.push_back(s);
  CHECK(all.size() == 40);
  for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i] == static_cast<std::int64_t>(11 + i));
}

TEST_CASE("events go ahead of a reading backlog") {
  auto store = memory_store();
  FakeLink link;
  Uplink up(settings(100, 1), store, link);
  add_readings(store, 1000);
  add_event(store, "meter.offline");  // seq 1001
  up.on_connected(0);
  up.pump(0);
  REQUIRE(link.sent.size() == 2);  // birth + one publish (window 1)
  REQUIRE(link.on("/events").size() == 1);
  const auto e = nlohmann::json::parse(link.on("/events")[0].payload);
  CHECK(e["seq"] == 1001);
  CHECK(e["type"] == "meter.offline");
  CHECK(e["failures"] == 3);
  up.on_published(link.on("/events")[0].mid, 0, 1);
  up.pump(1);
  CHECK(store.stats()->events == 0);
  REQUIRE(link.on("/readings").size() == 1);
  CHECK(seqs_of(link.on("/readings")[0]).front() == 1);
}

TEST_CASE("the drain cap bounds rows per second") {
  auto store = memory_store();
  FakeLink link;
  Uplink up(settings(500, 32, 100), store, link);
  add_readings(store, 2000);
  up.on_connected(0);
  std::int64_t now = 0;
  std::size_t rows = 0;
  for (int step = 0; step < 100; ++step) {  // 10 s in 100 ms steps, every publish acked at once
    up.pump(now);
    for (const auto& b : link.on("/readings")) {
      up.on_published(b.mid, 0, now);
      rows += seqs_of(b).size();
      // Whole batches of a second's budget, never a row a publish (a bucket drained one
      // token at a time would send 100 publishes of one reading each).
      CHECK(seqs_of(b).size() == 100);
    }
    link.sent.clear();
    // Never more than a second's burst plus the rate since the start.
    CHECK(rows <= static_cast<std::size_t>(100 + now / 10));
    now += 100;
  }
  // And it does drain at the cap, not below it.
  CHECK(rows >= 1000);
  CHECK(rows <= 1100);
}

TEST_CASE("a refused PUBACK keeps the rows and sends them again later") {
  auto store = memory_store();
  FakeLink link;
  Uplink up(settings(10, 4), store, link);
  add_readings(store, 10);
  up.on_connected(0);
  up.pump(0);
  REQUIRE(link.on("/readings").size() == 1);
  up.on_published(link.on("/readings")[0].mid, 0x97, 1);  // quota exceeded
  CHECK(store.stats()->readings == 10);
  CHECK(up.counters().refused == 1);
  CHECK(up.pump(2).value_or(0) > 2);  // holds off instead of hammering
  CHECK(link.on("/readings").size() == 1);
  up.pump(2000);
  REQUIRE(link.on("/readings").size() == 2);
  CHECK(seqs_of(link.on("/readings")[1]).front() == 1);
}

TEST_CASE("a publish the client refuses marks nothing in flight") {
  auto store = memory_store();
  FakeLink link;
  Uplink up(settings(10, 4), store, link);
  add_readings(store, 10);
  up.on_connected(0);
  link.refuse = true;
  CHECK(up.pump(0).has_value());
  CHECK(up.counters().publish_failures == 1);
  CHECK(store.stats()->inflight == 0);
  link.refuse = false;
  up.pump(1000);
  CHECK(link.on("/readings").size() == 1);
}

// Catches: a cap that throttles the gateway's own production (a fleet that reads more than
// drain_max_per_s values a second would fall behind for ever), and a capped uplink that
// stops lingering and sends every meter's round on its own.
TEST_CASE("the drain cap holds back a backlog, never the live rows; partial batches linger") {
  auto store = memory_store();
  FakeLink link;
  Uplink up(settings(500, 32, 10), store, link);  // 10 rows/s: far below production
  up.on_connected(0);
  std::size_t appended = 0, delivered = 0;
  for (std::int64_t now = 0; now < 10'000; now += 100) {
    add_readings(store, 5);  // 50 rows/s
    appended += 5;
    up.notify_appended(now, 5);
    up.pump(now);
    for (const auto& b : link.on("/readings")) {
      up.on_published(b.mid, 0, now);
      delivered += seqs_of(b).size();
    }
    link.sent.clear();
  }
  up.pump(10'300);
  for (const auto& b : link.on("/readings")) delivered += seqs_of(b).size();
  CHECK(delivered == appended);  // every live row went out (a lingering round at most late)

  // A round smaller than the budget waits out linger_ms, capped or not.
  auto store2 = memory_store();
  FakeLink link2;
  Uplink up2(settings(500, 32, 200), store2, link2);
  up2.on_connected(0);
  add_readings(store2, 20);
  up2.notify_appended(0, 20);
  CHECK(up2.pump(0) == std::optional<std::int64_t>(200));
  CHECK(link2.on("/readings").empty());
  up2.pump(200);
  REQUIRE(link2.on("/readings").size() == 1);
  CHECK(seqs_of(link2.on("/readings")[0]).size() == 20);
}
