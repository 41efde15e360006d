// Long 2007 read answers split over follow-up frames (91H/B1H, then
// 92H/B2H with SEQ 1, 2, …): reassembly into one block, every SEQ fault an
// error, and a continuation never read as if it started the block.
#include <doctest/doctest.h>

#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/followup.hpp"
#include "protocol/dlt645/interpret.hpp"

using namespace meterd::protocol;
using namespace meterd::protocol::dlt645;

namespace {

const Address meter = *Address::parse("000000000001");
constexpr std::uint32_t block_di = 0x0001FF00;  // forward active energy, total + tariffs

// Forward active energy of 63 tariffs + total: 64 × 4 BCD bytes, value i = i.00 kWh.
std::vector<std::uint8_t> energy_block() {
  std::vector<std::uint8_t> out;
  for (unsigned i = 0; i < 64; ++i) {
    const unsigned cents = i * 100;
    for (unsigned k = 0, v = cents; k < 4; ++k, v /= 100)
      out.push_back(static_cast<std::uint8_t>(((v % 100 / 10) << 4) | (v % 10)));
  }
  return out;
}

Frame answer(std::uint8_t control, std::span<const std::uint8_t> part, int seq = -1,
             std::uint32_t di = block_di) {
  Frame f{meter, control, {}};
  append_di(Version::v2007, di, f.data);
  f.data.insert(f.data.end(), part.begin(), part.end());
  if (seq >= 0) f.data.push_back(static_cast<std::uint8_t>(seq));
  return f;
}

struct Split {
  Frame first;
  std::vector<Frame> rest;
};

// As a meter sends it: 196 bytes in the first frame, then `later` per frame.
Split split(const std::vector<std::uint8_t>& block, std::size_t later) {
  const std::span<const std::uint8_t> all(block);
  Split s{answer(0xB1, all.first(196)), {}};
  int seq = 1;
  for (std::size_t at = 196; at < all.size(); at += later, ++seq) {
    const std::size_t n = std::min(later, all.size() - at);
    s.rest.push_back(answer(at + n < all.size() ? 0xB2 : 0x92, all.subspan(at, n), seq));
  }
  return s;
}

}  // namespace

TEST_CASE("follow-up: first answer and continuations join into one interpreted block") {
  const auto block = energy_block();
  for (std::size_t later : {195u, 30u, 1u}) {
    CAPTURE(later);
    const auto s = split(block, later);
    const auto r = reassemble(s.first, s.rest);
    REQUIRE_MESSAGE(!r.error, r.message);
    CHECK(r.di == block_di);
    CHECK(r.frames == 1 + s.rest.size());
    CHECK(r.data == block);
    CHECK_FALSE(r.block.follow_up);
    CHECK(r.block.problem.empty());
    REQUIRE(r.block.values.size() == 64);
    CHECK(r.block.values[0].quantity == "energy.active.import.total");
    CHECK(r.block.values[63].quantity == "energy.active.import.t63");
    CHECK(std::get<Decimal>(r.block.values[63].value) == Decimal{6300, -2});
  }
  // A short answer needs no continuation.
  const auto one = reassemble(answer(0x91, std::span(block).first(20)), {});
  REQUIRE(!one.error);
  CHECK(one.block.values.size() == 5);
}

TEST_CASE("follow-up: a missing, repeated or stray continuation is an error, never joined") {
  const auto s = split(energy_block(), 20);  // B1, B2 × 2, 92 (SEQ 1..3)
  REQUIRE(s.rest.size() == 3);
  const auto fails = [&](std::vector<Frame> rest, FollowUpError e, const char* text) {
    const auto r = reassemble(s.first, rest);
    CHECK(r.error == e);
    CHECK(r.message.find(text) != std::string::npos);
    CHECK(r.data.empty());
    CHECK(r.block.values.empty());
  };
  fails({s.rest[0], s.rest[2]}, FollowUpError::missing_seq, "continuation 2: SEQ 3, expected 2");
  fails({s.rest[0], s.rest[0], s.rest[1], s.rest[2]}, FollowUpError::repeated_seq,
        "continuation 2: SEQ 1, expected 2");
  fails({s.rest[0], s.rest[1]}, FollowUpError::incomplete, "SEQ 3 not received");
  fails({}, FollowUpError::incomplete, "after 1 frame");
  fails({s.rest[0], s.rest[1], s.rest[2], s.rest[2]}, FollowUpError::after_last, "continuation 4");
  auto other_di = s.rest;
  other_di[1] = answer(0xB2, std::span(other_di[1].data).subspan(4, 20), 2, 0x0002FF00);
  fails(other_di, FollowUpError::di_mismatch, "DI 0002FF00, expected 0001FF00");
  auto other_meter = s.rest;
  other_meter[2].address = *Address::parse("000000000002");
  fails(other_meter, FollowUpError::other_meter, "address 000000000002");
  auto first_again = s.rest;
  first_again[0] = s.first;
  fails(first_again, FollowUpError::not_continuation, "control B1");
  CHECK(reassemble(s.rest[0], {}).error == FollowUpError::not_first_answer);
  CHECK(reassemble(Frame{meter, 0xD1, {0x02}}, {}).error == FollowUpError::not_first_answer);
}

TEST_CASE("follow-up: a continuation alone is not labelled as the first frame of the block") {
  // 8 bytes: as long as "total + tariff 1", so reading it from the block's
  // start would print them as energy.active.import.total and .t1.
  const std::vector<std::uint8_t> part{0x00, 0x10, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00};
  const auto i = interpret(answer(0x92, part, 1), Version::v2007);
  CHECK(i.response);
  CHECK(i.seq == 1);
  CHECK(i.values.empty());
  CHECK(i.problem.find("continuation frame 1") != std::string::npos);
  REQUIRE_FALSE(i.fields.empty());
  CHECK(i.fields.back() == std::pair<std::string, std::string>{"data", "0010000000200000"});
  // The first frame of a long answer starts the block: its values are labelled.
  const auto first = interpret(answer(0xB1, part), Version::v2007);
  CHECK(first.follow_up);
  REQUIRE(first.values.size() == 2);
  CHECK(first.values[1].quantity == "energy.active.import.t1");
}
