#include "protocol/modbus_codec/tcp.hpp"

namespace meterd::protocol::modbus {

std::array<std::uint8_t, mbap_size> encode_mbap(const MbapHeader& h) {
  return {static_cast<std::uint8_t>(h.transaction >> 8),
          static_cast<std::uint8_t>(h.transaction & 0xFFu),
          static_cast<std::uint8_t>(h.protocol >> 8),
          static_cast<std::uint8_t>(h.protocol & 0xFFu),
          static_cast<std::uint8_t>(h.length >> 8),
          static_cast<std::uint8_t>(h.length & 0xFFu),
          h.unit};
}

MbapResult decode_mbap(std::span<const std::uint8_t> in) {
  MbapResult r;
  if (in.size() < mbap_size) {
    r.need = mbap_size - in.size();
    return r;
  }
  r.status = DecodeStatus::frame;
  r.header.transaction = static_cast<std::uint16_t>((in[0] << 8) | in[1]);
  r.header.protocol = static_cast<std::uint16_t>((in[2] << 8) | in[3]);
  r.header.length = static_cast<std::uint16_t>((in[4] << 8) | in[5]);
  r.header.unit = in[6];
  return r;
}

std::vector<std::uint8_t> encode_tcp(const Pdu& pdu, std::uint16_t transaction) {
  const MbapHeader h{transaction, 0, static_cast<std::uint16_t>(2 + pdu.data.size()), pdu.unit};
  const auto header = encode_mbap(h);
  std::vector<std::uint8_t> out(header.begin(), header.end());
  out.push_back(pdu.function);
  out.insert(out.end(), pdu.data.begin(), pdu.data.end());
  return out;
}

TcpDecodeResult decode_tcp(std::span<const std::uint8_t> in) {
  TcpDecodeResult r;
  const MbapResult m = decode_mbap(in);
  if (m.status == DecodeStatus::need_more) {
    r.need = m.need;
    return r;
  }
  r.header = m.header;
  auto fail = [&r](LinkError e) {
    r.status = DecodeStatus::error;
    r.error = e;
    r.consumed = mbap_size;
    return r;
  };
  if (r.header.protocol != 0) return fail(LinkError::bad_protocol_id);
  if (r.header.length < 2) return fail(LinkError::malformed);
  if (r.header.length > 1 + max_pdu_size) return fail(LinkError::frame_too_long);
  const std::size_t total = mbap_size - 1 + r.header.length;
  if (in.size() < total) {
    r.need = total - in.size();
    return r;
  }
  r.status = DecodeStatus::frame;
  r.consumed = total;
  r.pdu.unit = r.header.unit;
  r.pdu.function = in[mbap_size];
  r.pdu.data.assign(in.begin() + static_cast<std::ptrdiff_t>(mbap_size) + 1,
                    in.begin() + static_cast<std::ptrdiff_t>(total));
  if (r.pdu.is_exception()) {
    r.error = exception_of(r.pdu);
    if (is_link_error(r.error)) r.status = DecodeStatus::error;
  }
  return r;
}

}  // namespace meterd::protocol::modbus
