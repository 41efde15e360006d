#include "firmware/commands.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/exact_json.hpp"

namespace meterd::firmware {

using json = nlohmann::json;

namespace {

constexpr std::size_t max_payload = 4096;
constexpr std::size_t max_id = 64;
constexpr std::size_t max_guard = 10000;
constexpr std::size_t max_key_file = 4096;
constexpr std::size_t sig_hex_length = 64;

constexpr std::array<Verb, 4> all_verbs = {Verb::read, Verb::timesync, Verb::reload, Verb::relay};

std::optional<Verb> verb_from(std::string_view text) {
  for (const Verb v : all_verbs)
    if (to_string(v) == text) return v;
  return std::nullopt;
}

// The members each verb takes besides the common "id", "ts" and "sig".
std::vector<std::string_view> members_of(Verb v) {
  switch (v) {
    case Verb::read:
      return {"meter", "quantities"};
    case Verb::timesync:
      return {"bus"};
    case Verb::reload:
      return {};
    case Verb::relay:
      return {"meter", "action"};
  }
  return {};
}

bool printable_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Text from outside (a topic level, a member name, a ts) quoted in a message:
// printable ASCII kept, every other byte as \xNN, cut after 64 bytes. So a
// message is always short, one line and valid UTF-8 (result_error's JSON
// cannot fail on it).
std::string shown(std::string_view s) {
  std::string out = "\"";
  std::size_t n = 0;
  for (const char ch : s) {
    if (n++ == 64) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') {
      out += ch;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "\"";
}

// "8 h 5 min", "6 min 1.500 s", "0 s": a duration for people.
std::string span(std::int64_t ms) {
  const std::int64_t h = ms / 3'600'000, min = ms / 60'000 % 60, s = ms / 1000 % 60,
                     frac = ms % 1000;
  std::string out;
  auto part = [&](const std::string& text) { out += (out.empty() ? "" : " ") + text; };
  if (h) part(std::to_string(h) + " h");
  if (min) part(std::to_string(min) + " min");
  if (s || frac || out.empty()) {
    std::string sec = std::to_string(s);
    if (frac) {
      char buf[8];
      std::snprintf(buf, sizeof buf, ".%03d", static_cast<int>(frac));
      sec += buf;
    }
    part(sec + " s");
  }
  return out;
}

bool has_float(const json& j) {
  if (j.is_number_float()) return true;
  if (j.is_structured())
    for (const auto& e : j)
      if (has_float(e)) return true;
  return false;
}

// The payload as a JSON object. nlohmann keeps the last of two members with
// the same name; a command that says two things is refused instead.
std::optional<json> parse_object(std::string_view text, std::string& problem) {
  std::vector<std::set<std::string>> open;  // member names of each object being parsed
  std::string duplicate;
  json::parser_callback_t note = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open.empty()) open.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open.empty() && parsed.is_string() &&
            !open.back().insert(parsed.get_ref<const std::string&>()).second && duplicate.empty())
          duplicate = parsed.get_ref<const std::string&>();
        break;
      default:
        break;
    }
    return true;
  };
  json j = json::parse(text, note, false);
  if (j.is_discarded()) {
    problem = "payload is not valid JSON";
    return std::nullopt;
  }
  if (!j.is_object()) {
    problem = std::string("payload must be a JSON object, got ") + j.type_name();
    return std::nullopt;
  }
  if (!duplicate.empty()) {
    problem = "member " + shown(duplicate) + " appears twice";
    return std::nullopt;
  }
  return j;
}

std::string canonical(std::string_view verb, const json& payload) {
  json copy = payload;
  copy.erase("sig");
  // Keys are sorted (objects are std::map: byte order of UTF-8, which is
  // code point order, as Python's sort); strings are escaped like Python's
  // ensure_ascii=False (", \, \b \f \n \r \t, other controls as \u00xx).
  return std::string(verb) + "\n" + copy.dump();
}

// "YYYY-MM-DDTHH:MM:SS[.f]Z" or "...+00:00", 1 to 9 fraction digits (cut to
// milliseconds). Calendar arithmetic only (std::chrono::sys_days), no TZ.
std::optional<std::int64_t> parse_utc(std::string_view s) {
  auto number = [&](std::size_t pos, std::size_t n) -> std::optional<int> {
    if (pos + n > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
    return std::nullopt;
  const auto y = number(0, 4), mo = number(5, 2), d = number(8, 2), h = number(11, 2),
             mi = number(14, 2), se = number(17, 2);
  if (!y || !mo || !d || !h || !mi || !se) return std::nullopt;
  std::size_t pos = 19;
  int ms = 0;
  if (s[pos] == '.') {
    const std::size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (pos - start < 3) ms = ms * 10 + (s[pos] - '0');
      ++pos;
    }
    const std::size_t n = pos - start;
    if (n == 0 || n > 9) return std::nullopt;
    for (std::size_t i = n; i < 3; ++i) ms *= 10;
  }
  const std::string_view zone = s.substr(pos);
  if (zone != "Z" && zone != "+00:00") return std::nullopt;
  if (*h > 23 || *mi > 59 || *se > 59) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year{*y},
                                         std::chrono::month{static_cast<unsigned>(*mo)},
                                         std::chrono::day{static_cast<unsigned>(*d)}};
  if (!date.ok()) return std::nullopt;
  const std::int64_t days = std::chrono::sys_days{date}.time_since_epoch().count();
  return ((days * 24 + *h) * 60 + *mi) * 60'000 + std::int64_t{*se} * 1000 + ms;
}

// Why `id` is not an acceptable command id, or "" if it is.
std::string id_problem(std::string_view id) {
  if (id.empty()) return "\"id\" is empty";
  if (id.size() > max_id)
    return "\"id\" is " + std::to_string(id.size()) + " bytes (limit " + std::to_string(max_id) +
           ")";
  if (!printable_ascii(id)) return "\"id\" must be printable ASCII, got " + shown(id);
  return "";
}

}  // namespace

std::string_view to_string(Verb v) noexcept {
  switch (v) {
    case Verb::read:
      return "read";
    case Verb::timesync:
      return "timesync";
    case Verb::reload:
      return "reload";
    case Verb::relay:
      return "relay";
  }
  return "?";
}

// ---- ReplayGuard ----

std::optional<ReplayGuard> ReplayGuard::from_state(std::string_view state) {
  ReplayGuard guard;
  if (state.empty()) return guard;
  const json j = json::parse(state, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  for (const auto& [id, ts] : j.items()) {
    if (!id_problem(id).empty() || !ts.is_number_integer()) return std::nullopt;
    if (ts.is_number_unsigned() &&
        ts.get<std::uint64_t>() > std::uint64_t{std::numeric_limits<std::int64_t>::max()})
      return std::nullopt;
    guard.ids_.emplace(id, ts.get<std::int64_t>());
  }
  return guard;
}

bool ReplayGuard::seen(const std::string& id) const { return ids_.contains(id); }

void ReplayGuard::remember(const std::string& id, std::int64_t ts_ms, std::int64_t now_ms,
                           std::chrono::milliseconds max_skew) {
  // A ts older than now - max_skew fails the skew check by itself; twice
  // that leaves room for the gateway clock being stepped back a little.
  const std::int64_t horizon = now_ms - 2 * max_skew.count();
  std::erase_if(ids_, [&](const auto& e) { return e.second < horizon; });
  ids_.erase(id);
  if (ids_.size() >= max_guard) {
    // Over the cap (10000 relays within 2 * max_skew): the oldest go first,
    // the id being remembered stays.
    std::vector<std::pair<std::int64_t, std::string>> by_age;
    by_age.reserve(ids_.size());
    for (const auto& [i, ts] : ids_) by_age.emplace_back(ts, i);
    const auto drop = by_age.size() - (max_guard - 1);
    std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(drop - 1),
                     by_age.end());
    for (std::size_t k = 0; k < drop; ++k) ids_.erase(by_age[k].second);
  }
  ids_.emplace(id, ts_ms);
}

std::string ReplayGuard::to_state() const { return json(ids_).dump(); }

// ---- check_command ----

std::variant<Command, CommandError> check_command(std::string_view verb_text,
                                                  std::string_view payload,
                                                  const CommandPolicy& policy, ReplayGuard& guard,
                                                  std::int64_t now_ms) {
  if (payload.size() > max_payload)
    return CommandError{"", "malformed",
                        "payload is " + std::to_string(payload.size()) + " bytes (limit " +
                            std::to_string(max_payload) + ")"};
  std::string problem;
  const auto doc = parse_object(payload, problem);
  if (!doc) return CommandError{"", "malformed", problem};
  const json& j = *doc;

  const auto id_it = j.find("id");
  if (id_it == j.end()) return CommandError{"", "malformed", "\"id\" is missing"};
  if (!id_it->is_string())
    return CommandError{"", "malformed",
                        std::string("\"id\" must be a string, got ") + id_it->type_name()};
  const auto& id = id_it->get_ref<const std::string&>();
  if (auto p = id_problem(id); !p.empty()) return CommandError{"", "malformed", p};

  const auto verb = verb_from(verb_text);
  if (!verb)
    return CommandError{
        id, "unknown_verb",
        "unknown verb " + shown(verb_text) + " (known: read, timesync, reload, relay)"};
  const std::string where = std::string(to_string(*verb)) + ": ";
  auto refuse = [&](const char* code, const std::string& message) {
    return CommandError{id, code, where + message};
  };

  if (*verb == Verb::relay && !policy.relay_control)
    return refuse("disabled", "relay control is off ([commands] relay_control = false)");

  // Members: unknown ones first, so a typo ("actoin") is named as such
  // rather than reported as a missing "action".
  const auto own = members_of(*verb);
  for (const auto& [name, value] : j.items()) {
    if (name == "id" || name == "ts" || name == "sig") continue;
    if (std::find(own.begin(), own.end(), name) != own.end()) continue;
    std::string takes = "id";
    for (const auto m : own) takes += ", " + std::string(m);
    return refuse("invalid", "unknown member " + shown(name) + " (" +
                                 std::string(to_string(*verb)) + " takes " + takes + ", ts, sig)");
  }

  Command c;
  c.verb = *verb;
  c.id = id;

  // A member that must be a non-empty string; absent: an error if required, else `out` stays empty.
  auto string_member = [&](const char* name, bool required,
                           std::string& out) -> std::optional<CommandError> {
    const auto it = j.find(name);
    if (it == j.end()) {
      if (required) return refuse("malformed", "\"" + std::string(name) + "\" is missing");
      return std::nullopt;
    }
    if (!it->is_string() || it->get_ref<const std::string&>().empty())
      return refuse("malformed", "\"" + std::string(name) + "\" must be a non-empty string");
    out = it->get<std::string>();
    return std::nullopt;
  };

  std::string sig;
  if (auto e = string_member("sig", false, sig)) return *e;
  if (j.contains("sig") && (sig.size() != sig_hex_length || !lower_hex(sig)))
    return refuse("malformed", "\"sig\" must be 64 lowercase hex digits (HMAC-SHA256)");
  std::string ts;
  if (auto e = string_member("ts", false, ts)) return *e;
  if (j.contains("ts")) {
    c.ts_ms = parse_utc(ts);
    if (!c.ts_ms)
      return refuse("malformed",
                    "\"ts\" must be UTC ISO 8601, YYYY-MM-DDTHH:MM:SS[.fff]Z (or "
                    "+00:00), got " +
                        shown(ts));
  }

  switch (*verb) {
    case Verb::read: {
      if (auto e = string_member("meter", true, c.meter)) return *e;
      if (const auto q = j.find("quantities"); q != j.end()) {
        if (!q->is_array())
          return refuse("malformed", "\"quantities\" must be an array of quantity names");
        if (q->empty())
          return refuse("invalid", "\"quantities\" is empty; leave it out to read the profile");
        for (const auto& name : *q) {
          if (!name.is_string() || name.get_ref<const std::string&>().empty())
            return refuse("malformed", "\"quantities\" must hold non-empty strings");
          const auto& n = name.get_ref<const std::string&>();
          if (std::find(c.quantities.begin(), c.quantities.end(), n) != c.quantities.end())
            return refuse("invalid", "\"quantities\" names " + shown(n) + " twice");
          c.quantities.push_back(n);
        }
      }
      break;
    }
    case Verb::timesync:
      if (auto e = string_member("bus", false, c.bus)) return *e;
      break;
    case Verb::reload:
      break;
    case Verb::relay:
      if (auto e = string_member("meter", true, c.meter)) return *e;
      if (auto e = string_member("action", true, c.action)) return *e;
      if (c.action != "trip" && c.action != "close")
        return refuse("invalid",
                      "\"action\" must be \"trip\" or \"close\", got " + shown(c.action));
      if (!j.contains("sig"))
        return refuse("unsigned", "a relay command must be signed (\"sig\" and \"ts\")");
      if (!c.ts_ms)
        return refuse("unsigned",
                      "a signed relay command must carry \"ts\" (the signature covers it)");
      break;
  }

  if (j.contains("sig")) {
    if (policy.hmac_key.empty())
      return refuse("bad_signature",
                    "the command is signed but no hmac key is configured ([commands] "
                    "hmac_key_file)");
    const std::string expected = hmac_sha256_hex(policy.hmac_key, canonical(verb_text, j));
    if (expected.size() != sig_hex_length ||
        CRYPTO_memcmp(expected.data(), sig.data(), sig_hex_length) != 0)
      return refuse("bad_signature",
                    "the signature does not match (HMAC-SHA256 over the verb, a newline and the "
                    "payload without \"sig\", keys sorted, no whitespace)");
    c.is_signed = true;
  }

  if (c.ts_ms) {
    std::int64_t offset = 0;
    const bool overflow = __builtin_sub_overflow(*c.ts_ms, now_ms, &offset);
    const std::int64_t limit = policy.max_skew.count();
    if (overflow || offset > limit || offset < -limit)
      return refuse("expired",
                    "ts " + ts + " is " +
                        (overflow ? std::string("far") : span(offset < 0 ? -offset : offset)) +
                        (offset < 0 ? " behind" : " ahead of") + " the gateway clock (limit " +
                        span(limit) + ")");
  }

  if (*verb == Verb::relay) {
    if (guard.seen(id))
      return refuse("replayed", "id " + shown(id) + " was accepted before; send a new id");
    guard.remember(id, *c.ts_ms, now_ms, policy.max_skew);
  }
  return c;
}

// ---- signatures ----

std::optional<std::string> signing_input(std::string_view verb, std::string_view payload) {
  std::string problem;
  const auto doc = parse_object(payload, problem);
  if (!doc || has_float(*doc)) return std::nullopt;
  return canonical(verb, *doc);
}

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  static const unsigned char none = 0;  // HMAC() wants a pointer even for zero bytes
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (key.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return "";
  const void* k = key.empty() ? static_cast<const void*>(&none) : key.data();
  const auto* m = message.empty() ? &none : reinterpret_cast<const unsigned char*>(message.data());
  if (!HMAC(EVP_sha256(), k, static_cast<int>(key.size()), m, message.size(), mac, &length))
    return "";
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned i = 0; i < length; ++i) {
    hex += digits[mac[i] >> 4];
    hex += digits[mac[i] & 0xf];
  }
  return hex;
}

std::optional<std::string> load_key_file(const std::string& path, std::string& error) {
  const std::string what = "hmac key file " + path;
  // open, then fstat the descriptor (no window between check and read);
  // O_NONBLOCK so a FIFO does not hang start-up before it is refused.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    error = what + ": " + std::strerror(errno);
    return std::nullopt;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = what + ": " + std::strerror(errno);
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    error = what + " is not a regular file";
    return std::nullopt;
  }
  if (const auto others = st.st_mode & 077) {
    std::string how;
    if (others & 044) how = "readable";
    if (others & 022) how += std::string(how.empty() ? "" : " and ") + "writable";
    if (others & 011) how += std::string(how.empty() ? "" : " and ") + "executable";
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    error = what + " is " + how + " by group or others (mode " + mode + "); chmod 600 it";
    return std::nullopt;
  }
  std::string key;
  char buf[1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = what + ": " + std::strerror(errno);
      return std::nullopt;
    }
    if (n == 0) break;
    key.append(buf, static_cast<std::size_t>(n));
    if (key.size() > max_key_file) {
      error = what + " is larger than " + std::to_string(max_key_file) + " bytes; is it the key?";
      return std::nullopt;
    }
  }
  while (!key.empty() &&
         (key.back() == '\n' || key.back() == '\r' || key.back() == ' ' || key.back() == '\t'))
    key.pop_back();
  if (key.empty()) {
    error = what + " is empty";
    return std::nullopt;
  }
  if (!printable_ascii(key)) {
    error = what +
            " holds bytes that are not printable ASCII; write the key as text (openssl rand "
            "-hex 32 > " +
            path + ")";
    return std::nullopt;
  }
  return key;
}

// ---- results ----

std::string result_ok(const std::string& id, const nlohmann::json& result) {
  return "{\"id\":" + json(id).dump(-1, ' ', false, json::error_handler_t::replace) +
         ",\"ok\":true,\"result\":" + protocol::dump(result) + "}";
}

std::string result_error(const CommandError& error) {
  const json detail = {{"code", error.code}, {"message", error.message}};
  return "{\"id\":" + json(error.id).dump(-1, ' ', false, json::error_handler_t::replace) +
         ",\"ok\":false,\"error\":" + detail.dump(-1, ' ', false, json::error_handler_t::replace) +
         "}";
}

std::optional<nlohmann::json> parse_strict_object(std::string_view text, std::string& problem) {
  return parse_object(text, problem);
}

std::string quoted_for_message(std::string_view text) { return shown(text); }

std::optional<std::int64_t> parse_utc_ms(std::string_view text) { return parse_utc(text); }

}  // namespace meterd::firmware
