// What one request/answer exchange on a bus came to, shared by the DL/T 645
// and Modbus masters: the outcome the poller acts on and the counters a
// technician reads. Values only; any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace meterd::drivers {

enum class Outcome {
  ok,           // a matching, well-formed answer
  meter_error,  // a matching answer that says no (DL/T 645 ERR word, Modbus exception)
  timeout,      // nothing (or nothing whole) within the response / inter-byte timeout
  bad_frame,    // an answer whose checksum / CRC / framing was wrong, on the last attempt
  mismatch,     // an answer from another address, or to another function / DI / SEQ
  bus_down,     // the port is not open (unplugged adapter, refused lock); nothing was sent
  io_error,     // a write or read failed; the bus worker closes and reopens the port
  cancelled,    // the worker stopped before the job ran
};
const char* to_string(Outcome o) noexcept;  // "ok", "meter_error", "timeout", …

// Per-exchange tally: one request may take several attempts (retries), and
// each attempt may see noise, bad frames or foreign answers before it ends.
struct Tally {
  std::uint32_t attempts = 0;      // requests put on the wire
  std::uint32_t timeouts = 0;      // attempts that ended without a whole answer
  std::uint32_t bad_frames = 0;    // checksum / CRC / framing errors seen
  std::uint32_t mismatches = 0;    // well-formed answers that were not ours, discarded
  std::uint32_t meter_errors = 0;  // ERR words / exceptions received
  std::uint64_t noise_bytes = 0;   // bytes skipped while hunting for a frame
  std::uint64_t echo_bytes = 0;    // own request heard back and discarded (echo = true)
  std::uint64_t stale_bytes = 0;   // input found waiting before a request, flushed
  std::uint64_t tx_bytes = 0;
  std::uint64_t rx_bytes = 0;
  // Bus time this exchange used: from the first byte of the first request
  // on the wire to the last byte of the last answer (or the timeout), and
  // the silence waited before requests because the protocol or the meter
  // required it (not idle time).
  std::chrono::microseconds busy{0};
  std::chrono::microseconds silence{0};

  Tally& operator+=(const Tally& o) noexcept;
};

}  // namespace meterd::drivers
