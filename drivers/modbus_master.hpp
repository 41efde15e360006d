// Modbus master through libmodbus: RTU on the bus worker's own descriptor
// (modbus_set_socket), TCP through modbus_new_tcp with reconnect. Register
// decoding stays in protocol/modbus_codec; this file only moves registers.
// libmodbus is blocking and not thread-safe: each master lives on its bus
// worker thread. libmodbus does not wait the 3.5-character silence between
// frames: the master waits it (and the meter's own gap) on the SerialLine.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "drivers/line.hpp"
#include "drivers/transaction.hpp"

namespace meterd::drivers {

struct ModbusOptions {
  ReadLimits limits;
  unsigned retries = 1;                  // extra attempts after a timeout, CRC error or mismatch
  std::chrono::microseconds min_gap{0};  // the meter's gap on top of t3.5 (SDM630: 60 ms)
  bool echo = false;                     // RTU: the bus hears its own requests back
};

struct RegisterRead {
  Outcome outcome = Outcome::timeout;
  Tally tally;
  std::vector<std::uint16_t> words;  // ok: `count` registers
  std::uint8_t exception = 0;        // meter_error: the exception code (02, 03, 0B, …)
  std::string detail;
};

struct RegisterWrite {
  Outcome outcome = Outcome::timeout;
  Tally tally;
  std::uint8_t exception = 0;
  std::string detail;
};

// Common interface of the RTU and TCP masters (function 03 or 04 reads,
// 10 writes). Unit 0 is broadcast: writes only, no answer awaited.
class ModbusMaster {
 public:
  virtual ~ModbusMaster() = default;
  virtual RegisterRead read(std::uint8_t unit, std::uint8_t function, std::uint16_t address,
                            std::uint16_t count, const ModbusOptions& options) = 0;
  virtual RegisterWrite write(std::uint8_t unit, std::uint16_t address,
                              const std::vector<std::uint16_t>& words,
                              const ModbusOptions& options) = 0;
};

// RTU over `line` (which stays owned by the bus worker and must outlive
// the master).
std::unique_ptr<ModbusMaster> make_modbus_rtu(SerialLine& line);

// TCP to host:port; connects on first use and again after a failure
// (back-off between attempts: a dead converter answers bus_down fast).
std::unique_ptr<ModbusMaster> make_modbus_tcp(const std::string& host, std::uint16_t port);

}  // namespace meterd::drivers
