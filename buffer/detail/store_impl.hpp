// Store::Impl, shared by the files that implement it, one concern each:
//   store.cpp   open and load, start and close (the clean-stop marker, buffer.seq_gap), seq
//               reservation, append, per-meter state, stats, checkpoints
//   queue.cpp   next_unsent, the in-flight set and its cursor, ack, requeue
//   evict.cpp   caps, eviction, buffer.evicted notices
//   export.cpp  ts_blocks upkeep and export
//   check.cpp   check_invariants(), for tests
// Private to buffer/.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <sqlite3.h>

#include "buffer/detail/sqlite.hpp"
#include "buffer/store.hpp"

namespace meterd::buffer {

namespace detail {

enum Kind : std::size_t { kind_readings = 0, kind_events = 1 };

inline constexpr std::string_view evicted_type = "buffer.evicted";
inline constexpr std::string_view seq_gap_type = "buffer.seq_gap";

std::string evicted_payload(Kind kind, std::uint64_t count, std::int64_t first, std::int64_t last);

// The series dictionary: id -> strings (index 0 unused) and strings -> id. Only ever grows
// inside a transaction, so rolling back is truncating to the size it had.
class SeriesDict {
 public:
  // Views into the dictionary's own pool of names: a meter id, quantity,
  // unit or frozen kind shared by many series is kept once (1024 meters make
  // some 18,000 series of a few hundred distinct names).
  struct Info {
    std::string_view meter;
    std::string_view quantity;
    std::string_view unit;
    std::string_view frozen;
    bool operator==(const Info&) const = default;
  };

  SeriesDict() { clear(); }
  SeriesDict(const SeriesDict&) = delete;  // the views point into this one's pool
  SeriesDict& operator=(const SeriesDict&) = delete;
  void clear();
  std::size_t size() const noexcept { return infos_.size(); }
  const Info* at(std::int64_t id) const noexcept {
    return id > 0 && id < static_cast<std::int64_t>(infos_.size())
               ? &infos_[static_cast<std::size_t>(id)]
               : nullptr;
  }
  // 0 when unknown.
  std::int64_t find(std::string_view meter, std::string_view quantity, std::string_view unit,
                    std::string_view frozen) const;
  // Adds the next id (== size() before the call); the names are copied.
  void add(const Info& info);
  void truncate(std::size_t n);

 private:
  struct InfoHash {
    std::size_t operator()(const Info& i) const noexcept;
  };
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::string_view intern(std::string_view name);
  // A deque: it grows without moving what it holds, so adding a series never
  // holds the old and the new copy of the whole table at once.
  std::deque<Info> infos_;
  std::unordered_map<Info, std::int64_t, InfoHash> ids_;
  std::unordered_set<std::string, NameHash, std::equal_to<>> names_;  // nodes never move
};

// SQL that Store and Reader (buffer/reader.cpp) share, so the read-only path can never drift
// from the store's own.
namespace sql {
inline constexpr const char* first_reading = "SELECT seq, ts FROM readings ORDER BY seq LIMIT 1";
inline constexpr const char* first_event = "SELECT seq, ts FROM events ORDER BY seq LIMIT 1";
inline constexpr const char* export_readings =
    "SELECT seq, series, mantissa, exponent, ts, quality, freeze_ts FROM readings "
    "WHERE seq BETWEEN ?4 AND ?5 AND ts >= ?2 AND ts < ?3 "
    "AND series IN (SELECT id FROM series WHERE meter = ?1) ORDER BY seq";
inline constexpr const char* export_blocks =
    "SELECT block FROM ts_blocks WHERE max_ts >= ?1 AND min_ts < ?2 ORDER BY block";
inline constexpr const char* export_events =
    "SELECT seq, meter, type, ts, payload FROM events "
    "WHERE meter = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY seq";
// The series dictionary from id ?1 on (0: all of it).
inline constexpr const char* series_from =
    "SELECT id, meter, quantity, unit, frozen FROM series WHERE id >= ?1 ORDER BY id";
}  // namespace sql

// Time summary of one ts_blocks block: the one still filling lives in the Store's memory (and
// is recomputed from the readings by a Reader).
struct BlockSpan {
  std::int64_t block = -1;  // -1: none
  std::int64_t min_ts = 0;
  std::int64_t max_ts = 0;
  friend bool operator==(const BlockSpan&, const BlockSpan&) = default;
};

// Rows of the export_readings / next_readings (readings) and export_events / next_events
// (events) column layouts. Errors: corrupt when the reading names an unknown series.
Result<Reading> reading_from_row(sqlite3_stmt* s, const SeriesDict& series);
Event event_from_row(sqlite3_stmt* s);

// Adds the series rows with ids from series.size() on (all of them into a fresh dictionary).
// Errors: corrupt when the ids are not dense.
Result<void> load_series(sqlite3* db, SeriesDict& series);

// The export walks of Store and Reader (export.cpp). `blocks` and `rows` are statements of
// sql::export_blocks and sql::export_readings; `open` the block not in ts_blocks yet.
Result<std::uint64_t> export_readings_walk(sqlite3* db, sqlite3_stmt* blocks, sqlite3_stmt* rows,
                                           const SeriesDict& series, const BlockSpan& open,
                                           std::string_view meter, std::int64_t from_ms,
                                           std::int64_t to_ms,
                                           const std::function<bool(const Reading&)>& visit);
Result<std::uint64_t> export_events_walk(sqlite3* db, sqlite3_stmt* events, std::string_view meter,
                                         std::int64_t from_ms, std::int64_t to_ms,
                                         const std::function<bool(const Event&)>& visit);

}  // namespace detail

class Store::Impl {
 public:
  explicit Impl(Options options) : opts_(std::move(options)) {}
  ~Impl();

  Result<void> open();
  Result<void> close();
  Result<AppendResult> append(const Batch& batch);
  Result<Unsent> next_unsent(std::size_t limit);
  Result<std::vector<Event>> next_unsent_events(std::size_t limit);
  void mark_inflight(std::span<const std::int64_t> seqs);
  Result<std::uint64_t> ack(std::span<const std::int64_t> seqs);
  std::size_t requeue_inflight() noexcept;
  Result<Stats> stats();
  Result<std::uint64_t> export_readings(std::string_view meter, std::int64_t from_ms,
                                        std::int64_t to_ms,
                                        const std::function<bool(const Reading&)>& visit);
  Result<std::uint64_t> export_events(std::string_view meter, std::int64_t from_ms,
                                      std::int64_t to_ms,
                                      const std::function<bool(const Event&)>& visit);
  Result<void> put_state(std::string_view meter, std::string_view key, std::string_view value);
  Result<std::optional<std::string>> get_state(std::string_view meter, std::string_view key);
  Result<std::map<std::string, std::string>> states(std::string_view meter);
  Result<void> checkpoint();
  Result<bool> checkpoint_if_due(std::int64_t now_ms);
  Result<void> check_invariants();
  int schema_version() const noexcept { return schema_version_; }

 private:
  using Kind = detail::Kind;

  // A buffer.evicted event still being extended: nobody has seen it yet, so it may change.
  struct PendingNotice {
    std::int64_t event_seq = 0;  // 0: none; the next eviction inserts a new event
    std::uint64_t count = 0;
    std::int64_t first = 0;
    std::int64_t last = 0;
    friend bool operator==(const PendingNotice&, const PendingNotice&) = default;
  };

  // Time summary of the ts_blocks block that is still filling (the block of the highest
  // reading seq). Written to ts_blocks when a reading lands in a later block, in the same
  // transaction; rebuilt from its (at most 4096) rows at open.
  using OpenBlock = detail::BlockSpan;

  // Everything in memory that a write transaction may change. in_transaction() copies it whole
  // before the body runs and assigns the copy back if the transaction rolls back, so no field
  // can be forgotten. The first six fields mirror the `meta` row.
  struct TxState {
    std::int64_t next_seq = 1;   // the next seq to assign (meta.next_seq)
    std::int64_t seq_floor = 0;  // durable reservation: every seq handed out is <= it
    std::uint64_t readings = 0;  // rows stored, in flight included (meta.readings)
    std::uint64_t events = 0;
    std::uint64_t evicted_readings = 0;
    std::uint64_t evicted_events = 0;
    std::size_t series = 1;  // size of the series dictionary (entry 0 unused)
    std::array<PendingNotice, 2> pending{};
    OpenBlock open_block;
    std::int64_t pruned_below = 0;  // ts_blocks holds no block below this
    bool uncheckpointed = false;    // rows committed since the last checkpoint
    friend bool operator==(const TxState&, const TxState&) = default;
  };

  // Rows evicted by the running transaction; once it commits they leave the in-flight set.
  struct Evicted {
    Kind kind;
    std::int64_t first;
    std::int64_t last;
  };

  sqlite3* db() const noexcept { return db_.get(); }
  Error err(int rc, std::string_view what) const { return detail::sqlite_error(db(), rc, what); }
  Result<void> prepare_all();
  Result<void> load();
  Result<void> start();
  Result<void> ensure_started() { return started_ ? Result<void>() : start(); }
  Result<void> step_done(sqlite3_stmt* s, std::string_view what);
  Result<void> set_synchronous(bool full);
  Result<void> reserve_seqs(std::int64_t up_to);

  // Runs `body` inside BEGIN IMMEDIATE .. COMMIT and writes the meta row when the body changed
  // one of its fields. On any failure (SQLITE_FULL and I/O errors included, which SQLite may
  // already have rolled back itself) the transaction is rolled back and tx_ restored, so the
  // store is exactly as before the call. `synced`: fsync the WAL at commit even in
  // Sync::normal (seq reservations, the clean-stop marker).
  template <typename Body>
  Result<void> in_transaction(Body&& body, bool synced = false);
  Result<void> commit_or_rollback(Result<void> r, const TxState& before, bool synced);

  Result<void> insert_event(std::int64_t seq, std::string_view meter, std::string_view type,
                            std::int64_t ts, std::string_view payload);
  Result<std::int64_t> intern(const Reading& r);
  Result<void> write_meta();

  // evict.cpp
  Result<void> enforce_caps(std::int64_t now_ms, AppendResult& result);
  Result<std::uint64_t> evict(Kind kind, std::uint64_t n, std::int64_t now_ms);
  Result<void> note_eviction(Kind kind, std::uint64_t n, std::int64_t first, std::int64_t last,
                             std::int64_t now_ms);
  Result<std::uint64_t> used_bytes();

  // export.cpp
  Result<void> add_to_block(std::int64_t seq, std::int64_t ts);
  Result<void> prune_blocks();

  // queue.cpp
  void forget_notice_if(std::int64_t first, std::int64_t last) noexcept;
  void drop_evicted_from_flight();
  std::optional<Kind> stored_kind(std::int64_t seq);
  Result<Reading> row_to_reading(sqlite3_stmt* s) const;
  static Event row_to_event(sqlite3_stmt* s);

  Options opts_;
  detail::DbPtr db_;
  int schema_version_ = 0;
  std::int64_t page_size_ = 4096;
  bool started_ = false;  // start() committed: clean marker cleared, seq_gap written
  bool clean_at_open_ = true;
  std::int64_t session_ = 0;  // meta.session of this open; only it may mark a clean stop
  std::int64_t last_checkpoint_ms_ = 0;

  struct Statements {
    detail::StmtPtr begin, commit, rollback;
    detail::StmtPtr insert_reading, insert_event, insert_series, update_event_payload;
    detail::StmtPtr next_readings, next_events, has_reading, has_event;
    detail::StmtPtr delete_readings, delete_events, delete_events_evictable;
    detail::StmtPtr oldest_readings, oldest_events_evictable;
    detail::StmtPtr write_meta;
    detail::StmtPtr page_count, freelist_count;
    detail::StmtPtr first_reading, first_event;
    detail::StmtPtr export_readings, export_events;
    detail::StmtPtr put_block, export_blocks, prune_blocks;
    detail::StmtPtr put_state, get_state;
  } st_;

  TxState tx_;
  detail::SeriesDict series_;
  std::vector<Evicted> evicted_now_;

  // In flight: seqs handed to the uplink, with the table they are in. Every stored row with
  // seq <= cursor_ is in flight, so next_unsent() starts its primary-key walk there.
  std::map<std::int64_t, Kind> inflight_;
  std::int64_t cursor_ = 0;
  // What the last next_unsent() returned, ascending. Everything between cursor_ and its last
  // seq is either in it or in flight, so once all of it is marked the cursor jumps past it.
  std::vector<std::pair<std::int64_t, Kind>> handed_;
};

template <typename Body>
Result<void> Store::Impl::in_transaction(Body&& body, bool synced) {
  const TxState before = tx_;
  evicted_now_.clear();
  if (synced) {
    if (auto r = set_synchronous(true); !r) return r;
  }
  Result<void> r = step_done(st_.begin.get(), "begin transaction");
  if (r) r = body();
  return commit_or_rollback(std::move(r), before, synced);
}

}  // namespace meterd::buffer
