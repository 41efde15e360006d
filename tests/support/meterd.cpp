#include "tests/support/meterd.hpp"

#include <fstream>
#include <sstream>
#include <thread>

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

namespace meterd::testing {

namespace {

template <class Row>
std::vector<Row> query(const std::filesystem::path& db, const char* sql,
                       const std::function<Row(sqlite3_stmt*)>& row) {
  std::vector<Row> out;
  if (!std::filesystem::exists(db)) return out;
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    return out;
  }
  sqlite3_busy_timeout(h, 2000);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(h, sql, -1, &st, nullptr) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) out.push_back(row(st));
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

std::string text(sqlite3_stmt* st, int col) {
  const auto* p = sqlite3_column_text(st, col);
  return p ? reinterpret_cast<const char*>(p) : "";
}

}  // namespace

std::vector<StoredReading> stored_readings(const std::filesystem::path& db) {
  return query<StoredReading>(
      db,
      "SELECT r.seq, s.meter, s.quantity, s.unit, r.mantissa, r.exponent, r.ts, s.frozen, "
      "r.freeze_ts FROM readings r JOIN series s ON s.id = r.series ORDER BY r.seq",
      [](sqlite3_stmt* st) {
        StoredReading r;
        r.seq = sqlite3_column_int64(st, 0);
        r.meter = text(st, 1);
        r.quantity = text(st, 2);
        r.unit = text(st, 3);
        r.mantissa = sqlite3_column_int64(st, 4);
        r.exponent = sqlite3_column_int(st, 5);
        r.ts_ms = sqlite3_column_int64(st, 6);
        r.frozen = text(st, 7);
        if (sqlite3_column_type(st, 8) != SQLITE_NULL) r.freeze_ts_ms = sqlite3_column_int64(st, 8);
        return r;
      });
}

std::map<std::string, std::string> stored_state(const std::filesystem::path& db,
                                                const std::string& owner) {
  std::map<std::string, std::string> out;
  const auto rows = query<std::pair<std::string, std::string>>(
      db, ("SELECT key, value FROM meter_state WHERE meter = '" + owner + "'").c_str(),
      [](sqlite3_stmt* st) { return std::pair(text(st, 0), text(st, 1)); });
  for (const auto& [k, v] : rows) out[k] = v;
  return out;
}

std::vector<StoredEvent> stored_events(const std::filesystem::path& db) {
  return query<StoredEvent>(db, "SELECT seq, meter, type, ts, payload FROM events ORDER BY seq",
                            [](sqlite3_stmt* st) {
                              StoredEvent e;
                              e.seq = sqlite3_column_int64(st, 0);
                              e.meter = text(st, 1);
                              e.type = text(st, 2);
                              e.ts_ms = sqlite3_column_int64(st, 3);
                              e.payload = text(st, 4);
                              return e;
                            });
}

std::string slurp(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool eventually(const std::function<bool()>& ready, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return ready();
}

RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout) {
  TempDir dir;
  const auto out = dir.path / "out.txt";
  Process p(program, args, out);
  const auto end = std::chrono::steady_clock::now() + timeout;
  RunResult r;
  while (p.running() && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  r.status = p.stop(SIGKILL, std::chrono::seconds(2));
  r.output = slurp(out);
  return r;
}

std::string gateway_config(const std::filesystem::path& metersim_config,
                           const std::filesystem::path& data_dir, const std::string& interval) {
  // Line by line: the keys metersim writes, each at the start of its line.
  const std::map<std::string, std::string> replace = {
      {"interval", "\"" + interval + "\""},
      {"data_dir", "\"" + data_dir.string() + "\""},
      {"control_socket", "\"" + (data_dir / "meterd.sock").string() + "\""}};
  std::istringstream in(slurp(metersim_config));
  std::string out;
  for (std::string line; std::getline(in, line);) {
    for (const auto& [key, value] : replace)
      if (line.rfind(key + " = ", 0) == 0) line = key + " = " + value;
    out += line + "\n";
  }
  return out;
}

std::map<std::string, std::size_t> Meterd::per_meter() const {
  std::map<std::string, std::size_t> n;
  for (const auto& r : readings())
    if (r.frozen.empty()) ++n[r.meter];  // live values: what the schedule read
  return n;
}

}  // namespace meterd::testing
