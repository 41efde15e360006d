// Downlink commands (docs/contracts.md "Commands"): what arrives on
// <prefix>/cmd/<verb> is parsed, checked and either turned into a Command
// the daemon executes or refused with a CommandError naming the problem.
// Pure: the clock is passed in, the key is passed in, the replay guard's
// state is a string the caller persists (the buffer's state table), so a
// restart does not reopen the replay window.
//
// Verbs: read {meter, quantities?}, timesync {bus?}, reload {}, relay
// {meter, action: "trip"|"close"}. Every command carries "id" (a non-empty
// string, at most 64 characters). relay is refused unless relay_control is
// on; then it must carry "ts" (UTC ISO 8601, within ±max_skew of the
// gateway's clock) and "sig": lowercase hex HMAC-SHA256, keyed with the
// key file's bytes, over signing_input(verb, payload). A signed relay id is
// accepted once: the guard remembers it for as long as its ts could still
// pass the skew check. Other verbs may be signed; a "sig" that is present
// is always checked.
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
};

struct CommandError {
  std::string id;       // the command's id when it could be read, else ""
  std::string code;     // malformed | unknown_verb | disabled | unsigned | bad_signature |
                        // expired | replayed | invalid
  std::string message;  // for people: "relay: ts 2026-12-01T04:00:00Z is 53 min off the
                        // gateway clock (limit 5 min)"
};

struct CommandPolicy {
  bool relay_control = false;
  std::string hmac_key;  // the key file's bytes; empty: nothing can be signed
  std::chrono::milliseconds max_skew{5 * 60 * 1000};
};

// Ids of signed commands already accepted, with the ts each carried.
class ReplayGuard {
 public:
  // From persisted state (to_state()'s text); malformed state is an error
  // (the caller refuses signed commands rather than forget what it saw).
  static std::optional<ReplayGuard> from_state(std::string_view state);
  bool seen(const std::string& id) const;
  // Remembers an id; forgets ids whose ts is older than now - 2 * max_skew.
  void remember(const std::string& id, std::int64_t ts_ms, std::int64_t now_ms,
                std::chrono::milliseconds max_skew);
  std::string to_state() const;  // compact JSON
  std::size_t size() const noexcept { return ids_.size(); }

 private:
  std::map<std::string, std::int64_t> ids_;  // id -> ts_ms
};

// Parses and checks one downlink message. `verb` is the topic's last level.
// On success with a signed relay, the id is remembered in `guard` (the
// caller persists guard.to_state() before executing).
std::variant<Command, CommandError> check_command(std::string_view verb, std::string_view payload,
                                                  const CommandPolicy& policy, ReplayGuard& guard,
                                                  std::int64_t now_ms);

// What the signature covers: verb, a newline, then the payload object
// without its "sig" member, serialised with sorted keys and no whitespace
// (Python: json.dumps(obj, sort_keys=True, separators=(",", ":"),
// ensure_ascii=False)). Numbers must be integers.
std::optional<std::string> signing_input(std::string_view verb, std::string_view payload);
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

// Reads the key file; refuses (error text set, nullopt) one that is missing,
// empty, or readable or writable by group or others.
std::optional<std::string> load_key_file(const std::string& path, std::string& error);

// <prefix>/cmd/result payloads.
std::string result_ok(const std::string& id, const nlohmann::json& result);
std::string result_error(const CommandError& error);

}  // namespace meterd::firmware
