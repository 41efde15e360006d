// The real meterd, the real metersim and a real mosquitto broker on
// loopback, with a head-end subscriber that keeps a ledger of every seq
// (system tier): the contract's payloads, exact values, broker outages,
// SIGKILL, TLS, the status topic, and signed downlink commands. Every wait is
// bounded; nothing asserts on wall-clock speed.
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include "protocol/decimal.hpp"
#include "tests/support/broker.hpp"
#include "tests/support/headend.hpp"
#include "tests/support/rig.hpp"
#include "tests/support/sync_snapshot.hpp"

using namespace meterd::testing;
using namespace std::chrono_literals;
using meterd::protocol::Decimal;
using meterd::protocol::parse_decimal;

namespace {

const std::string prefix = "meterd/gw";

// Two DL/T 645-2007 meters, one 1997 and two Modbus meters, static values.
const std::string fleet = "seed = 5\nstatic = true\n" + bus_toml("d", 9600, "even") +
                          bus_toml("m", 9600, "none") +
                          meter_toml("d1", "d", "dlt645-2007", "000000000001") +
                          meter_toml("d2", "d", "dlt645-2007", "000000000002") +
                          meter_toml("d3", "d", "dlt645-1997", "000000000003") +
                          meter_toml("s630", "m", "modbus", "1", "model = \"sdm630\"\n") +
                          meter_toml("dt", "m", "modbus", "2", "model = \"dtsu666\"\n");
constexpr std::size_t fleet_meters = 5;

// The [mqtt] table metersim wrote, pointed at the test broker, plus `extra`.
std::string with_mqtt(std::string text, std::uint16_t port, const std::string& extra = "") {
  text = std::regex_replace(text, std::regex("\nport = 1883\n"),
                            "\nport = " + std::to_string(port) + "\n");
  text = std::regex_replace(text, std::regex("topic_prefix = \"[^\"]*\""),
                            "topic_prefix = \"" + prefix + "\"");
  text = std::regex_replace(text, std::regex("linger_ms = 200\n"),
                            "linger_ms = 100\nhealth_interval = \"2s\"\nreconnect_min = \"200ms\"\n"
                            "reconnect_max = \"1s\"\ndrain_max_per_s = 0\n" +
                                extra);
  return text;
}

// What the head-end has seen, seq by seq.
struct Ledger {
  std::map<std::int64_t, std::string> rows;  // seq -> the row's JSON (for "same seq, same row")
  std::map<std::int64_t, std::string> value_text;  // reading seq -> the value's exact text
  std::map<std::int64_t, nlohmann::json> readings;
  std::vector<nlohmann::json> events;
  std::vector<std::pair<std::int64_t, std::int64_t>> named;  // seq_gap and evicted ranges
  std::size_t duplicates = 0;
  std::vector<std::string> conflicts;  // a seq that came with two different rows
  std::vector<std::string> bad;        // payloads off the contract

  void add(std::int64_t seq, const std::string& row) {
    auto [it, fresh] = rows.emplace(seq, row);
    if (fresh) return;
    ++duplicates;
    if (it->second != row)
      conflicts.push_back(std::to_string(seq) + ": " + it->second + " / " + row);
  }

  explicit Ledger(const std::vector<HeadEndMessage>& messages) {
    static const std::regex ts_re(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
    static const std::regex value_re(R"("value":([-0-9.eE+]+))");
    for (const auto& m : messages) {
      if (m.topic == prefix + "/readings") {
        const auto j = nlohmann::json::parse(m.payload, nullptr, false);
        if (!j.is_object() || j.value("gateway", "") != "gw-sim" || !j["batch"].is_number() ||
            !j["readings"].is_array()) {
          bad.push_back(m.payload);
          continue;
        }
        // The value texts, in order (nlohmann would turn them into doubles).
        std::vector<std::string> texts;
        for (std::sregex_iterator it(m.payload.begin(), m.payload.end(), value_re), end; it != end;
             ++it)
          texts.push_back((*it)[1]);
        if (texts.size() != j["readings"].size()) bad.push_back(m.payload);
        for (std::size_t i = 0; i < j["readings"].size(); ++i) {
          const auto& r = j["readings"][i];
          if (!r["seq"].is_number_integer() || !r["meter"].is_string() ||
              !r["quantity"].is_string() || !r["value"].is_number() || !r["unit"].is_string() ||
              !r["ts"].is_string() || !std::regex_match(r["ts"].get<std::string>(), ts_re)) {
            bad.push_back(r.dump());
            continue;
          }
          const auto seq = r["seq"].get<std::int64_t>();
          add(seq, r.dump() + (i < texts.size() ? texts[i] : ""));
          if (i < texts.size()) value_text[seq] = texts[i];
          readings[seq] = r;
        }
      } else if (m.topic == prefix + "/events") {
        const auto e = nlohmann::json::parse(m.payload, nullptr, false);
        if (!e.is_object() || !e["seq"].is_number_integer() || !e["type"].is_string() ||
            !e["ts"].is_string()) {
          bad.push_back(m.payload);
          continue;
        }
        add(e["seq"].get<std::int64_t>(), e.dump());
        events.push_back(e);
        const std::string type = e["type"];
        if (type == "buffer.seq_gap" || type == "buffer.evicted")
          named.emplace_back(e["first"].get<std::int64_t>(), e["last"].get<std::int64_t>());
      }
    }
  }
  bool named_seq(std::int64_t seq) const {
    for (const auto& [a, b] : named)
      if (seq >= a && seq <= b) return true;
    return false;
  }
  // Seqs 1..upto that neither arrived nor were named.
  std::vector<std::int64_t> missing(std::int64_t upto) const {
    std::vector<std::int64_t> out;
    for (std::int64_t s = 1; s <= upto; ++s)
      if (!rows.contains(s) && !named_seq(s)) out.push_back(s);
    return out;
  }
  std::set<std::string> meters() const {
    std::set<std::string> out;
    for (const auto& [seq, r] : readings) out.insert(r["meter"].get<std::string>());
    return out;
  }
  std::int64_t max_seq() const { return rows.empty() ? 0 : rows.rbegin()->first; }
};

// The highest seq in meterd's buffer file, or 0 when it is empty.
std::int64_t max_stored_seq(const Meterd& m) {
  std::int64_t top = 0;
  for (const auto& r : m.readings()) top = std::max(top, r.seq);
  for (const auto& e : m.events()) top = std::max(top, e.seq);
  return top;
}

// The lowest seq still waiting in meterd's buffer, or INT64_MAX.
std::int64_t min_stored_seq(const Meterd& m) {
  std::int64_t low = INT64_MAX;
  for (const auto& r : m.readings()) low = std::min(low, r.seq);
  for (const auto& e : m.events()) low = std::min(low, e.seq);
  return low;
}

// Waits until every row stored up to `seq` has left the buffer (PUBACKed).
bool drained_through(const Meterd& m, std::int64_t seq, std::chrono::milliseconds timeout = 60s) {
  return eventually([&] { return min_stored_seq(m) > seq; }, timeout);
}

// Every seq below this has left the buffer (PUBACKed): the lowest seq still
// stored, less one; with an empty buffer, the highest seq the head-end saw.
std::int64_t delivered_upto(const Meterd& m, const HeadEnd& head) {
  const std::int64_t low = min_stored_seq(m);
  return low == INT64_MAX ? Ledger(head.messages()).max_seq() : low - 1;
}

// A broker that keeps sessions across a restart, and a head-end with a session it keeps,
// as in production: what meterd publishes while the head-end reconnects is queued for it.
BrokerOptions persistent_broker() {
  BrokerOptions bo;
  bo.persistent = true;
  return bo;
}
HeadEndOptions persistent_head(const Broker& broker) {
  HeadEndOptions ho;
  ho.port = broker.port();
  ho.filters = {prefix + "/#"};
  ho.persistent_session = true;
  return ho;
}

std::string with_missing(const Ledger& l, std::int64_t upto) {
  std::string s;
  for (auto q : l.missing(upto)) s += std::to_string(q) + " ";
  return s.empty() ? "none" : s;
}

}  // namespace

// Catches: values rounded through a double on the way to JSON, a payload off
// the contract (missing seq, ts without ms or zone), a batch whose rows are
// not in seq order, a status that is not retained, a will that is not set.
TEST_CASE("readings reach the head-end exactly as the meters said, in the contract's shape") {
  Broker broker;
  HeadEnd head(broker.port(), prefix + "/#");
  Rig rig(fleet, {}, "2s", [&](std::string t) { return with_mqtt(std::move(t), broker.port()); });
  rig.start();
  REQUIRE_MESSAGE(
      head.wait_for([](const auto& ms) { return Ledger(ms).meters().size() == fleet_meters; }, 40s),
      rig.meterd->log_text());
  // Health comes every 2 s here.
  REQUIRE(head.wait_for(
      [](const auto& ms) {
        for (const auto& m : ms)
          if (m.topic == prefix + "/health") return true;
        return false;
      },
      10s));
  const Ledger ledger(head.messages());
  CHECK_MESSAGE(ledger.bad.empty(), ledger.bad.front());
  CHECK(ledger.conflicts.empty());

  // Every value equals metersim's truth (static fleet), digit for digit for DL/T 645.
  std::map<std::string, nlohmann::json> truth;
  std::size_t compared = 0;
  for (const auto& [seq, r] : ledger.readings) {
    const std::string meter = r["meter"], quantity = r["quantity"];
    if (!truth.contains(meter)) truth[meter] = rig.sim.ctl({{"cmd", "truth"}, {"meter", meter}});
    const auto& t = truth[meter];
    if (!t["values"].contains(quantity)) continue;
    const auto expect = parse_decimal(t["values"][quantity].get<std::string>());
    const auto got = parse_decimal(ledger.value_text.at(seq));
    REQUIRE(expect);
    REQUIRE(got);
    CAPTURE(meter);
    CAPTURE(quantity);
    CAPTURE(ledger.value_text.at(seq));
    CHECK(*got == *expect);
    if (t["protocol"] != "modbus") CHECK(got->identical(*expect));
    ++compared;
  }
  CHECK(compared >= ledger.readings.size() * 9 / 10);

  // Seqs rise within a batch and across batches of one session.
  std::int64_t last = 0;
  bool ordered = true;
  for (const auto& m : head.messages()) {
    if (m.topic != prefix + "/readings") continue;
    const auto batch = nlohmann::json::parse(m.payload);  // outlives the loop over its rows
    for (const auto& r : batch["readings"]) {
      if (r["seq"].get<std::int64_t>() <= last) ordered = false;
      last = r["seq"];
    }
  }
  CHECK(ordered);

  // The health message names the buffer, the meters, the buses and the uplink.
  nlohmann::json health;
  for (const auto& m : head.messages())
    if (m.topic == prefix + "/health") health = nlohmann::json::parse(m.payload);
  CHECK(health["buffer"].contains("readings"));
  CHECK(health["buffer"].contains("oldest_unsent_age_s"));
  CHECK(health["meters"]["total"] == fleet_meters);
  CHECK(health["buses"].contains("d"));
  CHECK(health["buses"]["d"].contains("timeouts"));
  CHECK(health["uplink"]["connected"] == true);

  // Status: retained online for anyone who subscribes later.
  {
    HeadEnd late(broker.port(), prefix + "/status");
    const auto st = late.wait_topic(prefix + "/status", 5s);
    REQUIRE(st.size() == 1);
    CHECK(st[0].retained);
    const auto j = nlohmann::json::parse(st[0].payload);
    CHECK(j["state"] == "online");
    CHECK(j["version"] == "0.1.0");
    CHECK(j["started"].is_string());
  }
  // Killed without a word: the broker publishes the will, retained.
  rig.meterd->proc->stop(SIGKILL, 5s);
  REQUIRE(eventually(
      [&] {
        HeadEnd late(broker.port(), prefix + "/status");
        const auto st = late.wait_topic(prefix + "/status", 2s);
        return st.size() == 1 && st[0].retained &&
               nlohmann::json::parse(st[0].payload)["state"] == "offline";
      },
      30s));  // the broker notices after 1.5 x keepalive at worst; a closed socket at once
}

// Catches: rows acknowledged in the buffer when published rather than on
// PUBACK (lost with the broker), in-flight rows never requeued after a
// disconnect (stuck until a restart), libmosquitto's own queue growing while
// the link is down, no reconnect after the broker comes back.
TEST_CASE("broker down for 20 s, twice: every seq arrives") {
  // The head-end keeps a session on a broker that saves it across the restart, as a
  // production head-end does: what meterd publishes before the head-end is back is queued.
  Broker broker(persistent_broker());
  HeadEnd head(persistent_head(broker));
  Rig rig(fleet, {}, "1s", [&](std::string t) { return with_mqtt(std::move(t), broker.port()); });
  rig.start();
  REQUIRE_MESSAGE(
      head.wait_for([](const auto& ms) { return Ledger(ms).meters().size() == fleet_meters; }, 40s),
      rig.meterd->log_text());
  for (int outage = 0; outage < 2; ++outage) {
    CAPTURE(outage);
    broker.stop();
    std::this_thread::sleep_for(20s);
    const std::int64_t stored_in_outage = max_stored_seq(*rig.meterd);
    broker.start();
    REQUIRE(head.wait_connected(15s));
    REQUIRE_MESSAGE(drained_through(*rig.meterd, stored_in_outage), rig.meterd->log_text());
  }
  const std::int64_t upto = delivered_upto(*rig.meterd, head);
  // Everything that left the buffer was PUBACKed, so the head-end has it (QoS 1 both ways).
  REQUIRE(head.wait_for([&](const auto& ms) { return Ledger(ms).missing(upto).empty(); }, 20s));
  const Ledger ledger(head.messages());
  CHECK(upto > 100);
  CHECK(ledger.conflicts.empty());
  CHECK(ledger.bad.empty());
  MESSAGE("seqs accounted for: " << upto << ", duplicates: " << ledger.duplicates);
  const std::string log = rig.meterd->log_text();
  CHECK(log.find("mqtt: disconnected") != std::string::npos);
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
}

// Catches: an uplink that trusts its in-memory in-flight set across a crash
// (rows it had sent but not seen acknowledged must go again), a restart that
// reuses seqs, a missing buffer.seq_gap for the seqs reserved and never used.
TEST_CASE("meterd SIGKILLed while draining a backlog, restarted: no seq missing") {
  Broker broker;
  // Small batches and a slow drain (50 rows/s), so the kill lands while publishing.
  Rig rig(fleet, {}, "1s", [&](std::string t) {
    t = with_mqtt(std::move(t), broker.port());
    t = std::regex_replace(t, std::regex("batch_max = 500"), "batch_max = 20");
    return std::regex_replace(t, std::regex("drain_max_per_s = 0"), "drain_max_per_s = 50");
  });
  broker.stop();
  rig.start();
  REQUIRE(eventually([&] { return max_stored_seq(*rig.meterd) > 400; }, 60s));
  broker.start();
  HeadEnd head(broker.port(), prefix + "/#");
  REQUIRE(head.wait_for([](const auto& ms) { return Ledger(ms).rows.size() >= 100; }, 30s));
  rig.meterd->proc->stop(SIGKILL, 5s);
  const std::int64_t before_kill = max_stored_seq(*rig.meterd);
  rig.start();
  REQUIRE_MESSAGE(drained_through(*rig.meterd, before_kill, 90s), rig.meterd->log_text());
  const std::int64_t upto = delivered_upto(*rig.meterd, head);
  REQUIRE_MESSAGE(
      head.wait_for([&](const auto& ms) { return Ledger(ms).missing(upto).empty(); }, 20s),
      with_missing(Ledger(head.messages()), upto));
  const Ledger ledger(head.messages());
  CHECK(ledger.conflicts.empty());
  bool gap = false;
  for (const auto& e : ledger.events)
    if (e["type"] == "buffer.seq_gap") gap = true;
  CHECK(gap);  // the unclean stop was declared
  MESSAGE("seqs accounted for: " << upto << ", duplicates after the kill: " << ledger.duplicates);
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
}

// Catches: a seq handed out twice after a power cut rolled the buffer back (two
// different rows under one seq at the head-end), rows acked before they were
// durable, a seq_gap that does not cover what the cut took. The cut is modelled
// by the sync_snapshot shim: after each SIGKILL the data dir is cut back to
// what meterd had fsynced. Default sync mode (full).
TEST_CASE("power cuts at random moments: no seq carries two rows; every seq arrives or is named") {
  if (sync_snapshot_library().empty()) {
    MESSAGE("the sync_snapshot shim is not built in this configuration (sanitizers, cross)");
    return;
  }
  Broker broker(persistent_broker());
  HeadEnd head(persistent_head(broker));
  Rig rig(fleet, {}, "1s", [&](std::string t) { return with_mqtt(std::move(t), broker.port()); });
  std::filesystem::create_directories(rig.data_dir);
  const unsigned seed = std::random_device{}();
  MESSAGE("power-cut seed " << seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> lifetime_ms(1500, 6000);
  for (int cut = 0; cut < 5; ++cut) {
    CAPTURE(cut);
    Process p("/usr/bin/env",
              under_sync_snapshot(rig.data_dir, std::string(METERD_BIN_DIR) + "/meterd",
                                  {"--config", rig.config.string()}),
              rig.dir.path / ("meterd-cut" + std::to_string(cut) + ".log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(lifetime_ms(rng)));
    p.stop(SIGKILL, 5s);
    const RestoreReport report = restore_synced(rig.data_dir);
    MESSAGE("cut " << cut << ": " << report.describe());
  }
  rig.start();  // last life without the shim: drain everything
  REQUIRE(eventually([&] { return max_stored_seq(*rig.meterd) > 0; }, 20s));
  const std::int64_t top = max_stored_seq(*rig.meterd);
  REQUIRE_MESSAGE(drained_through(*rig.meterd, top, 90s), rig.meterd->log_text());
  const std::int64_t upto = delivered_upto(*rig.meterd, head);
  REQUIRE_MESSAGE(
      head.wait_for([&](const auto& ms) { return Ledger(ms).missing(upto).empty(); }, 20s),
      with_missing(Ledger(head.messages()), upto));
  const Ledger ledger(head.messages());
  CHECK_MESSAGE(ledger.conflicts.empty(), ledger.conflicts.front());
  CHECK(ledger.bad.empty());
  std::size_t gaps = 0;
  for (const auto& e : ledger.events)
    if (e["type"] == "buffer.seq_gap") ++gaps;
  CHECK(gaps >= 5);  // one per unclean stop
  MESSAGE("seqs accounted for: " << upto << ", rows arrived: " << ledger.rows.size()
                                 << ", duplicates: " << ledger.duplicates);
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
}

// Catches: TLS settings read but not applied (a plain connect to a TLS port
// fails), a broker config that would let anyone in.
TEST_CASE("TLS with client certificates: meterd connects; a client without a certificate cannot") {
  TempDir pki_dir;
  const TestPki pki = make_test_pki(pki_dir.path);
  BrokerOptions bo;
  bo.tls = BrokerTls{pki.ca_cert, pki.server_cert, pki.server_key, true};
  Broker broker(bo);
  HeadEndOptions ho;
  ho.port = broker.port();
  ho.filters = {prefix + "/#"};
  ho.ca_file = pki.ca_cert.string();
  ho.cert_file = pki.client_cert.string();
  ho.key_file = pki.client_key.string();
  HeadEnd head(ho);
  Rig rig(fleet, {}, "2s", [&](std::string t) {
    return with_mqtt(std::move(t), broker.port()) + "\n[mqtt.tls]\nca_file = \"" +
           pki.ca_cert.string() + "\"\ncert_file = \"" + pki.client_cert.string() +
           "\"\nkey_file = \"" + pki.client_key.string() + "\"\n";
  });
  rig.start();
  REQUIRE_MESSAGE(
      head.wait_for([](const auto& ms) { return Ledger(ms).meters().size() == fleet_meters; }, 40s),
      rig.meterd->log_text() << broker.log());
  CHECK(rig.meterd->log_text().find("(TLS)") != std::string::npos);

  HeadEndOptions no_cert = ho;
  no_cert.cert_file.clear();
  no_cert.key_file.clear();
  no_cert.timeout = 3s;
  CHECK_THROWS(HeadEnd(no_cert));
  HeadEndOptions plain = ho;
  plain.ca_file.clear();
  plain.cert_file.clear();
  plain.key_file.clear();
  plain.timeout = 3s;
  CHECK_THROWS(HeadEnd(plain));
}

// Catches: password_file read but not sent (or sent with its newline), a
// username without the password, a refused CONNACK that is not reported.
TEST_CASE("username and password_file: the right password connects, a wrong one is refused") {
  TempDir auth;
  const auto passwords = auth.path / "passwd";
  const auto r = run_program("/usr/bin/mosquitto_passwd",
                             {"-b", "-c", passwords.string(), "gw-sim", "s3cret pass"});
  REQUIRE_MESSAGE(r.status == 0, r.output);
  BrokerOptions bo;
  bo.allow_anonymous = false;
  bo.extra_config = "password_file " + passwords.string() + "\n";
  Broker broker(bo);
  std::ofstream(auth.path / "good") << "s3cret pass\n";  // a trailing newline, as editors leave
  std::ofstream(auth.path / "bad") << "guess\n";
  Rig rig(fleet, {}, "2s", [&](std::string t) {
    t = with_mqtt(std::move(t), broker.port());
    return std::regex_replace(t, std::regex("\\[mqtt\\]\n"),
                              "[mqtt]\nusername = \"gw-sim\"\npassword_file = \"" +
                                  (auth.path / "bad").string() + "\"\n");
  });
  rig.start();
  REQUIRE(eventually(
      [&] { return rig.meterd->log_text().find("mqtt: cannot connect") != std::string::npos; },
      20s));
  CHECK(rig.meterd->log_text().find("mqtt: connected") == std::string::npos);
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);

  // The right password; the head-end logs in with it too.
  std::string text;
  {
    std::ifstream in(rig.config);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(rig.config) << std::regex_replace(text, std::regex("/bad\""), "/good\"");
  rig.start();
  REQUIRE_MESSAGE(
      eventually(
          [&] { return rig.meterd->log_text().find("mqtt: connected") != std::string::npos; }, 20s),
      rig.meterd->log_text() << broker.log());
  CHECK(rig.meterd->proc->stop(SIGTERM, 10s) == 0);
}
