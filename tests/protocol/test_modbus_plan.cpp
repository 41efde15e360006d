// The read planner against the models' quirks: block size, even alignment,
// gap bridging (over unlisted addresses only where the meter answers them),
// one table per block; its answers checked by check_read(), and its block
// count against an independent dynamic programme on random register sets.
#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "protocol/decimal.hpp"
#include "protocol/modbus_codec/error.hpp"
#include "protocol/modbus_codec/pdu.hpp"
#include "protocol/modbus_codec/plan.hpp"
#include "protocol/modbus_codec/registers.hpp"
#include "protocol/modbus_codec/value.hpp"

using namespace meterd::protocol::modbus;
using meterd::protocol::Decimal;
using Regs = std::vector<const Register*>;

namespace {

const Model& model(const char* name) {
  const Model* m = find_model(name);
  REQUIRE(m != nullptr);
  return *m;
}

Regs by_quantity(const Model& m, std::initializer_list<const char*> quantities) {
  Regs out;
  for (const char* q : quantities) {
    const Register* r = find_register(m, q);
    CAPTURE(q);
    REQUIRE(r != nullptr);
    out.push_back(r);
  }
  return out;
}

struct Expect {
  std::uint8_t function;
  std::uint16_t address;
  std::uint16_t count;
};

void check_blocks(const std::vector<Block>& blocks, std::initializer_list<Expect> expected) {
  REQUIRE(blocks.size() == expected.size());
  std::size_t i = 0;
  for (const Expect& e : expected) {
    CAPTURE(i);
    CHECK(blocks[i].function == e.function);
    CHECK(blocks[i].address == e.address);
    CHECK(blocks[i].count == e.count);
    ++i;
  }
}

// What every plan must satisfy, whatever was asked.
void check_invariants(const Model& m, const Regs& wanted, const std::vector<Block>& blocks,
                      const PlanOptions& options = {}) {
  const Quirks& q = m.quirks;
  const std::uint32_t limit = std::min<std::uint32_t>(
      {options.max_registers.value_or(q.plan_max_registers), q.max_read_registers, 125});
  const std::uint32_t max_gap = options.max_gap.value_or(q.plan_max_gap);
  std::set<const Register*> seen;
  for (const Block& b : blocks) {
    CAPTURE(b.address);
    CAPTURE(b.count);
    REQUIRE(!b.registers.empty());
    CHECK(b.function == read_function(b.table));
    CHECK(b.count >= 1);
    if (b.registers.size() > 1 || b.registers[0]->words() <= limit) CHECK(b.count <= limit);
    if (q.even_alignment) {
      CHECK(b.address % 2 == 0);
      CHECK(b.count % 2 == 0);
    }
    // Every block the meter would answer (wanted registers are from its map).
    CHECK_FALSE(check_read(m, b.function, b.address, b.count));
    std::uint32_t prev_end = 0;
    for (const Register* r : b.registers) {
      CHECK(r->table == b.table);
      CHECK(r->address >= b.address);
      CHECK(r->end() <= std::uint32_t{b.address} + b.count);
      if (prev_end != 0 && r->address > prev_end) CHECK(r->address - prev_end <= max_gap);
      prev_end = std::max(prev_end, r->end());
      CHECK(seen.insert(r).second);  // in one block only
    }
  }
  for (const Register* r : wanted)
    if (r != nullptr) CHECK(seen.count(r) == 1);
}

// Independent minimum: blocks are runs of the address-sorted wanted
// registers; dp[j] = fewest blocks for the first j.
std::size_t minimum_blocks(const Model& m, Regs regs) {
  const Quirks& q = m.quirks;
  std::sort(regs.begin(), regs.end(), [](const Register* a, const Register* b) {
    return std::pair{a->table, a->address} < std::pair{b->table, b->address};
  });
  regs.erase(std::unique(regs.begin(), regs.end()), regs.end());
  auto feasible = [&](std::size_t i, std::size_t j) {  // regs[i..j]
    if (regs[i]->table != regs[j]->table) return false;
    std::uint32_t start = regs[i]->address, end = regs[i]->end();
    if (q.even_alignment) start &= ~1u;
    for (std::size_t k = i + 1; k <= j; ++k) {
      if (regs[k]->address > end && regs[k]->address - end > q.plan_max_gap) return false;
      end = std::max(end, regs[k]->end());
    }
    if (q.even_alignment) end = (end + 1) & ~1u;
    if (end - start > q.plan_max_registers) return false;
    return i == j || q.unlisted_read_as_zero ||
           !check_read(m, read_function(regs[i]->table), static_cast<std::uint16_t>(start),
                       static_cast<std::uint16_t>(end - start));
  };
  std::vector<std::size_t> dp(regs.size() + 1, SIZE_MAX);
  dp[0] = 0;
  for (std::size_t j = 1; j <= regs.size(); ++j)
    for (std::size_t i = 0; i < j; ++i)
      if (dp[i] != SIZE_MAX && feasible(i, j - 1)) dp[j] = std::min(dp[j], dp[i] + 1);
  return dp[regs.size()];
}

}  // namespace

TEST_CASE("SDM630: the gateway short list of register-tables.md §1.2 in three reads") {
  const Model& m = model("sdm630");
  Regs wanted;
  for (const Register& r : m.registers) {
    if (r.table != Table::input) continue;
    const auto a = r.address;
    if (a <= 0x0022 || a == 0x0034 || a == 0x0038 || a == 0x003C || a == 0x003E || a == 0x0046 ||
        (a >= 0x0048 && a <= 0x004E) || (a >= 0x00C8 && a <= 0x00CC) || a == 0x00E0 ||
        (a >= 0x00EA && a <= 0x00EE) || a == 0x0156 || a == 0x0158)
      wanted.push_back(&r);
  }
  REQUIRE(wanted.size() == 18 + 4 + 1 + 4 + 3 + 1 + 3 + 2);
  std::shuffle(wanted.begin(), wanted.end(), std::mt19937(1));
  const auto blocks = plan_reads(m, wanted);
  // register-tables.md plans 0x00C8 × 52 and 0x0156 × 40 to include registers this
  // list does not ask for; the planner stops at the last wanted one.
  check_blocks(blocks, {{0x04, 0x0000, 80}, {0x04, 0x00C8, 40}, {0x04, 0x0156, 4}});
  check_invariants(m, wanted, blocks);
  CHECK(blocks[0].registers.size() == 18 + 4 + 1 + 4);
  CHECK(
      std::is_sorted(blocks[0].registers.begin(), blocks[0].registers.end(),
                     [](const Register* a, const Register* b) { return a->address < b->address; }));

  SUBCASE("after exception 02 to a bridged read: no bridging") {
    const auto split = plan_reads(m, wanted, PlanOptions{std::nullopt, 0});
    check_blocks(split, {{4, 0x0000, 36},
                         {4, 0x0034, 2},
                         {4, 0x0038, 2},
                         {4, 0x003C, 4},
                         {4, 0x0046, 10},
                         {4, 0x00C8, 6},
                         {4, 0x00E0, 2},
                         {4, 0x00EA, 6},
                         {4, 0x0156, 4}});
    check_invariants(m, wanted, split, PlanOptions{std::nullopt, 0});
  }
  SUBCASE("a smaller block size") {
    const PlanOptions small{16, std::nullopt};
    const auto blocks16 = plan_reads(m, wanted, small);
    check_invariants(m, wanted, blocks16, small);
    for (const Block& b : blocks16) CHECK(b.count <= 16);
  }
}

TEST_CASE("SDM630: 80 registers per read at most, and one table per read") {
  const Model& m = model("sdm630");
  const Regs two = by_quantity(m, {"voltage.l1", "energy.apparent.total"});  // 0x0000, 0x0050
  check_blocks(plan_reads(m, two, PlanOptions{std::nullopt, 200}),
               {{4, 0x0000, 2}, {4, 0x0050, 2}});
  const Regs fits = by_quantity(m, {"voltage.l1", "energy.reactive.export.total"});  // 0x004E
  check_blocks(plan_reads(m, fits, PlanOptions{std::nullopt, 200}), {{4, 0x0000, 80}});

  const Regs mixed = by_quantity(m, {"setting.demand_period", "voltage.l1", "info.demand_time"});
  const auto blocks = plan_reads(m, mixed);
  check_blocks(blocks, {{0x04, 0x0000, 2}, {0x03, 0x0000, 4}});
  CHECK(blocks[0].table == Table::input);
  CHECK(blocks[1].table == Table::holding);
  check_invariants(m, mixed, blocks);
}

TEST_CASE("Eastron even alignment rounds 16-bit registers out to pairs") {
  const Model& m = model("sdm120");
  check_blocks(plan_reads(m, by_quantity(m, {"info.software_version"})), {{3, 0xFC02, 2}});
  check_blocks(plan_reads(m, by_quantity(m, {"setting.measurement_mode"})), {{3, 0xF920, 2}});
  check_blocks(plan_reads(m, by_quantity(m, {"info.meter_code", "info.software_version"})),
               {{3, 0xFC02, 2}});
  check_blocks(plan_reads(m, by_quantity(m, {"info.serial_number", "info.software_version"})),
               {{3, 0xFC00, 4}});
  // No SDM read is ever a single register (that one gets the type value).
  for (const Register& r : m.registers) {
    const Regs one{&r};
    for (const Block& b : plan_reads(m, one)) CHECK(b.count >= 2);
  }
}

TEST_CASE("DTSU666: 34-register reads, 10-register bridges, FC 03") {
  const Model& m = model("dtsu666");
  const Regs wanted =
      by_quantity(m, {"voltage.l1", "voltage.l2", "voltage.l3", "current.l1", "current.l2",
                      "current.l3", "power.active.total", "power.active.l1", "power.active.l2",
                      "power.active.l3", "power.reactive.total", "power_factor.total",
                      "power_factor.l1", "power_factor.l2", "power_factor.l3", "frequency",
                      "energy.active.import.total", "energy.active.export.total"});
  const auto blocks = plan_reads(m, wanted);
  check_blocks(blocks, {{3, 0x101E, 12}, {3, 0x2006, 22}, {3, 0x202A, 8}, {3, 0x2044, 2}});
  check_invariants(m, wanted, blocks);
  // Fallback block B on its own.
  const auto b = find_registers(m, "energy.active.import.total");
  const Regs fallback{b[1], find_registers(m, "energy.active.export.total")[1]};
  check_blocks(plan_reads(m, fallback), {{3, 0x401E, 12}});
}

TEST_CASE("a strict map is bridged over listed registers only") {
  const Model& g = model("generic");
  const Regs energy = by_quantity(g, {"energy.active.import.total", "energy.active.import.t4",
                                      "energy.active.export.total", "demand.active.import.max"});
  check_blocks(plan_reads(g, energy), {{3, 0x0100, 0x14}});
  const Regs mixed = by_quantity(g, {"voltage.l1", "frequency", "temperature.meter"});
  check_blocks(plan_reads(g, mixed), {{3, 0x0000, 0x20}});
  check_invariants(g, mixed, plan_reads(g, mixed));

  // A one-register hole: bridged when the meter reads holes as zero, split
  // when it answers exception 02 there.
  Model m;
  m.name = "holes";
  m.registers = {Register{0x0000, Table::holding, Encoding::uint16, {1, 0}, "a", "", "a"},
                 Register{0x0002, Table::holding, Encoding::uint16, {1, 0}, "b", "", "b"}};
  m.quirks.plan_max_gap = 10;
  const Regs both{&m.registers[0], &m.registers[1]};
  check_blocks(plan_reads(m, both), {{3, 0x0000, 1}, {3, 0x0002, 1}});
  m.quirks.unlisted_read_as_zero = true;
  check_blocks(plan_reads(m, both), {{3, 0x0000, 3}});
}

TEST_CASE("plan_reads ignores duplicates and nullptr") {
  const Model& m = model("sdm630");
  CHECK(plan_reads(m, Regs{}).empty());
  CHECK(plan_reads(m, Regs{nullptr}).empty());
  const Register* v = find_register(m, "voltage.l1");
  check_blocks(plan_reads(m, Regs{v, nullptr, v, v}), {{4, 0x0000, 2}});
}

TEST_CASE("random register sets: invariants hold and the plan is minimal") {
  std::mt19937 rng(34);
  for (const Model& m : models()) {
    CAPTURE(m.name);
    for (int round = 0; round < 200; ++round) {
      Regs wanted;
      std::bernoulli_distribution pick(round % 4 == 0 ? 0.8 : 0.15);
      for (const Register& r : m.registers)
        if (pick(rng) && r.access != Access::write) wanted.push_back(&r);
      std::shuffle(wanted.begin(), wanted.end(), rng);
      const auto blocks = plan_reads(m, wanted);
      check_invariants(m, wanted, blocks);
      CHECK(blocks.size() == minimum_blocks(m, wanted));
    }
  }
}

TEST_CASE("decode_block picks each wanted register out of the answer") {
  const Model& m = model("sdm630");
  const Regs wanted = by_quantity(m, {"voltage.l1", "frequency", "energy.active.import.total"});
  const auto blocks = plan_reads(m, wanted, PlanOptions{std::nullopt, 80});
  REQUIRE(blocks.size() == 1);
  const Block& b = blocks[0];
  CHECK(b.count == 0x4A);
  std::vector<std::uint16_t> words(b.count, 0);
  const Decimal values[] = {{2302, -1}, {5002, -2}, {1234567, -2}};
  for (std::size_t i = 0; i < 3; ++i) {
    const auto w = encode_value(*wanted[i], values[i]);
    REQUIRE(w);
    std::copy(w->begin(), w->end(), words.begin() + (wanted[i]->address - b.address));
  }
  const auto decoded = decode_block(b, words);
  REQUIRE(decoded.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(decoded[i].reg == wanted[i]);
    REQUIRE(decoded[i].value);
    CHECK(*decoded[i].value == values[i]);
  }
  // A short answer: registers past its end report wrong_word_count.
  const auto short_answer = decode_block(b, std::span(words).first(2));
  CHECK(short_answer[0].value);
  CHECK(short_answer[2].value.error() == ValueError::wrong_word_count);
}
