// DL/T 645 link-layer frames (identical in 1997 and 2007; DL/T 645-2007 §4,
// DL/T 645-1997 §4): encode, and a streaming, sans-I/O decoder.
//
//   [FE..]  68  A0..A5  68  C  L  D0..D(L-1)  CS  16
//
// CS is the byte sum mod 256 from the first 68H through the last data byte;
// every data byte travels +33H (mod 256). All functions here are pure and
// may be called from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace meterd::protocol::dlt645 {

inline constexpr std::uint8_t start_byte = 0x68;
inline constexpr std::uint8_t end_byte = 0x16;
inline constexpr std::uint8_t wake_byte = 0xFE;
inline constexpr std::uint8_t scramble_offset = 0x33;
inline constexpr std::size_t min_frame_size = 12;      // L = 0
inline constexpr std::size_t max_standard_data = 200;  // 2007 read answer limit
inline constexpr std::size_t max_data_size = 255;      // L is one byte

// Six address bytes as they travel: A0 (lowest two digits) first.
// Digits are BCD, or AA for the short-addressing wildcard.
class Address {
 public:
  constexpr Address() = default;
  static constexpr Address from_wire(std::array<std::uint8_t, 6> bytes) { return Address(bytes); }
  // "123456789012" (most significant digit first, as printed on the meter).
  // Shorter strings are padded with 0 in the high digits; "AA" pairs are
  // accepted as wildcards. nullopt for anything else.
  static std::optional<Address> parse(std::string_view digits);
  static Address broadcast();  // 999999999999: time sync and freeze only
  static Address wildcard();   // AAAAAAAAAAAA: point-to-point only

  const std::array<std::uint8_t, 6>& wire() const noexcept { return bytes_; }
  // 12 characters, most significant first; a wildcard pair prints as "AA",
  // any other non-BCD byte as its two hex digits.
  std::string to_string() const;
  bool is_broadcast() const noexcept;
  bool has_wildcard() const noexcept;
  // True if a meter whose real address is `meter` must answer a frame sent
  // to this address (exact match, or AA pairs in the high bytes).
  bool addresses(const Address& meter) const noexcept;

  friend bool operator==(const Address&, const Address&) = default;

 private:
  constexpr explicit Address(std::array<std::uint8_t, 6> b) : bytes_(b) {}
  std::array<std::uint8_t, 6> bytes_{};
};

// One frame, with its data field already unscrambled (−33H).
struct Frame {
  Address address;
  std::uint8_t control = 0;
  std::vector<std::uint8_t> data;

  friend bool operator==(const Frame&, const Frame&) = default;
};

// Frame -> wire bytes: `preamble` × FE, header, data +33H, CS, 16H.
// nullopt if the data field does not fit the one-byte L (more than 255
// bytes): L is never truncated.
std::optional<std::vector<std::uint8_t>> try_encode(const Frame& frame, std::size_t preamble = 0);
// The same for frames known to fit (requests, meter answers of at most 200
// data bytes); an oversized frame gives an empty vector, never a frame.
std::vector<std::uint8_t> encode(const Frame& frame, std::size_t preamble = 0);

std::uint8_t checksum(std::span<const std::uint8_t> bytes) noexcept;
void scramble(std::span<std::uint8_t> data) noexcept;    // +33H mod 256
void unscramble(std::span<std::uint8_t> data) noexcept;  // −33H mod 256

// Link-level decode errors. A meter's own error answer (ERR word) is not
// one of these: it is a well-formed frame with the abnormal bit set.
enum class FrameError {
  bad_checksum = 1,  // CS does not match the bytes it covers
  bad_end,           // byte after CS is not 16H
  length_exceeded,   // L above the decoder's limit
  truncated,         // input ended inside a frame (decode_all, StreamDecoder::flush)
};
const std::error_category& frame_category() noexcept;
std::error_code make_error_code(FrameError e) noexcept;

struct DecodeOptions {
  // Largest L accepted. 200 is the 2007 limit; a header announcing more is
  // taken as line noise that happened to look like a header, and skipped.
  std::size_t max_data = max_standard_data;
};

enum class DecodeStatus { frame, need_more, error };

// Result of one decode step over the head of a byte stream.
//  - frame:     `frame` holds it; drop `consumed` bytes (noise + frame).
//  - need_more: no whole frame yet; `consumed` leading bytes are noise and
//               may be dropped, keep the rest and append more input.
//  - error:     a candidate frame starting after `skipped` noise bytes was
//               bad; drop `consumed` bytes (through that frame's first 68H)
//               and call again: the decoder resynchronises on the next 68H.
struct DecodeResult {
  DecodeStatus status = DecodeStatus::need_more;
  std::size_t consumed = 0;
  std::size_t skipped = 0;     // noise/wake-up bytes before the frame or error
  std::size_t frame_size = 0;  // bytes of the frame or bad candidate (from its 68H)
  Frame frame;
  std::error_code error;
  std::uint8_t got = 0;       // bad_checksum: CS on the wire; bad_end: the byte found
  std::uint8_t expected = 0;  // bad_checksum: CS computed
  std::size_t need = 0;       // need_more: bytes still missing, when known (else 0)
};

// Looks at the head of `input` only; never reads outside it. Skips FE and
// any byte that does not start a plausible header (68 + 6 bytes + 68).
// A candidate that cannot be complete yet (a false head, or a frame cut off
// by a timeout) does not hide a frame behind it: if a later 68H in `input`
// starts a frame that is already whole and valid, that frame is returned
// (status frame, `skipped` counting the bytes before it, the abandoned
// candidate included). Otherwise need_more.
DecodeResult decode(std::span<const std::uint8_t> input, const DecodeOptions& options = {});

// A whole capture: every frame and every error, in order. A candidate cut
// off by the end of input is reported as `truncated`, and the bytes after
// its first 68H are scanned again, so a frame inside it is still found.
// Holds every item: for large captures use StreamDecoder (bounded memory).
struct CaptureItem {
  std::size_t offset = 0;  // position of the frame's first 68H in the input
  DecodeResult result;
};
std::vector<CaptureItem> decode_all(std::span<const std::uint8_t> input,
                                    const DecodeOptions& options = {});

// Incremental decoding over a byte stream (a serial port, a pty): feed
// what arrived, then take frames and errors until next() says "need more".
// Holds at most one candidate frame plus what was fed after it, so its
// memory stays bounded by the caller's feed sizes. Not thread-safe: one
// owner (the bus worker).
class StreamDecoder {
 public:
  explicit StreamDecoder(DecodeOptions options = {}) : options_(options) {}

  void feed(std::span<const std::uint8_t> bytes);
  // The next frame or error (status frame | error), or nullopt when a whole
  // frame has not arrived yet.
  std::optional<DecodeResult> next();
  // End of input (a response timeout, the end of a capture): no more bytes
  // will complete what is buffered. Returns frames and errors like next(),
  // then names the candidate that will never be whole as `truncated` (once)
  // and re-scans the bytes after its first 68H; call until nullopt, after
  // which nothing is buffered. Use this instead of reset() on a timeout:
  // a false head must not take the real answer behind it down with it.
  std::optional<DecodeResult> flush();
  // Drops everything buffered, unexamined.
  void reset() noexcept {
    offset_ += buffer_.size();
    buffer_.clear();
  }

  std::size_t buffered() const noexcept { return buffer_.size(); }
  std::uint64_t noise_bytes() const noexcept { return noise_; }  // skipped, in total
  // Stream position of the first buffered byte (bytes dropped so far). A
  // result's frame or candidate starts at offset() (read before the call
  // that returned it) + its `skipped`.
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  void drop(std::size_t n);

  DecodeOptions options_;
  std::vector<std::uint8_t> buffer_;
  std::uint64_t noise_ = 0;
  std::uint64_t offset_ = 0;
  bool cut_off_ = false;  // flush(): the end of input is already named
};

// Human text for a FrameError with its details ("checksum: got 5D, expected 6D").
std::string describe(const DecodeResult& error_result);

}  // namespace meterd::protocol::dlt645

template <>
struct std::is_error_code_enum<meterd::protocol::dlt645::FrameError> : std::true_type {};
