#include "firmware/profiles.hpp"

#include <algorithm>
#include <set>
#include <string_view>

namespace meterd::firmware {

namespace dlt = protocol::dlt645;
namespace mb = protocol::modbus;

namespace {

void add_unique(std::vector<std::string>& out, std::set<std::string>& seen,
                const std::string& name) {
  if (seen.insert(name).second) out.push_back(name);
}

std::set<std::string> item_quantities(const dlt::DataItem& item) {
  std::set<std::string> q;
  for (const auto& f : item.fields) q.insert(f.quantity);
  return q;
}

bool delivers_any(const dlt::DataItem& item, const std::set<std::string>& wanted) {
  return std::any_of(item.fields.begin(), item.fields.end(),
                     [&](const dlt::Field& f) { return wanted.count(f.quantity) > 0; });
}

// Where a block DI holds its wildcard: the byte (2007) or low nibble (1997)
// that reads FF / F. Returns the shift of that byte or nibble and its width
// mask, or nullopt for a DI that is not a block.
struct BlockSlot {
  unsigned shift;
  std::uint32_t mask;
};
std::optional<BlockSlot> block_slot(dlt::Version v, std::uint32_t di) {
  if (v == dlt::Version::v1997) {
    if ((di & 0x0F) == 0x0F) return BlockSlot{0, 0x0F};
    return std::nullopt;
  }
  std::optional<BlockSlot> slot;
  for (unsigned b = 0; b < 4; ++b)
    if (((di >> (8 * b)) & 0xFF) == 0xFF) {
      if (slot) return std::nullopt;  // two wildcards: not a block we can split
      slot = BlockSlot{8 * b, 0xFF};
    }
  return slot;
}

std::shared_ptr<const mb::Model> static_model(const mb::Model* m) {
  // The built-in maps are static data: share them without ownership.
  return std::shared_ptr<const mb::Model>(std::shared_ptr<const mb::Model>{}, m);
}

DltRead must_read(dlt::Version v, std::uint32_t di) {
  auto r = catalogue_read(v, di);
  // The built-in lists are checked against the catalogue by the tests.
  return r ? std::move(*r) : DltRead{};
}

Profile dlt_profile(std::string name, dlt::Version v, std::initializer_list<std::uint32_t> dis) {
  Profile p;
  p.name = std::move(name);
  p.kind = Profile::Kind::dlt645;
  p.version = v;
  for (const auto di : dis) p.dlt_reads.push_back(must_read(v, di));
  return p;
}

// DL/T 645-2007: the import/export energies with tariffs, the instantaneous
// variables and the frequency (what every 2007 meter answers).
constexpr std::initializer_list<std::uint32_t> basic_2007 = {
    0x0001FF00,  // forward active energy, total + tariffs
    0x0002FF00,  // reverse active energy, total + tariffs
    0x0201FF00,  // voltages L1..L3
    0x0202FF00,  // currents L1..L3
    0x0203FF00,  // active power total, L1..L3
    0x0204FF00,  // reactive power total, L1..L3
    0x0206FF00,  // power factor total, L1..L3
    0x02800002,  // grid frequency
};

constexpr std::initializer_list<std::uint32_t> full_extra_2007 = {
    0x0000FF00,  // combined active energy, total + tariffs
    0x0003FF00,  // combined reactive 1 (reactive import), total + tariffs
    0x0004FF00,  // combined reactive 2 (reactive export), total + tariffs
    0x0205FF00,  // apparent power total, L1..L3
    0x0101FF00,  // maximum forward active demand and its time, total + tariffs
    0x02800001,  // neutral current
    0x02800007,  // meter temperature
    0x04000101,  // meter date and weekday
    0x04000102,  // meter time
    0x040005FF,  // status words 1..7
};

constexpr std::initializer_list<std::uint32_t> basic_1997 = {
    0x901F,  // forward active energy, total + tariffs
    0x902F,  // reverse active energy, total + tariffs
    0xB61F,  // voltages A..C
    0xB62F,  // currents A..C
    0xB63F,  // active power total, A..C
    0xB64F,  // reactive power total, A..C
    0xB65F,  // power factor total, A..C
};

Profile modbus_profile(const mb::Model& model) {
  Profile p;
  p.name = model.name;
  p.kind = Profile::Kind::modbus;
  p.model = static_model(&model);
  p.registers = measured_registers(model);
  apply_quirks(p);
  return p;
}

const ProfileSet& builtin_set() {
  static const ProfileSet set = [] {
    ProfileSet s;
    s.add(dlt_profile("dlt645-basic", dlt::Version::v2007, basic_2007));
    Profile full = dlt_profile("dlt645-full", dlt::Version::v2007, basic_2007);
    for (const auto di : full_extra_2007)
      full.dlt_reads.push_back(must_read(dlt::Version::v2007, di));
    s.add(std::move(full));
    s.add(dlt_profile("dlt645-1997-basic", dlt::Version::v1997, basic_1997));
    for (const char* name : {"sdm630", "sdm120", "dtsu666", "dtsu666h", "generic"})
      if (const mb::Model* m = mb::find_model(name)) s.add(modbus_profile(*m));
    return s;
  }();
  return set;
}

}  // namespace

std::optional<DltRead> catalogue_read(dlt::Version version, std::uint32_t di) {
  auto item = dlt::lookup(version, di);
  if (!item) return std::nullopt;
  DltRead r;
  r.item = std::move(*item);
  const auto slot = block_slot(version, di);
  if (!slot) return r;
  const auto block_q = item_quantities(r.item);
  // A "total + tariffs" block falls back on the total and four tariffs (the
  // State Grid tariff count); other blocks on every catalogued member.
  const std::uint32_t last = r.item.group_size > 0 ? 4 : slot->mask - 1;
  for (std::uint32_t k = 0; k <= last; ++k) {
    const std::uint32_t single = (di & ~(slot->mask << slot->shift)) | (k << slot->shift);
    auto s = dlt::lookup(version, single);
    if (!s || s->group_size > 0 || s->fields.empty()) continue;
    const auto q = item_quantities(*s);
    if (!std::includes(block_q.begin(), block_q.end(), q.begin(), q.end())) continue;
    r.singles.push_back(std::move(*s));
  }
  return r;
}

bool is_measurement(const mb::Register& r) {
  if (r.alternative != 0 || r.access == mb::Access::write) return false;
  for (const std::string_view prefix : {"setting.", "info.", "command.", "clock."})
    if (std::string_view(r.quantity).substr(0, prefix.size()) == prefix) return false;
  return true;
}

std::vector<const mb::Register*> measured_registers(const mb::Model& model) {
  std::vector<const mb::Register*> out;
  for (const auto& r : model.registers)
    if (is_measurement(r)) out.push_back(&r);
  return out;
}

void apply_quirks(Profile& p) {
  if (!p.model) return;
  const auto& q = p.model->quirks;
  const unsigned gap_ms =
      q.recommended_request_gap_ms ? q.recommended_request_gap_ms : q.min_request_gap_ms;
  p.min_gap = std::chrono::milliseconds(gap_ms);
  p.max_registers = q.plan_max_registers;
  p.max_gap = q.plan_max_gap;
}

std::vector<std::string> Profile::quantities() const {
  std::vector<std::string> out;
  std::set<std::string> seen;
  switch (kind) {
    case Kind::dlt645:
      for (const auto& r : dlt_reads) {
        for (const auto& f : r.item.fields) add_unique(out, seen, f.quantity);
        for (const auto& s : r.singles)
          for (const auto& f : s.fields) add_unique(out, seen, f.quantity);
      }
      break;
    case Kind::modbus:
      for (const auto* r : registers) add_unique(out, seen, r->quantity);
      break;
  }
  return out;
}

Profile Profile::narrowed(const std::vector<std::string>& wanted) const {
  Profile p = *this;
  const std::set<std::string> want(wanted.begin(), wanted.end());
  p.keep = wanted;
  p.dlt_reads.clear();
  p.registers.clear();
  switch (kind) {
    case Kind::dlt645:
      for (const auto& r : dlt_reads) {
        std::vector<dlt::DataItem> singles;
        for (const auto& s : r.singles)
          if (delivers_any(s, want)) singles.push_back(s);
        if (!delivers_any(r.item, want) && singles.empty()) continue;
        // One single says all that is wanted from this block: read it alone
        // (a 6-byte answer instead of a 20-to-260-byte block).
        std::set<std::string> from_block, from_singles;
        for (const auto& f : r.item.fields)
          if (want.count(f.quantity)) from_block.insert(f.quantity);
        for (const auto& s : singles)
          for (const auto& f : s.fields)
            if (want.count(f.quantity)) from_singles.insert(f.quantity);
        if (singles.size() == 1 && from_singles == from_block) {
          p.dlt_reads.push_back(DltRead{singles.front(), {}});
          continue;
        }
        p.dlt_reads.push_back(DltRead{r.item, std::move(singles)});
      }
      break;
    case Kind::modbus:
      for (const auto* r : registers)
        if (want.count(r->quantity)) p.registers.push_back(r);
      break;
  }
  return p;
}

std::shared_ptr<ProfileSet> ProfileSet::builtin() {
  return std::make_shared<ProfileSet>(builtin_set());
}

const Profile* ProfileSet::find(const std::string& name) const {
  const auto it = profiles_.find(name);
  return it == profiles_.end() ? nullptr : it->second.get();
}

std::shared_ptr<const Profile> ProfileSet::share(const std::string& name) const {
  const auto it = profiles_.find(name);
  return it == profiles_.end() ? nullptr : it->second;
}

void ProfileSet::add(Profile profile) {
  auto name = profile.name;
  profiles_[name] = std::make_shared<const Profile>(std::move(profile));
}

std::vector<std::string> ProfileSet::names() const {
  std::vector<std::string> out;
  for (const auto& [name, p] : profiles_) out.push_back(name);
  return out;
}

}  // namespace meterd::firmware
