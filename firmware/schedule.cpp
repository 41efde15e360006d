#include "firmware/schedule.hpp"

#include <algorithm>
#include <set>

namespace meterd::firmware {

namespace {

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

constexpr std::int64_t min_backoff_base_ms = 10'000;

}  // namespace

std::int64_t Schedule::slot_at(std::int64_t t, std::int64_t interval_ms, std::int64_t offset_ms) {
  return floor_div(t - offset_ms, interval_ms) * interval_ms + offset_ms;
}

void Schedule::configure(const std::vector<ScheduledMeter>& meters, std::int64_t now_ms,
                         bool read_now) {
  // Offsets per bus: meter k of n (in configuration order) at k × interval / n.
  std::map<std::string, std::vector<const ScheduledMeter*>> by_bus;
  for (const auto& m : meters) by_bus[m.bus].push_back(&m);

  std::map<std::string, Entry> next;
  std::size_t order = 0;
  for (const auto& m : meters) {
    const auto& peers = by_bus[m.bus];
    const auto k =
        static_cast<std::int64_t>(std::find(peers.begin(), peers.end(), &m) - peers.begin());
    const auto n = static_cast<std::int64_t>(peers.size());
    const std::int64_t offset = m.interval_ms > 0 ? k * m.interval_ms / n : 0;

    Entry e;
    const auto old = entries_.find(m.id);
    if (old != entries_.end() && old->second.meter == m && old->second.timing.offset_ms == offset) {
      e = old->second;  // unchanged: keeps its timing, counters and any read in flight
    } else {
      e.meter = m;
      e.timing.offset_ms = offset;
      if (old != entries_.end()) {  // changed: keeps its history, gets a new grid
        e.timing = old->second.timing;
        e.timing.offset_ms = offset;
      }
      const std::int64_t slot = slot_at(now_ms, m.interval_ms, offset);
      e.slot_ms = (read_now || slot == now_ms) ? slot : slot + m.interval_ms;
      e.timing.next_due_ms = read_now ? now_ms : e.slot_ms;
      e.retry = false;
    }
    e.order = order++;
    next.emplace(m.id, std::move(e));
  }
  entries_ = std::move(next);
}

std::vector<Due> Schedule::take_due(std::int64_t now_ms) {
  std::vector<Entry*> due;
  for (auto& [id, e] : entries_)
    if (!e.timing.in_flight && e.timing.next_due_ms <= now_ms) due.push_back(&e);
  std::sort(due.begin(), due.end(), [](const Entry* a, const Entry* b) {
    if (a->timing.next_due_ms != b->timing.next_due_ms)
      return a->timing.next_due_ms < b->timing.next_due_ms;
    return a->order < b->order;
  });
  std::vector<Due> out;
  out.reserve(due.size());
  for (Entry* e : due) {
    e->timing.in_flight = true;
    if (now_ms >= e->slot_ms + e->meter.interval_ms) ++e->timing.late_reads;
    out.push_back({e->meter.id, e->meter.bus, e->slot_ms, e->retry});
  }
  return out;
}

std::optional<std::int64_t> Schedule::next_wakeup() const {
  std::optional<std::int64_t> t;
  for (const auto& [id, e] : entries_)
    if (!e.timing.in_flight && (!t || e.timing.next_due_ms < *t)) t = e.timing.next_due_ms;
  return t;
}

std::int64_t Schedule::backoff_ms(const Entry& e) const {
  const std::int64_t interval = e.meter.interval_ms;
  const std::int64_t base = std::min(interval, std::max(interval / 8, min_backoff_base_ms));
  std::int64_t delay = base;
  for (unsigned i = 1; i < e.timing.failures && delay < interval; ++i) delay *= 2;
  return std::min(delay, interval);
}

Transition Schedule::completed(const std::string& id, std::int64_t now_ms, bool ok) {
  Transition t;
  const auto it = entries_.find(id);
  if (it == entries_.end()) return t;  // removed by a reload while its read ran
  Entry& e = it->second;
  MeterTiming& m = e.timing;
  m.in_flight = false;
  const std::int64_t interval = e.meter.interval_ms;

  if (ok) {
    ++m.reads_ok;
    m.last_success_ms = now_ms;
    if (m.presence == Presence::offline) t.went_online = true;
    m.presence = Presence::online;
    m.failures = 0;
    // The next grid slot after the one served; slots that passed entirely
    // while this read waited are missed, and the latest one is due at once.
    std::int64_t next = slot_at(e.slot_ms, interval, m.offset_ms) + interval;
    const std::int64_t current = slot_at(now_ms, interval, m.offset_ms);
    if (current > next) {
      m.missed_slots += static_cast<std::uint64_t>((current - next) / interval);
      next = current;
    }
    e.slot_ms = next;
    e.retry = false;
    m.next_due_ms = next;
    return t;
  }

  ++m.reads_failed;
  ++m.failures;
  if (m.failures == offline_after_ && m.presence != Presence::offline) {
    m.presence = Presence::offline;
    t.went_offline = true;
  }
  const std::int64_t delay = backoff_ms(e);
  if (delay >= interval) {
    // On the grid again: the first slot after now; slots between the one
    // served and that one were never attempted (missed).
    const std::int64_t served = slot_at(e.slot_ms, interval, m.offset_ms);
    const std::int64_t next = slot_at(now_ms, interval, m.offset_ms) + interval;
    if (next - served > interval)
      m.missed_slots += static_cast<std::uint64_t>((next - served) / interval - 1);
    e.slot_ms = next;
    e.retry = false;
    m.next_due_ms = next;
  } else {
    e.slot_ms = now_ms + delay;
    e.retry = true;
    m.next_due_ms = now_ms + delay;
  }
  return t;
}

const MeterTiming* Schedule::timing(const std::string& id) const {
  const auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second.timing;
}

std::vector<std::string> Schedule::meters() const {
  std::vector<const Entry*> v;
  for (const auto& [id, e] : entries_) v.push_back(&e);
  std::sort(v.begin(), v.end(), [](const Entry* a, const Entry* b) { return a->order < b->order; });
  std::vector<std::string> out;
  for (const Entry* e : v) out.push_back(e->meter.id);
  return out;
}

std::uint64_t Schedule::missed_slots(const std::string& bus) const {
  std::uint64_t n = 0;
  for (const auto& [id, e] : entries_)
    if (e.meter.bus == bus) n += e.timing.missed_slots;
  return n;
}

}  // namespace meterd::firmware
