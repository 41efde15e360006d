#include "buffer/store.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <sqlite3.h>
#include <sys/stat.h>

#include "buffer/detail/migrations.hpp"
#include "buffer/detail/sqlite.hpp"

namespace meterd::buffer {

using detail::bind_text;
using detail::column_text;
using detail::StmtPtr;
using detail::StmtScope;

namespace {

constexpr std::string_view evicted_type = "buffer.evicted";
constexpr std::int64_t journal_size_limit_bytes = 16 * 1024 * 1024;

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

struct SeriesInfo {
  std::string meter;
  std::string quantity;
  std::string unit;
  std::string frozen;
};

// Strings are checked for NUL before they get here, so '\0' separates them unambiguously.
void make_series_key(std::string& key, std::string_view meter, std::string_view quantity,
                     std::string_view unit, std::string_view frozen) {
  key.clear();
  key.append(meter).push_back('\0');
  key.append(quantity).push_back('\0');
  key.append(unit).push_back('\0');
  key.append(frozen);
}

bool has_nul(std::string_view s) noexcept { return s.find('\0') != std::string_view::npos; }

enum Kind : std::size_t { kind_readings = 0, kind_events = 1 };

std::string evicted_payload(Kind kind, std::uint64_t count, std::int64_t first, std::int64_t last) {
  std::string p = R"({"kind":")";
  p += kind == kind_readings ? "readings" : "events";
  p += R"(","count":)" + std::to_string(count);
  p += R"(,"first_seq":)" + std::to_string(first);
  p += R"(,"last_seq":)" + std::to_string(last) + "}";
  return p;
}

}  // namespace

std::vector<std::int64_t> Unsent::seqs() const {
  std::vector<std::int64_t> out;
  out.reserve(size());
  for (const Reading& r : readings) out.push_back(r.seq);
  for (const Event& e : events) out.push_back(e.seq);
  std::sort(out.begin(), out.end());
  return out;
}

class Store::Impl {
 public:
  explicit Impl(Options options) : opts_(std::move(options)) {}

  Result<void> open();
  Result<AppendResult> append(const Batch& batch);
  Result<Unsent> next_unsent(std::size_t limit);
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
  Result<void> checkpoint();
  int schema_version() const noexcept { return schema_version_; }

 private:
  // A buffer.evicted event still being extended: nobody has seen it yet, so it may change.
  struct PendingNotice {
    std::int64_t event_seq = 0;  // 0: none; the next eviction inserts a new event
    std::uint64_t count = 0;
    std::int64_t first = 0;
    std::int64_t last = 0;
  };

  // Time summary of the ts_blocks block that is still filling (the block of the highest
  // reading seq). Written to ts_blocks when a reading lands in a later block, in the same
  // transaction; rebuilt from its (at most 4096) rows at open.
  struct OpenBlock {
    std::int64_t block = -1;  // -1: none
    std::int64_t min_ts = 0;
    std::int64_t max_ts = 0;
  };

  // In-memory mirror of what a transaction may change, restored when it rolls back.
  struct Snapshot {
    std::int64_t next_seq;
    std::int64_t seq_floor;
    std::uint64_t readings;
    std::uint64_t events;
    std::uint64_t evicted_readings;
    std::uint64_t evicted_events;
    std::size_t series;
    std::array<PendingNotice, 2> pending;
    OpenBlock open_block;
    std::int64_t pruned_below;
  };

  sqlite3* db() const noexcept { return db_.get(); }
  Error err(int rc, std::string_view what) const { return detail::sqlite_error(db(), rc, what); }
  Result<void> prepare_all();
  Result<void> load();
  Result<void> step_done(sqlite3_stmt* s, std::string_view what);

  Snapshot snapshot() const;
  void restore(const Snapshot& s);
  template <typename Body>
  Result<void> in_transaction(Body&& body);

  Result<std::int64_t> intern(const Reading& r);
  Result<void> insert_event(std::int64_t seq, std::string_view meter, std::string_view type,
                            std::int64_t ts, std::string_view payload);
  Result<void> enforce_caps(std::int64_t now_ms, AppendResult& result);
  Result<std::uint64_t> evict_readings(std::uint64_t n, std::int64_t now_ms);
  Result<std::uint64_t> evict_events(std::uint64_t n, std::int64_t now_ms);
  Result<std::uint64_t> evict(Kind kind, std::uint64_t n, std::int64_t now_ms);
  Result<void> note_eviction(Kind kind, std::uint64_t n, std::int64_t first, std::int64_t last,
                             std::int64_t now_ms);
  Result<void> write_meta();
  Result<void> add_to_block(std::int64_t seq, std::int64_t ts);
  Result<void> prune_blocks();
  Result<std::uint64_t> used_bytes();
  void forget_notice_if(std::int64_t first, std::int64_t last) noexcept;
  Result<Reading> row_to_reading(sqlite3_stmt* s) const;
  static Event row_to_event(sqlite3_stmt* s);

  Options opts_;
  detail::DbPtr db_;
  int schema_version_ = 0;
  std::int64_t page_size_ = 4096;

  struct Statements {
    StmtPtr begin, commit, rollback;
    StmtPtr insert_reading, insert_event, insert_series, update_event_payload;
    StmtPtr next_readings, next_events;
    StmtPtr delete_readings, delete_events, delete_events_evictable;
    StmtPtr oldest_readings, oldest_events_evictable;
    StmtPtr write_meta;
    StmtPtr page_count, freelist_count;
    StmtPtr first_reading, first_event;
    StmtPtr export_readings, export_events;
    StmtPtr put_block, export_blocks, prune_blocks, min_reading;
    StmtPtr put_state, get_state;
  } st_;

  // Series dictionary: id -> strings (index 0 unused) and strings -> id.
  std::vector<SeriesInfo> series_;
  std::unordered_map<std::string, std::int64_t, StringHash, std::equal_to<>> series_ids_;
  std::string key_buf_;

  std::int64_t next_seq_ = 1;   // the next seq to assign
  std::int64_t seq_floor_ = 0;  // persisted: no seq <= it is assigned again
  std::uint64_t readings_ = 0;
  std::uint64_t events_ = 0;
  std::uint64_t evicted_readings_ = 0;
  std::uint64_t evicted_events_ = 0;
  std::array<PendingNotice, 2> pending_{};
  OpenBlock open_block_;
  std::int64_t pruned_below_ = 0;  // ts_blocks holds no block below this

  // In flight: seqs handed to the uplink. Every stored row with seq <= cursor_ is in flight, so
  // next_unsent() starts its primary-key walk there.
  std::unordered_set<std::int64_t> inflight_;
  std::int64_t cursor_ = 0;
  // What the last next_unsent() returned, ascending. Everything between cursor_ and its last
  // seq is either in it or in flight, so once all of it is marked the cursor jumps past it.
  std::vector<std::int64_t> handed_;
};

// ---------------------------------------------------------------------------------------------
// open

Result<void> Store::Impl::open() {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(opts_.path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
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
  pragmas += "PRAGMA journal_size_limit = " + std::to_string(journal_size_limit_bytes) + ";";
  pragmas += "PRAGMA temp_store = FILE;";
  if (opts_.max_page_count > 0) {
    pragmas += "PRAGMA max_page_count = " + std::to_string(opts_.max_page_count) + ";";
  }
  if (auto r = detail::exec(db(), pragmas.c_str(), "set pragmas on " + opts_.path); !r) return r;

  auto version = detail::migrate(db(), detail::latest_version());
  if (!version) return version.error();
  schema_version_ = *version;

  if (auto r = prepare_all(); !r) return r;
  return load();
}

Result<void> Store::Impl::prepare_all() {
  struct Entry {
    StmtPtr* target;
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
      {&st_.delete_readings, "DELETE FROM readings WHERE seq BETWEEN ?1 AND ?2"},
      {&st_.delete_events, "DELETE FROM events WHERE seq BETWEEN ?1 AND ?2"},
      {&st_.delete_events_evictable,
       "DELETE FROM events WHERE seq BETWEEN ?1 AND ?2 AND type <> 'buffer.evicted'"},
      {&st_.oldest_readings, "SELECT seq FROM readings ORDER BY seq LIMIT ?1"},
      {&st_.oldest_events_evictable,
       "SELECT seq FROM events WHERE type <> 'buffer.evicted' ORDER BY seq LIMIT ?1"},
      {&st_.write_meta,
       "UPDATE meta SET seq_floor = ?1, evicted_readings = ?2, evicted_events = ?3 "
       "WHERE id = 1"},
      {&st_.page_count, "PRAGMA page_count"},
      {&st_.freelist_count, "PRAGMA freelist_count"},
      {&st_.first_reading, "SELECT seq, ts FROM readings ORDER BY seq LIMIT 1"},
      {&st_.first_event, "SELECT seq, ts FROM events ORDER BY seq LIMIT 1"},
      {&st_.export_readings,
       "SELECT seq, series, mantissa, exponent, ts, quality, freeze_ts FROM readings "
       "WHERE seq BETWEEN ?4 AND ?5 AND ts >= ?2 AND ts < ?3 "
       "AND series IN (SELECT id FROM series WHERE meter = ?1) ORDER BY seq"},
      {&st_.put_block,
       "INSERT OR REPLACE INTO ts_blocks (block, min_ts, max_ts) VALUES (?1, ?2, ?3)"},
      {&st_.export_blocks,
       "SELECT block FROM ts_blocks WHERE max_ts >= ?1 AND min_ts < ?2 ORDER BY block"},
      {&st_.prune_blocks, "DELETE FROM ts_blocks WHERE block < ?1"},
      {&st_.min_reading, "SELECT seq FROM readings ORDER BY seq LIMIT 1"},
      {&st_.export_events,
       "SELECT seq, meter, type, ts, payload FROM events "
       "WHERE meter = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY seq"},
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

Result<void> Store::Impl::load() {
  auto ps = detail::query_int(db(), "PRAGMA page_size", "read page_size");
  if (!ps) return ps.error();
  page_size_ = *ps;

  {
    auto s = detail::prepare(
        db(), "SELECT seq_floor, evicted_readings, evicted_events FROM meta WHERE id = 1");
    if (!s) return s.error();
    const int rc = sqlite3_step(s->get());
    if (rc != SQLITE_ROW) {
      return rc == SQLITE_DONE ? detail::make_error(errc::corrupt, "meta row missing")
                               : err(rc, "read meta");
    }
    seq_floor_ = sqlite3_column_int64(s->get(), 0);
    evicted_readings_ = static_cast<std::uint64_t>(sqlite3_column_int64(s->get(), 1));
    evicted_events_ = static_cast<std::uint64_t>(sqlite3_column_int64(s->get(), 2));
  }

  series_.assign(1, SeriesInfo{});
  series_ids_.clear();
  {
    auto s = detail::prepare(db(),
                             "SELECT id, meter, quantity, unit, frozen FROM series "
                             "ORDER BY id");
    if (!s) return s.error();
    int rc;
    while ((rc = sqlite3_step(s->get())) == SQLITE_ROW) {
      const auto id = sqlite3_column_int64(s->get(), 0);
      if (id != static_cast<std::int64_t>(series_.size())) {
        return detail::make_error(errc::corrupt, "series ids are not dense");
      }
      SeriesInfo info{std::string(column_text(s->get(), 1)), std::string(column_text(s->get(), 2)),
                      std::string(column_text(s->get(), 3)), std::string(column_text(s->get(), 4))};
      make_series_key(key_buf_, info.meter, info.quantity, info.unit, info.frozen);
      series_ids_.emplace(key_buf_, id);
      series_.push_back(std::move(info));
    }
    if (rc != SQLITE_DONE) return err(rc, "read series");
  }

  auto max_r = detail::query_int(db(), "SELECT coalesce(max(seq), 0) FROM readings", "max seq");
  if (!max_r) return max_r.error();
  auto max_e = detail::query_int(db(), "SELECT coalesce(max(seq), 0) FROM events", "max seq");
  if (!max_e) return max_e.error();
  // Every seq ever assigned is either still stored or was deleted by a transaction that raised
  // seq_floor past it, so this never hands out a seq twice.
  next_seq_ = std::max({seq_floor_, *max_r, *max_e}) + 1;

  auto nr = detail::query_int(db(), "SELECT count(*) FROM readings", "count readings");
  if (!nr) return nr.error();
  auto ne = detail::query_int(db(), "SELECT count(*) FROM events", "count events");
  if (!ne) return ne.error();
  readings_ = static_cast<std::uint64_t>(*nr);
  events_ = static_cast<std::uint64_t>(*ne);

  if (*max_r > 0) {
    open_block_.block = *max_r >> detail::ts_block_shift;
    const std::string sql = "SELECT min(ts), max(ts) FROM readings WHERE seq >= " +
                            std::to_string(open_block_.block << detail::ts_block_shift);
    auto s = detail::prepare(db(), sql);
    if (!s) return s.error();
    const int rc = sqlite3_step(s->get());
    if (rc != SQLITE_ROW) return err(rc, "summarise the open block");
    open_block_.min_ts = sqlite3_column_int64(s->get(), 0);
    open_block_.max_ts = sqlite3_column_int64(s->get(), 1);
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// transactions

Result<void> Store::Impl::step_done(sqlite3_stmt* s, std::string_view what) {
  StmtScope scope(s);
  const int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) return {};
  return err(rc, what);
}

Store::Impl::Snapshot Store::Impl::snapshot() const {
  return Snapshot{next_seq_,       seq_floor_,     readings_, events_,     evicted_readings_,
                  evicted_events_, series_.size(), pending_,  open_block_, pruned_below_};
}

void Store::Impl::restore(const Snapshot& s) {
  next_seq_ = s.next_seq;
  seq_floor_ = s.seq_floor;
  readings_ = s.readings;
  events_ = s.events;
  evicted_readings_ = s.evicted_readings;
  evicted_events_ = s.evicted_events;
  pending_ = s.pending;
  open_block_ = s.open_block;
  pruned_below_ = s.pruned_below;
  for (std::size_t id = s.series; id < series_.size(); ++id) {
    const SeriesInfo& info = series_[id];
    make_series_key(key_buf_, info.meter, info.quantity, info.unit, info.frozen);
    series_ids_.erase(key_buf_);
  }
  series_.resize(s.series);
}

// Runs `body` inside BEGIN IMMEDIATE .. COMMIT. On any failure (SQLITE_FULL and I/O errors
// included, which SQLite may already have rolled back itself) the transaction is rolled back and
// the in-memory state restored, so the store is exactly as before the call.
template <typename Body>
Result<void> Store::Impl::in_transaction(Body&& body) {
  const Snapshot snap = snapshot();
  if (auto r = step_done(st_.begin.get(), "begin transaction"); !r) return r;
  Result<void> r = body();
  if (r) r = step_done(st_.commit.get(), "commit");
  if (!r) {
    if (!sqlite3_get_autocommit(db())) {
      StmtScope scope(st_.rollback.get());
      sqlite3_step(st_.rollback.get());
    }
    restore(snap);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// append

Result<std::int64_t> Store::Impl::intern(const Reading& r) {
  make_series_key(key_buf_, r.meter, r.quantity, r.unit, r.frozen);
  if (auto it = series_ids_.find(std::string_view(key_buf_)); it != series_ids_.end()) {
    return it->second;
  }
  const auto id = static_cast<std::int64_t>(series_.size());
  sqlite3_stmt* s = st_.insert_series.get();
  sqlite3_bind_int64(s, 1, id);
  bind_text(s, 2, r.meter);
  bind_text(s, 3, r.quantity);
  bind_text(s, 4, r.unit);
  bind_text(s, 5, r.frozen);
  if (auto res = step_done(s, "insert series"); !res) return res.error();
  series_.push_back(SeriesInfo{r.meter, r.quantity, r.unit, r.frozen});
  series_ids_.emplace(key_buf_, id);
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
  ++events_;
  return {};
}

Result<AppendResult> Store::Impl::append(const Batch& batch) {
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

  auto r = in_transaction([&]() -> Result<void> {
    if (rows > 0) {
      result.first_seq = next_seq_;
      result.last_seq = next_seq_ + static_cast<std::int64_t>(rows) - 1;
    }
    sqlite3_stmt* ins = st_.insert_reading.get();
    for (const Reading& rd : batch.readings) {
      auto series = intern(rd);
      if (!series) return series.error();
      sqlite3_bind_int64(ins, 1, next_seq_);
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
      if (auto res = add_to_block(next_seq_, rd.ts_ms); !res) return res;
      ++next_seq_;
      ++readings_;
    }
    for (const Event& ev : batch.events) {
      if (auto res = insert_event(next_seq_, ev.meter, ev.type, ev.ts_ms, ev.payload_json); !res) {
        return res;
      }
      ++next_seq_;
    }
    for (const StateUpdate& u : batch.state) {
      sqlite3_stmt* s = st_.put_state.get();
      bind_text(s, 1, u.meter);
      bind_text(s, 2, u.key);
      bind_text(s, 3, u.value);
      if (auto res = step_done(s, "put state"); !res) return res;
    }
    return enforce_caps(batch.now_ms, result);
  });
  if (!r) return r.error();
  return result;
}

// ---------------------------------------------------------------------------------------------
// eviction

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
  if (opts_.max_readings > 0 && readings_ > opts_.max_readings) {
    auto n = evict_readings(readings_ - opts_.max_readings, now_ms);
    if (!n) return n.error();
    result.evicted_readings += *n;
  }
  if (opts_.max_bytes > 0) {
    // Estimate rows per byte from the store itself; a few rounds absorb the estimate's error.
    for (int round = 0; round < 8; ++round) {
      auto used = used_bytes();
      if (!used) return used.error();
      if (*used <= opts_.max_bytes) break;
      const std::uint64_t rows = std::max<std::uint64_t>(readings_ + events_, 1);
      const std::uint64_t per_row = std::max<std::uint64_t>(*used / rows, 1);
      const std::uint64_t n = (*used - opts_.max_bytes + per_row - 1) / per_row;
      if (readings_ > 0) {
        auto done = evict_readings(std::min(n, readings_), now_ms);
        if (!done) return done.error();
        result.evicted_readings += *done;
      } else {
        auto done = evict_events(std::min(n, events_), now_ms);
        if (!done) return done.error();
        result.evicted_events += *done;
        if (*done == 0) break;  // only eviction notices are left
      }
    }
  }
  if (opts_.max_events > 0 && events_ > opts_.max_events) {
    auto n = evict_events(events_ - opts_.max_events, now_ms);
    if (!n) return n.error();
    result.evicted_events += *n;
  }
  if (result.evicted_readings > 0) {
    if (auto r = prune_blocks(); !r) return r;
  }
  if (result.evicted_readings + result.evicted_events > 0) return write_meta();
  return {};
}

// Deletes the n lowest-seq readings: a walk of the primary key over exactly the rows deleted.
Result<std::uint64_t> Store::Impl::evict_readings(std::uint64_t n, std::int64_t now_ms) {
  return evict(kind_readings, n, now_ms);
}

// Deletes the n lowest-seq events, sparing buffer.evicted notices (they are what tells the
// head-end about the loss).
Result<std::uint64_t> Store::Impl::evict_events(std::uint64_t n, std::int64_t now_ms) {
  return evict(kind_events, n, now_ms);
}

Result<std::uint64_t> Store::Impl::evict(Kind kind, std::uint64_t n, std::int64_t now_ms) {
  if (n == 0) return std::uint64_t{0};
  const bool readings = kind == kind_readings;
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
    if (rc != SQLITE_DONE)
      return err(rc, readings ? "find readings to evict" : "find events to evict");
  }
  if (first == 0) return std::uint64_t{0};
  sqlite3_stmt* d = readings ? st_.delete_readings.get() : st_.delete_events_evictable.get();
  sqlite3_bind_int64(d, 1, first);
  sqlite3_bind_int64(d, 2, last);
  if (auto r = step_done(d, readings ? "evict readings" : "evict events"); !r) return r.error();
  const auto deleted = static_cast<std::uint64_t>(sqlite3_changes64(db()));
  (readings ? readings_ : events_) -= deleted;
  (readings ? evicted_readings_ : evicted_events_) += deleted;
  if (auto r = note_eviction(kind, deleted, first, last, now_ms); !r) return r.error();
  return deleted;
}

// Turns an eviction into a buffer.evicted event. Successive evictions extend one notice as
// long as nobody has read it yet: the oldest rows go first, so the ranges are adjacent and
// "every seq of this kind in [first_seq, last_seq] you have not received is lost" stays exact.
Result<void> Store::Impl::note_eviction(Kind kind, std::uint64_t n, std::int64_t first,
                                        std::int64_t last, std::int64_t now_ms) {
  PendingNotice& p = pending_[kind];
  if (p.event_seq != 0) {
    const std::string payload = evicted_payload(kind, p.count + n, p.first, last);
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
  const std::int64_t seq = next_seq_;
  if (auto r = insert_event(seq, "", evicted_type, now_ms, evicted_payload(kind, n, first, last));
      !r) {
    return r;
  }
  ++next_seq_;
  p = PendingNotice{seq, n, first, last};
  return {};
}

Result<void> Store::Impl::add_to_block(std::int64_t seq, std::int64_t ts) {
  const std::int64_t block = seq >> detail::ts_block_shift;
  if (block == open_block_.block) {
    open_block_.min_ts = std::min(open_block_.min_ts, ts);
    open_block_.max_ts = std::max(open_block_.max_ts, ts);
    return {};
  }
  if (open_block_.block >= 0) {
    sqlite3_stmt* s = st_.put_block.get();
    sqlite3_bind_int64(s, 1, open_block_.block);
    sqlite3_bind_int64(s, 2, open_block_.min_ts);
    sqlite3_bind_int64(s, 3, open_block_.max_ts);
    if (auto r = step_done(s, "close ts block"); !r) return r;
  }
  open_block_ = OpenBlock{block, ts, ts};
  return {};
}

// Drops the summaries of blocks that no longer hold a reading. Cheap when nothing changed.
Result<void> Store::Impl::prune_blocks() {
  std::int64_t below = std::numeric_limits<std::int64_t>::max();  // no readings: all blocks
  {
    sqlite3_stmt* s = st_.min_reading.get();
    StmtScope scope(s);
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      below = sqlite3_column_int64(s, 0) >> detail::ts_block_shift;
    } else if (rc != SQLITE_DONE) {
      return err(rc, "first reading");
    }
  }
  if (below <= pruned_below_) return {};
  sqlite3_stmt* d = st_.prune_blocks.get();
  sqlite3_bind_int64(d, 1, below);
  if (auto r = step_done(d, "prune ts blocks"); !r) return r;
  pruned_below_ = below == std::numeric_limits<std::int64_t>::max() ? 0 : below;
  return {};
}

Result<void> Store::Impl::write_meta() {
  seq_floor_ = std::max(seq_floor_, next_seq_ - 1);
  sqlite3_stmt* s = st_.write_meta.get();
  sqlite3_bind_int64(s, 1, seq_floor_);
  sqlite3_bind_int64(s, 2, static_cast<std::int64_t>(evicted_readings_));
  sqlite3_bind_int64(s, 3, static_cast<std::int64_t>(evicted_events_));
  return step_done(s, "update meta");
}

void Store::Impl::forget_notice_if(std::int64_t first, std::int64_t last) noexcept {
  for (PendingNotice& p : pending_) {
    if (p.event_seq != 0 && p.event_seq >= first && p.event_seq <= last) p = PendingNotice{};
  }
}

// ---------------------------------------------------------------------------------------------
// forwarding

Result<Reading> Store::Impl::row_to_reading(sqlite3_stmt* s) const {
  const std::int64_t series = sqlite3_column_int64(s, 1);
  if (series <= 0 || series >= static_cast<std::int64_t>(series_.size())) {
    return detail::make_error(errc::corrupt,
                              "reading refers to unknown series " + std::to_string(series));
  }
  const SeriesInfo& info = series_[static_cast<std::size_t>(series)];
  Reading r;
  r.seq = sqlite3_column_int64(s, 0);
  r.meter = info.meter;
  r.quantity = info.quantity;
  r.mantissa = sqlite3_column_int64(s, 2);
  r.exponent = sqlite3_column_int(s, 3);
  r.unit = info.unit;
  r.ts_ms = sqlite3_column_int64(s, 4);
  r.quality = sqlite3_column_int(s, 5);
  r.frozen = info.frozen;
  if (sqlite3_column_type(s, 6) != SQLITE_NULL) r.freeze_ts_ms = sqlite3_column_int64(s, 6);
  return r;
}

Event Store::Impl::row_to_event(sqlite3_stmt* s) {
  Event e;
  e.seq = sqlite3_column_int64(s, 0);
  e.meter = column_text(s, 1);
  e.type = column_text(s, 2);
  e.ts_ms = sqlite3_column_int64(s, 3);
  e.payload_json = column_text(s, 4);
  return e;
}

Result<Unsent> Store::Impl::next_unsent(std::size_t limit) {
  Unsent out;
  if (limit == 0) return out;
  constexpr auto none = std::numeric_limits<std::int64_t>::max();
  std::int64_t from = cursor_;
  bool prefix = true;  // every row walked so far in this call was in flight
  std::vector<Reading> rs;
  std::vector<Event> es;
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
    if (events_ > 0) {
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
        } else {
          forget_notice_if(seq, seq);  // once read out, a notice never changes again
          out.events.push_back(std::move(es[j]));
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
  handed_ = out.seqs();
  return out;
}

void Store::Impl::mark_inflight(std::span<const std::int64_t> seqs) {
  for (const std::int64_t seq : seqs) {
    inflight_.insert(seq);
    forget_notice_if(seq, seq);
  }
  if (!handed_.empty() && std::all_of(handed_.begin(), handed_.end(), [&](std::int64_t seq) {
        return inflight_.count(seq) != 0;
      })) {
    cursor_ = std::max(cursor_, handed_.back());
    handed_.clear();
  }
}

Result<std::uint64_t> Store::Impl::ack(std::span<const std::int64_t> seqs) {
  if (seqs.empty()) return std::uint64_t{0};
  std::vector<std::int64_t> v(seqs.begin(), seqs.end());
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());

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
      readings_ -= dr;
      deleted += dr;
      deleted_readings += dr;
      if (events_ > 0) {
        sqlite3_stmt* de = st_.delete_events.get();
        sqlite3_bind_int64(de, 1, v[i]);
        sqlite3_bind_int64(de, 2, v[j]);
        if (auto res = step_done(de, "ack events"); !res) return res;
        const auto dev = static_cast<std::uint64_t>(sqlite3_changes64(db()));
        events_ -= dev;
        deleted += dev;
      }
      i = j + 1;
    }
    if (deleted_readings > 0) {
      if (auto res = prune_blocks(); !res) return res;
    }
    if (deleted > 0 && seq_floor_ < next_seq_ - 1) return write_meta();
    return {};
  });
  if (!r) return r.error();
  for (const std::int64_t seq : v) {
    inflight_.erase(seq);
    forget_notice_if(seq, seq);
  }
  return deleted;
}

std::size_t Store::Impl::requeue_inflight() noexcept {
  const std::size_t n = inflight_.size();
  inflight_.clear();
  handed_.clear();
  cursor_ = 0;
  return n;
}

// ---------------------------------------------------------------------------------------------
// inspection

Result<Stats> Store::Impl::stats() {
  Stats s;
  s.readings = readings_;
  s.events = events_;
  s.inflight = inflight_.size();
  s.next_seq = next_seq_;
  s.evicted_readings = evicted_readings_;
  s.evicted_events = evicted_events_;
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
  if (open_block_.block >= 0 && open_block_.max_ts >= from_ms && open_block_.min_ts < to_ms) {
    blocks.push_back(open_block_.block);
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

Result<void> Store::Impl::put_state(std::string_view meter, std::string_view key,
                                    std::string_view value) {
  if (meter.empty() || key.empty()) {
    return detail::make_error(errc::invalid_argument, "put_state: needs a meter and a key");
  }
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

Result<void> Store::Impl::checkpoint() {
  int log = 0, done = 0;
  const int rc = sqlite3_wal_checkpoint_v2(db(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
  if (rc != SQLITE_OK) return err(rc, "checkpoint");
  return {};
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
  auto impl = std::make_unique<Impl>(options);
  if (auto r = impl->open(); !r) return r.error();
  return Store(std::move(impl));
}

Store::Store(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

Result<AppendResult> Store::append(const Batch& batch) { return impl_->append(batch); }
Result<Unsent> Store::next_unsent(std::size_t limit) { return impl_->next_unsent(limit); }
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
Result<void> Store::checkpoint() { return impl_->checkpoint(); }
int Store::latest_schema_version() noexcept { return detail::latest_version(); }
int Store::schema_version() const noexcept { return impl_->schema_version(); }

}  // namespace meterd::buffer
