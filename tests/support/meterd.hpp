// A meterd process for a system test, and a read-only look into its
// buffer. The look opens buffer.db with SQLite read-only (WAL readers do not
// disturb the writer), so a test sees what meterd committed while it runs
// without taking over the buffer the way a second Store would.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/system.hpp"

namespace meterd::testing {

struct StoredReading {
  std::int64_t seq = 0;
  std::string meter, quantity, unit;
  std::int64_t mantissa = 0;
  std::int32_t exponent = 0;
  std::int64_t ts_ms = 0;
  std::string frozen;                        // "" for a live value
  std::optional<std::int64_t> freeze_ts_ms;  // frozen data: the freeze time
};

struct StoredEvent {
  std::int64_t seq = 0;
  std::string meter, type, payload;
  std::int64_t ts_ms = 0;
};

// The state table rows of one owner (a meter id, "*" for the gateway).
std::map<std::string, std::string> stored_state(const std::filesystem::path& db,
                                                const std::string& owner);

// Every reading / event in buffer.db (empty if the file does not exist yet).
std::vector<StoredReading> stored_readings(const std::filesystem::path& db);
std::vector<StoredEvent> stored_events(const std::filesystem::path& db);

// The text of a file (a process log), empty if missing.
std::string slurp(const std::filesystem::path& file);

// Polls `ready` every 100 ms until it is true or `timeout` passes.
bool eventually(const std::function<bool()>& ready,
                std::chrono::milliseconds timeout = std::chrono::seconds(20));

// Runs a program to its end; its exit status and what it printed (stdout + stderr).
struct RunResult {
  int status = -1;
  std::string output;
};
RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20));

// Writes a gateway config for a metersim fleet (metersim --gateway-config's
// text) with every interval replaced and data_dir moved into `dir`.
std::string gateway_config(const std::filesystem::path& metersim_config,
                           const std::filesystem::path& data_dir, const std::string& interval);

struct Meterd {
  std::filesystem::path config;
  std::filesystem::path log;
  std::filesystem::path db;
  std::unique_ptr<Process> proc;

  // `wrapper`: a program meterd runs under, with its arguments (faketime -f +3d).
  Meterd(const std::filesystem::path& config_file, const std::filesystem::path& data_dir,
         const std::filesystem::path& log_file, std::vector<std::string> args = {},
         std::vector<std::string> wrapper = {})
      : config(config_file), log(log_file), db(data_dir / "buffer.db") {
    args.insert(args.begin(), {"--config", config.string()});
    std::string program = std::string(METERD_BIN_DIR) + "/meterd";
    if (!wrapper.empty()) {
      args.insert(args.begin(), program);
      args.insert(args.begin(), wrapper.begin() + 1, wrapper.end());
      program = wrapper.front();
    }
    proc = std::make_unique<Process>(program, args, log);
  }
  std::vector<StoredReading> readings() const { return stored_readings(db); }
  std::vector<StoredEvent> events() const { return stored_events(db); }
  std::string log_text() const { return slurp(log); }
  // Live readings per meter id (frozen data from the data tasks left out).
  std::map<std::string, std::size_t> per_meter() const;
};

}  // namespace meterd::testing
