// meterctl's direct mode (see direct.hpp): probe, modbus and scan on a port
// meterctl opens itself.
#include "firmware/meterctl/direct.hpp"

#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "drivers/bus.hpp"
#include "drivers/dlt645_master.hpp"
#include "drivers/modbus_master.hpp"
#include "drivers/serial_port.hpp"
#include "firmware/scan.hpp"
#include "protocol/decimal.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/values.hpp"

namespace meterd::meterctl {

namespace dlt = protocol::dlt645;
using drivers::Outcome;

class DirectCommands {
 public:
  CLI::App* app = nullptr;
  CLI::App* probe = nullptr;
  CLI::App* modbus = nullptr;
  CLI::App* scan = nullptr;
  bool own_scan = false;  // false: the daemon's `scan BUS`, direct only with --port/--host
  // Global options.
  std::string port, parity = "even", host;
  unsigned baud = 2400, stop_bits = 1, tcp_port = 502, timeout_ms = 1000, retries = 1;
  bool json = false;
  // probe
  std::string address, di_text, protocol_text;
  // modbus
  unsigned unit = 0;
  std::vector<std::string> reads;
  // scan
  std::string scan_protocol = "dlt645", bus_name;
  unsigned first = 1, last = 247;
  bool with_1997 = false;
};

namespace {

// Ends a command: the message (if any) on stderr, and the exit code.
struct Exit {
  int code;
  std::string message;
};
[[noreturn]] void usage(std::string m) { throw Exit{2, std::move(m)}; }
[[noreturn]] void failed(std::string m) { throw Exit{1, std::move(m)}; }

bool wants_json(const DirectCommands& c) {
  if (c.json) return true;
  const auto* global = c.app->get_option_no_throw("--json");
  return global && global->count() > 0;
}

std::string shortest(float f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  // The shortest text that reads back as exactly this float.
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, f);
  return std::string(buf, r.ptr);
}

std::string hex4(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04X", v & 0xFFFF);
  return buf;
}

// The port, opened and taken as meterd takes it, or a TCP converter.
struct OpenBus {
  drivers::BusConfig config;
  std::unique_ptr<drivers::SerialLine> line;
  std::unique_ptr<drivers::ModbusMaster> modbus;
  OpenBus() = default;
  OpenBus(const OpenBus&) = delete;
  OpenBus& operator=(const OpenBus&) = delete;
  ~OpenBus() {
    modbus.reset();
    if (line) drivers::release_exclusive(line->fd());
  }
};

[[noreturn]] void held(const std::string& port, const std::error_code& ec) {
  throw Exit{4, port + " is held by another process (" + ec.message() +
                    "): stop meterd first, or go through it (meterctl scan BUS)"};
}

std::unique_ptr<OpenBus> open_bus(const DirectCommands& c, bool modbus) {
  auto bus = std::make_unique<OpenBus>();
  auto& cfg = bus->config;
  cfg.limits.response_timeout = std::chrono::milliseconds(c.timeout_ms);
  cfg.limits.byte_timeout = std::chrono::milliseconds(std::min(c.timeout_ms, 500u));
  cfg.retries = c.retries;
  if (!c.host.empty()) {
    cfg.name = c.bus_name.empty() ? "tcp-1" : c.bus_name;
    cfg.tcp_host = c.host;
    cfg.tcp_port = static_cast<std::uint16_t>(c.tcp_port);
    bus->modbus = drivers::make_modbus_tcp(c.host, cfg.tcp_port);
    return bus;
  }
  cfg.device = c.port;
  if (c.bus_name.empty()) {
    const auto slash = c.port.rfind('/');
    cfg.name = slash == std::string::npos ? c.port : c.port.substr(slash + 1);
  } else {
    cfg.name = c.bus_name;
  }
  cfg.line.baud = c.baud;
  cfg.line.stop_bits = c.stop_bits;
  if (!drivers::parse_parity(c.parity, cfg.line.parity))
    usage("--parity: expected none, even or odd, got '" + c.parity + "'");
  if (!drivers::is_standard_baud(c.baud))
    usage("--baud: expected a standard rate (300..115200), got " + std::to_string(c.baud));
  std::error_code ec;
  drivers::Fd fd = drivers::open_serial(c.port, cfg.line, ec);
  // EBUSY: the tty is exclusive (TIOCEXCL) to the process that holds it.
  if (ec == std::errc::device_or_resource_busy) held(c.port, ec);
  if (ec) failed("cannot open " + c.port + ": " + ec.message());
  if ((ec = drivers::lock_exclusive(fd.get()))) {
    if (ec == std::errc::resource_unavailable_try_again || ec == std::errc::device_or_resource_busy)
      held(c.port, ec);
    failed("cannot lock " + c.port + ": " + ec.message());
  }
  bus->line = std::make_unique<drivers::SerialLine>(std::move(fd), cfg.line);
  if (modbus) bus->modbus = drivers::make_modbus_rtu(*bus->line);
  return bus;
}

void need_port(const DirectCommands& c, const char* what) {
  if (!c.port.empty() && !c.host.empty()) usage("--port and --host: give one of them");
  if (c.port.empty() && c.host.empty())
    usage(std::string(what) + ": needs --port DEVICE (or --host H --tcp-port N for Modbus TCP)");
}

// ---- probe -----------------------------------------------------------------------

int run_probe(DirectCommands& c) {
  need_port(c, "probe");
  if (!c.host.empty()) usage("probe: DL/T 645 needs a serial port (--port), not --host");
  const auto address = dlt::Address::parse(c.address);
  if (!address)
    usage("--address: expected up to 12 digits (AA allowed as wildcard pairs), got '" + c.address +
          "'");
  dlt::Version version = c.di_text.size() == 4 ? dlt::Version::v1997 : dlt::Version::v2007;
  if (!c.protocol_text.empty()) {
    const auto v = dlt::parse_version(c.protocol_text);
    if (!v) usage("--protocol: expected dlt645-2007 or dlt645-1997, got '" + c.protocol_text + "'");
    version = *v;
  }
  const auto di = dlt::parse_di(version, c.di_text);
  if (!di)
    usage("--di: expected " + std::to_string(dlt::di_size(version) * 2) + " hex digits, got '" +
          c.di_text + "'");
  const bool json = wants_json(c);
  auto bus = open_bus(c, false);
  const auto r = drivers::dlt645_read(*bus->line, version, *address, *di,
                                      drivers::dlt645_options(bus->config));
  const std::string di_text = dlt::di_to_string(version, *di);
  nlohmann::json out = {{"address", address->to_string()},
                        {"di", di_text},
                        {"protocol", std::string(dlt::to_string(version))}};
  if (r.outcome != Outcome::ok) {
    const std::string why = r.outcome == Outcome::meter_error
                                ? address->to_string() + " answered " + r.detail
                                : "no answer from " + address->to_string() + " (" +
                                      drivers::to_string(r.outcome) + ": " + r.detail + ")";
    if (json) {
      out["ok"] = false;
      out["outcome"] = drivers::to_string(r.outcome);
      out["error"] = why;
      std::cout << out.dump() << "\n";
      return 1;
    }
    failed(why);
  }
  out["ok"] = true;
  out["data"] = dlt::to_hex(r.data);
  const auto item = dlt::lookup(version, *di);
  nlohmann::json values = nlohmann::json::array();
  std::string text = address->to_string() + "  " + di_text;
  if (item) {
    out["name"] = item->name;
    text += "  " + item->name + "\n";
    const auto decoded = dlt::decode_values(*item, r.data);
    if (decoded.error) {
      out["problem"] = decoded.message;
      text += "  data " + dlt::to_hex(r.data, true) + " (" + decoded.message + ")\n";
    }
    for (const auto& v : decoded.values) {
      std::string value;
      if (const auto* d = std::get_if<protocol::Decimal>(&v.value))
        value = protocol::to_string(*d);
      else if (const auto* s = std::get_if<std::string>(&v.value))
        value = *s;
      values.push_back({{"quantity", v.quantity},
                        {"value", value.empty() ? nlohmann::json() : nlohmann::json(value)},
                        {"unit", v.unit}});
      text += "  " + v.quantity + " = " + (value.empty() ? "(absent)" : value) +
              (v.unit.empty() ? "" : " " + v.unit) + "\n";
    }
    for (const auto& p : decoded.problems) text += "  " + p + "\n";
  } else {
    text += "  (not in the catalogue)\n  data " + dlt::to_hex(r.data, true) + "\n";
  }
  out["values"] = values;
  if (json)
    std::cout << out.dump() << "\n";
  else
    std::cout << text;
  return 0;
}

// ---- modbus ----------------------------------------------------------------------

struct ReadSpec {
  std::uint8_t function = 3;
  std::uint16_t address = 0;
  std::uint16_t count = 1;
  std::string type;
  std::string text;
};

ReadSpec parse_read(const std::string& text) {
  const auto bad = [&](const std::string& why) -> ReadSpec {
    usage("--read: expected function:address:count:type (3:0x0000:2:float), got '" + text +
          "': " + why);
  };
  std::vector<std::string> parts;
  std::size_t from = 0;
  for (;;) {
    const auto colon = text.find(':', from);
    parts.push_back(text.substr(from, colon - from));
    if (colon == std::string::npos) break;
    from = colon + 1;
  }
  if (parts.size() != 4) return bad("4 parts");
  const auto number = [&](const std::string& s, unsigned long max, const char* what) {
    char* end = nullptr;
    errno = 0;
    const unsigned long v = s.empty() ? 0 : std::strtoul(s.c_str(), &end, 0);
    if (s.empty() || *end != '\0' || errno != 0 || v > max) bad(what);
    return v;
  };
  ReadSpec r;
  r.text = text;
  const auto fn = number(parts[0], 255, "function 3 or 4");
  if (fn != 3 && fn != 4) bad("function 3 or 4");
  r.function = static_cast<std::uint8_t>(fn);
  r.address = static_cast<std::uint16_t>(number(parts[1], 0xFFFF, "address 0..0xFFFF"));
  r.count = static_cast<std::uint16_t>(number(parts[2], 125, "count 1..125"));
  if (r.count == 0) bad("count 1..125");
  r.type = parts[3];
  static const std::vector<std::string> types = {"u16", "s16", "u32", "s32", "float", "hex"};
  if (std::find(types.begin(), types.end(), r.type) == types.end())
    bad("type u16, s16, u32, s32, float or hex");
  const bool wide = r.type == "u32" || r.type == "s32" || r.type == "float";
  if (wide && r.count % 2 != 0) bad(r.type + " takes two registers a value: an even count");
  if (std::uint32_t{r.address} + r.count > 0x10000u) bad("past register 0xFFFF");
  return r;
}

// Each value as text (exactly as decoded) and as JSON.
void decode_words(const ReadSpec& spec, const std::vector<std::uint16_t>& w,
                  std::vector<std::pair<std::uint16_t, std::string>>& text, nlohmann::json& json) {
  const bool wide = spec.type == "u32" || spec.type == "s32" || spec.type == "float";
  const std::size_t step = wide ? 2 : 1;
  for (std::size_t i = 0; i + step <= w.size(); i += step) {
    const auto at = static_cast<std::uint16_t>(spec.address + i);
    const std::uint32_t u32 = wide ? (static_cast<std::uint32_t>(w[i]) << 16 | w[i + 1]) : w[i];
    std::string s;
    nlohmann::json j;
    if (spec.type == "u16" || spec.type == "u32") {
      s = std::to_string(u32);
      j = u32;
    } else if (spec.type == "s16") {
      const auto v = static_cast<std::int16_t>(w[i]);
      s = std::to_string(v);
      j = v;
    } else if (spec.type == "s32") {
      const auto v = static_cast<std::int32_t>(u32);
      s = std::to_string(v);
      j = v;
    } else if (spec.type == "float") {
      const float f = std::bit_cast<float>(u32);
      s = shortest(f);
      // The shortest text that reads back as this float, as a JSON number
      // (a float widened to double would print 230.1999969482422).
      j = std::isfinite(f) ? nlohmann::json::parse(s) : nlohmann::json(s);
    } else {
      s = hex4(w[i]);
      j = s;
    }
    text.emplace_back(at, s);
    json.push_back(j);
  }
}

int run_modbus(DirectCommands& c) {
  need_port(c, "modbus");
  if (c.unit < 1 || c.unit > 247) usage("--unit: expected 1..247");
  if (c.reads.empty()) usage("modbus: needs --read function:address:count:type");
  std::vector<ReadSpec> specs;
  for (const auto& r : c.reads) specs.push_back(parse_read(r));
  const bool json = wants_json(c);
  auto bus = open_bus(c, true);
  auto options = drivers::modbus_options(bus->config);
  nlohmann::json out = {{"ok", true}, {"unit", c.unit}, {"reads", nlohmann::json::array()}};
  std::string text;
  int rc = 0;
  for (const auto& spec : specs) {
    const auto r = bus->modbus->read(static_cast<std::uint8_t>(c.unit), spec.function, spec.address,
                                     spec.count, options);
    nlohmann::json one = {{"function", spec.function},
                          {"address", spec.address},
                          {"count", spec.count},
                          {"type", spec.type},
                          {"outcome", drivers::to_string(r.outcome)}};
    if (r.outcome != Outcome::ok) {
      const std::string why =
          r.outcome == Outcome::meter_error
              ? "unit " + std::to_string(c.unit) + " answered exception " +
                    hex4(r.exception).substr(4) + " to " + spec.text + " (" + r.detail + ")"
              : "no answer from unit " + std::to_string(c.unit) + " to " + spec.text + " (" +
                    drivers::to_string(r.outcome) + ": " + r.detail + ")";
      one["error"] = why;
      if (r.outcome == Outcome::meter_error) one["exception"] = r.exception;
      out["ok"] = false;
      out["reads"].push_back(one);
      rc = 1;
      if (!json) std::cerr << "meterctl: " << why << "\n";
      continue;
    }
    std::vector<std::pair<std::uint16_t, std::string>> values;
    nlohmann::json jv = nlohmann::json::array();
    decode_words(spec, r.words, values, jv);
    one["values"] = jv;
    one["words"] = r.words;
    out["reads"].push_back(one);
    for (const auto& [at, v] : values) text += hex4(at) + "  " + v + "\n";
  }
  if (json)
    std::cout << out.dump() << "\n";
  else
    std::cout << text;
  return rc;
}

// ---- scan ------------------------------------------------------------------------

void draw_bar(const firmware::ScanProgress& p) {
  constexpr int width = 30;
  const double share = p.total ? static_cast<double>(p.done) / static_cast<double>(p.total) : 1;
  const int filled = static_cast<int>(share * width);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar += std::string(static_cast<std::size_t>(width - filled), '-');
  char line[160];
  std::snprintf(line, sizeof line, "\r[%s] %3d%%  %zu found  %zu probes", bar.c_str(),
                static_cast<int>(share * 100), p.found, p.probes);
  std::cerr << line << std::flush;
}

int run_scan(DirectCommands& c) {
  need_port(c, "scan");
  if (c.scan_protocol != "dlt645" && c.scan_protocol != "modbus")
    usage("--protocol: expected dlt645 or modbus, got '" + c.scan_protocol + "'");
  if (c.scan_protocol == "dlt645" && !c.host.empty())
    usage("scan: DL/T 645 needs a serial port (--port); --host is for --protocol modbus");
  if (c.first < 1 || c.last > 247 || c.first > c.last)
    usage("--first/--last: expected 1 <= first <= last <= 247");
  const bool json = wants_json(c);
  firmware::ScanRequest req;
  req.protocol = c.scan_protocol;
  req.first_unit = c.first;
  req.last_unit = c.last;
  req.search_1997 = c.with_1997;
  auto bus = open_bus(c, c.scan_protocol == "modbus");
  drivers::BusPort port;
  port.config = &bus->config;
  port.serial = bus->line.get();
  port.modbus = bus->modbus.get();
  firmware::Scanner scanner(req, bus->config);
  const bool bar = !json && ::isatty(2);
  const auto t0 = std::chrono::steady_clock::now();
  while (!scanner.finished()) {
    scanner.step(port);
    if (bar) draw_bar(scanner.progress());
  }
  if (bar) std::cerr << "\r\033[K" << std::flush;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto& found = scanner.found();
  const auto p = scanner.progress();
  const std::string toml = firmware::meter_config_toml(found, bus->config.name);
  const bool ok = scanner.error().empty() && !found.empty();
  if (json) {
    nlohmann::json out = {{"ok", ok},
                          {"bus", bus->config.name},
                          {"protocol", c.scan_protocol},
                          {"found", nlohmann::json::array()},
                          {"probes", p.probes},
                          {"seconds", std::round(seconds * 1000) / 1000},
                          {"warnings", scanner.warnings()},
                          {"config", toml}};
    for (const auto& m : found) out["found"].push_back(firmware::to_json(m));
    if (!scanner.error().empty()) out["error"] = scanner.error();
    std::cout << out.dump() << "\n";
    return ok ? 0 : 1;
  }
  for (const auto& w : scanner.warnings()) std::cerr << "meterctl: warning: " << w << "\n";
  if (!scanner.error().empty()) failed("scan: " + scanner.error());
  char summary[160];
  std::snprintf(summary, sizeof summary, "%zu meter%s found in %.1f s (%zu probes)\n", found.size(),
                found.size() == 1 ? "" : "s", seconds, p.probes);
  if (found.empty()) failed(std::string("scan: no meter answered; ") + summary);
  std::size_t wa = 7, wp = 8, wf = 7;
  for (const auto& m : found) {
    wa = std::max(wa, m.address.size());
    wp = std::max(wp, m.protocol.size());
    wf = std::max(wf, m.profile.size());
  }
  const auto pad = [](const std::string& s, std::size_t w) {
    return s + std::string(w - std::min(w, s.size()) + 2, ' ');
  };
  std::cout << pad("ADDRESS", wa) << pad("PROTOCOL", wp) << pad("PROFILE", wf) << "NOTE\n";
  for (const auto& m : found)
    std::cout << pad(m.address, wa) << pad(m.protocol, wp)
              << pad(m.profile.empty() ? "-" : m.profile, wf) << m.note << "\n";
  std::cout << "\n# " << summary << "# ready to paste into meterd.toml:\n\n" << toml;
  return 0;
}

}  // namespace

std::shared_ptr<DirectCommands> add_direct_commands(CLI::App& app) {
  auto c = std::make_shared<DirectCommands>();
  c->app = &app;
  app.add_option("--port", c->port, "Direct mode: the serial port (meterd must not hold it)");
  app.add_option("--baud", c->baud, "Direct mode: baud rate (default 2400)");
  app.add_option("--parity", c->parity, "Direct mode: none | even | odd (default even)");
  app.add_option("--stop-bits", c->stop_bits, "Direct mode: 1 or 2 (default 1)");
  app.add_option("--host", c->host, "Direct mode: a Modbus TCP converter's host");
  app.add_option("--tcp-port", c->tcp_port, "Direct mode: its TCP port (default 502)");
  app.add_option("--response-timeout-ms", c->timeout_ms,
                 "Direct mode: response timeout in ms (default 1000; the scan listens this long "
                 "after every probe)");
  app.add_option("--retries", c->retries, "Direct mode: extra attempts of a read (default 1)");

  c->probe = app.add_subcommand("probe", "Direct mode: read one DI from a DL/T 645 meter");
  c->probe
      ->add_option("--address", c->address, "Meter address, 12 digits (AA wildcard pairs allowed)")
      ->required();
  c->probe->add_option("--di", c->di_text, "Data identifier: 8 hex digits (2007) or 4 (1997)")
      ->required();
  c->probe->add_option("--protocol", c->protocol_text,
                       "dlt645-2007 or dlt645-1997 (default: from the DI's length)");
  c->probe->add_flag("--json", c->json, "One JSON document");

  c->modbus = app.add_subcommand("modbus", "Direct mode: read registers of one Modbus unit");
  c->modbus->add_option("--unit", c->unit, "Unit id 1..247")->required();
  c->modbus
      ->add_option("--read", c->reads,
                   "function:address:count:type, e.g. 3:0x0000:2:float (types u16 s16 u32 s32 "
                   "float hex; 32-bit values high word first); repeatable")
      ->required();
  c->modbus->add_flag("--json", c->json, "One JSON document");

  // The daemon's `scan BUS` may already be there: the direct options join it.
  for (auto* sub : app.get_subcommands([](CLI::App* s) { return s->get_name() == "scan"; }))
    c->scan = sub;
  if (!c->scan) {
    c->scan = app.add_subcommand("scan", "Find the meters on a bus (搜表)");
    c->own_scan = true;
  }
  const auto add_if_new = [&](const std::string& name, auto& var, const std::string& help) {
    if (!c->scan->get_option_no_throw(name)) c->scan->add_option(name, var, help);
  };
  add_if_new("--protocol", c->scan_protocol, "Direct mode: dlt645 (default) or modbus");
  add_if_new("--first", c->first, "Direct mode, modbus: first unit id (default 1)");
  add_if_new("--last", c->last, "Direct mode, modbus: last unit id (default 247)");
  add_if_new("--bus-name", c->bus_name,
             "Direct mode: the bus name in the [[meter]] tables (default: the port's name)");
  if (!c->scan->get_option_no_throw("--with-1997"))
    c->scan->add_flag("--with-1997", c->with_1997,
                      "Direct mode, dlt645: search again with 1997 reads (for 1997 meters deaf "
                      "to 2007 frames; twice the time)");
  // The global --json (the daemon verbs') reaches the subcommand too; a
  // second flag of the same name there would swallow it.
  if (!c->scan->get_option_no_throw("--json") && !app.get_option_no_throw("--json"))
    c->scan->add_flag("--json", c->json, "One JSON document");
  return c;
}

std::optional<int> run_direct(DirectCommands& c) {
  try {
    if (c.probe->parsed()) return run_probe(c);
    if (c.modbus->parsed()) return run_modbus(c);
    if (c.scan->parsed()) {
      if (c.port.empty() && c.host.empty() && !c.own_scan) return std::nullopt;  // the daemon's
      if (!c.own_scan) {
        // Shared with the daemon's scan: options both define are bound to
        // the daemon side's variables; take their values from the parse.
        const auto* j = c.scan->get_option_no_throw("--json");
        if (j && j->count() > 0) c.json = true;
        if (const auto* o = c.scan->get_option_no_throw("--protocol"); o && o->count() > 0)
          c.scan_protocol = o->as<std::string>();
        if (const auto* o = c.scan->get_option_no_throw("--first"); o && o->count() > 0)
          c.first = o->as<unsigned>();
        if (const auto* o = c.scan->get_option_no_throw("--last"); o && o->count() > 0)
          c.last = o->as<unsigned>();
      }
      return run_scan(c);
    }
  } catch (const Exit& e) {
    if (!e.message.empty()) std::cerr << "meterctl: " << e.message << "\n";
    return e.code;
  }
  return std::nullopt;
}

}  // namespace meterd::meterctl
