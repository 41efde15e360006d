// One worker thread per bus (docs/design.md "Threads"): it owns the port
// (serial device or Modbus TCP connection), runs one job at a time,
// highest priority first, and reopens the port with back-off when it
// fails or vanishes. Jobs are closures from firmware/ that run a master
// exchange on the BusPort and post their result back to the io_context
// as values. post(), stats() and stop() are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "drivers/dlt645_master.hpp"
#include "drivers/line.hpp"
#include "drivers/modbus_master.hpp"
#include "drivers/serial_port.hpp"

namespace meterd::drivers {

struct BusConfig {
  std::string name;
  // Exactly one of: a serial device (or pty) path, or a Modbus TCP endpoint.
  std::string device;
  std::string tcp_host;
  std::uint16_t tcp_port = 0;
  LineSettings line;
  Rs485Settings rs485;
  ReadLimits limits;
  unsigned retries = 1;
  bool echo = false;
  std::chrono::milliseconds reopen_min{500};  // first back-off after a failed open
  std::chrono::milliseconds reopen_max{30000};
  bool is_tcp() const noexcept { return !tcp_host.empty(); }
};

// The bus's limits, retries and echo as master options (a meter's own gap,
// preamble, … are the caller's to add).
Dlt645Options dlt645_options(const BusConfig& config);
ModbusOptions modbus_options(const BusConfig& config);

// What a job works with on the worker thread. When the port is down every
// pointer is null and the job must report Outcome::bus_down at once.
struct BusPort {
  const BusConfig* config = nullptr;
  SerialLine* serial = nullptr;    // serial buses
  ModbusMaster* modbus = nullptr;  // RTU on `serial`, or the TCP connection
  bool up() const noexcept { return serial != nullptr || modbus != nullptr; }
  // A job that saw the port fail (EIO, ENXIO, a write error) says so: the
  // worker closes it after the job and reopens it with back-off.
  void fail(std::error_code ec) { failure = ec; }
  // The same from a master's outcome: io_error means the port is gone.
  void note(Outcome o) {
    if (o == Outcome::io_error) fail(std::make_error_code(std::errc::io_error));
  }
  std::error_code failure;
  // The worker is stopping (or stopped): the port is down for good; a job
  // may report Outcome::cancelled instead of bus_down.
  bool stopping = false;
};

enum class Priority : std::uint8_t { command = 0, on_demand = 1, schedule = 2 };

struct BusStats {
  bool up = false;
  std::string last_error;   // why the port is down or last went down
  std::uint64_t opens = 0;  // successful opens (1 + reconnects)
  std::uint64_t open_failures = 0;
  std::uint64_t jobs = 0;  // jobs run
  std::size_t queued = 0;
  Tally tally;  // every exchange's tally, summed
};

class BusWorker {
 public:
  using Job = std::function<void(BusPort&)>;
  // Called on the worker thread when the port goes up or down (and on the
  // first failed open: a bus that never came up is reported down once).
  using StateHook = std::function<void(bool up, const std::string& why)>;

  BusWorker(BusConfig config, StateHook on_state = {});
  ~BusWorker();  // stop()
  BusWorker(const BusWorker&) = delete;
  BusWorker& operator=(const BusWorker&) = delete;

  const BusConfig& config() const noexcept;
  void start();
  // Queues a job; FIFO within one priority. After stop() the job runs at
  // once on the caller's thread with a down port (so it still reports).
  void post(Priority priority, Job job);
  // The job in flight finishes; jobs still queued run with a down port
  // (they report cancelled/bus_down); the thread is joined; the port closed.
  void stop();
  // Adds an exchange's tally to the bus counters (jobs call it).
  void account(const Tally& tally);
  BusStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meterd::drivers
