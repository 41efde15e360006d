#include "simulator/config.hpp"

#include <algorithm>
#include <set>

#include <toml++/toml.h>

#include "protocol/dlt645/requests.hpp"
#include "protocol/modbus_codec/registers.hpp"

namespace meterd::simulator {

namespace dlt = protocol::dlt645;
namespace mb = protocol::modbus;

// ---- config -------------------------------------------------------------------

namespace {

std::string where(const std::filesystem::path& file, const toml::node& n, const std::string& key) {
  return file.string() + ":" + std::to_string(n.source().begin.line) + ": " + key;
}

template <typename T>
T get(const std::filesystem::path& file, const toml::table& t, const std::string& key, T fallback) {
  const toml::node* n = t.get(key);
  if (!n) return fallback;
  if constexpr (std::is_same_v<T, bool>) {
    if (!n->is_boolean()) throw ConfigError(where(file, *n, key) + ": expected true or false");
    return n->as_boolean()->get();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!n->is_string()) throw ConfigError(where(file, *n, key) + ": expected a string");
    return n->as_string()->get();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!n->is_number()) throw ConfigError(where(file, *n, key) + ": expected a number");
    return static_cast<T>(n->value<double>().value());
  } else {
    if (!n->is_integer()) throw ConfigError(where(file, *n, key) + ": expected an integer");
    const auto v = n->as_integer()->get();
    if (v < 0 && std::is_unsigned_v<T>)
      throw ConfigError(where(file, *n, key) + ": must not be negative");
    return static_cast<T>(v);
  }
}

void check_keys(const std::filesystem::path& file, const toml::table& t,
                std::initializer_list<const char*> known) {
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    if (std::none_of(known.begin(), known.end(), [&](const char* s) { return key == s; }))
      throw ConfigError(where(file, v, key) + ": unknown key");
  }
}

// The [area] table, read as written; validate() checks it against the meters.
AreaSpec load_area(const std::filesystem::path& file, const toml::node& n) {
  const auto* t = n.as_table();
  if (!t) throw ConfigError(where(file, n, "area") + ": expected an [area] table");
  check_keys(file, *t, {"summary", "households", "loss_percent"});
  AreaSpec a;
  a.summary = get<std::string>(file, *t, "summary", "");
  if (a.summary.empty())
    throw ConfigError(where(file, n, "area.summary") + ": required: the summary meter's id");
  const toml::node* h = t->get("households");
  if (!h) throw ConfigError(where(file, n, "area.households") + ": required: a list of meter ids");
  const auto* list = h->as_array();
  if (!list) throw ConfigError(where(file, *h, "area.households") + ": expected a list of ids");
  for (const auto& e : *list) {
    if (!e.is_string()) throw ConfigError(where(file, e, "area.households") + ": expected ids");
    a.households.push_back(e.as_string()->get());
  }
  if (const toml::node* l = t->get("loss_percent")) {
    if (l->is_string()) {
      a.loss_percent = l->as_string()->get();
    } else if (l->is_integer()) {
      a.loss_percent = std::to_string(l->as_integer()->get());
    } else if (l->is_floating_point()) {  // 3.5 as a number: its shortest decimal form
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4f", l->as_floating_point()->get());
      a.loss_percent = buf;
      while (a.loss_percent.back() == '0') a.loss_percent.pop_back();
      if (a.loss_percent.back() == '.') a.loss_percent.pop_back();
    } else {
      throw ConfigError(where(file, *l, "area.loss_percent") + ": expected a percentage (\"3.5\")");
    }
  }
  return a;
}

}  // namespace

std::optional<std::int64_t> parse_loss_percent(const std::string& text) {
  std::int64_t whole = 0, frac = 0;
  int digits = 0, decimals = -1;  // -1: no point yet
  for (char ch : text) {
    if (ch == '.' && decimals < 0 && digits > 0) {
      decimals = 0;
    } else if (ch >= '0' && ch <= '9') {
      if (decimals < 0) {
        if (++digits > 3) return std::nullopt;
        whole = whole * 10 + (ch - '0');
      } else {
        if (++decimals > 4) return std::nullopt;
        frac = frac * 10 + (ch - '0');
      }
    } else {
      return std::nullopt;
    }
  }
  if (digits == 0 || decimals == 0) return std::nullopt;
  for (int k = std::max(decimals, 0); k < 4; ++k) frac *= 10;
  const std::int64_t v = whole * 10'000 + frac;  // percent * 1e4 == ppm
  if (v >= 500'000) return std::nullopt;
  return v;
}

FleetConfig load_config(const std::filesystem::path& file) {
  toml::table root;
  try {
    root = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw ConfigError(file.string() + ":" + std::to_string(e.source().begin.line) + ": " +
                      std::string(e.description()));
  }
  check_keys(file, root,
             {"seed", "static", "wire_timing", "utc_offset_minutes", "run_dir", "bus", "tcp",
              "meter", "area"});
  FleetConfig c;
  c.seed = get<std::uint64_t>(file, root, "seed", 1);
  c.static_values = get<bool>(file, root, "static", false);
  c.wire_timing = get<bool>(file, root, "wire_timing", true);
  c.utc_offset_minutes = get<int>(file, root, "utc_offset_minutes", 0);
  c.run_dir = get<std::string>(file, root, "run_dir", "");
  const auto each = [&](const char* name, auto&& f) {
    const toml::node* n = root.get(name);
    if (!n) return;
    const auto* arr = n->as_array();
    if (!arr) throw ConfigError(where(file, *n, name) + ": expected [[" + name + "]] tables");
    for (const auto& e : *arr) {
      const auto* t = e.as_table();
      if (!t) throw ConfigError(where(file, e, name) + ": expected a table");
      f(*t);
    }
  };
  each("bus", [&](const toml::table& t) {
    check_keys(file, t, {"name", "baud", "parity", "data_bits", "stop_bits", "echo"});
    BusSpec b;
    b.name = get<std::string>(file, t, "name", "");
    b.line.baud = get<unsigned>(file, t, "baud", 2400);
    const auto parity = get<std::string>(file, t, "parity", "even");
    if (!drivers::parse_parity(parity, b.line.parity))
      throw ConfigError(where(file, *t.get("parity"), "parity") + ": expected none, even or odd");
    b.line.data_bits = get<unsigned>(file, t, "data_bits", 8);
    b.line.stop_bits = get<unsigned>(file, t, "stop_bits", 1);
    b.echo = get<bool>(file, t, "echo", false);
    if (b.line.data_bits < 5 || b.line.data_bits > 8)
      throw ConfigError(where(file, *t.get("data_bits"), "data_bits") + ": expected 5..8");
    if (b.line.stop_bits != 1 && b.line.stop_bits != 2)
      throw ConfigError(where(file, *t.get("stop_bits"), "stop_bits") + ": expected 1 or 2");
    if (!drivers::is_standard_baud(b.line.baud))
      throw ConfigError(where(file, *t.get("baud"), "baud") +
                        ": not a standard rate (300..115200)");
    c.buses.push_back(b);
  });
  each("tcp", [&](const toml::table& t) {
    check_keys(file, t, {"name", "port"});
    TcpSpec s;
    s.name = get<std::string>(file, t, "name", "");
    s.port = get<unsigned>(file, t, "port", 0);
    if (s.port > 65535)
      throw ConfigError(where(file, *t.get("port"), "port") + ": expected 0..65535");
    c.tcp.push_back(s);
  });
  each("meter", [&](const toml::table& t) {
    check_keys(file, t,
               {"id", "protocol", "bus", "address", "model", "tariffs", "phases", "turnaround_ms",
                "drift_ppm", "password", "seed", "power_up_ms"});
    MeterSpec m;
    m.id = get<std::string>(file, t, "id", "");
    m.protocol = get<std::string>(file, t, "protocol", "dlt645-2007");
    m.bus = get<std::string>(file, t, "bus", "");
    const toml::node* a = t.get("address");
    if (a && a->is_integer())
      m.address = std::to_string(a->as_integer()->get());
    else
      m.address = get<std::string>(file, t, "address", "");
    m.model = get<std::string>(file, t, "model", "");
    m.tariffs = get<unsigned>(file, t, "tariffs", 4);
    m.phases = get<unsigned>(file, t, "phases", 3);
    m.turnaround_ms = get<unsigned>(file, t, "turnaround_ms", 0);
    m.drift_ppm = get<double>(file, t, "drift_ppm", 0.0);
    m.password = get<std::string>(file, t, "password", "02000000");
    m.seed = get<std::uint64_t>(file, t, "seed", 0);
    m.power_up_ms = get<unsigned>(file, t, "power_up_ms", 2000);
    if (m.power_up_ms > 60000)
      throw ConfigError(where(file, *t.get("power_up_ms"), "power_up_ms") + ": expected 0..60000");
    if (m.turnaround_ms > 500)
      throw ConfigError(where(file, *t.get("turnaround_ms"), "turnaround_ms") +
                        ": expected 0..500");
    if (m.tariffs < 1 || m.tariffs > 63)
      throw ConfigError(where(file, *t.get("tariffs"), "tariffs") + ": expected 1..63");
    if (m.phases != 1 && m.phases != 3)
      throw ConfigError(where(file, *t.get("phases"), "phases") + ": expected 1 or 3");
    c.meters.push_back(m);
  });
  if (const toml::node* n = root.get("area")) c.area = load_area(file, *n);
  try {
    validate(c);
  } catch (const ConfigError& e) {
    // An [area] error ("area.KEY: ...") points at its key's line.
    const std::string what = e.what();
    const toml::node* area = root.get("area");
    if (area && area->is_table() && what.rfind("area.", 0) == 0) {
      const std::string key = what.substr(5, what.find(':') - 5);
      const toml::node* at = area->as_table()->get(key);
      throw ConfigError(where(file, at ? *at : *area, "") + what);
    }
    throw ConfigError(file.string() + ": " + what);
  }
  return c;
}

FleetConfig quick_config(const QuickCounts& n) {
  FleetConfig c;
  const unsigned buses = std::max(1u, n.buses);
  for (unsigned b = 0; b < buses; ++b) {
    BusSpec s;
    s.name = "rs485-" + std::to_string(b + 1);
    s.line.baud = n.baud;
    s.line.parity = drivers::Parity::even;
    c.buses.push_back(s);
  }
  unsigned index = 0;
  std::vector<unsigned> next_unit(buses, 1);
  const auto add = [&](const char* protocol, unsigned count, const char* model) {
    for (unsigned k = 0; k < count; ++k, ++index) {
      MeterSpec m;
      char id[16];
      std::snprintf(id, sizeof id, "m%04u", index + 1);
      m.id = id;
      m.protocol = protocol;
      const unsigned bus = index % buses;
      m.bus = c.buses[bus].name;
      if (m.protocol == "modbus") {
        m.model = model;
        m.address = std::to_string(next_unit[bus]++);
      } else {
        char addr[16];
        std::snprintf(addr, sizeof addr, "%012u", index + 1);
        m.address = addr;
        m.phases = index % 4 == 3 ? 1 : 3;
      }
      c.meters.push_back(m);
    }
  };
  add("dlt645-2007", n.dlt2007, "");
  add("dlt645-1997", n.dlt1997, "");
  static constexpr const char* rtu_models[] = {"sdm630", "sdm120", "dtsu666", "generic"};
  for (unsigned k = 0; k < n.modbus_rtu; ++k) add("modbus", 1, rtu_models[k % 4]);
  if (n.modbus_tcp) {
    const unsigned converters = (n.modbus_tcp + 31) / 32;
    for (unsigned t = 0; t < converters; ++t) c.tcp.push_back({"tcp-" + std::to_string(t + 1), 0});
    for (unsigned k = 0; k < n.modbus_tcp; ++k, ++index) {
      MeterSpec m;
      char id[16];
      std::snprintf(id, sizeof id, "m%04u", index + 1);
      m.id = id;
      m.protocol = "modbus";
      m.bus = c.tcp[k / 32].name;
      m.model = rtu_models[k % 4];
      m.address = std::to_string(k % 32 + 1);
      c.meters.push_back(m);
    }
  }
  if (n.area) {
    // After the quick fleet, round-robin on its buses; ids and addresses
    // (88xxxxxxxxxx) stay clear of the quick fleet's m0001.../00000000000N.
    const unsigned serial = n.dlt2007 + n.dlt1997 + n.modbus_rtu;
    AreaSpec a;
    a.summary = "area-s";
    a.loss_percent = n.area_loss_percent;
    for (unsigned k = 0; k <= n.area; ++k) {
      MeterSpec m;
      m.id = k == 0 ? a.summary : "area-h" + std::to_string(k);
      m.protocol = "dlt645-2007";
      m.bus = c.buses[(serial + k) % buses].name;
      char addr[16];
      std::snprintf(addr, sizeof addr, "88%010u", k);
      m.address = addr;
      m.phases = k == 0 ? 3 : 1;  // a three-phase transformer meter, single-phase homes
      if (k > 0) a.households.push_back(m.id);
      c.meters.push_back(m);
    }
    c.area = a;
  }
  try {
    validate(c);
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    if (what.rfind("area.loss_percent", 0) == 0)
      throw ConfigError("--area-loss-percent" + what.substr(what.find(':')));
    throw;
  }
  return c;
}

namespace {

void validate_area(const FleetConfig& c) {
  const AreaSpec& a = *c.area;
  const auto find = [&](const std::string& id) -> const MeterSpec* {
    for (const auto& m : c.meters)
      if (m.id == id) return &m;
    return nullptr;
  };
  const MeterSpec* s = find(a.summary);
  if (!s) throw ConfigError("area.summary: no meter '" + a.summary + "' in this fleet");
  if (s->protocol != "dlt645-2007")
    throw ConfigError("area.summary: '" + a.summary + "' is " + s->protocol +
                      "; the summary must be a dlt645-2007 meter");
  if (a.households.empty()) throw ConfigError("area.households: the area has no households");
  std::set<std::string> seen;
  for (const auto& h : a.households) {
    if (h == a.summary)
      throw ConfigError("area.households: '" + h + "' is the summary meter, not a household");
    if (!find(h)) throw ConfigError("area.households: no meter '" + h + "' in this fleet");
    if (!seen.insert(h).second) throw ConfigError("area.households: '" + h + "' listed twice");
  }
  if (!parse_loss_percent(a.loss_percent))
    throw ConfigError("area.loss_percent: '" + a.loss_percent +
                      "' is not a percentage in [0, 50) with up to 4 decimals (\"3.5\")");
}

}  // namespace

void validate(const FleetConfig& c) {
  std::set<std::string> names, ids;
  for (const auto& b : c.buses)
    if (b.name.empty() || !names.insert(b.name).second)
      throw ConfigError("bus name '" + b.name + "' is empty or used twice");
  for (const auto& t : c.tcp)
    if (t.name.empty() || !names.insert(t.name).second)
      throw ConfigError("tcp name '" + t.name + "' is empty or used twice");
  std::set<std::pair<std::string, std::string>> addresses;
  for (const auto& m : c.meters) {
    if (m.id.empty() || !ids.insert(m.id).second)
      throw ConfigError("meter id '" + m.id + "' is empty or used twice");
    const bool on_bus = std::any_of(c.buses.begin(), c.buses.end(),
                                    [&](const BusSpec& b) { return b.name == m.bus; });
    const bool on_tcp =
        std::any_of(c.tcp.begin(), c.tcp.end(), [&](const TcpSpec& t) { return t.name == m.bus; });
    if (!on_bus && !on_tcp)
      throw ConfigError("meter " + m.id + ": bus '" + m.bus + "' is not defined");
    if (m.protocol == "modbus") {
      if (!mb::find_model(m.model))
        throw ConfigError("meter " + m.id + ": model '" + m.model +
                          "' (sdm630, sdm120, dtsu666, dtsu666h, generic)");
      unsigned unit = 0;
      try {
        unit = static_cast<unsigned>(std::stoul(m.address));
      } catch (...) {
      }
      if (unit < 1 || unit > 247)
        throw ConfigError("meter " + m.id + ": Modbus unit id must be 1..247");
    } else if (m.protocol == "dlt645-2007" || m.protocol == "dlt645-1997") {
      if (on_tcp)
        throw ConfigError("meter " + m.id + ": DL/T 645 meters sit on RS-485 buses, not tcp");
      const auto a = dlt::Address::parse(m.address);
      if (!a || a->has_wildcard() || a->is_broadcast())
        throw ConfigError("meter " + m.id + ": address must be up to 12 digits, not 999999999999");
      if (!dlt::parse_password(m.password))
        throw ConfigError("meter " + m.id + ": password must be 8 hex digits");
    } else {
      throw ConfigError("meter " + m.id + ": protocol '" + m.protocol +
                        "' (dlt645-2007, dlt645-1997, modbus)");
    }
    const std::string key = m.protocol == "modbus"
                                ? "modbus:" + std::to_string(std::stoul(m.address))
                                : "dlt:" + dlt::Address::parse(m.address)->to_string();
    if (!addresses.insert({m.bus, key}).second)
      throw ConfigError("meter " + m.id + ": address " + m.address + " used twice on " + m.bus);
  }
  if (c.area) validate_area(c);
}

}  // namespace meterd::simulator
