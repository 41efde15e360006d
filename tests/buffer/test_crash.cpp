// Crash test: a child process appends (and acks) batches in a loop and is SIGKILLed at a random
// moment, 50 times over the same database. After each kill the store must open, pass
// PRAGMA integrity_check and check_invariants(), hold every batch whose append had returned
// success (and no batch whose ack had returned) unless a buffer.evicted notice names it, keep
// every batch whole, never hand out a seq twice, and name in at most one buffer.seq_gap event
// seqs that were never reported. One child in three runs with a cap, so kills land in
// eviction; every tenth database is first taken back to schema version 2, so later kills land
// in migration 3 too, not only the first.
#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buffer/store.hpp"
#include "tests/buffer/support.hpp"

extern char** environ;

using namespace meterd::buffer;
using meterd::buffer::test::RawDb;
using meterd::buffer::test::TempDir;

namespace {

constexpr int kills = 50;

std::int64_t batch_rows(std::int64_t batch) { return batch % 40 + 1; }

struct Reported {
  std::int64_t first = 0;
  std::int64_t last = 0;
  bool acked = false;
  bool maybe_acked = false;  // an ack was due but the kill came before its report
};

// Runs the child, SIGKILLs it `run_for` after its first reported append (or after the spawn when
// !mid_stream, which may land in open or a migration), and returns all it wrote to stdout.
// Counting from the first append keeps the test meaningful on a slow or sanitized build.
std::string run_and_kill(const std::string& db, bool full_sync, bool mid_stream,
                         std::chrono::microseconds run_for, std::uint64_t max_readings) {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  std::string exe = METERD_BUFFER_CRASH_CHILD;
  std::string mode = full_sync ? "full" : "normal";
  std::string path = db;
  std::string cap = std::to_string(max_readings);
  char* argv[] = {exe.data(), path.data(), mode.data(), max_readings > 0 ? cap.data() : nullptr,
                  nullptr};
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  REQUIRE_MESSAGE(rc == 0, "cannot spawn " << exe);

  // Keep draining the pipe while the child runs, so it never blocks on a full pipe.
  std::string out;
  char buf[65536];
  auto deadline = std::chrono::steady_clock::now() +
                  (mid_stream ? std::chrono::microseconds(std::chrono::seconds(20)) : run_for);
  bool started = !mid_stream;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) > 0) {
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n > 0) out.append(buf, static_cast<std::size_t>(n));
      if (n == 0) break;  // the child exited by itself: caught below
      if (!started && !out.empty()) {
        started = true;
        deadline = std::chrono::steady_clock::now() + run_for;
      }
    }
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  REQUIRE_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
                  "the child exited by itself (status " << status << "): see its stderr");
  return out;
}

// Takes the database back to schema version 2 (migration 3 only added meta columns), so the
// next open runs migration 3 again.
void downgrade_to_v2(const std::string& db) {
  RawDb raw(db);
  REQUIRE(raw.exec("ALTER TABLE meta DROP COLUMN next_seq; ALTER TABLE meta DROP COLUMN readings;"
                   "ALTER TABLE meta DROP COLUMN events; ALTER TABLE meta DROP COLUMN clean;"
                   "ALTER TABLE meta DROP COLUMN session; PRAGMA user_version = 2;") == SQLITE_OK);
}

// The reading seq ranges named by buffer.evicted notices (the crash child never acks them).
struct EvictedRanges {
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  std::int64_t highest = 0;

  explicit EvictedRanges(const RawDb& raw) {
    for (const std::string& p :
         raw.column("SELECT json_extract(payload, '$.first_seq') || ' ' || "
                    "json_extract(payload, '$.last_seq') FROM events WHERE type = 'buffer.evicted' "
                    "AND json_extract(payload, '$.kind') = 'readings'")) {
      std::istringstream in(p);
      std::int64_t a = 0, b = 0;
      in >> a >> b;
      ranges.emplace_back(a, b);
      highest = std::max(highest, b);
    }
  }
  bool has(std::int64_t seq) const {
    for (const auto& [a, b] : ranges) {
      if (seq >= a && seq <= b) return true;
    }
    return false;
  }
  std::int64_t count(std::int64_t first, std::int64_t last) const {
    std::int64_t n = 0;
    for (std::int64_t s = first; s <= last; ++s) n += has(s);
    return n;
  }
};

}  // namespace

TEST_CASE("SIGKILL at random moments, 50 times: nothing acknowledged is lost, seq never reused") {
  TempDir dir;
  const auto db = dir.file("crash.db");
  const auto seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> run_us(0, 40'000);

  std::map<std::int64_t, Reported> reported;  // every batch ever reported
  std::int64_t max_seq_reported = 0;
  std::int64_t last_next_seq = 0;
  std::size_t total_appends = 0;
  std::int64_t last_gap_seq = 0;
  int downgrades = 0, gaps = 0;

  for (int kill_no = 0; kill_no < kills; ++kill_no) {
    INFO("kill #" << kill_no);
    const std::int64_t seq_before = max_seq_reported;
    if (kill_no % 10 == 0 && kill_no > 0) {
      downgrade_to_v2(db);
      ++downgrades;
    }
    // One kill in ten counts from the spawn and may hit open or a migration.
    const std::string out =
        run_and_kill(db, kill_no % 2 == 1, kill_no % 10 != 0,
                     std::chrono::microseconds(run_us(rng)), kill_no % 3 == 2 ? 1500 : 0);

    std::vector<std::int64_t> this_run;
    std::istringstream lines(out);
    std::string tag;
    while (lines >> tag) {
      std::int64_t batch = 0;
      lines >> batch;
      if (tag == "A") {
        Reported r;
        lines >> r.first >> r.last;
        REQUIRE(reported.count(batch) == 0);
        CHECK(r.first > max_seq_reported);  // seq never goes backwards, across kills too
        CHECK(r.last >= r.first);
        max_seq_reported = r.last;
        reported[batch] = r;
        this_run.push_back(batch);
      } else {
        REQUIRE(tag == "K");
        REQUIRE(reported.count(batch) == 1);
        reported[batch].acked = true;
      }
    }
    total_appends += this_run.size();

    Options o;
    o.path = db;
    auto opened = Store::open(o);
    REQUIRE_MESSAGE(opened, (opened ? "" : opened.error().message));
    Store store = std::move(opened).value();
    RawDb raw(db);
    REQUIRE(raw.text("PRAGMA integrity_check") == "ok");
    {
      auto inv = store.check_invariants();
      CHECK_MESSAGE(inv, (inv ? "" : inv.error().message));
    }
    const EvictedRanges evicted(raw);
    // The child's unclean stop: this open named what will never come, seqs nobody reported.
    const auto new_gaps = raw.column(
        "SELECT seq || ' ' || json_extract(payload, '$.first') || ' ' || "
        "json_extract(payload, '$.last') FROM events WHERE type = 'buffer.seq_gap' AND seq > " +
        std::to_string(last_gap_seq));
    CHECK(new_gaps.size() <= 1);
    for (const std::string& g : new_gaps) {
      std::istringstream in(g);
      std::int64_t seq = 0, first = 0, last = 0;
      in >> seq >> first >> last;
      CHECK(first > max_seq_reported);
      CHECK(last >= first);
      CHECK(seq == last + 1);
      CHECK(raw.integer("SELECT count(*) FROM readings WHERE seq BETWEEN " + std::to_string(first) +
                        " AND " + std::to_string(last)) == 0);
      last_gap_seq = seq;
      ++gaps;
    }

    auto st = store.stats();
    REQUIRE(st);
    CHECK(st->next_seq > max_seq_reported);
    CHECK(st->next_seq >= last_next_seq);
    last_next_seq = st->next_seq;

    // Every batch reported in this run is there, whole and unchanged, unless it was acked.
    for (const std::int64_t b : this_run) {
      const Reported& r = reported[b];
      const std::string range =
          " WHERE seq BETWEEN " + std::to_string(r.first) + " AND " + std::to_string(r.last);
      const auto rows = raw.integer("SELECT count(*) FROM readings" + range);
      if (r.acked) {
        CHECK(rows == 0);
        continue;
      }
      // An ack in progress at the kill may or may not have committed: all or nothing.
      if (b % 3 == 0 && b == this_run.back()) reported[b].maybe_acked = true;
      if (rows == 0 && r.maybe_acked) continue;
      const std::int64_t kept = batch_rows(b) - evicted.count(r.first, r.first + batch_rows(b) - 1);
      CHECK(rows == kept);
      CHECK(raw.integer("SELECT count(*) FROM readings" + range +
                        " AND mantissa = " + std::to_string(b * 1000) + " + (seq - " +
                        std::to_string(r.first) + ")") == kept);
      CHECK(raw.integer("SELECT count(*) FROM events" + range) == (b % 5 == 0 ? 1 : 0));
    }

    // Whatever else this run committed (the batch in flight at the kill) is whole too, and the
    // state committed with it agrees.
    const auto groups = raw.column(
        "SELECT (mantissa / 1000) || ' ' || count(*) || ' ' || (max(seq) - min(seq) + 1) || "
        "' ' || min(seq) FROM readings WHERE seq > " +
        std::to_string(seq_before) + " GROUP BY mantissa / 1000");
    std::int64_t max_batch_stored = -1;
    for (const std::string& g : groups) {
      std::istringstream in(g);
      std::int64_t b = 0, count = 0, span = 0, first = 0;
      in >> b >> count >> span >> first;
      CHECK(span == count);  // eviction takes the oldest rows: what is left is contiguous
      if (!evicted.has(first - 1)) CHECK(count == batch_rows(b));
      max_batch_stored = std::max(max_batch_stored, b);
    }
    auto last = store.get_state("crash", "last_batch");
    REQUIRE(last);
    if (!this_run.empty()) {
      REQUIRE(last->has_value());
      CHECK(std::stoll(**last) >= this_run.back());
    }
    if (last->has_value()) CHECK(max_batch_stored <= std::stoll(**last));

    // Export's time summary survived the kill too: it finds exactly what a scan finds.
    const std::string meter = "m" + std::to_string(kill_no % 13);
    const std::int64_t from = std::uniform_int_distribution<std::int64_t>(0, 1000)(rng) * 1000;
    const std::int64_t to = from + 500'000;
    std::vector<std::string> exported;
    auto n = store.export_readings(meter, from, to, [&](const Reading& r) {
      exported.push_back(std::to_string(r.seq));
      return true;
    });
    REQUIRE(n);
    CHECK(exported == raw.column("SELECT r.seq FROM readings r JOIN series s ON s.id = r.series "
                                 "WHERE s.meter = '" +
                                 meter + "' AND r.ts >= " + std::to_string(from) + " AND r.ts < " +
                                 std::to_string(to) + " ORDER BY r.seq"));
  }

  // Finally every batch ever reported and not acked is still there, row for row.
  RawDb raw(db);
  const EvictedRanges evicted(raw);
  std::map<std::int64_t, std::int64_t> mantissa_by_seq;
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(raw.get(), "SELECT seq, mantissa FROM readings", -1, &s, nullptr) ==
          SQLITE_OK);
  while (sqlite3_step(s) == SQLITE_ROW) {
    mantissa_by_seq[sqlite3_column_int64(s, 0)] = sqlite3_column_int64(s, 1);
  }
  sqlite3_finalize(s);
  std::size_t missing = 0, present = 0;
  for (const auto& [b, r] : reported) {
    for (std::int64_t i = 0; i < batch_rows(b); ++i) {
      auto it = mantissa_by_seq.find(r.first + i);
      if (it == mantissa_by_seq.end() && (r.maybe_acked || evicted.has(r.first + i))) continue;
      if (r.acked) {
        missing += it != mantissa_by_seq.end();
      } else if (it == mantissa_by_seq.end() || it->second != b * 1000 + i) {
        ++missing;
      } else {
        ++present;
      }
    }
  }
  CHECK(missing == 0);
  MESSAGE(kills << " kills, " << total_appends << " acknowledged appends, " << present
                << " readings verified, " << evicted.ranges.size() << " eviction notices, " << gaps
                << " seq gaps, " << downgrades << " runs through migration 3");
  CHECK(total_appends > 0);
  CHECK(evicted.ranges.size() > 0);
  CHECK(gaps > 0);
}
