#include "firmware/uplink.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "protocol/decimal.hpp"
#include "protocol/exact_json.hpp"

namespace meterd::firmware {

namespace {

// How long to wait before trying again after the client or the buffer refused.
constexpr std::int64_t retry_later_ms = 1000;
constexpr int qos_at_least_once = 1;
constexpr int puback_refused = 0x80;  // MQTT 5 reason codes from 0x80 are failures

void append_escaped(std::string& out, std::string_view text) {
  out += '"';
  // Meter ids, quantity names and units rarely need escaping: copy them whole.
  if (std::none_of(text.begin(), text.end(), [](char ch) {
        return ch == '"' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20;
      })) {
    out += text;
    out += '"';
    return;
  }
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;  // UTF-8 passes through
        }
    }
  }
  out += '"';
}

// The exact decimal as a JSON number: plain text as the meter sent it, or, for
// an exponent no meter uses, mantissa e exponent (still exact, and bounded).
void append_value(std::string& out, std::int64_t mantissa, std::int32_t exponent) {
  if (exponent >= -18 && exponent <= 18) {
    out += protocol::to_string(protocol::Decimal{mantissa, exponent});
  } else {
    out += std::to_string(mantissa);
    out += 'e';
    out += std::to_string(exponent);
  }
}

// Howard Hinnant's civil_from_days.
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

bool reserved_member(const std::string& key) {
  return key == "seq" || key == "meter" || key == "type" || key == "ts";
}

// Appends `value` as exactly `width` decimal digits.
void put_digits(char* at, unsigned value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    at[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_iso8601_ms(std::string& out, std::int64_t ms) {
  const std::int64_t days = floor_div(ms, 86'400'000);
  const auto t = static_cast<unsigned>(ms - days * 86'400'000);  // 0 .. 86'399'999
  std::int64_t y;
  unsigned mo, d;
  civil_from_days(days, y, mo, d);
  if (y < 0 || y > 9999) {  // outside ISO 8601's four digits: the slow, general way
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ",
                  static_cast<long long>(y), mo, d, t / 3'600'000u, t / 60'000u % 60u,
                  t / 1000u % 60u, t % 1000u);
    out += buf;
    return;
  }
  char buf[25] = "0000-00-00T00:00:00.000Z";
  put_digits(buf, static_cast<unsigned>(y), 4);
  put_digits(buf + 5, mo, 2);
  put_digits(buf + 8, d, 2);
  put_digits(buf + 11, t / 3'600'000u, 2);
  put_digits(buf + 14, t / 60'000u % 60u, 2);
  put_digits(buf + 17, t / 1000u % 60u, 2);
  put_digits(buf + 20, t % 1000u, 3);
  out.append(buf, 24);
}

void append_reading(std::string& out, const buffer::Reading& r) {
  out += "{\"seq\":";
  append_int(out, r.seq);
  out += ",\"meter\":";
  append_escaped(out, r.meter);
  out += ",\"quantity\":";
  append_escaped(out, r.quantity);
  out += ",\"value\":";
  append_value(out, r.mantissa, r.exponent);
  out += ",\"unit\":";
  append_escaped(out, r.unit);
  out += ",\"ts\":\"";
  // Frozen data carries the freeze time as ts and the acquisition time apart.
  append_iso8601_ms(out, r.frozen.empty() || !r.freeze_ts_ms ? r.ts_ms : *r.freeze_ts_ms);
  out += '"';
  if (!r.frozen.empty()) {
    out += ",\"frozen\":";
    append_escaped(out, r.frozen);
    if (r.freeze_ts_ms) {
      out += ",\"read_ts\":\"";
      append_iso8601_ms(out, r.ts_ms);
      out += '"';
    }
  }
  if (r.quality != 0) {
    out += ",\"quality\":";
    out += std::to_string(r.quality);
  }
  out += '}';
}

}  // namespace

std::string iso8601_ms(std::int64_t ms) {
  std::string out;
  append_iso8601_ms(out, ms);
  return out;
}

std::string readings_payload(const std::string& gateway, std::uint64_t batch,
                             const std::vector<buffer::Reading>& readings) {
  std::string out;
  out.reserve(64 + readings.size() * 140);
  out += "{\"gateway\":";
  append_escaped(out, gateway);
  out += ",\"batch\":";
  append_int(out, static_cast<std::int64_t>(batch));
  out += ",\"readings\":[";
  bool first = true;
  for (const auto& r : readings) {
    if (!first) out += ',';
    first = false;
    append_reading(out, r);
  }
  out += "]}";
  return out;
}

std::string reading_json(const buffer::Reading& r) {
  std::string out;
  out.reserve(160);
  append_reading(out, r);
  return out;
}

std::string event_row_json(const buffer::Event& e) {
  std::string out = "{\"seq\":" + std::to_string(e.seq) + ",\"meter\":";
  append_escaped(out, e.meter);
  out += ",\"event\":";
  append_escaped(out, e.type);
  out += ",\"ts\":\"" + iso8601_ms(e.ts_ms) + '"';
  // The stored payload as text, so its numbers stay exactly as written.
  const auto parsed = nlohmann::json::parse(e.payload_json, nullptr, false);
  if (!parsed.is_discarded()) {
    out += ",\"data\":" + e.payload_json;
  } else if (!e.payload_json.empty()) {
    out += ",\"data\":";
    append_escaped(out, e.payload_json);
  }
  out += '}';
  return out;
}

std::string event_payload(const buffer::Event& e) {
  std::string out = "{\"seq\":" + std::to_string(e.seq);
  if (!e.meter.empty()) {
    out += ",\"meter\":";
    append_escaped(out, e.meter);
  }
  out += ",\"type\":";
  append_escaped(out, e.type);
  out += ",\"ts\":\"" + iso8601_ms(e.ts_ms) + '"';
  // The stored payload's members are spliced in as text, so its numbers stay
  // exactly as written; anything that is not a plain object goes under "data".
  const auto parsed = nlohmann::json::parse(e.payload_json, nullptr, false);
  bool splice = parsed.is_object();
  if (splice) {
    for (const auto& [key, value] : parsed.items()) {
      if (reserved_member(key)) splice = false;
    }
  }
  if (splice) {
    const auto open = e.payload_json.find('{');
    const auto close = e.payload_json.rfind('}');
    const std::string_view inner =
        std::string_view(e.payload_json).substr(open + 1, close - open - 1);
    if (inner.find_first_not_of(" \t\r\n") != std::string_view::npos) {
      out += ',';
      out += inner;
    }
  } else if (!parsed.is_discarded()) {
    out += ",\"data\":" + e.payload_json;
  } else if (!e.payload_json.empty()) {
    out += ",\"data\":";
    append_escaped(out, e.payload_json);
  }
  out += '}';
  return out;
}

std::string Uplink::birth_payload(const std::string& version, std::int64_t started_ms) {
  std::string out = "{\"state\":\"online\",\"version\":";
  append_escaped(out, version);
  out += ",\"started\":\"" + iso8601_ms(started_ms) + "\"}";
  return out;
}

std::string Uplink::offline_payload() { return "{\"state\":\"offline\"}"; }

Uplink::Uplink(UplinkSettings settings, buffer::Store& store, UplinkLink& link)
    : settings_(std::move(settings)), store_(store), link_(link) {
  if (settings_.batch_max == 0) settings_.batch_max = 1;
  if (settings_.inflight_max == 0) settings_.inflight_max = 1;
}

void Uplink::on_connected(std::int64_t now_ms) {
  ++counters_.connects;
  counters_.connected_since_ms = now_ms;
  link_.publish(settings_.topic_prefix + "/status",
                birth_payload(settings_.version, settings_.started_ms), qos_at_least_once, true,
                {});
}

void Uplink::on_disconnected(std::int64_t) {
  flush_acks();  // what the broker acknowledged before the link went is delivered
  if (counters_.connected_since_ms) ++counters_.disconnects;
  counters_.connected_since_ms.reset();
  inflight_.clear();
  counters_.requeued_rows += store_.requeue_inflight();
}

void Uplink::on_published(int mid, int reason, std::int64_t now_ms) {
  const auto it = inflight_.find(mid);
  if (it == inflight_.end()) return;  // status, health, a result, or from before a disconnect
  std::vector<std::int64_t> seqs = std::move(it->second);
  inflight_.erase(it);
  if (reason >= puback_refused) {
    // The broker took the message but refused it (quota, authorisation): nothing
    // was delivered. Every row in flight goes back and is sent again after a pause.
    ++counters_.refused;
    inflight_.clear();
    counters_.requeued_rows += store_.requeue_inflight();
    hold_until_ms_ = now_ms + retry_later_ms;
    return;
  }
  counters_.last_puback_ms = now_ms;
  // Deleted at the next pump, together with every PUBACK that came meanwhile:
  // one buffer transaction for a burst of acknowledgements.
  acks_pending_.insert(acks_pending_.end(), seqs.begin(), seqs.end());
}

bool Uplink::flush_acks() {
  if (acks_pending_.empty()) return true;
  if (auto res = store_.ack(acks_pending_)) {
    counters_.acked_rows += *res;
    acks_pending_.clear();
    return true;
  }
  ++counters_.ack_failures;
  return false;
}

void Uplink::notify_appended(std::int64_t now_ms, std::size_t rows) {
  if (!pending_since_ms_) pending_since_ms_ = now_ms;
  // Rows read while the link is up bring their own budget: the cap holds back a
  // backlog, never the gateway's live production.
  if (settings_.drain_max_per_s > 0 && link_.connected()) {
    const double cap = settings_.drain_max_per_s;
    tokens_ = std::min(tokens_ + static_cast<double>(rows), cap + 2.0 * settings_.batch_max);
  }
}

std::optional<std::int64_t> Uplink::pump(std::int64_t now_ms) {
  const bool acked = flush_acks();
  if (!link_.connected()) return acked ? std::nullopt : std::optional(now_ms + retry_later_ms);
  if (hold_until_ms_ && now_ms < *hold_until_ms_) return hold_until_ms_;
  hold_until_ms_.reset();
  if (!acked) return now_ms + retry_later_ms;  // the buffer refuses writes: try again later

  const bool capped = settings_.drain_max_per_s > 0;
  const double cap = settings_.drain_max_per_s;
  while (inflight_.size() < settings_.inflight_max) {
    std::size_t limit = settings_.batch_max;
    if (capped) {
      if (!tokens_at_ms_) {
        tokens_ = std::max(tokens_, cap);  // one second of burst to start with
      } else if (now_ms > *tokens_at_ms_ && tokens_ < cap) {
        // Time refills up to one second's worth; live rows may have added more.
        tokens_ =
            std::min(cap, tokens_ + cap * static_cast<double>(now_ms - *tokens_at_ms_) / 1000.0);
      }
      tokens_at_ms_ = now_ms;
      // Wait for a whole batch's worth of budget (or a second's, if the cap is
      // smaller), so a capped drain sends full batches rather than a row a publish.
      const double need = std::min<double>(settings_.batch_max, cap);
      if (tokens_ < need) {
        // A backlog smaller than the budget already there goes at once.
        auto small = store_.next_unsent(static_cast<std::size_t>(need));
        if (!small) return now_ms + retry_later_ms;
        if (small->empty()) {
          pending_since_ms_.reset();
          return std::nullopt;
        }
        if (static_cast<double>(small->size()) > tokens_) {
          const double want = std::min<double>(need, static_cast<double>(small->size()));
          return now_ms + static_cast<std::int64_t>((want - tokens_) * 1000.0 / cap) + 1;
        }
      }
      limit = std::min<std::size_t>(limit, static_cast<std::size_t>(tokens_));
    }

    // Events first, one message each, whatever readings wait below them.
    auto events = store_.next_unsent_events(limit);
    if (!events) return now_ms + retry_later_ms;
    if (!events->empty()) {
      for (const auto& e : *events) {
        const auto mid = link_.publish(settings_.topic_prefix + "/events", event_payload(e),
                                       qos_at_least_once, false, {});
        if (!mid) {
          ++counters_.publish_failures;
          return now_ms + retry_later_ms;
        }
        const std::vector<std::int64_t> seqs{e.seq};
        store_.mark_inflight(seqs);
        inflight_[*mid] = seqs;
        ++counters_.publishes;
        ++counters_.events_sent;
        if (capped) tokens_ -= 1.0;
        if (inflight_.size() >= settings_.inflight_max) return std::nullopt;
      }
      continue;  // budget and window re-checked before readings
    }

    auto unsent = store_.next_unsent(limit);
    if (!unsent) return now_ms + retry_later_ms;
    if (unsent->empty()) {
      pending_since_ms_.reset();
      return std::nullopt;
    }
    if (!unsent->events.empty()) continue;  // appended since: next round sends them first
    // A partial batch (fewer rows than may go now) waits for the rest of its
    // round, up to linger_ms from when the uplink first saw it; a batch cut
    // short by the budget goes at once.
    if (unsent->readings.size() < limit) {
      if (!pending_since_ms_) pending_since_ms_ = now_ms;
      const std::int64_t due = *pending_since_ms_ + settings_.linger_ms;
      if (now_ms < due) return due;
    }
    const auto mid =
        link_.publish(settings_.topic_prefix + "/readings",
                      readings_payload(settings_.gateway, ++batch_no_, unsent->readings),
                      qos_at_least_once, false, {});
    if (!mid) {
      ++counters_.publish_failures;
      return now_ms + retry_later_ms;
    }
    std::vector<std::int64_t> seqs = unsent->seqs();
    store_.mark_inflight(seqs);
    counters_.readings_sent += seqs.size();
    ++counters_.publishes;
    if (capped) tokens_ -= static_cast<double>(seqs.size());
    inflight_[*mid] = std::move(seqs);
    // What is left of the backlog, if partial, lingers from the next pump on.
    pending_since_ms_.reset();
  }
  return std::nullopt;  // the window is full: a PUBACK calls pump again
}

bool Uplink::publish_health(const nlohmann::json& health) {
  if (!link_.connected()) return false;
  return link_.publish(settings_.topic_prefix + "/health", protocol::dump(health), 0, false, {})
      .has_value();
}

void Uplink::publish_result(const std::string& payload, const std::string& response_topic,
                            const std::string& correlation_data) {
  link_.publish(settings_.topic_prefix + "/cmd/result", payload, qos_at_least_once, false,
                correlation_data);
  if (!response_topic.empty() && response_topic != settings_.topic_prefix + "/cmd/result")
    link_.publish(response_topic, payload, qos_at_least_once, false, correlation_data);
}

void Uplink::publish_offline() {
  link_.publish(settings_.topic_prefix + "/status", offline_payload(), qos_at_least_once, true, {});
}

nlohmann::json Uplink::health_counters() const {
  nlohmann::json j{{"connected", link_.connected()},
                   {"publishes", counters_.publishes},
                   {"readings_sent", counters_.readings_sent},
                   {"events_sent", counters_.events_sent},
                   {"acked_rows", counters_.acked_rows},
                   {"requeued_rows", counters_.requeued_rows},
                   {"refused", counters_.refused},
                   {"publish_failures", counters_.publish_failures},
                   {"ack_failures", counters_.ack_failures},
                   {"connects", counters_.connects},
                   {"disconnects", counters_.disconnects},
                   {"inflight_publishes", inflight_.size()}};
  j["last_puback"] = counters_.last_puback_ms
                         ? nlohmann::json(iso8601_ms(*counters_.last_puback_ms))
                         : nlohmann::json(nullptr);
  return j;
}

}  // namespace meterd::firmware
