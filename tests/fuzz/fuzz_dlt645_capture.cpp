// libFuzzer target: decode_all over a whole capture and the frame report
// that `meterctl decode` prints (text and JSON, inferred and forced
// versions, with and without folding of error runs).
// Invariants checked:
//  - decode_all's items lie inside the input, in order, and its frames
//    re-encode to the bytes at their offsets;
//  - the report, fed all at once, names exactly decode_all's frames, and
//    every JSON line parses with the offset decode_all gave;
//  - fed in pieces, the report never holds more than it must and finds
//    every frame decode_all found, unless a frame overlapping it won.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "firmware/frame_report.hpp"
#include "protocol/dlt645/frame.hpp"

using namespace meterd::protocol::dlt645;
using meterd::firmware::CaptureReporter;
using meterd::firmware::ReportOptions;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  const auto items = decode_all(input);
  std::vector<std::size_t> frame_offsets;
  std::size_t last = 0;
  std::size_t errors = 0;
  for (const auto& item : items) {
    check(item.offset < size);
    check(item.offset >= last || item.result.status != DecodeStatus::frame);
    if (item.result.status == DecodeStatus::frame) {
      const auto wire = encode(item.result.frame);
      check(item.offset + wire.size() <= size);
      check(std::equal(wire.begin(), wire.end(),
                       input.begin() + static_cast<std::ptrdiff_t>(item.offset)));
      frame_offsets.push_back(item.offset);
      last = item.offset + wire.size();
    } else {
      ++errors;
      check(!describe(item.result).empty());
    }
  }

  const std::uint8_t mode = size > 0 ? data[0] : 0;
  ReportOptions options;
  options.json = (mode & 1) != 0;
  if (mode & 2) options.version = (mode & 4) ? Version::v1997 : Version::v2007;
  options.errors_before_folding = (mode & 8) ? 0 : 3;

  std::vector<std::string> frames, error_lines;
  CaptureReporter whole(
      options, [&](const std::string& f) { frames.push_back(f); },
      [&](const std::string& e) { error_lines.push_back(e); });
  whole.feed(input);
  whole.finish();
  // The reporter feeds its decoder 4 KiB at a time: up to that size it sees
  // the input at once, as decode_all does, and must agree exactly.
  const bool at_once = size <= 4096;
  if (at_once) {
    check(whole.frames() == frame_offsets.size());
    check(whole.errors() == errors);
    check(frames.size() == frame_offsets.size());
    if (options.errors_before_folding == 0) check(error_lines.size() == errors);
  }
  if (options.json && at_once) {
    for (std::size_t k = 0; k < frames.size(); ++k) {
      const auto j = nlohmann::json::parse(frames[k], nullptr, /*allow_exceptions=*/false);
      check(!j.is_discarded());
      check(j["offset"] == frame_offsets[k]);
    }
  }

  // In pieces: sizes from the input itself.
  std::vector<std::pair<std::size_t, std::size_t>> piece_frames;  // [offset, end)
  ReportOptions json_options = options;
  json_options.json = true;
  CaptureReporter pieces(
      json_options,
      [&](const std::string& f) {
        const auto j = nlohmann::json::parse(f);
        const auto at = j["offset"].get<std::size_t>();
        piece_frames.emplace_back(at,
                                  at + min_frame_size + j["data"].get<std::string>().size() / 2);
      },
      [](const std::string&) {});
  for (std::size_t at = 0; at < size;) {
    const std::size_t n = std::min<std::size_t>(size - at, 1 + data[at] % 23);
    pieces.feed(input.subspan(at, n));
    at += n;
  }
  pieces.finish();
  for (const auto& item : items) {
    if (item.result.status != DecodeStatus::frame) continue;
    const std::size_t end = item.offset + min_frame_size + item.result.frame.data.size();
    // The same frame, or one that overlaps it (arrival timing decided).
    const bool found = std::any_of(piece_frames.begin(), piece_frames.end(), [&](const auto& p) {
      return p.first < end && p.second > item.offset;
    });
    check(found);
  }
  return 0;
}
