// What a frame says, in the standard's terms: version, direction,
// function, DI and its item, decoded values, error word, and the other
// fields of the data area (password level, operator, relay command, …).
// Used by the technician's `meterctl decode` and by logs. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/control.hpp"
#include "protocol/dlt645/frame.hpp"

namespace meterd::protocol::dlt645 {

struct Interpretation {
  Version version = Version::v2007;
  bool response = false;
  bool abnormal = false;
  bool follow_up = false;  // D5: more frames follow
  std::string function;    // "read data", …
  std::optional<std::uint32_t> di;
  std::string item_name;  // catalogue name of the DI, empty if unknown
  std::vector<Value> values;
  std::optional<std::uint16_t> error_word;  // ERR (1 byte) or SERR (2 bytes)
  std::string error_meaning;
  std::optional<std::uint8_t> seq;  // follow-up frame number
  // Other fields of the data area, in wire order: {"password_level","02"}, …
  std::vector<std::pair<std::string, std::string>> fields;
  // Something the frame says that the catalogue cannot decode
  // ("DI 0001FF09 not in the catalogue", "data length: expected 4 bytes, got 3").
  std::string problem;
};

// `version`: force a version; by default it is inferred from the control code.
Interpretation interpret(const Frame& frame, std::optional<Version> version = std::nullopt);

}  // namespace meterd::protocol::dlt645
