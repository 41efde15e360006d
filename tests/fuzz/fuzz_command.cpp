// libFuzzer target: downlink command checking (firmware/commands.cpp) on
// arbitrary payloads, as they arrive from the network. The first byte picks
// the verb (the four real ones and an unknown one), the rest is the payload.
// Whatever the input, check_command returns a Command or a CommandError with
// a code and a message, never throws or crashes, and its answer is valid JSON.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "firmware/commands.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fw = meterd::firmware;
  static const char* verbs[] = {"read", "timesync", "reload", "relay", "frobnicate"};
  if (size == 0) return 0;
  const std::string verb = verbs[data[0] % 5];
  const std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);
  fw::CommandPolicy policy;
  policy.relay_control = true;
  policy.hmac_key = "fuzz-key";
  fw::ReplayGuard guard;
  const std::int64_t now_ms = 1'764'565'413'000;  // 2025-12-01T05:03:33Z
  const auto r = fw::check_command(verb, payload, policy, guard, now_ms);
  std::string answer;
  if (const auto* e = std::get_if<fw::CommandError>(&r)) {
    if (e->code.empty() || e->message.empty()) std::abort();
    answer = fw::result_error(*e);
  } else {
    const auto& c = std::get<fw::Command>(r);
    if (c.id.empty()) std::abort();
    answer = fw::result_ok(c.id, {{"ok", true}});
  }
  if (nlohmann::json::parse(answer, nullptr, false).is_discarded()) std::abort();
  (void)fw::signing_input(verb, payload);
  // The guard's state always reads back.
  if (!fw::ReplayGuard::from_state(guard.to_state())) std::abort();
  return 0;
}
