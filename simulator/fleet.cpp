#include "simulator/fleet.hpp"

#include <algorithm>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/values.hpp"
#include "protocol/modbus_codec/registers.hpp"
#include "protocol/modbus_codec/tcp.hpp"
#include "simulator/modbus_meter.hpp"

namespace meterd::simulator {

namespace asio = boost::asio;
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

}  // namespace

FleetConfig load_config(const std::filesystem::path& file) {
  toml::table root;
  try {
    root = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw ConfigError(file.string() + ":" + std::to_string(e.source().begin.line) + ": " +
                      std::string(e.description()));
  }
  check_keys(
      file, root,
      {"seed", "static", "wire_timing", "utc_offset_minutes", "run_dir", "bus", "tcp", "meter"});
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
    check_keys(file, t, {"name", "baud", "parity", "data_bits", "stop_bits"});
    BusSpec b;
    b.name = get<std::string>(file, t, "name", "");
    b.line.baud = get<unsigned>(file, t, "baud", 2400);
    const auto parity = get<std::string>(file, t, "parity", "even");
    if (!drivers::parse_parity(parity, b.line.parity))
      throw ConfigError(where(file, *t.get("parity"), "parity") + ": expected none, even or odd");
    b.line.data_bits = get<unsigned>(file, t, "data_bits", 8);
    b.line.stop_bits = get<unsigned>(file, t, "stop_bits", 1);
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
                "drift_ppm", "password", "seed"});
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
    if (m.turnaround_ms > 500)
      throw ConfigError(where(file, *t.get("turnaround_ms"), "turnaround_ms") +
                        ": expected 0..500");
    if (m.tariffs < 1 || m.tariffs > 63)
      throw ConfigError(where(file, *t.get("tariffs"), "tariffs") + ": expected 1..63");
    if (m.phases != 1 && m.phases != 3)
      throw ConfigError(where(file, *t.get("phases"), "phases") + ": expected 1 or 3");
    c.meters.push_back(m);
  });
  try {
    validate(c);
  } catch (const ConfigError& e) {
    throw ConfigError(file.string() + ": " + e.what());
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
  validate(c);
  return c;
}

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
}

// ---- TCP converter and control channel ---------------------------------------

struct Fleet::TcpServer {
  TcpServer(asio::io_context& io, TcpSpec s, const SimClock& clock)
      : spec(std::move(s)), acceptor(io), clock_(clock) {}

  void start() {
    const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"),
                                     static_cast<unsigned short>(spec.port));
    acceptor.open(ep.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen();
    spec.port = acceptor.local_endpoint().port();
    accept();
  }
  void accept() {
    acceptor.async_accept([this](const boost::system::error_code& ec, asio::ip::tcp::socket s) {
      if (ec) return;
      auto c = std::make_shared<Conn>(std::move(s), *this);
      c->read();
      accept();
    });
  }
  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(asio::ip::tcp::socket s, TcpServer& server) : sock(std::move(s)), srv(server) {}
    void read() {
      auto self = shared_from_this();
      sock.async_read_some(
          asio::buffer(buf), [self](const boost::system::error_code& ec, std::size_t n) {
            if (ec) return;
            self->in.insert(self->in.end(), self->buf.begin(),
                            self->buf.begin() + static_cast<std::ptrdiff_t>(n));
            for (;;) {
              const auto r = mb::decode_tcp(self->in);
              if (r.status == mb::DecodeStatus::need_more) break;
              if (r.status == mb::DecodeStatus::error) {  // not Modbus/TCP: drop the connection
                self->sock.close();
                return;
              }
              self->in.erase(self->in.begin(),
                             self->in.begin() + static_cast<std::ptrdiff_t>(r.consumed));
              self->answer(r.header.transaction, r.pdu);
            }
            self->read();
          });
    }
    void answer(std::uint16_t transaction, const mb::Pdu& req) {
      for (Seat* seat : srv.seats) {
        if (!seat->modbus || seat->modbus->unit() != req.unit || !seat->online) continue;
        auto a = seat->modbus->handle(req, srv.clock_.now());
        // A meter that stays silent (a request too soon after the last one):
        // the converter's RS-485 side times out and says so.
        if (!a) a = mb::response::exception(req.unit, req.function & 0x7F, 0x0B);
        // Meter and converter switches add up, as on a bus.
        const Faults& f = seat->faults;
        const Faults& g = srv.faults;
        std::uniform_real_distribution<double> roll(0, 1);
        const auto hit = [&](double p, double q) {
          return roll(srv.rng) < 1.0 - (1.0 - p) * (1.0 - q);
        };
        if (hit(f.drop, g.drop)) return;
        // A corrupted answer on the RS-485 side fails the converter's CRC
        // check: it answers "gateway target failed to respond" instead.
        if (hit(f.corrupt, g.corrupt))
          a = mb::response::exception(req.unit, req.function & 0x7F, 0x0B);
        if (f.wrong_address || g.wrong_address)
          a->unit = static_cast<std::uint8_t>(a->unit % 247 + 1);
        auto bytes = std::make_shared<std::vector<std::uint8_t>>(mb::encode_tcp(*a, transaction));
        if (hit(f.truncate, g.truncate) && bytes->size() > 1) bytes->resize(bytes->size() / 2);
        std::uniform_int_distribution<int> byte(0, 255);
        for (std::size_t k = 0; k < f.noise_bytes + g.noise_bytes; ++k)
          bytes->insert(bytes->begin(), static_cast<std::uint8_t>(byte(srv.rng)));
        auto timer = std::make_shared<asio::steady_timer>(
            sock.get_executor(),
            std::chrono::milliseconds(seat->modbus->turnaround_ms() + f.delay_ms + g.delay_ms));
        auto self = shared_from_this();
        timer->async_wait([self, timer, bytes](const boost::system::error_code& ec) {
          if (!ec)
            asio::async_write(self->sock, asio::buffer(*bytes), [self, bytes](auto, auto) {});
        });
        return;
      }
      // No such unit behind this converter: gateway target failed to respond (0BH).
      const auto bytes = std::make_shared<std::vector<std::uint8_t>>(mb::encode_tcp(
          mb::response::exception(req.unit, req.function & 0x7F, 0x0B), transaction));
      asio::async_write(sock, asio::buffer(*bytes),
                        [self = shared_from_this(), bytes](auto, auto) {});
    }
    asio::ip::tcp::socket sock;
    TcpServer& srv;
    std::array<std::uint8_t, 512> buf{};
    std::vector<std::uint8_t> in;
  };

  TcpSpec spec;
  asio::ip::tcp::acceptor acceptor;
  const SimClock& clock_;
  std::vector<Seat*> seats;
  Faults faults;  // converter-wide switches
  std::mt19937_64 rng{7};
};

struct Fleet::ControlServer {
  ControlServer(asio::io_context& io, std::filesystem::path p, Fleet& f)
      : path(std::move(p)), acceptor(io), fleet(f) {}
  void start() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    acceptor.open();
    acceptor.bind(asio::local::stream_protocol::endpoint(path.string()));
    acceptor.listen();
    accept();
  }
  void accept() {
    acceptor.async_accept(
        [this](const boost::system::error_code& ec, asio::local::stream_protocol::socket s) {
          if (ec) return;
          auto c = std::make_shared<Conn>(std::move(s), fleet);
          c->read();
          accept();
        });
  }
  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(asio::local::stream_protocol::socket s, Fleet& f) : sock(std::move(s)), fleet(f) {}
    void read() {
      auto self = shared_from_this();
      asio::async_read_until(
          sock, asio::dynamic_buffer(in, 1 << 20), '\n',
          [self](const boost::system::error_code& ec, std::size_t n) {
            if (ec) return;
            const std::string line = self->in.substr(0, n);
            self->in.erase(0, n);
            nlohmann::json answer;
            try {
              answer = self->fleet.control(nlohmann::json::parse(line));
            } catch (const nlohmann::json::exception& e) {
              answer = {{"ok", false}, {"error", std::string("bad JSON: ") + e.what()}};
            }
            auto out = std::make_shared<std::string>(answer.dump() + "\n");
            asio::async_write(self->sock, asio::buffer(*out),
                              [self, out](const boost::system::error_code& e, std::size_t) {
                                if (!e) self->read();
                              });
          });
    }
    asio::local::stream_protocol::socket sock;
    Fleet& fleet;
    std::string in;
  };
  std::filesystem::path path;
  asio::local::stream_protocol::acceptor acceptor;
  Fleet& fleet;
};

// ---- fleet ------------------------------------------------------------------------

Fleet::Fleet(asio::io_context& io, FleetConfig config) : io_(io), config_(std::move(config)) {
  validate(config_);
  const Millis start = clock_.now();
  const Millis offset = config_.utc_offset_minutes * ms_per_minute;
  for (const auto& b : config_.buses)
    buses_.push_back(std::make_unique<Bus>(io_, b.name, b.line, config_.run_dir / b.name, clock_,
                                           config_.wire_timing,
                                           config_.seed * 1000003 + buses_.size()));
  for (const auto& t : config_.tcp) tcp_.push_back(std::make_unique<TcpServer>(io_, t, clock_));
  std::uint64_t n = 0;
  for (const auto& m : config_.meters) {
    ++n;
    const std::uint64_t seed = m.seed ? m.seed : config_.seed * 7919 + n;
    const unsigned turnaround =
        m.turnaround_ms ? m.turnaround_ms : 20 + static_cast<unsigned>(seed * 2654435761u % 41);
    auto seat = std::make_unique<Seat>();
    seat->id = m.id;
    if (m.protocol == "modbus") {
      ModbusMeterConfig c;
      c.id = m.id;
      c.model = mb::find_model(m.model);
      c.unit = static_cast<std::uint8_t>(std::stoul(m.address));
      c.seed = seed;
      c.static_values = config_.static_values;
      c.turnaround_ms = turnaround;
      c.utc_offset_ms = offset;
      modbus_meters_.push_back(std::make_unique<ModbusMeter>(c, start));
      seat->modbus = modbus_meters_.back().get();
    } else {
      Dlt645MeterConfig c;
      c.id = m.id;
      c.version = *dlt::parse_version(m.protocol);
      c.address = *dlt::Address::parse(m.address);
      c.tariffs = m.tariffs;
      c.phases = m.phases;
      c.seed = seed;
      c.static_values = config_.static_values;
      c.utc_offset_ms = offset;
      c.drift_ppm = m.drift_ppm;
      c.turnaround_ms = turnaround;
      c.answer_preamble = seed % 5;
      c.password = *dlt::parse_password(m.password);
      dlt_meters_.push_back(std::make_unique<Dlt645Meter>(c, start));
      seat->dlt = dlt_meters_.back().get();
    }
    specs_[m.id] = &m;
    if (Bus* b = find_bus(m.bus)) b->add(seat.get());
    for (auto& t : tcp_)
      if (t->spec.name == m.bus) t->seats.push_back(seat.get());
    seats_.push_back(std::move(seat));
  }
}

Fleet::~Fleet() { stop(); }

void Fleet::start() {
  std::filesystem::create_directories(config_.run_dir);
  for (auto& b : buses_)
    if (const auto ec = b->open())
      throw std::runtime_error("bus " + b->name() + ": " + ec.message());
  for (auto& t : tcp_) t->start();
  control_ = std::make_unique<ControlServer>(io_, config_.run_dir / "control.sock", *this);
  control_->start();
}

void Fleet::stop() {
  for (auto& b : buses_) b->vanish();
  for (auto& t : tcp_) {
    boost::system::error_code ignored;
    t->acceptor.close(ignored);
  }
  if (control_) {
    boost::system::error_code ignored;
    control_->acceptor.close(ignored);
    std::error_code ec;
    std::filesystem::remove(control_->path, ec);
    control_.reset();
  }
}

Seat* Fleet::find_seat(const std::string& id) {
  for (auto& s : seats_)
    if (s->id == id) return s.get();
  return nullptr;
}

Bus* Fleet::find_bus(const std::string& name) {
  for (auto& b : buses_)
    if (b->name() == name) return b.get();
  return nullptr;
}

nlohmann::json Fleet::endpoints() const {
  const auto meter_json = [&](const Seat& s) {
    const MeterSpec& m = *specs_.at(s.id);
    nlohmann::json j{{"id", m.id}, {"protocol", m.protocol}, {"address", m.address}};
    if (s.dlt) {
      j["address"] = s.dlt->config().address.to_string();
      j["model"] = m.protocol == "dlt645-2007" ? "dlt645-2007-sim" : "dlt645-1997-sim";
      j["phases"] = s.dlt->config().phases;
      j["tariffs"] = s.dlt->config().tariffs;
    } else {
      j["model"] = m.model;
    }
    return j;
  };
  nlohmann::json buses = nlohmann::json::array();
  for (const auto& b : buses_) {
    nlohmann::json meters = nlohmann::json::array();
    for (const Seat* s : b->seats()) meters.push_back(meter_json(*s));
    buses.push_back({{"name", b->name()},
                     {"path", b->link().string()},
                     {"baud", b->line().baud},
                     {"parity", drivers::to_string(b->line().parity)},
                     {"data_bits", b->line().data_bits},
                     {"stop_bits", b->line().stop_bits},
                     {"meters", meters}});
  }
  nlohmann::json tcp = nlohmann::json::array();
  for (const auto& t : tcp_) {
    nlohmann::json meters = nlohmann::json::array();
    for (const Seat* s : t->seats) meters.push_back(meter_json(*s));
    tcp.push_back({{"name", t->spec.name},
                   {"host", "127.0.0.1"},
                   {"port", t->spec.port},
                   {"meters", meters}});
  }
  return {{"buses", buses},
          {"tcp", tcp},
          {"control", (config_.run_dir / "control.sock").string()},
          {"wire_timing", config_.wire_timing},
          {"static", config_.static_values}};
}

std::string Fleet::gateway_config(const std::string& gateway_id,
                                  const std::string& data_dir) const {
  std::ostringstream o;
  o << "# meterd config for the metersim fleet (written by metersim --gateway-config)\n"
    << "[gateway]\nid = \"" << gateway_id << "\"\ndata_dir = \"" << data_dir << "\"\n"
    << "control_socket = \"" << data_dir << "/meterd.sock\"\n\n"
    << "[buffer]\nmax_readings = 10000000\n\n"
    << "[mqtt]\nhost = \"127.0.0.1\"\nport = 1883\ntopic_prefix = \"meterd/" << gateway_id << "\"\n"
    << "batch_max = 500\nlinger_ms = 200\ninflight_max = 32\n";
  for (const auto& b : buses_) {
    o << "\n[[bus]]\nname = \"" << b->name() << "\"\nport = \"" << b->link().string()
      << "\"\nbaud = " << b->line().baud << "\nparity = \"" << drivers::to_string(b->line().parity)
      << "\"\ndata_bits = " << b->line().data_bits << "\nstop_bits = " << b->line().stop_bits
      << "\nresponse_timeout_ms = 1000\nbyte_timeout_ms = 500\nretries = 1\n";
  }
  for (const auto& t : tcp_)
    o << "\n[[bus]]\nname = \"" << t->spec.name << "\"\ntcp = \"127.0.0.1:" << t->spec.port
      << "\"\nresponse_timeout_ms = 1000\nretries = 1\n";
  for (const auto& s : seats_) {
    const MeterSpec& m = *specs_.at(s->id);
    o << "\n[[meter]]\nid = \"" << m.id << "\"\nbus = \"" << m.bus << "\"\nprotocol = \""
      << m.protocol << "\"\n";
    if (s->dlt) {
      o << "address = \"" << s->dlt->config().address.to_string() << "\"\nprofile = \""
        << (m.protocol == "dlt645-2007" ? "dlt645-basic" : "dlt645-1997-basic") << "\"\n";
    } else {
      o << "address = \"" << std::stoul(m.address) << "\"\nprofile = \"" << m.model << "\"\n";
    }
    o << "interval = \"15m\"\n";
  }
  return o.str();
}

nlohmann::json Fleet::control(const nlohmann::json& req) {
  const auto fail = [](std::string e) {
    return nlohmann::json{{"ok", false}, {"error", std::move(e)}};
  };
  if (!req.is_object() || !req.contains("cmd") || !req["cmd"].is_string())
    return fail("expected {\"cmd\": ...}");
  const std::string cmd = req["cmd"];
  const Millis now = clock_.now();
  const auto meter = [&]() -> Seat* {
    if (!req.contains("meter") || !req["meter"].is_string()) return nullptr;
    return find_seat(req["meter"].get<std::string>());
  };
  const auto ms_arg = [&](const char* key, Millis fallback) -> std::optional<Millis> {
    if (!req.contains(key)) return fallback;
    if (!req[key].is_number_integer() || req[key].get<Millis>() < 0) return std::nullopt;
    return req[key].get<Millis>();
  };

  if (cmd == "time") return {{"ok", true}, {"utc", iso_utc(now)}, {"offset_ms", clock_.offset()}};
  if (cmd == "advance") {
    const auto ms = ms_arg("ms", -1);
    if (!ms || *ms < 0) return fail("advance: expected \"ms\": milliseconds >= 0");
    clock_.advance(*ms);
    return {{"ok", true}, {"utc", iso_utc(clock_.now())}, {"offset_ms", clock_.offset()}};
  }
  if (cmd == "list" || cmd == "endpoints") return {{"ok", true}, {"endpoints", endpoints()}};
  if (cmd == "stats") {
    nlohmann::json buses = nlohmann::json::object();
    for (const auto& b : buses_) buses[b->name()] = b->stats().to_json();
    return {{"ok", true}, {"buses", buses}};
  }
  if (cmd == "vanish" || cmd == "reappear") {
    if (!req.contains("bus") || !req["bus"].is_string()) return fail(cmd + ": expected \"bus\"");
    Bus* b = find_bus(req["bus"].get<std::string>());
    if (!b) return fail(cmd + ": no bus '" + req["bus"].get<std::string>() + "'");
    if (cmd == "vanish") {
      b->vanish();
    } else if (b->vanished()) {
      if (const auto ec = b->open()) return fail("reappear: " + ec.message());
    }
    return {{"ok", true},
            {"bus", b->name()},
            {"path", b->link().string()},
            {"present", !b->vanished()}};
  }
  if (cmd == "fault" || cmd == "clear_faults") {
    Faults* target = nullptr;
    if (req.contains("bus")) {
      const std::string name = req["bus"].is_string() ? req["bus"].get<std::string>() : "";
      if (Bus* b = find_bus(name)) target = &b->faults();
      for (auto& t : tcp_)
        if (t->spec.name == name) target = &t->faults;
      if (!target) return fail(cmd + ": no bus or tcp converter '" + name + "'");
    } else if (Seat* s = meter()) {
      target = &s->faults;
    } else {
      return fail(cmd + ": expected \"meter\" or \"bus\"");
    }
    if (cmd == "clear_faults") {
      *target = Faults{};
    } else if (const auto err = target->apply(req.value("faults", nlohmann::json::object()));
               !err.empty()) {
      return fail("fault: " + err);
    }
    return {{"ok", true}, {"faults", target->to_json()}};
  }

  Seat* s = meter();
  if (!s) return fail(cmd + ": expected \"meter\": the id of a meter (see \"list\")");
  if (cmd == "offline" || cmd == "online") {
    s->online = cmd == "online";
    return {{"ok", true}, {"meter", s->id}, {"online", s->online}};
  }
  if (cmd == "truth") {
    nlohmann::json t =
        s->dlt ? s->dlt->truth(now) : static_cast<ModbusMeter*>(s->modbus)->truth(now);
    t["online"] = s->online;
    t["ok"] = true;
    return t;
  }
  if (!s->dlt) return fail(cmd + ": not available for Modbus meters");
  Dlt645Meter& m = *s->dlt;
  if (cmd == "read") {
    const auto di = req.contains("di") && req["di"].is_string()
                        ? dlt::parse_di(m.config().version, req["di"].get<std::string>())
                        : std::nullopt;
    if (!di) return fail("read: expected \"di\" (8 hex digits for 2007, 4 for 1997)");
    const auto values = m.read(*di, now);
    if (!values) return {{"ok", true}, {"meter", s->id}, {"no_data", true}};
    nlohmann::json list = nlohmann::json::array();
    for (const auto& v : *values) {
      nlohmann::json e{{"quantity", v.quantity}, {"unit", v.unit}};
      if (const auto* d = std::get_if<protocol::Decimal>(&v.value))
        e["value"] = protocol::to_string(*d);
      else if (const auto* t = std::get_if<std::string>(&v.value))
        e["value"] = *t;
      else
        e["value"] = nullptr;
      list.push_back(e);
    }
    return {{"ok", true}, {"meter", s->id}, {"di", req["di"]}, {"values", list}};
  }
  if (cmd == "events") return {{"ok", true}, {"meter", s->id}, {"events", m.events_json()}};
  if (cmd == "relay") {
    const auto t = m.truth(now);
    return {{"ok", true},          {"meter", s->id},
            {"relay", t["relay"]}, {"relay_command", t["relay_command"]},
            {"alarm", t["alarm"]}, {"keep_power", t["keep_power"]}};
  }
  if (cmd == "power_cycle") {
    const auto off = ms_arg("off_ms", 5000);
    if (!off) return fail("power_cycle: \"off_ms\" must be milliseconds >= 0");
    m.power_cycle(now, *off);
    return {{"ok", true}, {"meter", s->id}};
  }
  if (cmd == "open_cover") {
    const auto d = ms_arg("duration_ms", 60000);
    if (!d) return fail("open_cover: \"duration_ms\" must be milliseconds >= 0");
    m.open_cover(now, *d);
    return {{"ok", true}, {"meter", s->id}};
  }
  if (cmd == "press_button") {
    m.press_button(now);
    return {{"ok", true},
            {"meter", s->id},
            {"relay", m.relay() == RelayState::closed ? "closed" : "open"}};
  }
  if (cmd == "skew_clock") {
    if (!req.contains("ms") || !req["ms"].is_number_integer())
      return fail("skew_clock: expected \"ms\" (may be negative)");
    m.skew_clock(req["ms"].get<Millis>());
    return {{"ok", true}, {"meter", s->id}, {"meter_time", m.truth(now)["meter_time"]}};
  }
  if (cmd == "set_clock") {
    const auto t = req.contains("time") && req["time"].is_string()
                       ? dlt::parse_datetime(req["time"].get<std::string>())
                       : std::nullopt;
    if (!t) return fail("set_clock: expected \"time\": \"YYYY-MM-DDThh:mm:ss\" (meter local time)");
    m.set_clock(now, from_civil(t->year, t->month, t->day, t->hour, t->minute, t->second));
    return {{"ok", true}, {"meter", s->id}, {"meter_time", m.truth(now)["meter_time"]}};
  }
  return fail("unknown command '" + cmd + "'");
}

}  // namespace meterd::simulator
