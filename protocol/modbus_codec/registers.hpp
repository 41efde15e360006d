// Register maps as data: for each supported meter model, every register
// its documentation lists (see docs/modbus.md and tests/data/modbus/register-tables.md
// for the sources), with its table, encoding, exact scale to the canonical
// unit, canonical quantity name (docs/contracts.md) and the model's quirks.
// Also the slave-side admission rules the quirks imply (check_read /
// check_write), so the simulator and the tests share one statement of them.
//
// The maps are immutable static data, built on first use (thread-safe);
// pointers into them stay valid for the life of the program. Any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "protocol/decimal.hpp"

namespace meterd::protocol::modbus {

enum class Table : std::uint8_t { input, holding };

enum class Encoding : std::uint8_t {
  float32,  // IEEE-754 binary32 in two registers
  int16,
  uint16,
  int32,   // two registers
  uint32,  // two registers
};

// Order of the two registers of a 32-bit value. Bytes inside a register
// are always big-endian (MODBUS Application Protocol §4.2).
enum class WordOrder : std::uint8_t {
  high_word_first,  // "ABCD": the factory default of every model here
  low_word_first,   // "CDAB": SDM630 after 2141.0 is written to 0x0028 in that order
};

enum class Access : std::uint8_t { read, read_write, write };

std::string_view to_string(Table t) noexcept;     // "input", "holding"
std::string_view to_string(Encoding e) noexcept;  // "float32", "int16", …
std::uint16_t word_count(Encoding e) noexcept;    // 1 or 2
// The function that reads a table: input → 04, holding → 03.
std::uint8_t read_function(Table t) noexcept;

struct Register {
  std::uint16_t address =
      0;  // 0-based protocol address (input 30001 + address, holding 40001 + address)
  Table table = Table::input;
  Encoding encoding = Encoding::float32;
  // canonical value = raw value × scale, exactly: {1,-3} turns W into kW,
  // {1,-1} turns 0.1 V units into V.
  Decimal scale{1, 0};
  std::string quantity;     // canonical name (docs/contracts.md), or an extension
  std::string unit;         // canonical unit: "kWh", "V", "kW", "" for a ratio
  std::string description;  // the manufacturer's name, and caveats
  Access access = Access::read;
  // 0: the primary address of `quantity`. n > 0: the n-th fallback address
  // of the same quantity (read it when the primary answers exception 02).
  std::uint8_t alternative = 0;

  std::uint16_t words() const noexcept { return word_count(encoding); }
  std::uint32_t end() const noexcept { return std::uint32_t{address} + words(); }  // one past
};

// What a model does beyond plain Modbus. "Exception nn" names the answer
// check_read / check_write give (and a simulator sends).
struct Quirks {
  // ---- reads ----
  std::uint16_t max_read_registers = 125;  // larger reads: exception 03 (Eastron: 80)
  std::uint16_t plan_max_registers = 125;  // block size plan_reads uses (<= max_read_registers)
  std::uint16_t plan_max_gap = 0;          // registers plan_reads may read between wanted ones
  bool even_alignment = false;             // odd start or count: exception 02 (Eastron)
  // A 1-register read of a meter with even_alignment is answered with this
  // word instead of exception 02 (Eastron: "instrument type specific value";
  // 0x0000 observed on an SDM630).
  std::optional<std::uint16_t> single_register_answer;
  bool unlisted_read_as_zero = false;  // unlisted addresses read as 0, else exception 02
  bool fc04_reads_holding = false;     // FC 04 is answered from the holding table (DTSU666)
  // ---- writes ----
  bool fc06_write = false;               // FC 06 accepted; else only FC 10 (FC 06: exception 01)
  bool one_parameter_per_write = false;  // a FC 10 write covers exactly one register (Eastron)
  // ---- data ----
  WordOrder word_order = WordOrder::high_word_first;  // factory default
  // ---- timing: silence a master leaves before its next request, on top of t3.5 ----
  std::uint16_t min_request_gap_ms = 0;          // documented minimum
  std::uint16_t recommended_request_gap_ms = 0;  // what field experience suggests
  // ---- factory serial settings ----
  std::uint8_t default_unit = 1;
  std::uint32_t default_baud = 9600;
  char default_parity = 'N';  // 'N', 'E', 'O'
  std::uint8_t default_stop_bits = 1;
};

struct Model {
  std::string name;                 // "sdm630"
  std::string description;          // "Eastron SDM630-Modbus (three-phase)"
  std::vector<Register> registers;  // ordered by table (input first), then address
  Quirks quirks;
};

// Every built-in model: "sdm630", "sdm120", "dtsu666", "dtsu666h", "generic".
std::span<const Model> models();
// By name, ASCII case-insensitive; nullptr if unknown.
const Model* find_model(std::string_view name);

// The primary register (alternative 0) of a quantity, or nullptr.
const Register* find_register(const Model& model, std::string_view quantity);
// Every register of a quantity: the primary first, then the fallbacks in order.
std::vector<const Register*> find_registers(const Model& model, std::string_view quantity);
// The register starting at `address`, or nullptr.
const Register* register_at(const Model& model, Table table, std::uint16_t address);
// The register one of whose words is `address`, or nullptr.
const Register* register_covering(const Model& model, Table table, std::uint16_t address);

// The table a read function reaches on this model: FC 04 → input (holding
// if fc04_reads_holding), FC 03 → holding; nullopt for any other function.
std::optional<Table> table_for_read(const Model& model, std::uint8_t function);

// Slave-side admission of a read, in this order: function not 03/04 → 01;
// count 0 or above 125 or max_read_registers → 03; past 0xFFFF → 02; a
// 1-register read with single_register_answer → accepted; odd start or
// count with even_alignment → 02; without unlisted_read_as_zero, any word
// not covered by a register, or a register cut by the range → 02.
// Returns {} when the meter answers.
std::error_code check_read(const Model& model, std::uint8_t function, std::uint16_t address,
                           std::uint16_t count);

// Slave-side admission of a write (FC 06: count 1; FC 10: 1..123): another
// function, or 06 without fc06_write → 01; bad count → 03; past 0xFFFF →
// 02; any word outside a writable holding register, a register cut by the
// range, or (one_parameter_per_write) more than one register → 02.
std::error_code check_write(const Model& model, std::uint8_t function, std::uint16_t address,
                            std::uint16_t count);

}  // namespace meterd::protocol::modbus
