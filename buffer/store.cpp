// Store: open and load, start and close (the clean-stop marker and buffer.seq_gap), seq
// reservation, transactions, append, per-meter state, stats and checkpoints. The queue, eviction,
// export and the invariant check live in their own files (buffer/detail/store_impl.hpp).
#include "buffer/store.hpp"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include <sqlite3.h>
#include <sys/stat.h>

#include "buffer/detail/migrations.hpp"
#include "buffer/detail/sqlite.hpp"
#include "buffer/detail/store_impl.hpp"

namespace meterd::buffer {

using detail::bind_text;
using detail::column_text;
using detail::StmtScope;

namespace detail {

namespace {
constexpr std::int64_t journal_size_limit_bytes = 16 * 1024 * 1024;

bool has_nul(std::string_view s) noexcept { return s.find('\0') != std::string_view::npos; }
}  // namespace

std::string evicted_payload(Kind kind, std::uint64_t count, std::int64_t first, std::int64_t last) {
  std::string p = R"({"kind":")";
  p += kind == kind_readings ? "readings" : "events";
  p += R"(","count":)" + std::to_string(count);
  p += R"(,"first_seq":)" + std::to_string(first);
  p += R"(,"last_seq":)" + std::to_string(last) + "}";
  return p;
}

void SeriesDict::clear() {
  infos_.assign(1, Info{});
  ids_.clear();
  names_.clear();
}

std::size_t SeriesDict::InfoHash::operator()(const Info& i) const noexcept {
  std::size_t h = 0;
  for (const std::string_view part : {i.meter, i.quantity, i.unit, i.frozen})
    h ^= std::hash<std::string_view>{}(part) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

std::string_view SeriesDict::intern(std::string_view name) {
  auto it = names_.find(name);
  if (it == names_.end()) it = names_.emplace(name).first;
  return *it;
}

std::int64_t SeriesDict::find(std::string_view meter, std::string_view quantity,
                              std::string_view unit, std::string_view frozen) const {
  const auto it = ids_.find(Info{meter, quantity, unit, frozen});
  return it == ids_.end() ? 0 : it->second;
}

void SeriesDict::add(const Info& info) {
  const Info kept{intern(info.meter), intern(info.quantity), intern(info.unit),
                  intern(info.frozen)};
  ids_.emplace(kept, static_cast<std::int64_t>(infos_.size()));
  infos_.push_back(kept);
}

void SeriesDict::truncate(std::size_t n) {
  for (std::size_t id = std::max<std::size_t>(n, 1); id < infos_.size(); ++id)
    ids_.erase(infos_[id]);
  infos_.resize(std::max<std::size_t>(n, 1));
  // The names of the series dropped stay in the pool: a rolled-back
  // transaction's few, used again when its rows are retried.
}

}  // namespace detail

std::vector<std::int64_t> Unsent::seqs() const {
  std::vector<std::int64_t> out;
  out.reserve(size());
  for (const Reading& r : readings) out.push_back(r.seq);
  for (const Event& e : events) out.push_back(e.seq);
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------------------------------------
// open, start, close

Result<void> Store::Impl::open() {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(opts_.path.c_str(), &raw,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 opts_.vfs.empty() ? nullptr : opts_.vfs.c_str());
  db_.reset(raw);
  if (rc != SQLITE_OK) return err(rc, "open " + opts_.path);
  sqlite3_extended_result_codes(db(), 1);
  sqlite3_busy_timeout(db(), static_cast<int>(opts_.busy_timeout_ms));

  // Refuse a newer or foreign database before anything (even the journal mode) is written.
  if (auto v = detail::check_schema(db()); !v) return v.error();

  {
    auto s = detail::prepare(db(), "PRAGMA journal_mode = WAL");
    if (!s) return s.error();
    const int step = sqlite3_step(s->get());
    if (step != SQLITE_ROW) return err(step, "set journal_mode=WAL on " + opts_.path);
    const std::string mode(column_text(s->get(), 0));
    if (mode != "wal" && mode != "memory") {
      return detail::make_error(
          errc::cannot_open, "journal_mode=WAL refused for " + opts_.path + " (got " + mode + ")");
    }
  }
  std::string pragmas =
      opts_.sync == Sync::full ? "PRAGMA synchronous = FULL;" : "PRAGMA synchronous = NORMAL;";
  pragmas += "PRAGMA cache_size = -" + std::to_string(opts_.cache_kib) + ";";
  pragmas +=
      "PRAGMA journal_size_limit = " + std::to_string(detail::journal_size_limit_bytes) + ";";
  pragmas += "PRAGMA temp_store = FILE;";
  if (opts_.max_page_count > 0) {
    pragmas += "PRAGMA max_page_count = " + std::to_string(opts_.max_page_count) + ";";
  }
  if (auto r = detail::exec(db(), pragmas.c_str(), "set pragmas on " + opts_.path); !r) return r;

  auto version = detail::migrate(db(), detail::latest_version());
  if (!version) return version.error();
  schema_version_ = *version;

  if (auto r = prepare_all(); !r) return r;
  if (auto r = load(); !r) return r;
  last_checkpoint_ms_ = opts_.now_ms;
  // A full disk must not keep the backlog from being read and sent: the store opens, and the
  // first write retries start() (nothing gets a seq before it succeeded).
  if (auto r = start(); !r && !r.error().is(errc::disk_full) && !r.error().is(errc::io_error)) {
    return r;
  }
  return {};
}

Result<void> Store::Impl::prepare_all() {
  struct Entry {
    detail::StmtPtr* target;
    const char* sql;
  };
  const Entry entries[] = {
      {&st_.begin, "BEGIN IMMEDIATE"},
      {&st_.commit, "COMMIT"},
      {&st_.rollback, "ROLLBACK"},
      {&st_.insert_reading,
       "INSERT INTO readings (seq, series, mantissa, exponent, ts, quality, freeze_ts) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
      {&st_.insert_event,
       "INSERT INTO events (seq, meter, type, ts, payload) VALUES (?1, ?2, ?3, ?4, ?5)"},
      {&st_.insert_series,
       "INSERT INTO series (id, meter, quantity, unit, frozen) VALUES (?1, ?2, ?3, ?4, ?5)"},
      {&st_.update_event_payload, "UPDATE events SET payload = ?2 WHERE seq = ?1"},
      {&st_.next_readings,
       "SELECT seq, series, mantissa, exponent, ts, quality, freeze_ts FROM readings "
       "WHERE seq > ?1 ORDER BY seq LIMIT ?2"},
      {&st_.next_events,
       "SELECT seq, meter, type, ts, payload FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"},
      {&st_.has_reading, "SELECT 1 FROM readings WHERE seq = ?1"},
      {&st_.has_event, "SELECT 1 FROM events WHERE seq = ?1"},
      {&st_.delete_readings, "DELETE FROM readings WHERE seq BETWEEN ?1 AND ?2"},
      {&st_.delete_events, "DELETE FROM events WHERE seq BETWEEN ?1 AND ?2"},
      {&st_.delete_events_evictable,
       "DELETE FROM events WHERE seq BETWEEN ?1 AND ?2 AND type <> 'buffer.evicted'"},
      {&st_.oldest_readings, "SELECT seq FROM readings ORDER BY seq LIMIT ?1"},
      {&st_.oldest_events_evictable,
       "SELECT seq FROM events WHERE type <> 'buffer.evicted' ORDER BY seq LIMIT ?1"},
      {&st_.write_meta,
       "UPDATE meta SET seq_floor = ?1, evicted_readings = ?2, evicted_events = ?3, "
       "next_seq = ?4, readings = ?5, events = ?6 WHERE id = 1"},
      {&st_.page_count, "PRAGMA page_count"},
      {&st_.freelist_count, "PRAGMA freelist_count"},
      {&st_.first_reading, detail::sql::first_reading},
      {&st_.first_event, detail::sql::first_event},
      {&st_.export_readings, detail::sql::export_readings},
      {&st_.put_block,
       "INSERT OR REPLACE INTO ts_blocks (block, min_ts, max_ts) VALUES (?1, ?2, ?3)"},
      {&st_.export_blocks, detail::sql::export_blocks},
      {&st_.prune_blocks, "DELETE FROM ts_blocks WHERE block < ?1"},
      {&st_.export_events, detail::sql::export_events},
      {&st_.put_state,
       "INSERT INTO meter_state (meter, key, value) VALUES (?1, ?2, ?3) "
       "ON CONFLICT (meter, key) DO UPDATE SET value = excluded.value"},
      {&st_.get_state, "SELECT value FROM meter_state WHERE meter = ?1 AND key = ?2"},
  };
  for (const Entry& e : entries) {
    auto s = detail::prepare(db(), e.sql);
    if (!s) return s.error();
    *e.target = std::move(*s);
  }
  return {};
}

// Reads the counters from `meta` and the series dictionary: O(series + 4096), never O(backlog).
Result<void> Store::Impl::load() {
  auto ps = detail::query_int(db(), "PRAGMA page_size", "read page_size");
  if (!ps) return ps.error();
  page_size_ = *ps;

  {
    auto s = detail::prepare(db(),
                             "SELECT seq_floor, evicted_readings, evicted_events, next_seq, "
                             "readings, events, clean, session FROM meta WHERE id = 1");
    if (!s) return s.error();
    sqlite3_stmt* q = s->get();
    const int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
      return rc == SQLITE_DONE ? detail::make_error(errc::corrupt, "meta row missing")
                               : err(rc, "read meta");
    }
    tx_.seq_floor = sqlite3_column_int64(q, 0);
    tx_.evicted_readings = static_cast<std::uint64_t>(sqlite3_column_int64(q, 1));
    tx_.evicted_events = static_cast<std::uint64_t>(sqlite3_column_int64(q, 2));
    tx_.next_seq = sqlite3_column_int64(q, 3);
    tx_.readings = static_cast<std::uint64_t>(sqlite3_column_int64(q, 4));
    tx_.events = static_cast<std::uint64_t>(sqlite3_column_int64(q, 5));
    clean_at_open_ = sqlite3_column_int64(q, 6) != 0;
    session_ = sqlite3_column_int64(q, 7);
  }

  series_.clear();
  if (auto r = detail::load_series(db(), series_); !r) return r;
  tx_.series = series_.size();

  // max(seq) is one descent of the primary key. meta.next_seq is written in the same
  // transactions as the rows, so it is already above them; max() only guards a damaged meta.
  auto max_r = detail::query_int(db(), "SELECT coalesce(max(seq), 0) FROM readings", "max seq");
  if (!max_r) return max_r.error();
  auto max_e = detail::query_int(db(), "SELECT coalesce(max(seq), 0) FROM events", "max seq");
  if (!max_e) return max_e.error();
  tx_.next_seq = std::max({tx_.next_seq, *max_r + 1, *max_e + 1});

  if (*max_r > 0) {
    tx_.open_block.block = *max_r >> detail::ts_block_shift;
    const std::string sql = "SELECT min(ts), max(ts) FROM readings WHERE seq >= " +
                            std::to_string(tx_.open_block.block << detail::ts_block_shift);
    auto s = detail::prepare(db(), sql);
    if (!s) return s.error();
    const int rc = sqlite3_step(s->get());
    if (rc != SQLITE_ROW) return err(rc, "summarise the open block");
    tx_.open_block.min_ts = sqlite3_column_int64(s->get(), 0);
    tx_.open_block.max_ts = sqlite3_column_int64(s->get(), 1);
  }
  return {};
}

// The first write of an open, synced: clears the clean-stop marker for this session, and after
// an unclean stop names the seqs that will never come in a buffer.seq_gap event: every seq from
// the first one no surviving transaction assigned up to the durable reservation floor (assigned
// by transactions a power cut rolled back, or reserved and never used). The event's own seq and
// a fresh reservation are below the new floor before the commit makes any of it visible.
Result<void> Store::Impl::start() {
  const bool gap = !clean_at_open_ && tx_.next_seq <= tx_.seq_floor;
  const std::int64_t session = session_ + 1;
  auto r = in_transaction(
      [&]() -> Result<void> {
        if (gap) {
          const std::int64_t first = tx_.next_seq, last = tx_.seq_floor;
          const std::string payload = R"({"first":)" + std::to_string(first) + R"(,"last":)" +
                                      std::to_string(last) + R"(,"reason":"unclean stop"})";
          if (auto res = insert_event(last + 1, "", detail::seq_gap_type, opts_.now_ms, payload);
              !res) {
            return res;
          }
          tx_.next_seq = last + 2;
        }
        tx_.seq_floor = std::max(tx_.seq_floor, tx_.next_seq - 1 + opts_.seq_reserve);
        sqlite3_stmt* s = nullptr;
        auto p = detail::prepare(db(), "UPDATE meta SET clean = 0, session = ?1 WHERE id = 1");
        if (!p) return p.error();
        s = p->get();
        sqlite3_bind_int64(s, 1, session);
        return step_done(s, "clear the clean-stop marker");
      },
      /*synced=*/true);
  if (!r) return r;
  session_ = session;
  started_ = true;
  return {};
}

// Marks the stop as clean (synced, and only if no later open took the file over), then
// copies the WAL into the database.
Result<void> Store::Impl::close() {
  if (!db_) return {};
  Result<void> r;
  if (started_) {
    r = in_transaction(
        [&]() -> Result<void> {
          auto p = detail::prepare(db(), "UPDATE meta SET clean = 1 WHERE id = 1 AND session = ?1");
          if (!p) return p.error();
          sqlite3_bind_int64(p->get(), 1, session_);
          return step_done(p->get(), "set the clean-stop marker");
        },
        /*synced=*/true);
    if (r) r = checkpoint();
  }
  st_ = Statements{};
  db_.reset();
  return r;
}

Store::Impl::~Impl() { (void)close(); }

// ---------------------------------------------------------------------------------------------
// transactions

Result<void> Store::Impl::step_done(sqlite3_stmt* s, std::string_view what) {
  StmtScope scope(s);
  const int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) return {};
  return err(rc, what);
}

// Not a cached statement: SQLite applies `PRAGMA synchronous = ...` when it compiles it, so
// preparing both settings ahead would leave the store in whichever was prepared last.
Result<void> Store::Impl::set_synchronous(bool full) {
  if (opts_.sync == Sync::full) return {};
  return detail::exec(db(), full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                      "set synchronous");
}

Result<void> Store::Impl::commit_or_rollback(Result<void> r, const TxState& before, bool synced) {
  const bool meta_changed = tx_.next_seq != before.next_seq || tx_.seq_floor != before.seq_floor ||
                            tx_.readings != before.readings || tx_.events != before.events ||
                            tx_.evicted_readings != before.evicted_readings ||
                            tx_.evicted_events != before.evicted_events;
  if (r && meta_changed) r = write_meta();
  if (r) r = step_done(st_.commit.get(), "commit");
  if (!r) {
    if (!sqlite3_get_autocommit(db())) {
      StmtScope scope(st_.rollback.get());
      sqlite3_step(st_.rollback.get());
    }
    series_.truncate(before.series);
    tx_ = before;
    evicted_now_.clear();
  }
  if (synced) (void)set_synchronous(false);
  if (r) drop_evicted_from_flight();
  return r;
}

Result<void> Store::Impl::write_meta() {
  sqlite3_stmt* s = st_.write_meta.get();
  sqlite3_bind_int64(s, 1, tx_.seq_floor);
  sqlite3_bind_int64(s, 2, static_cast<std::int64_t>(tx_.evicted_readings));
  sqlite3_bind_int64(s, 3, static_cast<std::int64_t>(tx_.evicted_events));
  sqlite3_bind_int64(s, 4, tx_.next_seq);
  sqlite3_bind_int64(s, 5, static_cast<std::int64_t>(tx_.readings));
  sqlite3_bind_int64(s, 6, static_cast<std::int64_t>(tx_.events));
  return step_done(s, "update meta");
}

// Raises the durable floor in its own synced transaction, before any seq up to `up_to` is
// assigned: whatever a power cut rolls back afterwards, no seq below the floor is reused.
Result<void> Store::Impl::reserve_seqs(std::int64_t up_to) {
  return in_transaction(
      [&]() -> Result<void> {
        tx_.seq_floor = std::max(tx_.seq_floor, up_to);
        return {};
      },
      /*synced=*/true);
}

// ---------------------------------------------------------------------------------------------
// append

Result<std::int64_t> Store::Impl::intern(const Reading& r) {
  if (const std::int64_t id = series_.find(r.meter, r.quantity, r.unit, r.frozen); id != 0) {
    return id;
  }
  const auto id = static_cast<std::int64_t>(series_.size());
  sqlite3_stmt* s = st_.insert_series.get();
  sqlite3_bind_int64(s, 1, id);
  bind_text(s, 2, r.meter);
  bind_text(s, 3, r.quantity);
  bind_text(s, 4, r.unit);
  bind_text(s, 5, r.frozen);
  if (auto res = step_done(s, "insert series"); !res) return res.error();
  series_.add({r.meter, r.quantity, r.unit, r.frozen});
  tx_.series = series_.size();
  return id;
}

Result<void> Store::Impl::insert_event(std::int64_t seq, std::string_view meter,
                                       std::string_view type, std::int64_t ts,
                                       std::string_view payload) {
  sqlite3_stmt* s = st_.insert_event.get();
  sqlite3_bind_int64(s, 1, seq);
  bind_text(s, 2, meter);
  bind_text(s, 3, type);
  sqlite3_bind_int64(s, 4, ts);
  bind_text(s, 5, payload);
  if (auto r = step_done(s, "insert event"); !r) return r;
  ++tx_.events;
  return {};
}

Result<AppendResult> Store::Impl::append(const Batch& batch) {
  using detail::has_nul;
  for (const Reading& r : batch.readings) {
    if (r.meter.empty() || r.quantity.empty()) {
      return detail::make_error(errc::invalid_argument,
                                "append: a reading needs a meter and a quantity");
    }
    if (has_nul(r.meter) || has_nul(r.quantity) || has_nul(r.unit) || has_nul(r.frozen)) {
      return detail::make_error(errc::invalid_argument, "append: NUL inside a reading's string");
    }
  }
  for (const Event& e : batch.events) {
    if (e.type.empty() || has_nul(e.type) || has_nul(e.meter)) {
      return detail::make_error(errc::invalid_argument,
                                "append: an event needs a type, and no NUL in meter or type");
    }
  }
  for (const StateUpdate& u : batch.state) {
    if (u.meter.empty() || u.key.empty()) {
      return detail::make_error(errc::invalid_argument, "append: state needs a meter and a key");
    }
  }

  AppendResult result;
  const std::size_t rows = batch.readings.size() + batch.events.size();
  if (rows == 0 && batch.state.empty()) return result;
  if (auto r = ensure_started(); !r) return r.error();
  // The batch's rows and up to one new buffer.evicted notice per kind.
  const std::int64_t highest = tx_.next_seq + static_cast<std::int64_t>(rows) + 2 - 1;
  if (highest > tx_.seq_floor) {
    if (auto r = reserve_seqs(highest + opts_.seq_reserve); !r) return r.error();
  }

  auto r = in_transaction([&]() -> Result<void> {
    if (rows > 0) {
      result.first_seq = tx_.next_seq;
      result.last_seq = tx_.next_seq + static_cast<std::int64_t>(rows) - 1;
    }
    sqlite3_stmt* ins = st_.insert_reading.get();
    for (const Reading& rd : batch.readings) {
      auto series = intern(rd);
      if (!series) return series.error();
      sqlite3_bind_int64(ins, 1, tx_.next_seq);
      sqlite3_bind_int64(ins, 2, *series);
      sqlite3_bind_int64(ins, 3, rd.mantissa);
      sqlite3_bind_int(ins, 4, rd.exponent);
      sqlite3_bind_int64(ins, 5, rd.ts_ms);
      sqlite3_bind_int(ins, 6, rd.quality);
      if (rd.freeze_ts_ms) {
        sqlite3_bind_int64(ins, 7, *rd.freeze_ts_ms);
      } else {
        sqlite3_bind_null(ins, 7);
      }
      const int rc = sqlite3_step(ins);
      sqlite3_reset(ins);
      if (rc != SQLITE_DONE) return err(rc, "insert reading");
      if (auto res = add_to_block(tx_.next_seq, rd.ts_ms); !res) return res;
      ++tx_.next_seq;
      ++tx_.readings;
    }
    for (const Event& ev : batch.events) {
      if (auto res = insert_event(tx_.next_seq, ev.meter, ev.type, ev.ts_ms, ev.payload_json);
          !res) {
        return res;
      }
      ++tx_.next_seq;
    }
    for (const StateUpdate& u : batch.state) {
      sqlite3_stmt* s = st_.put_state.get();
      bind_text(s, 1, u.meter);
      bind_text(s, 2, u.key);
      bind_text(s, 3, u.value);
      if (auto res = step_done(s, "put state"); !res) return res;
    }
    tx_.uncheckpointed = true;
    return enforce_caps(batch.now_ms, result);
  });
  if (!r) return r.error();
  // Bounds what a power cut can take in Sync::normal. The batch is committed whatever this
  // does; a failed checkpoint is retried on the next call.
  if (opts_.sync == Sync::normal) (void)checkpoint_if_due(batch.now_ms);
  return result;
}

// ---------------------------------------------------------------------------------------------
// state, stats, checkpoints

Result<void> Store::Impl::put_state(std::string_view meter, std::string_view key,
                                    std::string_view value) {
  if (meter.empty() || key.empty()) {
    return detail::make_error(errc::invalid_argument, "put_state: needs a meter and a key");
  }
  if (auto r = ensure_started(); !r) return r;
  sqlite3_stmt* s = st_.put_state.get();
  bind_text(s, 1, meter);
  bind_text(s, 2, key);
  bind_text(s, 3, value);
  // Autocommit: the statement is its own transaction.
  return step_done(s, "put state");
}

Result<std::optional<std::string>> Store::Impl::get_state(std::string_view meter,
                                                          std::string_view key) {
  sqlite3_stmt* s = st_.get_state.get();
  StmtScope scope(s);
  bind_text(s, 1, meter);
  bind_text(s, 2, key);
  const int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) return std::optional<std::string>(std::string(column_text(s, 0)));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return err(rc, "get state");
}

Result<std::map<std::string, std::string>> Store::Impl::states(std::string_view meter) {
  // Rare (a meter's task state, loaded once): prepared on the spot.
  auto s = detail::prepare(db(), "SELECT key, value FROM meter_state WHERE meter = ?1");
  if (!s) return s.error();
  bind_text(s->get(), 1, meter);
  std::map<std::string, std::string> out;
  for (;;) {
    const int rc = sqlite3_step(s->get());
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return err(rc, "read states");
    out.emplace(std::string(column_text(s->get(), 0)), std::string(column_text(s->get(), 1)));
  }
}

Result<Stats> Store::Impl::stats() {
  Stats s;
  s.readings = tx_.readings;
  s.events = tx_.events;
  s.inflight = inflight_.size();
  s.next_seq = tx_.next_seq;
  s.evicted_readings = tx_.evicted_readings;
  s.evicted_events = tx_.evicted_events;
  {
    StmtScope scope(st_.page_count.get());
    const int rc = sqlite3_step(st_.page_count.get());
    if (rc != SQLITE_ROW) return err(rc, "page_count");
    s.db_bytes =
        static_cast<std::uint64_t>(sqlite3_column_int64(st_.page_count.get(), 0) * page_size_);
  }
  {
    StmtScope scope(st_.freelist_count.get());
    const int rc = sqlite3_step(st_.freelist_count.get());
    if (rc != SQLITE_ROW) return err(rc, "freelist_count");
    s.free_bytes =
        static_cast<std::uint64_t>(sqlite3_column_int64(st_.freelist_count.get(), 0) * page_size_);
  }
  struct stat wal {};
  if (opts_.path != ":memory:" && ::stat((opts_.path + "-wal").c_str(), &wal) == 0) {
    s.wal_bytes = static_cast<std::uint64_t>(wal.st_size);
  }
  std::int64_t best_seq = 0;
  for (sqlite3_stmt* q : {st_.first_reading.get(), st_.first_event.get()}) {
    StmtScope scope(q);
    const int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
      const std::int64_t seq = sqlite3_column_int64(q, 0);
      if (best_seq == 0 || seq < best_seq) {
        best_seq = seq;
        s.oldest_unsent_ts_ms = sqlite3_column_int64(q, 1);
      }
    } else if (rc != SQLITE_DONE) {
      return err(rc, "oldest unsent row");
    }
  }
  return s;
}

Result<void> Store::Impl::checkpoint() {
  int log = 0, done = 0;
  const int rc = sqlite3_wal_checkpoint_v2(db(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
  if (rc != SQLITE_OK) return err(rc, "checkpoint");
  tx_.uncheckpointed = false;
  return {};
}

Result<bool> Store::Impl::checkpoint_if_due(std::int64_t now_ms) {
  if (opts_.checkpoint_interval_ms <= 0 || !tx_.uncheckpointed ||
      now_ms - last_checkpoint_ms_ < opts_.checkpoint_interval_ms) {
    return false;
  }
  // PASSIVE: this connection is the only writer, so it copies every frame; the WAL is synced
  // first, which is what makes the rows durable.
  int log = 0, done = 0;
  const int rc = sqlite3_wal_checkpoint_v2(db(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
  if (rc != SQLITE_OK) return err(rc, "checkpoint");
  last_checkpoint_ms_ = now_ms;
  tx_.uncheckpointed = false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Store: forwards to Impl

Result<Store> Store::open(const Options& options) {
  if (options.path.empty()) {
    return detail::make_error(errc::invalid_argument, "open: empty path");
  }
  if (options.cache_kib == 0) {
    return detail::make_error(errc::invalid_argument, "open: cache_kib must be > 0");
  }
  if (options.seq_reserve < 1) {
    return detail::make_error(errc::invalid_argument, "open: seq_reserve must be >= 1");
  }
  auto impl = std::make_unique<Impl>(options);
  if (auto r = impl->open(); !r) return r.error();
  return Store(std::move(impl));
}

Store::Store(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

Result<void> Store::close() { return impl_->close(); }
Result<AppendResult> Store::append(const Batch& batch) { return impl_->append(batch); }
Result<Unsent> Store::next_unsent(std::size_t limit) { return impl_->next_unsent(limit); }
Result<std::vector<Event>> Store::next_unsent_events(std::size_t limit) {
  return impl_->next_unsent_events(limit);
}
void Store::mark_inflight(std::span<const std::int64_t> seqs) { impl_->mark_inflight(seqs); }
Result<std::uint64_t> Store::ack(std::span<const std::int64_t> seqs) { return impl_->ack(seqs); }
std::size_t Store::requeue_inflight() noexcept { return impl_->requeue_inflight(); }
Result<Stats> Store::stats() { return impl_->stats(); }
Result<std::uint64_t> Store::export_readings(std::string_view meter, std::int64_t from_ms,
                                             std::int64_t to_ms,
                                             const std::function<bool(const Reading&)>& visit) {
  return impl_->export_readings(meter, from_ms, to_ms, visit);
}
Result<std::uint64_t> Store::export_events(std::string_view meter, std::int64_t from_ms,
                                           std::int64_t to_ms,
                                           const std::function<bool(const Event&)>& visit) {
  return impl_->export_events(meter, from_ms, to_ms, visit);
}
Result<void> Store::put_state(std::string_view meter, std::string_view key,
                              std::string_view value) {
  return impl_->put_state(meter, key, value);
}
Result<std::optional<std::string>> Store::get_state(std::string_view meter, std::string_view key) {
  return impl_->get_state(meter, key);
}
Result<std::map<std::string, std::string>> Store::states(std::string_view meter) {
  return impl_->states(meter);
}
Result<void> Store::checkpoint() { return impl_->checkpoint(); }
Result<bool> Store::checkpoint_if_due(std::int64_t now_ms) {
  return impl_->checkpoint_if_due(now_ms);
}
Result<void> Store::check_invariants() { return impl_->check_invariants(); }
int Store::latest_schema_version() noexcept { return detail::latest_version(); }
int Store::schema_version() const noexcept { return impl_->schema_version(); }

}  // namespace meterd::buffer
