// meterctl: the field technician's tool (docs/meterctl.md). The verbs that
// talk to meterd over its control socket live in verbs.cpp (client.cpp: the
// socket; output.cpp: tables and colour); the DL/T 645 frame tools that need
// no daemon (decode a capture, encode a request) are here.
#include <chrono>
#include <ctime>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "firmware/frame_report.hpp"
#include "firmware/meterctl/client.hpp"
#include "firmware/meterctl/direct.hpp"
#include "firmware/meterctl/verbs.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/requests.hpp"
#include "protocol/dlt645/values.hpp"

namespace dlt = meterd::protocol::dlt645;

namespace {

struct UsageError {
  std::string message;
};

[[noreturn]] void fail(std::string message) { throw UsageError{std::move(message)}; }

dlt::Version version_of(const std::string& text) {
  const auto v = dlt::parse_version(text);
  if (!v) fail("--protocol: expected dlt645-2007 or dlt645-1997, got '" + text + "'");
  return *v;
}

dlt::Address address_of(const std::string& text) {
  const auto a = dlt::Address::parse(text);
  if (!a)
    fail("--address: expected up to 12 digits (AA allowed as wildcard pairs), got '" + text + "'");
  return *a;
}

dlt::DateTime time_of(const std::string& option, const std::string& text) {
  if (text == "now") {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    localtime_r(&now, &tm);
    return {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
  }
  const auto t = dlt::parse_datetime(text);
  if (!t) fail(option + ": expected YYYY-MM-DDThh:mm:ss (2000-2099) or 'now', got '" + text + "'");
  return *t;
}

void print_frame(const dlt::Frame& frame, bool preamble) {
  const auto wire = dlt::try_encode(frame, preamble ? 4 : 0);
  if (!wire) fail("encode: the data field exceeds 255 bytes (L is one byte)");
  std::cout << dlt::to_hex(*wire, true) << "\n";
}

// Hex text -> bytes, a piece at a time (a capture on stdin may be large).
// Separators (space, tab, newline, ':', ',') may fall anywhere, even
// between the two digits of a byte, as parse_hex() allows.
class HexStream {
 public:
  // Appends the bytes of `text` to `out`; false at the first character
  // that is neither a hex digit nor a separator.
  bool feed(std::string_view text, std::vector<std::uint8_t>& out) {
    for (const char c : text) {
      ++chars_;
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ':' || c == ',') continue;
      const int nibble = c >= '0' && c <= '9'   ? c - '0'
                         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                         : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                : -1;
      if (nibble < 0) return false;
      if (high_ < 0) {
        high_ = nibble;
      } else {
        out.push_back(static_cast<std::uint8_t>((high_ << 4) | nibble));
        high_ = -1;
      }
    }
    return true;
  }
  bool complete() const noexcept { return high_ < 0; }  // an even number of digits
  std::uint64_t position() const noexcept { return chars_; }

 private:
  int high_ = -1;
  std::uint64_t chars_ = 0;
};

// meterctl decode: the capture streams through (stdin in 64 KiB pieces),
// frames are printed as they are found. Exit 1 if any candidate was bad.
int decode_capture(const std::vector<std::string>& hex_parts, bool json,
                   std::optional<dlt::Version> forced) {
  meterd::firmware::ReportOptions options;
  options.json = json;
  options.version = forced;
  bool first = true;
  meterd::firmware::CaptureReporter reporter(
      options,
      [&](const std::string& frame) {
        if (!json && !first) std::cout << "\n";
        first = false;
        std::cout << frame << (json ? "\n" : "");
      },
      [](const std::string& error) { std::cerr << "meterctl: " << error << "\n"; });
  HexStream hex;
  std::vector<std::uint8_t> bytes;
  const auto take = [&](std::string_view text) {
    bytes.clear();
    const bool ok = hex.feed(text, bytes);
    reporter.feed(bytes);
    if (!ok)
      fail("decode: input is not hex at character " + std::to_string(hex.position()) +
           " (digits 0-9 A-F, spaces allowed, an even number of digits)");
  };
  if (hex_parts.empty()) {
    std::vector<char> buf(64 * 1024);
    while (std::cin.read(buf.data(), static_cast<std::streamsize>(buf.size())) ||
           std::cin.gcount() > 0)
      take(std::string_view(buf.data(), static_cast<std::size_t>(std::cin.gcount())));
  } else {
    for (const auto& part : hex_parts) take(part);
  }
  if (!hex.complete())
    fail("decode: input is not hex (an odd number of digits: the last byte is half a byte)");
  reporter.finish();
  std::cout.flush();
  if (reporter.frames() == 0 && reporter.errors() == 0) {
    std::cerr << "meterctl: no DL/T 645 frame found in the input\n";
    return 1;
  }
  return reporter.errors() == 0 ? 0 : 1;
}

// CLI11's messages may span lines; a usage error is one line.
std::string one_line(std::string text) {
  for (auto& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"meterctl: the meterd technician's tool"};
  app.require_subcommand(1);
  // Global options may follow the verb too: meterctl status --json.
  app.fallthrough();
  meterd::meterctl::DaemonVerbs daemon_verbs(app);

  // ---- decode ----
  auto* decode =
      app.add_subcommand("decode", "Explain DL/T 645 frames from hex (a capture, noise allowed)");
  bool json = false;
  std::string decode_protocol;
  std::vector<std::string> hex_parts;
  decode->add_flag("--json", json, "One JSON object per frame per line");
  decode->add_option("--protocol", decode_protocol,
                     "Force dlt645-2007 or dlt645-1997 (default: from the control code)");
  decode->add_option("HEX", hex_parts,
                     "Hex bytes, with or without spaces; read from stdin if none");

  // ---- encode ----
  auto* encode = app.add_subcommand("encode", "Build a DL/T 645 request frame and print it in hex");
  encode->require_subcommand(1);
  std::string address, di_text, protocol_text = "dlt645-2007", time_text, command_text,
                                password_text, operator_text = "00000000", valid_text,
                                level_text = "02";
  bool preamble = false;
  unsigned blocks = 0, seq = 1;
  std::string from_text;

  auto* e_read = encode->add_subcommand("read", "Read data (2007: 11H, 1997: 01H)");
  e_read->add_option("--address", address, "Meter address, 12 digits")->required();
  e_read->add_option("--di", di_text, "Data identifier: 8 hex digits (2007) or 4 (1997)")
      ->required();
  e_read->add_option("--protocol", protocol_text, "dlt645-2007 (default) or dlt645-1997");
  e_read->add_option("--blocks", blocks, "Load profile: number of blocks N (2007)");
  e_read->add_option("--from", from_text, "Load profile: first block time YYYY-MM-DDThh:mm (2007)");
  e_read->add_flag("--preamble", preamble, "Prefix four FE wake-up bytes");

  auto* e_follow =
      encode->add_subcommand("read-follow-up", "Read follow-up frame (2007: 12H, 1997: 02H)");
  e_follow->add_option("--address", address, "Meter address")->required();
  e_follow->add_option("--di", di_text, "Data identifier")->required();
  e_follow->add_option("--seq", seq, "Frame sequence number (2007)");
  e_follow->add_option("--protocol", protocol_text, "dlt645-2007 (default) or dlt645-1997");
  e_follow->add_flag("--preamble", preamble, "Prefix four FE wake-up bytes");

  auto* e_addr = encode->add_subcommand("read-address",
                                        "Read the address of the only meter on the line (13H)");
  e_addr->add_flag("--preamble", preamble, "Prefix four FE wake-up bytes");

  auto* e_time = encode->add_subcommand("timesync", "Broadcast time (08H) to 999999999999");
  e_time->add_option("--time", time_text, "YYYY-MM-DDThh:mm:ss (meter local time) or 'now'")
      ->required();
  e_time->add_option("--address", address,
                     "Send to one meter instead of broadcast (some meters accept it)");
  e_time->add_option("--protocol", protocol_text, "dlt645-2007 (default) or dlt645-1997");
  e_time->add_flag("--preamble", preamble, "Prefix four FE wake-up bytes");

  auto* e_relay = encode->add_subcommand("relay", "Relay / alarm / keep-power control (1CH, 2007)");
  e_relay->add_option("--address", address, "Meter address, 12 digits")->required();
  e_relay
      ->add_option("--command", command_text,
                   "trip | close-allowed | close | alarm | alarm-release | keep-power | release")
      ->required();
  e_relay->add_option("--password", password_text, "6 digits, or 8 with the level first (02123456)")
      ->required();
  e_relay->add_option("--level", level_text,
                      "Password level when --password has 6 digits (default 02)");
  e_relay->add_option("--operator", operator_text, "Operator code, 8 digits (default 00000000)");
  e_relay->add_option("--valid-until", valid_text, "Command expiry YYYY-MM-DDThh:mm:ss")
      ->required();
  e_relay->add_flag("--preamble", preamble, "Prefix four FE wake-up bytes");

  auto direct = meterd::meterctl::add_direct_commands(app);  // probe, modbus, scan on --port
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help: the help text on stdout, exit 0
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Every usage error: one line on stderr, exit 2 (CLI11 would exit 104-109).
    std::cerr << "meterctl: " << one_line(e.what()) << " (see meterctl --help)\n";
    return 2;
  }

  if (auto rc = meterd::meterctl::run_direct(*direct)) return *rc;
  try {
    if (daemon_verbs.chosen()) return daemon_verbs.run();
  } catch (const meterd::meterctl::Failure& f) {
    std::cout.flush();
    std::cerr << "meterctl: " << f.message << "\n";
    return f.code;
  }

  try {
    if (decode->parsed()) {
      std::optional<dlt::Version> forced;
      if (!decode_protocol.empty()) forced = version_of(decode_protocol);
      return decode_capture(hex_parts, json, forced);
    }

    const auto version = version_of(protocol_text);
    if (e_read->parsed()) {
      const auto a = address_of(address);
      const auto di = dlt::parse_di(version, di_text);
      if (!di)
        fail("--di: expected " + std::to_string(dlt::di_size(version) * 2) + " hex digits, got '" +
             di_text + "'");
      if (version == dlt::Version::v1997) {
        if (blocks || !from_text.empty())
          fail("--blocks/--from: load profile reads exist in DL/T 645-2007 only");
        print_frame(dlt::request::v1997::read(a, static_cast<std::uint16_t>(*di)), preamble);
      } else if (blocks || !from_text.empty()) {
        if (blocks < 1 || blocks > 99) fail("--blocks: expected 1..99");
        std::optional<dlt::DateTime> from;
        if (!from_text.empty()) from = time_of("--from", from_text);
        print_frame(dlt::request::read_blocks(a, *di, blocks, from), preamble);
      } else {
        print_frame(dlt::request::read(a, *di), preamble);
      }
    } else if (e_follow->parsed()) {
      const auto a = address_of(address);
      const auto di = dlt::parse_di(version, di_text);
      if (!di)
        fail("--di: expected " + std::to_string(dlt::di_size(version) * 2) + " hex digits, got '" +
             di_text + "'");
      if (seq > 255) fail("--seq: expected 0..255");
      print_frame(version == dlt::Version::v1997
                      ? dlt::request::v1997::read_follow_up(a, static_cast<std::uint16_t>(*di))
                      : dlt::request::read_follow_up(a, *di, static_cast<std::uint8_t>(seq)),
                  preamble);
    } else if (e_addr->parsed()) {
      print_frame(dlt::request::read_address(), preamble);
    } else if (e_time->parsed()) {
      const auto t = time_of("--time", time_text);
      auto frame = version == dlt::Version::v1997 ? dlt::request::v1997::broadcast_time(t)
                                                  : dlt::request::broadcast_time(t);
      if (!address.empty()) frame.address = address_of(address);
      print_frame(frame, preamble);
    } else if (e_relay->parsed()) {
      if (version != dlt::Version::v2007)
        fail("relay: relay control (1CH) exists in DL/T 645-2007 only");
      const auto a = address_of(address);
      const auto command = dlt::parse_relay_command(command_text);
      if (!command)
        fail(
            "--command: expected trip, close-allowed, close, alarm, alarm-release, keep-power or "
            "release, got '" +
            command_text + "'");
      const auto level = dlt::parse_hex(level_text);
      if (!level || level->size() != 1)
        fail("--level: expected two hex digits, got '" + level_text + "'");
      const auto password = dlt::parse_password(password_text, (*level)[0]);
      if (!password)
        fail("--password: expected 6 digits (or 8 with the level first), got '" + password_text +
             "'");
      const auto op = dlt::parse_operator(operator_text);
      if (!op) fail("--operator: expected 8 digits, got '" + operator_text + "'");
      print_frame(dlt::request::relay_control(a, *password, *op, *command,
                                              time_of("--valid-until", valid_text)),
                  preamble);
    }
  } catch (const UsageError& e) {
    std::cerr << "meterctl: " << e.message << "\n";
    return 2;
  }
  return 0;
}
