#include "protocol/modbus_codec/registers.hpp"

#include <algorithm>

#include "protocol/modbus_codec/detail/maps.hpp"
#include "protocol/modbus_codec/error.hpp"
#include "protocol/modbus_codec/pdu.hpp"

namespace meterd::protocol::modbus {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// Walks [address, address + count) over the registers of `table`; true if
// every word is covered by a register that lies wholly inside the range and
// satisfies `accept`. `registers` is ordered by table, then address.
template <class Accept>
bool covered(const Model& model, Table table, std::uint32_t address, std::uint32_t count,
             Accept accept, std::size_t* used = nullptr) {
  std::uint32_t at = address;
  const std::uint32_t end = address + count;
  std::size_t n = 0;
  while (at < end) {
    const Register* r = register_covering(model, table, static_cast<std::uint16_t>(at));
    if (r == nullptr || r->address != at || r->end() > end || !accept(*r)) return false;
    at = r->end();
    ++n;
  }
  if (used != nullptr) *used = n;
  return true;
}

}  // namespace

std::string_view to_string(Table t) noexcept { return t == Table::input ? "input" : "holding"; }

std::string_view to_string(Encoding e) noexcept {
  switch (e) {
    case Encoding::float32:
      return "float32";
    case Encoding::int16:
      return "int16";
    case Encoding::uint16:
      return "uint16";
    case Encoding::int32:
      return "int32";
    case Encoding::uint32:
      return "uint32";
  }
  return "?";
}

std::uint16_t word_count(Encoding e) noexcept {
  return (e == Encoding::int16 || e == Encoding::uint16) ? 1 : 2;
}

std::uint8_t read_function(Table t) noexcept {
  return t == Table::input ? fc::read_input_registers : fc::read_holding_registers;
}

std::span<const Model> models() {
  static const std::vector<Model> all = detail::build_models();
  return all;
}

const Model* find_model(std::string_view name) {
  for (const Model& m : models())
    if (iequal(m.name, name)) return &m;
  return nullptr;
}

const Register* find_register(const Model& model, std::string_view quantity) {
  for (const Register& r : model.registers)
    if (r.alternative == 0 && r.quantity == quantity) return &r;
  return nullptr;
}

std::vector<const Register*> find_registers(const Model& model, std::string_view quantity) {
  std::vector<const Register*> out;
  for (const Register& r : model.registers)
    if (r.quantity == quantity) out.push_back(&r);
  std::stable_sort(out.begin(), out.end(), [](const Register* a, const Register* b) {
    return a->alternative < b->alternative;
  });
  return out;
}

const Register* register_at(const Model& model, Table table, std::uint16_t address) {
  const auto it =
      std::lower_bound(model.registers.begin(), model.registers.end(), std::pair{table, address},
                       [](const Register& r, const std::pair<Table, std::uint16_t>& key) {
                         return std::pair{r.table, r.address} < key;
                       });
  if (it == model.registers.end() || it->table != table || it->address != address) return nullptr;
  return &*it;
}

const Register* register_covering(const Model& model, Table table, std::uint16_t address) {
  if (const Register* r = register_at(model, table, address)) return r;
  if (address == 0) return nullptr;
  const Register* r = register_at(model, table, static_cast<std::uint16_t>(address - 1));
  return (r != nullptr && r->words() == 2) ? r : nullptr;
}

std::optional<Table> table_for_read(const Model& model, std::uint8_t function) {
  if (function == fc::read_holding_registers) return Table::holding;
  if (function == fc::read_input_registers)
    return model.quirks.fc04_reads_holding ? Table::holding : Table::input;
  return std::nullopt;
}

std::error_code check_read(const Model& model, std::uint8_t function, std::uint16_t address,
                           std::uint16_t count) {
  const auto table = table_for_read(model, function);
  if (!table) return Exception::illegal_function;
  const Quirks& q = model.quirks;
  if (count < 1 || count > max_read_registers || count > q.max_read_registers)
    return Exception::illegal_data_value;
  if (std::uint32_t{address} + count > 0x10000u) return Exception::illegal_data_address;
  if (count == 1 && q.single_register_answer) return {};
  if (q.even_alignment && (address % 2 != 0 || count % 2 != 0))
    return Exception::illegal_data_address;
  if (!q.unlisted_read_as_zero && !covered(model, *table, address, count, [](const Register& r) {
        return r.access != Access::write;
      }))
    return Exception::illegal_data_address;
  return {};
}

std::error_code check_write(const Model& model, std::uint8_t function, std::uint16_t address,
                            std::uint16_t count) {
  const Quirks& q = model.quirks;
  if (function == fc::write_single_register) {
    if (!q.fc06_write) return Exception::illegal_function;
    if (count != 1) return Exception::illegal_data_value;
  } else if (function == fc::write_multiple_registers) {
    if (count < 1 || count > max_write_registers) return Exception::illegal_data_value;
  } else {
    return Exception::illegal_function;
  }
  if (std::uint32_t{address} + count > 0x10000u) return Exception::illegal_data_address;
  std::size_t used = 0;
  if (!covered(
          model, Table::holding, address, count,
          [](const Register& r) { return r.access != Access::read; }, &used))
    return Exception::illegal_data_address;
  if (q.one_parameter_per_write && used != 1) return Exception::illegal_data_address;
  return {};
}

}  // namespace meterd::protocol::modbus
