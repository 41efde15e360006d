// The whole simulated installation: buses (ptys), Modbus TCP converters,
// the meters on them, the simulated clock, and the control channel.
// Builds the meters from a FleetConfig and owns them through their seats;
// the transports share the seats. Lives on one io_context thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>  // before Asio: Boost 1.74 uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "simulator/bus.hpp"
#include "simulator/config.hpp"
#include "simulator/control.hpp"
#include "simulator/meter.hpp"
#include "simulator/tcp_converter.hpp"

namespace meterd::simulator {

class Fleet {
 public:
  Fleet(boost::asio::io_context& io, FleetConfig config);
  ~Fleet();

  // Opens every pty, TCP port and the control socket.
  void start();
  void stop();

  // {"buses":[{name,path,baud,parity,meters:[{id,protocol,address,model}]}],"tcp":[...],
  //  "control":..., "area":{summary,households,loss_percent} when configured}
  nlohmann::json endpoints() const;
  // A meterd config (DESIGN.md contract) for exactly this fleet.
  std::string gateway_config(const std::string& gateway_id, const std::string& data_dir) const;

  // One control-channel command -> its answer ({"ok":true,...} | {"ok":false,"error":...}).
  // The commands are a table in commands.cpp.
  nlohmann::json control(const nlohmann::json& request);

  const SimClock& clock() const noexcept { return clock_; }
  std::size_t meter_count() const noexcept { return seats_.size(); }

 private:
  struct Command;
  static const std::vector<Command>& commands();

  Seat* find_seat(const std::string& id);
  // The load model behind a seat (a Modbus meter's engine), for the area.
  static Dlt645Meter* load_model(const Seat& s);
  Bus* find_bus(const std::string& name);
  TcpConverter* find_tcp(const std::string& name);
  // The transport a seat sits on, told when its switches change.
  void faults_changed(const std::string& transport);
  nlohmann::json stats() const;

  boost::asio::io_context& io_;
  FleetConfig config_;
  SimClock clock_;
  std::vector<std::shared_ptr<Seat>> seats_;
  std::map<std::string, const MeterSpec*> specs_;
  std::vector<std::unique_ptr<Bus>> buses_;
  std::vector<std::unique_ptr<TcpConverter>> tcp_;
  std::unique_ptr<ControlServer> control_;
};

}  // namespace meterd::simulator
