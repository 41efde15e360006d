#include "protocol/modbus_codec/plan.hpp"

#include <algorithm>

#include "protocol/modbus_codec/error.hpp"
#include "protocol/modbus_codec/pdu.hpp"
#include "protocol/modbus_codec/value.hpp"

namespace meterd::protocol::modbus {

namespace {

struct Span {
  std::uint32_t start = 0;  // aligned start
  std::uint32_t end = 0;    // one past the last wanted word (not aligned)
};

std::uint32_t aligned_end(const Quirks& q, std::uint32_t end) {
  return q.even_alignment ? (end + 1) & ~std::uint32_t{1} : end;
}

}  // namespace

std::vector<Block> plan_reads(const Model& model, std::span<const Register* const> wanted,
                              const PlanOptions& options) {
  const Quirks& q = model.quirks;
  const std::uint32_t max_count =
      std::min<std::uint32_t>({options.max_registers.value_or(q.plan_max_registers),
                               q.max_read_registers, max_read_registers});
  const std::uint32_t max_gap = options.max_gap.value_or(q.plan_max_gap);

  std::vector<const Register*> regs;
  for (const Register* r : wanted)
    if (r != nullptr) regs.push_back(r);
  std::sort(regs.begin(), regs.end(), [](const Register* a, const Register* b) {
    if (a->table != b->table) return a->table < b->table;
    if (a->address != b->address) return a->address < b->address;
    return a->words() > b->words();
  });
  regs.erase(std::unique(regs.begin(), regs.end()), regs.end());

  std::vector<Block> blocks;
  Span cur;
  auto close_count = [&](const Span& s) {
    return static_cast<std::uint16_t>(std::min<std::uint32_t>(aligned_end(q, s.end), 0x10000u) -
                                      s.start);
  };
  for (const Register* r : regs) {
    if (!blocks.empty() && blocks.back().table == r->table) {
      Block& b = blocks.back();
      const std::uint32_t gap = r->address > cur.end ? r->address - cur.end : 0;
      const Span grown{cur.start, std::max(cur.end, r->end())};
      const std::uint32_t count = aligned_end(q, grown.end) - grown.start;
      const bool ok = gap <= max_gap && count <= max_count &&
                      (q.unlisted_read_as_zero ||
                       !check_read(model, b.function, static_cast<std::uint16_t>(grown.start),
                                   static_cast<std::uint16_t>(count)));
      if (ok) {
        cur = grown;
        b.count = close_count(cur);
        b.registers.push_back(r);
        continue;
      }
    }
    Block b;
    b.table = r->table;
    b.function = read_function(r->table);
    cur.start = q.even_alignment ? (r->address & ~std::uint32_t{1}) : r->address;
    cur.end = r->end();
    b.address = static_cast<std::uint16_t>(cur.start);
    b.count = close_count(cur);
    b.registers.push_back(r);
    blocks.push_back(std::move(b));
  }
  return blocks;
}

std::vector<BlockValue> decode_block(const Block& block, std::span<const std::uint16_t> words,
                                     WordOrder order) {
  std::vector<BlockValue> out;
  out.reserve(block.registers.size());
  for (const Register* r : block.registers) {
    const std::size_t offset =
        r->address >= block.address ? r->address - block.address : words.size();
    if (offset + r->words() > words.size()) {
      out.push_back({r, ValueError::wrong_word_count});
      continue;
    }
    out.push_back({r, decode_value(*r, words.subspan(offset, r->words()), order)});
  }
  return out;
}

}  // namespace meterd::protocol::modbus
