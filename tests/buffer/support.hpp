// Helpers shared by the buffer tests: a temp dir that cleans up, readings made to order, and a
// raw SQLite look at a database file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "buffer/store.hpp"

namespace meterd::buffer::test {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/meterd-buffer-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline Reading make_reading(std::string meter, std::string quantity, std::int64_t mantissa,
                            std::int32_t exponent, std::string unit, std::int64_t ts_ms) {
  Reading r;
  r.meter = std::move(meter);
  r.quantity = std::move(quantity);
  r.mantissa = mantissa;
  r.exponent = exponent;
  r.unit = std::move(unit);
  r.ts_ms = ts_ms;
  return r;
}

// n readings of one meter, mantissas base, base+1, ...; ts = ts0 + i.
inline Batch readings_batch(const std::string& meter, std::size_t n, std::int64_t base,
                            std::int64_t ts0 = 1'700'000'000'000) {
  Batch b;
  b.now_ms = ts0;
  for (std::size_t i = 0; i < n; ++i) {
    b.readings.push_back(make_reading(meter, "energy.active.import.total",
                                      base + static_cast<std::int64_t>(i), -2, "kWh",
                                      ts0 + static_cast<std::int64_t>(i)));
  }
  return b;
}

// A separate raw connection, for checks that look under the API.
class RawDb {
 public:
  explicit RawDb(const std::string& path, const char* vfs = nullptr) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) !=
        SQLITE_OK) {
      std::abort();
    }
    sqlite3_busy_timeout(db_, 2000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  sqlite3* get() const { return db_; }
  int exec(const std::string& sql) const {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }
  // First column of every row, as text ("" for NULL); empty on error.
  std::vector<std::string> column(const std::string& sql) const {
    std::vector<std::string> out;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) return out;
    while (sqlite3_step(s) == SQLITE_ROW) {
      const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
      out.emplace_back(t ? t : "");
    }
    sqlite3_finalize(s);
    return out;
  }
  std::string text(const std::string& sql) const {
    auto c = column(sql);
    return c.empty() ? std::string("<none>") : c.front();
  }
  std::int64_t integer(const std::string& sql) const { return std::stoll(text(sql)); }

 private:
  sqlite3* db_ = nullptr;
};

// Opens (or creates) the store at `path`, failing the test with the store's message if it cannot.
inline Store open_store(const std::string& path, Options o = {}) {
  o.path = path;
  auto s = Store::open(o);
  REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message));
  return std::move(s).value();
}

}  // namespace meterd::buffer::test
