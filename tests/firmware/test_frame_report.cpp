#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "firmware/frame_report.hpp"
#include "protocol/dlt645/values.hpp"

using namespace meterd;

namespace {
std::vector<std::uint8_t> hex(const char* t) { return *protocol::dlt645::parse_hex(t); }
}  // namespace

TEST_CASE("capture report: frames, noise and a bad checksum in one input") {
  const auto capture =
      hex("00 11 FE FE 68 12 90 78 56 34 12 68 91 08 33 33 34 33 AB 89 67 45 CC 16 "
          "68 34 12 00 00 00 00 68 11 04 33 33 33 33 B2 16 "
          "55 68 12 00 00 00 10 20 68 D1 01 35 19 16");
  const auto r = firmware::report_capture(capture, true);
  REQUIRE(r.frames.size() == 2);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0] == "bad frame at byte 24: checksum: got B2, expected F7");
  const auto first = nlohmann::json::parse(r.frames[0]);
  CHECK(first["protocol"] == "dlt645-2007");
  CHECK(first["address"] == "123456789012");
  CHECK(first["control"] == "91");
  CHECK(first["direction"] == "response");
  CHECK(first["di"] == "00010000");
  CHECK(first["data"] == "0000010078563412");
  CHECK(first["offset"] == 4);
  // The number's text is the meter's digits, not a float rendering.
  CHECK(r.frames[0].find("\"value\":123456.78}") != std::string::npos);
  const auto err = nlohmann::json::parse(r.frames[1]);
  CHECK(err["error"]["code"] == "02");
  CHECK(err["error"]["meaning"] == "no requested data");
}

TEST_CASE("text report shows status-word flags and absent values") {
  // Answer to 04000503 (status word 3) with 0050H: relay open, trip commanded.
  const protocol::dlt645::Frame f{*protocol::dlt645::Address::parse("1"), 0x91,
                                  hex("03 05 00 04 50 00")};
  const auto text = firmware::frame_text(f, 1, 0);
  CHECK(text.find("status.word3 = 0050") != std::string::npos);
  CHECK(text.find("- relay open (supply off)") != std::string::npos);
  CHECK(text.find("- relay command: trip") != std::string::npos);
}

TEST_CASE("forced version changes how an ambiguous frame reads") {
  // 08H is broadcast time in both versions.
  const auto f =
      protocol::dlt645::decode(hex("68 99 99 99 99 99 99 68 08 06 84 55 43 38 39 4A 4B 16"));
  REQUIRE(f.status == protocol::dlt645::DecodeStatus::frame);
  const auto j =
      nlohmann::json::parse(firmware::frame_json(f.frame, 0, protocol::dlt645::Version::v1997));
  CHECK(j["protocol"] == "dlt645-1997");
  CHECK(j["fields"]["time"] == "2017-06-05T10:22:51");
}
