#include "protocol/modbus_codec/rtu.hpp"

#include <cstddef>

namespace meterd::protocol::modbus {

namespace {

// What the header seen so far says about the frame length.
struct Length {
  enum Kind { known, need, unknown, too_long, unexpected } kind = need;
  std::size_t value = 0;  // known: frame size; need: bytes missing
};

Length need(std::size_t have, std::size_t want) { return {Length::need, want - have}; }

// Frame whose byte count sits at `count_at`, followed by `count` bytes and
// the CRC: libmodbus compute_data_length_after_meta.
Length counted(std::span<const std::uint8_t> in, std::size_t count_at) {
  if (in.size() <= count_at) return need(in.size(), count_at + 1);
  const std::size_t total = count_at + 1 + in[count_at] + 2;
  if (total > max_rtu_size) return {Length::too_long, 0};
  return {Length::known, total};
}

// libmodbus compute_meta_length_after_function (MSG_INDICATION), extended
// with the other public function codes of §5.1 so that a slave can answer
// them with exception 01 instead of dropping them.
Length request_length(std::span<const std::uint8_t> in) {
  if (in.size() < 2) return need(in.size(), 2);
  switch (in[1]) {
    case fc::read_coils:
    case fc::read_discrete_inputs:
    case fc::read_holding_registers:
    case fc::read_input_registers:
    case fc::write_single_coil:
    case fc::write_single_register:
    case fc::diagnostics:  // sub-function (2) + data (2)
      return {Length::known, 8};
    case fc::read_exception_status:
    case fc::get_comm_event_counter:
    case fc::get_comm_event_log:
    case fc::report_server_id:
      return {Length::known, 4};
    case fc::write_multiple_coils:
    case fc::write_multiple_registers:
      return counted(in, 6);  // unit fc addr(2) qty(2) | count
    case fc::mask_write_register:
      return {Length::known, 10};
    case fc::read_write_multiple_registers:
      return counted(in, 10);  // unit fc raddr rqty waddr wqty | count
    case fc::encapsulated_interface:
      if (in.size() < 3) return need(in.size(), 3);
      if (in[2] == 0x0E) return {Length::known, 7};  // MEI type, read code, object id
      return {Length::unknown, 0};
    default:
      return {Length::unknown, 0};
  }
}

// libmodbus compute_meta_length_after_function (MSG_CONFIRMATION).
Length response_length(std::span<const std::uint8_t> in, std::uint8_t expected) {
  if (in.size() < 2) return need(in.size(), 2);
  if (in[1] == (expected | fc::exception_flag)) return {Length::known, 5};
  if (in[1] != expected) return {Length::unexpected, 0};
  switch (expected) {
    case fc::read_coils:
    case fc::read_discrete_inputs:
    case fc::read_holding_registers:
    case fc::read_input_registers:
    case fc::get_comm_event_log:
    case fc::report_server_id:
    case fc::read_write_multiple_registers:
      return counted(in, 2);
    case fc::write_single_coil:
    case fc::write_single_register:
    case fc::diagnostics:
    case fc::get_comm_event_counter:
    case fc::write_multiple_coils:
    case fc::write_multiple_registers:
      return {Length::known, 8};
    case fc::read_exception_status:
      return {Length::known, 5};
    case fc::mask_write_register:
      return {Length::known, 10};
    default:
      return {Length::unknown, 0};
  }
}

DecodeResult fail(LinkError e, std::size_t consumed) {
  DecodeResult r;
  r.status = DecodeStatus::error;
  r.error = e;
  r.consumed = consumed;
  return r;
}

// Shared tail of both decoders once the length rule has spoken.
// `hunt`: the slave side, which drops only 1 byte after a bad candidate.
DecodeResult finish(std::span<const std::uint8_t> in, const Length& length, bool complete,
                    bool hunt) {
  switch (length.kind) {
    case Length::need:
      break;
    case Length::unknown:
      return fail(LinkError::unknown_function, 1);
    case Length::unexpected:
      return fail(LinkError::unexpected_function, 1);
    case Length::too_long:
      return fail(LinkError::frame_too_long, 1);
    case Length::known:
      if (in.size() >= length.value) {
        const auto frame = in.first(length.value);
        DecodeResult r;
        r.frame_size = length.value;
        r.consumed = length.value;
        r.got_crc = carried_crc(frame);
        r.expected_crc = crc16(frame.first(length.value - 2));
        if (r.got_crc != r.expected_crc) {
          r.status = DecodeStatus::error;
          r.error = LinkError::bad_crc;
          if (hunt) r.consumed = 1;
          return r;
        }
        r.status = DecodeStatus::frame;
        r.pdu.unit = frame[0];
        r.pdu.function = frame[1];
        r.pdu.data.assign(frame.begin() + 2, frame.end() - 2);
        return r;
      }
      break;
  }
  // need more
  const std::size_t missing = length.kind == Length::need ? length.value : length.value - in.size();
  if (complete && !in.empty()) {
    auto r = fail(LinkError::truncated, hunt ? 1 : in.size());
    if (length.kind == Length::known) r.frame_size = length.value;
    return r;
  }
  DecodeResult r;
  r.status = DecodeStatus::need_more;
  r.need = missing;
  return r;
}

}  // namespace

std::vector<std::uint8_t> encode_rtu(const Pdu& pdu) {
  std::vector<std::uint8_t> out;
  out.reserve(pdu.data.size() + 4);
  out.push_back(pdu.unit);
  out.push_back(pdu.function);
  out.insert(out.end(), pdu.data.begin(), pdu.data.end());
  append_crc(out);
  return out;
}

DecodeResult decode_rtu_request(std::span<const std::uint8_t> input, bool complete) {
  return finish(input, request_length(input), complete, /*hunt=*/true);
}

DecodeResult decode_rtu_response(std::span<const std::uint8_t> input, std::uint8_t expected_unit,
                                 std::uint8_t expected_function, bool complete) {
  DecodeResult r =
      finish(input, response_length(input, expected_function), complete, /*hunt=*/false);
  if (!r.is_frame()) return r;
  if (r.pdu.unit != expected_unit) {
    r.status = DecodeStatus::error;
    r.error = LinkError::wrong_unit;
    return r;
  }
  if (r.pdu.is_exception()) {
    r.error = exception_of(r.pdu);
    if (is_link_error(r.error)) r.status = DecodeStatus::error;  // exception code 0
  }
  return r;
}

}  // namespace meterd::protocol::modbus
