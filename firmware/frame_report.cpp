#include "firmware/frame_report.hpp"

#include <algorithm>
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

std::string with_thousands(std::uint64_t n) {
  std::string digits = std::to_string(n);
  for (std::size_t i = digits.size(); i > 3; i -= 3) digits.insert(i - 3, ",");
  return digits;
}

CaptureReporter::CaptureReporter(ReportOptions options, Sink on_frame, Sink on_error)
    : options_(options), on_frame_(std::move(on_frame)), on_error_(std::move(on_error)) {}

void CaptureReporter::feed(std::span<const std::uint8_t> bytes) {
  // In slices, so the decoder's buffer stays small whatever the caller feeds.
  constexpr std::size_t slice = 4096;
  for (std::size_t at = 0; at < bytes.size(); at += slice) {
    decoder_.feed(bytes.subspan(at, std::min(slice, bytes.size() - at)));
    drain(false);
  }
}

void CaptureReporter::finish() {
  drain(true);
  unfold(decoder_.offset());
}

void CaptureReporter::drain(bool end) {
  for (;;) {
    const auto base = decoder_.offset();
    const auto r = end ? decoder_.flush() : decoder_.next();
    if (!r) return;
    on_result(base + r->skipped, *r);
  }
}

void CaptureReporter::on_result(std::uint64_t at, const dlt::DecodeResult& r) {
  if (r.status == dlt::DecodeStatus::frame) {
    unfold(at);
    run_errors_ = 0;
    ++frames_;
    on_frame_(options_.json ? frame_json(r.frame, at, options_.version)
                            : frame_text(r.frame, frames_, at, options_.version));
    return;
  }
  ++errors_;
  ++run_errors_;
  if (options_.errors_before_folding == 0 || run_errors_ <= options_.errors_before_folding) {
    on_error_("bad frame at byte " + std::to_string(at) + ": " + dlt::describe(r));
    return;
  }
  if (folded_++ == 0) folded_from_ = at;
}

void CaptureReporter::unfold(std::uint64_t until) {
  if (folded_ == 0) return;
  on_error_("... " + with_thousands(until - folded_from_) + " bytes skipped, " +
            with_thousands(folded_) + " more bad frame" + (folded_ == 1 ? "" : "s") + ", bytes " +
            with_thousands(folded_from_) + " to " + with_thousands(until));
  folded_ = 0;
}

CaptureReport report_capture(std::span<const std::uint8_t> capture, const ReportOptions& options) {
  CaptureReport report;
  CaptureReporter reporter(
      options, [&](const std::string& f) { report.frames.push_back(f); },
      [&](const std::string& e) { report.errors.push_back(e); });
  reporter.feed(capture);
  reporter.finish();
  return report;
}

CaptureReport report_capture(std::span<const std::uint8_t> capture, bool json,
                             std::optional<dlt::Version> version) {
  ReportOptions options;
  options.json = json;
  options.version = version;
  return report_capture(capture, options);
}

}  // namespace meterd::firmware
