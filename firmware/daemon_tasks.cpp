// The data tasks' wiring (docs/tasks.md): on the loop thread the daemon
// decides what is due, posts one task job per meter at a time to the meter's
// bus worker (at schedule priority, between the meters' reads), and stores
// each job's readings, events and state in one buffer transaction.
#include <algorithm>
#include <cstdlib>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "firmware/area.hpp"
#include "firmware/daemon.hpp"
#include "firmware/freezes.hpp"
#include "firmware/meter_events.hpp"
#include "protocol/dlt645/requests.hpp"

namespace meterd::firmware {

namespace asio = boost::asio;
namespace dlt = protocol::dlt645;
using drivers::Outcome;

namespace {

constexpr std::int64_t tasks_check_every_ms = 5'000;
constexpr std::int64_t freeze_retry_ms = 15 * 60'000;  // after a freeze run without an answer
constexpr std::int64_t freeze_wait_ms = 2 * 60'000;    // the meter has not frozen yet
constexpr std::int64_t freeze_idle_check_ms = 10'000;  // nothing due: look again
constexpr const char* gateway_daily_key = "gwdaily.last";
constexpr const char* area_reported_key = "area.reported";

std::string area_owner(const AreaConfig& a) { return "area:" + a.name; }

std::optional<std::string> state_of(const TaskState& s, const std::string& key) {
  const auto it = s.find(key);
  if (it == s.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

const char* kind_name(int kind) {
  static constexpr const char* names[] = {"frozen data", "events", "clock fix"};
  return names[kind];
}

// What a freeze run of meter m needs, from the config and its state.
FreezeTaskInput freeze_input(const TasksConfig& t, const MeterConfig& m, const TaskState& state,
                             std::int64_t now, const Zone& zone) {
  FreezeTaskInput in;
  in.meter = m.id;
  in.state = state;
  in.now_ms = now;
  in.zone = zone;
  in.daily = t.daily;
  in.hourly = m.hourly;
  in.monthly = t.monthly;
  in.delay = t.daily_delay;
  in.backfill_days = t.backfill_days;
  for (auto di : t.daily_items) in.daily_items.push_back(di);
  return in;
}

}  // namespace

TaskState& Daemon::task_state(const std::string& owner) {
  const auto it = task_states_.find(owner);
  if (it != task_states_.end()) return it->second;
  TaskState loaded;
  if (store_) {
    if (auto rows = store_->states(owner))
      loaded = std::move(*rows);
    else
      spdlog::error("buffer: state of {}: {}", owner, rows.error().message);
  }
  return task_states_.emplace(owner, std::move(loaded)).first->second;
}

void Daemon::remember_state(const std::vector<buffer::StateUpdate>& updates) {
  for (const auto& u : updates) task_state(u.meter)[u.key] = u.value;
}

void Daemon::store_task_output(TaskOutput out) {
  for (const auto& p : out.problems) spdlog::warn("meter {}: {}", out.meter, p);
  if (out.readings.empty() && out.events.empty() && out.state.empty()) return;
  remember_state(out.state);
  buffer::Batch batch;
  batch.now_ms = now_ms_();
  batch.readings = std::move(out.readings);
  batch.events = std::move(out.events);
  batch.state = std::move(out.state);
  store(std::move(batch));
}

void Daemon::tasks_tick() {
  const std::int64_t now = now_ms_();
  if (now < tasks_check_ms_ || !store_) return;
  tasks_check_ms_ = now + tasks_check_every_ms;
  tasks_check(now, nullptr);
  timesync_tick(now);
}

void Daemon::tasks_check(std::int64_t now, const std::string* bus) {
  const TasksConfig& t = config_.tasks;
  for (const auto& m : config_.meters) {
    if (m.protocol == MeterProtocol::modbus || !buses_.contains(m.bus)) continue;
    if ((bus != nullptr && m.bus != *bus) || bus_task_.contains(m.bus)) continue;
    TaskClock& clock = task_clocks_[m.id];
    if (m.protocol == MeterProtocol::dlt645_2007 && (t.daily || t.monthly || m.hourly) &&
        now >= clock.freeze_next_ms) {
      if (freeze_work_pending(freeze_input(t, m, task_state(m.id), now, zone_))) {
        post_task(m, TaskKind::freeze);
        continue;
      }
      clock.freeze_next_ms = now + freeze_idle_check_ms;
    }
    if (t.event_interval.count() > 0 && now >= clock.events_next_ms) {
      clock.events_next_ms = now + t.event_interval.count();
      post_task(m, TaskKind::events);
    }
  }
}

void Daemon::post_task(const MeterConfig& m, TaskKind kind) {
  const auto bus = buses_.find(m.bus);
  const auto rt = meters_.find(m.id);
  if (bus == buses_.end() || rt == meters_.end()) return;
  bus_task_[m.bus] = m.id;
  const TasksConfig& t = config_.tasks;
  const std::int64_t now = now_ms_();
  const TaskState& state = task_state(m.id);
  // Everything the job needs, copied on the loop thread.
  std::function<TaskOutput(const DltLink&)> run;
  switch (kind) {
    case TaskKind::freeze: {
      run = [in = freeze_input(t, m, state, now, zone_)](const DltLink& link) {
        return run_freeze_task(link, in);
      };
      break;
    }
    case TaskKind::events: {
      EventTaskInput in;
      in.meter = m.id;
      in.state = state;
      in.now_ms = now_ms_;
      in.zone = zone_;
      in.clock_drift_max = t.clock_drift_max;
      in.gateway_clock_trusted = clock_status_().synchronised;
      run = [in](const DltLink& link) { return run_event_task(link, in); };
      break;
    }
    case TaskKind::clock_fix: {
      ClockFixInput in;
      in.meter = m.id;
      in.state = state;
      if (const auto d = state_of(state, "clock.drift_ms")) in.drift_ms = std::atoll(d->c_str());
      in.write_allowed = t.timesync_write;
      in.clock = clock_status_();
      in.now = now_ms_;
      in.zone = zone_;
      run = [in](const DltLink& link) { return run_clock_fix(link, in); };
      break;
    }
  }
  const dlt::Version version =
      m.protocol == MeterProtocol::dlt645_2007 ? dlt::Version::v2007 : dlt::Version::v1997;
  drivers::Dlt645Options options = drivers::dlt645_options(bus->second.worker->config());
  options.preamble = m.preamble;
  options.min_gap = rt->second.profile->min_gap;
  const dlt::Address address = m.address;
  const auto password =
      dlt::parse_password(m.password.empty() ? "02000000" : m.password).value_or(dlt::Password{});
  const auto op = dlt::parse_operator(config_.commands.operator_code).value_or(dlt::OperatorCode{});
  drivers::BusWorker* worker = bus->second.worker.get();
  auto stopping = stopping_;
  std::weak_ptr<Inbox> alive = inbox_;
  asio::io_context* io = &io_;
  const std::string id = m.id;
  worker->post(drivers::Priority::schedule, [=, self = this](drivers::BusPort& port) {
    TaskOutput out;
    if (port.serial == nullptr) {
      out.meter = id;
      out.failure = port.stopping ? Outcome::cancelled : Outcome::bus_down;
      out.detail = "bus is down";
    } else {
      DltLink link;
      link.version = version;
      link.stopping = [stopping] { return stopping->load(); };
      link.read = [&](std::uint32_t di) {
        auto r = drivers::dlt645_read(*port.serial, version, address, di, options);
        worker->account(r.tally);
        port.note(r.outcome);
        return r;
      };
      link.write = [&](std::uint32_t di, const std::vector<std::uint8_t>& data) {
        const dlt::Frame f = version == dlt::Version::v2007
                                 ? dlt::request::write(address, di, password, op, data)
                                 : dlt::request::v1997::write(
                                       address, static_cast<std::uint16_t>(di), password, data);
        auto a = drivers::dlt645_exchange(*port.serial, version, f, options);
        worker->account(a.tally);
        port.note(a.outcome);
        return a;
      };
      out = run(link);
      out.meter = id;
    }
    asio::post(*io, [alive, self, id, kind, out = std::move(out)]() mutable {
      if (alive.lock()) self->task_done(id, kind, std::move(out));
    });
  });
}

void Daemon::task_done(const std::string& meter, TaskKind kind, TaskOutput out) {
  TaskClock& clock = task_clocks_[meter];
  std::string freed;  // the bus this job held
  for (auto it = bus_task_.begin(); it != bus_task_.end(); ++it)
    if (it->second == meter) {
      freed = it->first;
      bus_task_.erase(it);
      break;
    }
  const std::int64_t now = now_ms_();
  const bool answered = out.failure == Outcome::ok;
  if (!answered && out.failure != Outcome::cancelled)
    spdlog::info("meter {}: {} task stopped: {}", meter, kind_name(static_cast<int>(kind)),
                 out.detail);
  const bool freeze = kind == TaskKind::freeze;
  if (freeze) {
    if (answered)
      daily_failed_.erase(meter);
    else if (out.failure != Outcome::cancelled)
      daily_failed_.insert(meter);
  }
  const bool more = answered && out.more;
  const bool stored_drift =
      kind == TaskKind::events && std::any_of(out.state.begin(), out.state.end(),
                                              [](auto& u) { return u.key == "clock.drift_ms"; });
  store_task_output(std::move(out));
  if (stopped_) return;
  if (freeze && more) {
    // A backfill cut at its budget: the next part at once, queued behind
    // the reads that came due meanwhile.
    if (const MeterConfig* m = config_.find_meter(meter)) post_task(*m, TaskKind::freeze);
  } else if (freeze) {
    // Still pending after an answered run: the meter has not frozen yet.
    clock.freeze_next_ms = now + (answered ? freeze_wait_ms : freeze_retry_ms);
    const MeterConfig* m = config_.find_meter(meter);
    if (answered && m &&
        !freeze_work_pending(freeze_input(config_.tasks, *m, task_state(meter), now, zone_)))
      clock.freeze_next_ms = now + freeze_idle_check_ms;
    const AreaConfig& a = config_.area;
    if (a.enabled && (meter == a.summary || std::find(a.households.begin(), a.households.end(),
                                                      meter) != a.households.end()))
      area_update();
  }
  // A clock beyond what a broadcast may correct: fixed (or reported) now.
  if (stored_drift) {
    const auto d = state_of(task_state(meter), "clock.drift_ms");
    const MeterConfig* m = config_.find_meter(meter);
    if (d && m && std::llabs(std::atoll(d->c_str())) > broadcast_limit_ms)
      post_task(*m, TaskKind::clock_fix);
  }
  // The bus's next task job at once (not at the next tick), queued behind
  // the reads that came due while this one ran.
  if (!freed.empty() && !bus_task_.contains(freed)) tasks_check(now, &freed);
}

// ---- the daily broadcast -----------------------------------------------------------

void Daemon::timesync_tick(std::int64_t now) {
  const TasksConfig& t = config_.tasks;
  if (t.timesync_time.empty()) return;
  const auto at = parse_time_of_day(t.timesync_time);
  if (!at) return;
  for (const auto& b : config_.buses) {
    if (b.is_tcp() || now < timesync_next_[b.name]) continue;
    const bool has_dlt = std::any_of(config_.meters.begin(), config_.meters.end(), [&](auto& m) {
      return m.bus == b.name && m.protocol != MeterProtocol::modbus;
    });
    const auto bus = buses_.find(b.name);
    if (!has_dlt || bus == buses_.end()) continue;
    const TaskState& gw = task_state(replay_guard_owner);
    TimesyncPlanInput in;
    in.bus = b.name;
    in.owner = replay_guard_owner;
    in.at = *at;
    in.zone = zone_;
    in.now_ms = now;
    in.last_done = state_of(gw, timesync_last_key(b.name)).value_or("");
    in.unsynced_reported = state_of(gw, timesync_unsynced_key(b.name)).value_or("");
    in.clock = clock_status_;
    TimesyncPlan plan = timesync_plan(in);
    timesync_next_[b.name] = plan.next_ms;
    if (!plan.events.empty())
      spdlog::warn("bus {}: daily time sync skipped: the gateway clock is not synchronised",
                   b.name);
    TaskOutput noted;
    noted.events = std::move(plan.events);
    noted.state = std::move(plan.state);
    store_task_output(std::move(noted));
    if (!plan.broadcast) continue;
    BroadcastInput bi;
    bi.bus = b.name;
    bi.owner = replay_guard_owner;
    bi.day = plan.day;
    bi.zone = zone_;
    bi.now = now_ms_;
    drivers::BusWorker* worker = bus->second.worker.get();
    const drivers::Dlt645Options options = drivers::dlt645_options(worker->config());
    std::weak_ptr<Inbox> alive = inbox_;
    asio::io_context* io = &io_;
    worker->post(drivers::Priority::schedule, [=, self = this](drivers::BusPort& port) {
      TaskOutput out;
      if (port.serial == nullptr) {
        out.failure = Outcome::bus_down;
      } else {
        out = run_broadcast(
            [&](const dlt::Frame& f) {
              const drivers::Tally tally = drivers::dlt645_broadcast(*port.serial, f, options);
              worker->account(tally);
              return tally;
            },
            bi);
      }
      asio::post(*io, [alive, self, out = std::move(out)]() mutable {
        if (!alive.lock()) return;
        if (out.failure == Outcome::ok)
          spdlog::info("bus {}: daily time sync broadcast", out.events.empty() ? "" : out.meter);
        self->store_task_output(std::move(out));
      });
    });
  }
}

// ---- a poll's readings -----------------------------------------------------------------

void Daemon::task_checks(const PollResult& r, buffer::Batch& batch) {
  // A meter that answers again gets its missed freezes now, not after the retry wait.
  if (r.ok && daily_failed_.contains(r.meter)) task_clocks_[r.meter].freeze_next_ms = 0;
  if (batch.readings.empty()) return;
  const MeterConfig* m = config_.find_meter(r.meter);
  if (m == nullptr) return;
  TaskState& state = task_state(r.meter);
  for (auto& e : check_live(r.meter, batch.readings, config_.tasks, state, batch.state))
    batch.events.push_back(std::move(e));
  // Meters without their own daily freezes (1997, Modbus, a 2007 meter that
  // refused 0506): their first energy values after local midnight.
  if (!config_.tasks.daily) return;
  const bool own_freezes =
      m->protocol == MeterProtocol::dlt645_2007 && !state_of(state, daily_unsupported_key);
  if (own_freezes) return;
  const std::string today = local_date(zone_.to_local(r.started_ms));
  if (state_of(state, gateway_daily_key) == today) return;
  std::vector<buffer::Reading> daily;
  for (const auto& reading : batch.readings) {
    if (!reading.frozen.empty() || reading.quantity.rfind("energy.", 0) != 0) continue;
    buffer::Reading copy = reading;
    copy.frozen = "gateway-daily";
    copy.freeze_ts_ms = reading.ts_ms;
    daily.push_back(std::move(copy));
  }
  if (daily.empty()) return;
  batch.readings.insert(batch.readings.end(), daily.begin(), daily.end());
  batch.state.push_back({r.meter, gateway_daily_key, today});
  state[gateway_daily_key] = today;
}

// ---- the area line loss ------------------------------------------------------------------

void Daemon::area_update() {
  const AreaConfig& a = config_.area;
  if (!a.enabled) return;
  const std::string owner = area_owner(a);
  TaskState& area_state = task_state(owner);
  nlohmann::json reported = nlohmann::json::object();
  if (const auto text = state_of(area_state, area_reported_key)) {
    auto parsed = nlohmann::json::parse(*text, nullptr, false);
    if (parsed.is_object()) reported = std::move(parsed);
  }
  const auto energies = [&](const std::string& meter) {
    const auto text = state_of(task_state(meter), daily_energy_key);
    auto parsed = text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    return parsed.is_object() ? parsed : nlohmann::json::object();
  };
  const nlohmann::json summary = energies(a.summary);
  bool changed = false;
  for (auto it = summary.begin(); it != summary.end(); ++it) {
    const std::string date = it.key();
    const auto start_local = parse_meter_time(date + "T00:00");
    if (!start_local) continue;
    const std::string next = local_date(*start_local + 86'400'000);
    if (!summary.contains(next)) continue;
    const std::string before = reported.value(date, "");
    if (before == "complete") continue;
    AreaDayInput in;
    in.area = a.name;
    in.date = date;
    in.from = date + "T00:00";
    in.to = next + "T00:00";
    in.threshold_percent = a.loss_threshold_percent;
    const auto day_of = [&](const std::string& meter) {
      AreaMeterDay d;
      d.meter = meter;
      d.start = daily_energy(task_state(meter), date);
      d.end = daily_energy(task_state(meter), next);
      return d;
    };
    in.summary = day_of(a.summary);
    for (const auto& h : a.households) in.households.push_back(day_of(h));
    const AreaDay day = compute_area_day(in);
    if (!day.computable) {
      if (before.empty() && !day.problem.empty())
        spdlog::warn("area {}: {}: {}", a.name, date, day.problem);
      continue;
    }
    if (!day.complete()) {
      if (!before.empty()) continue;  // reported incomplete already: wait for the rest
      // Publish an incomplete day only once every missing household's own
      // freeze task has given up for now (offline, or no freezes at all).
      const bool waited = std::all_of(day.missing.begin(), day.missing.end(), [&](auto& h) {
        return daily_failed_.contains(h) || state_of(task_state(h), daily_unsupported_key);
      });
      if (!waited) continue;
    }
    const std::int64_t ts = zone_.to_utc(*start_local + 86'400'000);
    const std::string payload = area_day_json(in, day, !before.empty());
    buffer::Batch batch;
    batch.now_ms = now_ms_();
    batch.events.push_back({0, "", "area.line_loss", ts, payload});
    if (day.high) batch.events.push_back({0, "", "area.line_loss_high", ts, payload});
    spdlog::info("area {}: {}: line loss {}% ({} of {} households){}", a.name, date,
                 day.rate_percent ? protocol::to_string(*day.rate_percent) : "-",
                 in.households.size() - day.missing.size(), in.households.size(),
                 day.high ? ", above the threshold" : "");
    reported[date] = day.complete() ? "complete" : "incomplete";
    // Days the summary's freezes no longer reach are forgotten.
    for (auto r = reported.begin(); r != reported.end();)
      r = summary.contains(r.key()) ? std::next(r) : reported.erase(r);
    batch.state.push_back({owner, area_reported_key, reported.dump()});
    area_state[area_reported_key] = reported.dump();
    store(std::move(batch));
    changed = true;
  }
  (void)changed;
}

}  // namespace meterd::firmware
