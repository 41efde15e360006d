// A SQLite VFS for power-loss tests, in the spirit of SQLite's own crash tests (test6.c): a
// shim over the default unix VFS that holds every write not yet synced in a separate layer
// (512-byte sectors plus a pending truncation) and flushes it to the file only on xSync. At a
// simulated power cut every later write, sync, truncate and delete fails, and after the
// connections are closed the layer is dropped, or torn (each pending sector and the pending
// truncation independently kept or lost: what a disk that reorders writes leaves). Reads see
// the layer, so the program under test sees what it wrote.
//
// One instance per process, registered under name() (not as the default). Not thread-safe:
// the tests use it from one thread.
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace meterd::buffer::test {

class PowerVfs {
 public:
  static PowerVfs& instance();  // registers the VFS on first use
  const char* name() const noexcept;

  // Mutating calls (xWrite, xSync, xTruncate) so far.
  std::uint64_t mutations() const noexcept;
  // xSync calls so far (every one flushes its file's layer).
  std::uint64_t syncs() const noexcept;
  // Whether any file holds writes not yet synced.
  bool pending() const noexcept;
  // The unsynced layer of each file, one line each (for failure messages).
  std::string describe() const;
  // xRead calls on main database files so far.
  std::uint64_t main_db_reads() const noexcept;

  // The power fails at the mutating call number `at` (counted by mutations()): that call and
  // every later one fail with an I/O error.
  void arm(std::uint64_t at) noexcept;
  void cut_now() noexcept;
  bool dead() const noexcept;

  // After every connection is closed: drops the unsynced layer of every file (tear = false),
  // or keeps a random part of it (tear = true), and brings the power back.
  void restore_power(std::mt19937& rng, bool tear);

 private:
  PowerVfs() = default;
};

}  // namespace meterd::buffer::test
