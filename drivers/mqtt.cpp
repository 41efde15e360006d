#include "drivers/mqtt.hpp"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <pthread.h>

namespace meterd::drivers {

namespace {

// libmosquitto's loop thread is cancelled (mosquitto_loop_stop with force)
// when a link is torn down. Our callbacks run on that thread and post to
// the io_context, which writes to an eventfd: a cancellation point inside
// Asio's noexcept code would terminate the process. So a callback is never
// cancelled halfway; a pending cancel acts at libmosquitto's next one.
class NoCancel {
 public:
  NoCancel() { ::pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_); }
  ~NoCancel() { ::pthread_setcancelstate(old_, nullptr); }
  NoCancel(const NoCancel&) = delete;
  NoCancel& operator=(const NoCancel&) = delete;

 private:
  int old_ = 0;
};

std::string error_text(int rc, int saved_errno) {
  if (rc == MOSQ_ERR_ERRNO) return std::strerror(saved_errno);
  return mosquitto_strerror(rc);
}

bool is_protocol_refusal(int rc) {
  // MQTT 5: reason 0x84. A 3.1.1-only broker answers a v5 CONNECT with a
  // 3.1.1 CONNACK, return code 1, which libmosquitto reports as 0x84 too;
  // 1 is accepted as well in case a library version passes it through.
  return rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION || rc == CONNACK_REFUSED_PROTOCOL_VERSION;
}

}  // namespace

void mqtt_library_init() {
  static std::once_flag once;
  std::call_once(once, [] { mosquitto_lib_init(); });
}

class MqttClient::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(boost::asio::io_context& io, MqttSettings settings, MqttHooks hooks)
      : io_(io),
        settings_(std::move(settings)),
        hooks_(std::move(hooks)),
        retry_(io),
        connect_deadline_(io),
        rng_(std::random_device{}()),
        backoff_(settings_.reconnect_min),
        use_v311_(settings_.protocol == MqttProtocol::v311) {}

  ~Impl() {
    // stop() tears the link down; this only guards against a missed stop.
    if (link_) close_link(false, std::chrono::milliseconds(0));
  }

  void start();
  void stop(std::chrono::milliseconds flush);
  void subscribe(std::string filter, int qos);
  std::optional<int> publish(const std::string& topic, const std::string& payload, int qos,
                             bool retain, const std::string& correlation_data);

  bool connected() const noexcept { return connected_; }
  bool v5() const noexcept { return v5_; }
  MqttCounters counters() const noexcept { return counters_; }
  std::string last_error() const { return last_error_; }

 private:
  // One mosquitto handle and what its loop thread shares with the io thread.
  // Callbacks get a Link* as userdata; the Link outlives the loop thread
  // (joined before the Link is freed).
  struct Link {
    std::weak_ptr<Impl> owner;
    boost::asio::io_context* io = nullptr;
    std::uint64_t generation = 0;
    bool v5 = false;
    mosquitto* mosq = nullptr;
    bool loop_started = false;
    std::mutex mutex;
    std::condition_variable changed;
    unsigned unacknowledged = 0;  // publishes accepted, no on_publish yet
    bool closed = false;          // on_disconnect seen
    bool stopping = false;        // our DISCONNECT is on its way
    std::string error_log;        // libmosquitto's last error-level log line
  };

  // Runs `fn(impl)` on the io thread if the client still exists and the
  // link is still the current one.
  template <typename Fn>
  static void post_to(Link* link, Fn fn) {
    boost::asio::post(*link->io, [owner = link->owner, generation = link->generation,
                                  fn = std::move(fn)]() mutable {
      const auto self = owner.lock();
      if (!self || self->stopped_ || !self->link_ || self->link_->generation != generation) return;
      fn(*self);
    });
  }

  static void on_connect(mosquitto*, void* obj, int rc, int, const mosquitto_property*);
  static void on_disconnect(mosquitto*, void* obj, int rc, const mosquitto_property*);
  static void on_publish(mosquitto*, void* obj, int mid, int reason, const mosquitto_property*);
  static void on_subscribe(mosquitto*, void* obj, int mid, int count, const int* granted,
                           const mosquitto_property*);
  static void on_message(mosquitto*, void* obj, const mosquitto_message* msg,
                         const mosquitto_property* props);
  static void on_log(mosquitto*, void* obj, int level, const char* text);

  void attempt();
  // Creates and configures the handle; "" or why it failed.
  std::string open_link();
  void handle_connack(int rc);
  void handle_suback(int mid, int granted);
  void announce();
  void link_down(const std::string& why, bool counted);
  // Stops the loop thread and destroys the handle. clean: DISCONNECT first,
  // waiting up to `flush` for acknowledgements and for it to be written.
  void close_link(bool clean, std::chrono::milliseconds flush);
  void schedule_retry();

  boost::asio::io_context& io_;
  MqttSettings settings_;
  MqttHooks hooks_;
  boost::asio::steady_timer retry_;
  boost::asio::steady_timer connect_deadline_;
  std::minstd_rand rng_;
  std::chrono::milliseconds backoff_;
  bool use_v311_;
  bool started_ = false;
  bool stopped_ = false;
  bool session_ = false;    // CONNACK accepted on the current link
  bool connected_ = false;  // and every subscription acknowledged: on_connected ran
  bool v5_ = false;
  std::uint64_t generation_ = 0;
  std::unique_ptr<Link> link_;
  std::vector<std::pair<std::string, int>> subscriptions_;
  std::set<int> pending_subacks_;
  MqttCounters counters_;
  std::string last_error_;
};

// --- libmosquitto's loop thread ------------------------------------------

void MqttClient::Impl::on_connect(mosquitto*, void* obj, int rc, int, const mosquitto_property*) {
  NoCancel guard;
  post_to(static_cast<Link*>(obj), [rc](Impl& self) { self.handle_connack(rc); });
}

void MqttClient::Impl::on_disconnect(mosquitto* mosq, void* obj, int rc,
                                     const mosquitto_property*) {
  NoCancel guard;
  const int saved_errno = errno;
  auto* link = static_cast<Link*>(obj);
  bool ours = false;
  std::string logged;
  {
    std::lock_guard lock(link->mutex);
    link->closed = true;
    ours = link->stopping;
    logged = link->error_log;
  }
  link->changed.notify_all();
  // Reconnects are ours: marking the handle disconnected makes libmosquitto's
  // loop end instead of reconnecting by itself; the io thread then destroys it.
  if (!ours) mosquitto_disconnect(mosq);
  std::string why;
  if (rc >= 0x80)
    why = std::string("broker sent DISCONNECT: ") + mosquitto_reason_string(rc);
  else if (rc == MOSQ_ERR_SUCCESS)
    why = "disconnected";
  else
    why = error_text(rc, saved_errno);
  if (!logged.empty()) why += " (" + logged + ")";
  post_to(link, [why = std::move(why)](Impl& self) { self.link_down(why, false); });
}

void MqttClient::Impl::on_publish(mosquitto*, void* obj, int mid, int reason,
                                  const mosquitto_property*) {
  NoCancel guard;
  auto* link = static_cast<Link*>(obj);
  {
    std::lock_guard lock(link->mutex);
    if (link->unacknowledged > 0) --link->unacknowledged;
  }
  link->changed.notify_all();
  post_to(link, [mid, reason](Impl& self) {
    ++self.counters_.acknowledged;
    if (self.hooks_.on_published) self.hooks_.on_published(mid, reason);
  });
}

void MqttClient::Impl::on_subscribe(mosquitto*, void* obj, int mid, int count, const int* granted,
                                    const mosquitto_property*) {
  NoCancel guard;
  const int first = count > 0 && granted ? granted[0] : 0x80;
  post_to(static_cast<Link*>(obj), [mid, first](Impl& self) { self.handle_suback(mid, first); });
}

void MqttClient::Impl::on_message(mosquitto*, void* obj, const mosquitto_message* msg,
                                  const mosquitto_property* props) {
  NoCancel guard;
  MqttMessage m;
  m.topic = msg->topic ? msg->topic : "";
  if (msg->payload && msg->payloadlen > 0)
    m.payload.assign(static_cast<const char*>(msg->payload),
                     static_cast<std::size_t>(msg->payloadlen));
  char* response_topic = nullptr;
  if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &response_topic, false) &&
      response_topic) {
    m.response_topic = response_topic;
    std::free(response_topic);
  }
  void* data = nullptr;
  std::uint16_t length = 0;
  if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &data, &length, false) &&
      data) {
    m.correlation_data.assign(static_cast<const char*>(data), length);
    std::free(data);
  }
  post_to(static_cast<Link*>(obj), [m = std::move(m)](Impl& self) mutable {
    ++self.counters_.received;
    if (self.hooks_.on_message) self.hooks_.on_message(std::move(m));
  });
}

void MqttClient::Impl::on_log(mosquitto*, void* obj, int level, const char* text) {
  if (level != MOSQ_LOG_ERR || !text) return;
  NoCancel guard;
  auto* link = static_cast<Link*>(obj);
  {
    std::lock_guard lock(link->mutex);
    link->error_log = text;
  }
  // Some failures end libmosquitto's loop without on_disconnect: a TLS
  // handshake that fails on our side (the broker's certificate does not
  // verify) returns MOSQ_ERR_TLS, fatal to mosquitto_loop_forever, and the
  // thread just ends. libmosquitto logs them at error level, so an error
  // line takes the link down (an event for a link already down is dropped).
  post_to(link, [why = std::string(text)](Impl& self) { self.link_down(why, false); });
}

// --- the io thread --------------------------------------------------------

void MqttClient::Impl::start() {
  if (started_ || stopped_) return;
  started_ = true;
  // Posted, so that no hook runs inside start().
  boost::asio::post(io_, [weak = weak_from_this()] {
    if (const auto self = weak.lock()) self->attempt();
  });
}

void MqttClient::Impl::attempt() {
  if (stopped_ || link_) return;
  const std::string why = open_link();
  if (!why.empty()) link_down(why, false);
}

std::string MqttClient::Impl::open_link() {
  auto link = std::make_unique<Link>();
  link->owner = weak_from_this();
  link->io = &io_;
  link->generation = ++generation_;
  link->v5 = !use_v311_;
  mosquitto* m = mosquitto_new(settings_.client_id.c_str(), true, link.get());
  if (!m) return "mosquitto_new failed (client id, memory)";
  link->mosq = m;
  link_ = std::move(link);

  const auto fail = [this](const char* what, int rc) {
    std::string why = std::string(what) + ": " + error_text(rc, errno);
    std::lock_guard lock(link_->mutex);
    if (!link_->error_log.empty()) why += " (" + link_->error_log + ")";
    return why;
  };
  int rc = mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION,
                                use_v311_ ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5);
  if (rc != MOSQ_ERR_SUCCESS) return fail("protocol version", rc);
  rc = mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM,
                            static_cast<int>(std::clamp(settings_.inflight_max, 1u, 65535u)));
  if (rc != MOSQ_ERR_SUCCESS) return fail("max inflight", rc);
  // Belt and braces: should libmosquitto's loop ever try to reconnect by
  // itself, it waits an hour first, long after we destroyed the handle.
  mosquitto_reconnect_delay_set(m, 3600, 3600, false);
  if (!settings_.username.empty()) {
    rc = mosquitto_username_pw_set(
        m, settings_.username.c_str(),
        settings_.password.empty() ? nullptr : settings_.password.c_str());
    if (rc != MOSQ_ERR_SUCCESS) return fail("username", rc);
  }
  if (!settings_.tls_ca_file.empty()) {
    const auto opt = [](const std::string& s) { return s.empty() ? nullptr : s.c_str(); };
    rc = mosquitto_tls_set(m, settings_.tls_ca_file.c_str(), nullptr, opt(settings_.tls_cert_file),
                           opt(settings_.tls_key_file), nullptr);
    if (rc != MOSQ_ERR_SUCCESS) return fail("tls", rc);
    rc = mosquitto_tls_opts_set(m, 1 /* SSL_VERIFY_PEER */, nullptr, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) return fail("tls options", rc);
  }
  if (!settings_.will_topic.empty()) {
    rc = mosquitto_will_set(
        m, settings_.will_topic.c_str(), static_cast<int>(settings_.will_payload.size()),
        settings_.will_payload.data(), settings_.will_qos, settings_.will_retain);
    if (rc != MOSQ_ERR_SUCCESS) return fail("will", rc);
  }
  mosquitto_connect_v5_callback_set(m, &Impl::on_connect);
  mosquitto_disconnect_v5_callback_set(m, &Impl::on_disconnect);
  mosquitto_publish_v5_callback_set(m, &Impl::on_publish);
  mosquitto_subscribe_v5_callback_set(m, &Impl::on_subscribe);
  mosquitto_message_v5_callback_set(m, &Impl::on_message);
  mosquitto_log_callback_set(m, &Impl::on_log);

  // Non-blocking: libmosquitto 2.0's connect_async resolves the host
  // (getaddrinfo: instant for a numeric address, the resolver's time for a
  // name), starts a non-blocking TCP connect and returns; the TCP and TLS
  // handshakes and CONNECT/CONNACK run on the loop thread. An unreachable
  // host shows up there as a socket error (or at the keepalive check),
  // never as a stalled io thread.
  rc = mosquitto_connect_bind_async(m, settings_.host.c_str(), settings_.port,
                                    static_cast<int>(settings_.keepalive.count()), nullptr);
  if (rc != MOSQ_ERR_SUCCESS) return fail("connect", rc);
  rc = mosquitto_loop_start(m);
  if (rc != MOSQ_ERR_SUCCESS) return fail("loop thread", rc);
  link_->loop_started = true;
  // The backstop for a loop that dies silently or a broker that never
  // answers: no CONNACK within the keepalive (5 s to 30 s) is a failure.
  const auto limit = std::clamp<std::chrono::seconds>(settings_.keepalive, std::chrono::seconds(5),
                                                      std::chrono::seconds(30));
  connect_deadline_.expires_after(limit);
  connect_deadline_.async_wait([weak = weak_from_this(), generation = link_->generation,
                                limit](const boost::system::error_code& ec) {
    const auto self = weak.lock();
    if (ec || !self || !self->link_ || self->link_->generation != generation || self->session_)
      return;
    self->link_down("no CONNACK within " + std::to_string(limit.count()) + " s", false);
  });
  return {};
}

void MqttClient::Impl::handle_connack(int rc) {
  if (rc != 0) {
    const std::string why =
        std::string("connection refused: ") +
        (link_->v5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc));
    if (link_->v5 && settings_.protocol == MqttProtocol::automatic && is_protocol_refusal(rc))
      use_v311_ = true;  // for every later attempt
    ++counters_.connect_failures;
    link_down(why, true);
    return;
  }
  connect_deadline_.cancel();
  session_ = true;
  v5_ = link_->v5;
  ++counters_.connects;
  backoff_ = settings_.reconnect_min;
  pending_subacks_.clear();
  for (const auto& [filter, qos] : subscriptions_) {
    int mid = 0;
    const int src = mosquitto_subscribe(link_->mosq, &mid, filter.c_str(), qos);
    if (src == MOSQ_ERR_SUCCESS)
      pending_subacks_.insert(mid);
    else
      last_error_ = "subscribe " + filter + ": " + error_text(src, errno);
  }
  if (pending_subacks_.empty()) announce();
}

void MqttClient::Impl::handle_suback(int mid, int granted) {
  if (granted >= 0x80) last_error_ = "subscription refused by the broker";
  if (pending_subacks_.erase(mid) && pending_subacks_.empty() && session_ && !connected_)
    announce();
}

void MqttClient::Impl::announce() {
  connected_ = true;
  if (hooks_.on_connected) hooks_.on_connected(v5_);
}

void MqttClient::Impl::link_down(const std::string& why, bool counted) {
  if (stopped_) return;
  if (session_)
    ++counters_.disconnects;
  else if (!counted)
    ++counters_.connect_failures;
  last_error_ = why;
  connect_deadline_.cancel();
  session_ = false;
  connected_ = false;
  pending_subacks_.clear();
  close_link(false, std::chrono::milliseconds(0));
  if (hooks_.on_disconnected) hooks_.on_disconnected(why);
  schedule_retry();  // a hook may have called stop(): schedule_retry checks
}

void MqttClient::Impl::close_link(bool clean, std::chrono::milliseconds flush) {
  if (!link_) return;
  const std::unique_ptr<Link> link = std::move(link_);
  if (link->loop_started) {
    bool flushed = false;
    if (clean) {
      const auto deadline = std::chrono::steady_clock::now() + flush;
      std::unique_lock lock(link->mutex);
      // What was published goes out, and is acknowledged, before DISCONNECT.
      link->changed.wait_until(lock, deadline,
                               [&] { return link->unacknowledged == 0 || link->closed; });
      link->stopping = true;
      lock.unlock();
      if (mosquitto_disconnect_v5(link->mosq, 0, nullptr) == MOSQ_ERR_SUCCESS) {
        lock.lock();
        flushed = link->changed.wait_until(lock, deadline, [&] { return link->closed; });
      }
    }
    // After our DISCONNECT went out, the loop ends by itself and a plain join
    // is prompt. Otherwise the thread is cancelled: it may be sleeping in
    // select() or stuck in a TCP connect; our callbacks are never cut short
    // (NoCancel), and libmosquitto's own cleanup in mosquitto_destroy frees
    // what the thread held.
    mosquitto_loop_stop(link->mosq, !flushed);
  }
  mosquitto_destroy(link->mosq);
}

void MqttClient::Impl::schedule_retry() {
  if (stopped_) return;
  std::uniform_real_distribution<double> jitter(0.75, 1.25);
  const auto delay = std::chrono::milliseconds(
      static_cast<std::chrono::milliseconds::rep>(backoff_.count() * jitter(rng_)));
  backoff_ = std::min(backoff_ * 2, std::max(settings_.reconnect_max, settings_.reconnect_min));
  retry_.expires_after(delay);
  retry_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    if (const auto self = weak.lock()) self->attempt();
  });
}

void MqttClient::Impl::stop(std::chrono::milliseconds flush) {
  if (stopped_) return;
  stopped_ = true;  // from here on no hook runs: posted events are dropped
  retry_.cancel();
  connect_deadline_.cancel();
  close_link(session_, flush);
  session_ = false;
  connected_ = false;
}

void MqttClient::Impl::subscribe(std::string filter, int qos) {
  subscriptions_.emplace_back(filter, qos);
  if (!session_ || !link_) return;  // made at the next CONNACK
  int mid = 0;
  const int rc = mosquitto_subscribe(link_->mosq, &mid, filter.c_str(), qos);
  if (rc != MOSQ_ERR_SUCCESS)
    last_error_ = "subscribe " + filter + ": " + error_text(rc, errno);
  else if (!connected_)
    pending_subacks_.insert(mid);
}

std::optional<int> MqttClient::Impl::publish(const std::string& topic, const std::string& payload,
                                             int qos, bool retain,
                                             const std::string& correlation_data) {
  if (!connected_ || !link_) return std::nullopt;
  mosquitto_property* props = nullptr;
  if (v5_ && !correlation_data.empty()) {
    const int rc = mosquitto_property_add_binary(
        &props, MQTT_PROP_CORRELATION_DATA, correlation_data.data(),
        static_cast<std::uint16_t>(std::min<std::size_t>(correlation_data.size(), 65535)));
    if (rc != MOSQ_ERR_SUCCESS) {
      last_error_ = "publish " + topic + ": correlation data: " + error_text(rc, errno);
      return std::nullopt;
    }
  }
  {
    std::lock_guard lock(link_->mutex);
    ++link_->unacknowledged;
  }
  int mid = 0;
  const int rc =
      mosquitto_publish_v5(link_->mosq, &mid, topic.c_str(), static_cast<int>(payload.size()),
                           payload.data(), qos, retain, props);
  const int saved_errno = errno;
  mosquitto_property_free_all(&props);
  if (rc != MOSQ_ERR_SUCCESS) {
    {
      std::lock_guard lock(link_->mutex);
      --link_->unacknowledged;
    }
    last_error_ = "publish " + topic + ": " + error_text(rc, saved_errno);
    if (rc == MOSQ_ERR_NO_CONN) {
      // libmosquitto lost the link without telling us: take it down, from
      // the loop rather than inside publish(), so no hook runs in here.
      boost::asio::post(io_, [weak = weak_from_this(), generation = link_->generation] {
        const auto self = weak.lock();
        if (self && !self->stopped_ && self->link_ && self->link_->generation == generation)
          self->link_down("link lost (publish: no connection)", false);
      });
    }
    return std::nullopt;
  }
  ++counters_.published;
  return mid;
}

// --- MqttClient -----------------------------------------------------------

MqttClient::MqttClient(boost::asio::io_context& io, MqttSettings settings, MqttHooks hooks) {
  mqtt_library_init();
  impl_ = std::make_shared<Impl>(io, std::move(settings), std::move(hooks));
}

MqttClient::~MqttClient() { stop(); }

void MqttClient::start() { impl_->start(); }
void MqttClient::stop(std::chrono::milliseconds flush) { impl_->stop(flush); }
bool MqttClient::connected() const noexcept { return impl_->connected(); }
bool MqttClient::v5() const noexcept { return impl_->v5(); }
void MqttClient::subscribe(std::string topic_filter, int qos) {
  impl_->subscribe(std::move(topic_filter), qos);
}
std::optional<int> MqttClient::publish(const std::string& topic, const std::string& payload,
                                       int qos, bool retain, const std::string& correlation_data) {
  return impl_->publish(topic, payload, qos, retain, correlation_data);
}
MqttCounters MqttClient::counters() const noexcept { return impl_->counters(); }
std::string MqttClient::last_error() const { return impl_->last_error(); }

}  // namespace meterd::drivers
