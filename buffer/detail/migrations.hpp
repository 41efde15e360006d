// Numbered schema migrations of the buffer database (docs/buffer.md "Migrations").
#pragma once

#include <cstdint>
#include <span>

#include <sqlite3.h>

#include "buffer/result.hpp"

namespace meterd::buffer::detail {

// PRAGMA application_id of a meterd buffer ("mtrd"), so a foreign SQLite file is refused.
inline constexpr std::int32_t application_id = 0x6d747264;

// Readings are summarised for export in blocks of 2^ts_block_shift seqs. Migration 2 spells
// the same number in SQL; it can never change.
inline constexpr int ts_block_shift = 12;

struct Migration {
  int version;       // 1, 2, ... without gaps; PRAGMA user_version holds the last one applied
  const char* name;  // one line, shown in errors
  const char* sql;   // run inside the migration's transaction
};

// Every migration, ascending. Released entries are never edited, only appended to.
std::span<const Migration> migrations() noexcept;
int latest_version() noexcept;

// Reads the database's schema version without writing anything. Errors: schema_too_new when
// it is above latest_version(), not_a_buffer when the file has tables but no meterd
// application_id.
Result<int> check_schema(sqlite3* db);

// Applies the migrations above the database's version up to `target`, each in its own
// IMMEDIATE transaction that also bumps user_version, and returns the resulting version.
// Refuses (errc::schema_too_new, nothing written) a database newer than latest_version(), and
// (errc::not_a_buffer) a database that has tables but is not a meterd buffer.
Result<int> migrate(sqlite3* db, int target);

}  // namespace meterd::buffer::detail
