// bench_buffer: throughput and footprint of buffer::Store, next to a plain prepared-INSERT
// loop into a table of the store's own schema, measured in the same run (same file system,
// pragmas, rows, batches), interleaved.
//
//   bench_buffer [--backlog N] [--rows N] [--reps N] [--dir DIR] [--sync normal|full] [--smoke]
//
// --backlog  readings in the backlog phase (default 1000000; the figure: 10000000,
//            which takes a few minutes and ~0.5 GB of disk)
// --rows     readings per append measurement at batch 100 and 1000 (batch 1 uses rows / 10)
// --reps     interleaved runs of each side of each append measurement; medians are reported
//            (default 5)
// --only     one part: append, sync (Sync::full vs Sync::normal at one append per poll
//            round), ack or backlog
// --drop-caches  also time an open of the backlog after dropping the page cache (needs root)
// --smoke    tiny sizes, for ctest: proves the benchmark still runs, measures nothing
//
// Figures are printed, never asserted: this machine is shared and timing is not a test.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <malloc.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include "buffer/store.hpp"

namespace {

using meterd::buffer::Batch;
using meterd::buffer::Options;
using meterd::buffer::Reading;
using meterd::buffer::Store;
using meterd::buffer::Sync;
using Clock = std::chrono::steady_clock;

struct Config {
  std::uint64_t backlog = 1'000'000;
  std::uint64_t rows = 200'000;
  int reps = 5;
  std::string dir = "/tmp";
  Sync sync = Sync::normal;
  bool smoke = false;
  std::string only;  // "", or one of append, sync, ack, backlog
  bool drop_caches = false;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_buffer: %s\n", what.c_str());
  std::exit(1);
}

// A concentrator's data: 256 meters x 16 quantities per 15-minute round, energy-like values.
constexpr int meters = 256;
const char* const quantities[16][2] = {
    {"energy.active.import.total", "kWh"},
    {"energy.active.import.t1", "kWh"},
    {"energy.active.import.t2", "kWh"},
    {"energy.active.import.t3", "kWh"},
    {"energy.active.import.t4", "kWh"},
    {"energy.active.export.total", "kWh"},
    {"voltage.l1", "V"},
    {"voltage.l2", "V"},
    {"voltage.l3", "V"},
    {"current.l1", "A"},
    {"current.l2", "A"},
    {"current.l3", "A"},
    {"power.active.total", "kW"},
    {"power.reactive.total", "kvar"},
    {"power_factor.total", ""},
    {"frequency", "Hz"},
};
constexpr std::int64_t t0_ms = 1'700'000'000'000;

Reading make_reading(std::uint64_t i) {
  Reading r;
  char meter[16];
  std::snprintf(meter, sizeof meter, "m%04d", static_cast<int>((i / 16) % meters));
  r.meter = meter;
  r.quantity = quantities[i % 16][0];
  r.unit = quantities[i % 16][1];
  r.mantissa = 10'000'000 + static_cast<std::int64_t>(i % 100'000'000);
  r.exponent = -2;
  const auto round = static_cast<std::int64_t>(i / (meters * 16));
  r.ts_ms = t0_ms + round * 900'000 + static_cast<std::int64_t>(i % (meters * 16)) * 25;
  return r;
}

Batch make_batch(std::uint64_t first, std::uint64_t n) {
  Batch b;
  b.readings.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) b.readings.push_back(make_reading(first + i));
  b.now_ms = b.readings.back().ts_ms;
  return b;
}

void remove_db(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
}

std::uint64_t file_size(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : n;
}

// VmRSS / VmHWM from /proc, in KiB.
std::uint64_t proc_status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0)
      return std::strtoull(line.c_str() + std::strlen(key) + 1, nullptr, 10);
  }
  return 0;
}

Options store_options(const Config& c, const std::string& path) {
  Options o;
  o.path = path;
  o.sync = c.sync;
  o.max_readings = 0;  // no eviction while measuring
  o.max_events = 0;
  // Like the baseline, no checkpoints but SQLite's own; bench_sync measures the timed one.
  o.checkpoint_interval_ms = 0;
  return o;
}

Store open_store(const Config& c, const std::string& path) {
  auto s = Store::open(store_options(c, path));
  if (!s) die("open: " + s.error().message);
  return std::move(s).value();
}

// ---- baseline: the store's own schema and pragmas, a prepared INSERT, one transaction per batch
//
// Like for like: the same input (the same Batch objects), the same `readings` table (STRICT,
// integers only, seq the rowid, no index), the same pragmas (WAL, synchronous, cache,
// journal_size_limit, temp_store), the same rows. Like the store it maps each reading's strings
// to a series id, the plain way (one hash map keyed by the strings); it does nothing else. What
// the store does on top (ts_blocks, counters in meta, caps, seq reservation, rollback state) is
// what the ratio measures.

void check(sqlite3* db, int rc, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    die(std::string(what) + ": " + sqlite3_errmsg(db));
  }
}

struct Baseline {
  sqlite3* db = nullptr;
  sqlite3_stmt *ins = nullptr, *begin = nullptr, *commit = nullptr;
  std::unordered_map<std::string, std::int64_t> series;
  std::string key;
  std::int64_t seq = 0;

  void append(const Batch& b) {
    check(db, sqlite3_step(begin), "begin");
    sqlite3_reset(begin);
    for (const Reading& r : b.readings) {
      key.clear();
      key.append(r.meter).push_back('\0');
      key.append(r.quantity).push_back('\0');
      key.append(r.unit).push_back('\0');
      key.append(r.frozen);
      const auto id =
          series.emplace(key, static_cast<std::int64_t>(series.size()) + 1).first->second;
      sqlite3_bind_int64(ins, 1, ++seq);
      sqlite3_bind_int64(ins, 2, id);
      sqlite3_bind_int64(ins, 3, r.mantissa);
      sqlite3_bind_int(ins, 4, r.exponent);
      sqlite3_bind_int64(ins, 5, r.ts_ms);
      sqlite3_bind_int(ins, 6, r.quality);
      if (r.freeze_ts_ms) {
        sqlite3_bind_int64(ins, 7, *r.freeze_ts_ms);
      } else {
        sqlite3_bind_null(ins, 7);
      }
      check(db, sqlite3_step(ins), "insert");
      sqlite3_reset(ins);
    }
    check(db, sqlite3_step(commit), "commit");
    sqlite3_reset(commit);
  }
};

// One round of every meter and quantity, stored untimed in both stores before a measurement:
// steady state, where the store's series dictionary already knows every meter/quantity.
Batch warm_up() { return make_batch(0, meters * 16); }

double baseline_rate(const Config& c, const std::string& path, const std::vector<Batch>& batches) {
  remove_db(path);
  Baseline b;
  check(b.db, sqlite3_open(path.c_str(), &b.db), "open baseline");
  const std::string pragmas =
      std::string("PRAGMA journal_mode = WAL; PRAGMA synchronous = ") +
      (c.sync == Sync::full ? "FULL" : "NORMAL") +
      "; PRAGMA cache_size = -8192; PRAGMA journal_size_limit = 16777216;"
      "PRAGMA temp_store = FILE;"
      "CREATE TABLE readings (seq INTEGER PRIMARY KEY, series INTEGER NOT NULL, "
      "mantissa INTEGER NOT NULL, exponent INTEGER NOT NULL, ts INTEGER NOT NULL, "
      "quality INTEGER NOT NULL, freeze_ts INTEGER) STRICT;";
  check(b.db, sqlite3_exec(b.db, pragmas.c_str(), nullptr, nullptr, nullptr), "baseline schema");
  check(b.db,
        sqlite3_prepare_v2(b.db,
                           "INSERT INTO readings (seq, series, mantissa, exponent, ts, quality, "
                           "freeze_ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                           -1, &b.ins, nullptr),
        "prepare");
  check(b.db, sqlite3_prepare_v2(b.db, "BEGIN IMMEDIATE", -1, &b.begin, nullptr), "prepare");
  check(b.db, sqlite3_prepare_v2(b.db, "COMMIT", -1, &b.commit, nullptr), "prepare");
  b.append(warm_up());
  std::uint64_t rows = 0;
  const auto t0 = Clock::now();
  for (const Batch& batch : batches) {
    b.append(batch);
    rows += batch.readings.size();
  }
  const double s = seconds_since(t0);
  sqlite3_finalize(b.ins);
  sqlite3_finalize(b.begin);
  sqlite3_finalize(b.commit);
  sqlite3_close(b.db);
  remove_db(path);
  return static_cast<double>(rows) / s;
}

double store_rate(const Config& c, const std::string& path, const std::vector<Batch>& batches) {
  remove_db(path);
  double rate = 0;
  {
    Store s = open_store(c, path);
    if (!s.append(warm_up())) die("append");
    std::uint64_t rows = 0;
    const auto t0 = Clock::now();
    for (const Batch& b : batches) {
      auto r = s.append(b);
      if (!r) die("append: " + r.error().message);
      rows += b.readings.size();
    }
    rate = static_cast<double>(rows) / seconds_since(t0);
  }
  remove_db(path);
  return rate;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_append(const Config& c, const std::string& dir) {
  std::printf(
      "\nappend: readings/s, one transaction per batch; %d interleaved runs of each side, "
      "medians (both tables warmed with one round of all %d series first)\n",
      c.reps, meters * 16);
  std::printf("  %6s %10s %14s %14s %13s %17s\n", "batch", "readings", "store", "baseline",
              "median ratio", "ratios min..max");
  for (const std::uint64_t batch : {1ULL, 100ULL, 1000ULL}) {
    const std::uint64_t total = std::max<std::uint64_t>(batch == 1 ? c.rows / 10 : c.rows, batch);
    std::vector<Batch> batches;
    for (std::uint64_t i = 0; i < total; i += batch) batches.push_back(make_batch(i, batch));
    std::vector<double> store, base, ratio;
    for (int rep = 0; rep < c.reps; ++rep) {  // interleaved, so both see the same machine
      // Alternate which side goes first, so neither always runs on a warmer cache.
      double b = 0, st = 0;
      if (rep % 2 == 0) {
        b = baseline_rate(c, dir + "/baseline.db", batches);
        st = store_rate(c, dir + "/append.db", batches);
      } else {
        st = store_rate(c, dir + "/append.db", batches);
        b = baseline_rate(c, dir + "/baseline.db", batches);
      }
      base.push_back(b);
      store.push_back(st);
      ratio.push_back(st / b);
    }
    std::printf("  %6llu %10llu %14.0f %14.0f %13.3f %8.3f..%.3f\n",
                static_cast<unsigned long long>(batch), static_cast<unsigned long long>(total),
                median(store), median(base), median(ratio),
                *std::min_element(ratio.begin(), ratio.end()),
                *std::max_element(ratio.begin(), ratio.end()));
  }
}

// ---- Sync::full against Sync::normal at one append per poll round ---------------------------

// What a poll round costs the buffer in each mode: one append of `batch` readings, the rounds
// 15 minutes apart by the caller's clock, interleaved so every mode sees the same disk.
// Sync::normal runs twice: with the default time-based checkpoint (60 s, so every round
// checkpoints, as it would in the field) and without it (nothing synced: the power-loss window
// is unbounded).
void bench_sync(const Config& c, const std::string& dir) {
  const int rounds = c.smoke ? 5 : 100;
  std::printf(
      "\nSync::full vs Sync::normal, one append per 15-minute poll round (%d rounds x 2, "
      "median ms per append)\n",
      rounds);
  std::printf("  %6s %14s %14s %22s\n", "batch", "full", "normal", "normal, no checkpoint");
  struct Mode {
    Sync sync;
    std::int64_t checkpoint_ms;
  };
  const Mode modes[] = {{Sync::full, 60'000}, {Sync::normal, 60'000}, {Sync::normal, 0}};
  for (const std::uint64_t batch : {32ULL, 100ULL, 500ULL}) {
    std::vector<double> t[3];
    for (int rep = 0; rep < 2; ++rep) {
      for (int k = 0; k < 3; ++k) {
        const int m = rep % 2 ? 2 - k : k;
        const std::string path = dir + "/sync.db";
        remove_db(path);
        Options o = store_options(c, path);
        o.sync = modes[m].sync;
        o.checkpoint_interval_ms = modes[m].checkpoint_ms;
        auto opened = Store::open(o);
        if (!opened) die("open: " + opened.error().message);
        Store s = std::move(opened).value();
        if (!s.append(warm_up())) die("append");
        for (int r = 0; r < rounds; ++r) {
          Batch b = make_batch(static_cast<std::uint64_t>(r) * batch, batch);
          b.now_ms = t0_ms + static_cast<std::int64_t>(r + 1) * 900'000;
          const auto t1 = Clock::now();
          if (!s.append(b)) die("append");
          t[m].push_back(seconds_since(t1) * 1e3);
        }
        remove_db(path);
      }
    }
    std::printf("  %6llu %14.3f %14.3f %22.3f\n", static_cast<unsigned long long>(batch),
                median(t[0]), median(t[1]), median(t[2]));
  }
}

// ---- ack -------------------------------------------------------------------------------------

void bench_ack(const Config& c, const std::string& dir) {
  const std::string path = dir + "/ack.db";
  remove_db(path);
  Store s = open_store(c, path);
  for (std::uint64_t i = 0; i < c.rows; i += 1000) {
    if (!s.append(make_batch(i, 1000))) die("append");
  }
  double ack_s = 0;
  std::uint64_t acked = 0;
  const auto t0 = Clock::now();
  for (;;) {
    auto u = s.next_unsent(500);
    if (!u) die("next_unsent: " + u.error().message);
    if (u->empty()) break;
    const auto seqs = u->seqs();
    s.mark_inflight(seqs);
    const auto ta = Clock::now();
    auto n = s.ack(seqs);
    ack_s += seconds_since(ta);
    if (!n) die("ack: " + n.error().message);
    acked += *n;
  }
  const double cycle_s = seconds_since(t0);
  std::printf("\nack: %llu readings in acks of 500\n", static_cast<unsigned long long>(acked));
  std::printf("  ack alone:                          %12.0f readings/s\n",
              static_cast<double>(acked) / ack_s);
  std::printf("  next_unsent + mark_inflight + ack:  %12.0f readings/s\n",
              static_cast<double>(acked) / cycle_s);
  remove_db(path);
}

// ---- backlog: next_unsent cost, bytes per reading, memory ------------------------------------

struct NextCost {
  double fresh_us;    // next_unsent(500) from the head of the queue, nothing in flight
  double walking_us;  // next_unsent(500) + mark_inflight, the cursor moving down the queue
};

// Best of 5 rounds, so a neighbour's burst on this shared machine does not pass for a trend.
NextCost measure_next(Store& s, int calls) {
  constexpr int rounds = 5;
  const int per_round = std::max(1, calls / rounds);
  NextCost best{1e300, 1e300};
  std::size_t sink = 0;
  int walked = 0;
  for (int round = 0; round < rounds; ++round) {
    s.requeue_inflight();
    auto t0 = Clock::now();
    for (int i = 0; i < per_round; ++i) {
      auto u = s.next_unsent(500);
      if (!u) die("next_unsent");
      sink += u->size();
    }
    best.fresh_us = std::min(best.fresh_us, seconds_since(t0) * 1e6 / per_round);
    t0 = Clock::now();
    for (int i = 0; i < per_round; ++i) {
      auto u = s.next_unsent(500);
      if (!u) die("next_unsent");
      s.mark_inflight(u->seqs());
      // An uplink window of 32 publishes; then the broker "disconnects" and all is requeued.
      if (++walked % 32 == 0) s.requeue_inflight();
      sink += u->size();
    }
    best.walking_us = std::min(best.walking_us, seconds_since(t0) * 1e6 / per_round);
  }
  s.requeue_inflight();
  if (sink == 0) die("next_unsent returned nothing");
  return best;
}

void print_rss(const char* when) {
  std::printf("  RSS %-34s %8llu KiB (peak %llu KiB)\n", when,
              static_cast<unsigned long long>(proc_status_kib("VmRSS:")),
              static_cast<unsigned long long>(proc_status_kib("VmHWM:")));
}

void bench_backlog(const Config& c, const std::string& dir) {
  const int calls = c.smoke ? 20 : 2000;
  // Enough for the walk: 32 calls of 500 between requeues.
  const std::uint64_t small_backlog = c.smoke ? 1000 : 20'000;
  std::printf("\nbacklog\n");
  malloc_trim(0);
  NextCost small{};
  double small_open_ms = 0;
  {
    const std::string path = dir + "/small.db";
    remove_db(path);
    Store s = open_store(c, path);
    for (std::uint64_t i = 0; i < small_backlog; i += 1000) {
      if (!s.append(make_batch(i, 1000))) die("append");
    }
    small = measure_next(s, calls);
    s = Store(open_store(c, dir + "/other.db"));  // closes the small store
    const auto t_open = Clock::now();
    s = open_store(c, path);
    small_open_ms = seconds_since(t_open) * 1e3;
    remove_db(path);
    remove_db(dir + "/other.db");
  }

  const std::string path = dir + "/backlog.db";
  remove_db(path);
  print_rss("before the backlog:");
  double fill_s = 0;
  {
    Store s = open_store(c, path);
    const auto t0 = Clock::now();
    const std::uint64_t marks[] = {c.backlog / 10, c.backlog / 2};
    std::size_t mark = 0;
    for (std::uint64_t i = 0; i < c.backlog; i += 1000) {
      const std::uint64_t n = std::min<std::uint64_t>(1000, c.backlog - i);
      if (!s.append(make_batch(i, n))) die("append");
      if (mark < 2 && i + n >= marks[mark]) {
        const std::string what = "at " + std::to_string(i + n) + " readings:";
        print_rss(what.c_str());
        ++mark;
      }
    }
    print_rss("at the full backlog:");
    fill_s = seconds_since(t0);
    if (!s.checkpoint()) die("checkpoint");
  }
  std::printf("  filled %llu readings in %.1f s (%.0f readings/s, batches of 1000)\n",
              static_cast<unsigned long long>(c.backlog), fill_s,
              static_cast<double>(c.backlog) / fill_s);

  // Open reads counters from meta: its cost must not grow with the backlog. Cold: after the
  // page cache was dropped (root only), as after a reboot.
  double cold_ms = -1;
  if (c.drop_caches) {
    ::sync();
    std::ofstream drop("/proc/sys/vm/drop_caches");
    drop << "3\n";
    drop.flush();
    if (drop.good()) {
      const auto t_cold = Clock::now();
      Store cold = open_store(c, path);
      cold_ms = seconds_since(t_cold) * 1e3;
    } else {
      std::printf("  (cannot drop the page cache: not root?)\n");
    }
  }
  const auto t_open = Clock::now();
  Store s = open_store(c, path);
  const double open_ms = seconds_since(t_open) * 1e3;
  print_rss("after fill and reopen:");
  const NextCost big = measure_next(s, calls);
  print_rss("after the next_unsent runs:");

  auto st = s.stats();
  if (!st) die("stats");
  std::printf(
      "  open with the backlog, hot:         %10.1f ms  (%.1f ms with %llu readings; each "
      "open includes one synced write)\n",
      open_ms, small_open_ms, static_cast<unsigned long long>(small_backlog));
  if (cold_ms >= 0) std::printf("  open with the backlog, cold:        %10.1f ms\n", cold_ms);
  std::printf("  next_unsent(500), best of 5 rounds: at the head / walking with mark_inflight\n");
  std::printf("    %10llu-row backlog: %8.1f us/call %8.1f us/call\n",
              static_cast<unsigned long long>(small_backlog), small.fresh_us, small.walking_us);
  std::printf("    %10llu-row backlog: %8.1f us/call %8.1f us/call  (x%.2f, x%.2f)\n",
              static_cast<unsigned long long>(c.backlog), big.fresh_us, big.walking_us,
              big.fresh_us / small.fresh_us, big.walking_us / small.walking_us);

  // Bytes per reading: the whole database file (all tables, indexes, free pages) / rows.
  const std::uint64_t db = file_size(path);
  std::printf("  database file %.1f MiB, WAL %.1f MiB: %.1f bytes/reading on disk\n",
              static_cast<double>(db) / (1 << 20),
              static_cast<double>(file_size(path + "-wal")) / (1 << 20),
              static_cast<double>(db) / static_cast<double>(st->readings));
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* q = nullptr;
    if (sqlite3_prepare_v2(raw,
                           "SELECT name, sum(pgsize) FROM dbstat GROUP BY name "
                           "ORDER BY 2 DESC LIMIT 3",
                           -1, &q, nullptr) == SQLITE_OK) {
      while (sqlite3_step(q) == SQLITE_ROW) {
        std::printf(
            "    %-12s %6.1f bytes/reading\n",
            reinterpret_cast<const char*>(sqlite3_column_text(q, 0)),
            static_cast<double>(sqlite3_column_int64(q, 1)) / static_cast<double>(st->readings));
      }
      sqlite3_finalize(q);
    }
    sqlite3_close(raw);
  }
  remove_db(path);
}

Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--backlog") {
      c.backlog = std::stoull(value());
    } else if (a == "--rows") {
      c.rows = std::stoull(value());
    } else if (a == "--reps") {
      c.reps = std::max(1, std::stoi(value()));
    } else if (a == "--dir") {
      c.dir = value();
    } else if (a == "--sync") {
      const auto v = value();
      if (v != "normal" && v != "full") die("--sync takes normal or full");
      c.sync = v == "full" ? Sync::full : Sync::normal;
    } else if (a == "--only") {
      c.only = value();
      if (c.only != "append" && c.only != "sync" && c.only != "ack" && c.only != "backlog") {
        die("--only takes append, sync, ack or backlog");
      }
    } else if (a == "--drop-caches") {
      c.drop_caches = true;
    } else if (a == "--smoke") {
      c.smoke = true;
      c.backlog = 5000;
      c.rows = 3000;
      c.reps = 1;
    } else {
      std::fprintf(
          stderr,
          "usage: bench_buffer [--backlog N] [--rows N] [--reps N] [--dir DIR] "
          "[--sync normal|full] [--only append|sync|ack|backlog] [--drop-caches] [--smoke]\n");
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  if (c.backlog < 1000 || c.rows < 1000) die("--backlog and --rows must be >= 1000");
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string tmpl = c.dir + "/meterd-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) die("mkdtemp in " + c.dir);
  const std::string dir = tmpl;

  std::printf("meterd buffer benchmark: SQLite %s, WAL, synchronous=%s, cache 8 MiB, in %s\n",
              sqlite3_libversion(), c.sync == Sync::full ? "FULL" : "NORMAL", dir.c_str());
  std::printf("data: %d meters x 16 quantities, mantissa ~1e7, exponent -2%s\n", meters,
              c.smoke ? "  [smoke run: sizes too small to mean anything]" : "");
  if (c.only.empty() || c.only == "append") bench_append(c, dir);
  if (c.only.empty() || c.only == "sync") bench_sync(c, dir);
  if (c.only.empty() || c.only == "ack") bench_ack(c, dir);
  if (c.only.empty() || c.only == "backlog") bench_backlog(c, dir);
  std::filesystem::remove_all(dir);
  return 0;
}
