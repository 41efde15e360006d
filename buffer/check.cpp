// check_invariants(): the in-memory state against the database, for tests. O(backlog).
#include <optional>
#include <string>

#include "buffer/detail/migrations.hpp"
#include "buffer/detail/store_impl.hpp"

namespace meterd::buffer {

using detail::column_text;
using detail::StmtScope;

Result<void> Store::Impl::check_invariants() {
  std::string problems;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) problems += (problems.empty() ? "" : "; ") + what;
  };
  std::optional<Error> failure;  // a query that failed: reported instead of the checks
  auto q = [&](const std::string& sql) -> std::int64_t {
    auto r = detail::query_int(db(), sql.c_str(), "check_invariants: " + sql);
    if (!r && !failure) failure = r.error();
    return r ? *r : 0;
  };

  // Counters: memory, meta and count(*) agree.
  const std::int64_t readings = q("SELECT count(*) FROM readings");
  const std::int64_t events = q("SELECT count(*) FROM events");
  const std::int64_t series = q("SELECT count(*) FROM series");
  const std::int64_t max_seq =
      q("SELECT max((SELECT coalesce(max(seq), 0) FROM readings), "
        "(SELECT coalesce(max(seq), 0) FROM events))");
  expect(static_cast<std::uint64_t>(readings) == tx_.readings,
         "readings: count(*) " + std::to_string(readings) + " != counter " +
             std::to_string(tx_.readings));
  expect(
      static_cast<std::uint64_t>(events) == tx_.events,
      "events: count(*) " + std::to_string(events) + " != counter " + std::to_string(tx_.events));
  expect(static_cast<std::size_t>(series) + 1 == series_.size() && tx_.series == series_.size(),
         "series dictionary size");
  {
    auto s = detail::prepare(db(),
                             "SELECT seq_floor, evicted_readings, evicted_events, next_seq, "
                             "readings, events, clean, session FROM meta WHERE id = 1");
    if (!s) return s.error();
    StmtScope scope(s->get());
    if (sqlite3_step(s->get()) != SQLITE_ROW) return err(SQLITE_CORRUPT, "meta row missing");
    auto col = [&](int i) { return sqlite3_column_int64(s->get(), i); };
    expect(col(0) == tx_.seq_floor, "meta.seq_floor != memory");
    expect(col(1) == static_cast<std::int64_t>(tx_.evicted_readings),
           "meta.evicted_readings != memory");
    expect(col(2) == static_cast<std::int64_t>(tx_.evicted_events),
           "meta.evicted_events != memory");
    expect(col(3) == tx_.next_seq, "meta.next_seq != memory");
    expect(col(4) == readings, "meta.readings != count(*)");
    expect(col(5) == events, "meta.events != count(*)");
    if (started_) {
      expect(col(6) == 0, "clean-stop marker set while open");
      expect(col(7) == session_, "meta.session is not this store's");
    }
  }
  // Seqs: every stored seq was assigned, and every assigned seq is below the durable floor.
  expect(max_seq < tx_.next_seq, "a stored seq >= next_seq");
  expect(!started_ || tx_.next_seq - 1 <= tx_.seq_floor, "next_seq - 1 above the seq floor");

  // In flight: every seq exists in its table; every stored row at or below the cursor is in
  // flight; everything handed out is stored.
  std::int64_t inflight_upto_cursor = 0;
  for (const auto& [seq, kind] : inflight_) {
    const auto k = stored_kind(seq);
    expect(k && *k == kind, "in-flight seq " + std::to_string(seq) + " is not stored");
    if (seq <= cursor_) ++inflight_upto_cursor;
  }
  const std::int64_t stored_upto_cursor =
      q("SELECT (SELECT count(*) FROM readings WHERE seq <= " + std::to_string(cursor_) +
        ") + (SELECT count(*) FROM events WHERE seq <= " + std::to_string(cursor_) + ")");
  expect(stored_upto_cursor == inflight_upto_cursor,
         "rows at or below the cursor " + std::to_string(cursor_) + " that are not in flight");
  for (const auto& [seq, kind] : handed_) {
    const auto k = stored_kind(seq);
    expect(k && *k == kind, "handed-out seq " + std::to_string(seq) + " is not stored");
  }

  // Export summary: every block with readings is covered by ts_blocks or the open block.
  const std::int64_t max_reading = q("SELECT coalesce(max(seq), 0) FROM readings");
  if (max_reading > 0) {
    expect(tx_.open_block.block == (max_reading >> detail::ts_block_shift),
           "open block is not the block of the highest reading");
    const std::int64_t open_outside =
        q("SELECT count(*) FROM readings WHERE seq >= " +
          std::to_string(tx_.open_block.block << detail::ts_block_shift) + " AND (ts < " +
          std::to_string(tx_.open_block.min_ts) + " OR ts > " +
          std::to_string(tx_.open_block.max_ts) + ")");
    expect(open_outside == 0, "open block summary misses readings");
  }
  const std::int64_t uncovered =
      q("SELECT count(*) FROM (SELECT seq >> 12 AS b, min(ts) AS lo, max(ts) AS hi "
        "FROM readings GROUP BY b) r LEFT JOIN ts_blocks t ON t.block = r.b "
        "WHERE r.b <> " +
        std::to_string(tx_.open_block.block) +
        " AND (t.block IS NULL OR t.min_ts > r.lo OR t.max_ts < r.hi)");
  expect(uncovered == 0, std::to_string(uncovered) + " blocks not covered by ts_blocks");

  // Notices still being extended are stored and say what memory says.
  for (std::size_t k = 0; k < tx_.pending.size(); ++k) {
    const PendingNotice& p = tx_.pending[k];
    if (p.event_seq == 0) continue;
    auto s = detail::prepare(
        db(), "SELECT type, payload FROM events WHERE seq = " + std::to_string(p.event_seq));
    if (!s) return s.error();
    StmtScope scope(s->get());
    const bool found = sqlite3_step(s->get()) == SQLITE_ROW;
    expect(found && column_text(s->get(), 0) == detail::evicted_type &&
               column_text(s->get(), 1) ==
                   detail::evicted_payload(static_cast<Kind>(k), p.count, p.first, p.last),
           "pending buffer.evicted notice " + std::to_string(p.event_seq) + " differs");
  }
  if (failure) return *failure;
  if (problems.empty()) return {};
  return detail::make_error(errc::corrupt, "check_invariants: " + problems);
}

}  // namespace meterd::buffer
