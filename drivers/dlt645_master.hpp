// DL/T 645 master: one request/answer exchange on a bus worker's line,
// built on protocol/dlt645 (DL/T 645-2007 §7, DL/T 645-1997 §7). Runs on the
// bus worker thread only. Retries, echo discard, stale-input flush, leading
// FE bytes and the follow-up frames of long answers are handled here; which
// DIs to read and what a meter's ERR 02 means for the next read is policy
// (firmware/).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "drivers/line.hpp"
#include "drivers/transaction.hpp"
#include "protocol/dlt645/control.hpp"
#include "protocol/dlt645/frame.hpp"

namespace meterd::drivers {

struct Dlt645Options {
  ReadLimits limits;
  unsigned retries = 1;   // extra attempts after a timeout, bad frame or mismatched answer
  unsigned preamble = 4;  // FE bytes before every request
  std::chrono::microseconds min_gap{0};  // silence before a request on top of the line's own
  bool echo = false;                     // the bus hears its own requests back
  std::size_t max_follow_ups = 32;       // 12H continuations fetched for one read at most
};

struct Dlt645Answer {
  Outcome outcome = Outcome::timeout;
  Tally tally;
  protocol::dlt645::Frame frame;  // ok / meter_error: the (first) answer frame
  std::uint16_t error_word = 0;   // meter_error: ERR (1 byte) or SERR (2 bytes)
  std::string detail;             // why, for logs: "checksum: got 5D, expected 6D", "ERR 02"
};

struct Dlt645Read {
  Outcome outcome = Outcome::timeout;
  Tally tally;
  std::uint32_t di = 0;
  std::vector<std::uint8_t> data;  // ok: the data after the DI, follow-up frames joined
  std::size_t frames = 0;          // answer frames joined
  std::uint16_t error_word = 0;    // meter_error
  std::string detail;
};

// Sends `request` and waits for the answer that matches it: same address
// (the meter's own address when the request used AA wildcards), response
// bit set, same function, and for reads the same DI (and SEQ for a 1997
// re-read / 2007 follow-up). A frame that does not match is counted as a
// mismatch and the wait goes on until the timeout; a bad frame is counted
// and the wait goes on as well (a false head or noise must not end it).
// The attempt is repeated up to `retries` times on timeout, bad frame or
// mismatch; a meter_error answer is final.
Dlt645Answer dlt645_exchange(SerialLine& line, protocol::dlt645::Version version,
                             const protocol::dlt645::Frame& request, const Dlt645Options& options);

// Reads one DI (2007: 11H with 12H follow-ups; 1997: 01H with 02H
// follow-ups) and returns the data after the DI, reassembled.
Dlt645Read dlt645_read(SerialLine& line, protocol::dlt645::Version version,
                       const protocol::dlt645::Address& address, std::uint32_t di,
                       const Dlt645Options& options);

// Everything heard after one request, for the bus search (firmware/scan):
// several meters may answer one AA-wildcarded request, one after another
// (clean frames) or at once (garbage).
struct Dlt645Heard {
  std::vector<protocol::dlt645::Frame> frames;  // well-formed frames, in arrival order
  // Bytes heard outside those frames, wake-up FE bytes excepted: overlapping
  // answers, checksum errors, cut-off frames, line noise.
  std::size_t garbage_bytes = 0;
  std::size_t bad_frames = 0;   // candidates the decoder rejected (checksum, end byte, cut off)
  std::size_t heard_bytes = 0;  // everything read, echo excepted
  Tally tally;
  std::error_code error;  // write or read failure: the port is gone
  bool silent() const noexcept { return heard_bytes == 0; }
  bool clean() const noexcept { return garbage_bytes == 0 && bad_frames == 0; }
};

// Sends `request` once and listens for the whole window: until the response
// timeout after the request has passed, and then until the line has been
// silent for the byte timeout (an answer in progress is heard to its end).
// It never stops at the first frame: a meter with a longer turnaround may
// answer after another one. The bytes are then split into clean frames and
// garbage by the streaming decoder (which finds a frame behind noise or a
// false head).
Dlt645Heard dlt645_listen_all(SerialLine& line, const protocol::dlt645::Frame& request,
                              const Dlt645Options& options);
// The split alone (pure): frames, garbage and bad frames of `heard`.
Dlt645Heard dlt645_split(std::span<const std::uint8_t> heard);

// Broadcasts a frame nobody answers (time sync to 999999999999): writes it
// and keeps the line silent for the answer time a meter would have taken,
// so a meter busy with it is not addressed at once.
Tally dlt645_broadcast(SerialLine& line, const protocol::dlt645::Frame& request,
                       const Dlt645Options& options);

}  // namespace meterd::drivers
