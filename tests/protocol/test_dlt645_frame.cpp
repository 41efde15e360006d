// The link layer: addresses, checksums, the +33H scrambling, and the
// streaming decoder against noise, wake-up bytes, corruption and arbitrary
// splits of the input.
#include <algorithm>
#include <random>

#include <doctest/doctest.h>

#include "protocol/dlt645/control.hpp"
#include "protocol/dlt645/frame.hpp"
#include "protocol/dlt645/values.hpp"

using namespace meterd::protocol::dlt645;

namespace {

std::vector<std::uint8_t> hex(const char* text) { return *parse_hex(text); }

Frame random_frame(std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255), digit(0, 9), len(0, 200);
  std::string digits;
  for (int i = 0; i < 12; ++i) digits += static_cast<char>('0' + digit(rng));
  Frame f{*Address::parse(digits), static_cast<std::uint8_t>(byte(rng)), {}};
  f.data.resize(static_cast<std::size_t>(len(rng)));
  for (auto& b : f.data) b = static_cast<std::uint8_t>(byte(rng));
  return f;
}

std::vector<std::uint8_t> noise(std::mt19937& rng, std::size_t n, bool allow_start_byte) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<std::uint8_t> out;
  while (out.size() < n) {
    const auto b = static_cast<std::uint8_t>(byte(rng));
    if (b == start_byte && !allow_start_byte) continue;
    out.push_back(b);
  }
  return out;
}

struct Stream {
  std::vector<std::uint8_t> bytes;
  std::vector<Frame> intact;  // frames that must come out, in order
  std::size_t corrupted = 0;
};

// Frames with 0–4 FE, noise between them, and some frames with one byte
// changed (never the first 68H, so each is a bad candidate, not noise).
Stream make_stream(std::mt19937& rng, std::size_t frames, bool noisy_68) {
  Stream s;
  std::uniform_int_distribution<int> pre(0, 4), gap(0, 20), pct(0, 99);
  for (std::size_t i = 0; i < frames; ++i) {
    auto n = noise(rng, static_cast<std::size_t>(gap(rng)), noisy_68);
    s.bytes.insert(s.bytes.end(), n.begin(), n.end());
    const Frame f = random_frame(rng);
    auto wire = encode(f, static_cast<std::size_t>(pre(rng)));
    if (pct(rng) < 15) {
      const std::size_t first = wire.size() - (min_frame_size + f.data.size());
      std::uniform_int_distribution<std::size_t> at(first + 1, wire.size() - 1);
      const std::size_t k = at(rng);
      if (k == first + 7) {  // second 68H: still a corrupted frame, handled as noise
        wire[k] ^= 0x01;
      } else {
        wire[k] = static_cast<std::uint8_t>(wire[k] + 1 + pct(rng) % 200);
      }
      ++s.corrupted;
    } else {
      s.intact.push_back(f);
    }
    s.bytes.insert(s.bytes.end(), wire.begin(), wire.end());
  }
  // End on an intact frame so nothing is left half-read at the end.
  const Frame last = random_frame(rng);
  const auto wire = encode(last, 4);
  s.bytes.insert(s.bytes.end(), wire.begin(), wire.end());
  s.intact.push_back(last);
  return s;
}

std::vector<Frame> run(StreamDecoder& d, std::span<const std::uint8_t> bytes,
                       const std::vector<std::size_t>& cuts) {
  std::vector<Frame> out;
  std::size_t pos = 0;
  for (std::size_t cut : cuts) {
    d.feed(bytes.subspan(pos, cut - pos));
    pos = cut;
    while (auto r = d.next())
      if (r->status == DecodeStatus::frame) out.push_back(r->frame);
  }
  return out;
}

// Every intact frame comes out, in order. Corrupted candidates that the
// noise turns into frames are impossible by construction (one byte changed
// always breaks the checksum or the end byte), so the lists must match.
void check_same(const std::vector<Frame>& got, const std::vector<Frame>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i] == want[i]);
}

}  // namespace

TEST_CASE("address: printed digits, wire order, wildcards, broadcast") {
  const auto a = Address::parse("123456789012");
  REQUIRE(a);
  CHECK(a->wire() == std::array<std::uint8_t, 6>{0x12, 0x90, 0x78, 0x56, 0x34, 0x12});
  CHECK(a->to_string() == "123456789012");
  CHECK(Address::parse("1")->to_string() == "000000000001");
  CHECK_FALSE(Address::parse("1234567890123"));
  CHECK_FALSE(Address::parse("12345678901x"));
  CHECK_FALSE(Address::parse(""));
  CHECK(Address::broadcast().is_broadcast());
  CHECK(Address::broadcast().to_string() == "999999999999");
  const auto short_addr = Address::parse("AAAAAA789012");
  REQUIRE(short_addr);
  CHECK(short_addr->has_wildcard());
  CHECK(short_addr->addresses(*a));
  CHECK_FALSE(short_addr->addresses(*Address::parse("123456789013")));
  CHECK(Address::wildcard().addresses(*a));
  CHECK(a->addresses(*a));
  CHECK_FALSE(a->addresses(*Address::parse("123456789013")));
}

TEST_CASE("scrambling is +33H and -33H modulo 256") {
  std::vector<std::uint8_t> d{0x00, 0xCD, 0xFF, 0x33};
  scramble(d);
  CHECK(d == std::vector<std::uint8_t>{0x33, 0x00, 0x32, 0x66});
  unscramble(d);
  CHECK(d == std::vector<std::uint8_t>{0x00, 0xCD, 0xFF, 0x33});
}

TEST_CASE("control code bits") {
  CHECK(control::is_response(0x91));
  CHECK_FALSE(control::is_abnormal(0x91));
  CHECK(control::is_abnormal(0xD1));
  CHECK(control::has_follow_up(0xB1));
  CHECK(control::function(0xB2) == 0x12);
  CHECK(infer_version(0x11, 4) == Version::v2007);
  CHECK(infer_version(0x81, 4) == Version::v1997);
  CHECK(infer_version(0xC1, 1) == Version::v1997);
  CHECK(infer_version(0x03, 0) == Version::v1997);
  CHECK(infer_version(0x03, 12) == Version::v2007);
  CHECK(infer_version(0x08, 6) == Version::v2007);
  CHECK(infer_version(0x90, 0) == Version::v1997);
  CHECK(function_name(Version::v2007, 0x1C) == "relay control");
  CHECK(function_name(Version::v1997, 0x0C) == "change baud rate");
  CHECK(function_name(Version::v2007, 0x1E) == "unknown function 1E");
}

TEST_CASE("error words read differently in 2007 and 1997") {
  CHECK(error_meaning(Version::v2007, 0x02) == "no requested data");
  CHECK(error_meaning(Version::v1997, 0x02) == "data identifier error");
  CHECK(error_meaning(Version::v2007, 0x01) == "other error");
  CHECK(error_meaning(Version::v1997, 0x01) == "illegal data");
  CHECK(error_meaning(Version::v2007, 0x08) == "baud rate cannot be changed");
  CHECK(error_meaning(Version::v1997, 0x08) == "reserved bit 3");
  CHECK(error_meaning(Version::v2007, 0x44) ==
        "password error or unauthorised; tariff count exceeded");
  CHECK(security_error_meaning(0x0004) == "ESAM verification failed");
}

TEST_CASE("baud-rate characteristic word") {
  CHECK(baud_word(2400) == 0x08);
  CHECK(baud_word(19200) == 0x40);
  CHECK_FALSE(baud_word(2401));
  CHECK(baud_from_word(0x04) == 1200u);
  CHECK_FALSE(baud_from_word(0x0C));
}

TEST_CASE("decode: need more, then frame, with any number of FE") {
  const auto bytes =
      hex("FE FE FE FE FE FE FE 68 12 90 78 56 34 12 68 91 08 33 33 34 33 AB 89 67 45 CC 16");
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const auto r = decode(std::span(bytes).first(n));
    CHECK(r.status == DecodeStatus::need_more);
    CHECK(r.consumed <= n);
  }
  const auto r = decode(bytes);
  REQUIRE(r.status == DecodeStatus::frame);
  CHECK(r.skipped == 7);
  CHECK(r.consumed == bytes.size());
}

TEST_CASE("decode: need_more reports how many bytes are missing") {
  const auto bytes = hex("68 12 90 78 56 34 12 68 91 08 33 33 34");
  const auto r = decode(bytes);
  CHECK(r.status == DecodeStatus::need_more);
  CHECK(r.need == 20 - bytes.size());
}

TEST_CASE("decode: bad checksum, bad end byte, oversized length resync on the next 68H") {
  SUBCASE("bad checksum") {
    const auto r = decode(hex("68 12 90 78 56 34 12 68 11 04 33 33 34 33 69 16"));
    REQUIRE(r.status == DecodeStatus::error);
    CHECK(r.error == FrameError::bad_checksum);
    CHECK(describe(r) == "checksum: got 69, expected 68");
    CHECK(r.consumed == 1);
  }
  SUBCASE("bad end") {
    const auto r = decode(hex("68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 17"));
    REQUIRE(r.status == DecodeStatus::error);
    CHECK(r.error == FrameError::bad_end);
  }
  SUBCASE("length above 200") {
    const auto r = decode(hex("68 12 90 78 56 34 12 68 91 C9"));
    REQUIRE(r.status == DecodeStatus::error);
    CHECK(r.error == FrameError::length_exceeded);
    DecodeOptions wide;
    wide.max_data = 255;
    CHECK(decode(hex("68 12 90 78 56 34 12 68 91 C9"), wide).status == DecodeStatus::need_more);
  }
  SUBCASE("a real frame right after a false header is found") {
    auto bytes = hex("68 00 00 68");  // a stray 68 68 in the noise
    const auto good = hex("68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16");
    bytes.insert(bytes.end(), good.begin(), good.end());
    const auto items = decode_all(bytes);
    REQUIRE(items.size() >= 1);
    CHECK(items.back().result.status == DecodeStatus::frame);
    CHECK(items.back().offset == 4);
  }
}

TEST_CASE("decode_all names a truncated frame at the end") {
  const auto items = decode_all(hex("68 12 90 78 56 34 12 68 11 04 33 33"));
  REQUIRE(items.size() == 1);
  CHECK(items[0].result.error == FrameError::truncated);
  CHECK(describe(items[0].result) == "truncated frame: 12 bytes present, 4 more expected");
  const auto header = decode_all(hex("FE FE 68 12 90"));
  REQUIRE(header.size() == 1);
  CHECK(header[0].result.error == FrameError::truncated);
  CHECK(header[0].offset == 2);
}

TEST_CASE("encode -> decode round trip of random frames") {
  std::mt19937 rng(645);
  for (int i = 0; i < 2000; ++i) {
    const Frame f = random_frame(rng);
    const auto wire = encode(f, static_cast<std::size_t>(i % 5));
    const auto r = decode(wire);
    REQUIRE(r.status == DecodeStatus::frame);
    CHECK(r.frame == f);
    CHECK(r.consumed == wire.size());
  }
}

TEST_CASE("streaming: byte by byte, random splits, noise and corrupted frames between") {
  for (std::uint32_t seed = 1; seed <= 30; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    const Stream s = make_stream(rng, 60, false);
    CHECK(s.corrupted > 0);

    // all at once
    StreamDecoder whole;
    check_same(run(whole, s.bytes, {s.bytes.size()}), s.intact);
    CHECK(whole.buffered() == 0);

    // byte by byte
    StreamDecoder single;
    std::vector<std::size_t> every;
    for (std::size_t k = 1; k <= s.bytes.size(); ++k) every.push_back(k);
    check_same(run(single, s.bytes, every), s.intact);

    // random splits
    StreamDecoder split;
    std::vector<std::size_t> cuts;
    std::uniform_int_distribution<std::size_t> step(1, 97);
    for (std::size_t k = step(rng); k < s.bytes.size(); k += step(rng)) cuts.push_back(k);
    cuts.push_back(s.bytes.size());
    check_same(run(split, s.bytes, cuts), s.intact);
  }
}

TEST_CASE("streaming: noise that contains 68H still loses no frame") {
  for (std::uint32_t seed = 100; seed < 120; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    const Stream s = make_stream(rng, 40, true);
    StreamDecoder d;
    std::vector<std::size_t> cuts;
    std::uniform_int_distribution<std::size_t> step(1, 31);
    for (std::size_t k = step(rng); k < s.bytes.size(); k += step(rng)) cuts.push_back(k);
    cuts.push_back(s.bytes.size());
    const auto got = run(d, s.bytes, cuts);
    // Every intact frame appears, in order (a noise 68H can only add errors).
    std::size_t k = 0;
    for (const auto& f : got)
      if (k < s.intact.size() && f == s.intact[k]) ++k;
    CHECK(k == s.intact.size());
  }
}

TEST_CASE("streaming: memory stays bounded under endless noise") {
  std::mt19937 rng(7);
  StreamDecoder d;
  for (int i = 0; i < 1000; ++i) {
    const auto n = noise(rng, 64, true);
    d.feed(n);
    while (d.next()) {
    }
    CHECK(d.buffered() <= min_frame_size + max_standard_data + 64);
  }
  CHECK(d.noise_bytes() > 0);
}

// ---- false and cut-off heads (issue 8) ----------------------------------------

namespace {

struct Found {
  std::size_t offset;
  Frame frame;
};

// Every frame a StreamDecoder reports for `bytes` fed at `cuts`, then
// flushed (end of input), with its stream offset.
std::vector<Found> stream_frames(std::span<const std::uint8_t> bytes,
                                 const std::vector<std::size_t>& cuts) {
  StreamDecoder d;
  std::vector<Found> out;
  const auto take = [&](auto&& step) {
    for (;;) {
      const auto base = d.offset();
      auto r = step();
      if (!r) break;
      if (r->status == DecodeStatus::frame) out.push_back({base + r->skipped, r->frame});
    }
  };
  std::size_t pos = 0;
  for (std::size_t cut : cuts) {
    d.feed(bytes.subspan(pos, cut - pos));
    pos = cut;
    take([&] { return d.next(); });
  }
  take([&] { return d.flush(); });
  CHECK(d.buffered() == 0);
  return out;
}

std::vector<Found> capture_frames(std::span<const std::uint8_t> bytes) {
  std::vector<Found> out;
  for (const auto& item : decode_all(bytes))
    if (item.result.status == DecodeStatus::frame) out.push_back({item.offset, item.result.frame});
  return out;
}

// The property: the frame at [at, at + size) is reported, unless a frame
// the junk formed with its bytes overlaps it (then the line itself is
// ambiguous: both are valid frames).
bool kept(const std::vector<Found>& found, const Frame& frame, std::size_t at, std::size_t size) {
  for (const auto& f : found) {
    if (f.offset == at && f.frame == frame) return true;
    const std::size_t end = f.offset + min_frame_size + f.frame.data.size();
    if (f.offset < at + size && end > at) return true;  // overlaps: ambiguous line
  }
  return false;
}

// Junk a line can carry before an answer: FE, random bytes, 68H, false
// heads (68 A0..A5 68 C L with any L) and the cut-off starts of real frames.
std::vector<std::uint8_t> junk(std::mt19937& rng) {
  std::uniform_int_distribution<int> kind(0, 4), byte(0, 255), small(1, 12);
  std::vector<std::uint8_t> out;
  const int pieces = small(rng) / 2;
  for (int p = 0; p < pieces; ++p) {
    switch (kind(rng)) {
      case 0:
        out.insert(out.end(), static_cast<std::size_t>(small(rng)), wake_byte);
        break;
      case 1:
        for (int k = small(rng); k > 0; --k) out.push_back(static_cast<std::uint8_t>(byte(rng)));
        break;
      case 2:
        out.push_back(start_byte);
        break;
      case 3: {  // a false head, sometimes with a few bytes of "data"
        out.push_back(start_byte);
        for (int k = 0; k < 6; ++k) out.push_back(static_cast<std::uint8_t>(byte(rng)));
        out.push_back(start_byte);
        out.push_back(static_cast<std::uint8_t>(byte(rng)));
        out.push_back(static_cast<std::uint8_t>(byte(rng)));
        for (int k = small(rng) - 6; k > 0; --k)
          out.push_back(static_cast<std::uint8_t>(byte(rng)));
        break;
      }
      case 4: {  // a real frame cut off (a timeout, a collision)
        const auto wire = encode(random_frame(rng));
        std::uniform_int_distribution<std::size_t> cut(1, wire.size() - 1);
        out.insert(out.end(), wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(cut(rng)));
        break;
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("a false head does not hide the frame after it (issue 8 reproduction)") {
  const auto bytes = hex("6811111111111168 6812907856341268910833333433AB896745CC16");
  SUBCASE("one decode step over what was given") {
    const auto r = decode(bytes);
    REQUIRE(r.status == DecodeStatus::frame);
    CHECK(r.skipped == 8);
    CHECK(r.consumed == bytes.size());
    CHECK(r.frame.address.to_string() == "123456789012");
    CHECK(r.frame.control == 0x91);
    CHECK(to_hex(r.frame.data) == "0000010078563412");
  }
  SUBCASE("a capture") {
    const auto found = capture_frames(bytes);
    REQUIRE(found.size() == 1);
    CHECK(found[0].offset == 8);
  }
  SUBCASE("a stream fed byte by byte, then the end of input") {
    std::vector<std::size_t> every;
    for (std::size_t k = 1; k <= bytes.size(); ++k) every.push_back(k);
    const auto found = stream_frames(bytes, every);
    REQUIRE(found.size() == 1);
    CHECK(found[0].offset == 8);
  }
}

TEST_CASE("flush: a candidate cut off by the end is named, and the bytes after it re-scanned") {
  // A cut-off frame whose data holds a whole frame: next() already finds the
  // inner one; flush() then names the cut-off head as truncated.
  auto bytes = hex("68 11 11 11 11 11 11 68 91 30 33 33");
  const auto inner = hex("68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16");
  bytes.insert(bytes.end(), inner.begin(), inner.end());
  StreamDecoder d;
  d.feed(bytes);
  auto r = d.next();
  REQUIRE(r);
  CHECK(r->status == DecodeStatus::frame);
  CHECK(r->skipped == 12);
  CHECK_FALSE(d.next());
  CHECK(d.buffered() == 0);

  // Two heads, neither complete: flush names both and leaves nothing.
  StreamDecoder e;
  e.feed(hex("FE FE 68 11 11 11 11 11 11 68 91 30 68 22 22 22 22 22 22 68 91 05 33"));
  CHECK_FALSE(e.next());
  std::vector<std::size_t> at;
  for (;;) {
    const auto base = e.offset();
    const auto f = e.flush();
    if (!f) break;
    CHECK(f->error == FrameError::truncated);
    at.push_back(base + f->skipped);
  }
  // The end of input is named once, at the first candidate it cut off.
  CHECK(at == std::vector<std::size_t>{2});
  CHECK(e.buffered() == 0);
  CHECK(e.offset() == 23);
}

TEST_CASE("property: no junk prefix, false heads included, loses the frame after it") {
  std::mt19937 rng(8645);
  int ambiguous = 0;
  for (int round = 0; round < 3000; ++round) {
    CAPTURE(round);
    auto bytes = junk(rng);
    const std::size_t at = bytes.size();
    const Frame f = random_frame(rng);
    const auto wire = encode(f);
    bytes.insert(bytes.end(), wire.begin(), wire.end());

    const auto whole = capture_frames(bytes);
    CHECK(kept(whole, f, at, wire.size()));
    // fed in random pieces, as a port delivers them, then the end of input
    std::vector<std::size_t> cuts;
    std::uniform_int_distribution<std::size_t> step(1, 40);
    for (std::size_t k = step(rng); k < bytes.size(); k += step(rng)) cuts.push_back(k);
    cuts.push_back(bytes.size());
    const auto pieces = stream_frames(bytes, cuts);
    CHECK(kept(pieces, f, at, wire.size()));
    if (pieces.empty() || pieces.back().offset != at) ++ambiguous;
  }
  // Junk that happens to form a valid frame over the real one is rare.
  CHECK(ambiguous < 30);
}

TEST_CASE("encode: data over 255 bytes is an error value, L is never truncated") {
  Frame f{*Address::parse("123456789012"), 0x91, std::vector<std::uint8_t>(256, 0x00)};
  CHECK_FALSE(try_encode(f));
  CHECK(encode(f).empty());  // no frame at all rather than one with L = 00
  f.data.resize(max_data_size);
  const auto wire = try_encode(f, 2);
  REQUIRE(wire);
  CHECK(wire->size() == 2 + min_frame_size + 255);
  CHECK((*wire)[2 + 9] == 0xFF);
  DecodeOptions wide;
  wide.max_data = 255;
  const auto r = decode(*wire, wide);
  REQUIRE(r.status == DecodeStatus::frame);
  CHECK(r.frame == f);
}
