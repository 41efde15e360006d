#include "buffer/detail/migrations.hpp"

#include <array>
#include <string>

#include "buffer/detail/sqlite.hpp"

namespace meterd::buffer::detail {

namespace {

// Row size is what keeps a 10 M-row backlog small (docs/buffer.md "Bytes per reading"): the
// strings of a reading live once in `series`, a reading row holds integers only, seq is the
// rowid, and there is no secondary index on readings at all (an index on ts cost 20 bytes per
// reading and about half the append rate; export uses the ts_blocks summary of migration 2).
constexpr const char* v1_sql = R"sql(
CREATE TABLE meta (
  id               INTEGER PRIMARY KEY CHECK (id = 1),
  seq_floor        INTEGER NOT NULL,  -- no seq <= this is ever assigned again
  evicted_readings INTEGER NOT NULL,
  evicted_events   INTEGER NOT NULL
) STRICT;
INSERT INTO meta VALUES (1, 0, 0, 0);

CREATE TABLE series (
  id       INTEGER PRIMARY KEY,
  meter    TEXT NOT NULL,
  quantity TEXT NOT NULL,
  unit     TEXT NOT NULL,
  frozen   TEXT NOT NULL,  -- '' for live values
  UNIQUE (meter, quantity, unit, frozen)
) STRICT;

CREATE TABLE readings (
  seq       INTEGER PRIMARY KEY,  -- the rowid: next_unsent, ack and eviction walk it
  series    INTEGER NOT NULL,     -- series.id
  mantissa  INTEGER NOT NULL,     -- value = mantissa * 10^exponent, as the meter sent it
  exponent  INTEGER NOT NULL,
  ts        INTEGER NOT NULL,     -- acquisition time, ms since the epoch, UTC
  quality   INTEGER NOT NULL,
  freeze_ts INTEGER               -- NULL unless frozen data
) STRICT;

CREATE TABLE events (
  seq     INTEGER PRIMARY KEY,
  meter   TEXT NOT NULL,
  type    TEXT NOT NULL,
  ts      INTEGER NOT NULL,
  payload TEXT NOT NULL
) STRICT;
)sql";

// ts_blocks summarises readings per block of 4096 seqs (block = seq >> 12, ts_block_shift):
// the ts range of the block's readings. Export reads only the blocks whose range overlaps the
// asked one. The block that is still filling lives in memory and is written when it closes.
constexpr const char* v2_sql = R"sql(
CREATE TABLE meter_state (
  meter TEXT NOT NULL,
  key   TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (meter, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE ts_blocks (
  block  INTEGER PRIMARY KEY,  -- seq >> 12
  min_ts INTEGER NOT NULL,
  max_ts INTEGER NOT NULL
) STRICT;
INSERT INTO ts_blocks (block, min_ts, max_ts)
  SELECT seq >> 12, min(ts), max(ts) FROM readings GROUP BY seq >> 12;
)sql";

// Counters in meta, written in the same transactions as the rows, so open reads them instead
// of counting the backlog; the clean-stop marker and the session that may set it. From here on
// seq_floor is a durable reservation: every seq ever handed out is <= it, and next_seq is the
// first seq no committed transaction assigned. A version-2 file has no reservation, so it is
// taken as cleanly stopped (its seqs are all stored or below its floor already).
constexpr const char* v3_sql = R"sql(
ALTER TABLE meta ADD COLUMN next_seq INTEGER NOT NULL DEFAULT 1;
ALTER TABLE meta ADD COLUMN readings INTEGER NOT NULL DEFAULT 0;
ALTER TABLE meta ADD COLUMN events INTEGER NOT NULL DEFAULT 0;
ALTER TABLE meta ADD COLUMN clean INTEGER NOT NULL DEFAULT 1;    -- 1: the last stop was clean
ALTER TABLE meta ADD COLUMN session INTEGER NOT NULL DEFAULT 0;  -- bumped by every open
UPDATE meta SET
  next_seq = max(seq_floor, (SELECT coalesce(max(seq), 0) FROM readings),
                 (SELECT coalesce(max(seq), 0) FROM events)) + 1,
  readings = (SELECT count(*) FROM readings),
  events = (SELECT count(*) FROM events);
UPDATE meta SET seq_floor = next_seq - 1;
)sql";

constexpr std::array<Migration, 3> all = {{
    {1, "readings, events, series dictionary, seq floor", v1_sql},
    {2, "per-meter state, export time summary", v2_sql},
    {3, "counters in meta, seq reservation, clean-stop marker", v3_sql},
}};

Result<void> rollback_with(sqlite3* db, Error e) {
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  return e;
}

}  // namespace

std::span<const Migration> migrations() noexcept { return all; }
int latest_version() noexcept { return all.back().version; }

Result<int> check_schema(sqlite3* db) {
  const int latest = latest_version();
  auto version = query_int(db, "PRAGMA user_version", "read schema version");
  if (!version) return version.error();
  auto app = query_int(db, "PRAGMA application_id", "read application_id");
  if (!app) return app.error();
  auto tables = query_int(db, "SELECT count(*) FROM sqlite_schema", "read schema");
  if (!tables) return tables.error();

  if (*version > latest) {
    return make_error(errc::schema_too_new,
                      "database schema version " + std::to_string(*version) +
                          " is newer than this program supports (" + std::to_string(latest) +
                          "); refusing to open it. Upgrade meterd, or move the file aside");
  }
  const bool fresh = *version == 0 && *tables == 0;
  if (!fresh && *app != application_id) {
    return make_error(errc::not_a_buffer,
                      "database has tables but is not a meterd buffer (application_id " +
                          std::to_string(*app) + ", schema version " + std::to_string(*version) +
                          ")");
  }
  return static_cast<int>(*version);
}

Result<int> migrate(sqlite3* db, int target) {
  if (target < 0 || target > latest_version()) {
    return make_error(errc::invalid_argument,
                      "migrate: target version " + std::to_string(target) + " out of range");
  }
  auto version = check_schema(db);
  if (!version) return version.error();

  int current = static_cast<int>(*version);
  for (const Migration& m : all) {
    if (m.version <= current || m.version > target) continue;
    if (auto r = exec(db, "BEGIN IMMEDIATE", "begin migration"); !r) return r.error();
    // Another process may have migrated between our read and our lock.
    auto now = query_int(db, "PRAGMA user_version", "read schema version");
    if (!now) return rollback_with(db, now.error()).error();
    if (*now >= m.version) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      current = static_cast<int>(*now);
      continue;
    }
    const std::string what = "migration " + std::to_string(m.version) + " (" + m.name + ")";
    if (auto r = exec(db, m.sql, what); !r) return rollback_with(db, r.error()).error();
    const std::string pragmas = "PRAGMA application_id = " + std::to_string(application_id) +
                                "; PRAGMA user_version = " + std::to_string(m.version);
    if (auto r = exec(db, pragmas.c_str(), what); !r) return rollback_with(db, r.error()).error();
    if (auto r = exec(db, "COMMIT", what); !r) return rollback_with(db, r.error()).error();
    current = m.version;
  }
  return current;
}

}  // namespace meterd::buffer::detail
