// libFuzzer target: control-socket request lines (firmware/control.cpp), as
// any local process may send them. Whatever the line, the parser returns a
// request or an error with a code and a message, never throws or crashes;
// every answer line it leads to is one line of valid JSON echoing the id.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "firmware/control.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fw = meterd::firmware;
  const std::string line(reinterpret_cast<const char*>(data), size);
  const auto r = fw::parse_control_request(line);
  std::string answer;
  std::string id;
  if (const auto* e = std::get_if<fw::ControlError>(&r)) {
    if (e->code.empty() || e->message.empty()) std::abort();
    id = e->id_json;
    answer = fw::control_error(e->id_json, e->code, e->message);
  } else {
    const auto& q = std::get<fw::ControlRequest>(r);
    if (q.from_ms >= q.to_ms || q.first_unit < 1 || q.last_unit > 247 || q.first_unit > q.last_unit)
      std::abort();
    id = q.id_json;
    answer = fw::control_ok(q.id_json, nlohmann::json::object());
  }
  if (answer.find('\n') != std::string::npos) std::abort();
  const auto parsed = nlohmann::json::parse(answer, nullptr, false);
  if (parsed.is_discarded()) std::abort();
  if (!id.empty() && !parsed.contains("id")) std::abort();
  return 0;
}
