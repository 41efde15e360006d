// Presentation of decoded DL/T 645 frames for technicians: the text block
// and the JSON line that `meterctl decode` prints. Runs on any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/dlt645/control.hpp"
#include "protocol/dlt645/frame.hpp"

namespace meterd::firmware {

struct CaptureReport {
  std::vector<std::string> frames;  // one text block or JSON line per frame
  std::vector<std::string> errors;  // one line per bad or truncated frame
};

// Decodes every frame of a capture (noise and wake-up bytes allowed between
// frames). `version` forces a protocol version instead of inferring it.
CaptureReport report_capture(std::span<const std::uint8_t> capture, bool json,
                             std::optional<protocol::dlt645::Version> version = std::nullopt);

// One frame as a human-readable block / as one JSON object on one line.
std::string frame_text(const protocol::dlt645::Frame& frame, std::size_t index, std::size_t offset,
                       std::optional<protocol::dlt645::Version> version = std::nullopt);
std::string frame_json(const protocol::dlt645::Frame& frame, std::size_t offset,
                       std::optional<protocol::dlt645::Version> version = std::nullopt);

}  // namespace meterd::firmware
