// The power-cut shim (tests/support/sync_snapshot.c) and restore_synced() on
// real processes: a Python program whose synced and unsynced writes, unlinks
// and renames are cut back after a SIGKILL exactly as the model says; and
// meterd's buffer (the crash child, SQLite in WAL mode) killed and cut back
// several times over, after which the database passes integrity_check, opens
// as a Store, and holds every batch reported stored when synchronous=FULL.
#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <signal.h>

#include "buffer/store.hpp"
#include "tests/buffer/support.hpp"
#include "tests/support/sync_snapshot.hpp"
#include "tests/support/system.hpp"

namespace fs = std::filesystem;
using meterd::testing::Process;
using meterd::testing::restore_synced;
using meterd::testing::under_sync_snapshot;

namespace {

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes, syncs, unlinks and renames in `dir`, then waits to be killed.
constexpr const char* file_script = R"PY(
import os, sys, time
d = sys.argv[1]
def create(name, data):
    fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, data)
    return fd
a = create("a", b"synced 1\n")
os.fsync(a)
os.write(a, b"synced 2\n")
os.fdatasync(a)
os.write(a, b"not synced\n")
create("b", b"never synced\n")
e = create("e", b"synced, unlinked, directory synced\n")
os.fsync(e)
os.unlink(os.path.join(d, "e"))
t = create("t.tmp", b"synced, renamed, directory synced\n")
os.fsync(t)
os.rename(os.path.join(d, "t.tmp"), os.path.join(d, "t"))
shm = create("x.db-shm", b"shared memory\n")
os.fsync(shm)
dfd = os.open(d, os.O_RDONLY)
os.fsync(dfd)
c = create("c", b"synced, unlinked, directory not synced\n")
os.fsync(c)
os.unlink(os.path.join(d, "c"))
open(os.path.join(d, "ready"), "w").close()
time.sleep(60)
)PY";

bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

// The crash child's "A <batch> <first> <last>" lines: the highest batch reported stored.
long long last_stored(const fs::path& log, int* count) {
  std::istringstream in(slurp(log));
  std::string tag;
  long long last = -1;
  *count = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream l(line);
    long long batch = 0;
    if (l >> tag >> batch && tag == "A" && l.peek() != EOF) {
      last = batch;
      ++*count;
    }
  }
  return last;
}

}  // namespace

TEST_CASE("sync_snapshot: after a SIGKILL only what was synced survives") {
  REQUIRE_MESSAGE(fs::exists(meterd::testing::sync_snapshot_library()), "the shim is not built");
  meterd::testing::TempDir tmp;
  const fs::path dir = tmp.path / "data";
  fs::create_directory(dir);
  Process p("/usr/bin/env",
            under_sync_snapshot(dir, "/usr/bin/python3", {"-c", file_script, dir.string()}),
            tmp.path / "python.log");
  REQUIRE_MESSAGE(meterd::testing::wait_for_file(dir / "ready"), slurp(tmp.path / "python.log"));
  CHECK(slurp(dir / "a") == "synced 1\nsynced 2\nnot synced\n");  // the process sees it all
  p.stop(SIGKILL);

  const auto report = restore_synced(dir);
  INFO(report.describe());
  CHECK(slurp(dir / "a") == "synced 1\nsynced 2\n");
  CHECK_FALSE(fs::exists(dir / "b"));  // never synced
  CHECK_FALSE(fs::exists(dir / "e"));  // its unlink was made durable
  CHECK(slurp(dir / "t") == "synced, renamed, directory synced\n");
  CHECK_FALSE(fs::exists(dir / "t.tmp"));  // the rename was made durable
  CHECK_FALSE(fs::exists(dir / "x.db-shm"));
  CHECK(slurp(dir / "c") == "synced, unlinked, directory not synced\n");  // comes back
  CHECK_FALSE(fs::exists(dir / "ready"));
  CHECK(report.recreated == std::vector<std::string>{"c"});

  // Restoring again changes nothing: the directory now matches its snapshots.
  const auto again = restore_synced(dir);
  CHECK(again.removed.empty());
  CHECK(again.recreated.empty());
  CHECK(slurp(dir / "a") == "synced 1\nsynced 2\n");
}

TEST_CASE("sync_snapshot: meterd's buffer cut back at SIGKILLs opens intact") {
  REQUIRE_MESSAGE(fs::exists(meterd::testing::sync_snapshot_library()), "the shim is not built");
  for (const std::string mode : {"full", "normal"}) {
    CAPTURE(mode);
    meterd::testing::TempDir tmp;
    const fs::path dir = tmp.path / "data";
    fs::create_directory(dir);
    const fs::path db = dir / "buffer.db";
    long long before = -1;  // the last batch the database held after the previous cut
    int cut_back = 0;
    for (int cycle = 0; cycle < 3; ++cycle) {
      CAPTURE(cycle);
      const fs::path log = tmp.path / ("child-" + std::to_string(cycle) + ".log");
      {
        Process child("/usr/bin/env",
                      under_sync_snapshot(dir, METERD_BUFFER_CRASH_CHILD, {db.string(), mode}),
                      log);
        int stored = 0;
        REQUIRE_MESSAGE(wait_for([&] { return last_stored(log, &stored) >= before + 30; },
                                 std::chrono::seconds(30)),
                        slurp(log));
        child.stop(SIGKILL);
      }
      int stored = 0;
      const long long reported = last_stored(log, &stored);
      const auto report = restore_synced(dir);
      INFO(report.describe());
      CHECK_FALSE(fs::exists(dir / "buffer.db-shm"));

      // Look at a copy, so that the next cycle's child does the recovery itself.
      const fs::path look = tmp.path / ("look-" + std::to_string(cycle));
      fs::create_directory(look);
      for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file()) fs::copy_file(e.path(), look / e.path().filename());
      long long held = -1;
      {
        meterd::buffer::test::RawDb raw((look / "buffer.db").string());
        CHECK(raw.text("PRAGMA integrity_check") == "ok");
        const std::string v =
            raw.text("SELECT value FROM meter_state WHERE meter = 'crash' AND key = 'last_batch'");
        held = v == "<none>" ? -1 : std::stoll(v);
      }
      auto store = meterd::buffer::test::open_store((look / "buffer.db").string());
      auto state = store.get_state("crash", "last_batch");
      REQUIRE(state.has_value());
      CHECK((state->has_value() ? std::stoll(**state) : -1) == held);
      CHECK(store.check_invariants().has_value());

      MESSAGE(mode << " cycle " << cycle << ": reported stored up to batch " << reported
                   << ", the cut-back database holds up to " << held);
      CHECK(held <= reported + 1);  // the batch in flight may have committed unreported
      if (mode == "full") CHECK(held >= reported);  // every stored batch survives
      if (held < reported) ++cut_back;
      before = held;
    }
    // synchronous=NORMAL does not sync a WAL commit, so the power cut takes some back.
    if (mode == "normal") CHECK(cut_back > 0);
  }
}
