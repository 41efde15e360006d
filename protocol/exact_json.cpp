#include "protocol/exact_json.hpp"

namespace meterd::protocol {

namespace {
// How the marker looks inside dump()'s output: the \x01 prefix escaped.
constexpr std::string_view marker_raw =
    "\x01"
    "dec:";
constexpr std::string_view marker_dumped = "\"\\u0001dec:";
}  // namespace

nlohmann::json exact_number(const Decimal& d) { return std::string(marker_raw) + to_string(d); }

std::string dump(const nlohmann::json& j) {
  const std::string text = j.dump();
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  for (;;) {
    const auto at = text.find(marker_dumped, pos);
    if (at == std::string::npos) break;
    const auto start = at + marker_dumped.size();
    const auto end = text.find('"', start);
    if (end == std::string::npos) break;
    out.append(text, pos, at - pos);
    out.append(text, start, end - start);
    pos = end + 1;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

}  // namespace meterd::protocol
