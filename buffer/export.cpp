// Export without an index: the ts_blocks time summary (one row per 4096 seqs), its upkeep on
// append, ack and eviction, and the two export walks (docs/buffer.md "Export without an index").
#include <algorithm>
#include <limits>

#include "buffer/detail/migrations.hpp"
#include "buffer/detail/store_impl.hpp"

namespace meterd::buffer {

using detail::bind_text;
using detail::column_text;
using detail::StmtScope;

Result<void> Store::Impl::add_to_block(std::int64_t seq, std::int64_t ts) {
  OpenBlock& open = tx_.open_block;
  const std::int64_t block = seq >> detail::ts_block_shift;
  if (block == open.block) {
    open.min_ts = std::min(open.min_ts, ts);
    open.max_ts = std::max(open.max_ts, ts);
    return {};
  }
  if (open.block >= 0) {
    sqlite3_stmt* s = st_.put_block.get();
    sqlite3_bind_int64(s, 1, open.block);
    sqlite3_bind_int64(s, 2, open.min_ts);
    sqlite3_bind_int64(s, 3, open.max_ts);
    if (auto r = step_done(s, "close ts block"); !r) return r;
  }
  open = OpenBlock{block, ts, ts};
  return {};
}

// Drops the summaries of blocks that no longer hold a reading. Cheap when nothing changed.
Result<void> Store::Impl::prune_blocks() {
  std::int64_t below = std::numeric_limits<std::int64_t>::max();  // no readings: all blocks
  {
    sqlite3_stmt* s = st_.first_reading.get();
    StmtScope scope(s);
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      below = sqlite3_column_int64(s, 0) >> detail::ts_block_shift;
    } else if (rc != SQLITE_DONE) {
      return err(rc, "first reading");
    }
  }
  if (below <= tx_.pruned_below) return {};
  sqlite3_stmt* d = st_.prune_blocks.get();
  sqlite3_bind_int64(d, 1, below);
  if (auto r = step_done(d, "prune ts blocks"); !r) return r;
  tx_.pruned_below = below == std::numeric_limits<std::int64_t>::max() ? 0 : below;
  return {};
}

Result<std::uint64_t> Store::Impl::export_readings(
    std::string_view meter, std::int64_t from_ms, std::int64_t to_ms,
    const std::function<bool(const Reading&)>& visit) {
  return detail::export_readings_walk(db(), st_.export_blocks.get(), st_.export_readings.get(),
                                      series_, tx_.open_block, meter, from_ms, to_ms, visit);
}

Result<std::uint64_t> Store::Impl::export_events(std::string_view meter, std::int64_t from_ms,
                                                 std::int64_t to_ms,
                                                 const std::function<bool(const Event&)>& visit) {
  return detail::export_events_walk(db(), st_.export_events.get(), meter, from_ms, to_ms, visit);
}

namespace detail {

Result<Reading> reading_from_row(sqlite3_stmt* s, const SeriesDict& series) {
  const std::int64_t id = sqlite3_column_int64(s, 1);
  const SeriesDict::Info* info = series.at(id);
  if (info == nullptr) {
    return make_error(errc::corrupt, "reading refers to unknown series " + std::to_string(id));
  }
  Reading r;
  r.seq = sqlite3_column_int64(s, 0);
  r.meter = info->meter;
  r.quantity = info->quantity;
  r.mantissa = sqlite3_column_int64(s, 2);
  r.exponent = sqlite3_column_int(s, 3);
  r.unit = info->unit;
  r.ts_ms = sqlite3_column_int64(s, 4);
  r.quality = sqlite3_column_int(s, 5);
  r.frozen = info->frozen;
  if (sqlite3_column_type(s, 6) != SQLITE_NULL) r.freeze_ts_ms = sqlite3_column_int64(s, 6);
  return r;
}

Event event_from_row(sqlite3_stmt* s) {
  Event e;
  e.seq = sqlite3_column_int64(s, 0);
  e.meter = column_text(s, 1);
  e.type = column_text(s, 2);
  e.ts_ms = sqlite3_column_int64(s, 3);
  e.payload_json = column_text(s, 4);
  return e;
}

Result<void> load_series(sqlite3* db, SeriesDict& series) {
  auto s = prepare(db, sql::series_from);
  if (!s) return s.error();
  sqlite3_stmt* q = s->get();
  sqlite3_bind_int64(q, 1, static_cast<std::int64_t>(series.size()));
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    if (sqlite3_column_int64(q, 0) != static_cast<std::int64_t>(series.size())) {
      return make_error(errc::corrupt, "series ids are not dense");
    }
    series.add({std::string(column_text(q, 1)), std::string(column_text(q, 2)),
                std::string(column_text(q, 3)), std::string(column_text(q, 4))});
  }
  if (rc != SQLITE_DONE) return sqlite_error(db, rc, "read series");
  return {};
}

Result<std::uint64_t> export_readings_walk(sqlite3* db, sqlite3_stmt* blocks_stmt,
                                           sqlite3_stmt* rows, const SeriesDict& series,
                                           const BlockSpan& open, std::string_view meter,
                                           std::int64_t from_ms, std::int64_t to_ms,
                                           const std::function<bool(const Reading&)>& visit) {
  if (from_ms >= to_ms) return std::uint64_t{0};
  // The blocks whose time span overlaps [from, to), then their seq ranges on the primary key.
  std::vector<std::int64_t> blocks;
  {
    StmtScope scope(blocks_stmt);
    sqlite3_bind_int64(blocks_stmt, 1, from_ms);
    sqlite3_bind_int64(blocks_stmt, 2, to_ms);
    int rc;
    while ((rc = sqlite3_step(blocks_stmt)) == SQLITE_ROW) {
      blocks.push_back(sqlite3_column_int64(blocks_stmt, 0));
    }
    if (rc != SQLITE_DONE) return sqlite_error(db, rc, "export: find blocks");
  }
  if (open.block >= 0 && open.max_ts >= from_ms && open.min_ts < to_ms) {
    blocks.push_back(open.block);
  }
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());

  std::uint64_t n = 0;
  for (std::size_t i = 0; i < blocks.size();) {
    std::size_t j = i;
    while (j + 1 < blocks.size() && blocks[j + 1] == blocks[j] + 1) ++j;
    StmtScope scope(rows);
    bind_text(rows, 1, meter);
    sqlite3_bind_int64(rows, 2, from_ms);
    sqlite3_bind_int64(rows, 3, to_ms);
    sqlite3_bind_int64(rows, 4, blocks[i] << ts_block_shift);
    sqlite3_bind_int64(rows, 5, ((blocks[j] + 1) << ts_block_shift) - 1);
    int rc;
    while ((rc = sqlite3_step(rows)) == SQLITE_ROW) {
      auto r = reading_from_row(rows, series);
      if (!r) return r.error();
      ++n;
      if (!visit(*r)) return n;
    }
    if (rc != SQLITE_DONE) return sqlite_error(db, rc, "export readings");
    i = j + 1;
  }
  return n;
}

Result<std::uint64_t> export_events_walk(sqlite3* db, sqlite3_stmt* s, std::string_view meter,
                                         std::int64_t from_ms, std::int64_t to_ms,
                                         const std::function<bool(const Event&)>& visit) {
  StmtScope scope(s);
  bind_text(s, 1, meter);
  sqlite3_bind_int64(s, 2, from_ms);
  sqlite3_bind_int64(s, 3, to_ms);
  std::uint64_t n = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    ++n;
    if (!visit(event_from_row(s))) return n;
  }
  if (rc != SQLITE_DONE) return sqlite_error(db, rc, "export events");
  return n;
}

}  // namespace detail

}  // namespace meterd::buffer
