// The store-and-forward queue: every reading and event the gateway produced, kept in SQLite
// (WAL) until the head-end acknowledged it. See docs/buffer.md for the schema, eviction and the
// durability each synchronous mode gives.
//
// Thread: a Store is owned by one thread (the io_context thread). No member function may be
// called concurrently with another on the same Store; it may be moved to another thread between
// calls. Nothing here reads the clock: every time comes from the caller.
//
// Errors: every function that touches the database returns a Result; nothing throws (a failed
// std::bad_alloc aside). After any error the store stays usable and keeps everything it had
// already committed. A moved-from Store may only be destroyed or assigned to.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "buffer/result.hpp"

namespace meterd::buffer {

// One measured value, exactly as the meter sent it: value = mantissa * 10^exponent.
struct Reading {
  std::int64_t seq = 0;  // assigned by append(); ignored on input
  std::string meter;     // meter id, non-empty
  std::string quantity;  // canonical quantity name, non-empty
  std::int64_t mantissa = 0;
  std::int32_t exponent = 0;
  std::string unit;          // may be empty (power factor)
  std::int64_t ts_ms = 0;    // acquisition time, ms since the Unix epoch, UTC
  std::int32_t quality = 0;  // quality flags, opaque to the buffer
  std::string frozen;        // "" for a live value, else "daily" | "monthly" | "hourly" | ...
  std::optional<std::int64_t> freeze_ts_ms;  // freeze time of frozen data, ms since epoch UTC

  friend bool operator==(const Reading&, const Reading&) = default;
};

// Something that happened (meter offline, tamper, buffer.evicted, ...).
struct Event {
  std::int64_t seq = 0;  // assigned by append(); ignored on input
  std::string meter;     // may be empty for gateway events
  std::string type;      // e.g. "meter.offline", non-empty
  std::int64_t ts_ms = 0;
  std::string payload_json;  // stored and returned verbatim

  friend bool operator==(const Event&, const Event&) = default;
};

// A small per-meter value that must survive restarts (last event counters, last frozen day).
struct StateUpdate {
  std::string meter;
  std::string key;
  std::string value;
};

// What append() stores in one transaction: all of it or none of it.
struct Batch {
  std::vector<Reading> readings;   // get seqs first, in this order
  std::vector<Event> events;       // then these, in this order
  std::vector<StateUpdate> state;  // upserted with the rows, so state and rows never disagree
  std::int64_t now_ms = 0;         // the caller's clock; the ts of a buffer.evicted event
};

struct AppendResult {
  std::int64_t first_seq = 0;          // seq of the batch's first row; 0 when it had no rows
  std::int64_t last_seq = 0;           // seq of the batch's last row; 0 when it had no rows
  std::uint64_t evicted_readings = 0;  // rows this append pushed out to stay within the caps
  std::uint64_t evicted_events = 0;
};

// Rows next_unsent() hands out: readings and events, each in seq order, limit rows in total.
struct Unsent {
  std::vector<Reading> readings;
  std::vector<Event> events;

  std::size_t size() const noexcept { return readings.size() + events.size(); }
  bool empty() const noexcept { return size() == 0; }
  std::vector<std::int64_t> seqs() const;  // every seq, ascending
};

struct Stats {
  std::uint64_t readings = 0;  // rows stored (in flight included)
  std::uint64_t events = 0;
  std::uint64_t inflight = 0;    // seqs marked in flight and not yet acked or requeued
  std::int64_t next_seq = 0;     // the seq the next row will get
  std::uint64_t db_bytes = 0;    // size of the main database file (page_count * page_size)
  std::uint64_t free_bytes = 0;  // of which on the freelist, reused before the file grows
  std::uint64_t wal_bytes = 0;   // size of the -wal file (0 for :memory:)
  // Acquisition time of the oldest (lowest-seq) row not yet acknowledged, in flight or not.
  std::optional<std::int64_t> oldest_unsent_ts_ms;
  std::uint64_t evicted_readings = 0;  // since the database was created
  std::uint64_t evicted_events = 0;
};

enum class Sync {
  normal,  // WAL + synchronous=NORMAL: survives a process crash; a power loss may roll back the
           // transactions committed since the last checkpoint (never corrupts, never reuses a
           // seq: see Options::checkpoint_interval_ms and docs/buffer.md "Durability")
  full,    // WAL + synchronous=FULL: the WAL is fsynced at every commit; durable once
           // append() returns. meterd's default (one append per poll round makes it cheap)
};

struct Options {
  std::string path;  // the database file; ":memory:" for component tests
  // Caps; 0 means no cap. Past a cap the oldest rows are evicted (readings first, events last),
  // counted, and reported as a buffer.evicted event (docs/buffer.md).
  std::uint64_t max_readings = 10'000'000;
  std::uint64_t max_events = 1'000'000;
  std::uint64_t max_bytes = 0;          // cap on pages in use * page size (WAL not included)
  Sync sync = Sync::full;               // meterd's mode: docs/buffer.md "Durability"
  std::uint32_t cache_kib = 8192;       // SQLite page cache; bounds resident memory
  std::uint32_t busy_timeout_ms = 200;  // how long to wait for a lock held by another process
  // Hard limit on the file in pages (PRAGMA max_page_count); appends past it fail with
  // errc::disk_full exactly as on a full disk. 0 leaves SQLite's default (no practical limit).
  std::uint32_t max_page_count = 0;
  // Sync::normal only: append() (and checkpoint_if_due()) checkpoint the WAL, which fsyncs it,
  // when rows were committed since the last checkpoint and at least this long ago by the
  // caller's clock (Batch::now_ms). Bounds what a power cut can take; 0 disables it.
  std::int64_t checkpoint_interval_ms = 60'000;
  // Seqs are reserved this many at a time by raising the durable seq floor in a synced write
  // before any of them is handed out. After an unclean stop the unused rest of a reservation is
  // named in a buffer.seq_gap event; a larger value costs fewer fsyncs, never more rows.
  std::int64_t seq_reserve = 1 << 20;
  // The caller's clock at open, ms since the epoch UTC: the ts of a buffer.seq_gap event.
  std::int64_t now_ms = 0;
  // SQLite VFS name; empty for the default. For tests that simulate power loss.
  std::string vfs;
};

class Store {
 public:
  // Opens (creating if needed) the database, sets WAL and the pragmas from `options`, applies
  // pending numbered migrations, and loads the counters (from `meta`: O(1) in the backlog) and
  // the series dictionary. Then, in one synced write, it clears the clean-stop marker, takes a
  // fresh seq reservation and, after an unclean stop, appends a buffer.seq_gap event naming
  // the seqs that will never come (docs/buffer.md "Sequence numbers"). If that write fails for
  // a full disk or an I/O error the store still opens for reading, and the next write retries it.
  // Errors: schema_too_new (database from a newer meterd; the file is left untouched),
  // not_a_buffer, cannot_open, corrupt, io_error, busy, invalid_argument (bad options).
  static Result<Store> open(const Options& options);

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  ~Store();  // close(), its error ignored

  // Orderly stop: marks the stop as clean in a synced write, so the next open knows no seq
  // was lost, and checkpoints. Without it (crash, power loss, SIGKILL) the next open appends a
  // buffer.seq_gap event. Errors: io_error, disk_full, busy (the stop then counts as unclean,
  // which loses nothing). Afterwards the Store may only be destroyed or assigned to.
  Result<void> close();

  // Stores the batch in one transaction and assigns consecutive seqs (readings, then events).
  // Seqs are gateway-wide, strictly increasing across restarts, never reused (not even after
  // the highest rows were acked or evicted, not even after a power loss in Sync::normal).
  // Evicts past the caps in the same transaction. Every Options::seq_reserve seqs it first
  // commits a new reservation with an fsync; in Sync::normal it checkpoints when one is due.
  // Errors: disk_full / io_error (nothing of the batch is stored, nothing already stored is
  // lost, the store keeps working and a later append succeeds once space returns), busy,
  // invalid_argument (empty meter, quantity or event type, or a NUL inside a string).
  Result<AppendResult> append(const Batch& batch);

  // Up to `limit` rows (readings and events together) with the lowest seqs that are not in
  // flight. Costs O(limit + log n) whatever the backlog: it walks the seq primary key from an
  // in-memory cursor, never OFFSET. Does not change what is in flight.
  Result<Unsent> next_unsent(std::size_t limit);

  // Up to `limit` events with the lowest seqs that are not in flight, whatever readings lie
  // below them: the uplink sends events ahead of a reading backlog (an outage report must not
  // wait behind a week of readings). Walks the events table from its start, skipping the rows
  // in flight: O(limit + in flight + log n). Does not change what is in flight.
  Result<std::vector<Event>> next_unsent_events(std::size_t limit);

  // Marks rows as handed to the uplink: next_unsent() skips them until ack() or
  // requeue_inflight(). In memory only: after a restart every stored row is unsent again
  // (at-least-once; the head-end drops duplicates by seq). Unknown seqs are harmless.
  void mark_inflight(std::span<const std::int64_t> seqs);

  // Removes acknowledged rows in one transaction; returns how many rows were deleted (seqs
  // already gone, e.g. evicted, are skipped). Also clears them from the in-flight set.
  // Not fsynced on its own, in either sync mode: a power cut may undo an ack that no later
  // synced write covered, which only sends those rows again (at-least-once).
  // Errors: disk_full / io_error / busy (nothing removed; ack again later).
  Result<std::uint64_t> ack(std::span<const std::int64_t> seqs);

  // After a broker disconnect: every in-flight row becomes unsent again, to be resent from the
  // lowest seq. Returns how many seqs were in flight.
  std::size_t requeue_inflight() noexcept;

  // Row counts, file sizes, oldest unacknowledged time, eviction totals. O(log n).
  Result<Stats> stats();

  // Readings of one meter with from_ms <= ts_ms < to_ms, in seq order, handed to `visit` one
  // at a time (return false to stop). Returns how many were visited. Reads only the blocks of
  // 4096 seqs whose time span overlaps the range: the cost grows with the readings (of all
  // meters) stored in that time, not with the backlog.
  Result<std::uint64_t> export_readings(std::string_view meter, std::int64_t from_ms,
                                        std::int64_t to_ms,
                                        const std::function<bool(const Reading&)>& visit);

  // Events of one meter ("" = gateway events) with from_ms <= ts_ms < to_ms, in seq order.
  Result<std::uint64_t> export_events(std::string_view meter, std::int64_t from_ms,
                                      std::int64_t to_ms,
                                      const std::function<bool(const Event&)>& visit);

  // Small per-meter state. put_state() commits on its own (use Batch::state to commit it
  // together with rows). get_state() returns nullopt when the key was never put.
  Result<void> put_state(std::string_view meter, std::string_view key, std::string_view value);
  Result<std::optional<std::string>> get_state(std::string_view meter, std::string_view key);
  // Every key of one meter's state (the data tasks load a meter's state once).
  Result<std::map<std::string, std::string>> states(std::string_view meter);

  // Copies the WAL into the database and truncates it. With Sync::normal this is the moment
  // everything committed so far becomes durable against power loss.
  Result<void> checkpoint();

  // Checkpoints (without truncating) if rows were committed since the last checkpoint and
  // Options::checkpoint_interval_ms have passed since it by `now_ms`; returns whether it did.
  // append() calls it itself; call it from a timer too, so rows appended just before a quiet
  // spell become durable within the interval. Sync::full needs none of it.
  Result<bool> checkpoint_if_due(std::int64_t now_ms);

  // For tests: compares the in-memory state with the database (counters against count(*),
  // meta, the seq floor, the in-flight set and cursor against the stored rows, the export
  // summary, pending eviction notices). O(backlog). Returns errc::corrupt naming every
  // mismatch, or the SQLite error that kept it from checking.
  Result<void> check_invariants();

  // The schema version this program writes, and the one the open database has.
  static int latest_schema_version() noexcept;
  int schema_version() const noexcept;

 private:
  class Impl;
  explicit Store(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meterd::buffer
