// The queue side of the Store: next_unsent() and its cursor, the in-flight set, ack, requeue.
#include <algorithm>
#include <limits>

#include "buffer/detail/store_impl.hpp"

namespace meterd::buffer {

using detail::column_text;
using detail::StmtScope;

Result<Reading> Store::Impl::row_to_reading(sqlite3_stmt* s) const {
  return detail::reading_from_row(s, series_);
}

Event Store::Impl::row_to_event(sqlite3_stmt* s) { return detail::event_from_row(s); }

void Store::Impl::forget_notice_if(std::int64_t first, std::int64_t last) noexcept {
  for (PendingNotice& p : tx_.pending) {
    if (p.event_seq != 0 && p.event_seq >= first && p.event_seq <= last) p = PendingNotice{};
  }
}

Result<Unsent> Store::Impl::next_unsent(std::size_t limit) {
  Unsent out;
  if (limit == 0) return out;
  out.readings.reserve(std::min<std::size_t>(limit, 4096));
  constexpr auto none = std::numeric_limits<std::int64_t>::max();
  std::int64_t from = cursor_;
  bool prefix = true;  // every row walked so far in this call was in flight
  std::vector<Reading> rs;
  std::vector<Event> es;
  std::vector<std::pair<std::int64_t, Kind>> handed;
  while (out.size() < limit) {
    const std::size_t want = limit - out.size();
    rs.clear();
    es.clear();
    {
      sqlite3_stmt* s = st_.next_readings.get();
      StmtScope scope(s);
      sqlite3_bind_int64(s, 1, from);
      sqlite3_bind_int64(s, 2, static_cast<std::int64_t>(want));
      int rc;
      while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        auto r = row_to_reading(s);
        if (!r) return r.error();
        rs.push_back(std::move(*r));
      }
      if (rc != SQLITE_DONE) return err(rc, "next_unsent readings");
    }
    if (tx_.events > 0) {
      sqlite3_stmt* s = st_.next_events.get();
      StmtScope scope(s);
      sqlite3_bind_int64(s, 1, from);
      sqlite3_bind_int64(s, 2, static_cast<std::int64_t>(want));
      int rc;
      while ((rc = sqlite3_step(s)) == SQLITE_ROW) es.push_back(row_to_event(s));
      if (rc != SQLITE_DONE) return err(rc, "next_unsent events");
    }
    // A full page from one table is only complete up to its last seq; rows of the other table
    // above that are fetched again in the next round.
    std::int64_t bound = none;
    if (rs.size() == want) bound = rs.back().seq;
    if (es.size() == want) bound = std::min(bound, es.back().seq);

    std::size_t i = 0, j = 0;
    while (out.size() < limit && (i < rs.size() || j < es.size())) {
      const bool take_reading = j >= es.size() || (i < rs.size() && rs[i].seq < es[j].seq);
      const std::int64_t seq = take_reading ? rs[i].seq : es[j].seq;
      if (seq > bound) break;
      if (!inflight_.empty() && inflight_.count(seq) != 0) {
        if (prefix) cursor_ = seq;
      } else {
        prefix = false;
        if (take_reading) {
          out.readings.push_back(std::move(rs[i]));
          handed.emplace_back(seq, detail::kind_readings);
        } else {
          forget_notice_if(seq, seq);  // once read out, a notice never changes again
          out.events.push_back(std::move(es[j]));
          handed.emplace_back(seq, detail::kind_events);
        }
      }
      if (take_reading) {
        ++i;
      } else {
        ++j;
      }
    }
    if (bound == none) break;  // both tables exhausted
    from = bound;
  }
  handed_ = std::move(handed);
  return out;
}

Result<std::vector<Event>> Store::Impl::next_unsent_events(std::size_t limit) {
  std::vector<Event> out;
  if (limit == 0 || tx_.events == 0) return out;
  std::int64_t from = 0;
  for (;;) {
    // Each page asks for enough rows to fill `limit` even if every in-flight one is among them.
    const std::size_t want = limit - out.size() + std::min<std::size_t>(inflight_.size(), 4096);
    std::size_t got = 0;
    sqlite3_stmt* s = st_.next_events.get();
    StmtScope scope(s);
    sqlite3_bind_int64(s, 1, from);
    sqlite3_bind_int64(s, 2, static_cast<std::int64_t>(want));
    int rc = SQLITE_DONE;
    while (out.size() < limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
      ++got;
      Event e = row_to_event(s);
      from = e.seq;
      if (inflight_.count(e.seq) != 0) continue;
      forget_notice_if(e.seq, e.seq);  // once read out, a notice never changes again
      out.push_back(std::move(e));
    }
    if (out.size() >= limit) break;
    if (rc != SQLITE_DONE) return err(rc, "next_unsent_events");
    if (got < want) break;  // the table is exhausted
  }
  return out;
}

// Which table holds `seq`, if any: one primary-key probe per table.
std::optional<detail::Kind> Store::Impl::stored_kind(std::int64_t seq) {
  for (const Kind k : {detail::kind_readings, detail::kind_events}) {
    sqlite3_stmt* s = k == detail::kind_readings ? st_.has_reading.get() : st_.has_event.get();
    StmtScope scope(s);
    sqlite3_bind_int64(s, 1, seq);
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return k;
    // Unknown after an error: keep it in flight rather than send it twice at once.
    if (rc != SQLITE_DONE) return detail::kind_readings;
  }
  return std::nullopt;
}

void Store::Impl::mark_inflight(std::span<const std::int64_t> seqs) {
  for (const std::int64_t seq : seqs) {
    auto it = std::lower_bound(handed_.begin(), handed_.end(), seq,
                               [](const auto& h, std::int64_t v) { return h.first < v; });
    std::optional<Kind> kind;
    if (it != handed_.end() && it->first == seq) {
      kind = it->second;
    } else if (inflight_.count(seq) == 0) {
      kind = stored_kind(seq);  // not from the last next_unsent: rare, so probe the tables
    }
    // The uplink marks ascending seqs above everything in flight: append at the end, O(1).
    if (kind) inflight_.emplace_hint(inflight_.end(), seq, *kind);
    forget_notice_if(seq, seq);
  }
  if (!handed_.empty() && std::all_of(handed_.begin(), handed_.end(), [&](const auto& h) {
        return inflight_.count(h.first) != 0;
      })) {
    cursor_ = std::max(cursor_, handed_.back().first);
    handed_.clear();
  }
}

// After an eviction committed: the evicted rows no longer exist, so they are neither in flight
// nor about to be (handed_). A readings range deletes every reading in it; an events range
// spares buffer.evicted notices, so those seqs are probed.
void Store::Impl::drop_evicted_from_flight() {
  for (const Evicted& e : evicted_now_) {
    auto gone = [&](std::int64_t seq, Kind kind) {
      return kind == e.kind && (kind == detail::kind_readings || !stored_kind(seq));
    };
    for (auto it = inflight_.lower_bound(e.first); it != inflight_.end() && it->first <= e.last;) {
      it = gone(it->first, it->second) ? inflight_.erase(it) : std::next(it);
    }
    std::erase_if(handed_, [&](const auto& h) {
      return h.first >= e.first && h.first <= e.last && gone(h.first, h.second);
    });
  }
  evicted_now_.clear();
}

Result<std::uint64_t> Store::Impl::ack(std::span<const std::int64_t> seqs) {
  if (seqs.empty()) return std::uint64_t{0};
  if (auto r = ensure_started(); !r) return r.error();
  std::vector<std::int64_t> v(seqs.begin(), seqs.end());
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());

  // An ack is committed without its own fsync, even in Sync::full: losing it to a power cut
  // only sends its rows again (the head-end drops duplicates by seq), and the next synced
  // write makes it durable with everything before it in the WAL. Saves one fsync per PUBACK.
  const bool lowered = opts_.sync == Sync::full &&
                       detail::exec(db(), "PRAGMA synchronous = NORMAL", "ack synchronous");
  struct Restore {
    sqlite3* db;
    bool on;
    ~Restore() {
      if (on) (void)detail::exec(db, "PRAGMA synchronous = FULL", "ack synchronous");
    }
  } restore{db(), lowered};

  // Seqs are unique across both tables, so a run of consecutive acked seqs covers every stored
  // row inside it: one range DELETE per run and table instead of one per row.
  std::uint64_t deleted = 0;
  auto r = in_transaction([&]() -> Result<void> {
    std::uint64_t deleted_readings = 0;
    for (std::size_t i = 0; i < v.size();) {
      std::size_t j = i;
      while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
      sqlite3_stmt* d = st_.delete_readings.get();
      sqlite3_bind_int64(d, 1, v[i]);
      sqlite3_bind_int64(d, 2, v[j]);
      if (auto res = step_done(d, "ack readings"); !res) return res;
      const auto dr = static_cast<std::uint64_t>(sqlite3_changes64(db()));
      tx_.readings -= dr;
      deleted += dr;
      deleted_readings += dr;
      if (tx_.events > 0) {
        sqlite3_stmt* de = st_.delete_events.get();
        sqlite3_bind_int64(de, 1, v[i]);
        sqlite3_bind_int64(de, 2, v[j]);
        if (auto res = step_done(de, "ack events"); !res) return res;
        const auto dev = static_cast<std::uint64_t>(sqlite3_changes64(db()));
        tx_.events -= dev;
        deleted += dev;
      }
      i = j + 1;
    }
    if (deleted_readings > 0) return prune_blocks();
    return {};
  });
  if (!r) return r.error();
  for (const std::int64_t seq : v) {
    inflight_.erase(seq);
    forget_notice_if(seq, seq);
  }
  std::erase_if(handed_,
                [&](const auto& h) { return std::binary_search(v.begin(), v.end(), h.first); });
  return deleted;
}

std::size_t Store::Impl::requeue_inflight() noexcept {
  const std::size_t n = inflight_.size();
  inflight_.clear();
  handed_.clear();
  cursor_ = 0;
  return n;
}

}  // namespace meterd::buffer
