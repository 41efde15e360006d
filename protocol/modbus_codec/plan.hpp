// Read planning (pure): which read requests fetch a set of registers in
// the fewest round trips while obeying the model's quirks. The daemon's
// read planner calls it per meter; it owns no state.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "protocol/decimal.hpp"
#include "protocol/modbus_codec/registers.hpp"
#include "protocol/modbus_codec/result.hpp"

namespace meterd::protocol::modbus {

// One read request: FC `function` at `address`, `count` registers.
struct Block {
  Table table = Table::input;
  std::uint8_t function = 0;  // read_function(table): 04 input, 03 holding
  std::uint16_t address = 0;
  std::uint16_t count = 0;
  std::vector<const Register*> registers;  // the wanted registers inside, by address
};

struct PlanOptions {
  // Override Quirks::plan_max_registers (always clamped to the model's
  // max_read_registers and to 125).
  std::optional<std::uint16_t> max_registers;
  // Override Quirks::plan_max_gap. 0: never read a register nobody asked
  // for — the fallback after a meter answered exception 02 to a bridged read.
  std::optional<std::uint16_t> max_gap;
};

// Groups `wanted` (any order; duplicates and nullptr ignored) into blocks:
//  - one table per block;
//  - count <= the block size limit;
//  - between two wanted registers at most max_gap unwanted registers;
//  - with even_alignment, start and count even (Eastron);
//  - without unlisted_read_as_zero, only listed registers are bridged, so
//    every block passes check_read() (a wanted register the map does not
//    list still gets its own block: the meter's answer is the truth).
// Greedy in address order, which is optimal for these interval constraints.
// Blocks come ordered by table (input first), then address.
std::vector<Block> plan_reads(const Model& model, std::span<const Register* const> wanted,
                              const PlanOptions& options = {});

// The wanted registers' values out of a block's answer (`words` holds
// block.count registers), in block.registers order.
struct BlockValue {
  const Register* reg = nullptr;
  Result<Decimal> value;
};
std::vector<BlockValue> decode_block(const Block& block, std::span<const std::uint16_t> words,
                                     WordOrder order = WordOrder::high_word_first);

}  // namespace meterd::protocol::modbus
