// Request builders against the published frames, and each builder's data
// area read back by the interpreter.
#include <map>

#include <doctest/doctest.h>

#include "protocol/dlt645/interpret.hpp"
#include "protocol/dlt645/requests.hpp"
#include "protocol/dlt645/values.hpp"

using namespace meterd::protocol::dlt645;

namespace {

std::string wire(const Frame& f, std::size_t preamble = 0) {
  return to_hex(encode(f, preamble), true);
}
Address addr(const char* digits) { return *Address::parse(digits); }
std::map<std::string, std::string> fields_of(const Frame& f) {
  const auto i = interpret(f);
  return {i.fields.begin(), i.fields.end()};
}

}  // namespace

TEST_CASE("builders reproduce the published frames") {
  CHECK(wire(request::read(addr("123456789012"), 0x00010000)) ==
        "68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16");
  CHECK(wire(request::read(addr("652022122018"), 0x0201FF00), 4) ==
        "FE FE FE FE 68 18 20 12 22 20 65 68 11 04 33 32 34 35 A4 16");
  CHECK(wire(request::read_address(), 4) == "FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16");
  CHECK(wire(request::read(Address::wildcard(), 0x02010100)) ==
        "68 AA AA AA AA AA AA 68 11 04 33 34 34 35 B1 16");
  CHECK(wire(request::broadcast_time(*parse_datetime("2017-06-05T10:22:51"))) ==
        "68 99 99 99 99 99 99 68 08 06 84 55 43 38 39 4A 4B 16");
  CHECK(wire(request::relay_control(addr("111111111111"), *parse_password("00000000"),
                                    *parse_operator("00000000"), RelayCommand::trip,
                                    *parse_datetime("2018-05-12T15:41:24"))) ==
        "68 11 11 11 11 11 11 68 1C 10 33 33 33 33 33 33 33 33 4D 33 57 74 48 45 38 4B 55 16");
  CHECK(wire(request::v1997::read(addr("3"), 0xB611)) ==
        "68 03 00 00 00 00 00 68 01 02 44 E9 03 16");
}

TEST_CASE("relay control carries level, password, operator, command, expiry") {
  const auto f = request::relay_control(addr("000000000001"), *parse_password("123456", 0x02),
                                        *parse_operator("87654321"), RelayCommand::close_allowed,
                                        *parse_datetime("2026-11-27 13:00:00"));
  CHECK(f.data.size() == 16);
  CHECK(f.data[0] == 0x02);
  CHECK(f.data[1] == 0x56);  // P0: lowest printed pair first
  const auto m = fields_of(f);
  CHECK(m.at("password_level") == "02");
  CHECK(m.at("password") == "123456");
  CHECK(m.at("operator") == "87654321");
  CHECK(m.at("command") == "close-allowed");
  CHECK(m.at("valid_until") == "2026-11-27T13:00:00");
  for (const char* name :
       {"trip", "close-allowed", "close", "alarm", "alarm-release", "keep-power", "release"})
    CHECK(to_string(*parse_relay_command(name)) == std::string(name));
  CHECK_FALSE(parse_relay_command("open"));
}

TEST_CASE("other 2007 builders") {
  const auto a = addr("000000000001");
  const auto p = *parse_password("02000000");
  const auto op = *parse_operator("00000001");
  SUBCASE("load profile with count and start time") {
    const auto f = request::read_blocks(a, 0x06000001, 12, parse_datetime("2026-11-27T08:15"));
    CHECK(to_hex(f.data, true) == "01 00 00 06 12 15 08 27 11 26");
    const auto m = fields_of(f);
    CHECK(m.at("blocks") == "12");
    CHECK(m.at("from") == "2026-11-27T08:15");
  }
  SUBCASE("follow-up") {
    const auto f = request::read_follow_up(a, 0x0001FF00, 2);
    CHECK(to_hex(f.data, true) == "00 FF 01 00 02");
    CHECK(interpret(f).seq == 2);
  }
  SUBCASE("write") {
    const auto f = request::write(a, 0x04000102, p, op, {0x00, 0x30, 0x12});
    CHECK(f.control == 0x14);
    CHECK(fields_of(f).at("data") == "003012");
  }
  SUBCASE("freeze, baud, demand reset, meter clear, event clear, password, address") {
    CHECK(fields_of(request::freeze(a, {0x99, 0x99, 0x99, 0x99})).at("freeze") == "instant freeze");
    CHECK(fields_of(request::freeze(a, {0x00, 0x00, 0x99, 0x99})).at("freeze") ==
          "month ** day ** 00:00");
    CHECK(fields_of(request::change_baud(a, *baud_word(9600))).at("baud") == "9600");
    CHECK(request::demand_reset(a, p, op).data.size() == 8);
    CHECK(request::meter_clear(a, p, op).control == 0x1A);
    const auto ec = request::event_clear(a, p, op, 0xFFFFFFFF);
    CHECK(ec.data.size() == 12);
    CHECK(interpret(ec).di == 0xFFFFFFFFu);
    const auto cp = request::change_password(a, 0x04000C03, p, *parse_password("02123456"));
    CHECK(fields_of(cp).at("new_password") == "123456");
    CHECK(fields_of(request::write_address(addr("000000000042"))).at("new_address") ==
          "000000000042");
  }
}

TEST_CASE("1997 builders") {
  const auto a = addr("000000000003");
  CHECK(request::v1997::read_follow_up(a, 0x9010).control == 0x02);
  CHECK(request::v1997::reread(a).data.empty());
  const auto w = request::v1997::write(a, 0xC011, *parse_password("02000000"), {0x00, 0x00, 0x12});
  CHECK(w.control == 0x04);
  CHECK(interpret(w).version == Version::v1997);
  CHECK(request::v1997::change_baud(a, 0x04).control == 0x0C);
  CHECK(request::v1997::demand_reset(a, *parse_password("02000000")).control == 0x10);
  CHECK(request::v1997::write_address(a, addr("4")).control == 0x0A);
  CHECK(request::v1997::change_password(a, *parse_password("02000000"), *parse_password("02111111"))
            .data.size() == 8);
  CHECK(request::v1997::broadcast_time(*parse_datetime("2026-01-01T00:00:00"))
            .address.is_broadcast());
}

TEST_CASE("date-time parsing is strict") {
  CHECK(parse_datetime("2024-02-29T23:59:59"));
  CHECK_FALSE(parse_datetime("2023-02-29T00:00:00"));
  CHECK_FALSE(parse_datetime("2026-13-01T00:00:00"));
  CHECK_FALSE(parse_datetime("1999-01-01T00:00:00"));
  CHECK_FALSE(parse_datetime("2026-01-01T24:00:00"));
  CHECK_FALSE(parse_datetime("2026-01-01"));
  CHECK(parse_datetime("2026-01-01 08:00") == DateTime{2026, 1, 1, 8, 0, 0});
  CHECK_FALSE(parse_password("12345"));
  CHECK_FALSE(parse_operator("1234567"));
}
