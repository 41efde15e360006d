// Numbered migrations: from an empty database, from an older one, and refusals.
#include <fstream>
#include <iterator>
#include <string>

#include <doctest/doctest.h>

#include "buffer/detail/migrations.hpp"
#include "buffer/store.hpp"
#include "tests/buffer/support.hpp"

using namespace meterd::buffer;
using meterd::buffer::test::RawDb;
using meterd::buffer::test::readings_batch;
using meterd::buffer::test::TempDir;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

Result<Store> open_at(const std::string& path) {
  Options o;
  o.path = path;
  return Store::open(o);
}

}  // namespace

TEST_CASE("migrations are numbered 1..N without gaps") {
  const auto all = detail::migrations();
  REQUIRE_FALSE(all.empty());
  for (std::size_t i = 0; i < all.size(); ++i) {
    CHECK(all[i].version == static_cast<int>(i) + 1);
  }
  CHECK(detail::latest_version() == all.back().version);
  CHECK(Store::latest_schema_version() == detail::latest_version());
}

TEST_CASE("an empty database is migrated to the latest version") {
  TempDir dir;
  const auto path = dir.file("b.db");
  {
    auto s = open_at(path);
    REQUIRE(s);
    CHECK(s->schema_version() == detail::latest_version());
  }
  RawDb raw(path);
  CHECK(raw.integer("PRAGMA user_version") == detail::latest_version());
  CHECK(raw.integer("PRAGMA application_id") == detail::application_id);
  const auto tables =
      raw.column("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name");
  CHECK(tables == std::vector<std::string>{"events", "meta", "meter_state", "readings", "series",
                                           "ts_blocks"});
  // Readings carry no secondary index: it would cost ~20 bytes and much of the append rate.
  CHECK(raw.column("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'readings'")
            .empty());
  // Opening again applies nothing and changes nothing.
  auto again = open_at(path);
  REQUIRE(again);
  CHECK(again->schema_version() == detail::latest_version());
}

TEST_CASE("a version-1 database with rows is migrated, rows intact") {
  TempDir dir;
  const auto path = dir.file("b.db");
  {
    RawDb raw(path);
    REQUIRE(raw.exec("PRAGMA journal_mode = WAL") == SQLITE_OK);
    auto v = detail::migrate(raw.get(), 1);
    REQUIRE(v);
    CHECK(*v == 1);
    // Rows as a version-1 meterd would have written them.
    REQUIRE(raw.exec("INSERT INTO series VALUES (1, 'm0001', 'energy.active.import.total', "
                     "'kWh', '');"
                     "INSERT INTO readings VALUES (7, 1, 1234567, -2, 1700000000000, 0, NULL);"
                     "INSERT INTO events VALUES (8, 'm0001', 'meter.offline', 1700000000001, '{}');"
                     "UPDATE meta SET seq_floor = 9;") == SQLITE_OK);
    CHECK(raw.column("SELECT name FROM sqlite_schema WHERE name = 'meter_state'").empty());
  }
  auto s = open_at(path);
  REQUIRE_MESSAGE(s, (s ? "" : s.error().message));
  CHECK(s->schema_version() == detail::latest_version());
  // Migration 3 counted the rows into meta once; from here on open reads the counters.
  REQUIRE(s->check_invariants());
  CHECK(s->stats()->readings == 1);
  CHECK(s->stats()->events == 1);
  auto u = s->next_unsent(10);
  REQUIRE(u);
  REQUIRE(u->readings.size() == 1);
  CHECK(u->readings[0].seq == 7);
  CHECK(u->readings[0].mantissa == 1234567);
  CHECK(u->readings[0].exponent == -2);
  CHECK(u->readings[0].meter == "m0001");
  REQUIRE(u->events.size() == 1);
  CHECK(u->events[0].seq == 8);
  // Migration 2 summarised the old rows for export.
  {
    RawDb raw(path);
    CHECK(raw.text("SELECT block || ' ' || min_ts || ' ' || max_ts FROM ts_blocks") ==
          "0 1700000000000 1700000000000");
  }
  std::vector<std::int64_t> exported;
  auto n = s->export_readings("m0001", 1'700'000'000'000, 1'700'000'000'001, [&](const Reading& r) {
    exported.push_back(r.seq);
    return true;
  });
  REQUIRE(n);
  CHECK(exported == std::vector<std::int64_t>{7});
  // The seq floor from version 1 is honoured, and version 2's table works.
  auto r = s->append(readings_batch("m0001", 1, 0));
  REQUIRE(r);
  CHECK(r->first_seq == 10);
  REQUIRE(s->put_state("m0001", "k", "v"));
  CHECK(s->get_state("m0001", "k")->value() == "v");
}

TEST_CASE("a database from a newer meterd is refused with a clear error and left untouched") {
  TempDir dir;
  const auto path = dir.file("b.db");
  {
    auto s = open_at(path);
    REQUIRE(s);
    REQUIRE(s->append(readings_batch("m1", 3, 0)));
    REQUIRE(s->checkpoint());
  }
  {
    RawDb raw(path);
    const int newer = detail::latest_version() + 1;
    REQUIRE(raw.exec("PRAGMA journal_mode = DELETE; PRAGMA user_version = " +
                     std::to_string(newer)) == SQLITE_OK);
  }
  const std::string before = slurp(path);
  auto s = open_at(path);
  REQUIRE_FALSE(s);
  CHECK(s.error().is(errc::schema_too_new));
  CHECK(s.error().message.find("newer than this program") != std::string::npos);
  CHECK(s.error().message.find(std::to_string(detail::latest_version() + 1)) != std::string::npos);
  CHECK(slurp(path) == before);  // not even the journal mode was switched
}

TEST_CASE("foreign files are refused") {
  TempDir dir;
  SUBCASE("another application's SQLite database") {
    const auto path = dir.file("other.db");
    {
      RawDb raw(path);
      REQUIRE(raw.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)") == SQLITE_OK);
    }
    auto s = open_at(path);
    REQUIRE_FALSE(s);
    CHECK(s.error().is(errc::not_a_buffer));
    RawDb raw(path);
    CHECK(raw.integer("SELECT count(*) FROM sqlite_schema") == 1);  // nothing added
  }
  SUBCASE("not a database at all") {
    const auto path = dir.file("junk.db");
    {
      std::ofstream out(path, std::ios::binary);
      out << std::string(8192, 'x');
    }
    auto s = open_at(path);
    REQUIRE_FALSE(s);
    CHECK(s.error().is(errc::not_a_buffer));
    CHECK(s.error().sqlite_code == SQLITE_NOTADB);
  }
}

TEST_CASE("migrate refuses a target outside the known versions") {
  RawDb raw(":memory:");
  CHECK(
      detail::migrate(raw.get(), detail::latest_version() + 1).error().is(errc::invalid_argument));
  CHECK(*detail::migrate(raw.get(), 0) == 0);
  CHECK(raw.integer("SELECT count(*) FROM sqlite_schema") == 0);
}
