// Every published frame of tests/data/dlt645/vectors.json: the decoder
// agrees with the expected address, control code and unscrambled data, and
// re-encoding gives the same bytes. Values are checked against the meaning
// the vector file gives, digit for digit.
#include <fstream>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "protocol/dlt645/frame.hpp"
#include "protocol/dlt645/interpret.hpp"
#include "protocol/dlt645/values.hpp"

using namespace meterd::protocol;
using namespace meterd::protocol::dlt645;

namespace {

nlohmann::json load_vectors() {
  std::ifstream in(METERD_DATA_DIR "/dlt645/vectors.json");
  REQUIRE_MESSAGE(in.good(), "cannot open " METERD_DATA_DIR "/dlt645/vectors.json");
  return nlohmann::json::parse(in);
}

Frame decode_one(const std::string& hex) {
  const auto bytes = parse_hex(hex);
  REQUIRE(bytes);
  const auto r = decode(*bytes);
  REQUIRE(r.status == DecodeStatus::frame);
  CHECK(r.consumed == bytes->size());
  return r.frame;
}

std::string text_of(const Value& v) {
  if (const auto* d = std::get_if<Decimal>(&v.value)) return to_string(*d);
  if (const auto* s = std::get_if<std::string>(&v.value)) return *s;
  return "null";
}

}  // namespace

TEST_CASE("vectors.json: decode and re-encode every valid frame") {
  const auto vectors = load_vectors();
  REQUIRE(vectors.size() >= 18);  // 17 valid + 1 published with a wrong checksum
  int valid = 0, invalid = 0;
  for (const auto& v : vectors) {
    const std::string name = v["name"];
    CAPTURE(name);
    const auto bytes = parse_hex(v["hex"].get<std::string>());
    REQUIRE(bytes);
    if (!v["valid"].get<bool>()) {
      const auto r = decode(*bytes);
      CHECK(r.status == DecodeStatus::error);
      CHECK(r.error == FrameError::bad_checksum);
      ++invalid;
      continue;
    }
    const auto r = decode(*bytes);
    REQUIRE(r.status == DecodeStatus::frame);
    CHECK(r.consumed == bytes->size());
    const auto& e = v["expect"];
    CHECK(r.frame.address.to_string() == e["addr"].get<std::string>());
    CHECK(to_hex(std::span(&r.frame.control, 1)) == e["ctrl"].get<std::string>());
    CHECK(to_hex(r.frame.data, true) == e["plain"].get<std::string>());
    const std::size_t preamble = v["rebuild"]["preamble"];
    CHECK(encode(r.frame, preamble) == *bytes);
    ++valid;
  }
  CHECK(valid == 17);
  CHECK(invalid == 1);
}

TEST_CASE("vectors.json: the bad checksum is named precisely") {
  const auto bytes = *parse_hex("68 34 12 00 00 00 00 68 11 04 33 33 33 33 B2 16");
  const auto r = decode(bytes);
  REQUIRE(r.status == DecodeStatus::error);
  CHECK(describe(r) == "checksum: got B2, expected F7");
}

TEST_CASE("vectors.json: values mean what the published meaning says") {
  SUBCASE("forward active total 123456.78 kWh") {
    const auto i =
        interpret(decode_one("68 12 90 78 56 34 12 68 91 08 33 33 34 33 AB 89 67 45 CC 16"));
    CHECK(i.version == Version::v2007);
    CHECK(i.response);
    CHECK(i.di == 0x00010000u);
    REQUIRE(i.values.size() == 1);
    CHECK(i.values[0].quantity == "energy.active.import.total");
    CHECK(i.values[0].unit == "kWh");
    CHECK(text_of(i.values[0]) == "123456.78");
  }
  SUBCASE("voltage block 0.0 / 0.0 / 239.4 V") {
    const auto i = interpret(decode_one(
        "FE FE FE FE 68 18 20 12 22 20 65 68 91 0A 33 32 34 35 33 33 33 33 C7 56 13 16"));
    REQUIRE(i.values.size() == 3);
    CHECK(i.values[0].quantity == "voltage.l1");
    CHECK(text_of(i.values[0]) == "0.0");
    CHECK(text_of(i.values[1]) == "0.0");
    CHECK(text_of(i.values[2]) == "239.4");
    CHECK(i.values[2].unit == "V");
  }
  SUBCASE("voltage block with absent phases decodes to null") {
    const auto i =
        interpret(decode_one("68 12 00 00 00 10 20 68 91 0A 33 32 34 35 89 55 32 32 32 32 21 16"));
    REQUIRE(i.values.size() == 3);
    CHECK(text_of(i.values[0]) == "225.6");
    CHECK(i.values[1].is_null());
    CHECK(i.values[2].is_null());
    CHECK(i.problem.empty());
  }
  SUBCASE("energy block: total 1.29, T1 0.62, T2 0.60, T3 0.03, T4 0.02 kWh") {
    const auto i =
        interpret(decode_one("68 12 00 00 00 10 20 68 91 18 33 32 34 33 5C 34 33 33 95 33 33 33 93 "
                             "33 33 33 36 33 33 33 35 33 33 33 74 16"));
    REQUIRE(i.values.size() == 5);
    const char* expect[][2] = {{"energy.active.import.total", "1.29"},
                               {"energy.active.import.t1", "0.62"},
                               {"energy.active.import.t2", "0.60"},
                               {"energy.active.import.t3", "0.03"},
                               {"energy.active.import.t4", "0.02"}};
    for (std::size_t k = 0; k < 5; ++k) {
      CHECK(i.values[k].quantity == expect[k][0]);
      CHECK(text_of(i.values[k]) == expect[k][1]);
    }
  }
  SUBCASE("date 2016-01-11, Monday") {
    const auto i =
        interpret(decode_one("68 12 00 00 00 10 20 68 91 08 34 34 33 37 34 44 34 49 72 16"));
    REQUIRE(i.values.size() == 2);
    CHECK(i.values[0].quantity == "meter.weekday");
    CHECK(text_of(i.values[0]) == "1");
    CHECK(text_of(i.values[1]) == "2016-01-11");
  }
  SUBCASE("time 21:53:55") {
    const auto i =
        interpret(decode_one("68 12 00 00 00 10 20 68 91 07 35 34 33 37 88 86 54 DF 16"));
    REQUIRE(i.values.size() == 1);
    CHECK(text_of(i.values[0]) == "21:53:55");
  }
  SUBCASE("error answer ERR=02: no requested data") {
    const auto i = interpret(decode_one("68 12 00 00 00 10 20 68 D1 01 35 19 16"));
    CHECK(i.abnormal);
    CHECK(i.error_word == 0x02);
    CHECK(i.error_meaning == "no requested data");
  }
  SUBCASE("relay trip, valid until 2018-05-12 15:41:24") {
    const auto i = interpret(decode_one(
        "68 11 11 11 11 11 11 68 1C 10 33 33 33 33 33 33 33 33 4D 33 57 74 48 45 38 4B 55 16"));
    CHECK(i.function == "relay control");
    std::map<std::string, std::string> f(i.fields.begin(), i.fields.end());
    CHECK(f["password_level"] == "00");
    CHECK(f["password"] == "000000");
    CHECK(f["operator"] == "00000000");
    CHECK(f["command"] == "trip");
    CHECK(f["valid_until"] == "2018-05-12T15:41:24");
  }
  SUBCASE("broadcast time 2017-06-05 10:22:51") {
    const auto f = decode_one("68 99 99 99 99 99 99 68 08 06 84 55 43 38 39 4A 4B 16");
    CHECK(f.address.is_broadcast());
    const auto i = interpret(f);
    REQUIRE(i.fields.size() == 1);
    CHECK(i.fields[0].second == "2017-06-05T10:22:51");
  }
  SUBCASE("read address answer 001210174069") {
    const auto i =
        interpret(decode_one("FE FE FE FE 68 69 40 17 10 12 00 68 93 06 9C 73 4A 43 45 33 5F 16"));
    REQUIRE(i.values.size() == 1);
    CHECK(text_of(i.values[0]) == "001210174069");
  }
  SUBCASE("1997 read B611 answer: 100 V, integer volts") {
    const auto i = interpret(decode_one("68 03 00 00 00 00 00 68 81 04 44 E9 33 34 EC 16"));
    CHECK(i.version == Version::v1997);
    CHECK(i.di == 0xB611u);
    REQUIRE(i.values.size() == 1);
    CHECK(i.values[0].quantity == "voltage.l1");
    CHECK(text_of(i.values[0]) == "100");
  }
  SUBCASE("1997 read request B611") {
    const auto i = interpret(decode_one("68 03 00 00 00 00 00 68 01 02 44 E9 03 16"));
    CHECK(i.version == Version::v1997);
    CHECK_FALSE(i.response);
    CHECK(i.di == 0xB611u);
    CHECK(i.item_name == "phase A voltage");
  }
}
