// Seqs across unclean stops (buffer.seq_gap), the clean-stop marker, the time-based checkpoint,
// eviction of in-flight rows, and check_invariants() itself.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "buffer/store.hpp"
#include "tests/buffer/support.hpp"

using namespace meterd::buffer;
using meterd::buffer::test::open_store;
using meterd::buffer::test::RawDb;
using meterd::buffer::test::readings_batch;
using meterd::buffer::test::TempDir;

namespace {

std::vector<std::int64_t> range(std::int64_t first, std::int64_t last) {
  std::vector<std::int64_t> v;
  for (std::int64_t s = first; s <= last; ++s) v.push_back(s);
  return v;
}

// What a power cut leaves of a Sync::normal store since its last checkpoint: the main file
// alone (the WAL was never synced). Copied while the store is open, as the disk would hold it.
void copy_main_file_only(const std::string& from, const std::string& to) {
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
}

// Every file of the database as it is on disk now: what a process crash (SIGKILL) leaves.
void copy_with_wal(const std::string& from, const std::string& to) {
  copy_main_file_only(from, to);
  std::filesystem::copy_file(from + "-wal", to + "-wal",
                             std::filesystem::copy_options::overwrite_existing);
}

struct Gap {
  std::int64_t seq = 0;
  std::string payload;
};

std::vector<Gap> seq_gaps(Store& s) {
  s.requeue_inflight();
  auto u = s.next_unsent(100'000);
  REQUIRE(u);
  std::vector<Gap> out;
  for (const Event& e : u->events) {
    if (e.type == "buffer.seq_gap") out.push_back(Gap{e.seq, e.payload_json});
  }
  return out;
}

std::string gap_payload(std::int64_t first, std::int64_t last) {
  return R"({"first":)" + std::to_string(first) + R"(,"last":)" + std::to_string(last) +
         R"(,"reason":"unclean stop"})";
}

}  // namespace

TEST_CASE("issue 8 repro: a power cut after a checkpoint never makes a seq repeat") {
  TempDir dir;
  const auto path = dir.file("b.db");
  const auto cut = dir.file("cut.db");
  Options o;
  o.sync = Sync::normal;
  o.seq_reserve = 1000;
  o.checkpoint_interval_ms = 0;  // the case of the issue: nothing but the explicit checkpoint
  {
    Store s = open_store(path, o);
    REQUIRE(s.append(readings_batch("m1", 10, 0)));  // seqs 1..10
    REQUIRE(s.checkpoint());
    auto r = s.append(readings_batch("m1", 5, 100));  // seqs 11..15, only in the WAL
    REQUIRE(r);
    CHECK(r->first_seq == 11);
    CHECK(r->last_seq == 15);
    CHECK(*s.ack(range(11, 15)) == 5);  // sent and acknowledged: the head-end has 11..15
    copy_main_file_only(path, cut);     // the power cut
  }
  Options oc = o;
  oc.now_ms = 1'700'000'123'000;
  Store s = open_store(cut, oc);
  REQUIRE(s.check_invariants());
  auto st = s.stats();
  REQUIRE(st);
  CHECK(st->readings == 10);  // 1..10 were durable
  CHECK(st->next_seq > 15);   // 11..15 reached the head-end: never again
  const auto gaps = seq_gaps(s);
  REQUIRE(gaps.size() == 1);
  // Everything from the first seq the durable state had not assigned up to the durable
  // reservation: 11..15 (lost with the WAL) and the reserved rest, never used.
  CHECK(gaps[0].payload == gap_payload(11, gaps[0].seq - 1));
  CHECK(gaps[0].seq - 1 >= 15);
  CHECK(st->next_seq == gaps[0].seq + 1);
  auto r = s.append(readings_batch("m1", 1, 0));
  REQUIRE(r);
  CHECK(r->first_seq == gaps[0].seq + 1);
  std::int64_t gap_ts = 0;
  REQUIRE(s.export_events("", 0, INT64_MAX, [&](const Event& e) {
    gap_ts = e.ts_ms;
    return true;
  }));
  CHECK(gap_ts == oc.now_ms);  // the caller's clock at open; the buffer reads none
}

TEST_CASE("a clean close leaves no gap; a crash names exactly the reserved and unused seqs") {
  TempDir dir;
  const auto path = dir.file("b.db");
  Options o;
  o.seq_reserve = 100;
  {
    Store s = open_store(path, o);
    REQUIRE(s.append(readings_batch("m1", 5, 0)));  // 1..5; reserved up to 5 + 2 + 100
    REQUIRE(s.close());
  }
  {
    Store s = open_store(path, o);
    CHECK(seq_gaps(s).empty());
    CHECK(s.stats()->next_seq == 6);                // a clean stop: seqs simply continue
    REQUIRE(s.append(readings_batch("m1", 3, 0)));  // 6..8
    REQUIRE(s.check_invariants());
    copy_with_wal(path, dir.file("crash.db"));  // SIGKILL now: the WAL is all there
  }                                             // (this one closes cleanly)
  {
    Store s = open_store(path, o);
    CHECK(seq_gaps(s).empty());
    CHECK(s.stats()->next_seq == 9);
  }
  Store s = open_store(dir.file("crash.db"), o);
  REQUIRE(s.check_invariants());
  const auto gaps = seq_gaps(s);
  REQUIRE(gaps.size() == 1);
  CHECK(gaps[0].payload == gap_payload(9, gaps[0].seq - 1));
  // The reservation's unused rest: the second open reserved 100 seqs past the 5 in use.
  CHECK(gaps[0].seq - 1 == 5 + 100);
  CHECK(s.stats()->readings == 8);  // nothing committed was lost
  // The gap notice is itself a row: acked, it is gone for good, and the next open after a
  // clean close adds none.
  const std::vector<std::int64_t> g{gaps[0].seq};
  CHECK(*s.ack(g) == 1);
  REQUIRE(s.close());
  Store again = open_store(dir.file("crash.db"), o);
  CHECK(seq_gaps(again).empty());
}

TEST_CASE("moving a new store over an old one on the same file: the old close marks nothing") {
  TempDir dir;
  const auto path = dir.file("b.db");
  Store s = open_store(path);
  REQUIRE(s.append(readings_batch("m1", 2, 0)));
  s = open_store(path);  // the new store opens while the old one is still open
  REQUIRE(s.append(readings_batch("m1", 2, 0)));
  RawDb raw(path);
  CHECK(raw.integer("SELECT clean FROM meta") == 0);  // still open: a cut now is unclean
}

TEST_CASE("Sync::normal: a time-based checkpoint bounds what a power cut takes") {
  TempDir dir;
  const auto path = dir.file("b.db");
  const auto cut = dir.file("cut.db");
  Options o;
  o.sync = Sync::normal;
  o.checkpoint_interval_ms = 60'000;
  o.now_ms = 1'000'000;
  Store s = open_store(path, o);
  REQUIRE(s.append(readings_batch("m1", 3, 0, 1'000'000 + 10'000)));  // 10 s later: not due
  copy_main_file_only(path, cut);
  {
    Store c = open_store(cut);
    CHECK(c.stats()->readings == 0);
  }
  REQUIRE(s.append(readings_batch("m1", 2, 0, 1'000'000 + 60'000)));  // 60 s: due
  copy_main_file_only(path, cut);
  {
    Store c = open_store(cut);
    CHECK(c.stats()->readings == 5);
  }
  // Nothing appended since: nothing to do, whatever the time.
  CHECK_FALSE(*s.checkpoint_if_due(1'000'000 + 600'000));
  REQUIRE(s.append(readings_batch("m1", 1, 0, 1'000'000 + 70'000)));
  CHECK_FALSE(*s.checkpoint_if_due(1'000'000 + 100'000));  // 40 s after the last one
  CHECK(*s.checkpoint_if_due(1'000'000 + 120'000));        // a quiet spell: the timer's call
  copy_main_file_only(path, cut);
  Store c = open_store(cut);
  CHECK(c.stats()->readings == 6);
}

TEST_CASE("evicting in-flight rows takes them out of the in-flight set") {
  TempDir dir;
  Options o;
  o.max_readings = 10;
  Store s = open_store(dir.file("b.db"), o);
  REQUIRE(s.append(readings_batch("m1", 10, 0)));  // 1..10
  auto u = s.next_unsent(6);
  REQUIRE(u);
  s.mark_inflight(u->seqs());  // 1..6 in flight
  CHECK(s.stats()->inflight == 6);
  auto handed = s.next_unsent(2);  // 7, 8 handed out, not yet marked
  REQUIRE(handed);
  auto r = s.append(readings_batch("m1", 8, 100));  // evicts 1..8
  REQUIRE(r);
  CHECK(r->evicted_readings == 8);
  CHECK(s.stats()->inflight == 0);  // 1..6 no longer exist
  s.mark_inflight(handed->seqs());  // 7, 8 were evicted between next_unsent and here
  CHECK(s.stats()->inflight == 0);
  REQUIRE(s.check_invariants());
  // What is left goes out: 9..18 and the notice.
  auto rest = s.next_unsent(100);
  REQUIRE(rest);
  CHECK(rest->readings.size() == 10);
  CHECK(rest->readings.front().seq == 9);
  REQUIRE(rest->events.size() == 1);
  CHECK(rest->events[0].type == "buffer.evicted");
}

TEST_CASE("evicting in-flight events spares in-flight notices") {
  TempDir dir;
  Options o;
  o.max_events = 2;
  Store s = open_store(dir.file("b.db"), o);
  for (int i = 0; i < 3; ++i) {
    Batch b;
    b.events.push_back(Event{0, "m1", "meter.offline", i, "{}"});
    REQUIRE(s.append(b));  // the 3rd evicts seq 1: notice 4
  }
  auto u = s.next_unsent(100);
  REQUIRE(u);
  s.mark_inflight(u->seqs());  // 2, 3, 4 (the notice)
  Batch b;
  b.events.push_back(Event{0, "m1", "meter.offline", 9, "{}"});
  REQUIRE(s.append(b));  // 5; evicts 2, 3 (not the notice): notice 6
  CHECK(s.stats()->inflight == 1);
  REQUIRE(s.check_invariants());
}

TEST_CASE("counters survive restarts, acks and eviction; check_invariants sees tampering") {
  TempDir dir;
  const auto path = dir.file("b.db");
  Options o;
  o.max_readings = 50;
  {
    Store s = open_store(path, o);
    for (int i = 0; i < 10; ++i) {
      Batch b = readings_batch("m" + std::to_string(i % 3), 9, i * 100);
      b.events.push_back(Event{0, "m1", "meter.offline", i, "{}"});
      REQUIRE(s.append(b));
      if (i % 3 == 0) {
        auto u = s.next_unsent(7);
        REQUIRE(u);
        REQUIRE(s.ack(u->seqs()));
      }
      REQUIRE(s.check_invariants());
    }
  }
  {
    Store s = open_store(path, o);
    REQUIRE(s.check_invariants());
  }
  {
    RawDb raw(path);
    REQUIRE(raw.exec("DELETE FROM readings WHERE seq = (SELECT max(seq) FROM readings)") ==
            SQLITE_OK);
  }
  Store s = open_store(path, o);
  auto c = s.check_invariants();
  REQUIRE_FALSE(c);
  CHECK(c.error().is(errc::corrupt));
  CHECK(c.error().message.find("readings: count(*)") != std::string::npos);
}
