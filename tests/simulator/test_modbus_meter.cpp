// The simulated Modbus meters as pure request -> answer functions: each
// model's quirks, exact values in the model's own units, and agreement
// with the ground truth. Frames are decoded with the register maps of
// protocol/modbus_codec; the raw words are also checked by hand.
#include <cstring>

#include <doctest/doctest.h>

#include "protocol/modbus_codec/pdu.hpp"
#include "protocol/modbus_codec/registers.hpp"
#include "protocol/modbus_codec/value.hpp"
#include "simulator/modbus_meter.hpp"

using namespace meterd;
using namespace meterd::simulator;
namespace mb = meterd::protocol::modbus;

namespace {

const Millis t0 = from_civil(2026, 11, 27, 12, 0, 0);

ModbusMeter meter(const char* model, bool is_static = true) {
  ModbusMeterConfig c;
  c.id = "mb1";
  c.model = mb::find_model(model);
  REQUIRE(c.model);
  c.unit = 7;
  c.seed = 11;
  c.static_values = is_static;
  return ModbusMeter(c, t0);
}

std::vector<std::uint16_t> words_of(const mb::Pdu& answer) {
  REQUIRE_FALSE(answer.is_exception());
  std::vector<std::uint16_t> w;
  for (std::size_t i = 1; i + 1 < answer.data.size(); i += 2)
    w.push_back(static_cast<std::uint16_t>(answer.data[i] << 8 | answer.data[i + 1]));
  return w;
}

float as_float(std::uint16_t hi, std::uint16_t lo) {
  const std::uint32_t bits = std::uint32_t{hi} << 16 | lo;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace

TEST_CASE("SDM630: float32 input registers agree with the truth") {
  auto m = meter("sdm630");
  const auto a = m.handle(mb::request::read_input(7, 0x0000, 12), t0);  // V1..V3, I1..I3
  REQUIRE(a);
  const auto w = words_of(*a);
  REQUIRE(w.size() == 12);
  const auto truth = m.truth(t0)["values"];
  // Words decoded by hand (IEEE-754, high word first) against the truth text.
  CHECK(as_float(w[0], w[1]) == doctest::Approx(std::stod(truth["voltage.l1"].get<std::string>())));
  CHECK(as_float(w[6], w[7]) == doctest::Approx(std::stod(truth["current.l1"].get<std::string>())));
  // And exactly, through the register map.
  const auto* reg = mb::find_register(*mb::find_model("sdm630"), "current.l1");
  REQUIRE(reg);
  const std::uint16_t pair[] = {w[6], w[7]};
  CHECK(protocol::to_string(mb::decode_value(*reg, pair).value()) ==
        truth["current.l1"].get<std::string>());
}

TEST_CASE("SDM630 quirks: even address and count, 80 registers at most, a silent gap") {
  auto m = meter("sdm630");
  Millis t = t0;
  const auto exception = [&](const mb::Pdu& req) {
    t += 1000;
    const auto a = m.handle(req, t);
    REQUIRE(a);
    return a->is_exception() ? static_cast<int>(a->data[0]) : 0;
  };
  CHECK(exception(mb::request::read_input(7, 0x0001, 2)) == 2);
  CHECK(exception(mb::request::read_input(7, 0x0000, 3)) == 2);
  CHECK(exception(mb::request::read_input(7, 0x0000, 82)) == 3);
  CHECK(exception(mb::request::read_input(7, 0x0000, 80)) == 0);
  // A request that starts sooner than 60 ms after the last frame on the
  // wire (the caller, a bus, times that): not heard at all.
  CHECK_FALSE(m.handle(mb::request::read_input(7, 0x0000, 2), t + 10, /*quiet_ms=*/10));
  CHECK_FALSE(m.handle(mb::request::read_input(7, 0x0000, 2), t + 10, /*quiet_ms=*/59));
  CHECK(m.handle(mb::request::read_input(7, 0x0000, 2), t + 200, /*quiet_ms=*/60));
  // Another unit: silence.
  CHECK_FALSE(m.handle(mb::request::read_input(8, 0x0000, 2), t + 1000));
}

TEST_CASE("DTSU666: holding registers in 0.1 V units, energy at both documented addresses") {
  auto m = meter("dtsu666");
  const auto v = m.handle(mb::request::read_holding(7, 0x2006, 2), t0);
  REQUIRE(v);
  const auto w = words_of(*v);
  const auto truth = m.truth(t0)["values"];
  CHECK(as_float(w[0], w[1]) ==
        doctest::Approx(std::stod(truth["voltage.l1"].get<std::string>()) * 10));
  const auto a = m.handle(mb::request::read_holding(7, 0x101E, 2), t0 + 1000);
  const auto b = m.handle(mb::request::read_holding(7, 0x401E, 2), t0 + 2000);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(words_of(*a) == words_of(*b));
  CHECK(as_float(words_of(*a)[0], words_of(*a)[1]) > 0);
}

TEST_CASE("generic map: integer-scaled values, exception 02 for unmapped registers") {
  auto m = meter("generic");
  const auto& model = *mb::find_model("generic");
  const auto* v1 = mb::find_register(model, "voltage.l1");
  REQUIRE(v1);
  const auto a = m.handle(mb::request::read_holding(7, v1->address, v1->words()), t0);
  REQUIRE(a);
  const auto w = words_of(*a);
  CHECK(protocol::to_string(mb::decode_value(*v1, w).value()) ==
        m.truth(t0)["values"]["voltage.l1"].get<std::string>());
  const auto bad = m.handle(mb::request::read_holding(7, 0xFFF0, 2), t0 + 1000);
  REQUIRE(bad);
  CHECK(bad->is_exception());
  CHECK(bad->data[0] == 0x02);
}

TEST_CASE("SDM120 is single phase; energy grows when not static") {
  auto m = meter("sdm120", false);
  const auto* e = mb::find_register(*mb::find_model("sdm120"), "energy.active.import.total");
  REQUIRE(e);
  const auto at = [&](Millis t) {
    const auto a =
        m.handle(mb::request::read(7, mb::read_function(e->table), e->address, e->words()), t);
    REQUIRE(a);
    return mb::decode_value(*e, words_of(*a)).value();
  };
  const auto before = at(t0);
  const auto after = at(t0 + 2 * ms_per_hour);
  CHECK(std::stod(protocol::to_string(after)) > std::stod(protocol::to_string(before)));
}
