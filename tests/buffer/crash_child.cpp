// Crash-test child: appends batches to a buffer as fast as it can until it is killed, and
// reports each append only after it returned success, on stdout, one line per batch:
//   "A <batch> <first_seq> <last_seq>\n"  stored
//   "K <batch>\n"                        acked (every third batch is acked right away)
// Batch b holds (b % 40) + 1 readings with mantissa b * 1000 + i, and carries the state
// ("crash", "last_batch") = b, so the parent can check rows, acks and state after each kill.
// Usage: buffer_crash_child DB_PATH normal|full [MAX_READINGS]
// With MAX_READINGS the store evicts past it (buffer.evicted events tell the parent what went).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

#include "buffer/store.hpp"

namespace {

void report(const std::string& line) {
  // One write() per line: a pipe write of <= PIPE_BUF bytes is atomic, so a kill never leaves
  // half a line.
  if (::write(1, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::_Exit(3);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace meterd::buffer;
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: %s DB_PATH normal|full [MAX_READINGS]\n", argv[0]);
    return 2;
  }
  Options o;
  o.path = argv[1];
  o.sync = std::string(argv[2]) == "full" ? Sync::full : Sync::normal;
  if (argc == 4) o.max_readings = std::stoull(argv[3]);
  auto opened = Store::open(o);
  if (!opened) {
    std::fprintf(stderr, "open: %s\n", opened.error().message.c_str());
    return 1;
  }
  Store store = std::move(opened).value();
  auto last = store.get_state("crash", "last_batch");
  if (!last) return 1;
  std::int64_t batch = last->has_value() ? std::stoll(**last) + 1 : 0;

  for (;; ++batch) {
    Batch b;
    b.now_ms = batch;
    const int n = static_cast<int>(batch % 40) + 1;
    for (int i = 0; i < n; ++i) {
      Reading r;
      r.meter = "m" + std::to_string((batch + i) % 13);
      r.quantity = i % 2 ? "voltage.l1" : "energy.active.import.total";
      r.mantissa = batch * 1000 + i;
      r.exponent = -2;
      r.unit = i % 2 ? "V" : "kWh";
      r.ts_ms = batch * 1000 + i;
      b.readings.push_back(std::move(r));
    }
    if (batch % 5 == 0) b.events.push_back(Event{0, "m1", "crash.test", batch, "{}"});
    b.state.push_back(StateUpdate{"crash", "last_batch", std::to_string(batch)});
    auto res = store.append(b);
    if (!res) {
      std::fprintf(stderr, "append: %s\n", res.error().message.c_str());
      return 1;
    }
    report("A " + std::to_string(batch) + " " + std::to_string(res->first_seq) + " " +
           std::to_string(res->last_seq) + "\n");
    if (batch % 3 == 0) {
      std::vector<std::int64_t> seqs;
      for (auto s = res->first_seq; s <= res->last_seq; ++s) seqs.push_back(s);
      auto acked = store.ack(seqs);
      if (!acked) {
        std::fprintf(stderr, "ack: %s\n", acked.error().message.c_str());
        return 1;
      }
      report("K " + std::to_string(batch) + "\n");
    }
  }
}
