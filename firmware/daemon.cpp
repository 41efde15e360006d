#include "firmware/daemon.hpp"

#include <filesystem>
#include <stdexcept>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace meterd::firmware {

namespace asio = boost::asio;
using drivers::Outcome;

namespace {

// Largest backlog of batches kept in memory while the buffer refuses writes
// (disk full, I/O error); past it the oldest are dropped, counted and logged.
constexpr std::size_t max_pending_batches = 4096;

bool same_bus(const drivers::BusConfig& a, const drivers::BusConfig& b) {
  return a.name == b.name && a.device == b.device && a.tcp_host == b.tcp_host &&
         a.tcp_port == b.tcp_port && a.line.baud == b.line.baud && a.line.parity == b.line.parity &&
         a.line.data_bits == b.line.data_bits && a.line.stop_bits == b.line.stop_bits &&
         a.rs485.enabled == b.rs485.enabled && a.rs485.rts_on_send == b.rs485.rts_on_send &&
         a.rs485.delay_before_send_ms == b.rs485.delay_before_send_ms &&
         a.rs485.delay_after_send_ms == b.rs485.delay_after_send_ms &&
         a.limits.response_timeout == b.limits.response_timeout &&
         a.limits.byte_timeout == b.limits.byte_timeout && a.retries == b.retries &&
         a.echo == b.echo && a.reopen_min == b.reopen_min && a.reopen_max == b.reopen_max;
}

bool same_meter(const MeterConfig& a, const MeterConfig& b) {
  return a.id == b.id && a.bus == b.bus && a.protocol == b.protocol && a.address == b.address &&
         a.unit == b.unit && a.profile == b.profile && a.interval == b.interval &&
         a.quantities == b.quantities && a.preamble == b.preamble;
}

std::vector<ScheduledMeter> scheduled(const Config& c) {
  std::vector<ScheduledMeter> out;
  out.reserve(c.meters.size());
  for (const auto& m : c.meters) out.push_back({m.id, m.bus, m.interval.count()});
  return out;
}

buffer::Options buffer_options(const Config& c, std::int64_t now_ms) {
  buffer::Options o;
  o.path = (std::filesystem::path(c.gateway.data_dir) / "buffer.db").string();
  o.max_readings = c.buffer.max_readings;
  o.max_events = c.buffer.max_events;
  o.max_bytes = c.buffer.max_bytes;
  o.sync = c.buffer.sync == "normal" ? buffer::Sync::normal : buffer::Sync::full;
  o.cache_kib = c.buffer.cache_kib;
  o.now_ms = now_ms;
  return o;
}

std::string percent(std::chrono::microseconds part, std::int64_t whole_ms) {
  if (whole_ms <= 0) return "0.0%";
  const double p = 100.0 * static_cast<double>(part.count()) / (1000.0 * whole_ms);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", p);
  return buf;
}

}  // namespace

Daemon::Daemon(asio::io_context& io, Config config, NowMs now_ms)
    : io_(io),
      config_(std::move(config)),
      now_ms_(std::move(now_ms)),
      schedule_(config_.polling.offline_after),
      timer_(io),
      summary_timer_(io),
      stopping_(std::make_shared<std::atomic<bool>>(false)),
      inbox_(std::make_shared<Inbox>()),
      uplink_timer_(io),
      health_timer_(io) {}

Daemon::~Daemon() { stop(); }

void Daemon::start() {
  started_ms_ = now_ms_();
  std::error_code ec;
  std::filesystem::create_directories(config_.gateway.data_dir, ec);
  if (ec) throw std::runtime_error("data_dir " + config_.gateway.data_dir + ": " + ec.message());
  auto opened = buffer::Store::open(buffer_options(config_, now_ms_()));
  if (!opened)
    throw std::runtime_error("buffer " + config_.gateway.data_dir +
                             "/buffer.db: " + opened.error().message);
  store_.emplace(std::move(opened).value());
  if (auto st = store_->stats())
    spdlog::info("buffer {}/buffer.db: {} readings, {} events kept, next seq {}",
                 config_.gateway.data_dir, st->readings, st->events, st->next_seq);

  start_uplink();
  for (const auto& bus : config_.buses) start_bus(bus);
  configure_meters(false, nullptr);
  start_control();
  summary_started_ms_ = now_ms_();
  spdlog::info("meterd started: gateway {}, {} buses, {} meters", config_.gateway.id,
               config_.buses.size(), config_.meters.size());
  arm_timer();
  arm_summary();
}

void Daemon::start_bus(const drivers::BusConfig& bus) {
  const std::string name = bus.name;
  auto worker = std::make_unique<drivers::BusWorker>(bus, [name](bool up, const std::string& why) {
    if (up)
      spdlog::info("bus {}: up{}", name, why.empty() ? "" : " (" + why + ")");
    else if (why == "stopped")
      spdlog::info("bus {}: closed", name);
    else
      spdlog::warn("bus {}: down: {}", name, why);
  });
  worker->start();
  auto& rt = buses_[name];
  rt.worker = std::move(worker);
  rt.started_ms = now_ms_();
  rt.total = {};
}

void Daemon::configure_meters(bool keep_memory_of_unchanged, const Config* old) {
  // Meters on the same profile (narrowed the same way) share one copy.
  std::map<std::pair<std::string, std::vector<std::string>>, std::shared_ptr<const Profile>> shared;
  std::map<std::string, MeterRuntime> next;
  for (const auto& m : config_.meters) {
    MeterRuntime rt;
    const auto it = meters_.find(m.id);
    if (it != meters_.end()) {
      rt.counters = it->second.counters;
      rt.latest = it->second.latest;
      const MeterConfig* before = old ? old->find_meter(m.id) : nullptr;
      if (keep_memory_of_unchanged && before && same_meter(*before, m))
        rt.memory = it->second.memory;
    }
    auto& profile = shared[{m.profile, m.quantities}];
    if (!profile) {
      const auto base = config_.profiles->share(m.profile);
      if (!base) throw std::logic_error("validated config names unknown profile " + m.profile);
      profile = m.quantities.empty()
                    ? base
                    : std::make_shared<const Profile>(base->narrowed(m.quantities));
    }
    rt.profile = profile;
    next.emplace(m.id, std::move(rt));
  }
  meters_ = std::move(next);
  schedule_.set_offline_after(config_.polling.offline_after);
  schedule_.configure(scheduled(config_), now_ms_());
}

void Daemon::arm_timer() {
  if (stopped_) return;
  const auto next = schedule_.next_wakeup();
  // Wake at least once a second: a wall-clock step (NTP) is noticed quickly.
  std::int64_t wait_ms = 1000;
  if (next) wait_ms = std::clamp<std::int64_t>(*next - now_ms_(), 0, 1000);
  timer_.expires_after(std::chrono::milliseconds(wait_ms));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) on_timer();
  });
}

void Daemon::on_timer() {
  if (stopped_) return;
  for (const Due& due : schedule_.take_due(now_ms_())) dispatch(due);
  tasks_tick();
  arm_timer();
}

void Daemon::dispatch(const Due& due) {
  const MeterConfig* meter = config_.find_meter(due.id);
  const auto bus = buses_.find(due.bus);
  const auto rt = meters_.find(due.id);
  if (meter == nullptr || bus == buses_.end() || rt == meters_.end()) {
    schedule_.completed(due.id, now_ms_(), false);
    return;
  }
  auto request = std::make_shared<PollRequest>();
  request->meter = *meter;
  request->profile = rt->second.profile;
  request->memory = rt->second.memory;
  request->now_ms = now_ms_;
  request->stopping = stopping_;
  drivers::BusWorker* worker = bus->second.worker.get();
  request->on_exchange = [worker](const drivers::Tally& t) { worker->account(t); };
  std::weak_ptr<Inbox> inbox = inbox_;
  asio::io_context* io = &io_;
  bus->second.worker->post(drivers::Priority::schedule, [request, inbox, io, self = this,
                                                         worker](drivers::BusPort& port) {
    PollResult result = port.config ? poll_meter(port, *port.config, *request)
                                    : poll_meter(port, worker->config(), *request);
    const auto box = inbox.lock();
    if (!box) return;
    {
      std::lock_guard lock(box->mutex);
      box->results.push_back(std::move(result));
    }
    asio::post(*io, [inbox, self] {
      if (inbox.lock()) self->on_results();
    });
  });
}

void Daemon::on_results() {
  for (;;) {
    std::optional<PollResult> r;
    {
      std::lock_guard lock(inbox_->mutex);
      if (inbox_->results.empty()) return;
      r.emplace(std::move(inbox_->results.front()));
      inbox_->results.pop_front();
    }
    handle(std::move(*r));
  }
}

void Daemon::handle(PollResult r) {
  const std::int64_t now = now_ms_();
  buffer::Batch batch;
  batch.now_ms = now;
  batch.readings = std::move(r.readings);

  const bool cancelled = r.failure == Outcome::cancelled;
  const auto rt = meters_.find(r.meter);
  if (rt != meters_.end()) {
    MeterCounters& c = rt->second.counters;
    c.timeouts += r.tally.timeouts;
    c.bad_frames += r.tally.bad_frames;
    c.exceptions += r.tally.meter_errors;
    c.mismatches += r.tally.mismatches;
    c.readings += batch.readings.size();
    if (r.ok) {
      ++c.successes;
      c.last_success_ms = r.finished_ms;
    } else if (!cancelled) {
      ++c.failures;
      c.last_error = r.detail;
    }
    rt->second.memory = std::move(r.memory);
  }
  for (const auto& p : r.problems) spdlog::warn("meter {}: {}", r.meter, p);

  if (!cancelled && !stopped_) {
    const MeterConfig* meter = config_.find_meter(r.meter);
    if (meter != nullptr) {
      for (BusSummary* bus : {&buses_[meter->bus].period, &buses_[meter->bus].total}) {
        (r.ok ? bus->reads_ok : bus->reads_failed)++;
        bus->exchanges += r.exchanges;
        bus->values += batch.readings.size();
      }
    }
    const Transition t = schedule_.completed(r.meter, now, r.ok);
    const MeterTiming* timing = schedule_.timing(r.meter);
    if (!r.ok) spdlog::debug("meter {}: read failed: {}", r.meter, r.detail);
    if (t.went_offline) {
      const unsigned n = timing ? timing->failures : config_.polling.offline_after;
      spdlog::warn("meter {}: offline after {} failed reads: {}", r.meter, n, r.detail);
      // type and meter are the event's own columns (the envelope), not payload members.
      nlohmann::json payload{{"failures", n}, {"reason", r.detail}};
      if (timing && timing->last_success_ms) payload["last_success_ms"] = *timing->last_success_ms;
      batch.events.push_back({0, r.meter, "meter.offline", now, payload.dump()});
    }
    if (t.went_online) {
      spdlog::info("meter {}: online again", r.meter);
      batch.events.push_back({0, r.meter, "meter.online", now, "{}"});
    }
    if (rt != meters_.end()) task_checks(r, batch);
    arm_timer();  // it may be due again at once
  }
  if (!batch.readings.empty() || !batch.events.empty() || !batch.state.empty())
    store(std::move(batch));
}

void Daemon::store(buffer::Batch batch) {
  if (!store_) return;
  // Older batches first, so seqs follow acquisition order.
  while (!pending_.empty()) {
    auto res = store_->append(pending_.front());
    if (!res) break;
    stored(pending_.front(), *res);
    pending_.erase(pending_.begin());
  }
  if (pending_.empty()) {
    auto res = store_->append(batch);
    if (res) {
      stored(batch, *res);
      if (uplink_) {
        uplink_->notify_appended(now_ms_(), batch.readings.size() + batch.events.size());
        kick_uplink();
      }
      return;
    }
    spdlog::error("buffer: append of {} readings failed: {} (kept in memory, retried)",
                  batch.readings.size(), res.error().message);
  }
  pending_.push_back(std::move(batch));
  if (pending_.size() > max_pending_batches) {
    spdlog::error("buffer: {} batches wait for the disk; the oldest ({} readings) is dropped",
                  pending_.size(), pending_.front().readings.size());
    pending_.erase(pending_.begin());
  }
}

void Daemon::reload(Config next) {
  if (next.gateway.data_dir != config_.gateway.data_dir) {
    spdlog::warn("reload: gateway.data_dir changed to {}: takes effect at the next restart",
                 next.gateway.data_dir);
    next.gateway.data_dir = config_.gateway.data_dir;
  }
  Config old = std::move(config_);
  config_ = std::move(next);
  // Buses: stop the removed and changed ones, start the new and changed ones.
  for (auto it = buses_.begin(); it != buses_.end();) {
    const drivers::BusConfig* now = config_.find_bus(it->first);
    const drivers::BusConfig* before = old.find_bus(it->first);
    if (now == nullptr || before == nullptr || !same_bus(*now, *before)) {
      spdlog::info("reload: bus {} {}", it->first, now ? "changed: restarting" : "removed");
      it->second.worker->stop();
      it = buses_.erase(it);
    } else {
      ++it;
    }
  }
  on_results();  // what the stopped workers finished
  for (const auto& bus : config_.buses)
    if (!buses_.contains(bus.name)) start_bus(bus);
  configure_meters(true, &old);
  if (uplink_changed(old)) {
    spdlog::info("reload: [mqtt] or the command key changed: restarting the uplink");
    stop_uplink();
    guard_.reset();
    try {
      start_uplink();
    } catch (const std::exception& e) {
      // The polling carries on; the uplink stays off until a reload that works.
      stop_uplink();
      spdlog::error("reload: the uplink cannot start: {}; readings stay in the buffer", e.what());
    }
  }
  spdlog::info("reload: {} buses, {} meters", config_.buses.size(), config_.meters.size());
  arm_timer();
}

void Daemon::stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_->store(true);
  timer_.cancel();
  summary_timer_.cancel();
  stop_control();
  for (auto& [name, bus] : buses_) bus.worker->stop();  // the exchange in flight finishes
  on_results();
  buses_.clear();
  if (store_) {
    for (const auto& b : pending_)
      if (auto res = store_->append(b); !res)
        spdlog::error("buffer: {} readings lost at stop: {}", b.readings.size(),
                      res.error().message);
    pending_.clear();
    stop_uplink();
    if (auto res = store_->close(); !res)
      spdlog::error("buffer: close: {}", res.error().message);
    else
      spdlog::info("buffer closed cleanly");
    store_.reset();
  }
}

const MeterCounters* Daemon::counters(const std::string& meter) const {
  const auto it = meters_.find(meter);
  return it == meters_.end() ? nullptr : &it->second.counters;
}

void Daemon::arm_summary() {
  if (stopped_) return;
  summary_timer_.expires_after(config_.polling.summary_interval);
  summary_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    log_summary();
    arm_summary();
  });
}

void Daemon::log_summary() {
  const std::int64_t now = now_ms_();
  const std::int64_t period_ms = now - summary_started_ms_;
  for (auto& [name, bus] : buses_) {
    const drivers::BusStats s = bus.worker->stats();
    const std::uint64_t missed = schedule_.missed_slots(name);
    const std::uint64_t new_missed = missed - std::min(missed, bus.missed_reported);
    BusSummary& p = bus.period;
    // The wire's counters from the worker (exchange by exchange), as a
    // difference from the last summary.
    drivers::Tally wire = s.tally;
    wire.attempts -= bus.reported.attempts;
    wire.timeouts -= bus.reported.timeouts;
    wire.bad_frames -= bus.reported.bad_frames;
    wire.mismatches -= bus.reported.mismatches;
    wire.meter_errors -= bus.reported.meter_errors;
    wire.busy -= bus.reported.busy;
    wire.silence -= bus.reported.silence;
    bus.reported = s.tally;
    spdlog::info(
        "bus {}: {}, reads ok {} failed {}, exchanges {}, values {}, timeouts {}, bad frames {}, "
        "mismatches {}, exceptions {}, busy {} ({} of {} ms), missed slots {} (total {}), queued "
        "{}",
        name, s.up ? "up" : "down (" + s.last_error + ")", p.reads_ok, p.reads_failed, p.exchanges,
        p.values, wire.timeouts, wire.bad_frames, wire.mismatches, wire.meter_errors,
        percent(wire.busy + wire.silence, period_ms), (wire.busy + wire.silence).count() / 1000,
        period_ms, new_missed, missed, s.queued);
    if (new_missed > 0)
      spdlog::warn(
          "bus {}: shortfall: {} meter reads missed their interval in the last {} s; the bus "
          "needs more time than the meters' intervals allow",
          name, new_missed, period_ms / 1000);
    bus.missed_reported = missed;
    p = {};
  }
  if (uplink_ && store_) {
    const UplinkCounters& u = uplink_->counters();
    std::string backlog = "?";
    if (auto st = store_->stats()) {
      backlog = std::to_string(st->readings + st->events) + " rows";
      if (st->oldest_unsent_ts_ms)
        backlog += ", oldest " + std::to_string((now - *st->oldest_unsent_ts_ms) / 1000) + " s old";
    }
    spdlog::info(
        "uplink: {}, publishes {}, rows acked {}, requeued {}, refused {}, disconnects {}, "
        "backlog {}",
        mqtt_ && mqtt_->connected() ? "connected" : "down (" + mqtt_->last_error() + ")",
        u.publishes, u.acked_rows, u.requeued_rows, u.refused, u.disconnects, backlog);
  }
  summary_started_ms_ = now;
}

}  // namespace meterd::firmware
