// Thin RAII and error helpers over the SQLite C API, private to buffer/.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include <sqlite3.h>

#include "buffer/result.hpp"

namespace meterd::buffer::detail {

struct DbClose {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbClose>;

struct StmtFinalize {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalize>;

// Resets a statement (and drops its bindings) when the scope ends, whatever happened in it, so
// a cached statement never holds a read transaction open or points at a dead string.
class StmtScope {
 public:
  explicit StmtScope(sqlite3_stmt* s) noexcept : s_(s) {}
  ~StmtScope() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  StmtScope(const StmtScope&) = delete;
  StmtScope& operator=(const StmtScope&) = delete;

 private:
  sqlite3_stmt* s_;
};

errc classify(int sqlite_rc) noexcept;

// An Error for SQLite result `rc` while doing `what`, with sqlite3_errmsg(db) appended.
Error sqlite_error(sqlite3* db, int rc, std::string_view what);
Error make_error(errc e, std::string message);

Result<StmtPtr> prepare(sqlite3* db, std::string_view sql);
Result<void> exec(sqlite3* db, const char* sql, std::string_view what);
// Runs a single-value query ("PRAGMA page_count") and returns its integer.
Result<std::int64_t> query_int(sqlite3* db, const char* sql, std::string_view what);

inline void bind_text(sqlite3_stmt* s, int i, std::string_view v) noexcept {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
inline std::string_view column_text(sqlite3_stmt* s, int i) noexcept {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
  return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
           : std::string_view();
}

}  // namespace meterd::buffer::detail
