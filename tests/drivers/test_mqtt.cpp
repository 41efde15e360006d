// Component tier with a real broker: drivers/mqtt (MqttClient) against
// mosquitto on a loopback port, seen from a head-end (tests/support). Each
// case names the careless implementation it would catch.
#include <atomic>
#include <cstring>
#include <set>
#include <thread>

#include <arpa/inet.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <dirent.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/mqtt.hpp"
#include "tests/support/broker.hpp"
#include "tests/support/headend.hpp"

using namespace meterd::drivers;
using namespace meterd::testing;
using namespace std::chrono_literals;

namespace {

// Everything the hooks reported, in order.
struct Events {
  std::vector<bool> connected;  // the v5 flag of each on_connected
  std::vector<std::string> disconnected;
  std::vector<std::pair<int, int>> published;  // mid, reason
  std::vector<MqttMessage> messages;
  std::size_t total() const {
    return connected.size() + disconnected.size() + published.size() + messages.size();
  }
};

MqttHooks record(Events& e) {
  MqttHooks h;
  h.on_connected = [&e](bool v5) { e.connected.push_back(v5); };
  h.on_disconnected = [&e](const std::string& why) { e.disconnected.push_back(why); };
  h.on_published = [&e](int mid, int reason) { e.published.emplace_back(mid, reason); };
  h.on_message = [&e](MqttMessage m) { e.messages.push_back(std::move(m)); };
  return h;
}

MqttSettings settings_for(std::uint16_t port, std::string client_id = "gw1") {
  MqttSettings s;
  s.client_id = std::move(client_id);
  s.port = port;
  s.reconnect_min = 100ms;
  s.reconnect_max = 400ms;
  return s;
}

// The io_context runs on the test thread, in slices, until `done` or the timeout.
class Loop {
 public:
  Loop() : guard_(io.get_executor()) {}
  template <typename Pred>
  bool run_until(Pred done, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= until) return false;
      io.run_for(5ms);
    }
    return true;
  }
  void run_for(std::chrono::milliseconds d) {
    run_until([] { return false; }, d);
  }
  boost::asio::io_context io;

 private:
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
};

bool has_published(const Events& e, int mid) {
  for (const auto& [m, reason] : e.published)
    if (m == mid) return true;
  return false;
}

// Our process's TCP sockets whose peer is 127.0.0.1:`port`.
std::set<int> sockets_to(std::uint16_t port) {
  std::set<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return fds;
  while (const dirent* d = ::readdir(dir)) {
    const int fd = std::atoi(d->d_name);
    struct stat st {};
    if (fd <= 2 || ::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
        peer.sin_family == AF_INET && ntohs(peer.sin_port) == port)
      fds.insert(fd);
  }
  ::closedir(dir);
  return fds;
}

// A broker that speaks MQTT 3.1.1 only: it answers a CONNECT of any other
// protocol level with CONNACK return code 1 (unacceptable protocol version)
// and accepts a 3.1.1 CONNECT, then keeps the connection open. Records the
// protocol level of every CONNECT.
class Mqtt311OnlyBroker {
 public:
  Mqtt311OnlyBroker() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener_, 4) == 0);
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~Mqtt311OnlyBroker() {
    stop_ = true;
    thread_.join();
    for (int fd : open_) ::close(fd);
    ::close(listener_);
  }
  std::uint16_t port() const { return port_; }
  std::vector<int> levels() {
    std::lock_guard lock(mutex_);
    return levels_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      // CONNECT: 0x10, remaining length (1 byte here), 00 04 "MQTT", level.
      std::uint8_t buf[256];
      std::size_t have = 0;
      const auto until = std::chrono::steady_clock::now() + 2s;
      while (have < 9 && std::chrono::steady_clock::now() < until) {
        pollfd q{fd, POLLIN, 0};
        if (::poll(&q, 1, 20) <= 0) continue;
        const ssize_t n = ::read(fd, buf + have, sizeof buf - have);
        if (n <= 0) break;
        have += static_cast<std::size_t>(n);
      }
      const int level = have >= 9 && buf[0] == 0x10 ? buf[8] : -1;
      {
        std::lock_guard lock(mutex_);
        levels_.push_back(level);
      }
      const std::uint8_t connack[4] = {0x20, 0x02, 0x00,
                                       level == 4 ? std::uint8_t{0} : std::uint8_t{1}};
      if (::write(fd, connack, sizeof connack) != 4) {
      }
      if (level == 4)
        open_.push_back(fd);
      else
        ::close(fd);
    }
  }

  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<int> levels_;
  std::vector<int> open_;
};

}  // namespace

TEST_CASE(
    "connect (MQTT 5), publish QoS 1 -> PUBACK, downlink with response topic and "
    "correlation data") {
  // Catches: hooks never posted / wrong mid, correlation data not sent as the
  // MQTT 5 property, properties of a downlink not extracted.
  Broker broker;
  HeadEnd headend(broker.port(), "meterd/gw/#");
  Loop loop;
  Events events;
  MqttClient client(loop.io, settings_for(broker.port()), record(events));
  client.subscribe("meterd/cmd/gw1/#", 1);
  CHECK_FALSE(client.publish("meterd/gw/gw1/early", "x", 1, false));  // not started
  client.start();
  CHECK_FALSE(client.publish("meterd/gw/gw1/early", "x", 1, false));  // not yet connected
  REQUIRE(loop.run_until([&] { return !events.connected.empty(); }, 10s));
  CHECK(events.connected == std::vector<bool>{true});
  CHECK(client.connected());
  CHECK(client.v5());

  const auto mid = client.publish("meterd/gw/gw1/data", "{\"v\":1}", 1, false, "batch-7");
  REQUIRE(mid);
  REQUIRE(loop.run_until([&] { return has_published(events, *mid); }, 5s));
  CHECK(events.published.front() == std::pair<int, int>{*mid, 0});
  const auto up = headend.wait_topic("meterd/gw/gw1/data", 5s);
  REQUIRE(up.size() == 1);
  CHECK(up[0].payload == "{\"v\":1}");
  CHECK(up[0].qos == 1);
  CHECK(up[0].correlation_data == "batch-7");

  const std::string correlation("id\0\x01\xff", 5);  // raw bytes, not a C string
  REQUIRE(headend.publish("meterd/cmd/gw1/read", "{\"verb\":\"read\"}", 1, false, "meterd/resp/gw1",
                          correlation));
  REQUIRE(loop.run_until([&] { return !events.messages.empty(); }, 5s));
  CHECK(events.messages[0].topic == "meterd/cmd/gw1/read");
  CHECK(events.messages[0].payload == "{\"verb\":\"read\"}");
  CHECK(events.messages[0].response_topic == "meterd/resp/gw1");
  CHECK(events.messages[0].correlation_data == correlation);

  const auto c = client.counters();
  CHECK(c.connects == 1);
  CHECK(c.connect_failures == 0);
  CHECK(c.published == 1);
  CHECK(c.acknowledged == 1);
  CHECK(c.received == 1);
}

TEST_CASE("broker restart: back-off while down, reconnect by itself, subscriptions made again") {
  // Catches: no reconnect, reconnecting without back-off (or with it never
  // reset), a client that does not subscribe again on the new session (the
  // broker keeps nothing: clean start, persistence off).
  Broker broker;
  Loop loop;
  Events events;
  auto settings = settings_for(broker.port());
  settings.reconnect_min = 200ms;
  settings.reconnect_max = 1600ms;
  MqttClient client(loop.io, settings, record(events));
  client.subscribe("meterd/cmd/gw1/#", 1);
  client.start();
  REQUIRE(loop.run_until([&] { return events.connected.size() == 1; }, 10s));

  broker.stop();
  REQUIRE(loop.run_until([&] { return !events.disconnected.empty(); }, 5s));
  CHECK_FALSE(client.connected());
  CHECK_FALSE(client.publish("meterd/gw/gw1/data", "x", 1, false));
  CHECK(client.counters().disconnects == 1);
  // Down for 2 s: attempts after about 0.2, 0.6 and 1.4 s (±25 %): three
  // failures, maybe two or four; a fixed 200 ms would make ten.
  loop.run_for(2000ms);
  const auto failures = client.counters().connect_failures;
  CHECK(failures >= 2);
  CHECK(failures <= 5);
  CHECK_FALSE(client.last_error().empty());
  CHECK(events.connected.size() == 1);

  broker.start();  // same port
  REQUIRE(loop.run_until([&] { return events.connected.size() == 2; }, 10s));
  CHECK(client.counters().connects == 2);
  HeadEnd headend(broker.port(), "meterd/gw/#");
  REQUIRE(headend.publish("meterd/cmd/gw1/sync", "again", 1, false));
  REQUIRE(loop.run_until([&] { return !events.messages.empty(); }, 5s));
  CHECK(events.messages[0].payload == "again");
  const auto mid = client.publish("meterd/gw/gw1/data", "after", 1, false);
  REQUIRE(mid);
  CHECK(headend.wait_topic("meterd/gw/gw1/data", 5s).size() == 1);

  // The back-off was reset by the CONNACK: the first retry after the next
  // loss comes after reconnect_min (200 ms ± 25 %), not the 1.6 s reached.
  const auto failures_before = client.counters().connect_failures;
  broker.stop();
  REQUIRE(loop.run_until([&] { return events.disconnected.size() == 2 + failures_before; }, 5s));
  const auto lost = std::chrono::steady_clock::now();
  REQUIRE(loop.run_until([&] { return client.counters().connect_failures > failures_before; }, 5s));
  CHECK(std::chrono::steady_clock::now() - lost < 900ms);
}

TEST_CASE("protocol v311 forced: no MQTT 5 session, no properties") {
  Broker broker;
  HeadEnd headend(broker.port(), "meterd/gw/#");
  Loop loop;
  Events events;
  auto settings = settings_for(broker.port());
  settings.protocol = MqttProtocol::v311;
  MqttClient client(loop.io, settings, record(events));
  client.subscribe("meterd/cmd/gw1/#", 1);
  client.start();
  REQUIRE(loop.run_until([&] { return !events.connected.empty(); }, 10s));
  CHECK(events.connected == std::vector<bool>{false});
  CHECK_FALSE(client.v5());
  // Correlation data cannot travel on 3.1.1: the publish goes without it.
  const auto mid = client.publish("meterd/gw/gw1/data", "x", 1, false, "batch-1");
  REQUIRE(mid);
  REQUIRE(loop.run_until([&] { return has_published(events, *mid); }, 5s));
  const auto up = headend.wait_topic("meterd/gw/gw1/data", 5s);
  REQUIRE(up.size() == 1);
  CHECK(up[0].correlation_data.empty());
  REQUIRE(headend.publish("meterd/cmd/gw1/read", "r", 1, false, "meterd/resp/gw1", "c"));
  REQUIRE(loop.run_until([&] { return !events.messages.empty(); }, 5s));
  CHECK(events.messages[0].response_topic.empty());
  CHECK(events.messages[0].correlation_data.empty());
}

TEST_CASE("automatic: a broker that refuses MQTT 5 gets 3.1.1 from then on") {
  // Catches: no fallback (the client would retry v5 forever), or a fallback
  // on any refusal.
  Mqtt311OnlyBroker broker;
  Loop loop;
  Events events;
  auto settings = settings_for(broker.port());
  settings.reconnect_min = 50ms;
  MqttClient client(loop.io, settings, record(events));
  client.start();
  REQUIRE(loop.run_until([&] { return !events.connected.empty(); }, 10s));
  CHECK(events.connected == std::vector<bool>{false});
  CHECK(broker.levels() == std::vector<int>{5, 4});
  CHECK(client.counters().connect_failures == 1);
  CHECK(events.disconnected.size() == 1);
  client.stop(200ms);
}

TEST_CASE("will: published by the broker when the link dies without DISCONNECT") {
  // Catches: a will never set (or set after the CONNECT went out).
  Broker broker;
  HeadEnd headend(broker.port(), "meterd/gw/#");
  const auto headend_sockets = sockets_to(broker.port());
  Loop loop;
  Events events;
  auto settings = settings_for(broker.port());
  settings.will_topic = "meterd/gw/gw1/status";
  settings.will_payload = "offline-will";
  MqttClient client(loop.io, settings, record(events));
  client.start();
  REQUIRE(loop.run_until([&] { return !events.connected.empty(); }, 10s));
  CHECK(headend.messages().empty());

  // Cut our own TCP connection under libmosquitto's feet: the broker sees
  // the link die without DISCONNECT.
  std::set<int> ours;
  for (int fd : sockets_to(broker.port()))
    if (!headend_sockets.count(fd)) ours.insert(fd);
  REQUIRE(ours.size() == 1);
  ::shutdown(*ours.begin(), SHUT_RDWR);
  const auto will = headend.wait_topic("meterd/gw/gw1/status", 5s);
  REQUIRE(will.size() == 1);
  CHECK(will[0].payload == "offline-will");
  HeadEnd later(broker.port(), "meterd/gw/gw1/status");
  const auto retained = later.wait_topic("meterd/gw/gw1/status", 5s);
  REQUIRE(retained.size() == 1);
  CHECK(retained[0].retained);  // will_retain defaults to true
  // And the client noticed and came back by itself.
  REQUIRE(loop.run_until([&] { return events.connected.size() == 2; }, 10s));
  CHECK(events.disconnected.size() == 1);
}

TEST_CASE("stop() sends what was published before DISCONNECT, then no hook runs") {
  // Catches: a stop() that drops queued publishes (loop_stop(force) at once),
  // a DISCONNECT that overtakes them, a stop that lets the will out, hooks
  // that run after stop() or after destruction.
  Broker broker;
  HeadEnd headend(broker.port(), "meterd/gw/#");
  Loop loop;
  Events events;
  auto settings = settings_for(broker.port());
  settings.will_topic = "meterd/gw/gw1/status";
  settings.will_payload = "offline-will";
  MqttClient client(loop.io, settings, record(events));
  client.start();
  REQUIRE(loop.run_until([&] { return !events.connected.empty(); }, 10s));

  // More than the in-flight window, and big enough that the retained status
  // at the end is still queued inside libmosquitto when stop() is called.
  const std::string big(16 * 1024, 'x');
  for (int i = 0; i < 200; ++i) REQUIRE(client.publish("meterd/gw/gw1/bulk", big, 1, false));
  REQUIRE(client.publish("meterd/gw/gw1/status", "offline", 1, true));
  const auto before = events.total();
  client.stop(5000ms);
  client.stop();  // idempotent
  CHECK_FALSE(client.connected());
  loop.run_for(300ms);
  CHECK(events.total() == before);  // the PUBACKs' posted hooks were dropped

  HeadEnd later(broker.port(), "meterd/gw/gw1/status");
  const auto status = later.wait_topic("meterd/gw/gw1/status", 5s);
  REQUIRE(status.size() == 1);
  CHECK(status[0].payload == "offline");
  CHECK(status[0].retained);
  CHECK(headend.wait_for(
      [](const std::vector<HeadEndMessage>& all) {
        std::size_t bulk = 0;
        for (const auto& m : all) bulk += m.topic == "meterd/gw/gw1/bulk";
        return bulk == 200;
      },
      5s));
  for (const auto& m : headend.messages()) CHECK(m.payload != "offline-will");
  CHECK(client.publish("meterd/gw/gw1/data", "x", 1, false) == std::nullopt);
}

TEST_CASE("destroyed with events pending: nothing runs afterwards") {
  Broker broker;
  HeadEnd headend(broker.port(), "meterd/gw/#");
  Loop loop;
  Events events;
  {
    MqttClient client(loop.io, settings_for(broker.port()), record(events));
    client.subscribe("meterd/cmd/gw1/#", 1);
    client.start();
    REQUIRE(loop.run_until([&] { return !events.connected.empty(); }, 10s));
    for (int i = 0; i < 20; ++i) REQUIRE(client.publish("meterd/gw/gw1/data", "x", 1, false));
    REQUIRE(headend.publish("meterd/cmd/gw1/read", "r", 1, false));
    std::this_thread::sleep_for(100ms);  // acknowledgements posted, not yet run
  }
  const auto before = events.total();
  loop.run_for(200ms);
  CHECK(events.total() == before);
}

TEST_CASE("TLS with a client certificate; without one, or with an untrusted broker, no session") {
  // Catches: TLS not set up, a client certificate not sent, peer
  // verification switched off, a failure that is not reported.
  TempDir dir;
  const auto pki = make_test_pki(dir.path / "pki");
  const auto other = make_test_pki(dir.path / "other");
  Broker broker(BrokerOptions{.allow_anonymous = true,
                              .tls = BrokerTls{pki.ca_cert, pki.server_cert, pki.server_key, true},
                              .extra_config = {},
                              .port = 0});
  HeadEndOptions he;
  he.port = broker.port();
  he.ca_file = pki.ca_cert;
  he.cert_file = pki.client_cert;
  he.key_file = pki.client_key;
  HeadEnd headend(he);
  Loop loop;

  Events good_events;
  auto good = settings_for(broker.port(), "gw-tls");
  good.tls_ca_file = pki.ca_cert;
  good.tls_cert_file = pki.client_cert;
  good.tls_key_file = pki.client_key;
  MqttClient client(loop.io, good, record(good_events));
  client.start();
  REQUIRE(loop.run_until([&] { return !good_events.connected.empty(); }, 10s));
  REQUIRE(client.publish("meterd/gw/gw-tls/data", "sealed", 1, false));
  const auto up = headend.wait_topic("meterd/gw/gw-tls/data", 5s);
  REQUIRE(up.size() == 1);
  CHECK(up[0].payload == "sealed");

  SUBCASE("no client certificate") {
    Events events;
    auto s = settings_for(broker.port(), "gw-nocert");
    s.tls_ca_file = pki.ca_cert;
    MqttClient bad(loop.io, s, record(events));
    bad.start();
    REQUIRE(loop.run_until([&] { return bad.counters().connect_failures >= 2; }, 10s));
    CHECK(events.connected.empty());
    CHECK_FALSE(bad.connected());
    CHECK_FALSE(bad.last_error().empty());
    CHECK(events.disconnected.size() >= 2);
  }
  SUBCASE("broker certificate from another CA") {
    Events events;
    auto s = settings_for(broker.port(), "gw-otherca");
    s.tls_ca_file = other.ca_cert;
    s.tls_cert_file = other.client_cert;
    s.tls_key_file = other.client_key;
    MqttClient bad(loop.io, s, record(events));
    bad.start();
    REQUIRE(loop.run_until([&] { return bad.counters().connect_failures >= 2; }, 10s));
    CHECK(events.connected.empty());
    CHECK(bad.last_error().find("certificate verify failed") != std::string::npos);
  }
  CHECK(client.connected());  // the good one was never disturbed
}
