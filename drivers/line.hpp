// A half-duplex serial line as its bus worker sees it: one open descriptor
// and the wire clock. It knows when the last byte left or arrived on the
// wire, so it can keep the silence a protocol and a meter need before the
// next request (measured from the end of the last byte on the wire, not
// from when the program got round to it) and no more. Owned by one bus
// worker thread; not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <system_error>
#include <vector>

#include "drivers/serial_port.hpp"
#include "drivers/transaction.hpp"

namespace meterd::drivers {

using SteadyClock = std::chrono::steady_clock;

// What a protocol's frame-complete test says about the bytes read so far.
enum class Completion {
  need_more,  // keep reading
  complete,   // a whole answer is in the buffer: stop reading
};

struct ReadLimits {
  std::chrono::milliseconds response_timeout{1000};  // from the end of the request on the wire
  std::chrono::milliseconds byte_timeout{500};       // silence after a byte that ends the read
};

struct ReadResult {
  std::vector<std::uint8_t> bytes;
  bool complete = false;  // the test said complete (else a timeout ended the read)
  std::error_code error;  // read failure (EIO on a vanished pty, …): the port is gone
};

class SerialLine {
 public:
  SerialLine(Fd fd, const LineSettings& settings);

  int fd() const noexcept { return fd_.get(); }
  const LineSettings& settings() const noexcept { return settings_; }
  std::chrono::microseconds char_time() const noexcept;
  // The silence that delimits frames on a serial line: 3.5 characters, and
  // 1.75 ms above 19200 baud (MODBUS over Serial Line V1.02 §2.5.1.1).
  std::chrono::microseconds frame_gap() const noexcept;

  // Sleeps until `gap` has passed since the end of the last byte on the
  // wire (sent or received); adds the time actually waited to `tally.silence`.
  void wait_silence(std::chrono::microseconds gap, Tally& tally);
  // Reads and drops whatever is waiting (a late answer, a stray byte).
  // Returns the count (also added to tally.stale_bytes).
  std::size_t flush_input(Tally& tally);
  // Writes the whole request; the wire is busy until bytes × char time
  // after the write. Error: the errno of write (EIO/ENXIO: the port is gone).
  std::error_code write(std::span<const std::uint8_t> bytes, Tally& tally);
  // For a request another library wrote on fd() just now (libmodbus's
  // modbus_send_raw_request): the wire clock and the tally as write() keeps them.
  void sent(std::size_t bytes, Tally& tally) noexcept;
  // Reads and drops exactly the echo of `request` (2-wire adapters). A
  // mismatch is not an error: the bytes are dropped either way.
  void discard_echo(std::span<const std::uint8_t> request, const ReadLimits& limits, Tally& tally);
  // Reads until `complete(bytes so far)` says complete, the response timeout
  // (counted from the end of the last request on the wire) passes with no
  // byte, or the byte timeout passes after the last byte. Called again after
  // an answer that was not the one awaited, it waits for the rest of the same
  // response timeout (the deadline stays where the request put it).
  ReadResult read(const std::function<Completion(std::span<const std::uint8_t>)>& complete,
                  const ReadLimits& limits, Tally& tally);
  // For exchanges another library ran on fd() (libmodbus): the wire was
  // busy until now.
  void mark_activity() noexcept { last_wire_end_ = SteadyClock::now(); }

  // When the last byte sent or received left the wire, and when the last
  // request did (the start of the response timeout).
  SteadyClock::time_point wire_end() const noexcept { return last_wire_end_; }
  SteadyClock::time_point request_end() const noexcept { return request_end_; }

 private:
  Fd fd_;
  LineSettings settings_;
  SteadyClock::time_point last_wire_end_{};
  SteadyClock::time_point request_end_{};
};

}  // namespace meterd::drivers
