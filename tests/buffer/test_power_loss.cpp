// Power-loss test: the store runs over PowerVfs (tests/buffer/power_vfs.hpp), which keeps every
// write not yet synced in a separate layer, and the power fails at a random write, sync or
// truncate, in the middle of whatever the store was doing (open, append, eviction, ack,
// checkpoint, close). The unsynced layer is then dropped or torn, and the store reopens. After
// every cut:
//   - PRAGMA integrity_check is ok and check_invariants() passes;
//   - no seq is ever handed out twice, across any number of cuts;
//   - every row whose append was durable is there, unless its ack was durable too or a
//     buffer.evicted notice names it; with Sync::full, every row whose append returned;
//   - a durable ack is never undone;
//   - the buffer.seq_gap event of the reopen names exactly the seqs that will never come: all
//     seqs handed out and lost, none that is stored, and up to the durable floor.
// "Durable" is what the VFS says: after the call returned, nothing was left unsynced, or a
// sync came later before the cut. METERD_POWER_CUTS sets the number of cuts (default 300).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "buffer/store.hpp"
#include "tests/buffer/power_vfs.hpp"
#include "tests/buffer/support.hpp"

using namespace meterd::buffer;
using meterd::buffer::test::PowerVfs;
using meterd::buffer::test::RawDb;
using meterd::buffer::test::TempDir;

namespace {

// When a call returned, as the VFS saw it.
struct Mark {
  std::uint64_t syncs = 0;
  bool settled = false;  // nothing unsynced at all

  static Mark now() {
    PowerVfs& v = PowerVfs::instance();
    return Mark{v.syncs(), !v.pending()};
  }
  bool durable(std::uint64_t syncs_at_cut) const { return settled || syncs_at_cut > syncs; }
};

struct Row {
  Mark append;
  bool full = false;         // appended with Sync::full
  std::optional<Mark> ack;   // the ack returned
  bool maybe_acked = false;  // an ack failed at the cut: it may or may not have committed
};

struct Range {
  std::int64_t first, last;
};

bool in_ranges(const std::vector<Range>& rs, std::int64_t seq) {
  return std::any_of(rs.begin(), rs.end(),
                     [&](const Range& r) { return seq >= r.first && seq <= r.last; });
}

Range parse_evicted(const std::string& payload) {
  auto field = [&](const char* key) {
    const auto at = payload.find(key);
    REQUIRE(at != std::string::npos);
    return std::stoll(payload.substr(at + std::strlen(key)));
  };
  return Range{field("\"first_seq\":"), field("\"last_seq\":")};
}

Batch make_batch(std::mt19937& rng, std::int64_t now, std::int64_t tag) {
  Batch b;
  b.now_ms = now;
  const int n = static_cast<int>(rng() % 30) + 1;
  for (int i = 0; i < n; ++i) {
    Reading r;
    r.meter = "m" + std::to_string(rng() % 5);
    r.quantity = i % 2 ? "voltage.l1" : "energy.active.import.total";
    r.unit = i % 2 ? "V" : "kWh";
    r.mantissa = tag * 100 + i;
    r.exponent = -2;
    r.ts_ms = now + i;
    b.readings.push_back(std::move(r));
  }
  if (rng() % 6 == 0) b.events.push_back(Event{0, "m1", "meter.offline", now, "{}"});
  b.state.push_back(StateUpdate{"power", "tag", std::to_string(tag)});
  return b;
}

struct Totals {
  int cuts_in_open = 0, torn = 0, gaps = 0, full_sessions = 0;
  std::uint64_t appends = 0, rows_lost = 0, rows_verified = 0;
};

}  // namespace

TEST_CASE("power cuts at random points: no seq twice, nothing durable lost, gaps exact") {
  PowerVfs& vfs = PowerVfs::instance();
  TempDir dir;
  const std::string path = dir.file("power.db");
  const auto seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  int cuts = 300;
  if (const char* env = std::getenv("METERD_POWER_CUTS")) cuts = std::max(1, std::atoi(env));

  std::map<std::int64_t, Row> rows;  // every seq an append returned, still expected or maybe
  std::int64_t max_handed = 0;       // every seq ever handed out (appends, next_unsent)
  std::vector<Range> evicted_seen;   // from notices read through next_unsent
  std::int64_t last_gap_seq = 0;
  std::int64_t clock = 1'700'000'000'000;
  std::int64_t tag = 0;
  Totals t;

  for (int cut = 0; cut < cuts; ++cut) {
    INFO("cut #" << cut);
    Options o;
    o.path = path;
    o.vfs = vfs.name();
    o.sync = rng() % 2 ? Sync::full : Sync::normal;
    o.max_readings = 400;
    o.max_events = 40;
    o.seq_reserve = 1 + static_cast<std::int64_t>(rng() % 200);
    o.now_ms = clock;
    t.full_sessions += o.sync == Sync::full;
    // One cut in ten within the first few writes: in open, its migration or its first write.
    vfs.arm(vfs.mutations() + 1 + rng() % (cut % 10 == 0 ? 6 : 400));
    {
      std::optional<Store> s;
      if (auto opened = Store::open(o)) {
        s.emplace(std::move(*opened));
      } else {
        REQUIRE_MESSAGE(vfs.dead(), opened.error().message);
      }
      // Open fails, or (a cut in its first write) opens for reading with that write pending.
      t.cuts_in_open += vfs.dead();
      std::vector<std::int64_t> inflight;
      const int ops = 10 + static_cast<int>(rng() % 70);
      for (int op = 0; s && op < ops && !vfs.dead(); ++op) {
        clock += 5'000 + static_cast<std::int64_t>(rng() % 15'000);
        const unsigned what = rng() % 100;
        if (what < 45) {
          auto r = s->append(make_batch(rng, clock, ++tag));
          if (!r) {
            REQUIRE_MESSAGE(vfs.dead(), r.error().message);
            break;
          }
          const Mark m = Mark::now();
          ++t.appends;
          CHECK(r->first_seq > max_handed);  // never a seq twice, across cuts too
          for (std::int64_t seq = r->first_seq; seq <= r->last_seq; ++seq) {
            rows[seq] = Row{m, o.sync == Sync::full, std::nullopt, false};
          }
          max_handed = std::max(max_handed, r->last_seq);
        } else if (what < 65) {
          auto u = s->next_unsent(1 + rng() % 60);
          REQUIRE(u);
          for (const Event& e : u->events) {
            if (e.type == "buffer.evicted") evicted_seen.push_back(parse_evicted(e.payload_json));
            max_handed = std::max(max_handed, e.seq);
          }
          const auto seqs = u->seqs();
          s->mark_inflight(seqs);
          inflight.insert(inflight.end(), seqs.begin(), seqs.end());
        } else if (what < 85) {
          std::vector<std::int64_t> some;
          for (const std::int64_t seq : inflight) {
            if (rng() % 3 != 0) some.push_back(seq);
          }
          std::erase_if(inflight, [&](std::int64_t seq) {
            return std::binary_search(some.begin(), some.end(), seq);
          });
          auto a = s->ack(some);
          const Mark m = Mark::now();
          for (const std::int64_t seq : some) {
            auto it = rows.find(seq);
            if (it == rows.end()) continue;
            if (a) {
              it->second.ack = m;
            } else {
              it->second.maybe_acked = true;
            }
          }
          if (!a) {
            REQUIRE_MESSAGE(vfs.dead(), a.error().message);
            break;
          }
        } else if (what < 90) {
          s->requeue_inflight();
          inflight.clear();
        } else if (what < 95) {
          if (auto c = s->checkpoint_if_due(clock); !c) REQUIRE(vfs.dead());
        } else if (what < 97) {
          if (auto c = s->checkpoint(); !c) REQUIRE(vfs.dead());
        } else {
          // An orderly restart in the middle: no gap may come of it.
          if (auto c = s->close(); !c) {
            REQUIRE(vfs.dead());
            break;
          }
          s.reset();
          o.now_ms = clock;
          auto again = Store::open(o);
          if (!again) {
            REQUIRE_MESSAGE(vfs.dead(), again.error().message);
            break;
          }
          s.emplace(std::move(*again));
          inflight.clear();
        }
      }
      vfs.cut_now();
    }  // the store goes down with the power off: its close fails like the machine's
    const std::uint64_t syncs_at_cut = vfs.syncs();
    const bool tear = rng() % 2 == 0;
    t.torn += tear;
    vfs.restore_power(rng, tear);

    // ---- reopen and check -------------------------------------------------------------------
    Options oc;
    oc.path = path;
    oc.vfs = vfs.name();
    oc.max_readings = o.max_readings;
    oc.max_events = o.max_events;
    oc.seq_reserve = o.seq_reserve;  // small, so the sessions keep taking new reservations
    oc.now_ms = clock;
    auto reopened = Store::open(oc);
    REQUIRE_MESSAGE(reopened, (reopened ? "" : reopened.error().message));
    Store s = std::move(reopened).value();
    {
      auto inv = s.check_invariants();
      REQUIRE_MESSAGE(inv, (inv ? "" : inv.error().message));
    }
    std::set<std::int64_t> present;
    std::vector<Range> evicted = evicted_seen;
    std::vector<Range> gaps;
    std::int64_t gap_seq = 0;
    {
      RawDb raw(path, vfs.name());
      REQUIRE(raw.text("PRAGMA integrity_check") == "ok");
      for (const auto& seq :
           raw.column("SELECT seq FROM readings UNION ALL SELECT seq FROM events"))
        present.insert(std::stoll(seq));
      for (const auto& p : raw.column("SELECT payload FROM events WHERE type = 'buffer.evicted'")) {
        evicted.push_back(parse_evicted(p));
      }
      for (const auto& g :
           raw.column("SELECT seq || ' ' || json_extract(payload, '$.first') || ' ' || "
                      "json_extract(payload, '$.last') FROM events WHERE type = 'buffer.seq_gap' "
                      "AND seq > " +
                      std::to_string(last_gap_seq))) {
        std::istringstream in(g);
        Range r{};
        in >> gap_seq >> r.first >> r.last;
        gaps.push_back(r);
      }
    }
    REQUIRE(gaps.size() <= 1);
    if (!gaps.empty()) {
      const Range g = gaps.front();
      ++t.gaps;
      CHECK(gap_seq == g.last + 1);
      CHECK(g.first <= g.last);
      CHECK(g.last >= max_handed);  // every seq handed out was below the durable floor
      // Every stored row but the notice itself was assigned by a surviving transaction.
      CHECK(std::all_of(present.begin(), present.end(),
                        [&](std::int64_t seq) { return seq < g.first || seq == gap_seq; }));
      CHECK(std::none_of(present.begin(), present.end(),
                         [&](std::int64_t seq) { return seq >= g.first && seq <= g.last; }));
      last_gap_seq = gap_seq;
      max_handed = std::max(max_handed, gap_seq);
    }
    auto st = s.stats();
    REQUIRE(st);
    CHECK(st->next_seq > max_handed);

    for (auto it = rows.begin(); it != rows.end();) {
      const std::int64_t seq = it->first;
      const Row& row = it->second;
      const bool here = present.count(seq) != 0;
      const bool ack_durable = row.ack && row.ack->durable(syncs_at_cut);
      const bool evicted_row = in_ranges(evicted, seq);
      if (ack_durable) CHECK_MESSAGE(!here, "seq " << seq << ": a durable ack was undone");
      if (!ack_durable && !evicted_row && (row.full || row.append.durable(syncs_at_cut))) {
        CHECK_MESSAGE(here, "seq " << seq << ": a durable append was lost");
      }
      // Lost for good: the gap must name it.
      if (!here && !row.ack && !row.maybe_acked && !evicted_row) {
        ++t.rows_lost;
        CHECK_MESSAGE((gaps.size() == 1 && seq >= gaps[0].first && seq <= gaps[0].last),
                      "seq " << seq << " is gone but no buffer.seq_gap names it");
      }
      if (here) {
        ++t.rows_verified;
        // The reopen synced everything: stored rows are durable now, and unsent again.
        it->second = Row{Mark{0, true}, row.full, std::nullopt, false};
        ++it;
      } else {
        it = rows.erase(it);
      }
    }
    REQUIRE(s.close());
  }
  MESSAGE(cuts << " power cuts (" << t.torn << " torn, " << t.cuts_in_open << " during open, "
               << t.full_sessions << " sessions with Sync::full): " << t.appends << " appends, "
               << t.rows_verified << " row checks, " << t.rows_lost
               << " unsynced rows lost and named in " << t.gaps << " buffer.seq_gap events");
}

TEST_CASE("open reads O(1) pages of the backlog: counters come from meta") {
  PowerVfs& vfs = PowerVfs::instance();
  TempDir dir;
  Options o;
  o.path = dir.file("big.db");
  o.vfs = vfs.name();
  o.max_readings = 0;
  {
    auto s = Store::open(o);
    REQUIRE(s);
    for (int b = 0; b < 200; ++b) {
      Batch batch;
      for (int i = 0; i < 1000; ++i) {
        Reading r;
        r.meter = "m" + std::to_string(i % 64);
        r.quantity = "energy.active.import.total";
        r.unit = "kWh";
        r.mantissa = b * 1000 + i;
        r.ts_ms = b * 1000 + i;
        batch.readings.push_back(std::move(r));
      }
      REQUIRE(s->append(batch));
    }
    REQUIRE(s->close());
  }
  const std::uint64_t before = vfs.main_db_reads();
  auto s = Store::open(o);
  REQUIRE(s);
  const std::uint64_t reads = vfs.main_db_reads() - before;
  CHECK(s->stats()->readings == 200'000);
  // 200 000 readings fill about 1 300 leaf pages; counting them would read every one.
  CHECK_MESSAGE(reads < 100, "open read " << reads << " pages of the database");
  REQUIRE(s->check_invariants());
}
