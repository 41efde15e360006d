// The config's [[profile]] tables: user read profiles for DL/T 645 (catalogue
// DIs and vendor items) and Modbus (a model's quantities and registers of
// one's own). docs/config.md "Profiles".
#include <array>
#include <cstdio>
#include <map>
#include <set>

#include "firmware/detail/config_reader.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/modbus_codec/registers.hpp"

namespace meterd::firmware::detail {

namespace dlt = protocol::dlt645;
namespace mb = protocol::modbus;

namespace {

// The catalogue's key for a quantity name, so a vendor item that names a
// catalogued quantity ("energy.active.import.t5") carries its real key.
// Built once, on first use (only user items need it).
std::optional<protocol::QuantityKey> catalogue_key(dlt::Version v, const std::string& name) {
  static const auto maps = [] {
    std::array<std::map<std::string, protocol::QuantityKey>, 2> m;
    for (const auto version : {dlt::Version::v2007, dlt::Version::v1997}) {
      auto& map = m[version == dlt::Version::v2007 ? 0 : 1];
      for (const auto di : dlt::catalogued(version))
        if (const auto item = dlt::lookup(version, di))
          for (const auto& f : item->fields) map.emplace(f.quantity, f.key);
    }
    return m;
  }();
  const auto& map = maps[v == dlt::Version::v2007 ? 0 : 1];
  const auto it = map.find(name);
  if (it == map.end()) return std::nullopt;
  return it->second;
}

std::string models_list() {
  std::string s;
  for (const auto& m : mb::models()) s += (s.empty() ? "" : ", ") + m.name;
  return s;
}

std::optional<mb::WordOrder> parse_word_order(const std::string& s) {
  if (s == "ABCD" || s == "abcd" || s == "high_word_first") return mb::WordOrder::high_word_first;
  if (s == "CDAB" || s == "cdab" || s == "low_word_first") return mb::WordOrder::low_word_first;
  return std::nullopt;
}

std::optional<mb::Encoding> parse_encoding(const std::string& s) {
  for (const auto e : {mb::Encoding::float32, mb::Encoding::int16, mb::Encoding::uint16,
                       mb::Encoding::int32, mb::Encoding::uint32})
    if (mb::to_string(e) == s) return e;
  return std::nullopt;
}

std::string hex4(unsigned a) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04X", a);
  return buf;
}

void load_dlt_profile(Loader& L, const toml::table& t, dlt::Version version, Profile& p) {
  const Scope s{t, "profile", line_of(t)};
  std::set<std::uint32_t> seen;
  const char* vname = version == dlt::Version::v2007 ? "DL/T 645-2007" : "DL/T 645-1997";
  const std::string di_form = version == dlt::Version::v2007 ? "8 hex digits" : "4 hex digits";
  if (auto dis = L.string_list(s, "dis")) {
    for (const auto& [text, line] : *dis) {
      const auto di = dlt::parse_di(version, text);
      if (!di || text.size() != 2 * dlt::di_size(version)) {
        L.error(line, "profile.dis",
                std::string("not a ") + vname + " DI (" + di_form + "), got " + quoted(text));
        continue;
      }
      auto read = catalogue_read(version, *di);
      if (!read) {
        L.error(line, "profile.dis",
                "DI " + text + " is not in the " + vname +
                    " catalogue: describe it in a [[profile.item]]");
        continue;
      }
      if (!seen.insert(*di).second) {
        L.error(line, "profile.dis", "DI " + text + " is listed twice");
        continue;
      }
      p.dlt_reads.push_back(std::move(*read));
    }
  }
  for (const toml::table* it : L.tables(t, "profile.item", "item")) {
    const Scope is{*it, "profile.item", line_of(*it)};
    L.check_keys(is, {"di", "bytes", "decimals", "signed", "unit", "quantity"});
    std::uint32_t di = 0;
    bool have_di = false;
    if (auto text = L.string(is, "di", true)) {
      const auto parsed = dlt::parse_di(version, *text);
      if (!parsed || text->size() != 2 * dlt::di_size(version))
        L.error(line_of(*it->get("di")), "profile.item.di",
                std::string("not a ") + vname + " DI (" + di_form + "), got " + quoted(*text));
      else if (!seen.insert(*parsed).second)
        L.error(line_of(*it->get("di")), "profile.item.di", "DI " + *text + " is listed twice");
      else
        di = *parsed, have_di = true;
    }
    const auto bytes = L.integer(is, "bytes", 1, 8, true);
    const auto decimals = L.integer(is, "decimals", 0, 16);
    const auto is_signed = L.boolean(is, "signed");
    const auto unit = L.string(is, "unit", false, true);
    const auto quantity = L.string(is, "quantity", true);
    if (bytes && decimals && *decimals > 2 * *bytes) {
      L.error(line_of(*it->get("decimals")), "profile.item.decimals",
              "more decimals than the " + std::to_string(2 * *bytes) + " digits of " +
                  std::to_string(*bytes) + " bytes");
      continue;
    }
    if (!have_di || !bytes || !quantity) continue;
    dlt::Field f;
    f.kind = dlt::FieldKind::number;
    f.size = static_cast<std::uint8_t>(*bytes);
    f.decimals = static_cast<std::int8_t>(decimals.value_or(0));
    f.is_signed = is_signed.value_or(false);
    f.quantity = *quantity;
    f.unit = unit.value_or("");
    if (const auto key = catalogue_key(version, *quantity)) f.key = *key;
    DltRead read;
    read.item = dlt::DataItem(version, di, "vendor item (profile " + p.name + ")", {f});
    p.dlt_reads.push_back(std::move(read));
  }
  if (!t.get("dis") && !t.get("item"))
    L.error(s.line, "profile.dis",
            "a DL/T 645 profile reads at least one DI (dis or [[profile.item]])");
}

void load_modbus_profile(Loader& L, const toml::table& t, Profile& p) {
  const Scope s{t, "profile", line_of(t)};
  mb::Model model;
  model.name = p.name;
  const mb::Model* base = nullptr;
  if (auto name = L.string(s, "model")) {
    base = mb::find_model(*name);
    if (!base)
      L.error(line_of(*t.get("model")), "profile.model",
              "unknown model " + quoted(*name) + " (" + models_list() + ")");
    else {
      model = *base;
      model.name = p.name;
      model.description = "profile " + p.name + " over model " + base->name;
    }
  }
  if (auto v = L.string(s, "word_order")) {
    if (const auto o = parse_word_order(*v))
      model.quirks.word_order = *o;
    else
      L.error(line_of(*t.get("word_order")), "profile.word_order",
              "expected ABCD (high word first) or CDAB (low word first), got " + quoted(*v));
  }
  if (auto v = L.integer(s, "request_gap_ms", 0, 10'000)) {
    model.quirks.recommended_request_gap_ms = static_cast<std::uint16_t>(*v);
    model.quirks.min_request_gap_ms = static_cast<std::uint16_t>(*v);
  }
  if (auto v = L.integer(s, "max_registers", 1, 125)) {
    model.quirks.plan_max_registers = static_cast<std::uint16_t>(*v);
    model.quirks.max_read_registers =
        std::max(model.quirks.max_read_registers, model.quirks.plan_max_registers);
  }
  if (auto v = L.integer(s, "max_gap", 0, 125))
    model.quirks.plan_max_gap = static_cast<std::uint16_t>(*v);

  // The selection, as (table, address) so it survives the copy below.
  std::vector<std::pair<mb::Table, std::uint16_t>> wanted;
  const auto quantities = L.string_list(s, "quantities");
  if (quantities && !base && t.get("model") == nullptr)
    L.error(line_of(*t.get("quantities")), "profile.quantities",
            "selects quantities of a model: set model too");
  if (quantities && base) {
    for (const auto& [q, line] : *quantities) {
      const mb::Register* r = mb::find_register(*base, q);
      if (!r || r->access == mb::Access::write)
        L.error(line, "profile.quantities",
                "model " + base->name + " has no readable register for " + quoted(q));
      else
        wanted.emplace_back(r->table, r->address);
    }
  }
  const auto user = L.tables(t, "profile.register", "register");
  if (base && !quantities && user.empty())
    for (const auto* r : measured_registers(*base)) wanted.emplace_back(r->table, r->address);

  for (const toml::table* rt : user) {
    const Scope rs{*rt, "profile.register", line_of(*rt)};
    L.check_keys(rs, {"address", "table", "type", "scale", "word_order", "unit", "quantity"});
    mb::Register r;
    r.access = mb::Access::read;
    r.description = "user register (profile " + p.name + ")";
    bool good = true;
    const auto address = L.integer(rs, "address", 0, 65535, true);
    if (auto v = L.string(rs, "table")) {
      if (*v == "input")
        r.table = mb::Table::input;
      else if (*v == "holding")
        r.table = mb::Table::holding;
      else {
        L.error(line_of(*rt->get("table")), "profile.register.table",
                "expected input or holding, got " + quoted(*v));
        good = false;
      }
    } else {
      r.table = mb::Table::holding;
    }
    if (auto v = L.string(rs, "type", true)) {
      if (const auto e = parse_encoding(*v))
        r.encoding = *e;
      else {
        L.error(line_of(*rt->get("type")), "profile.register.type",
                "expected float32, int16, uint16, int32 or uint32, got " + quoted(*v));
        good = false;
      }
    } else {
      good = false;
    }
    if (const toml::node* n = rt->get("scale")) {
      std::optional<protocol::Decimal> d;
      if (n->is_string())
        d = protocol::parse_decimal(n->as_string()->get());
      else if (n->is_integer())
        d = protocol::Decimal{n->as_integer()->get(), 0};
      if (!d || d->mantissa == 0) {
        L.error(line_of(*n), "profile.register.scale",
                n->is_floating_point()
                    ? "write the scale as a decimal string such as \"0.001\" (kept exact)"
                    : std::string("expected a non-zero decimal string such as \"0.001\", got ") +
                          (n->is_string() ? quoted(n->as_string()->get()) : type_name(*n)));
        good = false;
      } else {
        r.scale = *d;
      }
    }
    if (auto v = L.string(rs, "word_order")) {
      const auto o = parse_word_order(*v);
      if (!o) {
        L.error(line_of(*rt->get("word_order")), "profile.register.word_order",
                "expected ABCD (high word first) or CDAB (low word first), got " + quoted(*v));
        good = false;
      } else if (*o != model.quirks.word_order) {
        L.error(
            line_of(*rt->get("word_order")), "profile.register.word_order",
            "differs from the profile's word order (" +
                std::string(model.quirks.word_order == mb::WordOrder::high_word_first ? "ABCD"
                                                                                      : "CDAB") +
                "): a meter has one word order; set word_order on the [[profile]]");
        good = false;
      }
    }
    if (auto v = L.string(rs, "unit", false, true)) r.unit = *v;
    if (auto v = L.string(rs, "quantity", true))
      r.quantity = *v;
    else
      good = false;
    if (!address || !good) continue;
    r.address = static_cast<std::uint16_t>(*address);
    if (r.end() > 0x10000) {
      L.error(line_of(*rt->get("address")), "profile.register.address",
              "a " + std::string(mb::to_string(r.encoding)) + " at " + hex4(r.address) +
                  " runs past 0xFFFF");
      continue;
    }
    const auto clash =
        std::find_if(model.registers.begin(), model.registers.end(), [&](const mb::Register& o) {
          return o.table == r.table && o.address < r.end() && r.address < o.end();
        });
    if (clash != model.registers.end()) {
      L.error(
          line_of(*rt->get("address")), "profile.register.address",
          std::string(mb::to_string(r.table)) + " " + hex4(r.address) + " overlaps " +
              hex4(clash->address) + " (" + clash->quantity + ")" +
              (base && clash->description.rfind("user register", 0) != 0 ? " of model " + base->name
                                                                         : ""));
      continue;
    }
    const auto same = std::find_if(model.registers.begin(), model.registers.end(),
                                   [&](const mb::Register& o) { return o.quantity == r.quantity; });
    if (same != model.registers.end()) {
      L.error(line_of(*rt->get("quantity")), "profile.register.quantity",
              quoted(r.quantity) + " is already read from " +
                  std::string(mb::to_string(same->table)) + " " + hex4(same->address));
      continue;
    }
    wanted.emplace_back(r.table, r.address);
    model.registers.push_back(std::move(r));
  }
  if (!base && user.empty() && t.get("model") == nullptr)
    L.error(s.line, "profile.model",
            "a Modbus profile needs a model, [[profile.register]] tables, or both");
  std::stable_sort(model.registers.begin(), model.registers.end(),
                   [](const mb::Register& a, const mb::Register& b) {
                     return std::pair(a.table, a.address) < std::pair(b.table, b.address);
                   });
  p.model = std::make_shared<const mb::Model>(std::move(model));
  for (const auto& [table, address] : wanted)
    if (const mb::Register* r = mb::register_at(*p.model, table, address)) p.registers.push_back(r);
  apply_quirks(p);
}

}  // namespace

void load_profiles(Loader& L, const toml::table& root, ProfileSet& set) {
  const auto builtin = ProfileSet::builtin();
  std::map<std::string, int> lines;
  for (const toml::table* t : L.tables(root, "profile", "profile")) {
    const Scope s{*t, "profile", line_of(*t)};
    L.check_keys(s, {"name", "protocol", "dis", "item", "model", "quantities", "register",
                     "word_order", "request_gap_ms", "max_registers", "max_gap"});
    Profile p;
    const auto name = L.string(s, "name", true);
    if (name) {
      const int line = line_of(*t->get("name"));
      if (builtin->find(*name)) {
        L.error(line, "profile.name",
                quoted(*name) + " is a built-in profile: choose another name");
      } else if (const auto [it, fresh] = lines.emplace(*name, line); !fresh) {
        L.error(line, "profile.name",
                "duplicate profile name " + quoted(*name) + " (first defined on line " +
                    std::to_string(it->second) + ")");
      }
      p.name = *name;
    }
    const auto protocol = L.string(s, "protocol", true);
    if (!protocol) continue;
    const auto only = [&](std::initializer_list<const char*> keys, const char* what) {
      for (const char* k : keys)
        if (const toml::node* n = t->get(k))
          L.error(line_of(*n), std::string("profile.") + k, std::string("only for ") + what);
    };
    if (const auto v = dlt::parse_version(*protocol); v && *protocol != "modbus") {
      p.kind = Profile::Kind::dlt645;
      p.version = *v;
      only({"model", "quantities", "register", "word_order", "request_gap_ms", "max_registers",
            "max_gap"},
           "Modbus profiles");
      load_dlt_profile(L, *t, *v, p);
    } else if (*protocol == "modbus") {
      p.kind = Profile::Kind::modbus;
      only({"dis", "item"}, "DL/T 645 profiles");
      load_modbus_profile(L, *t, p);
    } else {
      L.error(line_of(*t->get("protocol")), "profile.protocol",
              "expected dlt645-2007, dlt645-1997 or modbus, got " + quoted(*protocol));
      continue;
    }
    if (name) set.add(std::move(p));
  }
}

}  // namespace meterd::firmware::detail
