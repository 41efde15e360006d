#include "protocol/dlt645/frame.hpp"

#include <algorithm>
#include <cstdio>

#include "protocol/bcd.hpp"

namespace meterd::protocol::dlt645 {

namespace {

constexpr std::uint8_t wildcard_byte = 0xAA;
constexpr std::size_t header_size = 10;  // 68 A0..A5 68 C L

std::string hex2(std::uint8_t b) {
  char buf[3];
  std::snprintf(buf, sizeof buf, "%02X", b);
  return buf;
}

class FrameCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "dlt645.frame"; }
  std::string message(int ev) const override {
    switch (static_cast<FrameError>(ev)) {
      case FrameError::bad_checksum:
        return "bad checksum";
      case FrameError::bad_end:
        return "end byte is not 16H";
      case FrameError::length_exceeded:
        return "length field exceeds the limit";
      case FrameError::truncated:
        return "truncated frame";
    }
    return "unknown frame error";
  }
};

}  // namespace

// ---- Address ---------------------------------------------------------------

std::optional<Address> Address::parse(std::string_view digits) {
  if (digits.empty() || digits.size() > 12) return std::nullopt;
  std::string padded(12 - digits.size(), '0');
  padded += digits;
  std::array<std::uint8_t, 6> bytes{};
  for (std::size_t pair = 0; pair < 6; ++pair) {
    // pair 0 is the most significant pair of digits, which travels last (A5).
    const char hi = padded[pair * 2];
    const char lo = padded[pair * 2 + 1];
    if ((hi == 'A' || hi == 'a') && (lo == 'A' || lo == 'a')) {
      bytes[5 - pair] = wildcard_byte;
      continue;
    }
    const auto value = bcd::parse_pair(hi, lo);
    if (!value) return std::nullopt;
    bytes[5 - pair] = *value;
  }
  return Address(bytes);
}

Address Address::broadcast() { return Address({0x99, 0x99, 0x99, 0x99, 0x99, 0x99}); }
Address Address::wildcard() { return Address({0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA}); }

std::string Address::to_string() const {
  std::string out;
  out.reserve(12);
  for (std::size_t i = 6; i-- > 0;) out += hex2(bytes_[i]);
  return out;
}

bool Address::is_broadcast() const noexcept { return *this == broadcast(); }

bool Address::has_wildcard() const noexcept {
  for (auto b : bytes_)
    if (b == wildcard_byte) return true;
  return false;
}

bool Address::addresses(const Address& meter) const noexcept {
  // Short addressing (缩位寻址): AA fills the high bytes; the low bytes must
  // match. A wildcard byte below a non-wildcard one is not a valid pattern.
  bool in_wildcard_run = true;
  for (std::size_t i = 6; i-- > 0;) {
    if (bytes_[i] == wildcard_byte && in_wildcard_run) continue;
    in_wildcard_run = false;
    if (bytes_[i] != meter.bytes_[i]) return false;
  }
  return true;
}

// ---- bytes -----------------------------------------------------------------

std::uint8_t checksum(std::span<const std::uint8_t> bytes) noexcept {
  unsigned sum = 0;
  for (auto b : bytes) sum += b;
  return static_cast<std::uint8_t>(sum & 0xFF);
}

void scramble(std::span<std::uint8_t> data) noexcept {
  for (auto& b : data) b = static_cast<std::uint8_t>(b + scramble_offset);
}

void unscramble(std::span<std::uint8_t> data) noexcept {
  for (auto& b : data) b = static_cast<std::uint8_t>(b - scramble_offset);
}

std::optional<std::vector<std::uint8_t>> try_encode(const Frame& frame, std::size_t preamble) {
  // L is one byte (§4.1): a longer data field cannot be framed; truncating L
  // would put a frame on the wire whose checksum covers bytes L does not.
  if (frame.data.size() > max_data_size) return std::nullopt;
  std::vector<std::uint8_t> out(preamble, wake_byte);
  out.reserve(preamble + min_frame_size + frame.data.size());
  const std::size_t start = out.size();
  out.push_back(start_byte);
  out.insert(out.end(), frame.address.wire().begin(), frame.address.wire().end());
  out.push_back(start_byte);
  out.push_back(frame.control);
  out.push_back(static_cast<std::uint8_t>(frame.data.size()));
  const std::size_t data_at = out.size();
  out.insert(out.end(), frame.data.begin(), frame.data.end());
  scramble(std::span(out).subspan(data_at));
  out.push_back(checksum(std::span(out).subspan(start)));
  out.push_back(end_byte);
  return out;
}

std::vector<std::uint8_t> encode(const Frame& frame, std::size_t preamble) {
  auto out = try_encode(frame, preamble);
  return out ? std::move(*out) : std::vector<std::uint8_t>{};
}

// ---- decoding --------------------------------------------------------------

const std::error_category& frame_category() noexcept {
  static const FrameCategory category;
  return category;
}

std::error_code make_error_code(FrameError e) noexcept {
  return {static_cast<int>(e), frame_category()};
}

namespace {

// A complete, valid frame starting exactly at `at` (its first 68H), or
// nullopt. Used to look past a candidate that cannot be complete yet.
std::optional<std::size_t> complete_frame_at(std::span<const std::uint8_t> input, std::size_t at,
                                             const DecodeOptions& options) {
  const std::size_t n = input.size();
  if (n - at < min_frame_size || input[at + 7] != start_byte) return std::nullopt;
  const std::size_t length = input[at + 9];
  const std::size_t total = min_frame_size + length;
  if (length > options.max_data || n - at < total) return std::nullopt;
  if (checksum(input.subspan(at, header_size + length)) != input[at + header_size + length])
    return std::nullopt;
  if (input[at + total - 1] != end_byte) return std::nullopt;
  return total;
}

void take_frame(std::span<const std::uint8_t> input, std::size_t at, std::size_t total,
                DecodeResult& r) {
  std::array<std::uint8_t, 6> address{};
  for (std::size_t k = 0; k < 6; ++k) address[k] = input[at + 1 + k];
  r.frame.address = Address::from_wire(address);
  r.frame.control = input[at + 8];
  r.frame.data.assign(input.begin() + static_cast<std::ptrdiff_t>(at + header_size),
                      input.begin() + static_cast<std::ptrdiff_t>(at + total - 2));
  unscramble(r.frame.data);
  r.status = DecodeStatus::frame;
  r.skipped = at;
  r.frame_size = total;
  r.consumed = at + total;
  r.error = {};
  r.need = 0;
}

}  // namespace

DecodeResult decode(std::span<const std::uint8_t> input, const DecodeOptions& options) {
  DecodeResult r;
  const std::size_t n = input.size();
  std::size_t i = 0;
  for (;;) {
    while (i < n && input[i] != start_byte) ++i;
    r.skipped = i;
    if (n - i < 8) {  // cannot yet see whether the second 68H is there
      r.status = DecodeStatus::need_more;
      r.consumed = i;
      r.need = i < n ? header_size - (n - i) : 0;
      return r;
    }
    if (input[i + 7] != start_byte) {  // a 68H in line noise: keep searching
      ++i;
      continue;
    }
    if (n - i < header_size) {
      r.status = DecodeStatus::need_more;
      r.consumed = i;
      r.need = header_size - (n - i);
      return r;
    }
    const std::size_t length = input[i + 9];
    const std::size_t total = min_frame_size + length;
    r.frame_size = total;
    if (length > options.max_data) {
      r.status = DecodeStatus::error;
      r.error = FrameError::length_exceeded;
      r.got = static_cast<std::uint8_t>(length);
      r.expected = static_cast<std::uint8_t>(std::min<std::size_t>(options.max_data, 255));
      r.consumed = i + 1;
      return r;
    }
    if (n - i < total) {
      // The candidate may be a false or cut-off head. A frame that starts
      // inside it and is already whole and valid must not wait behind it
      // (the head could promise bytes that never come), so look for one.
      for (std::size_t j = i + 1; j + min_frame_size <= n; ++j) {
        if (input[j] != start_byte) continue;
        if (const auto whole = complete_frame_at(input, j, options)) {
          take_frame(input, j, *whole, r);
          return r;
        }
      }
      r.status = DecodeStatus::need_more;
      r.consumed = i;
      r.need = total - (n - i);
      return r;
    }
    const auto covered = input.subspan(i, header_size + length);
    const std::uint8_t cs = checksum(covered);
    const std::uint8_t wire_cs = input[i + header_size + length];
    if (cs != wire_cs) {
      r.status = DecodeStatus::error;
      r.error = FrameError::bad_checksum;
      r.got = wire_cs;
      r.expected = cs;
      r.consumed = i + 1;
      return r;
    }
    const std::uint8_t end = input[i + header_size + length + 1];
    if (end != end_byte) {
      r.status = DecodeStatus::error;
      r.error = FrameError::bad_end;
      r.got = end;
      r.expected = end_byte;
      r.consumed = i + 1;
      return r;
    }
    take_frame(input, i, total, r);
    return r;
  }
}

std::vector<CaptureItem> decode_all(std::span<const std::uint8_t> input,
                                    const DecodeOptions& options) {
  std::vector<CaptureItem> items;
  std::size_t pos = 0;
  bool cut_off = false;  // the end of input is already named as truncated
  while (pos < input.size()) {
    auto r = decode(input.subspan(pos), options);
    const std::size_t at = pos + r.skipped;
    if (r.status == DecodeStatus::need_more) {
      if (r.consumed == input.size() - pos) break;  // only noise left
      // A candidate cut off by the end of the input: name it (once: later
      // candidates lie inside it), then re-scan the bytes after its first
      // 68H, where a whole frame may start.
      if (!cut_off) {
        r.status = DecodeStatus::error;
        r.error = FrameError::truncated;
        r.frame_size = input.size() - at;
        items.push_back({at, std::move(r)});
        cut_off = true;
      }
      pos = at + 1;
      continue;
    }
    if (r.status == DecodeStatus::frame) cut_off = false;
    pos += r.consumed;
    items.push_back({at, std::move(r)});
  }
  return items;
}

void StreamDecoder::feed(std::span<const std::uint8_t> bytes) {
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  cut_off_ = false;
}

void StreamDecoder::drop(std::size_t n) {
  buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(n));
  offset_ += n;
}

std::optional<DecodeResult> StreamDecoder::next() {
  auto r = decode(buffer_, options_);
  noise_ += r.skipped;
  drop(r.consumed);
  if (r.status == DecodeStatus::need_more) return std::nullopt;
  return r;
}

std::optional<DecodeResult> StreamDecoder::flush() {
  for (;;) {
    if (auto r = next()) {
      if (r->status == DecodeStatus::frame) cut_off_ = false;
      return r;
    }
    if (buffer_.empty()) {
      cut_off_ = false;
      return std::nullopt;
    }
    // What is left starts with a 68H (next() dropped the noise before it):
    // a candidate that will never be whole. Name it (once: later candidates
    // lie inside it) and drop only its first 68H, so the bytes after it are
    // scanned again.
    DecodeResult r = decode(buffer_, options_);
    r.status = DecodeStatus::error;
    r.error = FrameError::truncated;
    r.frame_size = buffer_.size() - r.skipped;
    r.consumed = r.skipped + 1;
    drop(r.consumed);
    if (!cut_off_) {
      cut_off_ = true;
      return r;
    }
  }
}

std::string describe(const DecodeResult& r) {
  if (r.error == FrameError::bad_checksum)
    return "checksum: got " + hex2(r.got) + ", expected " + hex2(r.expected);
  if (r.error == FrameError::bad_end) return "end byte: got " + hex2(r.got) + ", expected 16";
  if (r.error == FrameError::length_exceeded)
    return "length: L=" + std::to_string(r.got) + " exceeds the limit of " +
           std::to_string(r.expected) + " data bytes";
  if (r.error == FrameError::truncated) {
    if (r.need > 0)
      return "truncated frame: " + std::to_string(r.frame_size) + " bytes present, " +
             std::to_string(r.need) + " more expected";
    return "truncated frame: input ends inside a frame header";
  }
  return r.error ? r.error.message() : "no error";
}

}  // namespace meterd::protocol::dlt645
