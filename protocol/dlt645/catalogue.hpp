// The data-identifier catalogue: for every DI meterd knows, its layout
// (bytes, decimals, sign, unit, canonical quantity) in DL/T 645-2007 and
// DL/T 645-1997. Built from families (energy × kind × tariff × settlement
// period, …) so that one rule describes each group of the standard's
// appendix. Pure; safe to call from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/dlt645/control.hpp"
#include "protocol/dlt645/values.hpp"

namespace meterd::protocol::dlt645 {

// Why a value is "frozen" data and what its period index means.
enum class Frozen {
  none,
  monthly,     // settlement-day data (上n结算日), DI0 = 1..12
  daily,       // 0506 daily freeze, DI0 = 1..62
  hourly,      // 0504 hourly freeze
  timed,       // 0500 timed freeze
  instant,     // 0501 instantaneous freeze
  switchover,  // 0502/0503 time-zone / daily-period table switch freeze
};
std::string_view to_string(Frozen f) noexcept;  // "", "monthly", "daily", …

struct DataItem {
  DataItem() = default;
  DataItem(Version v, std::uint32_t id, std::string item_name, std::vector<Field> layout = {})
      : version(v), di(id), name(std::move(item_name)), fields(std::move(layout)) {}

  Version version = Version::v2007;
  std::uint32_t di = 0;
  std::string name;           // "forward active energy, tariff 1, last 2nd settlement period"
  std::vector<Field> fields;  // the full layout
  // 0: `fields` is the exact layout. N > 0: the last fields form groups of
  // N fields (a block "total + tariffs"), of which the meter sends as many
  // as it has configured: the data length decides the count (at least one).
  std::size_t group_size = 0;
  Frozen frozen = Frozen::none;
  unsigned period = 0;  // "last n": settlement period, freeze depth, record number

  // Smallest and largest data size (bytes after the DI) this item accepts.
  std::size_t min_size() const;
  std::size_t max_size() const;
};

// The item for a DI, or nullopt if the catalogue does not know it.
std::optional<DataItem> lookup(Version version, std::uint32_t di);

// Every DI the catalogue knows, ascending.
std::vector<std::uint32_t> catalogued(Version version);

// "00010000" (2007, 8 hex digits) / "B611" (1997, 4 hex digits).
std::string di_to_string(Version version, std::uint32_t di);
std::optional<std::uint32_t> parse_di(Version version, std::string_view text);
std::size_t di_size(Version version) noexcept;  // 4 or 2 bytes on the wire

// DI <-> wire bytes (DI0 first).
std::uint32_t read_di(Version version, std::span<const std::uint8_t> bytes);
void append_di(Version version, std::uint32_t di, std::vector<std::uint8_t>& out);

struct DecodedValues {
  std::vector<Value> values;
  // Values that are valid BCD but out of range (a month 13, a weekday 9):
  // null in `values`, and named here ("meter.date: month 13 (150D26), not a
  // valid value").
  std::vector<std::string> problems;
  std::error_code error;  // ValueError::length_mismatch
  std::string message;    // "expected 4 bytes, got 3", when error is set
};

// Decodes the data that follows the DI in an answer.
DecodedValues decode_values(const DataItem& item, std::span<const std::uint8_t> data);

// Encodes values in the item's field order (for a block, as many groups as
// the values fill). nullopt if the count or any value does not fit.
std::optional<std::vector<std::uint8_t>> encode_values(const DataItem& item,
                                                       const std::vector<ValueData>& values);

}  // namespace meterd::protocol::dlt645
