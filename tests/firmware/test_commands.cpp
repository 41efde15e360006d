// Downlink commands: parse, validate, authorise, replay-guard (unit tier:
// the clock and the key are passed in). Each refusal has a case, and each
// case names the careless implementation it catches. The signature scheme
// is checked against an independent signer, /usr/bin/python3's json and
// hmac modules (not the `python3` on PATH, which may be another build).
#include <fstream>
#include <string>
#include <variant>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "firmware/commands.hpp"
#include "protocol/exact_json.hpp"
#include "tests/support/meterd.hpp"
#include "tests/support/system.hpp"

using meterd::firmware::check_command;
using meterd::firmware::Command;
using meterd::firmware::CommandError;
using meterd::firmware::CommandPolicy;
using meterd::firmware::hmac_sha256_hex;
using meterd::firmware::load_key_file;
using meterd::firmware::ReplayGuard;
using meterd::firmware::result_error;
using meterd::firmware::result_ok;
using meterd::firmware::signing_input;
using meterd::firmware::Verb;
using json = nlohmann::json;

namespace {

constexpr std::int64_t s = 1000;
constexpr std::int64_t min = 60 * s;
constexpr std::int64_t now = 1'796'097'600'000;  // 2026-12-01T04:00:00Z
const std::string key = "k3y-for-tests";
const std::string python = "/usr/bin/python3";

CommandPolicy relay_on() {
  CommandPolicy p;
  p.relay_control = true;
  p.hmac_key = key;
  return p;
}

// `payload` with "sig" set the way docs/commands.md says (this program's own
// signing_input; the Python cases check that against an independent signer).
std::string sign(std::string_view verb, json payload, const std::string& with = key) {
  const auto input = signing_input(verb, payload.dump());
  REQUIRE(input);
  payload["sig"] = hmac_sha256_hex(with, *input);
  return payload.dump();
}

json relay_payload(const std::string& id = "r-1", const std::string& ts = "2026-12-01T04:00:00Z",
                   const std::string& action = "close") {
  return {{"id", id}, {"meter", "m0001"}, {"action", action}, {"ts", ts}};
}

CommandError refused(std::string_view verb, std::string_view payload, const CommandPolicy& policy,
                     ReplayGuard& guard, std::int64_t at = now) {
  auto r = check_command(verb, payload, policy, guard, at);
  REQUIRE_MESSAGE(std::holds_alternative<CommandError>(r), "accepted: ", payload);
  return std::get<CommandError>(r);
}

CommandError refused(std::string_view verb, std::string_view payload,
                     const CommandPolicy& policy = relay_on()) {
  ReplayGuard guard;
  auto e = refused(verb, payload, policy, guard);
  CHECK(guard.size() == 0);  // a refused command never reaches the guard
  return e;
}

Command accepted(std::string_view verb, std::string_view payload, const CommandPolicy& policy,
                 ReplayGuard& guard, std::int64_t at = now) {
  auto r = check_command(verb, payload, policy, guard, at);
  if (auto* e = std::get_if<CommandError>(&r))
    FAIL("refused: ", payload, " -> ", e->code, ": ", e->message);
  return std::get<Command>(r);
}

Command accepted(std::string_view verb, std::string_view payload,
                 const CommandPolicy& policy = relay_on()) {
  ReplayGuard guard;
  return accepted(verb, payload, policy, guard);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    out += digits[static_cast<unsigned char>(c) >> 4];
    out += digits[static_cast<unsigned char>(c) & 0xf];
  }
  return out;
}

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  return out;
}

// What Python makes of a payload: the canonical signing input and its
// HMAC-SHA256 with `k`. The payload travels hex-encoded, so neither argv's
// locale nor a NUL can change it on the way.
struct PythonSigned {
  std::string input, sig;
};
PythonSigned python_sign(const std::string& k, const std::string& verb,
                         const std::string& payload) {
  static const std::string script = R"(
import hashlib, hmac, json, sys
obj = json.loads(bytes.fromhex(sys.argv[3]).decode("utf-8"))
obj.pop("sig", None)
text = sys.argv[2] + "\n" + json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
data = text.encode("utf-8")
print(data.hex())
print(hmac.new(sys.argv[1].encode(), data, hashlib.sha256).hexdigest())
)";
  const auto r = meterd::testing::run_program(python, {"-c", script, k, verb, hex(payload)});
  REQUIRE_MESSAGE(r.status == 0, python, " failed: ", r.output);
  const auto nl = r.output.find('\n');
  REQUIRE(nl != std::string::npos);
  const std::string sig = r.output.substr(nl + 1, 64);
  return {unhex(r.output.substr(0, nl)), sig};
}

void write_file(const std::filesystem::path& p, const std::string& text, mode_t mode) {
  std::ofstream(p, std::ios::binary) << text;
  REQUIRE(::chmod(p.c_str(), mode) == 0);
}

}  // namespace

// ---- HMAC-SHA256 ----

// Catches: a hex encoder with upper case or dropped leading zeros, a key
// longer than the block not hashed first (case 6), HMAC over key||message.
TEST_CASE("hmac_sha256_hex matches RFC 4231 test cases 1, 2, 6 and 7") {
  CHECK(hmac_sha256_hex(std::string(20, '\x0b'), "Hi There") ==
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(hmac_sha256_hex(std::string(131, '\xaa'),
                        "Test Using Larger Than Block-Size Key - Hash Key First") ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  CHECK(hmac_sha256_hex(std::string(131, '\xaa'),
                        "This is a test using a larger than block-size key and a larger than "
                        "block-size data. The key needs to be hashed before being used by the "
                        "HMAC algorithm.") ==
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

// ---- signing input ----

// Catches: a signer that covers "sig" itself (no signature could ever
// verify), keys in arrival order, pretty-printed JSON, a missing verb.
TEST_CASE("signing_input is the verb, a newline and the sorted compact payload without sig") {
  const auto in = signing_input(
      "relay", R"( { "ts" : "2026-12-01T04:00:00Z", "sig": "ab", "id": "r-1", "nested": {"b": 1,
      "a": [2, {"sig": "kept", "c": null}]} } )");
  REQUIRE(in);
  CHECK(
      *in ==
      "relay\n"
      R"({"id":"r-1","nested":{"a":[2,{"c":null,"sig":"kept"}],"b":1},"ts":"2026-12-01T04:00:00Z"})");
}

// Catches: signing floats, whose text differs between JSON libraries (1.0
// vs 1, 1e2 vs 100.0), so a correct signer is refused at random.
TEST_CASE("signing_input refuses floating-point numbers anywhere, and non-objects") {
  CHECK_FALSE(signing_input("read", R"({"id":"a","x":1.5})"));
  CHECK_FALSE(signing_input("read", R"({"id":"a","x":[1,{"y":1e2}]})"));
  CHECK_FALSE(signing_input("read", R"({"id":"a","x":1.0})"));
  CHECK_FALSE(signing_input("read", R"(["id"])"));
  CHECK_FALSE(signing_input("read", R"("text")"));
  CHECK_FALSE(signing_input("read", R"({"id":"a")"));
  CHECK_FALSE(signing_input("read", R"({"id":"a","id":"b"})"));
  CHECK(signing_input("read", R"({"id":"a","x":-12,"y":18446744073709551615})"));
}

// Catches: keys sorted by UTF-16 units (RFC 8785 style: U+1D11E before
// U+FF61) instead of code points as Python sorts; \u escapes for non-ASCII
// (ensure_ascii=True); upper-case \u001F; escaping "/" or DEL; a lone
// "-0" kept as "-0".
TEST_CASE("signing_input gives the bytes Python's json.dumps gives (unicode, escapes)") {
  const std::vector<std::string> payloads = {
      R"({"id":"c-1","meter":"m0001","action":"close","ts":"2026-12-01T04:00:00Z","sig":"00"})",
      R"({"zeta":"日本語","é":"\u00e9 straße","a":"tab\there \"q\" back\\slash \/ \u0001 \u001F \u007f \b\f\r\n","id":"u"})",
      R"({"\uff61":1,"\ud834\udd1e":2,"Z":3,"a":4,"é":5,"":6,"id":"order"})",
      R"({"b":[1,-2,0,-0,true,false,null,{"y":"\ud834\udd1e","x":[],"w":{}}],"id":"nest"})",
      R"({"n":18446744073709551615,"m":-9223372036854775808,"s":"\u2028\u2029\u0000","id":"big"})",
  };
  for (const auto& p : payloads) {
    CAPTURE(p);
    const auto ours = signing_input("relay", p);
    REQUIRE(ours);
    const auto theirs = python_sign(key, "relay", p);
    CHECK(*ours == theirs.input);
    CHECK(hmac_sha256_hex(key, *ours) == theirs.sig);
  }
}

// ---- a signed relay ----

// Catches: a verifier that differs from the documented scheme in any byte
// (the signature comes from Python's hmac over Python's canonical JSON,
// not from this program's signing_input), including one that covers "sig".
TEST_CASE("a relay signed independently by Python is accepted and remembered") {
  const std::string body =
      R"({"action":"trip","id":"py-1","meter":"m0007","ts":"2026-12-01T03:58:30.250Z"})";
  const auto py = python_sign(key, "relay", body);
  json payload = json::parse(body);
  payload["sig"] = py.sig;
  ReplayGuard guard;
  const auto c = accepted("relay", payload.dump(), relay_on(), guard);
  CHECK(c.verb == Verb::relay);
  CHECK(c.id == "py-1");
  CHECK(c.meter == "m0007");
  CHECK(c.action == "trip");
  CHECK(c.is_signed);
  REQUIRE(c.ts_ms);
  CHECK(*c.ts_ms == now - 90 * s + 250);
  CHECK(guard.seen("py-1"));
  CHECK(guard.size() == 1);
}

// Catches: a verifier that leaves the verb out, so a signed read or reload
// can be replayed onto the relay topic.
TEST_CASE("a signature over another verb is refused") {
  json p = relay_payload();
  p["sig"] = hmac_sha256_hex(key, *signing_input("reload", p.dump()));
  CHECK(refused("relay", p.dump()).code == "bad_signature");
}

// Catches: a verifier that checks only some members (the id, the meter).
TEST_CASE("a payload changed after signing is refused") {
  json p = json::parse(sign("relay", relay_payload()));
  p["action"] = "trip";
  const auto e = refused("relay", p.dump());
  CHECK(e.code == "bad_signature");
  CHECK(e.id == "r-1");
  p = json::parse(sign("relay", relay_payload()));
  p["ts"] = "2026-12-01T04:01:00Z";
  CHECK(refused("relay", p.dump()).code == "bad_signature");
}

// Catches: a verifier that compares only a prefix of the signature, or
// stops at the first differing character of a shorter one.
TEST_CASE("a signature wrong only in its last digit, or cut short, is refused") {
  json p = json::parse(sign("relay", relay_payload()));
  std::string sig = p["sig"];
  sig.back() = sig.back() == '0' ? '1' : '0';
  p["sig"] = sig;
  CHECK(refused("relay", p.dump()).code == "bad_signature");
  p["sig"] = sig.substr(0, 32);
  CHECK(refused("relay", p.dump()).code == "malformed");
  p["sig"] = "";
  CHECK(refused("relay", p.dump()).code == "malformed");
}

// Catches: a verifier that accepts a signature made with another key, or
// lower-cases what it receives (the scheme says lowercase).
TEST_CASE("a signature with another key, or in upper case, is refused") {
  CHECK(refused("relay", sign("relay", relay_payload(), "other-key")).code == "bad_signature");
  json p = json::parse(sign("relay", relay_payload()));
  std::string sig = p["sig"];
  for (auto& c : sig) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (sig != p["sig"]) {
    p["sig"] = sig;
    CHECK(refused("relay", p.dump()).code == "malformed");
  }
}

// Catches: an empty configured key treated as a key (HMAC with "" is
// computable by anyone), or a present "sig" skipped when no key is set.
TEST_CASE("a signed command with no key configured is refused, naming the missing key") {
  CommandPolicy p = relay_on();
  const std::string payload = sign("relay", relay_payload(), "");
  p.hmac_key.clear();
  auto e = refused("relay", payload, p);
  CHECK(e.code == "bad_signature");
  CHECK(contains(e.message, "no hmac key"));
  const std::string read = sign("read", {{"id", "q"}, {"meter", "m1"}}, "");
  e = refused("read", read, p);
  CHECK(e.code == "bad_signature");
}

// Catches: an implementation that checks "sig" only on relay.
TEST_CASE("other verbs may be signed; a present sig is always checked") {
  const auto c = accepted("timesync", sign("timesync", {{"id", "t-1"}, {"bus", "bus1"}}));
  CHECK(c.is_signed);
  CHECK(c.bus == "bus1");
  json p = json::parse(sign("timesync", {{"id", "t-1"}, {"bus", "bus1"}}));
  p["bus"] = "bus2";
  CHECK(refused("timesync", p.dump()).code == "bad_signature");
  // A signed read is not replay-guarded: only relay consumes its id.
  ReplayGuard guard;
  const auto read = sign("read", {{"id", "q"}, {"meter", "m1"}});
  accepted("read", read, relay_on(), guard);
  accepted("read", read, relay_on(), guard);
  CHECK(guard.size() == 0);
}

// ---- relay authorisation ----

// Catches: relay_control checked after the signature, or a valid signature
// treated as permission.
TEST_CASE("relay is refused when relay control is off, even with a valid signature") {
  CommandPolicy p = relay_on();
  p.relay_control = false;
  auto e = refused("relay", sign("relay", relay_payload()), p);
  CHECK(e.code == "disabled");
  CHECK(e.id == "r-1");
  CHECK(e.message == "relay: relay control is off ([commands] relay_control = false)");
  // Before anything about members or the signature.
  e = refused("relay", R"({"id":"r-2","actoin":"trip","sig":"zz"})", p);
  CHECK(e.code == "disabled");
}

// Catches: relay executed without a signature when a key is configured.
TEST_CASE("an unsigned relay is refused") {
  auto e = refused("relay", relay_payload().dump());
  CHECK(e.code == "unsigned");
  json p = relay_payload();
  p.erase("ts");
  CHECK(refused("relay", p.dump()).code == "unsigned");
}

// Catches: a ts that is optional for relay, so a signed relay lives
// forever and can be replayed once the guard has forgotten it.
TEST_CASE("a signed relay without ts is refused") {
  json p = relay_payload();
  p.erase("ts");
  const auto e = refused("relay", sign("relay", p));
  CHECK(e.code == "unsigned");
  CHECK(contains(e.message, "\"ts\""));
}

// Catches: an action passed through unchecked ("open" reaching the meter).
TEST_CASE("relay action must be trip or close") {
  auto e = refused("relay", sign("relay", relay_payload("r-1", "2026-12-01T04:00:00Z", "open")));
  CHECK(e.code == "invalid");
  CHECK(contains(e.message, "\"open\""));
  json p = relay_payload();
  p.erase("action");
  CHECK(refused("relay", sign("relay", p)).code == "malformed");
  p.erase("meter");
  p["action"] = "trip";
  CHECK(refused("relay", sign("relay", p)).code == "malformed");
  CHECK(accepted("relay", sign("relay", relay_payload("r-1", "2026-12-01T04:00:00Z", "trip")))
            .action == "trip");
}

// ---- ts window ----

// Catches: no skew check, a window that is one-sided, a limit compared in
// the wrong unit.
TEST_CASE("ts 6 min old or ahead is refused as expired; 4 min and exactly 5 min pass") {
  auto e = refused("relay", sign("relay", relay_payload("r-1", "2026-12-01T03:54:00Z")));
  CHECK(e.code == "expired");
  CHECK(e.message ==
        "relay: ts 2026-12-01T03:54:00Z is 6 min behind the gateway clock (limit 5 min)");
  e = refused("relay", sign("relay", relay_payload("r-1", "2026-12-01T04:06:00Z")));
  CHECK(e.code == "expired");
  CHECK(contains(e.message, "6 min ahead of"));
  e = refused("relay", sign("relay", relay_payload("r-1", "2026-12-01T03:54:59.500Z")));
  CHECK(contains(e.message, "5 min 0.500 s behind"));
  e = refused("relay", sign("relay", relay_payload("r-1", "2026-11-30T20:00:00Z")));
  CHECK(contains(e.message, "8 h behind"));
  accepted("relay", sign("relay", relay_payload("r-1", "2026-12-01T03:56:00Z")));
  accepted("relay", sign("relay", relay_payload("r-1", "2026-12-01T04:04:00Z")));
  accepted("relay", sign("relay", relay_payload("r-1", "2026-12-01T03:55:00Z")));
  accepted("relay", sign("relay", relay_payload("r-1", "2026-12-01T04:05:00.000+00:00")));
}

// Catches: a ts checked only on relay (an old read replayed would be
// answered; the head-end set ts to bound that).
TEST_CASE("a ts on another verb is checked too") {
  CHECK(refused("reload", R"({"id":"x","ts":"2026-12-01T03:00:00Z"})").code == "expired");
  const auto c = accepted("reload", R"({"id":"x","ts":"2026-12-01T04:00:01Z"})");
  CHECK(c.ts_ms == now + 1000);
}

// Catches: an offset dropped (04:00+08:00 taken as 04:00Z, 8 h off), a
// parser that accepts what it does not understand, a date not validated.
TEST_CASE("ts must be UTC ISO 8601: other offsets and broken dates are malformed") {
  for (const std::string ts :
       {"2026-12-01T04:00:00+08:00", "2026-12-01T04:00:00-00:00", "2026-12-01T04:00:00",
        "2026-12-01 04:00:00Z", "2026-12-01T04:00:00z", "2026-12-01t04:00:00Z",
        "2026-02-29T04:00:00Z", "2026-13-01T04:00:00Z", "2026-12-01T24:00:00Z",
        "2026-12-01T04:60:00Z", "2026-12-01T04:00:60Z", "2026-12-01T04:00:00.Z",
        "2026-12-01T04:00:00.1234567890Z", "2026-12-1T04:00:00Z", "+2026-12-01T04:00:00Z",
        "2026-12-01T04:00:00Z ", "1796097600000", ""}) {
    CAPTURE(ts);
    const auto e = refused("relay", sign("relay", relay_payload("r-1", ts)));
    CHECK(e.code == "malformed");
    CHECK(contains(e.message, "\"ts\""));
  }
  json p = relay_payload();
  p["ts"] = now;
  CHECK(refused("relay", sign("relay", p)).code == "malformed");
  // Leap day, fraction digits 1..9 (cut to ms).
  CommandPolicy wide = relay_on();
  wide.max_skew = std::chrono::hours(24 * 365 * 10);
  CHECK(accepted("reload", R"({"id":"x","ts":"2028-02-29T00:00:00Z"})", wide).ts_ms ==
        1'835'395'200'000);
  CHECK(accepted("reload", R"({"id":"x","ts":"2026-12-01T04:00:00.1Z"})").ts_ms == now + 100);
  CHECK(accepted("reload", R"({"id":"x","ts":"2026-12-01T04:00:00.123456789Z"})").ts_ms ==
        now + 123);
  CHECK(accepted("reload", R"({"id":"x","ts":"2020-01-01T00:00:00Z"})", wide).ts_ms ==
        1'577'836'800'000);
}

// ---- replay ----

// Catches: an accepted relay id not remembered (the same trip replayed);
// a guard that persists nothing, so a restart reopens the window.
TEST_CASE("a replayed relay is refused, also after to_state/from_state") {
  ReplayGuard guard;
  const auto payload = sign("relay", relay_payload("r-9"));
  accepted("relay", payload, relay_on(), guard);
  auto e = refused("relay", payload, relay_on(), guard, now + 10 * s);
  CHECK(e.code == "replayed");
  CHECK(e.id == "r-9");

  auto restarted = ReplayGuard::from_state(guard.to_state());
  REQUIRE(restarted);
  CHECK(restarted->size() == 1);
  e = refused("relay", payload, relay_on(), *restarted, now + 20 * s);
  CHECK(e.code == "replayed");
  // Another id is still welcome.
  accepted("relay", sign("relay", relay_payload("r-10")), relay_on(), *restarted, now + 20 * s);
}

// Catches: an id remembered before the checks that refused it (a forged or
// stale relay would then block the genuine one with the same id).
TEST_CASE("a refused relay does not consume its id") {
  ReplayGuard guard;
  json bad = json::parse(sign("relay", relay_payload("r-5")));
  bad["action"] = "trip";
  CHECK(refused("relay", bad.dump(), relay_on(), guard).code == "bad_signature");
  CHECK(refused("relay", sign("relay", relay_payload("r-5", "2026-12-01T03:00:00Z")), relay_on(),
                guard)
            .code == "expired");
  CHECK(guard.size() == 0);
  accepted("relay", sign("relay", relay_payload("r-5")), relay_on(), guard);
}

TEST_CASE("ReplayGuard state: empty, round trip, malformed refused") {
  auto g = ReplayGuard::from_state("");
  REQUIRE(g);
  CHECK(g->size() == 0);
  CHECK(g->to_state() == "{}");
  g->remember("a", now, now, std::chrono::minutes(5));
  g->remember("b c", now - 1, now, std::chrono::minutes(5));
  CHECK(g->to_state() == R"({"a":1796097600000,"b c":1796097599999})");
  const auto again = ReplayGuard::from_state(g->to_state());
  REQUIRE(again);
  CHECK(again->seen("a"));
  CHECK(again->seen("b c"));
  CHECK_FALSE(again->seen("c"));
  // Catches: a corrupt state taken as an empty guard (every id forgotten).
  for (const char* bad : {"{", "[]", "null", " ", R"({"a":"1"})", R"({"a":1.5})", R"({"":1})",
                          R"({"a":18446744073709551615})"}) {
    CAPTURE(bad);
    CHECK_FALSE(ReplayGuard::from_state(bad));
  }
}

// Catches: a guard that grows without bound, or forgets ids whose ts could
// still pass the skew check.
TEST_CASE("ReplayGuard forgets ids older than 2 * max_skew and keeps at most 10000") {
  const auto skew = std::chrono::minutes(5);
  ReplayGuard g;
  g.remember("old", now - 9 * min, now - 9 * min, skew);
  g.remember("new", now, now, skew);
  CHECK(g.seen("old"));  // 9 min < 10 min
  g.remember("later", now + 2 * min, now + 2 * min, skew);
  CHECK_FALSE(g.seen("old"));  // 11 min old at now + 2 min
  CHECK(g.seen("new"));

  ReplayGuard full;
  for (int i = 0; i < 10000; ++i) full.remember("id" + std::to_string(i), now + i, now, skew);
  CHECK(full.size() == 10000);
  full.remember("one-more", now - 1, now, skew);  // the oldest ts, and still kept
  CHECK(full.size() == 10000);
  CHECK(full.seen("one-more"));
  CHECK_FALSE(full.seen("id0"));
  CHECK(full.seen("id1"));
}

// ---- shape of the payload ----

// Catches: a parser that takes the longest valid prefix, or a throwing parse.
TEST_CASE("malformed JSON, non-object JSON and oversize payloads are malformed with id \"\"") {
  for (const char* bad : {"", "{", R"({"id":"x",})", R"({"id":"x"} x)", "[1,2]", R"("id")", "42",
                          "null", R"({"id":"x"/*c*/})", "\xff"}) {
    CAPTURE(bad);
    const auto e = refused("reload", bad);
    CHECK(e.code == "malformed");
    CHECK(e.id.empty());
  }
  CHECK(contains(refused("reload", "[1]").message, "object"));
  std::string big = R"({"id":"x","pad":")" + std::string(4096, 'p') + "\"}";
  auto e = refused("reload", big);
  CHECK(e.code == "malformed");
  CHECK(contains(e.message, "4096"));
}

// Catches: last-one-wins on a repeated member ({"action":"close",
// "action":"trip"} means two things; nlohmann and Python both take the last).
TEST_CASE("a member given twice is malformed") {
  const auto e = refused("relay", R"({"id":"r","meter":"m","action":"close","action":"trip"})");
  CHECK(e.code == "malformed");
  CHECK(contains(e.message, "\"action\""));
}

// Catches: ids that cannot be echoed safely or stored in the guard.
TEST_CASE("id: missing, not a string, empty, too long or not printable is malformed") {
  for (const char* bad : {R"({})", R"({"id":7})", R"({"id":null})", R"({"id":""})",
                          R"({"id":"a\nb"})", R"({"id":"é"})"}) {
    CAPTURE(bad);
    const auto e = refused("reload", bad);
    CHECK(e.code == "malformed");
    CHECK(contains(e.message, "\"id\""));
    CHECK(e.id.empty());
  }
  const json long_id = {{"id", std::string(65, 'x')}};
  auto e = refused("reload", long_id.dump());
  CHECK(e.code == "malformed");
  CHECK(contains(e.message, "65 bytes (limit 64)"));
  CHECK(accepted("reload", json{{"id", std::string(64, 'x')}}.dump()).id == std::string(64, 'x'));
  CHECK(accepted("reload", R"({"id":"a b ~"})").id == "a b ~");
}

// Catches: an unknown verb mapped to a default, or answered without its id.
TEST_CASE("an unknown verb is refused, naming it and the known ones") {
  const auto e = refused("reboot", R"({"id":"v-1"})");
  CHECK(e.code == "unknown_verb");
  CHECK(e.id == "v-1");
  CHECK(e.message == R"(unknown verb "reboot" (known: read, timesync, reload, relay))");
  CHECK(refused("Relay", R"({"id":"v-1"})").code == "unknown_verb");
  CHECK(contains(refused("bad\xff\n", R"({"id":"v"})").message, R"("bad\xff\x0a")"));
  // id is checked first.
  CHECK(refused("reboot", R"({"id":""})").code == "malformed");
}

// Catches: a lenient parser that lets a typo through ("actoin" ignored, and
// a default action taken), or members of one verb accepted on another.
TEST_CASE("unknown members are invalid, naming the member; sig and ts are allowed") {
  auto e = refused("relay", sign("relay", {{"id", "r"},
                                           {"meter", "m"},
                                           {"action", "close"},
                                           {"actoin", "trip"},
                                           {"ts", "2026-12-01T04:00:00Z"}}));
  CHECK(e.code == "invalid");
  CHECK(e.message == R"(relay: unknown member "actoin" (relay takes id, meter, action, ts, sig))");
  CHECK(refused("reload", R"({"id":"x","meter":"m1"})").code == "invalid");
  CHECK(refused("timesync", R"({"id":"x","meter":"m1"})").code == "invalid");
  CHECK(refused("read", R"({"id":"x","meter":"m1","bus":"b"})").code == "invalid");
  CHECK(refused("read", R"({"id":"x","meter":"m1","Meter":"m2"})").code == "invalid");
  const auto c = accepted("read", R"({"id":"x","meter":"m1","ts":"2026-12-01T04:00:00Z"})");
  CHECK_FALSE(c.is_signed);
}

// Catches: quantities taken unchecked (a number, a repeated name read twice).
TEST_CASE("read: meter required, quantities an optional list of distinct names") {
  auto c = accepted("read", R"({"id":"q","meter":"m1"})");
  CHECK(c.verb == Verb::read);
  CHECK(c.meter == "m1");
  CHECK(c.quantities.empty());
  c = accepted("read", R"({"id":"q","meter":"m1","quantities":["voltage.l1","energy"]})");
  CHECK(c.quantities == std::vector<std::string>{"voltage.l1", "energy"});
  for (const char* bad : {R"({"id":"q"})", R"({"id":"q","meter":""})", R"({"id":"q","meter":1})",
                          R"({"id":"q","meter":"m1","quantities":"energy"})",
                          R"({"id":"q","meter":"m1","quantities":[1]})",
                          R"({"id":"q","meter":"m1","quantities":[""]})"}) {
    CAPTURE(bad);
    CHECK(refused("read", bad).code == "malformed");
  }
  auto e = refused("read", R"({"id":"q","meter":"m1","quantities":["energy","energy"]})");
  CHECK(e.code == "invalid");
  CHECK(contains(e.message, "\"energy\" twice"));
  CHECK(refused("read", R"({"id":"q","meter":"m1","quantities":[]})").code == "invalid");
}

TEST_CASE("timesync: bus optional; reload: nothing else") {
  CHECK(accepted("timesync", R"({"id":"t"})").bus.empty());
  CHECK(accepted("timesync", R"({"id":"t","bus":"rs485-1"})").bus == "rs485-1");
  CHECK(refused("timesync", R"({"id":"t","bus":""})").code == "malformed");
  CHECK(refused("timesync", R"({"id":"t","bus":["a"]})").code == "malformed");
  CHECK(accepted("reload", R"({"id":"l"})").verb == Verb::reload);
  CHECK(meterd::firmware::to_string(Verb::timesync) == "timesync");
}

// ---- results ----

// Catches: a result serialised with nlohmann's dump, turning 220.10 into a
// string or a binary float.
TEST_CASE("result payloads") {
  const json result = {
      {"meter", "m1"},
      {"readings", json::array({{{"quantity", "voltage.l1"},
                                 {"value", meterd::protocol::exact_number({22010, -2})},
                                 {"unit", "V"}}})}};
  CHECK(
      result_ok("q-1", result) ==
      R"({"id":"q-1","ok":true,"result":{"meter":"m1","readings":[{"quantity":"voltage.l1","unit":"V","value":220.10}]}})");
  CHECK(result_error({"r-1", "replayed", "say \"no\""}) ==
        R"({"id":"r-1","ok":false,"error":{"code":"replayed","message":"say \"no\""}})");
  // Whatever the daemon puts in a message, the result stays JSON.
  const auto text = result_error({"", "meter_error", "bad \xff byte"});
  CHECK_FALSE(json::parse(text, nullptr, false).is_discarded());
}

// ---- key file ----

// Catches: a key file any local user can read (the signature is then worth
// nothing), a trailing newline taken as part of the key.
TEST_CASE("load_key_file: mode 0644 refused, 0600 accepted, trailing newline stripped") {
  meterd::testing::TempDir dir;
  const auto file = dir.path / "cmd.key";
  std::string error;
  write_file(file, "s3cret\n", 0644);
  CHECK_FALSE(load_key_file(file.string(), error));
  CHECK(error == "hmac key file " + file.string() +
                     " is readable by group or others (mode 0644); chmod 600 it");
  write_file(file, "s3cret\n", 0620);
  CHECK_FALSE(load_key_file(file.string(), error));
  CHECK(contains(error, "writable"));
  write_file(file, "s3cret\n", 0600);
  auto k = load_key_file(file.string(), error);
  REQUIRE(k);
  CHECK(*k == "s3cret");
  write_file(file, "a key with spaces \r\n\n", 0400);
  k = load_key_file(file.string(), error);
  REQUIRE(k);
  CHECK(*k == "a key with spaces");
}

// Catches: a missing or empty key file taken as the empty key (anyone can
// compute HMAC with ""), a directory or binary key slipping through.
TEST_CASE("load_key_file: missing, not regular, empty or binary refused") {
  meterd::testing::TempDir dir;
  std::string error;
  CHECK_FALSE(load_key_file((dir.path / "none").string(), error));
  CHECK(contains(error, "No such file"));
  ::chmod(dir.path.c_str(), 0700);
  CHECK_FALSE(load_key_file(dir.path.string(), error));
  CHECK(contains(error, "not a regular file"));
  const auto file = dir.path / "cmd.key";
  write_file(file, "", 0600);
  CHECK_FALSE(load_key_file(file.string(), error));
  CHECK(contains(error, "empty"));
  write_file(file, "\n\n", 0600);
  CHECK_FALSE(load_key_file(file.string(), error));
  CHECK(contains(error, "empty"));
  write_file(file, std::string("ab\0\x9c\n", 5), 0600);
  CHECK_FALSE(load_key_file(file.string(), error));
  CHECK(contains(error, "printable"));
  write_file(file, std::string(5000, 'k'), 0600);
  CHECK_FALSE(load_key_file(file.string(), error));
  CHECK(contains(error, "4096"));
}
