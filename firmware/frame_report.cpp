#include "firmware/frame_report.hpp"

#include <sstream>

#include <nlohmann/json.hpp>

#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/interpret.hpp"
#include "protocol/dlt645/values.hpp"
#include "protocol/exact_json.hpp"

namespace meterd::firmware {

namespace dlt = protocol::dlt645;

namespace {

std::string value_text(const dlt::Value& v) {
  if (const auto* d = std::get_if<protocol::Decimal>(&v.value)) return protocol::to_string(*d);
  if (const auto* s = std::get_if<std::string>(&v.value)) return *s;
  return "absent (no data)";
}

std::string control_text(const dlt::Interpretation& i) {
  std::string s = i.response ? "response" : "request";
  if (i.response) s += i.abnormal ? ", abnormal" : ", normal";
  if (i.follow_up) s += ", follow-up frames follow";
  return s + ": " + i.function;
}

// Bit meanings of status-word values, by position in the item's layout.
std::vector<std::string> bit_notes(const dlt::Interpretation& i, std::size_t value_index) {
  if (!i.di) return {};
  const auto item = dlt::lookup(i.version, *i.di);
  if (!item || value_index >= item->fields.size()) return {};
  const auto& field = item->fields[value_index];
  const auto* text = std::get_if<std::string>(&i.values[value_index].value);
  if (!field.bits || !text) return {};
  const auto bytes = dlt::parse_hex(*text);
  if (!bytes || bytes->size() != 2) return {};
  return dlt::describe_bits(field, static_cast<std::uint16_t>(((*bytes)[0] << 8) | (*bytes)[1]));
}

}  // namespace

std::string frame_text(const dlt::Frame& f, std::size_t index, std::size_t offset,
                       std::optional<dlt::Version> version) {
  const auto i = dlt::interpret(f, version);
  std::ostringstream out;
  out << "frame " << index << " at byte " << offset << ": " << dlt::to_string(i.version) << " "
      << (i.response ? "response" : "request") << "\n";
  std::string address = f.address.to_string();
  if (f.address.is_broadcast())
    address += " (broadcast)";
  else if (f.address.has_wildcard())
    address += " (wildcard)";
  out << "  address  " << address << "\n";
  out << "  control  " << dlt::to_hex(std::span(&f.control, 1)) << "  " << control_text(i) << "\n";
  if (i.di)
    out << "  DI       " << dlt::di_to_string(i.version, *i.di) << "  "
        << (i.item_name.empty() ? "(not in the catalogue)" : i.item_name) << "\n";
  out << "  data     " << (f.data.empty() ? "(none)" : dlt::to_hex(f.data, true)) << "\n";
  if (i.seq) out << "  sequence " << static_cast<unsigned>(*i.seq) << "\n";
  for (const auto& [key, value] : i.fields) out << "  " << key << ": " << value << "\n";
  for (std::size_t k = 0; k < i.values.size(); ++k) {
    const auto& v = i.values[k];
    out << "  " << v.quantity << " = " << value_text(v);
    if (!v.unit.empty() && !v.is_null()) out << " " << v.unit;
    out << "\n";
    for (const auto& note : bit_notes(i, k)) out << "      - " << note << "\n";
  }
  if (i.error_word) {
    char code[8];
    std::snprintf(code, sizeof code, i.error_word > 0xFF ? "%04X" : "%02X", *i.error_word);
    out << "  error    " << code << "  " << i.error_meaning << "\n";
  }
  if (!i.problem.empty()) out << "  note     " << i.problem << "\n";
  return out.str();
}

std::string frame_json(const dlt::Frame& f, std::size_t offset,
                       std::optional<dlt::Version> version) {
  const auto i = dlt::interpret(f, version);
  nlohmann::json j;
  j["offset"] = offset;
  j["protocol"] = dlt::to_string(i.version);
  j["address"] = f.address.to_string();
  j["control"] = dlt::to_hex(std::span(&f.control, 1));
  j["direction"] = i.response ? "response" : "request";
  j["function"] = i.function;
  j["abnormal"] = i.abnormal;
  j["follow_up"] = i.follow_up;
  if (i.di) {
    j["di"] = dlt::di_to_string(i.version, *i.di);
    if (!i.item_name.empty()) j["item"] = i.item_name;
  }
  j["data"] = dlt::to_hex(f.data);
  if (i.seq) j["seq"] = *i.seq;
  auto values = nlohmann::json::array();
  for (std::size_t k = 0; k < i.values.size(); ++k) {
    const auto& v = i.values[k];
    nlohmann::json entry{{"quantity", v.quantity}, {"unit", v.unit}};
    if (const auto* d = std::get_if<protocol::Decimal>(&v.value))
      entry["value"] = protocol::exact_number(*d);
    else if (const auto* s = std::get_if<std::string>(&v.value))
      entry["value"] = *s;
    else
      entry["value"] = nullptr;
    if (const auto notes = bit_notes(i, k); !notes.empty()) entry["flags"] = notes;
    values.push_back(std::move(entry));
  }
  j["values"] = std::move(values);
  if (!i.fields.empty()) {
    nlohmann::json fields = nlohmann::json::object();
    for (const auto& [key, value] : i.fields) fields[key] = value;
    j["fields"] = std::move(fields);
  }
  if (i.error_word) {
    char code[8];
    std::snprintf(code, sizeof code, i.error_word > 0xFF ? "%04X" : "%02X", *i.error_word);
    j["error"] = {{"code", code}, {"meaning", i.error_meaning}};
  }
  if (!i.problem.empty()) j["problem"] = i.problem;
  return protocol::dump(j);
}

CaptureReport report_capture(std::span<const std::uint8_t> capture, bool json,
                             std::optional<dlt::Version> version) {
  CaptureReport report;
  std::size_t index = 0;
  for (const auto& item : dlt::decode_all(capture)) {
    if (item.result.status == dlt::DecodeStatus::frame) {
      ++index;
      report.frames.push_back(json ? frame_json(item.result.frame, item.offset, version)
                                   : frame_text(item.result.frame, index, item.offset, version));
    } else {
      report.errors.push_back("bad frame at byte " + std::to_string(item.offset) + ": " +
                              dlt::describe(item.result));
    }
  }
  return report;
}

}  // namespace meterd::firmware
