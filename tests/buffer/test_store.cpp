// Unit tests of every Store API path.
#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "buffer/store.hpp"
#include "tests/buffer/support.hpp"

using namespace meterd::buffer;
using meterd::buffer::test::make_reading;
using meterd::buffer::test::open_store;
using meterd::buffer::test::RawDb;
using meterd::buffer::test::readings_batch;
using meterd::buffer::test::TempDir;

namespace {

std::vector<std::int64_t> all_seqs(Store& s) {
  auto u = s.next_unsent(1'000'000);
  REQUIRE(u);
  return u->seqs();
}

}  // namespace

TEST_CASE("a fresh store is empty, at the latest schema, in WAL mode") {
  TempDir dir;
  const auto path = dir.file("buffer.db");
  {
    Store s = open_store(path);
    CHECK(s.schema_version() == Store::latest_schema_version());
    auto st = s.stats();
    REQUIRE(st);
    CHECK(st->readings == 0);
    CHECK(st->events == 0);
    CHECK(st->next_seq == 1);
    CHECK_FALSE(st->oldest_unsent_ts_ms.has_value());
    CHECK(st->db_bytes > 0);
    auto u = s.next_unsent(10);
    REQUIRE(u);
    CHECK(u->empty());
  }
  RawDb raw(path);
  CHECK(raw.text("PRAGMA journal_mode") == "wal");
  CHECK(raw.text("PRAGMA integrity_check") == "ok");
}

TEST_CASE("append stores the exact values and next_unsent returns them in seq order") {
  TempDir dir;
  Store s = open_store(dir.file("b.db"));

  Batch b;
  b.now_ms = 1000;
  Reading big =
      make_reading("m0001", "energy.active.import.total", std::numeric_limits<std::int64_t>::max(),
                   -2, "kWh", 1'700'000'000'123);
  big.quality = 0x5;
  Reading neg =
      make_reading("m0001", "power.active.total", -123456789, -4, "kW", 1'700'000'000'124);
  Reading frozen =
      make_reading("m0002", "energy.active.import.total", 0, 0, "kWh", 1'699'920'000'000);
  frozen.frozen = "daily";
  frozen.freeze_ts_ms = 1'699'920'000'000;
  Reading unicode =
      make_reading("m0002", "temperature.meter", std::numeric_limits<std::int64_t>::min(), -1,
                   "\xC2\xB0"
                   "C",
                   5);
  Reading no_unit = make_reading("m0003", "power_factor.total", 999, -3, "", 6);
  b.readings = {big, neg, frozen, unicode, no_unit};
  b.events.push_back(Event{0, "m0001", "meter.offline", 1'700'000'000'200, R"({"since":"x"})"});
  b.events.push_back(Event{0, "", "gateway.start", 7, "{}"});

  auto res = s.append(b);
  REQUIRE_MESSAGE(res, (res ? "" : res.error().message));
  CHECK(res->first_seq == 1);
  CHECK(res->last_seq == 7);
  CHECK(res->evicted_readings == 0);

  auto u = s.next_unsent(100);
  REQUIRE(u);
  REQUIRE(u->readings.size() == 5);
  REQUIRE(u->events.size() == 2);
  for (std::size_t i = 0; i < 5; ++i) {
    Reading want = b.readings[i];
    want.seq = static_cast<std::int64_t>(i) + 1;
    CHECK(u->readings[i] == want);
  }
  CHECK(u->events[0].seq == 6);
  CHECK(u->events[0].meter == "m0001");
  CHECK(u->events[0].type == "meter.offline");
  CHECK(u->events[0].ts_ms == 1'700'000'000'200);
  CHECK(u->events[0].payload_json == R"({"since":"x"})");
  CHECK(u->events[1].seq == 7);
  CHECK(u->events[1].meter.empty());
  CHECK(u->seqs() == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7});

  // The series dictionary is reused: a second batch adds rows, not series.
  auto res2 = s.append(b);
  REQUIRE(res2);
  CHECK(res2->first_seq == 8);
  CHECK(res2->last_seq == 14);
}

TEST_CASE("an empty batch assigns nothing; bad input is refused and stores nothing") {
  TempDir dir;
  Store s = open_store(dir.file("b.db"));
  auto r = s.append(Batch{});
  REQUIRE(r);
  CHECK(r->first_seq == 0);
  CHECK(r->last_seq == 0);

  Batch bad = readings_batch("m1", 3, 100);
  bad.readings[2].meter.clear();
  auto e1 = s.append(bad);
  REQUIRE_FALSE(e1);
  CHECK(e1.error().is(errc::invalid_argument));
  CHECK(e1.error().code.category().name() == std::string("buffer"));

  Batch nul = readings_batch("m1", 1, 100);
  nul.readings[0].quantity = std::string("a\0b", 3);
  CHECK(s.append(nul).error().is(errc::invalid_argument));

  Batch no_type;
  no_type.events.push_back(Event{0, "m1", "", 1, "{}"});
  CHECK(s.append(no_type).error().is(errc::invalid_argument));

  Batch no_key;
  no_key.state.push_back(StateUpdate{"m1", "", "v"});
  CHECK(s.append(no_key).error().is(errc::invalid_argument));

  auto st = s.stats();
  REQUIRE(st);
  CHECK(st->readings == 0);
  CHECK(st->next_seq == 1);
}

TEST_CASE("events and readings share one seq and come out merged in seq order") {
  TempDir dir;
  Store s = open_store(dir.file("b.db"));
  for (int i = 0; i < 10; ++i) {
    Batch b = readings_batch("m1", 2, i * 10);
    if (i % 3 == 0) b.events.push_back(Event{0, "m1", "meter.online", i, "{}"});
    REQUIRE(s.append(b));
  }
  // 10 batches * 2 readings + 4 events = 24 rows, seqs 1..24.
  auto u = s.next_unsent(5);
  REQUIRE(u);
  CHECK(u->seqs() == std::vector<std::int64_t>{1, 2, 3, 4, 5});
  CHECK(u->readings.size() == 4);  // 1,2 readings, 3 event, 4,5 readings
  CHECK(u->events.size() == 1);
  CHECK(u->events[0].seq == 3);

  auto everything = all_seqs(s);
  REQUIRE(everything.size() == 24);
  for (std::size_t i = 0; i < everything.size(); ++i) {
    CHECK(everything[i] == static_cast<std::int64_t>(i) + 1);
  }
}

TEST_CASE("next_unsent_events hands out events ahead of a reading backlog") {
  // Catches an uplink fetch that only walks seq order (an outage report stuck behind a week of
  // readings) and one that hands an in-flight event out twice.
  TempDir dir;
  Store s = open_store(dir.file("b.db"));
  REQUIRE(s.append(readings_batch("m1", 50, 0)));                // seqs 1..50
  Batch b = readings_batch("m1", 3, 1000);                       // 51..53
  b.events.push_back(Event{0, "m1", "meter.offline", 7, "{}"});  // 54
  b.events.push_back(Event{0, "m2", "meter.online", 8, "{}"});   // 55
  REQUIRE(s.append(b));
  REQUIRE(s.append(Batch{{}, {Event{0, "", "x.y", 9, "{}"}}, {}, 0}));  // 56

  auto e = s.next_unsent_events(2);
  REQUIRE(e);
  REQUIRE(e->size() == 2);
  CHECK((*e)[0].seq == 54);
  CHECK((*e)[1].seq == 55);
  CHECK((*e)[0].type == "meter.offline");
  const std::vector<std::int64_t> sent{54};
  s.mark_inflight(sent);
  e = s.next_unsent_events(10);
  REQUIRE(e);
  REQUIRE(e->size() == 2);
  CHECK((*e)[0].seq == 55);
  CHECK((*e)[1].seq == 56);
  // Readings still come out from the lowest seq, and skip the event in flight.
  const std::vector<std::int64_t> more{55, 56};
  s.mark_inflight(more);
  CHECK(s.next_unsent_events(10)->empty());
  auto r = s.next_unsent(60);
  REQUIRE(r);
  CHECK(r->readings.size() == 53);
  CHECK(r->events.empty());
  // A requeue makes them unsent again.
  s.requeue_inflight();
  CHECK(s.next_unsent_events(10)->size() == 3);
  CHECK(s.check_invariants());
}

TEST_CASE("mark_inflight, ack and requeue_inflight") {
  TempDir dir;
  Store s = open_store(dir.file("b.db"));
  REQUIRE(s.append(readings_batch("m1", 10, 0)));

  auto first = s.next_unsent(4);
  REQUIRE(first);
  CHECK(first->seqs() == std::vector<std::int64_t>{1, 2, 3, 4});
  // next_unsent alone changes nothing.
  CHECK(s.next_unsent(4)->seqs() == first->seqs());

  const auto a = first->seqs();
  s.mark_inflight(a);
  auto second = s.next_unsent(4);
  REQUIRE(second);
  CHECK(second->seqs() == std::vector<std::int64_t>{5, 6, 7, 8});
  const auto b = second->seqs();
  s.mark_inflight(b);
  CHECK(s.stats()->inflight == 8);
  CHECK(s.next_unsent(100)->seqs() == std::vector<std::int64_t>{9, 10});

  SUBCASE("ack removes rows for good") {
    auto acked = s.ack(a);
    REQUIRE(acked);
    CHECK(*acked == 4);
    CHECK(s.stats()->readings == 6);
    CHECK(s.stats()->inflight == 4);
    CHECK(s.requeue_inflight() == 4);
    CHECK(s.next_unsent(100)->seqs() == std::vector<std::int64_t>{5, 6, 7, 8, 9, 10});
    // Acking again, or unknown seqs, deletes nothing and is no error.
    CHECK(*s.ack(a) == 0);
    const std::vector<std::int64_t> unknown{999, 1000};
    CHECK(*s.ack(unknown) == 0);
  }
  SUBCASE("requeue after a disconnect resends from the oldest") {
    CHECK(s.requeue_inflight() == 8);
    CHECK(s.stats()->inflight == 0);
    CHECK(s.next_unsent(3)->seqs() == std::vector<std::int64_t>{1, 2, 3});
  }
  SUBCASE("acks may arrive out of order and with gaps") {
    const std::vector<std::int64_t> some{8, 2, 6, 2, 5};  // unsorted, duplicate, gaps
    CHECK(*s.ack(some) == 4);
    s.requeue_inflight();
    CHECK(s.next_unsent(100)->seqs() == std::vector<std::int64_t>{1, 3, 4, 7, 9, 10});
  }
}

TEST_CASE("next_unsent skips in-flight rows that are not a prefix") {
  TempDir dir;
  Store s = open_store(dir.file("b.db"));
  REQUIRE(s.append(readings_batch("m1", 20, 0)));
  const std::vector<std::int64_t> holes{2, 3, 7, 8, 9, 15};
  s.mark_inflight(holes);
  CHECK(s.next_unsent(5)->seqs() == std::vector<std::int64_t>{1, 4, 5, 6, 10});
  const std::vector<std::int64_t> one{1};
  s.mark_inflight(one);
  CHECK(s.next_unsent(3)->seqs() == std::vector<std::int64_t>{4, 5, 6});
  const std::vector<std::int64_t> more{4, 5, 6, 10, 11, 12, 13, 14};
  s.mark_inflight(more);
  CHECK(s.next_unsent(10)->seqs() == std::vector<std::int64_t>{16, 17, 18, 19, 20});
  // Rows appended after the cursor moved are found too.
  REQUIRE(s.append(readings_batch("m1", 2, 100)));
  CHECK(s.next_unsent(10)->seqs() == std::vector<std::int64_t>{16, 17, 18, 19, 20, 21, 22});
}

TEST_CASE("seq is monotonic across restarts and never reused, even after acking the top rows") {
  TempDir dir;
  const auto path = dir.file("b.db");
  {
    Store s = open_store(path);
    REQUIRE(s.append(readings_batch("m1", 5, 0)));
    // Ack everything, including the highest seq: a naive max(seq)+1 would reuse 1..5.
    const std::vector<std::int64_t> all{1, 2, 3, 4, 5};
    CHECK(*s.ack(all) == 5);
  }
  {
    Store s = open_store(path);
    CHECK(s.stats()->next_seq == 6);
    auto r = s.append(readings_batch("m1", 2, 0));
    REQUIRE(r);
    CHECK(r->first_seq == 6);
    Batch ev;
    ev.events.push_back(Event{0, "m1", "meter.online", 1, "{}"});
    auto re = s.append(ev);
    REQUIRE(re);
    CHECK(re->first_seq == 8);
    const std::vector<std::int64_t> top{8};
    CHECK(*s.ack(top) == 1);
  }
  {
    Store s = open_store(path);
    CHECK(s.stats()->next_seq == 9);
    CHECK(s.stats()->readings == 2);
  }
}

TEST_CASE("stats reports rows, bytes and the oldest unsent time") {
  TempDir dir;
  Store s = open_store(dir.file("b.db"));
  REQUIRE(s.append(readings_batch("m1", 3, 0, 5000)));
  Batch ev;
  ev.events.push_back(Event{0, "", "gateway.start", 4000, "{}"});
  REQUIRE(s.append(ev));
  auto st = s.stats();
  REQUIRE(st);
  CHECK(st->readings == 3);
  CHECK(st->events == 1);
  CHECK(st->next_seq == 5);
  CHECK(st->oldest_unsent_ts_ms == 5000);  // seq 1, though the event has an older ts
  CHECK(st->db_bytes >= st->free_bytes);
  CHECK(st->wal_bytes > 0);
  const std::vector<std::int64_t> first{1, 2, 3};
  REQUIRE(s.ack(first));
  CHECK(s.stats()->oldest_unsent_ts_ms == 4000);
  const std::vector<std::int64_t> last{4};
  REQUIRE(s.ack(last));
  CHECK_FALSE(s.stats()->oldest_unsent_ts_ms.has_value());
}

TEST_CASE("export returns one meter's readings in a time range, in seq order") {
  TempDir dir;
  Store s = open_store(dir.file("b.db"));
  Batch b;
  for (int round = 0; round < 10; ++round) {
    for (const char* m : {"m1", "m2", "m3"}) {
      b.readings.push_back(make_reading(m, "voltage.l1", 2200 + round, -1, "V", 1000 * round));
      b.readings.push_back(make_reading(m, "current.l1", 50 + round, -2, "A", 1000 * round));
    }
  }
  Reading late = make_reading("m2", "energy.active.import.total", 42, -2, "kWh", 500);
  late.frozen = "daily";
  late.freeze_ts_ms = 0;
  b.readings.push_back(late);  // appended last, but its ts is early
  REQUIRE(s.append(b));

  std::vector<Reading> got;
  auto n = s.export_readings("m2", 0, 3000, [&](const Reading& r) {
    got.push_back(r);
    return true;
  });
  REQUIRE(n);
  CHECK(*n == 7);  // rounds 0,1,2 x 2 quantities + the frozen one
  REQUIRE(got.size() == 7);
  for (const Reading& r : got) CHECK(r.meter == "m2");
  CHECK(std::is_sorted(got.begin(), got.end(),
                       [](const Reading& x, const Reading& y) { return x.seq < y.seq; }));
  CHECK(got.back().frozen == "daily");
  CHECK(got.back().ts_ms == 500);
  CHECK(got.back().freeze_ts_ms == 0);

  // Half-open range, early stop, unknown meter, empty range.
  CHECK(*s.export_readings("m1", 1000, 2000, [](const Reading&) { return true; }) == 2);
  CHECK(*s.export_readings("m1", 0, 100000, [](const Reading&) { return false; }) == 1);
  CHECK(*s.export_readings("nope", 0, 100000, [](const Reading&) { return true; }) == 0);
  CHECK(*s.export_readings("m1", 5000, 5000, [](const Reading&) { return true; }) == 0);

  Batch ev;
  ev.events.push_back(Event{0, "m1", "meter.offline", 10, "{}"});
  ev.events.push_back(Event{0, "m2", "meter.offline", 20, "{}"});
  ev.events.push_back(Event{0, "m1", "meter.online", 30, "{}"});
  REQUIRE(s.append(ev));
  std::vector<std::string> types;
  auto ne = s.export_events("m1", 0, 30, [&](const Event& e) {
    types.push_back(e.type);
    return true;
  });
  REQUIRE(ne);
  CHECK(types == std::vector<std::string>{"meter.offline"});
}

TEST_CASE("export agrees with a brute-force filter across blocks, restarts, acks and eviction") {
  TempDir dir;
  const auto path = dir.file("b.db");
  Options o;
  o.max_readings = 15'000;
  std::mt19937 rng(7);

  auto brute = [](Store& s, const std::string& meter, std::int64_t from, std::int64_t to) {
    std::vector<std::int64_t> seqs;
    s.requeue_inflight();
    auto u = s.next_unsent(1'000'000);
    REQUIRE(u);
    for (const Reading& r : u->readings) {
      if (r.meter == meter && r.ts_ms >= from && r.ts_ms < to) seqs.push_back(r.seq);
    }
    return seqs;
  };
  auto exported = [](Store& s, const std::string& meter, std::int64_t from, std::int64_t to) {
    std::vector<std::int64_t> seqs;
    auto n = s.export_readings(meter, from, to, [&](const Reading& r) {
      seqs.push_back(r.seq);
      return true;
    });
    REQUIRE(n);
    return seqs;
  };
  auto compare = [&](Store& s) {
    std::uniform_int_distribution<std::int64_t> t(0, 22'000);
    for (int q = 0; q < 20; ++q) {
      std::int64_t a = t(rng), b = t(rng);
      if (a > b) std::swap(a, b);
      const std::string m = "m" + std::to_string(q % 4);
      CHECK(exported(s, m, a, b) == brute(s, m, a, b));
    }
  };
  std::int64_t ts = 0;
  auto append_some = [&](Store& s, int batches) {
    for (int i = 0; i < batches; ++i) {
      Batch b;
      for (int k = 0; k < 97; ++k) {
        Reading r = make_reading("m" + std::to_string(k % 4), "energy.active.import.total", ts, -2,
                                 "kWh", ts);
        if (k == 50 && i % 10 == 0) {  // a frozen value from long ago, now and then
          r.frozen = "daily";
          r.ts_ms = ts / 2;
          r.freeze_ts_ms = ts / 2;
        }
        b.readings.push_back(std::move(r));
        ++ts;
      }
      if (i % 7 == 0) b.events.push_back(Event{0, "m1", "x", ts, "{}"});
      REQUIRE(s.append(b));
    }
  };
  {
    Store s = open_store(path, o);
    append_some(s, 100);  // ~9.7 k readings: two closed blocks and an open one
    compare(s);
  }
  {
    Store s = open_store(path, o);  // the open block is rebuilt from its rows
    compare(s);
    append_some(s, 50);
    compare(s);
    std::vector<std::int64_t> head;
    for (std::int64_t q = 1; q <= 9000; ++q) head.push_back(q);
    REQUIRE(s.ack(head));
    compare(s);
    append_some(s, 100);  // past max_readings: evictions
    CHECK(s.stats()->evicted_readings > 0);
    compare(s);
  }
  Store s = open_store(path, o);
  compare(s);
  RawDb raw(path);
  // Summaries of blocks without readings are dropped.
  CHECK(raw.integer("SELECT count(*) FROM ts_blocks WHERE block < "
                    "(SELECT min(seq) >> 12 FROM readings)") == 0);
}

TEST_CASE("per-meter state: put/get, and committed together with a batch") {
  TempDir dir;
  const auto path = dir.file("b.db");
  {
    Store s = open_store(path);
    CHECK_FALSE(s.get_state("m1", "last_frozen_day")->has_value());
    REQUIRE(s.put_state("m1", "last_frozen_day", "2024-03-01"));
    REQUIRE(s.put_state("m1", "last_frozen_day", "2024-03-02"));
    REQUIRE(s.put_state("m2", "last_frozen_day", "2024-01-01"));
    CHECK(s.put_state("", "k", "v").error().is(errc::invalid_argument));

    Batch b = readings_batch("m1", 1, 0);
    b.events.push_back(Event{0, "m1", "meter.cover_open", 1, R"({"count":3})"});
    b.state.push_back(StateUpdate{"m1", "cover_open_count", "3"});
    REQUIRE(s.append(b));
  }
  Store s = open_store(path);
  CHECK(s.get_state("m1", "last_frozen_day")->value() == "2024-03-02");
  CHECK(s.get_state("m2", "last_frozen_day")->value() == "2024-01-01");
  CHECK(s.get_state("m1", "cover_open_count")->value() == "3");
  // A state-only batch commits too.
  Batch only;
  only.state.push_back(StateUpdate{"m1", "cover_open_count", "4"});
  auto r = s.append(only);
  REQUIRE(r);
  CHECK(r->first_seq == 0);
  CHECK(s.get_state("m1", "cover_open_count")->value() == "4");
}

TEST_CASE("max_readings evicts the oldest readings and says so in a buffer.evicted event") {
  TempDir dir;
  const auto path = dir.file("b.db");
  Options o;
  o.max_readings = 10;
  {
    Store s = open_store(path, o);
    Batch ev;
    ev.events.push_back(Event{0, "m1", "meter.offline", 1, "{}"});
    REQUIRE(s.append(ev));                               // seq 1
    REQUIRE(s.append(readings_batch("m1", 10, 100)));    // seqs 2..11, at the cap
    auto r = s.append(readings_batch("m1", 3, 200, 9));  // seqs 12..14, evicts 2..4
    REQUIRE(r);
    CHECK(r->evicted_readings == 3);
    CHECK(r->last_seq == 14);

    auto st = s.stats();
    CHECK(st->readings == 10);
    CHECK(st->events == 2);
    CHECK(st->evicted_readings == 3);

    auto u = s.next_unsent(100);
    REQUIRE(u);
    REQUIRE(u->readings.size() == 10);
    CHECK(u->readings.front().seq == 5);  // events last: the older event stayed
    REQUIRE(u->events.size() == 2);
    CHECK(u->events[0].seq == 1);
    const Event& notice = u->events[1];
    CHECK(notice.seq == 15);
    CHECK(notice.type == "buffer.evicted");
    CHECK(notice.meter.empty());
    CHECK(notice.ts_ms == 9);  // the batch's now_ms: the buffer reads no clock
    CHECK(notice.payload_json == R"({"kind":"readings","count":3,"first_seq":2,"last_seq":4})");
  }
  SUBCASE("an unread notice is extended instead of piling up") {
    Store s = open_store(path, o);                    // after a restart a new notice starts
    REQUIRE(s.append(readings_batch("m1", 2, 300)));  // evicts 5,6 -> new notice 18
    REQUIRE(s.append(readings_batch("m1", 2, 400)));  // evicts 7,8 -> extends 18
    auto u = s.next_unsent(100);
    REQUIRE(u->events.size() == 3);
    CHECK(u->events[2].seq == 18);
    CHECK(u->events[2].payload_json ==
          R"({"kind":"readings","count":4,"first_seq":5,"last_seq":8})");
    // Read out once, it is frozen: the next eviction makes a new notice.
    auto r = s.append(readings_batch("m1", 1, 500));  // evicts 9
    REQUIRE(r);
    auto u2 = s.next_unsent(100);
    REQUIRE(u2->events.size() == 4);
    CHECK(u2->events[2].payload_json ==
          R"({"kind":"readings","count":4,"first_seq":5,"last_seq":8})");
    CHECK(u2->events[3].payload_json ==
          R"({"kind":"readings","count":1,"first_seq":9,"last_seq":9})");
    CHECK(s.stats()->evicted_readings == 8);  // 3 before the restart + 5: persisted
  }
  SUBCASE("a batch larger than the cap keeps only its newest rows") {
    Store s = open_store(path, o);
    auto r = s.append(readings_batch("m1", 25, 1000));
    REQUIRE(r);
    CHECK(r->evicted_readings == 25);
    auto u = s.next_unsent(100);
    REQUIRE(u->readings.size() == 10);
    CHECK(u->readings.front().mantissa == 1015);
    CHECK(u->readings.back().seq == r->last_seq);
  }
}

TEST_CASE("max_events evicts the oldest events but never the eviction notices") {
  TempDir dir;
  Options o;
  o.max_events = 3;
  Store s = open_store(dir.file("b.db"), o);
  for (int i = 0; i < 5; ++i) {
    Batch b;
    b.now_ms = 100 + i;
    b.events.push_back(Event{0, "m1", "meter.offline", i, "{\"i\":" + std::to_string(i) + "}"});
    REQUIRE(s.append(b));
  }
  auto st = s.stats();
  CHECK(st->evicted_events == 3);
  auto u = s.next_unsent(100);
  REQUIRE(u);
  std::vector<std::string> payloads;
  for (const Event& e : u->events) payloads.push_back(e.payload_json);
  // The 4th append evicts seq 1 (notice 5), the 5th seqs 2 and 3 (notice 5 extended).
  CHECK(payloads == std::vector<std::string>{
                        R"({"i":3})", R"({"kind":"events","count":3,"first_seq":1,"last_seq":3})",
                        R"({"i":4})"});
}

TEST_CASE("max_bytes keeps the file bounded by evicting readings first") {
  TempDir dir;
  const auto path = dir.file("b.db");
  Options o;
  o.max_readings = 0;  // only the byte cap
  o.max_bytes = 256 * 1024;
  Store s = open_store(path, o);
  Batch ev;
  ev.events.push_back(Event{0, "m1", "meter.offline", 1, "{}"});
  REQUIRE(s.append(ev));
  std::uint64_t evicted = 0;
  for (int i = 0; i < 100; ++i) {
    auto r = s.append(readings_batch("m" + std::to_string(i % 7), 200, i * 1000, i * 1000));
    REQUIRE(r);
    evicted += r->evicted_readings;
  }
  auto st = s.stats();
  REQUIRE(st);
  CHECK(evicted > 0);
  CHECK(st->evicted_readings == evicted);
  CHECK(st->readings + evicted == 20'000);
  CHECK(st->db_bytes - st->free_bytes <= o.max_bytes);
  // The file does not grow past the cap by more than a batch's worth of pages.
  CHECK(st->db_bytes <= o.max_bytes + 64 * 1024);
  auto u = s.next_unsent(1);
  REQUIRE(u);
  REQUIRE(u->events.size() == 1);
  CHECK(u->events[0].seq == 1);  // the event outlived thousands of newer readings
}

TEST_CASE(":memory: works for component tests") {
  Options o;
  o.path = ":memory:";
  auto s = Store::open(o);
  REQUIRE(s);
  REQUIRE(s->append(readings_batch("m1", 3, 0)));
  CHECK(s->next_unsent(10)->size() == 3);
  CHECK(s->stats()->wal_bytes == 0);
  REQUIRE(s->checkpoint());
}

TEST_CASE("Sync::full opens and stores; checkpoint truncates the WAL") {
  TempDir dir;
  Options o;
  o.sync = Sync::full;
  Store s = open_store(dir.file("b.db"), o);
  REQUIRE(s.append(readings_batch("m1", 100, 0)));
  CHECK(s.stats()->wal_bytes > 0);
  REQUIRE(s.checkpoint());
  CHECK(s.stats()->wal_bytes == 0);
  CHECK(s.next_unsent(1000)->size() == 100);
}

TEST_CASE("options and errors") {
  Options o;
  CHECK(Store::open(o).error().is(errc::invalid_argument));
  o.path = "/nonexistent-dir-meterd/x/buffer.db";
  auto r = Store::open(o);
  REQUIRE_FALSE(r);
  CHECK(r.error().is(errc::cannot_open));
  CHECK(r.error().sqlite_code != 0);
  CHECK(r.error().message.find("/nonexistent-dir-meterd/x/buffer.db") != std::string::npos);
  CHECK(make_error_code(errc::disk_full).message() == "disk full");
  CHECK(std::error_code(errc::schema_too_new) == make_error_code(errc::schema_too_new));
}

TEST_CASE("a moved store keeps working") {
  TempDir dir;
  Store a = open_store(dir.file("b.db"));
  REQUIRE(a.append(readings_batch("m1", 2, 0)));
  Store b = std::move(a);
  CHECK(b.next_unsent(10)->size() == 2);
}
