// metersim at scale: start-up time, resident memory and idle CPU of a
// large fleet, next to a one-meter fleet measured in the same run (the
// baseline: what the process costs with nothing to simulate), and one
// request per bus to show every bus answers. Prints figures; asserts none.
//
//   bench_metersim [--meters N] [--buses K] [--idle-seconds S]
//   defaults: 1024 meters (512 DL/T 645-2007, 128 -1997, 256 Modbus RTU,
//   128 Modbus TCP) on 16 buses, 20 s of idle measurement.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include <unistd.h>

#include "protocol/dlt645/frame.hpp"
#include "protocol/dlt645/requests.hpp"
#include "tests/support/system.hpp"

using namespace meterd::testing;
namespace dlt = meterd::protocol::dlt645;
using Clock = std::chrono::steady_clock;

namespace {

struct Figures {
  double startup_s = 0;
  long rss_kib = 0;
  double idle_cpu_pct = 0;
  unsigned buses_answering = 0, buses = 0;
};

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

long cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(s.substr(s.rfind(')') + 2));
  std::string f;
  long utime = 0, stime = 0;
  for (int i = 3; fields >> f; ++i) {  // field 3 is the state, 14 utime, 15 stime
    if (i == 14) utime = std::stol(f);
    if (i == 15) {
      stime = std::stol(f);
      break;
    }
  }
  return utime + stime;
}

Figures run(const std::vector<std::string>& counts, unsigned idle_seconds) {
  TempDir dir;
  std::vector<std::string> args = counts;
  args.insert(args.end(), {"--baud", "9600", "--run-dir", (dir.path / "run").string(),
                           "--endpoints", (dir.path / "endpoints.json").string()});
  Figures f;
  const auto t0 = Clock::now();
  Process sim(std::string(METERD_BIN_DIR) + "/metersim", args, dir.path / "log");
  if (!wait_for_file(dir.path / "endpoints.json", std::chrono::seconds(120))) {
    std::cerr << "metersim did not start\n";
    return f;
  }
  f.startup_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto endpoints = read_json(dir.path / "endpoints.json");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const long hz = ::sysconf(_SC_CLK_TCK);
  const long c0 = cpu_ticks(sim.pid());
  std::this_thread::sleep_for(std::chrono::seconds(idle_seconds));
  const long c1 = cpu_ticks(sim.pid());
  f.idle_cpu_pct = 100.0 * static_cast<double>(c1 - c0) / static_cast<double>(hz * idle_seconds);
  f.rss_kib = rss_kib(sim.pid());
  for (const auto& bus : endpoints["buses"]) {
    ++f.buses;
    for (const auto& m : bus["meters"]) {
      if (m["protocol"] != "dlt645-2007") continue;
      Serial port(bus["path"].get<std::string>(), 9600);
      const auto a = port.transact(
          dlt::encode(
              dlt::request::read(*dlt::Address::parse(m["address"].get<std::string>()), 0x00010000),
              4),
          std::chrono::milliseconds(2000), dlt645_complete);
      if (dlt::decode(a.bytes).status == dlt::DecodeStatus::frame) ++f.buses_answering;
      break;
    }
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned meters = 1024, buses = 16, idle = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--meters"))
      meters = static_cast<unsigned>(std::stoul(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--buses"))
      buses = static_cast<unsigned>(std::stoul(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--idle-seconds"))
      idle = static_cast<unsigned>(std::stoul(argv[i + 1]));
    else {
      std::cerr << "usage: bench_metersim [--meters N] [--buses K] [--idle-seconds S]\n";
      return 2;
    }
  }
  const unsigned d7 = meters / 2, d9 = meters / 8, rtu = meters / 4, tcp = meters - d7 - d9 - rtu;
  const auto base = run({"--dlt645-2007", "1"}, idle);
  const auto big = run(
      {"--dlt645-2007", std::to_string(d7), "--dlt645-1997", std::to_string(d9), "--modbus-rtu",
       std::to_string(rtu), "--modbus-tcp", std::to_string(tcp), "--buses", std::to_string(buses)},
      idle);
  std::printf("metersim scale (idle measured over %u s, /proc/PID/stat and /proc/PID/status)\n",
              idle);
  std::printf("  %-34s %12s %12s %8s\n", "", "1 meter", "fleet", "ratio");
  std::printf("  %-34s %12s %12u\n", "meters", "1", meters);
  std::printf("  %-34s %12.2f %12.2f %8.1f\n", "start-up (history built), s", base.startup_s,
              big.startup_s, big.startup_s / std::max(base.startup_s, 1e-3));
  std::printf("  %-34s %12ld %12ld %8.1f\n", "resident memory, KiB", base.rss_kib, big.rss_kib,
              static_cast<double>(big.rss_kib) / static_cast<double>(std::max(base.rss_kib, 1L)));
  std::printf("  %-34s %12.3f %12.3f\n", "idle CPU, % of one core", base.idle_cpu_pct,
              big.idle_cpu_pct);
  std::printf("  %-34s %12s %9u/%u\n", "buses answering a read", "", big.buses_answering,
              big.buses);
  std::printf("  per meter: %.1f KiB\n", static_cast<double>(big.rss_kib - base.rss_kib) / meters);
  return big.buses_answering == big.buses ? 0 : 1;
}
