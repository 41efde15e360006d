// System tier: the real meterctl binary against a FAKE meterd: a Unix-socket server thread in
// this test answering canned lines per docs/control.md. Checks what the client makes of them
// (discovery, exit codes, exact digits, tables, streaming), not the daemon.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buffer/store.hpp"
#include "firmware/uplink.hpp"

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    std::string tmpl = "/tmp/meterctl-client-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
  std::string path;
};

// A fake meterd: one connection at a time, each request line handed to `handler` with a `send`
// that writes one line (false once the client has gone).
class FakeMeterd {
 public:
  using Send = std::function<bool(const std::string&)>;
  using Handler = std::function<void(const json& request, const Send& send)>;

  // close_after: hang up once a request is answered (a daemon stopping under the client).
  FakeMeterd(std::string path, Handler handler, bool close_after = false)
      : path_(std::move(path)), handler_(std::move(handler)), close_after_(close_after) {
    listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path_.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    REQUIRE(::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listen_, 8) == 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeMeterd() {
    stop_ = true;
    thread_.join();
    ::close(listen_);
    ::unlink(path_.c_str());
  }
  std::vector<json> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  bool stopping() const { return stop_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listen_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int fd = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      talk(fd);
      ::close(fd);
    }
  }
  void talk(int fd) {
    std::string buf;
    bool gone = false;
    const Send send = [&](const std::string& line) {
      if (gone || stop_) return false;
      const std::string l = line + "\n";
      std::size_t done = 0;
      while (done < l.size()) {
        const ssize_t n = ::send(fd, l.data() + done, l.size() - done, MSG_NOSIGNAL);
        if (n <= 0) {
          gone = true;
          return false;
        }
        done += static_cast<std::size_t>(n);
      }
      return true;
    };
    for (int idle = 0; !stop_ && !gone && idle < 200;) {  // 10 s without a byte: give up
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) {
        ++idle;
        continue;
      }
      idle = 0;
      char tmp[4096];
      const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n <= 0) return;
      buf.append(tmp, static_cast<std::size_t>(n));
      for (auto nl = buf.find('\n'); nl != std::string::npos; nl = buf.find('\n')) {
        const json req = json::parse(buf.substr(0, nl));
        buf.erase(0, nl + 1);
        {
          std::lock_guard<std::mutex> lock(mutex_);
          requests_.push_back(req);
        }
        handler_(req, send);
        if (close_after_) return;
      }
    }
  }

  std::string path_;
  Handler handler_;
  bool close_after_ = false;
  int listen_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<json> requests_;
};

struct Run {
  int status = -1;
  std::string out;
  std::string err;
};

// Runs `meterctl args` through the shell with METERD_SOCKET and NO_COLOR cleared, then `env`
// (e.g. "METERD_SOCKET=/x") set.
Run meterctl(const std::string& args, const std::string& env = "", const std::string& pipe = "") {
  static int counter = 0;
  const std::string err_file =
      "/tmp/meterctl_client_stderr_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  const std::string cmd = "env -u METERD_SOCKET -u NO_COLOR " + env + " " +
                          std::string(METERD_BIN_DIR) + "/meterctl " + args + " 2>" + err_file +
                          pipe;
  Run r;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err_file);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  std::remove(err_file.c_str());
  return r;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string ok(const std::string& result_text) {
  return R"({"ok":true,"result":)" + result_text + "}";
}

const std::string status_result =
    R"({"version":"0.1.0","started":"2026-12-01T08:00:00.000Z","uptime_s":3600,)"
    R"("config_file":"/etc/meterd/meterd.toml","gateway":"gw-0001",)"
    R"("buses":[{"name":"rs485-1","port":"/dev/ttyS1","state":"up","last_error":"",)"
    R"("meters":16,"exchanges":1200,"timeouts":3,"bad_frames":0,"exceptions":0,"reads_ok":400,)"
    R"("reads_failed":3,"missed_slots":0,"queued":0,"utilisation":0.42},)"
    R"({"name":"tcp-gw-long-name","port":"10.0.0.5:502","state":"down","last_error":"connect: )"
    R"(Connection refused","meters":2,"exchanges":0,"timeouts":0,"bad_frames":0,"exceptions":0,)"
    R"("reads_ok":0,"reads_failed":12,"missed_slots":4,"queued":0,"utilisation":0.0}],)"
    R"("meters":{"total":18,"online":15,"offline":2,"unknown":1,"offline_ids":["m17","m18"]},)"
    R"("buffer":{"readings":1200,"events":3,"inflight":0,"oldest_unsent":"2026-12-01T08:59:57.900Z",)"
    R"("oldest_unsent_age_s":2.1},"mqtt":{"enabled":true,"state":"connected",)"
    R"("broker":"127.0.0.1:1883","last_puback":"2026-12-01T08:59:59.812Z","publishes":120,)"
    R"("acked_rows":1190}})";

// Answers every verb with a canned result naming `who`, so discovery can be told apart.
FakeMeterd::Handler named(const std::string& who) {
  return [who](const json&, const FakeMeterd::Send& send) {
    send(ok(R"({"version":"0.1.0","gateway":")" + who + R"("})"));
  };
}

bool wait_until(const std::function<bool()>& done, int tries = 200) {
  for (int i = 0; i < tries; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return done();
}

}  // namespace

TEST_CASE("socket discovery: --socket beats METERD_SOCKET beats --config beats the default") {
  TempDir dir;
  FakeMeterd a(dir.file("a.sock"), named("A"));
  FakeMeterd b(dir.file("b.sock"), named("B"));
  FakeMeterd c(dir.file("c.sock"), named("C"));
  FakeMeterd d(dir.file("meterd.sock"), named("D"));
  const std::string config = dir.file("meterd.toml");
  std::ofstream(config) << "[gateway]\nid = \"gw\"\ndata_dir = \"" << dir.path
                        << "\"\ncontrol_socket = \"" << dir.file("c.sock") << "\"\n";
  // Only data_dir: the socket is <data_dir>/meterd.sock (this file would not even load as a
  // whole config: meterctl still finds the socket).
  const std::string data_dir_only = dir.file("dataonly.toml");
  std::ofstream(data_dir_only) << "[gateway]\ndata_dir = \"" << dir.path << "\"\n";

  const std::string env_b = "METERD_SOCKET=" + dir.file("b.sock");
  const auto who = [](const Run& r) {
    return r.status == 0 ? json::parse(r.out).value("gateway", "?") : "exit " + r.err;
  };
  CHECK(who(meterctl("--socket " + dir.file("a.sock") + " --config " + config + " status --json",
                     env_b)) == "A");
  CHECK(who(meterctl("--config " + config + " status --json", env_b)) == "B");
  CHECK(who(meterctl("--config " + config + " status --json")) == "C");
  CHECK(who(meterctl("status --json --config " + data_dir_only)) == "D");
  // An empty METERD_SOCKET counts as unset.
  CHECK(who(meterctl("status --json --config " + config, "METERD_SOCKET=")) == "C");
  // Nothing given: the packaged default.
  if (!fs::exists("/run/meterd/meterd.sock")) {
    const Run r = meterctl("status");
    CHECK(r.status == 3);
    CHECK(r.err ==
          "meterctl: cannot reach meterd at /run/meterd/meterd.sock: No such file or directory\n");
  }
}

TEST_CASE("nothing listening: exit 3 and one exact line, nothing on stdout") {
  TempDir dir;
  const Run missing = meterctl("--socket " + dir.file("none.sock") + " status");
  CHECK(missing.status == 3);
  CHECK(missing.out.empty());
  CHECK(missing.err == "meterctl: cannot reach meterd at " + dir.file("none.sock") +
                           ": No such file or directory\n");

  // A socket file nobody listens on any more (the daemon died): refused.
  const std::string stale = dir.file("stale.sock");
  { FakeMeterd gone(stale, named("x")); }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, stale.data(), stale.size());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  ::close(fd);  // bound, never listening
  const Run refused = meterctl("--socket " + stale + " meters");
  CHECK(refused.status == 3);
  CHECK(refused.err == "meterctl: cannot reach meterd at " + stale + ": Connection refused\n");

  // A daemon that accepts and never answers: the client gives up after --timeout.
  FakeMeterd hung(dir.file("hung.sock"), [](const json&, const FakeMeterd::Send&) {});
  const Run slow = meterctl("--socket " + dir.file("hung.sock") + " --timeout 0.3 backlog");
  CHECK(slow.status == 3);
  CHECK(slow.err == "meterctl: cannot reach meterd at " + dir.file("hung.sock") +
                        ": no answer within 0.3 s (--timeout)\n");
}

TEST_CASE("usage errors: one line on stderr, exit 2; --help exit 0") {
  for (const std::string args :
       {"relay m1 explode", "export --from yesterday", "export --from 2026-12-01T08:00", "read",
        "scan rs485-1 --first 0", "meters --bogus", "nosuchverb", ""}) {
    CAPTURE(args);
    const Run r = meterctl(args);
    CHECK(r.status == 2);
    CHECK(r.out.empty());
    REQUIRE(!r.err.empty());
    CHECK(r.err.rfind("meterctl: ", 0) == 0);
    CHECK(r.err.find('\n') == r.err.size() - 1);  // exactly one line
  }
  const Run help = meterctl("--help");
  CHECK(help.status == 0);
  CHECK(help.out.find("export") != std::string::npos);
  const Run verb_help = meterctl("export --help");
  CHECK(verb_help.status == 0);
  CHECK(verb_help.out.find("--data-dir") != std::string::npos);
}

TEST_CASE("--json passes the result through exactly; a daemon error is exit 1 with its code") {
  TempDir dir;
  const std::string result =
      R"({"meter":"m1","readings":[{"quantity":"voltage_l1","value":230.10,"unit":"V",)"
      R"("ts":"2026-12-01T08:59:00.000Z"},{"quantity":"energy_active_import_total",)"
      R"("value":12345678901234.5678,"unit":"kWh","ts":"2026-12-01T08:59:00.000Z"},)"
      R"({"quantity":"power_factor","value":0.10,"unit":"","ts":"2026-12-01T08:59:00.000Z"}],)"
      R"("complete":true})";
  FakeMeterd fake(dir.file("s.sock"), [&](const json& req, const FakeMeterd::Send& send) {
    if (req["meter"] == "m9") {
      send(
          R"({"ok":false,"error":{"code":"unknown_meter","message":"no meter m9 in the config"}})");
    } else {
      send(ok(result));
    }
  });
  const std::string s = "--socket " + dir.file("s.sock") + " ";
  // A careless client parses into double and prints 230.1, 0.1 and 12345678901234.568.
  const Run r = meterctl(s + "read m1 voltage_l1 energy_active_import_total --json");
  CHECK(r.status == 0);
  CHECK(r.out == result + "\n");
  const auto req = fake.requests().back();
  CHECK(req == json::parse(R"({"verb":"read","meter":"m1",
                               "quantities":["voltage_l1","energy_active_import_total"]})"));

  // Human: values with their digits and units.
  const Run h = meterctl(s + "read m1");
  CHECK(h.status == 0);
  CHECK(h.out.find("230.10  V") != std::string::npos);
  CHECK(h.out.find("12345678901234.5678  kWh") != std::string::npos);
  CHECK(h.out.find("0.10") != std::string::npos);

  const Run e = meterctl(s + "read m9");
  CHECK(e.status == 1);
  CHECK(e.err == "meterctl: read: unknown_meter: no meter m9 in the config\n");
}

TEST_CASE("status and meters: aligned tables whatever the widths, no colour when piped") {
  TempDir dir;
  FakeMeterd fake(dir.file("s.sock"), [&](const json& req, const FakeMeterd::Send& send) {
    if (req["verb"] == "status") {
      send(ok(status_result));
    } else {
      send(ok(R"({"meters":[{"id":"m1","bus":"rs485-1","protocol":"dlt645-2007",)"
              R"("address":"000000000001","state":"online","last_success":null,"successes":40,)"
              R"("failures":1,"timeouts":1,"latest":[{"quantity":"energy_active_import_total",)"
              R"("value":12345.60,"unit":"kWh","ts":"2026-12-01T08:59:00.000Z"}],"last_error":""},)"
              R"({"id":"meter-with-a-long-id-17","bus":"tcp-gw-long-name","protocol":"modbus",)"
              R"("address":"7","state":"offline","last_success":null,"successes":12345,)"
              R"("failures":120,"timeouts":120,"latest":[],"last_error":"timeout"}]})"));
    }
  });
  const std::string s = "--socket " + dir.file("s.sock") + " ";
  const Run st = meterctl(s + "status");
  CHECK(st.status == 0);
  CHECK(st.out.find('\033') == std::string::npos);  // stdout is a pipe: no colour
  CHECK(st.out.find("15 online, 2 offline (m17 m18), 1 unknown; 18 in all") != std::string::npos);
  CHECK(st.out.find("1200 readings, 3 events unsent") != std::string::npos);
  CHECK(st.out.find("connected to 127.0.0.1:1883; last PUBACK") != std::string::npos);

  const auto check_aligned = [](const std::string& out, const std::string& header,
                                const std::vector<std::string>& columns) {
    const auto lines = lines_of(out);
    std::size_t h = 0;
    while (h < lines.size() && lines[h].rfind(header, 0) != 0) ++h;
    REQUIRE(h < lines.size());
    for (const auto& col : columns) {
      CAPTURE(col);
      const auto at = lines[h].find(col);
      REQUIRE(at != std::string::npos);
      // Every row has a cell starting right under the header (left-aligned columns), after
      // two spaces of padding or more.
      for (std::size_t i = h + 1; i < lines.size() && !lines[i].empty(); ++i) {
        CAPTURE(lines[i]);
        REQUIRE(lines[i].size() > at);
        CHECK(lines[i][at] != ' ');
        CHECK(lines[i].substr(at - 2, 2) == "  ");
      }
    }
  };
  check_aligned(st.out, "BUS", {"PORT", "STATE"});
  CHECK(st.out.find("42.0%") != std::string::npos);

  const Run m = meterctl(s + "meters");
  CHECK(m.status == 0);
  check_aligned(m.out, "ID", {"BUS", "PROTOCOL", "ADDRESS", "STATE", "LATEST"});
  CHECK(m.out.find("12345.60 kWh") != std::string::npos);

  const Run mo = meterctl(s + "meters --offline --bus tcp-gw-long-name --json");
  CHECK(mo.status == 0);
  CHECK(fake.requests().back() ==
        json::parse(R"({"verb":"meters","bus":"tcp-gw-long-name","offline":true})"));
}

TEST_CASE("export through the daemon: CSV with the meter's digits, the range sent as epoch ms") {
  TempDir dir;
  const std::vector<std::string> rows = {
      R"({"seq":1,"meter":"m1","quantity":"voltage_l1","value":230.10,"unit":"V","ts":"2026-12-01T08:00:00.000Z"})",
      R"({"seq":2,"meter":"m1","quantity":"energy_active_import_total","value":12345678901234.5678,"unit":"kWh","ts":"2026-12-01T08:00:00.000Z"})",
      R"({"seq":3,"meter":"m1","quantity":"energy_active_import_total","value":100.00,"unit":"kWh","ts":"2026-12-01T00:00:00.000Z","frozen":"daily","read_ts":"2026-12-01T00:05:00.000Z"})",
      R"({"seq":4,"meter":"m,2","quantity":"power_factor","value":-0.5,"unit":"","ts":"2026-12-01T08:00:00.000Z"})",
  };
  FakeMeterd fake(dir.file("s.sock"), [&](const json&, const FakeMeterd::Send& send) {
    for (const auto& r : rows) send(R"({"data":)" + r + "}");
    send(ok(R"({"rows":4})"));
  });
  const std::string s = "--socket " + dir.file("s.sock") + " ";
  const Run csv = meterctl(s + "export --from 2026-12-01 --to 2026-12-01T10:00:00+02:00");
  CHECK(csv.status == 0);
  CHECK(csv.out ==
        "seq,meter,quantity,value,unit,ts,frozen,read_ts\n"
        "1,m1,voltage_l1,230.10,V,2026-12-01T08:00:00.000Z,,\n"
        "2,m1,energy_active_import_total,12345678901234.5678,kWh,2026-12-01T08:00:00.000Z,,\n"
        "3,m1,energy_active_import_total,100.00,kWh,2026-12-01T00:00:00.000Z,daily,"
        "2026-12-01T00:05:00.000Z\n"
        "4,\"m,2\",power_factor,-0.5,,2026-12-01T08:00:00.000Z,,\n");
  CHECK(fake.requests().back() ==
        json::parse(R"({"verb":"export","from":1796083200000,"to":1796112000000})"));

  const Run jsonl = meterctl(s + "export --meter m1 --format jsonl --from 1796083200000 --events");
  CHECK(jsonl.status == 0);
  std::string expected;
  for (const auto& r : rows) expected += r + "\n";
  CHECK(jsonl.out == expected);
  CHECK(fake.requests().back() == json::parse(R"({"verb":"export","meter":"m1","events":true,
                                                  "from":1796083200000,"to":253402300800000})"));
}

TEST_CASE(
    "export --data-dir reads the buffer file: exactly the stored rows of the range, "
    "the same text as through the daemon") {
  using namespace meterd::buffer;
  TempDir dir;
  constexpr std::int64_t t0 = 1'796'083'200'000;  // 2026-12-01T00:00:00Z
  std::vector<Reading> stored;
  {
    Options o;
    o.path = dir.file("buffer.db");
    auto store = Store::open(o);
    REQUIRE(store.has_value());
    Batch b;
    b.now_ms = t0;
    for (int i = 0; i < 48; ++i) {  // every half hour for a day, two meters
      Reading r;
      r.meter = i % 2 ? "m2" : "m1";
      r.quantity = "energy_active_import_total";
      r.mantissa = 1'234'500 + i * 10;  // 12345.00, 12345.10, ...: trailing zeros kept
      r.exponent = -2;
      r.unit = "kWh";
      r.ts_ms = t0 + i * 1'800'000;
      b.readings.push_back(r);
    }
    b.events.push_back({0, "m1", "meter.offline", t0 + 3'600'000, R"({"failures":3})"});
    auto appended = store->append(b);
    REQUIRE(appended.has_value());
    auto n = store->export_readings("m1", t0 + 7'200'000, t0 + 14'400'000, [&](const Reading& r) {
      stored.push_back(r);
      return true;
    });
    REQUIRE(n.has_value());
    // Left open (the daemon still running): the export must not need it closed.
    const Run live = meterctl("export --data-dir " + dir.path + " --meter m1 --format jsonl");
    CHECK(live.status == 0);
    CHECK(lines_of(live.out).size() == 24);
    REQUIRE(store->close().has_value());
  }
  // [02:00, 04:00): 02:00, 03:00 of m1 (02:30, 03:30 are m2); 04:00 is out (to is exclusive).
  REQUIRE(stored.size() == 2);
  const Run csv = meterctl("export --data-dir " + dir.path +
                           " --meter m1 --from 2026-12-01T02:00:00Z --to 2026-12-01T04:00:00Z");
  CHECK(csv.status == 0);
  CHECK(csv.out ==
        "seq,meter,quantity,value,unit,ts,frozen,read_ts\n"
        "5,m1,energy_active_import_total,12345.40,kWh,2026-12-01T02:00:00.000Z,,\n"
        "7,m1,energy_active_import_total,12345.60,kWh,2026-12-01T03:00:00.000Z,,\n");

  // The same rows through a (fake) daemon that formats them as meterd does: the same bytes.
  FakeMeterd fake(dir.file("s.sock"), [&](const json&, const FakeMeterd::Send& send) {
    for (const auto& r : stored) send(R"({"data":)" + meterd::firmware::reading_json(r) + "}");
    send(ok(R"({"rows":2})"));
  });
  for (const std::string format : {"csv", "jsonl"}) {
    const std::string range = " --meter m1 --from 2026-12-01T02:00:00Z --to 2026-12-01T04:00:00Z";
    const Run offline = meterctl("export --format " + format + " --data-dir " + dir.path + range);
    const Run online =
        meterctl("export --format " + format + " --socket " + dir.file("s.sock") + range);
    CHECK(offline.status == 0);
    CHECK(online.status == 0);
    CHECK(offline.out == online.out);
  }

  // Events in seq order among the readings, in both formats.
  const Run ev =
      meterctl("export --data-dir " + dir.path + " --meter m1 --events --to 2026-12-01T01:30:00Z");
  CHECK(ev.out ==
        "seq,meter,quantity,value,unit,ts,frozen,read_ts,event,data\n"
        "1,m1,energy_active_import_total,12345.00,kWh,2026-12-01T00:00:00.000Z,,,,\n"
        "3,m1,energy_active_import_total,12345.20,kWh,2026-12-01T01:00:00.000Z,,,,\n"
        "49,m1,,,,2026-12-01T01:00:00.000Z,,,meter.offline,\"{\"\"failures\"\":3}\"\n");

  // No buffer there: an error naming the file, and no empty database left behind.
  TempDir empty;
  const Run none = meterctl("export --data-dir " + empty.path);
  CHECK(none.status == 1);
  CHECK(none.err.rfind("meterctl: export: ", 0) == 0);
  CHECK(none.err.find(empty.file("buffer.db")) != std::string::npos);
  CHECK_FALSE(fs::exists(empty.file("buffer.db")));
}

TEST_CASE("tail: one line per reading, the skipped notice on stderr, JSON lines with --json") {
  TempDir dir;
  FakeMeterd fake(
      dir.file("s.sock"),
      [&](const json&, const FakeMeterd::Send& send) {
        send(
            R"({"data":{"seq":10,"meter":"m1","quantity":"voltage_l1","value":230.10,"unit":"V","ts":"2026-12-01T08:59:00.000Z"}})");
        send(
            R"({"data":{"seq":11,"meter":"meter-17","quantity":"energy_active_import_total","value":12345.67,"unit":"kWh","ts":"2026-12-01T08:59:00.000Z"}})");
        send(R"({"skipped":130})");
        send(
            R"({"data":{"seq":142,"meter":"m1","event":"meter.offline","ts":"2026-12-01T09:00:00.000Z","data":{"failures":3}}})");
        // Then the daemon stops: the connection closes under the client.
      },
      /*close_after=*/true);
  const std::string s = "--socket " + dir.file("s.sock") + " ";
  const Run t = meterctl(s + "tail --meter m1");
  CHECK(t.status == 3);
  const auto lines = lines_of(t.out);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "2026-12-01T08:59:00.000Z  m1  voltage_l1  230.10 V");
  CHECK(lines[1] == "2026-12-01T08:59:00.000Z  meter-17  energy_active_import_total  12345.67 kWh");
  CHECK(lines[2].find("event meter.offline") != std::string::npos);
  CHECK(t.err.find("meterctl: tail: 130 rows skipped") != std::string::npos);
  CHECK(t.err.find("meterctl: cannot reach meterd at " + dir.file("s.sock") +
                   ": the connection closed\n") != std::string::npos);
  CHECK(fake.requests().back() == json::parse(R"({"verb":"tail","meter":"m1"})"));

  const Run j = meterctl(s + "tail --json");
  const auto jl = lines_of(j.out);
  REQUIRE(jl.size() == 4);
  CHECK(
      jl[0] ==
      R"({"seq":10,"meter":"m1","quantity":"voltage_l1","value":230.10,"unit":"V","ts":"2026-12-01T08:59:00.000Z"})");
  CHECK(jl[2] == R"({"skipped":130})");
}

TEST_CASE("tail | head: ends when the reader goes away (SIGPIPE), the daemon sees the close") {
  TempDir dir;
  std::atomic<int> sent{0};
  FakeMeterd fake(dir.file("s.sock"), [&](const json&, const FakeMeterd::Send& send) {
    for (int i = 0; i < 5000; ++i) {  // bounded: far more than head needs
      if (!send(
              R"({"data":{"seq":)" + std::to_string(i) +
              R"(,"meter":"m1","quantity":"voltage_l1","value":230.1,"unit":"V","ts":"2026-12-01T08:59:00.000Z"}})"))
        return;
      ++sent;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  const Run r = meterctl("--socket " + dir.file("s.sock") + " tail", "", " | head -n 2");
  CHECK(lines_of(r.out).size() == 2);
  CHECK(sent.load() < 5000);  // it stopped early: the client went away
}

TEST_CASE(
    "scan: found meters as a table, then the ready-to-paste config; nothing found is exit 1") {
  TempDir dir;
  FakeMeterd fake(dir.file("s.sock"), [&](const json& req, const FakeMeterd::Send& send) {
    send(R"({"progress":{"done":1,"total":2,"found":0}})");
    if (req["bus"] == "empty") {
      send(R"({"progress":{"done":2,"total":2,"found":0}})");
      send(ok(R"({"bus":"empty","found":[],"config":"","elapsed_ms":900})"));
      return;
    }
    send(
        R"({"data":{"protocol":"dlt645-2007","address":"000000000001","profile":"dlt645-2007-basic"}})");
    send(R"({"progress":{"done":2,"total":2,"found":1}})");
    send(ok(
        R"({"bus":"rs485-1","found":[{"protocol":"dlt645-2007","address":"000000000001","profile":"dlt645-2007-basic"}],)"
        R"("config":"[[meter]]\nid = \"m000000000001\"\nbus = \"rs485-1\"\nprotocol = \"dlt645-2007\"\naddress = \"000000000001\"\nprofile = \"dlt645-2007-basic\"\n","elapsed_ms":12300})"));
  });
  const std::string s = "--socket " + dir.file("s.sock") + " ";
  const Run r = meterctl(s + "scan rs485-1");
  CHECK(r.status == 0);
  CHECK(r.err.empty());  // stderr is not a terminal: no progress bar
  CHECK(r.out.find("found 1 meter on rs485-1 in 12 s") != std::string::npos);
  CHECK(r.out.find("000000000001") != std::string::npos);
  CHECK(r.out.find("[[meter]]\nid = \"m000000000001\"\n") != std::string::npos);
  CHECK(fake.requests().back() == json::parse(R"({"verb":"scan","bus":"rs485-1"})"));

  const Run j = meterctl(s + "scan rs485-1 --protocol modbus --first 1 --last 10 --json");
  CHECK(j.status == 0);
  const auto jl = lines_of(j.out);
  REQUIRE(jl.size() == 2);  // the found meter, then the result
  CHECK(json::parse(jl[1])["elapsed_ms"] == 12300);
  CHECK(fake.requests().back() ==
        json::parse(R"({"verb":"scan","bus":"rs485-1","protocol":"modbus","first":1,"last":10})"));

  const Run none = meterctl(s + "scan empty");
  CHECK(none.status == 1);
  CHECK(none.err == "meterctl: scan: no meter answered on empty\n");
}

TEST_CASE("backlog, relay, timesync, reload: requests and output") {
  TempDir dir;
  FakeMeterd fake(dir.file("s.sock"), [&](const json& req, const FakeMeterd::Send& send) {
    const std::string verb = req["verb"];
    if (verb == "backlog") {
      send(ok(
          R"({"readings":1200,"events":3,"inflight":40,"oldest_unsent":"2026-12-01T08:00:00.000Z",)"
          R"("oldest_unsent_age_s":3600.5,"db_bytes":1048576,"wal_bytes":4096,)"
          R"("evicted_readings":0,"evicted_events":0,"mqtt":"disconnected"})"));
    } else if (verb == "relay") {
      if (req["meter"] == "m2") {
        send(
            R"x({"ok":false,"error":{"code":"disabled","message":"relay control is off ([commands] relay_control)"}})x");
      } else {
        send(ok(R"({"meter":"m1","action":"trip","relay":"open"})"));
      }
    } else if (verb == "timesync") {
      send(ok(R"({"buses":[{"bus":"rs485-1","ok":true,"time":"2026-12-01T09:00:00.000Z"}]})"));
    } else {
      send(ok(R"({"reloaded":true})"));
    }
  });
  const std::string s = "--socket " + dir.file("s.sock") + " ";
  const Run b = meterctl(s + "backlog");
  CHECK(b.status == 0);
  CHECK(b.out.find("readings:      1200 (40 in flight)") != std::string::npos);
  CHECK(b.out.find("database:      1.0 MiB (WAL 4.0 KiB)") != std::string::npos);
  CHECK(b.out.find("1 h 0 min ago") != std::string::npos);

  const Run r = meterctl(s + "relay m1 trip");
  CHECK(r.status == 0);
  CHECK(r.out == "m1: relay open\n");
  CHECK(fake.requests().back() == json::parse(R"({"verb":"relay","meter":"m1","action":"trip"})"));
  const Run off = meterctl(s + "relay m2 close");
  CHECK(off.status == 1);
  CHECK(off.err == "meterctl: relay: disabled: relay control is off ([commands] relay_control)\n");

  const Run t = meterctl(s + "timesync rs485-1");
  CHECK(t.status == 0);
  CHECK(fake.requests().back() == json::parse(R"({"verb":"timesync","bus":"rs485-1"})"));
  const Run rl = meterctl(s + "reload --json");
  CHECK(rl.out == "{\"reloaded\":true}\n");
}

// As a person sees it: a real terminal (tmux), where colour belongs, against the fake daemon.
TEST_CASE("terminal: status and tail under tmux, coloured on the terminal only, aligned") {
  if (std::system("command -v tmux >/dev/null 2>&1") != 0) {
    MESSAGE("tmux is not installed: terminal test skipped");
    return;
  }
  TempDir dir;
  FakeMeterd fake(dir.file("s.sock"), [&](const json& req, const FakeMeterd::Send& send) {
    if (req["verb"] == "status") {
      send(ok(status_result));
      return;
    }
    for (int i = 0; i < 3; ++i)
      send(
          R"({"data":{"seq":)" + std::to_string(i) +
          R"(,"meter":"m1","quantity":"voltage_l1","value":230.10,"unit":"V","ts":"2026-12-01T08:59:00.000Z"}})");
    // Keep the stream open like a live daemon until the test ends.
    wait_until([&] { return fake.stopping(); }, 400);
  });
  // One tmux server per screen (-L), so one ending never races the next one starting.
  const std::string tmux_base = "tmux -L meterctl-test-" + std::to_string(::getpid()) + "-";
  std::string tmux = tmux_base + "status";
  const std::string bin = std::string(METERD_BIN_DIR) + "/meterctl --socket " + dir.file("s.sock");
  const auto capture = [&](bool escapes) {
    const std::string cmd = tmux + " capture-pane -p " + (escapes ? "-e " : "") + "-t t";
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    return out;
  };
  struct KillServers {
    std::string base;
    ~KillServers() {
      for (const char* s : {"status", "nocolour", "tail"})
        std::system((base + s + " kill-server >/dev/null 2>&1").c_str());
    }
  } cleanup{tmux_base};

  REQUIRE(std::system((tmux + " new-session -d -s t -x 120 -y 30 'env -u NO_COLOR TERM=xterm " +
                       bin + " status; sleep 30'")
                          .c_str()) == 0);
  REQUIRE(wait_until([&] { return capture(false).find("LAST ERROR") != std::string::npos; }));
  const std::string plain = capture(false);
  const std::string coloured = capture(true);
  MESSAGE("meterctl status as seen on a 120x30 terminal:\n" << plain);
  CHECK(coloured.find("\033[") != std::string::npos);  // colour on the terminal
  // The bus table is aligned on screen (colour codes take no width).
  const auto lines = lines_of(plain);
  std::size_t h = 0;
  while (h < lines.size() && lines[h].rfind("BUS", 0) != 0) ++h;
  REQUIRE(h + 2 < lines.size());
  const auto state_at = lines[h].find("STATE");
  CHECK(lines[h + 1].substr(state_at, 2) == "up");
  CHECK(lines[h + 2].substr(state_at, 4) == "down");
  const auto util_end = lines[h].find("UTIL") + 4;
  CHECK(lines[h + 1].substr(util_end - 5, 5) == "42.0%");
  CHECK(lines[h + 2].substr(util_end - 4, 4) == "0.0%");

  // NO_COLOR on a terminal: none.
  tmux = tmux_base + "nocolour";
  REQUIRE(std::system(
              (tmux + " new-session -d -s t -x 120 -y 30 'NO_COLOR=1 " + bin + " status; sleep 30'")
                  .c_str()) == 0);
  REQUIRE(wait_until([&] { return capture(false).find("LAST ERROR") != std::string::npos; }));
  CHECK(capture(true).find("\033[3") == std::string::npos);

  // tail follows on the terminal.
  tmux = tmux_base + "tail";
  REQUIRE(std::system((tmux + " new-session -d -s t -x 120 -y 30 'env -u NO_COLOR " + bin +
                       " tail; sleep 30'")
                          .c_str()) == 0);
  REQUIRE(wait_until([&] {
    const auto screen = lines_of(capture(false));
    return std::count_if(screen.begin(), screen.end(), [](const std::string& l) {
             return l.find("m1  voltage_l1  230.10 V") != std::string::npos;
           }) == 3;
  }));
  MESSAGE("meterctl tail on a terminal:\n" << capture(false));
}
