// buffer::Reader: the read-only view meterctl's offline export uses, beside a running Store or
// with it closed.
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "buffer/reader.hpp"
#include "tests/buffer/support.hpp"

using namespace meterd::buffer;
using meterd::buffer::test::make_reading;
using meterd::buffer::test::open_store;
using meterd::buffer::test::RawDb;
using meterd::buffer::test::TempDir;

namespace {

constexpr std::int64_t t0 = 1'700'000'000'000;
constexpr std::int64_t all_from = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t all_to = std::numeric_limits<std::int64_t>::max();

Reader open_reader(const std::string& path) {
  auto r = Reader::open(path);
  REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
  return std::move(r).value();
}

template <typename Source>
std::vector<Reading> readings_of(Source& src, const std::string& meter, std::int64_t from,
                                 std::int64_t to) {
  std::vector<Reading> out;
  auto n = src.export_readings(meter, from, to, [&](const Reading& r) {
    out.push_back(r);
    return true;
  });
  REQUIRE_MESSAGE(n.has_value(), (n ? "" : n.error().message));
  CHECK(*n == out.size());
  return out;
}

template <typename Source>
std::vector<Event> events_of(Source& src, const std::string& meter) {
  std::vector<Event> out;
  auto n = src.export_events(meter, all_from, all_to, [&](const Event& e) {
    out.push_back(e);
    return true;
  });
  REQUIRE_MESSAGE(n.has_value(), (n ? "" : n.error().message));
  return out;
}

// Three meters interleaved, 3 x 3000 readings: several closed ts_blocks and one open block
// that only the Store's memory summarises. m3 has frozen data with a freeze time.
Batch mixed_batch(std::int64_t first_ts, int n) {
  Batch b;
  b.now_ms = first_ts;
  for (int i = 0; i < n; ++i) {
    const std::int64_t ts = first_ts + i * 1000;
    b.readings.push_back(
        make_reading("m1", "energy.active.import.total", 1'234'500 + i, -2, "kWh", ts));
    b.readings.push_back(make_reading("m2", "voltage.l1", 2300 + i % 7, -1, "V", ts));
    Reading f = make_reading("m3", "energy.active.import.total", 10 + i, 0, "kWh", ts + 500);
    f.frozen = "daily";
    f.freeze_ts_ms = ts;
    f.quality = i % 2;
    b.readings.push_back(f);
  }
  return b;
}

bool has_seq_gap(Store& store) {
  auto unsent = store.next_unsent(1'000'000);
  REQUIRE(unsent.has_value());
  for (const Event& e : unsent->events)
    if (e.type == "buffer.seq_gap") return true;
  return false;
}

}  // namespace

TEST_CASE("Reader exports what the Store exports, while the Store is open (WAL) and after close") {
  TempDir dir;
  const std::string path = dir.file("buffer.db");
  Store store = open_store(path);
  REQUIRE(store.append(mixed_batch(t0, 3000)).has_value());
  Batch ev;
  ev.now_ms = t0;
  ev.events.push_back({0, "m2", "meter.offline", t0 + 5000, R"({"failures":3,"kwh":0.10})"});
  REQUIRE(store.append(ev).has_value());

  Reader reader = open_reader(path);
  // Whole range, a range cutting blocks in the middle, a range inside the open block only, and an
  // empty one. from is inclusive, to exclusive: t0 + 1000 * 100 is in, t0 + 1000 * 2900 is out.
  const std::pair<std::int64_t, std::int64_t> ranges[] = {{all_from, all_to},
                                                          {t0 + 1000 * 100, t0 + 1000 * 2900},
                                                          {t0 + 1000 * 2990, all_to},
                                                          {t0 + 1000 * 5000, all_to}};
  for (const auto& m : {"m1", "m2", "m3", "nobody"}) {
    for (const auto& [from, to] : ranges) {
      CAPTURE(m);
      CAPTURE(from);
      CHECK(readings_of(reader, m, from, to) == readings_of(store, m, from, to));
    }
  }
  CHECK(readings_of(reader, "m1", t0 + 1000 * 100, t0 + 1000 * 2900).size() == 2800);
  CHECK(events_of(reader, "m2") == events_of(store, "m2"));
  CHECK(events_of(reader, "m2").at(0).payload_json == R"({"failures":3,"kwh":0.10})");

  // The store goes on while the reader stays open: new rows and a new series appear.
  Batch more = mixed_batch(t0 + 3'000'000, 1500);
  more.readings.push_back(make_reading("m4", "current.l1", 512, -3, "A", t0 + 4'000'000));
  REQUIRE(store.append(more).has_value());
  for (const auto& m : {"m1", "m3", "m4"}) {
    CHECK(readings_of(reader, m, all_from, all_to) == readings_of(store, m, all_from, all_to));
  }
  CHECK(readings_of(reader, "m4", all_from, all_to).size() == 1);

  // Stats agree on what both can know (in flight lives in the daemon's memory only).
  auto ss = store.stats();
  auto rs = reader.stats();
  REQUIRE(ss.has_value());
  REQUIRE(rs.has_value());
  CHECK(rs->readings == ss->readings);
  CHECK(rs->events == ss->events);
  CHECK(rs->next_seq == ss->next_seq);
  CHECK(rs->oldest_unsent_ts_ms == ss->oldest_unsent_ts_ms);
  CHECK(rs->db_bytes == ss->db_bytes);

  std::vector<Reading> before_close = readings_of(store, "m3", all_from, all_to);
  REQUIRE(store.close().has_value());
  CHECK(readings_of(reader, "m3", all_from, all_to) == before_close);
  Reader after = open_reader(path);
  CHECK(readings_of(after, "m3", all_from, all_to) == before_close);
  CHECK(readings_of(after, "m1", t0, t0 + 1000).size() == 1);
}

TEST_CASE("Opening a Reader writes nothing: the next Store::open reports no seq gap") {
  TempDir dir;
  const std::string path = dir.file("buffer.db");
  {
    Store store = open_store(path);
    REQUIRE(store.append(mixed_batch(t0, 10)).has_value());
    REQUIRE(store.close().has_value());
  }
  {
    // A careless Reader built on Store::open would clear the clean-stop marker here and, never
    // closing cleanly through it, leave the next open to name a seq gap.
    Reader reader = open_reader(path);
    CHECK(readings_of(reader, "m1", all_from, all_to).size() == 10);
    CHECK(RawDb(path).integer("SELECT clean FROM meta") == 1);
  }
  {
    Store store = open_store(path);
    CHECK_FALSE(has_seq_gap(store));
    // A reader beside the running store, still open when the store stops cleanly.
    Reader reader = open_reader(path);
    CHECK(reader.meters().has_value());
    REQUIRE(store.close().has_value());
  }
  Store store = open_store(path);
  CHECK_FALSE(has_seq_gap(store));
}

TEST_CASE("A missing file is cannot_open and is not created") {
  TempDir dir;
  const std::string path = dir.file("buffer.db");
  auto r = Reader::open(path);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().is(errc::cannot_open));
  // A careless SQLITE_OPEN_CREATE would leave an empty database behind.
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(std::filesystem::is_empty(dir.path()));
}

TEST_CASE("Reader refuses a newer schema, a foreign file and an empty one") {
  TempDir dir;
  const std::string path = dir.file("buffer.db");
  {
    Store store = open_store(path);
    REQUIRE(store.close().has_value());
  }
  RawDb(path).exec("PRAGMA user_version = " + std::to_string(Store::latest_schema_version() + 1));
  auto r = Reader::open(path);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().is(errc::schema_too_new));

  const std::string foreign = dir.file("other.db");
  RawDb(foreign).exec("CREATE TABLE t (x)");
  auto f = Reader::open(foreign);
  REQUIRE_FALSE(f.has_value());
  CHECK(f.error().is(errc::not_a_buffer));

  const std::string empty = dir.file("empty.db");
  RawDb{empty};
  auto e = Reader::open(empty);
  REQUIRE_FALSE(e.has_value());
  CHECK(e.error().is(errc::not_a_buffer));
}

TEST_CASE("meters() lists every meter with readings or events, sorted, gateway events left out") {
  TempDir dir;
  const std::string path = dir.file("buffer.db");
  Store store = open_store(path);
  Batch b;
  b.now_ms = t0;
  b.readings.push_back(make_reading("m10", "voltage.l1", 2301, -1, "V", t0));
  b.readings.push_back(make_reading("m02", "voltage.l1", 2302, -1, "V", t0));
  b.events.push_back({0, "m07", "meter.offline", t0, "{}"});
  b.events.push_back({0, "", "gateway.started", t0, "{}"});
  REQUIRE(store.append(b).has_value());
  Reader reader = open_reader(path);
  auto m = reader.meters();
  REQUIRE(m.has_value());
  CHECK(*m == std::vector<std::string>{"m02", "m07", "m10"});
}
