// bench_buffer: throughput and footprint of buffer::Store, next to a plain prepared-INSERT
// loop into a bare SQLite table measured in the same run (same file system, pragmas, batches).
//
//   bench_buffer [--backlog N] [--rows N] [--reps N] [--dir DIR] [--sync normal|full] [--smoke]
//
// --backlog  readings in the backlog phase (default 1000000; the figure: 10000000,
//            which takes a few minutes and ~0.5 GB of disk)
// --rows     readings per append measurement at batch 100 and 1000 (batch 1 uses rows / 10)
// --reps     repetitions of each append measurement; the best is reported (default 3)
// --smoke    tiny sizes, for ctest: proves the benchmark still runs, measures nothing
//
// Figures are printed, never asserted: this machine is shared and timing is not a test.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
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
  int reps = 3;
  std::string dir = "/tmp";
  Sync sync = Sync::normal;
  bool smoke = false;
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
  return o;
}

Store open_store(const Config& c, const std::string& path) {
  auto s = Store::open(store_options(c, path));
  if (!s) die("open: " + s.error().message);
  return std::move(s).value();
}

// ---- baseline: a bare table, a prepared INSERT, one transaction per batch -------------------

void check(sqlite3* db, int rc, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    die(std::string(what) + ": " + sqlite3_errmsg(db));
  }
}

void insert_bare(sqlite3* db, sqlite3_stmt* ins, const Reading& r) {
  sqlite3_bind_text(ins, 1, r.meter.data(), static_cast<int>(r.meter.size()), SQLITE_STATIC);
  sqlite3_bind_text(ins, 2, r.quantity.data(), static_cast<int>(r.quantity.size()), SQLITE_STATIC);
  sqlite3_bind_int64(ins, 3, r.mantissa);
  sqlite3_bind_int(ins, 4, r.exponent);
  sqlite3_bind_text(ins, 5, r.unit.data(), static_cast<int>(r.unit.size()), SQLITE_STATIC);
  sqlite3_bind_int64(ins, 6, r.ts_ms);
  sqlite3_bind_int(ins, 7, r.quality);
  sqlite3_bind_text(ins, 8, r.frozen.data(), static_cast<int>(r.frozen.size()), SQLITE_STATIC);
  sqlite3_bind_null(ins, 9);
  check(db, sqlite3_step(ins), "insert");
  sqlite3_reset(ins);
}

// One round of every meter and quantity, stored untimed in both stores before a measurement:
// steady state, where the store's series dictionary already knows every meter/quantity.
Batch warm_up() { return make_batch(0, meters * 16); }

double baseline_rate(const Config& c, const std::string& path, const std::vector<Batch>& batches) {
  remove_db(path);
  sqlite3* db = nullptr;
  check(db, sqlite3_open(path.c_str(), &db), "open baseline");
  const std::string pragmas = std::string("PRAGMA journal_mode = WAL; PRAGMA synchronous = ") +
                              (c.sync == Sync::full ? "FULL" : "NORMAL") +
                              "; PRAGMA cache_size = -8192;"
                              "CREATE TABLE bare (seq INTEGER PRIMARY KEY, meter TEXT, "
                              "quantity TEXT, mantissa INTEGER, exponent INTEGER, unit TEXT, "
                              "ts INTEGER, quality INTEGER, frozen TEXT, freeze_ts INTEGER);";
  check(db, sqlite3_exec(db, pragmas.c_str(), nullptr, nullptr, nullptr), "baseline schema");
  sqlite3_stmt *ins = nullptr, *begin = nullptr, *commit = nullptr;
  check(db,
        sqlite3_prepare_v2(db,
                           "INSERT INTO bare (meter, quantity, mantissa, exponent, unit, ts, "
                           "quality, frozen, freeze_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &ins, nullptr),
        "prepare");
  check(db, sqlite3_prepare_v2(db, "BEGIN", -1, &begin, nullptr), "prepare");
  check(db, sqlite3_prepare_v2(db, "COMMIT", -1, &commit, nullptr), "prepare");
  std::uint64_t rows = 0;
  const Batch warm = warm_up();
  check(db, sqlite3_step(begin), "begin");
  sqlite3_reset(begin);
  for (const Reading& r : warm.readings) insert_bare(db, ins, r);
  check(db, sqlite3_step(commit), "commit");
  sqlite3_reset(commit);
  const auto t0 = Clock::now();
  for (const Batch& b : batches) {
    check(db, sqlite3_step(begin), "begin");
    sqlite3_reset(begin);
    for (const Reading& r : b.readings) insert_bare(db, ins, r);
    check(db, sqlite3_step(commit), "commit");
    sqlite3_reset(commit);
    rows += b.readings.size();
  }
  const double s = seconds_since(t0);
  sqlite3_finalize(ins);
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_close(db);
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

void bench_append(const Config& c, const std::string& dir) {
  std::printf(
      "\nappend: readings/s, one transaction per batch (best of %d; both tables warmed "
      "with one round of all %d series first)\n",
      c.reps, meters * 16);
  std::printf("  %6s %10s %14s %14s %7s\n", "batch", "readings", "store", "baseline", "ratio");
  for (const std::uint64_t batch : {1ULL, 100ULL, 1000ULL}) {
    const std::uint64_t total = std::max<std::uint64_t>(batch == 1 ? c.rows / 10 : c.rows, batch);
    std::vector<Batch> batches;
    for (std::uint64_t i = 0; i < total; i += batch) batches.push_back(make_batch(i, batch));
    double best_store = 0, best_base = 0;
    for (int rep = 0; rep < c.reps; ++rep) {  // interleaved, so both see the same machine
      best_base = std::max(best_base, baseline_rate(c, dir + "/baseline.db", batches));
      best_store = std::max(best_store, store_rate(c, dir + "/append.db", batches));
    }
    std::printf("  %6llu %10llu %14.0f %14.0f %7.2f\n", static_cast<unsigned long long>(batch),
                static_cast<unsigned long long>(total), best_store, best_base,
                best_store / best_base);
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
  {
    const std::string path = dir + "/small.db";
    remove_db(path);
    Store s = open_store(c, path);
    for (std::uint64_t i = 0; i < small_backlog; i += 1000) {
      if (!s.append(make_batch(i, 1000))) die("append");
    }
    small = measure_next(s, calls);
    remove_db(path);
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

  const auto t_open = Clock::now();
  Store s = open_store(c, path);
  const double open_ms = seconds_since(t_open) * 1e3;
  print_rss("after fill and reopen:");
  const NextCost big = measure_next(s, calls);
  print_rss("after the next_unsent runs:");

  auto st = s.stats();
  if (!st) die("stats");
  std::printf("  open with the backlog:              %10.1f ms\n", open_ms);
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
    } else if (a == "--smoke") {
      c.smoke = true;
      c.backlog = 5000;
      c.rows = 3000;
      c.reps = 1;
    } else {
      std::fprintf(stderr,
                   "usage: bench_buffer [--backlog N] [--rows N] [--reps N] [--dir DIR] "
                   "[--sync normal|full] [--smoke]\n");
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
  bench_append(c, dir);
  bench_ack(c, dir);
  bench_backlog(c, dir);
  std::filesystem::remove_all(dir);
  return 0;
}
