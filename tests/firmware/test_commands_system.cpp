// Downlink commands end to end (system tier): a head-end publishes on
// <prefix>/cmd/<verb> through a real mosquitto, meterd checks and executes
// them on metersim's meters, and the answer comes back on <prefix>/cmd/result
// (and the MQTT 5 response topic). Signatures are made here by Python's hmac
// module, not by meterd's code, so a shared mistake cannot pass.
#include <fstream>
#include <regex>
#include <string>

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include "protocol/decimal.hpp"
#include "tests/support/broker.hpp"
#include "tests/support/headend.hpp"
#include "tests/support/rig.hpp"

using namespace meterd::testing;
using namespace std::chrono_literals;
using meterd::protocol::parse_decimal;

namespace {

const std::string prefix = "meterd/gw";
const std::string key_text = "field-test-key-0123456789abcdef";

const std::string fleet =
    "seed = 9\nstatic = true\n[[bus]]\nname = \"d\"\nbaud = 9600\nparity = \"even\"\n"
    "[[meter]]\nid = \"d1\"\nbus = \"d\"\nprotocol = \"dlt645-2007\"\naddress = \"000000000001\"\n"
    "[[meter]]\nid = \"d2\"\nbus = \"d\"\nprotocol = \"dlt645-1997\"\naddress = \"000000000002\"\n";

std::string iso_now(std::int64_t offset_s = 0) {
  const auto t = std::chrono::system_clock::now() + std::chrono::seconds(offset_s);
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Signs a command the way docs/commands.md tells a head-end to, in Python.
std::string sign(const std::filesystem::path& key, const std::string& verb, nlohmann::json cmd) {
  static const char* script =
      "import hashlib, hmac, json, sys\n"
      "key = open(sys.argv[1], 'rb').read()\n"
      "obj = json.loads(sys.argv[3])\n"
      "text = sys.argv[2] + '\\n' + json.dumps(obj, sort_keys=True, separators=(',', ':'), "
      "ensure_ascii=False)\n"
      "obj['sig'] = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()\n"
      "print(json.dumps(obj))\n";
  const auto r = run_program("/usr/bin/python3", {"-c", script, key.string(), verb, cmd.dump()});
  REQUIRE_MESSAGE(r.status == 0, r.output);
  return r.output.substr(0, r.output.find_last_not_of('\n') + 1);
}

struct CommandRig {
  Broker broker;
  TempDir keys;
  std::filesystem::path key = keys.path / "cmd.key";
  std::unique_ptr<Rig> rig;
  std::unique_ptr<HeadEnd> head;
  int n = 0;

  explicit CommandRig(bool relay_control) {
    std::ofstream(key) << key_text;  // no newline: the bytes are the key
    ::chmod(key.c_str(), 0600);
    rig = std::make_unique<Rig>(fleet, std::vector<std::string>{}, "1m", [&](std::string t) {
      t = std::regex_replace(t, std::regex("\nport = 1883\n"),
                             "\nport = " + std::to_string(broker.port()) + "\n");
      t = std::regex_replace(t, std::regex("topic_prefix = \"[^\"]*\""),
                             "topic_prefix = \"" + prefix + "\"");
      // d1 gets the simulator's password (level 02, 000000) for relay control.
      t = std::regex_replace(t, std::regex("(address = \"000000000001\"\n)"),
                             "$1password = \"02000000\"\n");
      return t + "\n[commands]\nrelay_control = " + (relay_control ? "true" : "false") +
             "\nhmac_key_file = \"" + key.string() + "\"\n";
    });
    HeadEndOptions ho;
    ho.port = broker.port();
    ho.filters = {prefix + "/#", "client/#"};
    head = std::make_unique<HeadEnd>(ho);
    rig->start();
    REQUIRE_MESSAGE(head->wait_topic(prefix + "/status", 20s).size() == 1, rig->meterd->log_text());
    REQUIRE(eventually(
        [&] {
          for (const auto& m : head->messages())
            if (m.topic == prefix + "/status" &&
                nlohmann::json::parse(m.payload)["state"] == "online")
              return true;
          return false;
        },
        20s));
  }

  // Publishes and waits for the result carrying `id` (null json on timeout).
  nlohmann::json ask(const std::string& verb, const std::string& payload, const std::string& id,
                     const std::string& response_topic = {}, const std::string& correlation = {}) {
    head->clear();
    REQUIRE(head->publish(prefix + "/cmd/" + verb, payload, 1, false, response_topic, correlation));
    nlohmann::json result;
    head->wait_for(
        [&](const auto& ms) {
          for (const auto& m : ms) {
            if (m.topic != prefix + "/cmd/result") continue;
            auto j = nlohmann::json::parse(m.payload, nullptr, false);
            if (j.is_object() && j.value("id", "") == id) {
              result = j;
              return true;
            }
          }
          return false;
        },
        30s);
    return result;
  }
  std::string relay_state() { return rig->sim.ctl({{"cmd", "relay"}, {"meter", "d1"}})["relay"]; }
  std::string next_id() { return "cmd-" + std::to_string(++n); }
};

}  // namespace

// Catches: relay control obeyed while switched off, an unsigned or tampered
// command obeyed, a stale command obeyed, a replay obeyed (also after a
// restart that forgot the ids seen), a crash on malformed JSON.
TEST_CASE("relay: refused unless enabled, signed, fresh and new; executed when all four hold") {
  SUBCASE("switched off: refused even with a good signature") {
    CommandRig c(false);
    const std::string id = c.next_id();
    const auto payload =
        sign(c.key, "relay", {{"id", id}, {"meter", "d1"}, {"action", "trip"}, {"ts", iso_now()}});
    const auto r = c.ask("relay", payload, id);
    CHECK(r["ok"] == false);
    CHECK(r["error"]["code"] == "disabled");
    CHECK(c.relay_state() == "closed");
  }
  SUBCASE("switched on") {
    CommandRig c(true);
    // Unsigned.
    std::string id = c.next_id();
    auto r = c.ask(
        "relay",
        nlohmann::json{{"id", id}, {"meter", "d1"}, {"action", "trip"}, {"ts", iso_now()}}.dump(),
        id);
    CHECK(r["error"]["code"] == "unsigned");
    // Tampered after signing: the action changed.
    id = c.next_id();
    auto signed_close =
        sign(c.key, "relay", {{"id", id}, {"meter", "d1"}, {"action", "close"}, {"ts", iso_now()}});
    auto tampered = nlohmann::json::parse(signed_close);
    tampered["action"] = "trip";
    r = c.ask("relay", tampered.dump(), id);
    CHECK(r["error"]["code"] == "bad_signature");
    // Signed for another verb.
    id = c.next_id();
    r = c.ask(
        "relay",
        sign(c.key, "read", {{"id", id}, {"meter", "d1"}, {"action", "trip"}, {"ts", iso_now()}}),
        id);
    CHECK(r["error"]["code"] == "bad_signature");
    // Ten minutes old.
    id = c.next_id();
    r = c.ask("relay",
              sign(c.key, "relay",
                   {{"id", id}, {"meter", "d1"}, {"action", "trip"}, {"ts", iso_now(-600)}}),
              id);
    CHECK(r["error"]["code"] == "expired");
    CHECK(c.relay_state() == "closed");

    // Good: the meter's relay opens.
    id = c.next_id();
    const auto good =
        sign(c.key, "relay", {{"id", id}, {"meter", "d1"}, {"action", "trip"}, {"ts", iso_now()}});
    r = c.ask("relay", good, id);
    REQUIRE_MESSAGE(r["ok"] == true, r.dump() << c.rig->meterd->log_text());
    CHECK(r["result"]["relay"] == "open");
    CHECK(c.relay_state() == "open");
    // The same command again: refused, and the relay stays as it is.
    c.rig->sim.ctl({{"cmd", "press_button"}, {"meter", "d1"}});  // no effect without close-allowed
    r = c.ask("relay", good, id);
    CHECK(r["error"]["code"] == "replayed");
    // After a restart the id is still remembered.
    CHECK(c.rig->meterd->proc->stop(SIGTERM, 10s) == 0);
    c.rig->start();
    REQUIRE(c.head->wait_for(
        [&](const auto& ms) {
          for (const auto& m : ms)
            if (m.topic == prefix + "/status" && !m.retained &&
                nlohmann::json::parse(m.payload)["state"] == "online")
              return true;
          return false;
        },
        20s));
    r = c.ask("relay", good, id);
    CHECK(r["error"]["code"] == "replayed");
    // A new signed close closes it again.
    id = c.next_id();
    r = c.ask(
        "relay",
        sign(c.key, "relay", {{"id", id}, {"meter", "d1"}, {"action", "close"}, {"ts", iso_now()}}),
        id);
    CHECK(r["ok"] == true);
    CHECK(c.relay_state() == "closed");
    // The executed command is in the audit trail the head-end receives.
    CHECK(c.head->wait_for(
        [&](const auto& ms) {
          for (const auto& m : ms)
            if (m.topic == prefix + "/events" &&
                m.payload.find("\"command.relay\"") != std::string::npos &&
                m.payload.find("\"" + id + "\"") != std::string::npos)
              return true;
          return false;
        },
        10s));
    // Relay control is DL/T 645-2007 only.
    id = c.next_id();
    r = c.ask(
        "relay",
        sign(c.key, "relay", {{"id", id}, {"meter", "d2"}, {"action", "trip"}, {"ts", iso_now()}}),
        id);
    CHECK(r["error"]["code"] == "unsupported");
  }
}

// Catches: an on-demand read that waits for the schedule (interval 1 min
// here), values rounded on the way, the MQTT 5 response topic ignored,
// malformed input that crashes or goes unanswered.
TEST_CASE("read, timesync, malformed input and the MQTT 5 response topic") {
  CommandRig c(false);
  std::string id = c.next_id();
  auto r = c.ask(
      "read",
      nlohmann::json{
          {"id", id}, {"meter", "d1"}, {"quantities", {"voltage.l1", "energy.active.import.total"}}}
          .dump(),
      id, "client/answers", "corr-42");
  REQUIRE_MESSAGE(r["ok"] == true, r.dump());
  const auto truth = c.rig->sim.ctl({{"cmd", "truth"}, {"meter", "d1"}});
  std::set<std::string> got;
  for (const auto& v : r["result"]["readings"]) {
    const std::string q = v["quantity"];
    got.insert(q);
    // The value's text in the raw payload (the parsed double could hide a rounding).
    CHECK(truth["values"].contains(q));
  }
  CHECK(got == std::set<std::string>{"voltage.l1", "energy.active.import.total"});
  // Exact text: find each truth value verbatim in the raw result.
  bool exact = false;
  for (const auto& m : c.head->messages()) {
    if (m.topic != prefix + "/cmd/result") continue;
    const std::string v = truth["values"]["voltage.l1"];
    exact = m.payload.find("\"value\":" + v) != std::string::npos;
  }
  CHECK(exact);
  // The same answer on the response topic, with the correlation data.
  const auto answers = c.head->wait_topic("client/answers", 5s);
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].correlation_data == "corr-42");

  id = c.next_id();
  r = c.ask("read", nlohmann::json{{"id", id}, {"meter", "nope"}}.dump(), id);
  CHECK(r["error"]["code"] == "unknown_meter");
  id = c.next_id();
  r = c.ask("read", nlohmann::json{{"id", id}, {"meter", "d1"}, {"quantities", {"nope"}}}.dump(),
            id);
  CHECK(r["error"]["code"] == "invalid");

  id = c.next_id();
  r = c.ask("timesync", nlohmann::json{{"id", id}}.dump(), id);
  REQUIRE_MESSAGE(r["ok"] == true, r.dump());
  CHECK(r["result"]["buses"][0]["bus"] == "d");

  // Malformed JSON: answered (with an empty id), never executed, and meterd carries on.
  r = c.ask("read", "{not json", "");
  CHECK(r["ok"] == false);
  CHECK(r["error"]["code"] == "malformed");
  id = c.next_id();
  r = c.ask("frobnicate", nlohmann::json{{"id", id}}.dump(), id);
  CHECK(r["error"]["code"] == "unknown_verb");
  id = c.next_id();
  r = c.ask("reload", nlohmann::json{{"id", id}}.dump(), id);
  CHECK(r["ok"] == true);
  CHECK(c.rig->meterd->proc->running());
}
