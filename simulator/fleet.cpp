#include "simulator/fleet.hpp"

#include <algorithm>
#include <set>
#include <sstream>

#include "protocol/dlt645/requests.hpp"
#include "protocol/modbus_codec/registers.hpp"
#include "simulator/dlt645_meter.hpp"
#include "simulator/modbus_meter.hpp"

namespace meterd::simulator {

namespace asio = boost::asio;
namespace dlt = protocol::dlt645;
namespace mb = protocol::modbus;

// ---- fleet ------------------------------------------------------------------------

Fleet::Fleet(asio::io_context& io, FleetConfig config) : io_(io), config_(std::move(config)) {
  validate(config_);
  const Millis start = clock_.now();
  const Millis offset = config_.utc_offset_minutes * ms_per_minute;
  for (const auto& b : config_.buses)
    buses_.push_back(std::make_unique<Bus>(io_, b.name, b.line, config_.run_dir / b.name, clock_,
                                           BusOptions{config_.wire_timing, b.echo},
                                           config_.seed * 1000003 + buses_.size()));
  for (const auto& t : config_.tcp)
    tcp_.push_back(std::make_unique<TcpConverter>(io_, t.name, t.port, clock_,
                                                  config_.seed * 2000003 + tcp_.size()));
  const auto build = [&](std::size_t index, AreaFeed area) {
    const MeterSpec& m = config_.meters[index];
    const std::uint64_t seed = m.seed ? m.seed : config_.seed * 7919 + index + 1;
    const unsigned turnaround =
        m.turnaround_ms ? m.turnaround_ms : 20 + static_cast<unsigned>(seed * 2654435761u % 41);
    auto seat = std::make_shared<Seat>();
    seat->id = m.id;
    seat->power_up_ms = m.power_up_ms;
    if (m.protocol == "modbus") {
      ModbusMeterConfig c;
      c.id = m.id;
      c.model = mb::find_model(m.model);
      c.unit = static_cast<std::uint8_t>(std::stoul(m.address));
      c.seed = seed;
      c.static_values = config_.static_values;
      c.turnaround_ms = turnaround;
      c.utc_offset_ms = offset;
      if (Bus* bus = find_bus(m.bus)) {
        c.baud = bus->line().baud;
        const auto p = bus->line().parity;
        c.parity = p == drivers::Parity::even ? 'E' : p == drivers::Parity::odd ? 'O' : 'N';
        c.stop_bits = bus->line().stop_bits;
      }
      auto meter = std::make_unique<ModbusMeter>(c, start);
      seat->modbus = meter.get();
      seat->meter = std::move(meter);
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
      auto meter = std::make_unique<Dlt645Meter>(c, start, std::move(area));
      seat->dlt = meter.get();
      seat->meter = std::move(meter);
    }
    return seat;
  };
  // Households before their summary meter: its history walks their load.
  const auto& meters = config_.meters;
  const auto index_of = [&](const std::string& id) {
    return static_cast<std::size_t>(
        std::find_if(meters.begin(), meters.end(), [&](const MeterSpec& m) { return m.id == id; }) -
        meters.begin());
  };
  std::vector<std::shared_ptr<Seat>> built(meters.size());
  const std::size_t summary = config_.area ? index_of(config_.area->summary) : meters.size();
  for (std::size_t i = 0; i < meters.size(); ++i)
    if (i != summary) built[i] = build(i, {});
  if (config_.area) {
    AreaFeed feed;
    feed.loss_ppm = *parse_loss_percent(config_.area->loss_percent);
    for (const auto& h : config_.area->households)
      feed.households.push_back(load_model(*built[index_of(h)]));
    built[summary] = build(summary, std::move(feed));
  }
  for (std::size_t i = 0; i < meters.size(); ++i) {
    specs_[meters[i].id] = &meters[i];
    if (Bus* bus = find_bus(meters[i].bus)) bus->add(built[i]);
    if (TcpConverter* t = find_tcp(meters[i].bus)) t->add(built[i]);
    seats_.push_back(std::move(built[i]));
  }
}

Dlt645Meter* Fleet::load_model(const Seat& s) {
  return s.dlt ? s.dlt : s.modbus ? &s.modbus->engine() : nullptr;
}

Fleet::~Fleet() { stop(); }

void Fleet::start() {
  std::filesystem::create_directories(config_.run_dir);
  for (auto& b : buses_)
    if (const auto ec = b->open())
      throw std::runtime_error("bus " + b->name() + ": " + ec.message());
  for (auto& t : tcp_) t->start();
  control_ = std::make_unique<ControlServer>(
      io_, config_.run_dir / "control.sock",
      [this](const nlohmann::json& request) { return control(request); });
  control_->start();
}

void Fleet::stop() {
  for (auto& b : buses_) b->vanish();
  for (auto& t : tcp_) t->stop();
  if (control_) {
    control_->stop();
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

TcpConverter* Fleet::find_tcp(const std::string& name) {
  for (auto& t : tcp_)
    if (t->name() == name) return t.get();
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
    for (const auto& s : b->seats()) meters.push_back(meter_json(*s));
    buses.push_back({{"name", b->name()},
                     {"path", b->link().string()},
                     {"baud", b->line().baud},
                     {"parity", drivers::to_string(b->line().parity)},
                     {"data_bits", b->line().data_bits},
                     {"stop_bits", b->line().stop_bits},
                     {"echo", b->options().echo},
                     {"meters", meters}});
  }
  nlohmann::json tcp = nlohmann::json::array();
  for (const auto& t : tcp_) {
    nlohmann::json meters = nlohmann::json::array();
    for (const auto& s : t->seats()) meters.push_back(meter_json(*s));
    tcp.push_back(
        {{"name", t->name()}, {"host", "127.0.0.1"}, {"port", t->port()}, {"meters", meters}});
  }
  nlohmann::json out{{"buses", buses},
                     {"tcp", tcp},
                     {"control", (config_.run_dir / "control.sock").string()},
                     {"wire_timing", config_.wire_timing},
                     {"static", config_.static_values}};
  if (config_.area)
    out["area"] = {{"summary", config_.area->summary},
                   {"households", config_.area->households},
                   {"loss_percent", config_.area->loss_percent}};
  return out;
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
    // A 2-wire adapter with its receiver on: meterd must drop its own echo.
    if (b->options().echo) o << "echo = true\n";
  }
  for (const auto& t : tcp_)
    o << "\n[[bus]]\nname = \"" << t->name() << "\"\ntcp = \"127.0.0.1:" << t->port()
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

}  // namespace meterd::simulator
