#include "drivers/transaction.hpp"

namespace meterd::drivers {

const char* to_string(Outcome o) noexcept {
  switch (o) {
    case Outcome::ok:
      return "ok";
    case Outcome::meter_error:
      return "meter_error";
    case Outcome::timeout:
      return "timeout";
    case Outcome::bad_frame:
      return "bad_frame";
    case Outcome::mismatch:
      return "mismatch";
    case Outcome::bus_down:
      return "bus_down";
    case Outcome::io_error:
      return "io_error";
    case Outcome::cancelled:
      return "cancelled";
  }
  return "unknown";
}

Tally& Tally::operator+=(const Tally& o) noexcept {
  attempts += o.attempts;
  timeouts += o.timeouts;
  bad_frames += o.bad_frames;
  mismatches += o.mismatches;
  meter_errors += o.meter_errors;
  noise_bytes += o.noise_bytes;
  echo_bytes += o.echo_bytes;
  stale_bytes += o.stale_bytes;
  tx_bytes += o.tx_bytes;
  rx_bytes += o.rx_bytes;
  busy += o.busy;
  silence += o.silence;
  return *this;
}

}  // namespace meterd::drivers
