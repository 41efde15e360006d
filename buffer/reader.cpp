// Reader: a read-only connection to a buffer file (buffer/reader.hpp). It opens with
// SQLITE_OPEN_READONLY, so SQLite itself refuses any write, and shares the Store's SQL and
// export walk (buffer/detail/store_impl.hpp): the two can only agree.
//
// A running Store keeps the ts_blocks summary of the block still filling in memory; a Reader
// recomputes it from the readings (at most 4096 rows) inside the same read transaction as the
// export, so a Store appending meanwhile can neither hide nor duplicate a row.
#include "buffer/reader.hpp"

#include <algorithm>
#include <utility>

#include <sqlite3.h>
#include <sys/stat.h>

#include "buffer/detail/migrations.hpp"
#include "buffer/detail/sqlite.hpp"
#include "buffer/detail/store_impl.hpp"

namespace meterd::buffer {

using detail::StmtScope;

class Reader::Impl {
 public:
  explicit Impl(std::string path) : path_(std::move(path)) {}

  Result<void> open();
  Result<std::vector<std::string>> meters();
  Result<std::uint64_t> export_readings(std::string_view meter, std::int64_t from_ms,
                                        std::int64_t to_ms,
                                        const std::function<bool(const Reading&)>& visit);
  Result<std::uint64_t> export_events(std::string_view meter, std::int64_t from_ms,
                                      std::int64_t to_ms,
                                      const std::function<bool(const Event&)>& visit);
  Result<Stats> stats();

 private:
  sqlite3* db() const noexcept { return db_.get(); }
  Error err(int rc, std::string_view what) const { return detail::sqlite_error(db(), rc, what); }
  Result<detail::BlockSpan> open_block();

  // One snapshot for everything a call reads: BEGIN .. COMMIT (a read transaction only; on a
  // read-only connection SQLite could not write even if asked).
  class Snapshot {
   public:
    explicit Snapshot(sqlite3* db) : db_(db) {}
    Result<void> begin() {
      if (auto r = detail::exec(db_, "BEGIN", "begin read"); !r) return r;
      active_ = true;
      return {};
    }
    ~Snapshot() {
      if (active_) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    }
    Snapshot(const Snapshot&) = delete;
    Snapshot& operator=(const Snapshot&) = delete;

   private:
    sqlite3* db_;
    bool active_ = false;
  };

  std::string path_;
  detail::DbPtr db_;
  detail::SeriesDict series_;
  detail::StmtPtr export_blocks_, export_readings_, export_events_, first_reading_, first_event_;
};

Result<void> Reader::Impl::open() {
  sqlite3* raw = nullptr;
  // No SQLITE_OPEN_CREATE: a mistyped --data-dir must not leave an empty database behind.
  const int rc =
      sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  db_.reset(raw);
  if (rc != SQLITE_OK) return err(rc, "open " + path_);
  sqlite3_extended_result_codes(db(), 1);
  sqlite3_busy_timeout(db(), 2000);

  auto version = detail::check_schema(db());
  if (!version) return version.error();
  if (*version == 0) {
    return detail::make_error(errc::not_a_buffer, path_ + " is an empty database, not a buffer");
  }
  if (*version < detail::latest_version()) {
    // A Reader cannot migrate; meterd does it at its next start.
    return detail::make_error(errc::not_a_buffer, path_ + " has buffer schema version " +
                                                      std::to_string(*version) +
                                                      ", older than this program reads (" +
                                                      std::to_string(detail::latest_version()) +
                                                      "); start meterd once to upgrade it");
  }

  struct Entry {
    detail::StmtPtr* target;
    const char* sql;
  };
  const Entry entries[] = {
      {&export_blocks_, detail::sql::export_blocks},
      {&export_readings_, detail::sql::export_readings},
      {&export_events_, detail::sql::export_events},
      {&first_reading_, detail::sql::first_reading},
      {&first_event_, detail::sql::first_event},
  };
  for (const Entry& e : entries) {
    auto s = detail::prepare(db(), e.sql);
    if (!s) return s.error();
    *e.target = std::move(*s);
  }
  return detail::load_series(db(), series_);
}

// The block of the highest reading, summarised as Store::Impl::load() does at open.
Result<detail::BlockSpan> Reader::Impl::open_block() {
  detail::BlockSpan open;
  auto max_r = detail::query_int(db(), "SELECT coalesce(max(seq), 0) FROM readings", "max seq");
  if (!max_r) return max_r.error();
  if (*max_r == 0) return open;
  open.block = *max_r >> detail::ts_block_shift;
  auto s = detail::prepare(db(), "SELECT min(ts), max(ts) FROM readings WHERE seq >= ?1");
  if (!s) return s.error();
  sqlite3_bind_int64(s->get(), 1, open.block << detail::ts_block_shift);
  const int rc = sqlite3_step(s->get());
  if (rc != SQLITE_ROW) return err(rc, "summarise the open block");
  open.min_ts = sqlite3_column_int64(s->get(), 0);
  open.max_ts = sqlite3_column_int64(s->get(), 1);
  return open;
}

Result<std::vector<std::string>> Reader::Impl::meters() {
  Snapshot snap(db());
  if (auto r = snap.begin(); !r) return r.error();
  auto s = detail::prepare(db(),
                           "SELECT meter FROM series UNION SELECT meter FROM events "
                           "WHERE meter <> '' ORDER BY 1");
  if (!s) return s.error();
  std::vector<std::string> out;
  int rc;
  while ((rc = sqlite3_step(s->get())) == SQLITE_ROW) {
    out.emplace_back(detail::column_text(s->get(), 0));
  }
  if (rc != SQLITE_DONE) return err(rc, "list meters");
  return out;
}

Result<std::uint64_t> Reader::Impl::export_readings(
    std::string_view meter, std::int64_t from_ms, std::int64_t to_ms,
    const std::function<bool(const Reading&)>& visit) {
  if (from_ms >= to_ms) return std::uint64_t{0};
  Snapshot snap(db());
  if (auto r = snap.begin(); !r) return r.error();
  // The store may have added series since the last call.
  if (auto r = detail::load_series(db(), series_); !r) return r.error();
  auto open = open_block();
  if (!open) return open.error();
  return detail::export_readings_walk(db(), export_blocks_.get(), export_readings_.get(), series_,
                                      *open, meter, from_ms, to_ms, visit);
}

Result<std::uint64_t> Reader::Impl::export_events(std::string_view meter, std::int64_t from_ms,
                                                  std::int64_t to_ms,
                                                  const std::function<bool(const Event&)>& visit) {
  return detail::export_events_walk(db(), export_events_.get(), meter, from_ms, to_ms, visit);
}

Result<Stats> Reader::Impl::stats() {
  Snapshot snap(db());
  if (auto r = snap.begin(); !r) return r.error();
  Stats st;
  {
    auto s = detail::prepare(db(),
                             "SELECT evicted_readings, evicted_events, next_seq, readings, events "
                             "FROM meta WHERE id = 1");
    if (!s) return s.error();
    const int rc = sqlite3_step(s->get());
    if (rc != SQLITE_ROW) {
      return rc == SQLITE_DONE ? detail::make_error(errc::corrupt, "meta row missing")
                               : err(rc, "read meta");
    }
    st.evicted_readings = static_cast<std::uint64_t>(sqlite3_column_int64(s->get(), 0));
    st.evicted_events = static_cast<std::uint64_t>(sqlite3_column_int64(s->get(), 1));
    st.next_seq = sqlite3_column_int64(s->get(), 2);
    st.readings = static_cast<std::uint64_t>(sqlite3_column_int64(s->get(), 3));
    st.events = static_cast<std::uint64_t>(sqlite3_column_int64(s->get(), 4));
  }
  // In flight lives in the daemon's memory only; a Reader sees none.
  auto pages = detail::query_int(db(), "PRAGMA page_count", "page_count");
  if (!pages) return pages.error();
  auto free_pages = detail::query_int(db(), "PRAGMA freelist_count", "freelist_count");
  if (!free_pages) return free_pages.error();
  auto page_size = detail::query_int(db(), "PRAGMA page_size", "page_size");
  if (!page_size) return page_size.error();
  st.db_bytes = static_cast<std::uint64_t>(*pages * *page_size);
  st.free_bytes = static_cast<std::uint64_t>(*free_pages * *page_size);
  struct stat wal {};
  if (::stat((path_ + "-wal").c_str(), &wal) == 0)
    st.wal_bytes = static_cast<std::uint64_t>(wal.st_size);

  std::int64_t best_seq = 0;
  for (sqlite3_stmt* q : {first_reading_.get(), first_event_.get()}) {
    StmtScope scope(q);
    const int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
      const std::int64_t seq = sqlite3_column_int64(q, 0);
      if (best_seq == 0 || seq < best_seq) {
        best_seq = seq;
        st.oldest_unsent_ts_ms = sqlite3_column_int64(q, 1);
      }
      st.next_seq = std::max(st.next_seq, seq + 1);
    } else if (rc != SQLITE_DONE) {
      return err(rc, "oldest unsent row");
    }
  }
  return st;
}

// ---------------------------------------------------------------------------------------------

Result<Reader> Reader::open(const std::string& path) {
  if (path.empty()) return detail::make_error(errc::invalid_argument, "open: empty path");
  auto impl = std::make_unique<Impl>(path);
  if (auto r = impl->open(); !r) return r.error();
  return Reader(std::move(impl));
}

Reader::Reader(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Reader::Reader(Reader&&) noexcept = default;
Reader& Reader::operator=(Reader&&) noexcept = default;
Reader::~Reader() = default;

Result<std::vector<std::string>> Reader::meters() { return impl_->meters(); }
Result<std::uint64_t> Reader::export_readings(std::string_view meter, std::int64_t from_ms,
                                              std::int64_t to_ms,
                                              const std::function<bool(const Reading&)>& visit) {
  return impl_->export_readings(meter, from_ms, to_ms, visit);
}
Result<std::uint64_t> Reader::export_events(std::string_view meter, std::int64_t from_ms,
                                            std::int64_t to_ms,
                                            const std::function<bool(const Event&)>& visit) {
  return impl_->export_events(meter, from_ms, to_ms, visit);
}
Result<Stats> Reader::stats() { return impl_->stats(); }

}  // namespace meterd::buffer
