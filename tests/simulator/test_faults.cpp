// The fault injector both transports share, and the bus's timing rules, as
// pure functions: the same seed gives the same faults; each fault changes
// exactly what it claims to.
#include <algorithm>

#include <doctest/doctest.h>

#include "protocol/dlt645/frame.hpp"
#include "protocol/dlt645/requests.hpp"
#include "protocol/modbus_codec/crc.hpp"
#include "protocol/modbus_codec/pdu.hpp"
#include "protocol/modbus_codec/rtu.hpp"
#include "simulator/bus.hpp"
#include "simulator/faults.hpp"

using namespace meterd::simulator;
namespace dlt = meterd::protocol::dlt645;
namespace mb = meterd::protocol::modbus;

namespace {

std::vector<std::uint8_t> dlt_answer() {
  dlt::Frame f{*dlt::Address::parse("000000000042"), 0x91, {0x00, 0x00, 0x01, 0x00, 0x12, 0x34}};
  return dlt::encode(f, 2);
}

std::vector<std::uint8_t> rtu_answer() {
  const std::uint16_t words[] = {0x4366, 0x3334};
  return mb::encode_rtu(mb::response::read(1, mb::fc::read_input_registers, words));
}

std::size_t bits(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  std::size_t n = 0;
  for (std::size_t k = 0; k < a.size(); ++k)
    n += static_cast<std::size_t>(__builtin_popcount(a[k] ^ b[k]));
  return n;
}

}  // namespace

TEST_CASE("the same seed rolls the same faults") {
  Faults f;
  f.drop = 0.3;
  f.corrupt = 0.3;
  f.noise_bytes = 12;
  std::mt19937_64 a(42), b(42);
  for (int k = 0; k < 100; ++k) {
    const auto ra = roll(f, Faults{}, a), rb = roll(f, Faults{}, b);
    CHECK(ra.drop == rb.drop);
    CHECK(ra.corrupt == rb.corrupt);
    CHECK(inject(ra, dlt_answer(), Framing::dlt645, a).bytes ==
          inject(rb, dlt_answer(), Framing::dlt645, b).bytes);
  }
}

TEST_CASE("meter and bus switches add up") {
  Faults own, shared;
  own.delay_ms = 100;
  shared.delay_ms = 50;
  own.noise_bytes = 3;
  shared.noise_bytes = 4;
  shared.drop = 1.0;
  std::mt19937_64 rng(1);
  const auto r = roll(own, shared, rng);
  CHECK(r.drop);
  CHECK(r.delay_ms == 150);
  CHECK(r.noise_bytes == 7);
}

TEST_CASE(
    "corrupt flips one payload bit and keeps the checksum; corrupt_checksum only the checksum") {
  std::mt19937_64 rng(3);
  FaultRoll r;
  r.corrupt = true;
  for (int k = 0; k < 200; ++k) {
    const auto clean = dlt_answer();
    const auto d = inject(r, clean, Framing::dlt645, rng).bytes;
    REQUIRE(d.size() == clean.size());
    CHECK(bits(d, clean) == 1);
    CHECK(d[d.size() - 2] == clean[clean.size() - 2]);
    // never the FE preamble, the 68H heads, the control code or the end
    for (const std::size_t at : {0, 1, 2, 9, 10}) CHECK(d[at] == clean[at]);
    CHECK(d.back() == dlt::end_byte);
    const auto m = inject(r, rtu_answer(), Framing::modbus_rtu, rng).bytes;
    CHECK(bits(m, rtu_answer()) == 1);
    CHECK(std::equal(m.end() - 2, m.end(), rtu_answer().end() - 2));
  }
  FaultRoll c;
  c.corrupt_checksum = true;
  const auto d = inject(c, dlt_answer(), Framing::dlt645, rng).bytes;
  CHECK(std::equal(d.begin(), d.end() - 2, dlt_answer().begin()));
  CHECK(dlt::decode(d).error == dlt::FrameError::bad_checksum);
}

TEST_CASE("wrong_address re-checksums: a good frame from another meter") {
  std::mt19937_64 rng(5);
  FaultRoll r;
  r.wrong_address = true;
  const auto d = dlt::decode(inject(r, dlt_answer(), Framing::dlt645, rng).bytes);
  REQUIRE(d.status == dlt::DecodeStatus::frame);
  CHECK(d.frame.address.to_string() == "000000000043");
  const auto m = inject(r, rtu_answer(), Framing::modbus_rtu, rng).bytes;
  CHECK(m[0] == 2);
  CHECK(mb::crc16(std::span(m).first(m.size() - 2)) == (m[m.size() - 2] | m.back() << 8));
}

TEST_CASE("DL/T 645 noise carries 68H and ends in a false head that runs past the answer") {
  std::mt19937_64 rng(9);
  const auto n = noise(30, Framing::dlt645, rng);
  REQUIRE(n.size() == 30);
  CHECK(n[20] == dlt::start_byte);
  CHECK(n[27] == dlt::start_byte);
  CHECK(n[29] == 0xC8);  // L = 200
  CHECK(std::count(n.begin(), n.end(), dlt::start_byte) >= 2);
  FaultRoll r;
  r.noise_bytes = 30;
  const auto wire = inject(r, dlt_answer(), Framing::dlt645, rng).bytes;
  const auto d = dlt::decode(wire);  // the codec's decoder resyncs past the false head
  REQUIRE(d.status == dlt::DecodeStatus::frame);
  CHECK(d.frame.address.to_string() == "000000000042");
}

TEST_CASE("a settings mismatch scrambles: no 68H, no frame, deterministic") {
  const auto s = scramble(dlt_answer());
  CHECK(s == scramble(dlt_answer()));
  CHECK(s.size() == dlt_answer().size());
  CHECK(std::count(s.begin(), s.end(), dlt::start_byte) == 0);
  CHECK(dlt::decode(s).status != dlt::DecodeStatus::frame);
}

TEST_CASE("stall_ms marks a pause inside the answer; unsolicited appends a stray byte") {
  std::mt19937_64 rng(11);
  FaultRoll r;
  r.stall_ms = 300;
  r.stray_byte = true;
  const auto i = inject(r, dlt_answer(), Framing::dlt645, rng);
  CHECK(i.stall_at >= 1);
  CHECK(i.stall_at < i.bytes.size());
  CHECK(i.bytes.size() == dlt_answer().size() + 1);
  CHECK(i.bytes.back() == 0x00);
}

TEST_CASE("bus timing rules: turnaround per request, t1.5 and t3.5") {
  CHECK(turnaround_for(40, false, 0.0) == 40);
  CHECK(turnaround_for(40, false, 0.999) == 50);
  CHECK(turnaround_for(40, true, 0.0) == 60);
  meterd::drivers::LineSettings l;
  l.baud = 9600;
  l.parity = meterd::drivers::Parity::none;  // 10 bits: 1042 µs a character
  CHECK(t15(l).count() == 1561);
  CHECK(t35(l).count() == 3643);
  l.baud = 115200;  // fixed above 19200 (MODBUS over Serial Line §2.5.1.1)
  CHECK(t15(l).count() == 750);
  CHECK(t35(l).count() == 1750);
}

TEST_CASE("fault switches: all or nothing, named errors") {
  Faults f;
  CHECK(f.apply({{"corrupt_checksum", 0.5}, {"stall_ms", 200}, {"unsolicited", 0.1}}).empty());
  CHECK(f.corrupt_checksum == 0.5);
  CHECK(f.stall_ms == 200);
  CHECK(f.apply({{"stall_ms", -1}}) == "stall_ms: expected milliseconds 0..10000");
  CHECK(f.apply({{"bogus", 1}}).find("unknown fault 'bogus'") == 0);
}
