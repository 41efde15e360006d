// libFuzzer target: the streaming DL/T 645 decoder and everything a decoded
// frame goes through (interpretation, catalogue decoding).
// Invariants checked:
//  - one decode step never claims more bytes than it was given, and a
//    decoded frame re-encodes to exactly the bytes it came from;
//  - fed in pieces (then flushed), every frame found at once is found too,
//    unless a frame found in pieces overlaps it (the timing of arrival may
//    decide between two valid frames sharing bytes, nothing else);
//  - junk before a valid frame never loses it: the input, taken as a junk
//    prefix (false heads included), followed by a valid frame, yields that
//    frame, or a frame the junk forms with the frame's own bytes.
#include <algorithm>
#include <array>
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

struct Found {
  std::size_t offset;
  Frame frame;
  std::size_t size() const { return min_frame_size + frame.data.size(); }
};

bool genuine(std::span<const std::uint8_t> input, const Found& f) {
  const auto wire = encode(f.frame);
  return f.offset + wire.size() <= input.size() &&
         std::equal(wire.begin(), wire.end(),
                    input.begin() + static_cast<std::ptrdiff_t>(f.offset));
}

bool kept(const std::vector<Found>& found, const Found& want) {
  for (const auto& f : found) {
    if (f.offset == want.offset && f.frame == want.frame) return true;
    if (f.offset < want.offset + want.size() && f.offset + f.size() > want.offset) return true;
  }
  return false;
}

// Feeds `input` in pieces whose sizes come from the input itself, then
// flushes: every frame with its offset.
std::vector<Found> in_pieces(std::span<const std::uint8_t> input) {
  StreamDecoder stream;
  std::vector<Found> out;
  const auto take = [&](auto&& step) {
    for (;;) {
      const auto base = stream.offset();
      const auto r = step();
      if (!r) break;
      check(r->status != DecodeStatus::need_more);
      if (r->status == DecodeStatus::frame)
        out.push_back({static_cast<std::size_t>(base + r->skipped), r->frame});
    }
  };
  std::size_t at = 0;
  while (at < input.size()) {
    const std::size_t n = std::min<std::size_t>(input.size() - at, 1 + (input[at] % 17));
    stream.feed(input.subspan(at, n));
    at += n;
    take([&] { return stream.next(); });
    check(stream.buffered() <= min_frame_size + max_standard_data + 17);
  }
  take([&] { return stream.flush(); });
  check(stream.buffered() == 0);
  check(stream.offset() == input.size());
  return out;
}

// Answers the junk is put in front of (from tests/data/dlt645/vectors.json):
// a 2007 energy answer, a 2007 error answer, a 1997 read request.
const std::array<std::vector<std::uint8_t>, 3> answers{{
    {0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x91, 0x08,
     0x33, 0x33, 0x34, 0x33, 0xAB, 0x89, 0x67, 0x45, 0xCC, 0x16},
    {0x68, 0x12, 0x00, 0x00, 0x00, 0x10, 0x20, 0x68, 0xD1, 0x01, 0x35, 0x19, 0x16},
    {0x68, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x68, 0x01, 0x02, 0x44, 0xE9, 0x03, 0x16},
}};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);

  std::vector<Found> whole;
  std::size_t pos = 0;
  while (pos < size) {
    const auto r = decode(input.subspan(pos));
    check(r.consumed <= size - pos);
    check(r.skipped <= r.consumed || r.status == DecodeStatus::need_more);
    if (r.status == DecodeStatus::need_more) break;
    check(r.consumed > 0);
    if (r.status == DecodeStatus::frame) {
      const Found f{pos + r.skipped, r.frame};
      check(f.size() == r.frame_size);
      check(genuine(input, f));
      for (auto v : {Version::v2007, Version::v1997}) {
        const auto i = interpret(r.frame, v);
        (void)i;
      }
      whole.push_back(f);
    }
    pos += r.consumed;
  }

  const auto pieces = in_pieces(input);
  for (const auto& f : pieces) check(genuine(input, f));
  for (const auto& f : whole) check(kept(pieces, f));

  // Junk prefix property.
  std::vector<std::uint8_t> line(input.begin(), input.end());
  const auto& answer = answers[size % answers.size()];
  line.insert(line.end(), answer.begin(), answer.end());
  const auto parsed = decode(answer);
  check(parsed.status == DecodeStatus::frame);
  const Found want{size, parsed.frame};
  std::vector<Found> captured;
  for (const auto& item : decode_all(line))
    if (item.result.status == DecodeStatus::frame)
      captured.push_back({item.offset, item.result.frame});
  check(kept(captured, want));
  check(kept(in_pieces(line), want));
  return 0;
}
