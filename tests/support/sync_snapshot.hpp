// Power cuts for system tests: the other half of the sync_snapshot shim
// (tests/support/sync_snapshot.c, loaded with LD_PRELOAD and
// SYNC_SNAPSHOT_DIR=<dir>), which copies each file of <dir> into <dir>/.snap at
// every successful fsync/fdatasync. After the process under test is killed
// (SIGKILL), restore_synced(dir) cuts the directory back to what a power cut
// at that moment would have left (the model and its limits are in the shim's
// header).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace meterd::testing {

struct RestoreReport {
  std::vector<std::string> restored;   // replaced by their snapshot
  std::vector<std::string> recreated;  // gone, but their unlink was never made durable
  std::vector<std::string> removed;    // never synced (and every SQLite -shm)
  std::string describe() const;        // one line, for failure messages
};

// Cuts `dir` back to its snapshots: every regular file directly in `dir` with
// a snapshot in `dir`/.snap is replaced by a copy of it, every one without is
// removed, a snapshot whose file is gone is copied back, and every "-shm" file
// is removed (SQLite never syncs it and rebuilds it from the -wal).
// Subdirectories and `dir`/.snap itself are left alone, so a process started
// again under the shim carries on from here. The process that wrote `dir`
// must be dead. Throws std::filesystem::filesystem_error on I/O errors.
RestoreReport restore_synced(const std::filesystem::path& dir);

// The shim (built by CMake as meterd_sync_snapshot), or an empty path where
// it is not built.
std::filesystem::path sync_snapshot_library();

// Arguments for Process("/usr/bin/env", ...) that run `program` under the
// shim, watching `dir`.
std::vector<std::string> under_sync_snapshot(const std::filesystem::path& dir,
                                             const std::string& program,
                                             const std::vector<std::string>& args);

}  // namespace meterd::testing
