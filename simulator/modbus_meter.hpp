// A simulated Modbus meter: one of the register maps of protocol/modbus
// (SDM630, SDM120, DTSU666, generic) with the model's quirks, answering
// read and write PDUs. Its electrical values come from the same load model
// as the DL/T 645 meters, so a fleet behaves alike whatever it speaks.
// Not thread-safe; one owner (the simulator's loop).
#pragma once

#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "protocol/modbus_codec/pdu.hpp"
#include "protocol/modbus_codec/registers.hpp"
#include "simulator/dlt645_meter.hpp"
#include "simulator/meter.hpp"

namespace meterd::simulator {

struct ModbusMeterConfig {
  std::string id;
  const protocol::modbus::Model* model = nullptr;
  std::uint8_t unit = 1;
  std::uint64_t seed = 1;
  bool static_values = false;
  unsigned turnaround_ms = 20;
  Millis utc_offset_ms = 0;
  // The line it sits on, for its baud and parity/stop configuration
  // registers (0: the model's factory default).
  unsigned baud = 0;
  char parity = 0;  // 'N', 'E', 'O'; 0: the model's default
  unsigned stop_bits = 0;
};

class ModbusMeter final : public Meter {
 public:
  ModbusMeter(ModbusMeterConfig config, Millis start);

  std::uint8_t unit() const { return config_.unit; }
  unsigned turnaround_ms() const override { return config_.turnaround_ms; }
  void power_cycle(Millis now, Millis off) override { engine_.power_cycle(now, off); }

  // The answer PDU to a request for this unit at `now`, or nullopt for
  // silence (another unit, powered off, or a request that came before the
  // model's minimum silent gap: `quiet_ms` is how long the line was silent
  // before the request started, timed from the end of the previous frame
  // on the wire, whoever sent it).
  std::optional<protocol::modbus::Pdu> handle(const protocol::modbus::Pdu& request, Millis now,
                                              Millis quiet_ms = ms_per_day);

  const ModbusMeterConfig& config() const noexcept { return config_; }
  // The electrical model behind the registers (an area's load, a bypass).
  Dlt645Meter& engine() noexcept { return engine_; }
  // The canonical value of every primary register, exactly as a master
  // decodes it from the words this meter sends now.
  nlohmann::json truth(Millis now) override;
  // The raw words of one register right now (for tests).
  std::optional<std::vector<std::uint16_t>> words(const protocol::modbus::Register& r, Millis now);

 private:
  std::optional<protocol::Decimal> canonical(const protocol::modbus::Register& r, Millis now);
  std::optional<protocol::Decimal> derived(const std::string& quantity, Millis now);
  std::optional<protocol::Decimal> setting(const std::string& quantity) const;

  ModbusMeterConfig config_;
  Dlt645Meter engine_;  // the electrical model (registers, instantaneous values)
  std::map<std::uint32_t, std::vector<std::uint16_t>>
      written_;  // holding writes, by table<<16|address
};

}  // namespace meterd::simulator
