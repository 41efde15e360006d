// System tier: the real meterctl binary, as a technician runs it.
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

namespace {

struct Run {
  int status = -1;
  std::string out;  // stdout and stderr, stderr after "--stderr--"
};

Run meterctl(const std::string& args) {
  const std::string err_file = "/tmp/meterctl_test_stderr_" + std::to_string(::getpid());
  const std::string cmd = std::string(METERD_BIN_DIR) + "/meterctl " + args + " 2>" + err_file;
  Run r;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (FILE* e = std::fopen(err_file.c_str(), "r")) {
    r.out += "--stderr--\n";
    while ((n = std::fread(buf, 1, sizeof buf, e)) > 0) r.out.append(buf, n);
    std::fclose(e);
  }
  std::remove(err_file.c_str());
  return r;
}

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out.substr(0, out.find("--stderr--")));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

}  // namespace

TEST_CASE("decode --json: hex with and without spaces, several frames, noise between") {
  const auto r = meterctl(
      "decode --json FE FE 6812907856341268910833333433AB896745CC16 00 13 "
      "'68 03 00 00 00 00 00 68 81 04 44 E9 33 34 EC 16'");
  CHECK(r.status == 0);
  const auto lines = json_lines(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["values"][0]["quantity"] == "energy.active.import.total");
  CHECK(lines[0]["values"][0]["value"].dump() == "123456.78");
  CHECK(lines[1]["protocol"] == "dlt645-1997");
  CHECK(lines[1]["di"] == "B611");
  CHECK(lines[1]["values"][0]["value"] == 100);
  CHECK(lines[1]["values"][0]["unit"] == "V");
}

TEST_CASE("decode: a bad checksum is named on stderr, exit 1, other frames still decoded") {
  const auto r = meterctl(
      "decode '68 34 12 00 00 00 00 68 11 04 33 33 33 33 B2 16' "
      "'68 12 90 78 56 34 12 68 91 08 33 33 34 33 AB 89 67 45 CC 16'");
  CHECK(r.status == 1);
  CHECK(r.out.find("energy.active.import.total = 123456.78 kWh") != std::string::npos);
  CHECK(r.out.find("--stderr--\nmeterctl: bad frame at byte 0: checksum: got B2, expected F7") !=
        std::string::npos);
}

TEST_CASE("decode: a truncated frame is named") {
  const auto r = meterctl("decode 68129078563412689108333334");
  CHECK(r.status == 1);
  CHECK(r.out.find("truncated frame: 13 bytes present, 7 more expected") != std::string::npos);
}

TEST_CASE("decode: not hex is a usage error") {
  const auto r = meterctl("decode 68 12 zz");
  CHECK(r.status == 2);
  CHECK(r.out.find("input is not hex") != std::string::npos);
}

TEST_CASE("encode read / read-address / timesync / relay") {
  auto r = meterctl("encode read --address 123456789012 --di 00010000");
  CHECK(r.status == 0);
  CHECK(r.out.rfind("68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16\n", 0) == 0);
  r = meterctl("encode read --address 3 --di B611 --protocol dlt645-1997");
  CHECK(r.out.rfind("68 03 00 00 00 00 00 68 01 02 44 E9 03 16\n", 0) == 0);
  r = meterctl("encode read-address --preamble");
  CHECK(r.out.rfind("FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16\n", 0) == 0);
  r = meterctl("encode timesync --time 2017-06-05T10:22:51");
  CHECK(r.out.rfind("68 99 99 99 99 99 99 68 08 06 84 55 43 38 39 4A 4B 16\n", 0) == 0);
  r = meterctl(
      "encode relay --address 111111111111 --command trip --password 00000000 --operator 00000000 "
      "--valid-until 2018-05-12T15:41:24");
  CHECK(r.status == 0);
  CHECK(r.out.rfind(
            "68 11 11 11 11 11 11 68 1C 10 33 33 33 33 33 33 33 33 4D 33 57 74 48 45 38 4B 55 16\n",
            0) == 0);
}

TEST_CASE("encode: bad arguments name the option") {
  auto r = meterctl("encode read --address 12345678901x --di 00010000");
  CHECK(r.status == 2);
  CHECK(r.out.find("--address") != std::string::npos);
  r = meterctl("encode read --address 1 --di 0001");
  CHECK(r.status == 2);
  CHECK(r.out.find("--di: expected 8 hex digits") != std::string::npos);
  r = meterctl(
      "encode relay --address 1 --command open --password 000000 --valid-until "
      "2026-01-01T00:00:00");
  CHECK(r.status == 2);
  CHECK(r.out.find("--command") != std::string::npos);
  r = meterctl(
      "encode relay --address 1 --command trip --password 000000 --valid-until "
      "2026-02-30T00:00:00");
  CHECK(r.status == 2);
  CHECK(r.out.find("--valid-until") != std::string::npos);
}

TEST_CASE("encode output decodes back to the same request") {
  const auto enc = meterctl("encode read --address 000000000042 --di 0506FF01 --preamble");
  REQUIRE(enc.status == 0);
  const auto hex = enc.out.substr(0, enc.out.find('\n'));
  const auto dec = meterctl("decode --json '" + hex + "'");
  CHECK(dec.status == 0);
  const auto lines = json_lines(dec.out);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["address"] == "000000000042");
  CHECK(lines[0]["di"] == "0506FF01");
  CHECK(lines[0]["direction"] == "request");
}

namespace {

std::string stderr_of(const Run& r) {
  const auto at = r.out.find("--stderr--\n");
  return at == std::string::npos ? "" : r.out.substr(at + 11);
}

std::string stdout_of(const Run& r) { return r.out.substr(0, r.out.find("--stderr--")); }

}  // namespace

TEST_CASE("decode: a false head does not hide the real frame (issue 8 reproduction)") {
  const auto r = meterctl("decode 6811111111111168 6812907856341268910833333433AB896745CC16");
  CHECK(r.status == 0);
  CHECK(r.out.find("frame 1 at byte 8: dlt645-2007 response") != std::string::npos);
  CHECK(r.out.find("energy.active.import.total = 123456.78 kWh") != std::string::npos);
}

TEST_CASE("every usage error, the argument parser's included, is one line on stderr and exit 2") {
  for (const char* args :
       {"", "bogus", "decode --nope", "encode", "encode read --di 00010000",
        "encode read --address", "encode read-follow-up --address 1 --di 00010000 --seq x",
        "encode read --address 1 --di 00010000 extra", "decode 68 1", "decode 68 12 zz",
        "encode read --address 1 --di 0001", "--protocol"}) {
    CAPTURE(args);
    const auto r = meterctl(args);
    CHECK(r.status == 2);
    CHECK(stdout_of(r).empty());
    const auto err = stderr_of(r);
    CHECK(err.rfind("meterctl: ", 0) == 0);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
    CHECK(err.back() == '\n');
  }
  const auto help = meterctl("--help");
  CHECK(help.status == 0);
  CHECK(stdout_of(help).find("decode") != std::string::npos);
}

TEST_CASE("decode: a large noisy capture streams, and repeated errors fold into one line") {
  // 200,000 bytes of 68H noise (each a bad candidate), then a real answer.
  const std::string path = "/tmp/meterctl_noise_" + std::to_string(::getpid());
  {
    FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    for (int i = 0; i < 200000; ++i) std::fputs("68", f);
    // (Not the 00010000 answer of the other tests: behind all-68H noise its
    // bytes complete a false head at offset N-96 into a valid frame.)
    std::fputs(" 68120000001020689118333234335C34333395333333933333333633333335333333 7416\n", f);
    std::fclose(f);
  }
  const auto r = meterctl("decode --json < " + path);
  std::remove(path.c_str());
  CHECK(r.status == 1);
  const auto lines = json_lines(r.out);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["offset"] == 200000);
  const auto err = stderr_of(r);
  CHECK(std::count(err.begin(), err.end(), '\n') == 11);  // 10 named, then one folded line
  CHECK(err.find("meterctl: bad frame at byte 0: checksum") == 0);
  CHECK(err.find("meterctl: ... 199,990 bytes skipped, ") != std::string::npos);
  CHECK(err.find(" to 200,000\n") != std::string::npos);
}
