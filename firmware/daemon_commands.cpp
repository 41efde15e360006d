// The daemon's downlink commands (docs/commands.md): checked by
// firmware/commands, executed here on the bus workers at command priority,
// answered on <prefix>/cmd/result. A refused command is logged and answered
// and never executed.
#include <ctime>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "firmware/daemon.hpp"
#include "protocol/decimal.hpp"
#include "protocol/dlt645/requests.hpp"
#include "protocol/exact_json.hpp"

namespace meterd::firmware {

namespace asio = boost::asio;
namespace dlt = protocol::dlt645;
using drivers::Outcome;

namespace {

// How long a relay command stays valid in the meter (N3..N8 of 1CH).
constexpr std::int64_t relay_validity_ms = 5 * 60 * 1000;

// The gateway's local civil time (meters keep local time, DL/T 645 §4.3.x).
dlt::DateTime local_time(std::int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  return {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
}

std::string to_text(const dlt::DateTime& t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", t.year, t.month, t.day, t.hour,
                t.minute, t.second);
  return buf;
}

// A failed exchange as a result error code (docs/commands.md).
std::string failure_code(Outcome o) {
  switch (o) {
    case Outcome::timeout:
      return "timeout";
    case Outcome::bus_down:
    case Outcome::io_error:
    case Outcome::cancelled:
      return "bus_down";
    case Outcome::meter_error:
      return "meter_error";
    default:
      return "no_answer";  // bad frame, mismatch on the last attempt
  }
}

}  // namespace

void Daemon::answer(const std::string& payload, const drivers::MqttMessage& to) {
  if (uplink_) uplink_->publish_result(payload, to.response_topic, to.correlation_data);
}

Daemon::Reply Daemon::mqtt_reply(const std::string& id, drivers::MqttMessage to) {
  return [this, id, to = std::move(to),
          alive = std::weak_ptr<Inbox>(inbox_)](const CommandOutcome& o) {
    if (!alive.lock()) return;
    answer(o.ok ? result_ok(id, o.result) : result_error({id, o.code, o.message}), to);
  };
}

void Daemon::refuse(const Command& c, const std::string& code, const std::string& message,
                    const Reply& reply) {
  spdlog::warn("command {} {}: refused: {}: {}", to_string(c.verb), c.id, code, message);
  reply({false, {}, code, message});
}

void Daemon::on_command(drivers::MqttMessage m) {
  const std::string base = config_.mqtt.topic_prefix + "/cmd/";
  if (m.topic.rfind(base, 0) != 0) return;
  const std::string verb = m.topic.substr(base.size());
  if (verb == "result") return;  // our own answers (the filter cmd/+ matches them)

  CommandPolicy policy;
  policy.relay_control = config_.commands.relay_control;
  policy.hmac_key = hmac_key_;
  // Without a readable replay guard no signed command may pass: a guard that
  // forgot what it saw would reopen the replay window.
  ReplayGuard scratch;
  ReplayGuard& guard = guard_ ? *guard_ : scratch;
  const std::size_t remembered = guard.size();
  const std::string before = guard.to_state();
  auto checked = check_command(verb, m.payload, policy, guard, now_ms_());
  if (auto* e = std::get_if<CommandError>(&checked)) {
    spdlog::warn("command {} {}: refused: {}: {}", verb, e->id.empty() ? "(no id)" : e->id, e->code,
                 e->message);
    answer(result_error(*e), m);
    return;
  }
  Command c = std::get<Command>(std::move(checked));
  const Reply reply = mqtt_reply(c.id, m);
  if (c.is_signed) {
    if (!guard_ || !key_problem_.empty()) {
      refuse(c, "unsigned", key_problem_.empty() ? "the replay guard is unreadable" : key_problem_,
             reply);
      return;
    }
    // Remember the id durably before acting on it: a crash after the act
    // must not let the same command through again.
    if (guard.to_state() != before || guard.size() != remembered) {
      auto r = store_->put_state(replay_guard_owner, "cmd.replay_guard", guard.to_state());
      // With sync = normal a commit is durable only at the next checkpoint: force one, so a
      // power cut cannot roll back an id the meter already acted on.
      if (r && config_.buffer.sync == "normal") r = store_->checkpoint();
      if (!r) {
        guard_ = ReplayGuard::from_state(before);
        refuse(c, "busy", "cannot record the command id: " + r.error().message, reply);
        return;
      }
    }
  }
  spdlog::info("command {} {}{}{}", to_string(c.verb), c.id, c.meter.empty() ? "" : " meter ",
               c.meter);
  execute(c, reply);
}

void Daemon::execute(const Command& c, Reply reply) {
  switch (c.verb) {
    case Verb::read:
      execute_read(c, std::move(reply));
      break;
    case Verb::timesync:
      execute_timesync(c, std::move(reply));
      break;
    case Verb::relay:
      execute_relay(c, std::move(reply));
      break;
    case Verb::reload:
      // After this handler: a reload may restart the MQTT client that called it.
      asio::post(io_, [this, alive = std::weak_ptr<Inbox>(inbox_), c, reply = std::move(reply)] {
        if (!alive.lock() || stopped_) return;
        if (!reloader_) {
          refuse(c, "unsupported", "this daemon cannot reload its config", reply);
          return;
        }
        const auto errors = reloader_();
        if (!errors.empty()) {
          nlohmann::json list = errors;
          refuse(c, "invalid", "config refused: " + list.dump(), reply);
          return;
        }
        reply({true, {{"reloaded", true}}, {}, {}});
      });
      break;
  }
}

void Daemon::execute_read(const Command& c, Reply to) {
  const MeterConfig* meter = config_.find_meter(c.meter);
  const auto rt = meters_.find(c.meter);
  if (meter == nullptr || rt == meters_.end())
    return refuse(c, "unknown_meter", "no meter " + c.meter + " in the config", to);
  const auto bus = buses_.find(meter->bus);
  if (bus == buses_.end())
    return refuse(c, "bus_down", "bus " + meter->bus + " is not running", to);
  std::shared_ptr<const Profile> profile = rt->second.profile;
  if (!c.quantities.empty()) {
    const auto known = profile->quantities();
    for (const auto& q : c.quantities) {
      if (std::find(known.begin(), known.end(), q) == known.end()) {
        nlohmann::json list = known;
        return refuse(
            c, "invalid",
            "meter " + c.meter + " does not read " + q + " (it reads " + list.dump() + ")", to);
      }
    }
    profile = std::make_shared<const Profile>(profile->narrowed(c.quantities));
  }
  auto request = std::make_shared<PollRequest>();
  request->meter = *meter;
  request->profile = std::move(profile);
  request->memory = rt->second.memory;
  request->now_ms = now_ms_;
  request->stopping = stopping_;
  drivers::BusWorker* worker = bus->second.worker.get();
  request->on_exchange = [worker](const drivers::Tally& t) { worker->account(t); };
  asio::io_context* io = &io_;
  std::weak_ptr<Inbox> alive = inbox_;
  auto command = std::make_shared<std::pair<Command, Reply>>(c, std::move(to));
  worker->post(drivers::Priority::on_demand, [=, self = this](drivers::BusPort& port) {
    auto result = std::make_shared<PollResult>(poll_meter(port, worker->config(), *request));
    asio::post(*io, [=] {
      if (!alive.lock()) return;
      const auto& [cmd, msg] = *command;
      if (result->readings.empty() && !result->ok) {
        self->refuse(cmd, failure_code(result->failure), result->detail, msg);
        return;
      }
      nlohmann::json values = nlohmann::json::array();
      for (const auto& r : result->readings) {
        values.push_back({{"quantity", r.quantity},
                          {"value", protocol::exact_number({r.mantissa, r.exponent})},
                          {"unit", r.unit},
                          {"ts", iso8601_ms(r.ts_ms)}});
      }
      nlohmann::json body{{"meter", cmd.meter}, {"readings", std::move(values)}};
      body["complete"] = result->ok;
      if (!result->ok) body["detail"] = result->detail;
      // An on-demand read is a reading like any other: buffered and forwarded.
      if (!result->readings.empty() && !self->stopped_) {
        buffer::Batch batch;
        batch.now_ms = self->now_ms_();
        batch.readings = std::move(result->readings);
        self->store(std::move(batch));
      }
      msg({true, std::move(body), {}, {}});
    });
  });
}

void Daemon::execute_relay(const Command& c, Reply to) {
  const MeterConfig* meter = config_.find_meter(c.meter);
  if (meter == nullptr)
    return refuse(c, "unknown_meter", "no meter " + c.meter + " in the config", to);
  if (meter->protocol != MeterProtocol::dlt645_2007)
    return refuse(c, "unsupported",
                  "meter " + c.meter + " speaks " + to_string(meter->protocol) +
                      ": relay control is a DL/T 645-2007 function (1CH)",
                  to);
  if (meter->password.empty())
    return refuse(c, "unsupported",
                  "meter " + c.meter + " has no password in the config (meter.password)", to);
  const auto bus = buses_.find(meter->bus);
  if (bus == buses_.end())
    return refuse(c, "bus_down", "bus " + meter->bus + " is not running", to);
  const auto password = dlt::parse_password(meter->password);
  const auto op = dlt::parse_operator(config_.commands.operator_code);
  if (!password || !op) return refuse(c, "invalid", "meter password or operator code unusable", to);
  const auto command =
      c.action == "trip" ? dlt::RelayCommand::trip : dlt::RelayCommand::direct_close;
  const dlt::Frame frame = dlt::request::relay_control(meter->address, *password, *op, command,
                                                       local_time(now_ms_() + relay_validity_ms));
  drivers::BusWorker* worker = bus->second.worker.get();
  const unsigned preamble = meter->preamble;
  asio::io_context* io = &io_;
  std::weak_ptr<Inbox> alive = inbox_;
  auto cmd = std::make_shared<std::pair<Command, Reply>>(c, std::move(to));
  worker->post(drivers::Priority::command, [=, self = this](drivers::BusPort& port) {
    auto answer = std::make_shared<drivers::Dlt645Answer>();
    if (port.serial == nullptr) {
      answer->outcome = port.stopping ? Outcome::cancelled : Outcome::bus_down;
      answer->detail = "bus is down";
    } else {
      drivers::Dlt645Options o = drivers::dlt645_options(worker->config());
      o.preamble = preamble;
      o.retries = 0;  // a command is not repeated blindly: the answer may have been lost
      *answer = drivers::dlt645_exchange(*port.serial, dlt::Version::v2007, frame, o);
      worker->account(answer->tally);
      port.note(answer->outcome);
    }
    asio::post(*io, [=] {
      if (!alive.lock()) return;
      const auto& [c2, msg] = *cmd;
      nlohmann::json audit{{"id", c2.id},
                           {"action", c2.action},
                           {"source", c2.source},
                           {"outcome", to_string(answer->outcome)}};
      if (answer->outcome == Outcome::meter_error) {
        const std::string meaning =
            dlt::error_meaning(dlt::Version::v2007, static_cast<std::uint8_t>(answer->error_word));
        audit["error"] = meaning;
        self->refuse(c2, "meter_error", "meter " + c2.meter + " refused: " + meaning, msg);
      } else if (answer->outcome != Outcome::ok) {
        audit["error"] = answer->detail;
        self->refuse(c2, failure_code(answer->outcome), answer->detail, msg);
      } else {
        spdlog::info("command relay {}: meter {} {}", c2.id, c2.meter,
                     c2.action == "trip" ? "tripped (open)" : "closed");
        msg({true,
             {{"meter", c2.meter},
              {"action", c2.action},
              {"relay", c2.action == "trip" ? "open" : "closed"}},
             {},
             {}});
      }
      if (!self->stopped_) {
        buffer::Batch batch;
        batch.now_ms = self->now_ms_();
        batch.events.push_back({0, c2.meter, "command.relay", batch.now_ms, audit.dump()});
        self->store(std::move(batch));
      }
    });
  });
}

void Daemon::execute_timesync(const Command& c, Reply to) {
  std::vector<std::string> targets;
  for (const auto& b : config_.buses) {
    if (!c.bus.empty() && b.name != c.bus) continue;
    const bool has_dlt = std::any_of(config_.meters.begin(), config_.meters.end(), [&](auto& m) {
      return m.bus == b.name && m.protocol != MeterProtocol::modbus;
    });
    if (has_dlt && !b.is_tcp()) targets.push_back(b.name);
  }
  if (!c.bus.empty() && config_.find_bus(c.bus) == nullptr)
    return refuse(c, "unknown_bus", "no bus " + c.bus + " in the config", to);
  if (targets.empty())
    return refuse(
        c, "unsupported",
        c.bus.empty() ? "no bus has DL/T 645 meters" : "bus " + c.bus + " has no DL/T 645 meters",
        to);
  struct Round {
    std::size_t remaining;
    nlohmann::json buses = nlohmann::json::array();
    bool any_ok = false;
    Command command;
    Reply to;
  };
  auto round = std::make_shared<Round>();
  round->remaining = targets.size();
  round->command = c;
  round->to = std::move(to);
  asio::io_context* io = &io_;
  std::weak_ptr<Inbox> alive = inbox_;
  for (const auto& name : targets) {
    const auto bus = buses_.find(name);
    if (bus == buses_.end()) {
      round->buses.push_back({{"bus", name}, {"ok", false}, {"error", "not running"}});
      if (--round->remaining == 0) refuse(c, "bus_down", "no bus is running", round->to);
      continue;
    }
    drivers::BusWorker* worker = bus->second.worker.get();
    const NowMs now = now_ms_;
    worker->post(drivers::Priority::command, [=, self = this](drivers::BusPort& port) {
      nlohmann::json entry{{"bus", name}};
      if (port.serial == nullptr) {
        entry["ok"] = false;
        entry["error"] = "bus is down";
      } else {
        // The time is taken at the moment of sending, not when the command arrived.
        const dlt::DateTime t = local_time(now());
        const drivers::Tally tally =
            drivers::dlt645_broadcast(*port.serial, dlt::request::broadcast_time(t),
                                      drivers::dlt645_options(worker->config()));
        worker->account(tally);
        entry["ok"] = tally.attempts > 0;
        entry["time"] = to_text(t);
      }
      asio::post(*io, [=] {
        if (!alive.lock()) return;
        if (entry.value("ok", false)) round->any_ok = true;
        round->buses.push_back(entry);
        if (--round->remaining > 0) return;
        if (!round->any_ok) {
          self->refuse(round->command, "bus_down", "no bus could broadcast: " + round->buses.dump(),
                       round->to);
          return;
        }
        spdlog::info("command timesync {}: {}", round->command.id, round->buses.dump());
        round->to({true, {{"buses", round->buses}}, {}, {}});
      });
    });
  }
}

}  // namespace meterd::firmware
