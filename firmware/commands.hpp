// Downlink commands (docs/commands.md): what arrives on
// <prefix>/cmd/<verb> is parsed, checked and either turned into a Command
// the daemon executes or refused with a CommandError naming the problem.
// Pure: the clock is passed in, the key is passed in, the replay guard's
// state is a string the caller persists (the buffer's state table), so a
// restart does not reopen the replay window.
//
// Verbs: read {meter, quantities?}, timesync {bus?}, reload {}, relay
// {meter, action: "trip"|"close"}. Every command carries "id" (a non-empty
// string of printable ASCII, at most 64 bytes) and may carry "ts" and
// "sig"; any other member is refused, so a typo ("actoin") never passes
// unnoticed. The payload is one JSON object of at most 4096 bytes, each
// member once. relay is refused unless relay_control is on; then it must
// carry "ts" and "sig": lowercase hex HMAC-SHA256, keyed with the key
// (load_key_file), over signing_input(verb, payload). A signed relay id is
// accepted once: the guard remembers it for as long as its ts could still
// pass the skew check. Other verbs may be signed; a "sig" that is present is
// always checked, and a "ts" that is present must be within ±max_skew.
//
// "ts": UTC, "YYYY-MM-DDTHH:MM:SS[.f]Z" (1 to 9 fraction digits, cut to
// milliseconds) or the same ending "+00:00" (Python's isoformat()). Any
// other offset is refused as malformed rather than converted: the head-end
// is meant to sign UTC, and a local time would hide a clock set wrong.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace meterd::firmware {

enum class Verb { read, timesync, reload, relay };
std::string_view to_string(Verb v) noexcept;  // "read", "timesync", "reload", "relay"

struct Command {
  Verb verb = Verb::read;
  std::string id;
  std::string meter;                    // read, relay
  std::vector<std::string> quantities;  // read: empty = the meter's whole profile
  std::string bus;                      // timesync: empty = every DL/T 645 bus
  std::string action;                   // relay: "trip" | "close"
  std::optional<std::int64_t> ts_ms;    // when given
  bool is_signed = false;               // carried a "sig" that verified
  std::string source = "mqtt";          // "mqtt" | "control" (the local socket)
};

struct CommandError {
  std::string id;       // the command's id when it could be read, else ""
  std::string code;     // malformed | unknown_verb | disabled | unsigned | bad_signature |
                        // expired | replayed | invalid (the daemon adds its own codes)
  std::string message;  // for people, one line of printable text: "relay: ts
                        // 2026-12-01T03:06:00Z is 54 min behind the gateway clock (limit 5 min)"
};

struct CommandPolicy {
  bool relay_control = false;
  std::string hmac_key;  // the key file's bytes; empty: nothing can be signed
  std::chrono::milliseconds max_skew{5 * 60 * 1000};
};

// Ids of signed relay commands already accepted, with the ts each carried.
// Not thread-safe: owned by the loop thread, like the rest of the daemon's state.
class ReplayGuard {
 public:
  // From persisted state (to_state()'s text; "" gives an empty guard);
  // malformed state is an error (nullopt: the caller refuses signed
  // commands rather than forget what it saw).
  static std::optional<ReplayGuard> from_state(std::string_view state);
  bool seen(const std::string& id) const;
  // Remembers an id; forgets ids whose ts is older than now - 2 * max_skew.
  // At most 10000 ids are kept: past that the oldest ts go first (10000
  // relays within 2 * max_skew is not a gateway's life). O(n) per call.
  void remember(const std::string& id, std::int64_t ts_ms, std::int64_t now_ms,
                std::chrono::milliseconds max_skew);
  std::string to_state() const;  // compact JSON, {"id":ts_ms,...}
  std::size_t size() const noexcept { return ids_.size(); }

 private:
  std::map<std::string, std::int64_t> ids_;  // id -> ts_ms
};

// Parses and checks one downlink message. `verb` is the topic's last level.
// Checks, in this order, the first failure deciding the error: size and
// JSON (malformed), id (malformed, error id ""), verb (unknown_verb),
// relay_control for relay (disabled), members and their values (invalid,
// malformed; relay without "sig" or "ts": unsigned), the signature
// (bad_signature), the ts window (expired), for relay the guard
// (replayed). Only a relay that passed them all is remembered in `guard`
// (the caller persists guard.to_state() before executing).
std::variant<Command, CommandError> check_command(std::string_view verb, std::string_view payload,
                                                  const CommandPolicy& policy, ReplayGuard& guard,
                                                  std::int64_t now_ms);

// What the signature covers: verb, a newline, then the payload object
// without its "sig" member, serialised with sorted keys and no whitespace
// (Python: json.dumps(obj, sort_keys=True, separators=(",", ":"),
// ensure_ascii=False)). Only the top-level "sig" is left out. nullopt if the
// payload is not a JSON object, repeats a member, or holds a floating-point
// number anywhere (1.0 and 1e2 print differently in different JSON
// libraries; integers do not).
std::optional<std::string> signing_input(std::string_view verb, std::string_view payload);
// Lowercase hex; "" only if OpenSSL fails.
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

// Reads the key file; refuses (error text set, nullopt) one that is missing,
// not a regular file, accessible in any way by group or others (mode &
// 077), larger than 4096 bytes, empty, or not printable ASCII text. The key
// is the file's bytes without trailing newlines, carriage returns, spaces
// and tabs, so `openssl rand -hex 32 > key` and `echo secret > key` work
// and the head-end can use the same text; binary keys are refused because
// stripping would silently change them.
std::optional<std::string> load_key_file(const std::string& path, std::string& error);

// <prefix>/cmd/result payloads: {"id":..,"ok":true,"result":..} with
// `result` written by protocol::dump (exact_number() values stay exact; its
// strings must be valid UTF-8, else nlohmann throws), and
// {"id":..,"ok":false,"error":{"code":..,"message":..}}.
std::string result_ok(const std::string& id, const nlohmann::json& result);
std::string result_error(const CommandError& error);

// Helpers the control socket shares (firmware/control.cpp).
// A JSON object with each member once; else nullopt and `problem` says why.
std::optional<nlohmann::json> parse_strict_object(std::string_view text, std::string& problem);
// Outside text quoted for a one-line message: printable ASCII kept, other
// bytes as \xNN, cut after 64 bytes.
std::string quoted_for_message(std::string_view text);
// "YYYY-MM-DDTHH:MM:SS[.f]Z" or "...+00:00" -> ms since the epoch.
std::optional<std::int64_t> parse_utc_ms(std::string_view text);

}  // namespace meterd::firmware
