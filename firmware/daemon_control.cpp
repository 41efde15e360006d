// The daemon's control socket (docs/control.md): meterctl's verbs. Requests
// are parsed by firmware/control, answered here on the loop thread. What
// needs the bus (read, relay, timesync, scan) goes to the bus worker at
// command or on-demand priority, like the MQTT commands; an export reads
// the buffer file on a thread of its own (a second, read-only SQLite
// connection), so a month of rows never stalls the loop.
#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "buffer/reader.hpp"
#include "firmware/daemon.hpp"
#include "firmware/scan.hpp"
#include "protocol/decimal.hpp"
#include "protocol/exact_json.hpp"

namespace meterd::firmware {

namespace asio = boost::asio;
using json = nlohmann::json;
using Session = drivers::ControlSession;

struct Daemon::TailFollower {
  std::weak_ptr<Session> session;
  std::string id_json, meter, quantity;
  std::uint64_t skipped = 0;  // rows dropped since the client fell behind
  bool waiting = false;       // dropping until the output drains
};

struct Daemon::ExportJob {
  std::weak_ptr<Session> session;
  std::string id_json;
  std::mutex mutex;
  std::condition_variable cv;
  bool credit = true;  // the thread may hand the loop one more chunk
  bool cancelled = false;
  std::thread thread;
};

struct Daemon::ScanJob {
  std::weak_ptr<Session> session;
  std::string id_json, bus;
  std::shared_ptr<Scanner> scanner;
  std::size_t sent = 0;  // found meters already sent as data lines
  std::int64_t started_ms = 0;
  std::atomic<bool> cancelled{false};
};

namespace {

json iso_or_null(const std::optional<std::int64_t>& ms) {
  return ms ? json(iso8601_ms(*ms)) : json(nullptr);
}

}  // namespace

void Daemon::start_control() {
  const std::filesystem::path path = config_.gateway.control_socket;
  if (path.empty()) return;
  drivers::ControlSocketOptions options;
  options.path = path;
  options.group = config_.gateway.control_group;
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  control_ = std::make_unique<drivers::ControlServer>(
      io_, options,
      [this](std::shared_ptr<Session> session, std::string line) {
        on_control(session, std::move(line));
      },
      [](const std::string& code, const std::string& text) {
        return control_error("", code, text);
      });
  ec = control_->start();
  if (ec == std::errc::address_in_use) {
    control_.reset();
    // Another meterd answers there: two daemons on one gateway would fight
    // over the buses and the buffer.
    throw std::runtime_error("control socket " + path.string() +
                             ": another meterd is running and answers on it");
  }
  if (ec) {
    control_.reset();
    spdlog::error("control socket {}: {}; meterctl cannot reach this daemon", path.string(),
                  ec.message());
    return;
  }
  spdlog::info("control socket {}", path.string());
}

void Daemon::stop_control() {
  // A scan still running gets its final line before the connection closes.
  for (auto& [bus, job] : scans_) {
    job->cancelled = true;
    if (auto s = job->session.lock(); s && s->open())
      s->finish(control_error(job->id_json, "cancelled",
                              "meterd is stopping; " +
                                  std::to_string(job->scanner->found().size()) +
                                  " meters found so far"));
  }
  if (control_) control_->stop();
  for (auto& job : exports_) {
    {
      std::lock_guard lock(job->mutex);
      job->cancelled = true;
    }
    job->cv.notify_all();
  }
  for (auto& job : exports_)
    if (job->thread.joinable()) job->thread.join();
  exports_.clear();
  for (auto& [bus, job] : scans_) job->cancelled = true;
  scans_.clear();
  tails_.clear();
}

void Daemon::on_control(const std::shared_ptr<Session>& session, std::string line) {
  ++control_requests_;
  auto parsed = parse_control_request(line);
  if (auto* e = std::get_if<ControlError>(&parsed)) {
    spdlog::debug("control: refused: {}: {}", e->code, e->message);
    session->finish(control_error(e->id_json, e->code, e->message));
    return;
  }
  ControlRequest r = std::get<ControlRequest>(std::move(parsed));
  const std::string id = r.id_json;
  const auto fail = [&](const std::string& code, const std::string& message) {
    session->finish(control_error(id, code, message));
  };
  switch (r.verb) {
    case ControlVerb::status:
      session->finish(control_ok(id, control_status()));
      return;
    case ControlVerb::meters:
      if (!r.bus.empty() && config_.find_bus(r.bus) == nullptr)
        return fail("unknown_bus", "no bus " + r.bus + " in the config");
      session->finish(control_ok(id, control_meters(r)));
      return;
    case ControlVerb::backlog:
      if (!store_) return fail("io_error", "the buffer is closed");
      session->finish(control_ok(id, control_backlog()));
      return;
    case ControlVerb::tail:
      return start_tail(session, std::move(r));
    case ControlVerb::export_rows:
      return start_export(session, std::move(r));
    case ControlVerb::scan:
      return start_scan(session, std::move(r));
    case ControlVerb::read:
    case ControlVerb::relay:
    case ControlVerb::timesync:
    case ControlVerb::reload:
      break;
  }
  // The verbs the MQTT downlink has too: the same execution, answered here.
  Command c;
  c.source = "control";
  c.id = "ctl-" + std::to_string(session->number()) + "-" + std::to_string(control_requests_);
  c.meter = r.meter;
  c.quantities = r.quantities;
  c.bus = r.bus;
  c.action = r.action;
  switch (r.verb) {
    case ControlVerb::read:
      c.verb = Verb::read;
      break;
    case ControlVerb::relay:
      c.verb = Verb::relay;
      if (!config_.commands.relay_control)
        return fail("disabled", "relay control is off ([commands] relay_control = false)");
      break;
    case ControlVerb::timesync:
      c.verb = Verb::timesync;
      break;
    default:
      c.verb = Verb::reload;
      break;
  }
  spdlog::info("control: {} {}{}{}", to_string(c.verb), c.id, c.meter.empty() ? "" : " meter ",
               c.meter);
  execute(c, [session, id](const CommandOutcome& o) {
    session->finish(o.ok ? control_ok(id, o.result) : control_error(id, o.code, o.message));
  });
}

json Daemon::control_status() const {
  const std::int64_t now = now_ms_();
  json s{{"version", meterd_version},
         {"started", iso8601_ms(started_ms_)},
         {"uptime_s", (now - started_ms_) / 1000},
         {"config_file", config_.file},
         {"gateway", config_.gateway.id},
         {"pid", static_cast<std::int64_t>(::getpid())}};
  json buses = json::array();
  for (const auto& b : config_.buses) {
    json entry{{"name", b.name},
               {"port", b.is_tcp() ? b.tcp_host + ":" + std::to_string(b.tcp_port) : b.device}};
    entry["meters"] = std::count_if(config_.meters.begin(), config_.meters.end(),
                                    [&](const MeterConfig& m) { return m.bus == b.name; });
    const auto it = buses_.find(b.name);
    if (it == buses_.end() || !it->second.worker) {
      entry["state"] = "stopped";
      buses.push_back(std::move(entry));
      continue;
    }
    const drivers::BusStats st = it->second.worker->stats();
    const BusSummary& t = it->second.total;
    entry["state"] = st.up ? "up" : "down";
    entry["last_error"] = st.last_error;
    entry["reads_ok"] = t.reads_ok;
    entry["reads_failed"] = t.reads_failed;
    entry["values"] = t.values;
    entry["exchanges"] = st.tally.attempts;
    entry["timeouts"] = st.tally.timeouts;
    entry["bad_frames"] = st.tally.bad_frames;
    entry["mismatches"] = st.tally.mismatches;
    entry["exceptions"] = st.tally.meter_errors;
    entry["missed_slots"] = schedule_.missed_slots(b.name);
    entry["queued"] = st.queued;
    const std::int64_t span_ms = now - it->second.started_ms;
    const auto wire_us = (st.tally.busy + st.tally.silence).count();
    // Three decimals are what a person reads; the exact counters are above.
    entry["utilisation"] =
        span_ms > 0 ? std::round(static_cast<double>(wire_us) / (1000.0 * span_ms) * 1000) / 1000
                    : 0.0;
    entry["scanning"] = scans_.count(b.name) > 0;
    buses.push_back(std::move(entry));
  }
  s["buses"] = std::move(buses);
  s["meters"] = meters_summary();
  if (store_) s["buffer"] = control_backlog();
  json mqtt{{"enabled", config_.mqtt.enabled}};
  if (config_.mqtt.enabled) {
    mqtt["broker"] = config_.mqtt.host + ":" + std::to_string(config_.mqtt.port);
    mqtt["topic_prefix"] = config_.mqtt.topic_prefix;
  }
  if (uplink_) {
    const json h = uplink_->health_counters();
    mqtt["state"] = h.value("connected", false) ? "connected" : "disconnected";
    for (const auto& [k, v] : h.items())
      if (k != "connected") mqtt[k] = v;
    if (mqtt_ && !mqtt_->last_error().empty()) mqtt["last_error"] = mqtt_->last_error();
  } else {
    mqtt["state"] = "off";
  }
  s["mqtt"] = std::move(mqtt);
  s["control"] = {{"connections", control_ ? control_->sessions() : 0},
                  {"requests", control_requests_}};
  return s;
}

json Daemon::control_meters(const ControlRequest& r) const {
  json list = json::array();
  for (const auto& m : config_.meters) {
    if (!r.bus.empty() && m.bus != r.bus) continue;
    const MeterTiming* t = schedule_.timing(m.id);
    const Presence p = t ? t->presence : Presence::unknown;
    if (r.offline && p != Presence::offline) continue;
    json e{
        {"id", m.id},
        {"bus", m.bus},
        {"protocol", to_string(m.protocol)},
        {"address", m.protocol == MeterProtocol::modbus ? std::to_string(m.unit) : m.address_text},
        {"profile", m.profile},
        {"state", p == Presence::online    ? "online"
                  : p == Presence::offline ? "offline"
                                           : "unknown"}};
    const auto rt = meters_.find(m.id);
    if (rt != meters_.end()) {
      const MeterCounters& c = rt->second.counters;
      e["last_success"] = iso_or_null(c.last_success_ms);
      e["successes"] = c.successes;
      e["failures"] = c.failures;
      e["timeouts"] = c.timeouts;
      e["bad_frames"] = c.bad_frames;
      e["exceptions"] = c.exceptions;
      e["mismatches"] = c.mismatches;
      e["readings"] = c.readings;
      e["last_error"] = c.last_error;
      e["failures_in_a_row"] = t ? t->failures : 0;
      json latest = json::array();
      for (const Latest& l : rt->second.latest)
        latest.push_back({{"quantity", *l.quantity},
                          {"value", protocol::exact_number({l.mantissa, l.exponent})},
                          {"unit", *l.unit},
                          {"ts", iso8601_ms(l.ts_ms)}});
      e["latest"] = std::move(latest);
    }
    list.push_back(std::move(e));
  }
  return {{"meters", std::move(list)}};
}

json Daemon::control_backlog() const {
  json b;
  auto& s = const_cast<buffer::Store&>(*store_);  // stats() reads only
  const auto st = s.stats();
  if (!st) return {{"error", st.error().message}};
  const std::int64_t now = now_ms_();
  b = {{"readings", st->readings},
       {"events", st->events},
       {"inflight", st->inflight},
       {"next_seq", st->next_seq},
       {"db_bytes", st->db_bytes},
       {"wal_bytes", st->wal_bytes},
       {"evicted_readings", st->evicted_readings},
       {"evicted_events", st->evicted_events},
       {"pending_batches", pending_.size()}};
  b["oldest_unsent"] = iso_or_null(st->oldest_unsent_ts_ms);
  b["oldest_unsent_age_s"] =
      st->oldest_unsent_ts_ms ? json((now - *st->oldest_unsent_ts_ms) / 1000) : json(nullptr);
  b["mqtt"] = !uplink_ ? "off" : (mqtt_ && mqtt_->connected()) ? "connected" : "disconnected";
  return b;
}

// --- stored rows: latest values and tail followers ---------------------------

void Daemon::stored(const buffer::Batch& batch, const buffer::AppendResult& seqs) {
  for (const auto& r : batch.readings) {
    if (!r.frozen.empty()) continue;  // a freeze is not the meter's latest value
    const auto rt = meters_.find(r.meter);
    if (rt == meters_.end()) continue;
    const std::string* quantity = &*names_.insert(r.quantity).first;
    const std::string* unit = &*names_.insert(r.unit).first;
    auto& latest = rt->second.latest;
    auto it = std::find_if(latest.begin(), latest.end(),
                           [&](const Latest& l) { return l.quantity == quantity; });
    if (it == latest.end()) it = latest.insert(latest.end(), Latest{quantity, unit, 0, 0, 0});
    if (r.ts_ms >= it->ts_ms) *it = {quantity, unit, r.mantissa, r.exponent, r.ts_ms};
  }
  if (tails_.empty() || seqs.first_seq == 0) return;
  std::int64_t seq = seqs.first_seq;
  std::vector<std::pair<std::int64_t, const buffer::Reading*>> readings;
  for (const auto& r : batch.readings) readings.emplace_back(seq++, &r);
  std::vector<std::pair<std::int64_t, const buffer::Event*>> events;
  for (const auto& e : batch.events) events.emplace_back(seq++, &e);

  const auto deliver = [](const std::shared_ptr<TailFollower>& f, Session& s, std::string line) {
    if (f->waiting) {
      ++f->skipped;
      return;
    }
    if (s.send(std::move(line))) return;
    // Behind by a megabyte: drop rows, and say how many once it caught up.
    ++f->skipped;
    f->waiting = true;
    s.on_drained([f] {
      if (auto s2 = f->session.lock()) s2->send(control_skipped(f->id_json, f->skipped));
      f->skipped = 0;
      f->waiting = false;
    });
  };
  for (auto it = tails_.begin(); it != tails_.end();) {
    auto session = (*it)->session.lock();
    if (!session || !session->open()) {
      it = tails_.erase(it);
      continue;
    }
    const std::shared_ptr<TailFollower> f = *it;
    for (const auto& [s, r] : readings) {
      if (!f->meter.empty() && r->meter != f->meter) continue;
      if (!f->quantity.empty() && r->quantity != f->quantity) continue;
      buffer::Reading copy = *r;
      copy.seq = s;
      deliver(f, *session, control_data(f->id_json, reading_json(copy)));
    }
    if (f->quantity.empty()) {
      for (const auto& [s, e] : events) {
        if (!f->meter.empty() && e->meter != f->meter) continue;
        buffer::Event copy = *e;
        copy.seq = s;
        deliver(f, *session, control_data(f->id_json, event_row_json(copy)));
      }
    }
    ++it;
  }
}

void Daemon::start_tail(const std::shared_ptr<Session>& session, ControlRequest r) {
  if (!r.meter.empty() && config_.find_meter(r.meter) == nullptr)
    return session->finish(
        control_error(r.id_json, "unknown_meter", "no meter " + r.meter + " in the config"));
  auto f = std::make_shared<TailFollower>();
  f->session = session;
  f->id_json = r.id_json;
  f->meter = r.meter;
  f->quantity = r.quantity;
  // The follower lives as long as the connection: the client ends a tail
  // by closing (end of input counts).
  session->end_on_eof();
  session->on_close([this, alive = std::weak_ptr<Inbox>(inbox_), weak = std::weak_ptr(f)] {
    if (!alive.lock()) return;
    const auto gone = weak.lock();
    std::erase_if(tails_, [&](const auto& t) { return t == gone; });
  });
  tails_.push_back(std::move(f));
  spdlog::debug("control: tail from connection {}", session->number());
}

// --- export ------------------------------------------------------------------

void Daemon::start_export(const std::shared_ptr<Session>& session, ControlRequest r) {
  if (!r.meter.empty() && config_.find_meter(r.meter) == nullptr) {
    // A meter removed from the config may still have rows in the buffer:
    // export them anyway, the buffer knows.
    spdlog::debug("control: export of meter {} (not in the config)", r.meter);
  }
  auto job = std::make_shared<ExportJob>();
  job->session = session;
  job->id_json = r.id_json;
  session->on_close([job] {
    {
      std::lock_guard lock(job->mutex);
      job->cancelled = true;
    }
    job->cv.notify_all();
  });
  const std::string path = (std::filesystem::path(config_.gateway.data_dir) / "buffer.db").string();
  asio::io_context* io = &io_;
  std::weak_ptr<Inbox> alive = inbox_;
  const std::size_t max_output = drivers::ControlLimits{}.max_output;
  // Hands a chunk of lines to the loop; waits until the client took the last one.
  auto hand_over = [job, io, alive, max_output](std::vector<std::string> lines) -> bool {
    {
      std::unique_lock lock(job->mutex);
      job->cv.wait(lock, [&] { return job->credit || job->cancelled; });
      if (job->cancelled) return false;
      job->credit = false;
    }
    asio::post(*io, [job, alive, max_output, lines = std::move(lines)]() mutable {
      const auto give = [job] {
        {
          std::lock_guard lock(job->mutex);
          job->credit = true;
        }
        job->cv.notify_all();
      };
      auto s = job->session.lock();
      if (!alive.lock() || !s || !s->open()) {
        {
          std::lock_guard lock(job->mutex);
          job->cancelled = true;
        }
        job->cv.notify_all();
        return;
      }
      for (auto& l : lines) s->send(std::move(l));
      if (s->unsent() <= max_output / 2)
        give();
      else
        s->on_drained(give);
    });
    return true;
  };
  job->thread = std::thread([job, path, r, hand_over, io, alive, this] {
    std::uint64_t rows = 0;
    std::string code, message;
    auto reader = buffer::Reader::open(path);
    if (!reader) {
      code = "io_error";
      message = "buffer " + path + ": " + reader.error().message;
    } else {
      std::vector<std::string> meters;
      if (!r.meter.empty()) {
        meters.push_back(r.meter);
      } else if (auto m = reader->meters()) {
        meters = std::move(*m);
      } else {
        code = "io_error";
        message = m.error().message;
      }
      std::vector<std::string> chunk;
      bool going = code.empty();
      const auto flush = [&] {
        if (chunk.empty()) return true;
        going = hand_over(std::move(chunk));
        chunk.clear();
        return going;
      };
      const auto take = [&](std::string row) {
        chunk.push_back(control_data(r.id_json, row));
        ++rows;
        if (chunk.size() >= 256) return flush();
        return true;
      };
      if (r.events && r.meter.empty()) meters.insert(meters.begin(), "");  // gateway events
      for (const auto& m : meters) {
        if (!going) break;
        if (!m.empty() || !r.events) {
          auto res = reader->export_readings(m, r.from_ms, r.to_ms, [&](const buffer::Reading& x) {
            return take(reading_json(x));
          });
          if (!res && going) {
            code = "io_error";
            message = res.error().message;
            going = false;
          }
        }
        if (going && r.events) {
          auto res = reader->export_events(m, r.from_ms, r.to_ms, [&](const buffer::Event& x) {
            return take(event_row_json(x));
          });
          if (!res && going) {
            code = "io_error";
            message = res.error().message;
            going = false;
          }
        }
      }
      if (going) flush();
      {
        std::lock_guard lock(job->mutex);
        if (job->cancelled && code.empty()) code = "cancelled";
      }
    }
    // The last chunk was handed over before this: the final line follows it.
    asio::post(*io, [job, alive, code, message, rows, this] {
      if (!alive.lock()) return;
      if (auto s = job->session.lock(); s && code != "cancelled") {
        s->finish(code.empty() ? control_ok(job->id_json, {{"rows", rows}})
                               : control_error(job->id_json, code, message));
      }
      if (job->thread.joinable()) job->thread.join();
      std::erase(exports_, job);
    });
  });
  exports_.push_back(std::move(job));
}

// --- scan ----------------------------------------------------------------------

void Daemon::start_scan(const std::shared_ptr<Session>& session, ControlRequest r) {
  const drivers::BusConfig* bus = config_.find_bus(r.bus);
  if (bus == nullptr)
    return session->finish(
        control_error(r.id_json, "unknown_bus", "no bus " + r.bus + " in the config"));
  if (buses_.find(r.bus) == buses_.end())
    return session->finish(
        control_error(r.id_json, "bus_down", "bus " + r.bus + " is not running"));
  if (scans_.count(r.bus))
    return session->finish(
        control_error(r.id_json, "busy", "a scan of bus " + r.bus + " is already running"));
  ScanRequest request;
  request.protocol = r.protocol;
  if (request.protocol.empty()) {
    bool dlt = false, modbus = false;
    for (const auto& m : config_.meters) {
      if (m.bus != r.bus) continue;
      (m.protocol == MeterProtocol::modbus ? modbus : dlt) = true;
    }
    request.protocol = dlt ? "dlt645" : modbus || bus->is_tcp() ? "modbus" : "dlt645";
  }
  if (request.protocol == "dlt645" && bus->is_tcp())
    return session->finish(control_error(r.id_json, "unsupported",
                                         "bus " + r.bus + " is Modbus TCP: scan it with modbus"));
  request.first_unit = r.first_unit;
  request.last_unit = r.last_unit;
  auto job = std::make_shared<ScanJob>();
  job->session = session;
  job->id_json = r.id_json;
  job->bus = r.bus;
  job->scanner = std::make_shared<Scanner>(request, *bus);
  job->started_ms = now_ms_();
  session->on_close([job] { job->cancelled = true; });
  scans_[r.bus] = job;
  spdlog::info("control: scan of bus {} ({}) started", r.bus, request.protocol);
  scan_step(job);
}

void Daemon::scan_step(const std::shared_ptr<ScanJob>& job) {
  const auto bus = buses_.find(job->bus);
  if (bus == buses_.end() || stopped_) {
    job->cancelled = true;
    scan_stepped(job);
    return;
  }
  asio::io_context* io = &io_;
  std::weak_ptr<Inbox> alive = inbox_;
  // One probe per job: the schedule's reads run between the probes.
  drivers::BusWorker* worker = bus->second.worker.get();
  bus->second.worker->post(drivers::Priority::on_demand,
                           [job, io, alive, worker, this](drivers::BusPort& port) {
                             if (!job->cancelled) {
                               job->scanner->step(port);
                               // The probes count in the bus's exchanges and time on the wire.
                               worker->account(job->scanner->take_tally());
                             }
                             asio::post(*io, [job, alive, this] {
                               if (!alive.lock()) return;
                               scan_stepped(job);
                             });
                           });
}

void Daemon::scan_stepped(const std::shared_ptr<ScanJob>& job) {
  const auto s = job->session.lock();
  const auto finish_job = [&] {
    const auto it = scans_.find(job->bus);
    if (it != scans_.end() && it->second == job) scans_.erase(it);
  };
  if (!s || !s->open() || job->cancelled) {
    spdlog::info("control: scan of bus {} ended early ({} meters found)", job->bus,
                 job->scanner->found().size());
    if (s && s->open())
      s->finish(control_error(job->id_json, "bus_down", "bus " + job->bus + " went away"));
    finish_job();
    return;
  }
  const Scanner& scanner = *job->scanner;
  const auto& found = scanner.found();
  for (; job->sent < found.size(); ++job->sent)
    s->send(control_data(job->id_json, to_json(found[job->sent]).dump()));
  const ScanProgress p = scanner.progress();
  // Progress may be dropped when the client lags; the found meters are not.
  s->send(control_progress(
      job->id_json,
      {{"done", p.done}, {"total", p.total}, {"found", p.found}, {"probes", p.probes}}));
  if (!scanner.finished()) {
    scan_step(job);
    return;
  }
  const std::int64_t elapsed = now_ms_() - job->started_ms;
  finish_job();
  if (!scanner.error().empty() && found.empty()) {
    spdlog::warn("control: scan of bus {} failed: {}", job->bus, scanner.error());
    s->finish(control_error(job->id_json, "bus_down", scanner.error()));
    return;
  }
  json list = json::array();
  for (const auto& m : found) list.push_back(to_json(m));
  json result{{"bus", job->bus},
              {"found", std::move(list)},
              {"config", meter_config_toml(found, job->bus)},
              {"elapsed_ms", elapsed},
              {"probes", p.probes}};
  if (!scanner.error().empty()) result["error"] = scanner.error();
  spdlog::info("control: scan of bus {}: {} meters in {} ms ({} probes)", job->bus, found.size(),
               elapsed, p.probes);
  s->finish(control_ok(job->id_json, result));
}

}  // namespace meterd::firmware
