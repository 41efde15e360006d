// libFuzzer target: the streaming DL/T 645 decoder and everything a decoded
// frame goes through (interpretation, catalogue decoding, reports).
// Invariants checked: the decoder never claims more bytes than it was
// given, a decoded frame re-encodes to exactly the bytes it came from, and
// feeding the same input in pieces gives the same frames as all at once.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "protocol/dlt645/frame.hpp"
#include "protocol/dlt645/interpret.hpp"

using namespace meterd::protocol::dlt645;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);

  std::vector<Frame> whole;
  std::size_t pos = 0;
  while (pos < size) {
    const auto r = decode(input.subspan(pos));
    check(r.consumed <= size - pos);
    check(r.skipped <= r.consumed || r.status == DecodeStatus::need_more);
    if (r.status == DecodeStatus::need_more) break;
    check(r.consumed > 0);
    if (r.status == DecodeStatus::frame) {
      const auto wire = encode(r.frame);
      const auto start = pos + r.skipped;
      check(wire.size() == r.frame_size);
      check(
          std::equal(wire.begin(), wire.end(), input.begin() + static_cast<std::ptrdiff_t>(start)));
      for (auto v : {Version::v2007, Version::v1997}) {
        const auto i = interpret(r.frame, v);
        (void)i;
      }
      whole.push_back(r.frame);
    }
    pos += r.consumed;
  }

  // The same bytes in pieces whose sizes come from the input itself.
  StreamDecoder stream;
  std::vector<Frame> pieces;
  std::size_t at = 0;
  while (at < size) {
    const std::size_t n = std::min<std::size_t>(size - at, 1 + (data[at] % 17));
    stream.feed(input.subspan(at, n));
    at += n;
    while (auto r = stream.next())
      if (r->status == DecodeStatus::frame) pieces.push_back(r->frame);
  }
  check(pieces == whole);
  return 0;
}
