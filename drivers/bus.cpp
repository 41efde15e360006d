#include "drivers/bus.hpp"

#include <array>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace meterd::drivers {

Dlt645Options dlt645_options(const BusConfig& c) {
  Dlt645Options o;
  o.limits = c.limits;
  o.retries = c.retries;
  o.echo = c.echo;
  return o;
}

ModbusOptions modbus_options(const BusConfig& c) {
  ModbusOptions o;
  o.limits = c.limits;
  o.retries = c.retries;
  o.echo = c.echo;
  return o;
}

class BusWorker::Impl {
 public:
  Impl(BusConfig config, StateHook hook) : config_(std::move(config)), hook_(std::move(hook)) {}

  const BusConfig config_;
  const StateHook hook_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::array<std::deque<Job>, 3> queues_;  // by Priority
  bool started_ = false;
  bool stopping_ = false;
  std::thread thread_;
  BusStats stats_;

  // Worker thread only.
  std::unique_ptr<SerialLine> line_;
  std::unique_ptr<ModbusMaster> modbus_;
  bool up_ = false;
  bool reported_down_ = false;
  SteadyClock::time_point next_open_{};
  std::chrono::milliseconds backoff_{0};

  bool queued() const {
    for (const auto& q : queues_)
      if (!q.empty()) return true;
    return false;
  }
  Job pop() {
    for (auto& q : queues_)
      if (!q.empty()) {
        Job j = std::move(q.front());
        q.pop_front();
        return j;
      }
    return {};
  }

  void run_down(Job& job) {
    BusPort port;
    port.config = &config_;
    port.stopping = true;
    job(port);
  }

  void set_state(bool up, const std::string& why) {
    {
      std::lock_guard lk(mu_);
      stats_.up = up;
      if (!up) stats_.last_error = why;
    }
    if (hook_) hook_(up, why);
  }

  void next_backoff() {
    backoff_ = backoff_ == std::chrono::milliseconds(0)
                   ? config_.reopen_min
                   : std::min(backoff_ * 2, std::max(config_.reopen_min, config_.reopen_max));
    next_open_ = SteadyClock::now() + backoff_;
  }

  void try_open() {
    std::string why;
    if (config_.is_tcp()) {
      // Connects on first use and keeps its own back-off (bus_down fast).
      modbus_ = make_modbus_tcp(config_.tcp_host, config_.tcp_port);
    } else {
      std::error_code ec;
      Fd fd = open_serial(config_.device, config_.line, ec);
      if (ec) why = "open " + config_.device + ": " + ec.message();
      if (!ec && (ec = lock_exclusive(fd.get())))
        why = "lock " + config_.device + ": " + ec.message() + " (another process drives this bus)";
      if (!ec && config_.rs485.enabled) {
        ec = set_rs485(fd.get(), config_.rs485);
        if (ec == std::errc::not_supported) ec.clear();  // the adapter switches itself
        if (ec) why = "RS-485 mode on " + config_.device + ": " + ec.message();
      }
      if (ec) {
        {
          std::lock_guard lk(mu_);
          ++stats_.open_failures;
        }
        next_backoff();
        if (!reported_down_) {
          reported_down_ = true;
          set_state(false, why);
        } else {
          std::lock_guard lk(mu_);
          stats_.last_error = why;
        }
        return;
      }
      line_ = std::make_unique<SerialLine>(std::move(fd), config_.line);
      modbus_ = make_modbus_rtu(*line_);
    }
    up_ = true;
    reported_down_ = false;
    backoff_ = std::chrono::milliseconds(0);
    {
      std::lock_guard lk(mu_);
      ++stats_.opens;
    }
    set_state(true, "");
  }

  void close(const std::string& why) {
    modbus_.reset();  // the RTU master uses the line's descriptor
    if (line_) release_exclusive(line_->fd());
    line_.reset();
    up_ = false;
    reported_down_ = true;
    next_backoff();
    set_state(false, why);
  }

  void run(Job& job) {
    BusPort port;
    port.config = &config_;
    if (up_) {
      port.serial = line_.get();
      port.modbus = modbus_.get();
    }
    job(port);
    {
      std::lock_guard lk(mu_);
      ++stats_.jobs;
    }
    if (port.failure && up_) close(port.failure.message());
  }

  void loop() {
    try_open();
    for (;;) {
      Job job;
      bool open_due = false;
      {
        std::unique_lock lk(mu_);
        for (;;) {
          if (stopping_ || queued()) break;
          if (!up_) {
            if (cv_.wait_until(lk, next_open_) == std::cv_status::timeout &&
                SteadyClock::now() >= next_open_) {
              open_due = true;
              break;
            }
          } else {
            cv_.wait(lk);
          }
        }
        if (stopping_) break;
        job = pop();
      }
      if (!up_ && (open_due || SteadyClock::now() >= next_open_)) try_open();
      if (job) run(job);
    }
    if (up_) {
      modbus_.reset();
      if (line_) release_exclusive(line_->fd());
      line_.reset();
      up_ = false;
      set_state(false, "stopped");
    }
  }
};

BusWorker::BusWorker(BusConfig config, StateHook on_state)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(on_state))) {}

BusWorker::~BusWorker() { stop(); }

const BusConfig& BusWorker::config() const noexcept { return impl_->config_; }

void BusWorker::start() {
  std::lock_guard lk(impl_->mu_);
  if (impl_->started_ || impl_->stopping_) return;
  impl_->started_ = true;
  impl_->thread_ = std::thread([this] { impl_->loop(); });
}

void BusWorker::post(Priority priority, Job job) {
  {
    std::lock_guard lk(impl_->mu_);
    if (!impl_->stopping_) {
      impl_->queues_[static_cast<std::size_t>(priority)].push_back(std::move(job));
      impl_->cv_.notify_one();
      return;
    }
  }
  impl_->run_down(job);
}

void BusWorker::stop() {
  {
    std::lock_guard lk(impl_->mu_);
    if (impl_->stopping_ && !impl_->thread_.joinable() && !impl_->queued()) return;
    impl_->stopping_ = true;
  }
  impl_->cv_.notify_all();
  if (impl_->thread_.joinable() && impl_->thread_.get_id() != std::this_thread::get_id())
    impl_->thread_.join();
  // Whatever was still queued reports with a down port, on this thread.
  for (;;) {
    Job job;
    {
      std::lock_guard lk(impl_->mu_);
      job = impl_->pop();
    }
    if (!job) break;
    impl_->run_down(job);
  }
}

void BusWorker::account(const Tally& tally) {
  std::lock_guard lk(impl_->mu_);
  impl_->stats_.tally += tally;
}

BusStats BusWorker::stats() const {
  std::lock_guard lk(impl_->mu_);
  BusStats s = impl_->stats_;
  s.queued = 0;
  for (const auto& q : impl_->queues_) s.queued += q.size();
  return s;
}

}  // namespace meterd::drivers
