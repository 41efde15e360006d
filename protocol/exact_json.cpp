#include "protocol/exact_json.hpp"

#include <string>

namespace meterd::protocol {

namespace {
// How the marker looks inside dump()'s output: the \x01 prefix escaped.
constexpr std::string_view marker_raw =
    "\x01"
    "dec:";
constexpr std::string_view marker_dumped = "\"\\u0001dec:";

// nlohmann's own DOM builder, but a float arrives with the text it was
// parsed from (SAX hands it over) and is stored marked instead of as double.
class ExactSax : public nlohmann::detail::json_sax_dom_parser<nlohmann::json> {
 public:
  explicit ExactSax(nlohmann::json& root) : json_sax_dom_parser(root, false) {}
  bool number_float(double /*value*/, const std::string& text) {
    std::string marked = std::string(marker_raw) + text;
    return json_sax_dom_parser::string(marked);
  }
  bool string(std::string& value) {
    if (value.compare(0, marker_raw.size(), marker_raw) == 0) return false;
    return json_sax_dom_parser::string(value);
  }
};
}  // namespace

nlohmann::json parse_exact(std::string_view text) {
  nlohmann::json root;
  ExactSax sax(root);
  const bool ok = nlohmann::json::sax_parse(text.begin(), text.end(), &sax,
                                            nlohmann::json::input_format_t::json, true);
  if (!ok || sax.is_errored()) return nlohmann::json(nlohmann::json::value_t::discarded);
  return root;
}

std::optional<std::string> number_text(const nlohmann::json& j) {
  if (j.is_number_integer()) return j.dump();
  if (!j.is_string()) return std::nullopt;
  const auto& s = j.get_ref<const std::string&>();
  if (s.compare(0, marker_raw.size(), marker_raw) != 0) return std::nullopt;
  return s.substr(marker_raw.size());
}

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
