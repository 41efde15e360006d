#include "buffer/detail/sqlite.hpp"

#include <string>

namespace meterd::buffer {

namespace {

class BufferCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "buffer"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::disk_full:
        return "disk full";
      case errc::io_error:
        return "I/O error";
      case errc::busy:
        return "database locked by another process";
      case errc::corrupt:
        return "database file is corrupt";
      case errc::cannot_open:
        return "cannot open database";
      case errc::not_a_buffer:
        return "not a meterd buffer database";
      case errc::schema_too_new:
        return "database schema is newer than this program";
      case errc::invalid_argument:
        return "invalid argument";
      case errc::sqlite_error:
        return "SQLite error";
    }
    return "unknown buffer error";
  }
};

}  // namespace

const std::error_category& buffer_category() noexcept {
  static const BufferCategory category;
  return category;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), buffer_category()};
}

namespace detail {

errc classify(int rc) noexcept {
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return errc::disk_full;
    case SQLITE_IOERR:
      return errc::io_error;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return errc::busy;
    case SQLITE_CORRUPT:
      return errc::corrupt;
    case SQLITE_NOTADB:
      return errc::not_a_buffer;
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return errc::cannot_open;
    default:
      return errc::sqlite_error;
  }
}

Error make_error(errc e, std::string message) {
  return Error{make_error_code(e), 0, std::move(message)};
}

Error sqlite_error(sqlite3* db, int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  // sqlite3_errmsg describes the connection's most recent error, which is `rc` when the caller
  // asks right after the failing call; fall back to the generic text otherwise.
  const int last = db ? sqlite3_extended_errcode(db) : rc;
  msg += (db && last == rc) ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  msg += " (SQLite ";
  msg += std::to_string(rc);
  msg += ")";
  return Error{make_error_code(classify(rc)), rc, std::move(msg)};
}

Result<StmtPtr> prepare(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &s, nullptr);
  if (rc != SQLITE_OK) {
    return sqlite_error(db, rc, "prepare \"" + std::string(sql) + "\"");
  }
  return StmtPtr(s);
}

Result<void> exec(sqlite3* db, const char* sql, std::string_view what) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sqlite_error(db, rc, what);
  return {};
}

Result<std::int64_t> query_int(sqlite3* db, const char* sql, std::string_view what) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqlite_error(db, rc, what);
  StmtPtr s(raw);
  rc = sqlite3_step(raw);
  if (rc == SQLITE_ROW) return static_cast<std::int64_t>(sqlite3_column_int64(raw, 0));
  if (rc == SQLITE_DONE) return std::int64_t{0};
  return sqlite_error(db, rc, what);
}

}  // namespace detail
}  // namespace meterd::buffer
