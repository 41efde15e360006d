// libFuzzer target: the Modbus RTU and TCP decoders, slave and master side.
// Invariants: never more consumed than given, progress on every error, a
// decoded frame re-encodes to exactly the bytes it came from.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "protocol/modbus_codec/rtu.hpp"
#include "protocol/modbus_codec/tcp.hpp"

using namespace meterd::protocol::modbus;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  std::size_t pos = 0;
  while (pos < size) {
    const auto r = decode_rtu_request(input.subspan(pos), (data[0] & 1) != 0);
    check(r.consumed <= size - pos);
    if (r.status == DecodeStatus::need_more) break;
    check(r.consumed > 0);
    if (r.status == DecodeStatus::frame) {
      const auto wire = encode_rtu(r.pdu);
      check(wire.size() == r.consumed);
      check(std::equal(wire.begin(), wire.end(), input.begin() + static_cast<std::ptrdiff_t>(pos)));
    }
    pos += r.consumed;
  }
  if (size >= 2) {
    const auto r = decode_rtu_response(input.subspan(2), data[0], data[1] & 0x7F, true);
    check(r.consumed <= size - 2);
  }
  pos = 0;
  while (pos < size) {
    const auto r = decode_tcp(input.subspan(pos));
    check(r.consumed <= size - pos);
    if (r.status != DecodeStatus::frame || r.consumed == 0) break;
    pos += r.consumed;
  }
  return 0;
}
