// The daemon's wiring (docs/design.md "Threads"): the io_context thread
// owns the config snapshot, the schedule, the buffer and every counter;
// one BusWorker per bus runs the meters' reads; results come back through
// a queue and are stored, one buffer transaction per meter read. Signals,
// reloads and the periodic summary all run on the io_context thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "buffer/store.hpp"
#include "drivers/bus.hpp"
#include "drivers/control_server.hpp"
#include "drivers/mqtt.hpp"
#include "firmware/commands.hpp"
#include "firmware/config.hpp"
#include "firmware/control.hpp"
#include "firmware/poll.hpp"
#include "firmware/schedule.hpp"
#include "firmware/tasks.hpp"
#include "firmware/timesync.hpp"
#include "firmware/uplink.hpp"

namespace meterd::firmware {

inline constexpr const char* meterd_version = "0.1.0";

// The buffer's state table is per meter; gateway-wide state (the replay
// guard of signed commands) lives under this owner, with keys no meter uses.
inline constexpr const char* replay_guard_owner = "*";

// Per-meter counters (a technician's first questions about a meter).
struct MeterCounters {
  std::uint64_t successes = 0;
  std::uint64_t failures = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t bad_frames = 0;  // checksum / CRC / framing
  std::uint64_t exceptions = 0;  // ERR words and Modbus exceptions
  std::uint64_t mismatches = 0;  // answers that were not ours
  std::uint64_t readings = 0;    // values stored
  std::optional<std::int64_t> last_success_ms;
  std::string last_error;
};

struct BusSummary {
  std::uint64_t reads_ok = 0, reads_failed = 0;
  std::uint64_t exchanges = 0;  // request/answer exchanges (retries not counted twice)
  std::uint64_t values = 0;     // readings stored
  std::uint64_t missed_slots = 0;
};

class Daemon {
 public:
  using NowMs = std::function<std::int64_t()>;
  // Re-reads and validates the config file and reload()s it; returns every
  // error ("" when reloaded). The `reload` downlink command calls it.
  using Reloader = std::function<std::vector<std::string>()>;

  Daemon(boost::asio::io_context& io, Config config, NowMs now_ms);
  ~Daemon();

  // Opens the buffer (creating data_dir), starts a worker per bus and the
  // schedule. Throws std::runtime_error when it cannot start (exit 1).
  void start();
  // Swaps in a new config (already validated): buses added, removed or
  // changed are started, stopped or restarted; the other buses' workers and
  // every unchanged meter's schedule carry on. Settings that need a restart
  // (data_dir, buffer options) are kept and named in the log.
  void reload(Config config);
  // Stops the schedule and the workers (the exchange in flight finishes),
  // stores the last results, closes the buffer cleanly. Idempotent.
  void stop();

  void set_reloader(Reloader r) { reloader_ = std::move(r); }

  const Config& config() const noexcept { return config_; }
  const MeterCounters* counters(const std::string& meter) const;
  void log_summary();  // one line per bus (also on a timer)

 private:
  struct BusRuntime {
    std::unique_ptr<drivers::BusWorker> worker;
    std::int64_t started_ms = 0;  // for the share of time on the wire (status)
    BusSummary total;             // since the bus started
    BusSummary period;            // since the last summary line
    drivers::Tally reported;      // the worker's counters at the last summary line
    std::uint64_t missed_reported = 0;
  };
  // A meter's latest value of one quantity (meterctl meters). Names point
  // into names_, so 1024 meters x 20 quantities stay small.
  struct Latest {
    const std::string* quantity = nullptr;
    const std::string* unit = nullptr;
    std::int64_t mantissa = 0;
    std::int32_t exponent = 0;
    std::int64_t ts_ms = 0;
  };
  struct MeterRuntime {
    std::vector<Latest> latest;
    MeterCounters counters;
    MeterMemory memory;
    std::shared_ptr<const Profile> profile;  // narrowed to the meter's quantities
  };

  void start_bus(const drivers::BusConfig& bus);
  void configure_meters(bool keep_memory_of_unchanged, const Config* old);
  void arm_timer();
  void on_timer();
  void dispatch(const Due& due);
  void on_results();
  void handle(PollResult result);
  void store(buffer::Batch batch);
  // After a batch was appended: latest values, tail followers.
  void stored(const buffer::Batch& batch, const buffer::AppendResult& seqs);
  void arm_summary();

  // The uplink (daemon_uplink.cpp).
  void start_uplink();
  void stop_uplink();
  bool uplink_changed(const Config& old) const;
  void kick_uplink();  // pump now and arm the uplink timer for what it waits for
  void arm_health();
  nlohmann::json health() const;
  // {"total","online","offline","unknown","offline_ids"} (health and status).
  nlohmann::json meters_summary() const;
  // Downlink commands (daemon_commands.cpp), from MQTT or the control
  // socket; the answer goes back through a Reply, on the loop thread.
  struct CommandOutcome {
    bool ok = false;
    nlohmann::json result;      // ok: the result object (exact numbers marked)
    std::string code, message;  // not ok
  };
  using Reply = std::function<void(const CommandOutcome&)>;
  void on_command(drivers::MqttMessage message);
  void answer(const std::string& payload, const drivers::MqttMessage& to);
  Reply mqtt_reply(const std::string& id, drivers::MqttMessage to);
  void execute(const Command& c, Reply reply);
  void execute_read(const Command& c, Reply to);
  void execute_timesync(const Command& c, Reply to);
  void execute_relay(const Command& c, Reply to);
  void refuse(const Command& c, const std::string& code, const std::string& message,
              const Reply& to);

  // The control socket (daemon_control.cpp, docs/control.md).
  struct TailFollower;
  struct ExportJob;
  struct ScanJob;
  void start_control();
  void stop_control();
  void on_control(const std::shared_ptr<drivers::ControlSession>& session, std::string line);
  nlohmann::json control_status() const;
  nlohmann::json control_meters(const ControlRequest& r) const;
  nlohmann::json control_backlog() const;
  void start_tail(const std::shared_ptr<drivers::ControlSession>& session, ControlRequest r);
  void start_export(const std::shared_ptr<drivers::ControlSession>& session, ControlRequest r);
  void start_scan(const std::shared_ptr<drivers::ControlSession>& session, ControlRequest r);
  void scan_step(const std::shared_ptr<ScanJob>& job);
  void scan_stepped(const std::shared_ptr<ScanJob>& job);

  // The data tasks (daemon_tasks.cpp, docs/tasks.md): frozen data, meter
  // events, the clock fix, the daily time sync and the area line loss.
  enum class TaskKind { freeze, events, clock_fix };
  struct TaskClock {
    std::int64_t freeze_next_ms = 0;  // when the freeze task may run again
    std::int64_t events_next_ms = 0;
  };
  void tasks_tick();
  // What is due, for every bus or one (bus non-null), posted as task jobs.
  void tasks_check(std::int64_t now, const std::string* bus);
  void timesync_tick(std::int64_t now);
  void post_task(const MeterConfig& m, TaskKind kind);
  void task_done(const std::string& meter, TaskKind kind, TaskOutput out);
  void store_task_output(TaskOutput out);
  TaskState& task_state(const std::string& owner);  // loaded from the buffer once
  void remember_state(const std::vector<buffer::StateUpdate>& updates);
  // In handle(): the live checks and the gateway-daily copy of a poll's readings.
  void task_checks(const PollResult& r, buffer::Batch& batch);
  void area_update();

  boost::asio::io_context& io_;
  Config config_;
  NowMs now_ms_;
  std::optional<buffer::Store> store_;
  Schedule schedule_;
  std::map<std::string, BusRuntime> buses_;
  std::map<std::string, MeterRuntime> meters_;
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer summary_timer_;
  std::shared_ptr<std::atomic<bool>> stopping_;
  bool stopped_ = false;

  // Results from the workers, drained on the io_context thread.
  struct Inbox {
    std::mutex mutex;
    std::deque<PollResult> results;
  };
  std::shared_ptr<Inbox> inbox_;
  std::vector<buffer::Batch> pending_;  // batches the buffer refused (disk full), retried
  std::int64_t summary_started_ms_ = 0;
  std::int64_t started_ms_ = 0;

  std::map<std::string, TaskClock> task_clocks_;
  // bus -> the meter whose task job it runs or has queued: one at a time a
  // bus, so the meters' reads that come due run between task jobs (and a
  // meter has at most one).
  std::map<std::string, std::string> bus_task_;
  std::map<std::string, TaskState> task_states_;
  std::set<std::string> daily_failed_;  // meters whose last freeze task got no answer
  std::map<std::string, std::int64_t> timesync_next_;  // per bus
  std::int64_t tasks_check_ms_ = 0;
  Zone zone_ = system_zone();
  ClockStatusSource clock_status_ = kernel_clock_status;

  std::unique_ptr<drivers::MqttClient> mqtt_;
  std::unique_ptr<MqttLink> link_;
  std::unique_ptr<Uplink> uplink_;
  boost::asio::steady_timer uplink_timer_;
  boost::asio::steady_timer health_timer_;
  std::optional<std::int64_t> uplink_wake_ms_;  // when the armed uplink timer fires
  bool kick_posted_ = false;                    // a pump is posted after PUBACKs
  // Commands: the key, and the ids of signed commands already obeyed.
  std::string hmac_key_;
  std::string key_problem_;  // why signed commands cannot be checked ("" when they can)
  std::optional<ReplayGuard> guard_;
  Reloader reloader_;

  std::unique_ptr<drivers::ControlServer> control_;
  std::vector<std::shared_ptr<TailFollower>> tails_;
  std::vector<std::shared_ptr<ExportJob>> exports_;
  std::map<std::string, std::shared_ptr<ScanJob>> scans_;  // one per bus at a time
  std::uint64_t control_requests_ = 0;
  std::set<std::string> names_;  // quantity and unit names of Latest
};

}  // namespace meterd::firmware
