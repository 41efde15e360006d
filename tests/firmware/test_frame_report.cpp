#include <algorithm>

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

TEST_CASE("capture reporter: streams in any pieces, folds a run of bad frames into one line") {
  using meterd::firmware::CaptureReporter;
  using meterd::firmware::ReportOptions;
  CHECK(meterd::firmware::with_thousands(0) == "0");
  CHECK(meterd::firmware::with_thousands(999) == "999");
  CHECK(meterd::firmware::with_thousands(12345) == "12,345");
  CHECK(meterd::firmware::with_thousands(5000000) == "5,000,000");

  // 1,000 bytes of 68H noise, a frame, 300 more, the frame again.
  const auto frame = hex("68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16");
  std::vector<std::uint8_t> capture(1000, 0x68);
  capture.insert(capture.end(), frame.begin(), frame.end());
  capture.insert(capture.end(), 300, 0x68);
  capture.insert(capture.end(), frame.begin(), frame.end());

  ReportOptions options;
  options.json = true;
  options.errors_before_folding = 3;
  const auto run = [&](std::size_t piece) {
    std::vector<std::string> lines;
    CaptureReporter r(
        options, [&](const std::string& f) { lines.push_back("frame " + f); },
        [&](const std::string& e) { lines.push_back(e); });
    for (std::size_t at = 0; at < capture.size(); at += piece)
      r.feed(std::span(capture).subspan(at, std::min(piece, capture.size() - at)));
    r.finish();
    CHECK(r.frames() == 2);
    return lines;
  };
  const auto whole = run(capture.size());
  REQUIRE(whole.size() == 10);  // 3 named + 1 folded, frame, 3 named + 1 folded, frame
  CHECK(whole[3].find("991 more bad frames") != std::string::npos);
  CHECK(whole[0].rfind("bad frame at byte 0: checksum", 0) == 0);
  CHECK(whole[3].rfind("... 997 bytes skipped, ", 0) == 0);
  CHECK(whole[3].find("bytes 3 to 1,000") != std::string::npos);
  CHECK(whole[4].find("\"offset\":1000") != std::string::npos);
  CHECK(whole[8].rfind("... 297 bytes skipped, ", 0) == 0);
  CHECK(whole[9].find("\"offset\":1316") != std::string::npos);
  // In pieces the same frames come out, and the runs fold the same way.
  // Only the number of bad candidates may be smaller: a head that is still
  // incomplete when the frame behind it is whole is skipped as noise (the
  // decoder cannot wait for bytes that may never come), not named.
  for (std::size_t piece : {1u, 7u, 4096u}) {
    CAPTURE(piece);
    const auto lines = run(piece);
    REQUIRE(lines.size() == whole.size());
    for (std::size_t k = 0; k < lines.size(); ++k) {
      if (k == 3 || k == 8)  // the folded lines: same span, maybe fewer candidates
        CHECK(lines[k].substr(0, 22) == whole[k].substr(0, 22));
      else
        CHECK(lines[k] == whole[k]);
    }
    CHECK(lines[3].find("bytes 3 to 1,000") != std::string::npos);
  }
}
