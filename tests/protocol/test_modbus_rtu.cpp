// RTU and TCP framing, PDU builders and parsers: byte vectors from
// tests/data/modbus/register-tables.md, byte-by-byte arrival, corruption, exception
// responses, hunting through foreign traffic, and never reading past the
// span (each step decodes an exactly-sized heap copy, so ASan builds catch
// an overread, and a poisoned tail must not change the answer).
#include <cstdint>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include "protocol/modbus_codec/crc.hpp"
#include "protocol/modbus_codec/error.hpp"
#include "protocol/modbus_codec/pdu.hpp"
#include "protocol/modbus_codec/rtu.hpp"
#include "protocol/modbus_codec/tcp.hpp"

using namespace meterd::protocol::modbus;
using Bytes = std::vector<std::uint8_t>;

namespace {

bool same(const DecodeResult& a, const DecodeResult& b) {
  return a.status == b.status && a.consumed == b.consumed && a.need == b.need &&
         a.frame_size == b.frame_size && a.pdu == b.pdu && a.error == b.error;
}

// Decodes `prefix` exactly sized, and again followed by a poisoned tail;
// both must agree (the decoder may not look past the span).
template <class Decode>
DecodeResult decode_checked(const Bytes& prefix, Decode decode) {
  const Bytes exact(prefix);
  const DecodeResult r = decode(std::span<const std::uint8_t>(exact));
  for (std::uint8_t poison : {0x00, 0xFF, 0x10, 0x83}) {
    Bytes padded(prefix);
    padded.insert(padded.end(), 300, poison);
    const DecodeResult p = decode(std::span<const std::uint8_t>(padded).first(prefix.size()));
    CHECK(same(r, p));
  }
  return r;
}

// Feeds `frame` one byte at a time: every proper prefix is need_more with
// a `need` that does not overshoot; the whole frame decodes.
template <class Decode>
DecodeResult byte_by_byte(const Bytes& frame, Decode decode) {
  for (std::size_t n = 0; n < frame.size(); ++n) {
    const Bytes prefix(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
    const DecodeResult r = decode_checked(prefix, decode);
    CAPTURE(n);
    REQUIRE(r.status == DecodeStatus::need_more);
    CHECK(r.consumed == 0);
    CHECK(r.need >= 1);
    CHECK(n + r.need <= frame.size());
  }
  return decode_checked(frame, decode);
}

auto request_decoder(bool complete = false) {
  return [complete](std::span<const std::uint8_t> in) { return decode_rtu_request(in, complete); };
}

auto response_decoder(std::uint8_t unit, std::uint8_t function, bool complete = false) {
  return [=](std::span<const std::uint8_t> in) {
    return decode_rtu_response(in, unit, function, complete);
  };
}

}  // namespace

TEST_CASE("builders produce the documented frames") {
  CHECK(encode_rtu(request::read_holding(1, 0, 10)) == Bytes{1, 3, 0, 0, 0, 0x0A, 0xC5, 0xCD});
  // Eastron V1.8 §3.8: read Volts 1, and its answer 230.2 V.
  CHECK(encode_rtu(request::read_input(1, 0, 2)) == Bytes{1, 4, 0, 0, 0, 2, 0x71, 0xCB});
  const std::uint16_t volts[] = {0x4366, 0x3334};
  CHECK(encode_rtu(response::read(1, fc::read_input_registers, volts)) ==
        Bytes{1, 4, 4, 0x43, 0x66, 0x33, 0x34, 0x1B, 0x38});
  // V1.8 §3.9: write Demand Period = 60.0 with FC 10, and the answer.
  const std::uint16_t sixty[] = {0x4270, 0x0000};
  CHECK(encode_rtu(request::write_multiple(1, 2, sixty)) ==
        Bytes{1, 0x10, 0, 2, 0, 2, 4, 0x42, 0x70, 0, 0, 0x67, 0xD5});
  CHECK(encode_rtu(response::write_multiple(1, 2, 2)) == Bytes{1, 0x10, 0, 2, 0, 2, 0xE0, 0x08});
  // Huawei inverter handshake to a DTSU666-H (§3.7).
  CHECK(encode_rtu(request::read_holding(11, 0x07D1, 1)) ==
        Bytes{0x0B, 3, 0x07, 0xD1, 0, 1, 0xD5, 0xED});
  // FC 06 request and its echo.
  const Bytes fc06 = encode_rtu(request::write_single(1, 0x0200, 7));
  CHECK(fc06 == encode_rtu(response::write_single(1, 0x0200, 7)));
  CHECK(crc_ok(fc06));
  // Exception response: function | 0x80, code.
  const Bytes ex =
      encode_rtu(response::exception(1, fc::read_input_registers, Exception::illegal_data_address));
  CHECK(ex.size() == 5);
  CHECK(ex[1] == 0x84);
  CHECK(ex[2] == 0x02);
  CHECK(crc_ok(ex));
}

TEST_CASE("request decoder: fixed-length functions arrive byte by byte") {
  const Bytes frame{1, 4, 0, 0, 0, 2, 0x71, 0xCB};
  const DecodeResult r = byte_by_byte(frame, request_decoder());
  REQUIRE(r.status == DecodeStatus::frame);
  CHECK(r.consumed == 8);
  CHECK(r.frame_size == 8);
  CHECK(r.pdu == request::read_input(1, 0, 2));
  CHECK_FALSE(r.error);
  const auto req = parse_read_request(r.pdu);
  REQUIRE(req);
  CHECK(*req == ReadRequest{0, 2});

  for (std::uint8_t f : {1, 2, 3, 4, 5, 6, 8}) {
    Bytes other{9, f, 0, 1, 0xFF, 0x00};
    append_crc(other);
    const DecodeResult o = byte_by_byte(other, request_decoder());
    CHECK(o.status == DecodeStatus::frame);
    CHECK(o.pdu.function == f);
  }
}

TEST_CASE("request decoder: FC 10 length comes from the byte count") {
  const std::uint16_t values[] = {0x4270, 0x0000, 0x1234};
  const Bytes frame = encode_rtu(request::write_multiple(7, 0x0010, values));
  REQUIRE(frame.size() == 7 + 6 + 2);
  // The decoder first needs the function, then the byte count at offset 6.
  CHECK(decode_rtu_request(std::span(frame).first(1)).need == 1);
  CHECK(decode_rtu_request(std::span(frame).first(2)).need == 5);
  CHECK(decode_rtu_request(std::span(frame).first(6)).need == 1);
  CHECK(decode_rtu_request(std::span(frame).first(7)).need == 8);
  const DecodeResult r = byte_by_byte(frame, request_decoder());
  REQUIRE(r.status == DecodeStatus::frame);
  CHECK(r.consumed == frame.size());
  const auto w = parse_write_multiple_request(r.pdu);
  REQUIRE(w);
  CHECK(w->address == 0x0010);
  CHECK(w->values == std::vector<std::uint16_t>(std::begin(values), std::end(values)));
}

TEST_CASE("request decoder: other public functions are framed so a slave can refuse them") {
  Bytes report{1, fc::report_server_id};
  append_crc(report);
  CHECK(byte_by_byte(report, request_decoder()).status == DecodeStatus::frame);
  Bytes mask{1, fc::mask_write_register, 0, 1, 0xFF, 0x00, 0x00, 0x01};
  append_crc(mask);
  CHECK(byte_by_byte(mask, request_decoder()).frame_size == 10);
  Bytes rw{1, fc::read_write_multiple_registers, 0, 0, 0, 2, 0, 8, 0, 1, 2, 0xAB, 0xCD};
  append_crc(rw);
  CHECK(byte_by_byte(rw, request_decoder()).frame_size == 15);
  Bytes devid{1, fc::encapsulated_interface, 0x0E, 0x01, 0x00};
  append_crc(devid);
  CHECK(byte_by_byte(devid, request_decoder()).frame_size == 7);
  // ... and the PDU parser tells the slave what to answer.
  const DecodeResult r = decode_rtu_request(report);
  CHECK(parse_read_request(r.pdu).error() == Exception::illegal_function);
}

TEST_CASE("request decoder: link errors") {
  SUBCASE("bad CRC names both CRCs and hunts on by one byte") {
    Bytes frame{1, 3, 0, 0, 0, 0x0A, 0xC5, 0xCC};
    const DecodeResult r = decode_checked(frame, request_decoder());
    CHECK(r.status == DecodeStatus::error);
    CHECK(r.error == LinkError::bad_crc);
    CHECK(r.error.category() == link_category());
    CHECK(r.got_crc == 0xCCC5);
    CHECK(r.expected_crc == 0xCDC5);
    CHECK(r.frame_size == 8);
    CHECK(r.consumed == 1);
  }
  SUBCASE("unknown function") {
    const Bytes frame{1, 0x41, 0, 0, 0, 0};
    const DecodeResult r = decode_checked(frame, request_decoder());
    CHECK(r.status == DecodeStatus::error);
    CHECK(r.error == LinkError::unknown_function);
    CHECK(r.consumed == 1);
    Bytes mei{1, 0x2B, 0x0D};  // CANopen MEI: length unknown
    CHECK(decode_rtu_request(mei).error == LinkError::unknown_function);
  }
  SUBCASE("a byte count no ADU can hold") {
    const Bytes frame{1, 0x10, 0, 0, 0, 0x7D, 0xFA};  // 7 + 250 + 2 > 256
    const DecodeResult r = decode_checked(frame, request_decoder());
    CHECK(r.error == LinkError::frame_too_long);
    CHECK(r.consumed == 1);
  }
  SUBCASE("complete input that stops inside a frame is truncated") {
    const Bytes frame{1, 3, 0, 0, 0};
    const DecodeResult r = decode_checked(frame, request_decoder(true));
    CHECK(r.status == DecodeStatus::error);
    CHECK(r.error == LinkError::truncated);
    CHECK(r.frame_size == 8);
    CHECK(r.consumed == 1);
    CHECK(decode_rtu_request({}, true).status == DecodeStatus::need_more);
  }
}

TEST_CASE("request decoder finds requests among noise and DL/T 645 frames") {
  // A DL/T 645-2007 read of 00010000 to 000000000001, with wake-up bytes,
  // then two Modbus requests for different units, then a corrupted one.
  Bytes wire{0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x01, 0x00, 0x00, 0x00, 0x00,
             0x00, 0x68, 0x11, 0x04, 0x33, 0x33, 0x34, 0x33, 0xB3, 0x16};
  const Bytes a = encode_rtu(request::read_input(1, 0, 2));
  const Bytes b = encode_rtu(request::read_holding(2, 0x2000, 34));
  Bytes bad = encode_rtu(request::read_holding(3, 0, 2));
  bad[4] ^= 0x01;
  wire.insert(wire.end(), a.begin(), a.end());
  wire.insert(wire.end(), b.begin(), b.end());
  wire.insert(wire.end(), bad.begin(), bad.end());

  std::vector<Pdu> found;
  int bad_crc = 0;
  std::span<const std::uint8_t> rest(wire);
  int steps = 0;
  while (!rest.empty() && ++steps < 1000) {
    const DecodeResult r = decode_rtu_request(rest, /*complete=*/true);
    REQUIRE(r.status != DecodeStatus::need_more);
    REQUIRE(r.consumed >= 1);
    REQUIRE(r.consumed <= rest.size());
    if (r.is_frame()) found.push_back(r.pdu);
    if (r.error == LinkError::bad_crc) ++bad_crc;
    rest = rest.subspan(r.consumed);
  }
  REQUIRE(found.size() == 2);
  CHECK(found[0] == request::read_input(1, 0, 2));
  CHECK(found[1] == request::read_holding(2, 0x2000, 34));
  CHECK(bad_crc >= 1);
}

TEST_CASE("response decoder: normal answers byte by byte") {
  SUBCASE("FC 04 with byte count (230.2 V)") {
    const Bytes frame{1, 4, 4, 0x43, 0x66, 0x33, 0x34, 0x1B, 0x38};
    const DecodeResult r = byte_by_byte(frame, response_decoder(1, fc::read_input_registers));
    REQUIRE(r.is_frame());
    CHECK_FALSE(r.is_exception());
    CHECK_FALSE(r.error);
    const auto words = parse_read_response(r.pdu, fc::read_input_registers, 2);
    REQUIRE(words);
    CHECK(*words == std::vector<std::uint16_t>{0x4366, 0x3334});
  }
  SUBCASE("FC 03 (Demand Time 1.0)") {
    const Bytes frame{1, 3, 4, 0x3F, 0x80, 0, 0, 0xF7, 0xCF};
    const DecodeResult r = byte_by_byte(frame, response_decoder(1, fc::read_holding_registers));
    REQUIRE(r.is_frame());
    CHECK(parse_read_response(r.pdu, fc::read_holding_registers, 2)->at(0) == 0x3F80);
  }
  SUBCASE("FC 10 and FC 06 are 8 bytes") {
    const Bytes frame{1, 0x10, 0, 2, 0, 2, 0xE0, 0x08};
    const DecodeResult r = byte_by_byte(frame, response_decoder(1, fc::write_multiple_registers));
    REQUIRE(r.is_frame());
    CHECK(*parse_write_multiple_response(r.pdu) == RegisterRange{2, 2});
    const Bytes echo = encode_rtu(response::write_single(5, 0x0201, 3));
    const DecodeResult e = byte_by_byte(echo, response_decoder(5, fc::write_single_register));
    REQUIRE(e.is_frame());
    CHECK(*parse_write_single_response(e.pdu) == WriteSingle{0x0201, 3});
  }
  SUBCASE("the SDM630 single-register answer") {
    // mbmd issue #63: 01 03 00 23 00 01 answered with 01 03 02 00 00.
    Bytes frame{1, 3, 2, 0, 0};
    append_crc(frame);
    const DecodeResult r = byte_by_byte(frame, response_decoder(1, fc::read_holding_registers));
    REQUIRE(r.is_frame());
    CHECK(*parse_read_response(r.pdu, fc::read_holding_registers, 1) ==
          std::vector<std::uint16_t>{0});
  }
}

TEST_CASE("response decoder: exception answers are frames carrying a protocol error") {
  for (std::uint8_t code : {1, 2, 3, 4, 5, 6, 0x0B, 0x42}) {
    const Bytes frame = encode_rtu(response::exception(1, fc::read_input_registers, code));
    const DecodeResult r = byte_by_byte(frame, response_decoder(1, fc::read_input_registers));
    REQUIRE(r.is_frame());
    CHECK(r.is_exception());
    CHECK(r.consumed == 5);
    CHECK(r.error.category() == exception_category());
    CHECK(r.error.value() == code);
    CHECK(is_exception(r.error));
    CHECK_FALSE(is_link_error(r.error));
    CHECK(exception_code(r.error) == code);
    CHECK(parse_read_response(r.pdu, fc::read_input_registers, 2).error() == r.error);
  }
  const DecodeResult busy = decode_rtu_response(
      encode_rtu(response::exception(1, 3, Exception::server_device_busy)), 1, 3);
  CHECK(busy.error == Exception::server_device_busy);
  CHECK(busy.error.message() == "slave device busy");
  CHECK(make_error_code(Exception::illegal_data_address).message() == "illegal data address");
  // Code 0 is not an exception: malformed.
  const DecodeResult zero = decode_rtu_response(encode_rtu(response::exception(1, 3, 0)), 1, 3);
  CHECK(zero.status == DecodeStatus::error);
  CHECK(zero.error == LinkError::malformed);
}

TEST_CASE("response decoder: link errors stay apart from exceptions") {
  SUBCASE("bad CRC drops the whole answer") {
    Bytes frame{1, 4, 4, 0x43, 0x66, 0x33, 0x34, 0x1B, 0x39};
    const DecodeResult r = decode_checked(frame, response_decoder(1, 4));
    CHECK(r.error == LinkError::bad_crc);
    CHECK(r.consumed == frame.size());
    CHECK_FALSE(is_exception(r.error));
  }
  SUBCASE("another unit answered (CRC good)") {
    const Bytes frame{1, 4, 4, 0x43, 0x66, 0x33, 0x34, 0x1B, 0x38};
    const DecodeResult r = decode_checked(frame, response_decoder(2, 4));
    CHECK(r.status == DecodeStatus::error);
    CHECK(r.error == LinkError::wrong_unit);
    CHECK(r.consumed == frame.size());
    CHECK(r.pdu.unit == 1);
  }
  SUBCASE("another function answered") {
    const Bytes frame{1, 3, 4, 0x3F, 0x80, 0, 0, 0xF7, 0xCF};
    const DecodeResult r = decode_checked(frame, response_decoder(1, 4));
    CHECK(r.error == LinkError::unexpected_function);
    CHECK(r.consumed == 1);
  }
  SUBCASE("byte count disagrees with the request") {
    const Bytes frame{1, 4, 4, 0x43, 0x66, 0x33, 0x34, 0x1B, 0x38};
    const DecodeResult r = decode_rtu_response(frame, 1, 4);
    CHECK(parse_read_response(r.pdu, 4, 4).error() == LinkError::malformed);
    Bytes odd{1, 4, 3, 0x43, 0x66, 0x33};
    append_crc(odd);
    const DecodeResult o = decode_rtu_response(odd, 1, 4);
    REQUIRE(o.is_frame());
    CHECK(parse_read_response(o.pdu, 4, 1).error() == LinkError::malformed);
  }
  SUBCASE("the line went silent mid-answer") {
    const Bytes frame{1, 4, 4, 0x43, 0x66};
    const DecodeResult r = decode_checked(frame, response_decoder(1, 4, true));
    CHECK(r.error == LinkError::truncated);
    CHECK(r.consumed == frame.size());
  }
}

TEST_CASE("random PDUs survive encode/decode, and random bytes never crash the decoders") {
  std::mt19937 rng(645);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> count(1, 123);
  for (int i = 0; i < 300; ++i) {
    std::vector<std::uint16_t> values(static_cast<std::size_t>(count(rng)));
    for (auto& v : values) v = static_cast<std::uint16_t>(byte(rng) << 8 | byte(rng));
    const auto unit = static_cast<std::uint8_t>(byte(rng));
    const Pdu req = request::write_multiple(unit, static_cast<std::uint16_t>(byte(rng)), values);
    const Bytes wire = encode_rtu(req);
    CHECK(wire.size() <= max_rtu_size);
    const DecodeResult r = decode_rtu_request(wire);
    REQUIRE(r.is_frame());
    CHECK(r.pdu == req);
    const std::size_t n = std::min<std::size_t>(values.size(), max_read_registers);
    const Pdu resp = response::read(unit, 3, std::span(values).first(n));
    const DecodeResult a = decode_rtu_response(encode_rtu(resp), unit, 3);
    REQUIRE(a.is_frame());
    CHECK(*parse_read_response(a.pdu, 3, static_cast<std::uint16_t>(n)) ==
          std::vector<std::uint16_t>(values.begin(), values.begin() + static_cast<long>(n)));
  }
  for (int i = 0; i < 2000; ++i) {
    Bytes junk(static_cast<std::size_t>(byte(rng)));
    for (auto& b : junk) b = static_cast<std::uint8_t>(byte(rng));
    std::span<const std::uint8_t> rest(junk);
    while (!rest.empty()) {
      const DecodeResult r = decode_rtu_request(rest, true);
      REQUIRE(r.consumed >= 1);
      REQUIRE(r.consumed <= rest.size());
      rest = rest.subspan(r.consumed);
    }
    const DecodeResult m = decode_rtu_response(junk, 1, 3, true);
    CHECK(m.consumed <= junk.size());
  }
}

TEST_CASE("PDU parsers answer with the exception a slave should send") {
  CHECK(parse_read_request(request::read_holding(1, 0, 0)).error() ==
        Exception::illegal_data_value);
  CHECK(parse_read_request(request::read_holding(1, 0, 126)).error() ==
        Exception::illegal_data_value);
  CHECK(parse_read_request(request::read_holding(1, 0, 125)));
  CHECK(parse_read_request(request::read_holding(1, 0xFFFF, 2)).error() ==
        Exception::illegal_data_address);
  CHECK(parse_read_request(request::read_holding(1, 0xFFFE, 2)));
  CHECK(parse_read_request(request::read(1, fc::read_coils, 0, 2000)));
  CHECK(parse_read_request(request::read(1, fc::read_coils, 0, 2001)).error() ==
        Exception::illegal_data_value);
  CHECK(parse_read_request(Pdu{1, 3, {0, 0, 0}}).error() == Exception::illegal_data_value);
  CHECK(parse_read_request(request::write_single(1, 0, 0)).error() == Exception::illegal_function);

  CHECK(*parse_write_single_request(request::write_single(1, 0x10, 0xBEEF)) ==
        WriteSingle{0x10, 0xBEEF});
  CHECK(parse_write_single_request(Pdu{1, fc::write_single_coil, {0, 1, 0x12, 0x34}}).error() ==
        Exception::illegal_data_value);

  const std::uint16_t one[] = {1};
  Pdu w = request::write_multiple(1, 0, one);
  CHECK(parse_write_multiple_request(w));
  w.data[4] = 4;  // byte count disagrees with quantity
  CHECK(parse_write_multiple_request(w).error() == Exception::illegal_data_value);
  std::vector<std::uint16_t> many(124, 0);
  CHECK(parse_write_multiple_request(request::write_multiple(1, 0, many)).error() ==
        Exception::illegal_data_value);
  const std::uint16_t two[] = {1, 2};
  CHECK(parse_write_multiple_request(request::write_multiple(1, 0xFFFF, two)).error() ==
        Exception::illegal_data_address);
}

TEST_CASE("MBAP header and TCP ADUs") {
  const Pdu pdu = request::read_input(1, 0, 2);
  const Bytes adu = encode_tcp(pdu, 0x1234);
  CHECK(adu == Bytes{0x12, 0x34, 0, 0, 0, 6, 1, 4, 0, 0, 0, 2});
  for (std::size_t n = 0; n < adu.size(); ++n) {
    const TcpDecodeResult r = decode_tcp(std::span(adu).first(n));
    CHECK(r.status == DecodeStatus::need_more);
    CHECK(n + r.need <= adu.size());
  }
  Bytes two(adu);
  const Bytes second = encode_tcp(response::exception(1, 4, Exception::illegal_data_address), 7);
  two.insert(two.end(), second.begin(), second.end());
  const TcpDecodeResult r = decode_tcp(two);
  REQUIRE(r.is_frame());
  CHECK(r.consumed == adu.size());
  CHECK(r.pdu == pdu);
  CHECK(r.header == MbapHeader{0x1234, 0, 6, 1});
  const TcpDecodeResult e = decode_tcp(std::span(two).subspan(r.consumed));
  REQUIRE(e.is_frame());
  CHECK(e.is_exception());
  CHECK(e.error == Exception::illegal_data_address);
  CHECK(e.header.transaction == 7);

  CHECK(encode_mbap(MbapHeader{1, 0, 6, 0xFF}) ==
        std::array<std::uint8_t, 7>{0, 1, 0, 0, 0, 6, 0xFF});
  CHECK(decode_mbap(adu).header == MbapHeader{0x1234, 0, 6, 1});

  Bytes bad(adu);
  bad[3] = 1;
  CHECK(decode_tcp(bad).error == LinkError::bad_protocol_id);
  bad = adu;
  bad[5] = 1;
  CHECK(decode_tcp(bad).error == LinkError::malformed);
  bad = adu;
  bad[4] = 1;  // length 262
  CHECK(decode_tcp(bad).error == LinkError::frame_too_long);
}
