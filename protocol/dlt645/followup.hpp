// Reassembly of a long DL/T 645-2007 read answer (§7.2.2 "read follow-up
// data", 12H): a meter whose answer exceeds one frame sends the first part
// as 91H with D5 set (B1H: DI + data), and each 12H request (DI + SEQ) is
// answered by a continuation 92H/B2H carrying DI + data + SEQ, SEQ = 1, 2,
// … in order; the last frame has D5 clear (91H or 92H). A continuation
// alone carries the middle of a block: only the whole block can be read
// value by value. Pure function; any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "protocol/dlt645/frame.hpp"
#include "protocol/dlt645/interpret.hpp"

namespace meterd::protocol::dlt645 {

enum class FollowUpError {
  not_first_answer = 1,  // the first frame is not a normal 2007 read answer (91H/B1H) with a DI
  not_continuation,      // a later frame is not a 92H/B2H answer with DI + SEQ
  other_meter,           // a continuation from another address
  di_mismatch,           // a continuation for another DI
  missing_seq,           // SEQ skips ahead: a continuation was lost
  repeated_seq,          // SEQ already seen (or 0): a continuation came twice
  after_last,            // a continuation after a frame that said nothing follows (D5 = 0)
  incomplete,            // the last frame given still says more follows (D5 = 1)
};
const std::error_category& follow_up_category() noexcept;
std::error_code make_error_code(FollowUpError e) noexcept;

struct FollowUpResult {
  std::error_code error;  // FollowUpError, or none
  std::string message;    // "continuation 2: SEQ 3, expected 2", when error is set
  std::uint32_t di = 0;
  std::vector<std::uint8_t> data;  // the block after the DI, all frames joined
  std::size_t frames = 0;          // frames joined (first + continuations)
  // The block read as one answer (91H, DI + all data): values labelled from
  // the block's start, `follow_up` false. Empty when error is set.
  Interpretation block;
};

// Joins `first` (91H/B1H) and `continuations` (92H/B2H, in the order
// received) into one block. Errors as above; a missing or repeated SEQ is
// an error, never silently skipped or joined twice.
FollowUpResult reassemble(const Frame& first, std::span<const Frame> continuations);

}  // namespace meterd::protocol::dlt645

template <>
struct std::is_error_code_enum<meterd::protocol::dlt645::FollowUpError> : std::true_type {};
