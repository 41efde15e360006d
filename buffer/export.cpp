// Export without an index: the ts_blocks time summary (one row per 4096 seqs), its upkeep on
// append, ack and eviction, and the two export walks (docs/buffer.md "Export without an index").
#include <algorithm>
#include <limits>

#include "buffer/detail/migrations.hpp"
#include "buffer/detail/store_impl.hpp"

namespace meterd::buffer {

using detail::bind_text;
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
  if (from_ms >= to_ms) return std::uint64_t{0};
  // The blocks whose time span overlaps [from, to), then their seq ranges on the primary key.
  std::vector<std::int64_t> blocks;
  {
    sqlite3_stmt* s = st_.export_blocks.get();
    StmtScope scope(s);
    sqlite3_bind_int64(s, 1, from_ms);
    sqlite3_bind_int64(s, 2, to_ms);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) blocks.push_back(sqlite3_column_int64(s, 0));
    if (rc != SQLITE_DONE) return err(rc, "export: find blocks");
  }
  const OpenBlock& open = tx_.open_block;
  if (open.block >= 0 && open.max_ts >= from_ms && open.min_ts < to_ms) {
    blocks.push_back(open.block);
  }
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());

  std::uint64_t n = 0;
  sqlite3_stmt* s = st_.export_readings.get();
  for (std::size_t i = 0; i < blocks.size();) {
    std::size_t j = i;
    while (j + 1 < blocks.size() && blocks[j + 1] == blocks[j] + 1) ++j;
    StmtScope scope(s);
    bind_text(s, 1, meter);
    sqlite3_bind_int64(s, 2, from_ms);
    sqlite3_bind_int64(s, 3, to_ms);
    sqlite3_bind_int64(s, 4, blocks[i] << detail::ts_block_shift);
    sqlite3_bind_int64(s, 5, ((blocks[j] + 1) << detail::ts_block_shift) - 1);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      auto r = row_to_reading(s);
      if (!r) return r.error();
      ++n;
      if (!visit(*r)) return n;
    }
    if (rc != SQLITE_DONE) return err(rc, "export readings");
    i = j + 1;
  }
  return n;
}

Result<std::uint64_t> Store::Impl::export_events(std::string_view meter, std::int64_t from_ms,
                                                 std::int64_t to_ms,
                                                 const std::function<bool(const Event&)>& visit) {
  sqlite3_stmt* s = st_.export_events.get();
  StmtScope scope(s);
  bind_text(s, 1, meter);
  sqlite3_bind_int64(s, 2, from_ms);
  sqlite3_bind_int64(s, 3, to_ms);
  std::uint64_t n = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    ++n;
    if (!visit(row_to_event(s))) return n;
  }
  if (rc != SQLITE_DONE) return err(rc, "export events");
  return n;
}

}  // namespace meterd::buffer
