// Full disk: an append that cannot be written is an error value, nothing stored is lost, the
// store keeps working and appends succeed again once space returns. Three ways to run out:
// SQLite's max_page_count, a real 2 MiB tmpfs (when the test may mount), and RLIMIT_FSIZE
// (the write fails with EFBIG, an I/O error rather than ENOSPC).
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include "buffer/store.hpp"
#include "tests/buffer/support.hpp"

using namespace meterd::buffer;
using meterd::buffer::test::RawDb;
using meterd::buffer::test::readings_batch;
using meterd::buffer::test::TempDir;

namespace {

constexpr std::size_t batch_rows = 100;

struct Stored {
  std::int64_t first_seq;
  std::int64_t base;  // mantissa of the batch's first reading
};

// Appends batches of 100 until one fails; returns the batches that succeeded. The failing
// batch carries a state update, which must not be stored either.
std::vector<Stored> fill_until_error(Store& s, Error& failure, int max_batches = 100000) {
  std::vector<Stored> ok;
  for (int i = 0; i < max_batches; ++i) {
    const std::int64_t base = static_cast<std::int64_t>(i) * 1000;
    Batch b = readings_batch("m" + std::to_string(i % 5), batch_rows, base, base);
    b.state.push_back(StateUpdate{"m0", "last_batch", std::to_string(i)});
    auto r = s.append(b);
    if (!r) {
      failure = r.error();
      return ok;
    }
    ok.push_back(Stored{r->first_seq, base});
  }
  FAIL("the store never filled up");
  return ok;
}

// Every batch that was acknowledged as stored is there, row for row, and nothing else.
void check_all_there(Store& s, const std::vector<Stored>& batches) {
  s.requeue_inflight();
  auto u = s.next_unsent(batches.size() * batch_rows + 10);
  REQUIRE(u);
  REQUIRE(u->readings.size() == batches.size() * batch_rows);
  std::size_t k = 0;
  for (const Stored& b : batches) {
    for (std::size_t i = 0; i < batch_rows; ++i, ++k) {
      const Reading& r = u->readings[k];
      CHECK(r.seq == b.first_seq + static_cast<std::int64_t>(i));
      CHECK(r.mantissa == b.base + static_cast<std::int64_t>(i));
    }
  }
}

void check_refill_and_resume(Store& s, std::vector<Stored>& batches, const Error& failure) {
  const std::int64_t next_before = s.stats()->next_seq;
  // The failed batch stored nothing: not its rows, not its state, not even a seq.
  check_all_there(s, batches);
  CHECK(s.get_state("m0", "last_batch")->value() == std::to_string(batches.size() - 1));
  CHECK(next_before == batches.back().first_seq + static_cast<std::int64_t>(batch_rows));
  // Failing again is just as clean.
  auto again = s.append(readings_batch("m9", batch_rows, 0));
  REQUIRE_FALSE(again);
  CHECK(again.error().code == failure.code);
  CHECK(s.stats()->next_seq == next_before);
  // Reads and stats keep working while the disk is full.
  CHECK(s.stats());
  CHECK(s.next_unsent(10));
}

// Fills `s` until SQLite says the disk is full, then checks that nothing
// stored was lost and that appends resume once space returns. Returns the
// batches stored so far.
std::vector<Stored> fill_until_full_then_resume(Store& s) {
  Error failure;
  auto batches = fill_until_error(s, failure);
  INFO(failure.message);
  REQUIRE(batches.size() > 5);
  CHECK(failure.is(errc::disk_full));
  CHECK((failure.sqlite_code & 0xff) == SQLITE_FULL);
  check_refill_and_resume(s, batches, failure);
  return batches;
}

}  // namespace

TEST_CASE("max_page_count: appends fail with disk_full and resume once rows are acked") {
  TempDir dir;
  const auto path = dir.file("b.db");
  Options o;
  o.path = path;
  o.max_page_count = 64;  // 256 KiB
  auto opened = Store::open(o);
  REQUIRE(opened);
  Store s = std::move(opened).value();

  auto batches = fill_until_full_then_resume(s);

  // Space returns: ack the oldest half; their pages go to the freelist and are reused.
  std::vector<std::int64_t> acked;
  const std::size_t half = batches.size() / 2;
  for (std::size_t b = 0; b < half; ++b) {
    for (std::size_t i = 0; i < batch_rows; ++i) acked.push_back(batches[b].first_seq + i);
  }
  auto n = s.ack(acked);
  REQUIRE(n);
  CHECK(*n == half * batch_rows);
  batches.erase(batches.begin(), batches.begin() + static_cast<std::ptrdiff_t>(half));
  const std::int64_t expect_seq = s.stats()->next_seq;
  auto r = s.append(readings_batch("m1", batch_rows, 777000));
  REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
  CHECK(r->first_seq == expect_seq);
  batches.push_back(Stored{r->first_seq, 777000});
  check_all_there(s, batches);

  // And a restart finds exactly that.
  s = std::move(Store::open(o).value());
  check_all_there(s, batches);
  RawDb raw(path);
  CHECK(raw.text("PRAGMA integrity_check") == "ok");
}

TEST_CASE("a full filesystem: appends fail cleanly, resume when space is freed") {
  // A private mount namespace: the tmpfs disappears with this process, whatever happens.
  if (::geteuid() != 0 || ::unshare(CLONE_NEWNS) != 0 ||
      ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    MESSAGE("skipped: cannot create a mount namespace (", std::strerror(errno), ")");
    return;
  }
  TempDir mnt;
  if (::mount("tmpfs", mnt.path().c_str(), "tmpfs", 0, "size=2m,mode=0700") != 0) {
    MESSAGE("skipped: cannot mount a tmpfs (", std::strerror(errno), ")");
    return;
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt.path()};  // before TempDir removes the directory, even when a check fails
  const auto filler = mnt.file("filler");
  {
    std::ofstream out(filler, std::ios::binary);
    out << std::string(1024 * 1024, '\0');
    REQUIRE(out.good());
  }
  const auto path = mnt.file("b.db");
  {
    Options o;
    o.path = path;
    auto opened = Store::open(o);
    REQUIRE_MESSAGE(opened, (opened ? "" : opened.error().message));
    Store s = std::move(opened).value();

    auto batches = fill_until_full_then_resume(s);

    REQUIRE(::unlink(filler.c_str()) == 0);  // space returns
    for (int i = 0; i < 3; ++i) {
      auto r = s.append(readings_batch("m1", batch_rows, 900000 + i * 1000));
      REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
      batches.push_back(Stored{r->first_seq, 900000 + i * 1000});
    }
    check_all_there(s, batches);
  }
  {
    RawDb raw(path);
    CHECK(raw.text("PRAGMA integrity_check") == "ok");
  }
}

TEST_CASE("an I/O error (RLIMIT_FSIZE) fails the append cleanly; appends resume after") {
  TempDir dir;
  Options o;
  o.path = dir.file("b.db");
  auto opened = Store::open(o);
  REQUIRE(opened);
  Store s = std::move(opened).value();

  // Restores the limit and the signal disposition however this test ends.
  struct FileSizeLimit {
    struct rlimit saved {};
    void (*old_handler)(int) = SIG_DFL;
    FileSizeLimit(rlim_t bytes) {
      ::getrlimit(RLIMIT_FSIZE, &saved);
      old_handler = ::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG
      struct rlimit small = saved;
      small.rlim_cur = bytes;
      ::setrlimit(RLIMIT_FSIZE, &small);
    }
    ~FileSizeLimit() { lift(); }
    void lift() {
      ::setrlimit(RLIMIT_FSIZE, &saved);
      ::signal(SIGXFSZ, old_handler);
    }
  } limit(512 * 1024);

  Error failure;
  auto batches = fill_until_error(s, failure);
  INFO(failure.message);
  CHECK((failure.is(errc::io_error) || failure.is(errc::disk_full)));
  CHECK(batches.size() > 5);
  check_refill_and_resume(s, batches, failure);

  limit.lift();  // space returns

  auto r = s.append(readings_batch("m1", batch_rows, 555000));
  REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
  batches.push_back(Stored{r->first_seq, 555000});
  check_all_there(s, batches);
  RawDb raw(o.path);
  CHECK(raw.text("PRAGMA integrity_check") == "ok");
}
