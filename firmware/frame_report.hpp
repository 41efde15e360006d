// Presentation of decoded DL/T 645 frames for technicians: the text block
// and the JSON line that `meterctl decode` prints. Runs on any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/dlt645/control.hpp"
#include "protocol/dlt645/frame.hpp"

namespace meterd::firmware {

struct ReportOptions {
  bool json = false;
  std::optional<protocol::dlt645::Version> version;  // forced, else inferred per frame
  // Bad candidates named one by one in a run between two frames; past this
  // many, the rest of the run is folded into one line ("... 12,345 bytes
  // skipped, 6,789 more bad frames, bytes 100 to 12,445"). 0: never fold.
  std::size_t errors_before_folding = 10;
};

// A capture streamed through the decoder: each frame and error is handed to
// its sink as soon as it is decoded, so memory stays bounded by one frame
// whatever the capture's size (a 5 MB noisy capture is not held). Offsets
// are byte positions in the whole capture. Not thread-safe; one owner.
class CaptureReporter {
 public:
  using Sink = std::function<void(const std::string&)>;
  CaptureReporter(ReportOptions options, Sink on_frame, Sink on_error);

  void feed(std::span<const std::uint8_t> bytes);
  // End of input: the rest of the buffer (a frame cut off is named, and a
  // whole frame behind a false head is still found), then the folded line.
  void finish();

  std::uint64_t frames() const noexcept { return frames_; }
  std::uint64_t errors() const noexcept { return errors_; }  // folded ones included

 private:
  void drain(bool end);
  void on_result(std::uint64_t at, const protocol::dlt645::DecodeResult& r);
  void unfold(std::uint64_t until);

  ReportOptions options_;
  Sink on_frame_, on_error_;
  protocol::dlt645::StreamDecoder decoder_;
  std::uint64_t frames_ = 0, errors_ = 0;
  std::size_t run_errors_ = 0;     // errors since the last frame
  std::uint64_t folded_ = 0;       // errors not printed in this run
  std::uint64_t folded_from_ = 0;  // offset of the first of them
};

struct CaptureReport {
  std::vector<std::string> frames;  // one text block or JSON line per frame
  std::vector<std::string> errors;  // one line per bad or truncated frame (or folded run)
};

// Decodes every frame of a capture held in memory (noise and wake-up bytes
// allowed between frames): CaptureReporter, collected.
CaptureReport report_capture(std::span<const std::uint8_t> capture, const ReportOptions& options);
CaptureReport report_capture(std::span<const std::uint8_t> capture, bool json,
                             std::optional<protocol::dlt645::Version> version = std::nullopt);

// 12345 -> "12,345".
std::string with_thousands(std::uint64_t n);

// One frame as a human-readable block / as one JSON object on one line.
std::string frame_text(const protocol::dlt645::Frame& frame, std::size_t index, std::size_t offset,
                       std::optional<protocol::dlt645::Version> version = std::nullopt);
std::string frame_json(const protocol::dlt645::Frame& frame, std::size_t offset,
                       std::optional<protocol::dlt645::Version> version = std::nullopt);

}  // namespace meterd::firmware
