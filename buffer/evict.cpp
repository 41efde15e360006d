// Eviction: the caps, checked at the end of every append inside its transaction, and the
// buffer.evicted notices that tell the head-end what was dropped (docs/buffer.md "Bounded").
#include <algorithm>

#include "buffer/detail/store_impl.hpp"

namespace meterd::buffer {

using detail::bind_text;
using detail::StmtScope;

Result<std::uint64_t> Store::Impl::used_bytes() {
  std::int64_t pages = 0, free_pages = 0;
  {
    StmtScope scope(st_.page_count.get());
    const int rc = sqlite3_step(st_.page_count.get());
    if (rc != SQLITE_ROW) return err(rc, "page_count");
    pages = sqlite3_column_int64(st_.page_count.get(), 0);
  }
  {
    StmtScope scope(st_.freelist_count.get());
    const int rc = sqlite3_step(st_.freelist_count.get());
    if (rc != SQLITE_ROW) return err(rc, "freelist_count");
    free_pages = sqlite3_column_int64(st_.freelist_count.get(), 0);
  }
  return static_cast<std::uint64_t>(std::max<std::int64_t>(pages - free_pages, 0) * page_size_);
}

Result<void> Store::Impl::enforce_caps(std::int64_t now_ms, AppendResult& result) {
  if (opts_.max_readings > 0 && tx_.readings > opts_.max_readings) {
    auto n = evict(detail::kind_readings, tx_.readings - opts_.max_readings, now_ms);
    if (!n) return n.error();
    result.evicted_readings += *n;
  }
  if (opts_.max_bytes > 0) {
    // Estimate rows per byte from the store itself; a few rounds absorb the estimate's error.
    for (int round = 0; round < 8; ++round) {
      auto used = used_bytes();
      if (!used) return used.error();
      if (*used <= opts_.max_bytes) break;
      const std::uint64_t rows = std::max<std::uint64_t>(tx_.readings + tx_.events, 1);
      const std::uint64_t per_row = std::max<std::uint64_t>(*used / rows, 1);
      const std::uint64_t n = (*used - opts_.max_bytes + per_row - 1) / per_row;
      if (tx_.readings > 0) {
        auto done = evict(detail::kind_readings, std::min(n, tx_.readings), now_ms);
        if (!done) return done.error();
        result.evicted_readings += *done;
      } else {
        auto done = evict(detail::kind_events, std::min(n, tx_.events), now_ms);
        if (!done) return done.error();
        result.evicted_events += *done;
        if (*done == 0) break;  // only eviction notices are left
      }
    }
  }
  if (opts_.max_events > 0 && tx_.events > opts_.max_events) {
    auto n = evict(detail::kind_events, tx_.events - opts_.max_events, now_ms);
    if (!n) return n.error();
    result.evicted_events += *n;
  }
  if (result.evicted_readings > 0) return prune_blocks();
  return {};
}

// Deletes the n lowest-seq rows of a kind (events: sparing buffer.evicted notices, which are
// what tells the head-end about the loss): a walk of the primary key over exactly those rows.
// The range goes to evicted_now_, so the rows leave the in-flight set once this commits.
Result<std::uint64_t> Store::Impl::evict(Kind kind, std::uint64_t n, std::int64_t now_ms) {
  if (n == 0) return std::uint64_t{0};
  const bool readings = kind == detail::kind_readings;
  std::int64_t first = 0, last = 0;
  {
    sqlite3_stmt* s = readings ? st_.oldest_readings.get() : st_.oldest_events_evictable.get();
    StmtScope scope(s);
    sqlite3_bind_int64(s, 1, static_cast<std::int64_t>(n));
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      last = sqlite3_column_int64(s, 0);
      if (first == 0) first = last;
    }
    if (rc != SQLITE_DONE) {
      return err(rc, readings ? "find readings to evict" : "find events to evict");
    }
  }
  if (first == 0) return std::uint64_t{0};
  sqlite3_stmt* d = readings ? st_.delete_readings.get() : st_.delete_events_evictable.get();
  sqlite3_bind_int64(d, 1, first);
  sqlite3_bind_int64(d, 2, last);
  if (auto r = step_done(d, readings ? "evict readings" : "evict events"); !r) return r.error();
  const auto deleted = static_cast<std::uint64_t>(sqlite3_changes64(db()));
  (readings ? tx_.readings : tx_.events) -= deleted;
  (readings ? tx_.evicted_readings : tx_.evicted_events) += deleted;
  evicted_now_.push_back(Evicted{kind, first, last});
  if (auto r = note_eviction(kind, deleted, first, last, now_ms); !r) return r.error();
  return deleted;
}

// Turns an eviction into a buffer.evicted event. Successive evictions extend one notice as
// long as nobody has read it yet: the oldest rows go first, so the ranges are adjacent and
// "every seq of this kind in [first_seq, last_seq] you have not received is lost" stays exact.
Result<void> Store::Impl::note_eviction(Kind kind, std::uint64_t n, std::int64_t first,
                                        std::int64_t last, std::int64_t now_ms) {
  PendingNotice& p = tx_.pending[kind];
  if (p.event_seq != 0) {
    const std::string payload = detail::evicted_payload(kind, p.count + n, p.first, last);
    sqlite3_stmt* s = st_.update_event_payload.get();
    sqlite3_bind_int64(s, 1, p.event_seq);
    bind_text(s, 2, payload);
    if (auto r = step_done(s, "update buffer.evicted event"); !r) return r;
    if (sqlite3_changes64(db()) == 1) {
      p.count += n;
      p.last = last;
      return {};
    }
    p = PendingNotice{};  // the notice is gone (acked): start a new one
  }
  const std::int64_t seq = tx_.next_seq;
  if (auto r = insert_event(seq, "", detail::evicted_type, now_ms,
                            detail::evicted_payload(kind, n, first, last));
      !r) {
    return r;
  }
  ++tx_.next_seq;
  p = PendingNotice{seq, n, first, last};
  return {};
}

}  // namespace meterd::buffer
