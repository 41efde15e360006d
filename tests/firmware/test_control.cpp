// The control socket's request parser and answer lines (firmware/control).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "firmware/control.hpp"
#include "protocol/exact_json.hpp"

using namespace meterd::firmware;
using json = nlohmann::json;

namespace {

ControlRequest ok(const std::string& line) {
  auto r = parse_control_request(line);
  if (auto* e = std::get_if<ControlError>(&r)) FAIL("refused: " << e->code << ": " << e->message);
  return std::get<ControlRequest>(r);
}

ControlError refused(const std::string& line) {
  auto r = parse_control_request(line);
  REQUIRE(std::holds_alternative<ControlError>(r));
  return std::get<ControlError>(r);
}

}  // namespace

TEST_CASE("every verb parses with its members; the id is echoed as JSON text") {
  CHECK(ok(R"({"verb":"status"})").verb == ControlVerb::status);
  CHECK(ok(R"({"verb":"status"})").id_json.empty());
  CHECK(ok(R"({"verb":"status","id":7})").id_json == "7");
  CHECK(ok(R"({"verb":"status","id":{"a":[1,"x"]}})").id_json == R"({"a":[1,"x"]})");
  const auto m = ok(R"({"verb":"meters","bus":"rs485-1","offline":true})");
  CHECK(m.bus == "rs485-1");
  CHECK(m.offline);
  const auto r = ok(R"({"verb":"read","meter":"m1","quantities":["voltage.l1","frequency"]})");
  CHECK(r.meter == "m1");
  CHECK(r.quantities == std::vector<std::string>{"voltage.l1", "frequency"});
  const auto t = ok(R"({"verb":"tail","meter":"m1","quantity":"voltage.l1"})");
  CHECK(t.quantity == "voltage.l1");
  const auto x = ok(
      R"({"verb":"export","meter":"m1","from":"2026-12-01","to":"2026-12-01T08:00:00.5Z","events":true})");
  CHECK(x.verb == ControlVerb::export_rows);
  CHECK(x.from_ms == 1796083200000);
  CHECK(x.to_ms == 1796083200000 + 8 * 3600000 + 500);
  CHECK(x.events);
  const auto all = ok(R"({"verb":"export"})");
  CHECK(all.from_ms == INT64_MIN);  // the whole buffer
  CHECK(all.to_ms == INT64_MAX);
  CHECK(ok(R"({"verb":"export","from":1000,"to":2000})").to_ms == 2000);
  const auto s = ok(R"({"verb":"scan","bus":"b","protocol":"modbus","first":5,"last":9})");
  CHECK(s.first_unit == 5);
  CHECK(s.last_unit == 9);
  CHECK(ok(R"({"verb":"relay","meter":"m1","action":"trip"})").action == "trip");
  CHECK(ok(R"({"verb":"timesync"})").bus.empty());
  CHECK(ok(R"({"verb":"reload"})").verb == ControlVerb::reload);
  CHECK(ok(R"({"verb":"backlog"})").verb == ControlVerb::backlog);
}

TEST_CASE("what is not a request is refused with a reason, never guessed at") {
  // Careless parsers: one that ignores unknown members (a typo "meterr"
  // reads every meter), keeps the last of two members, accepts a relay
  // action it does not know, or crashes on a non-object.
  CHECK(refused("not json").code == "malformed");
  CHECK(refused("[1,2]").code == "malformed");
  CHECK(refused("").code == "malformed");
  CHECK(refused(R"({"verb":"status","verb":"reload"})").message.find("twice") != std::string::npos);
  CHECK(refused(R"({"id":3})").code == "invalid");
  CHECK(refused(R"({"id":3})").id_json == "3");  // the answer can still be matched
  CHECK(refused(R"({"verb":"reboot"})").message == "unknown verb \"reboot\"");
  CHECK(refused(R"({"verb":"read","meterr":"m1"})").message == "read: unknown member \"meterr\"");
  CHECK(refused(R"({"verb":"read"})").message == "read: \"meter\" is required");
  CHECK(refused(R"({"verb":"read","meter":""})").code == "invalid");
  CHECK(refused(R"({"verb":"read","meter":"a b"})").code == "invalid");
  CHECK(refused(R"({"verb":"read","meter":"m","quantities":"voltage.l1"})").code == "invalid");
  CHECK(refused(R"({"verb":"read","meter":"m","quantities":["a","a"]})").message.find("twice") !=
        std::string::npos);
  CHECK(refused(R"({"verb":"relay","meter":"m","action":"open"})").message ==
        "relay: \"action\" must be trip or close, got \"open\"");
  CHECK(refused(R"({"verb":"meters","offline":"yes"})").code == "invalid");
  CHECK(refused(R"({"verb":"export","from":"yesterday"})").code == "invalid");
  CHECK(refused(R"({"verb":"export","from":"2026-12-01T08:00:00+08:00"})").code == "invalid");
  CHECK(refused(R"({"verb":"export","from":2000,"to":1000})").message ==
        "export: \"from\" must come before \"to\"");
  CHECK(refused(R"({"verb":"scan"})").message == "scan: \"bus\" is required");
  CHECK(refused(R"({"verb":"scan","bus":"b","first":0})").code == "invalid");
  CHECK(refused(R"({"verb":"scan","bus":"b","last":248})").code == "invalid");
  CHECK(refused(R"({"verb":"scan","bus":"b","first":9,"last":5})").code == "invalid");
  CHECK(refused(R"({"verb":"scan","bus":"b","protocol":"iec62056"})").code == "invalid");
  CHECK(refused(R"({"verb":"status","bus":"b"})").code == "invalid");
}

TEST_CASE("answer lines: exact numbers stay exact, the id leads, one line each") {
  const json result{{"value", meterd::protocol::exact_number({22010, -2})}};
  CHECK(control_ok("7", result) == R"({"id":7,"ok":true,"result":{"value":220.10}})");
  CHECK(control_ok("", json::object()) == R"({"ok":true,"result":{}})");
  CHECK(control_error("\"a\"", "unknown_meter", "no meter m9") ==
        R"({"id":"a","ok":false,"error":{"code":"unknown_meter","message":"no meter m9"}})");
  CHECK(control_data("1", R"({"seq":5})") == R"({"id":1,"data":{"seq":5}})");
  CHECK(control_skipped("", 12) == R"({"skipped":12})");
  CHECK(control_progress("", {{"done", 1}}) == R"({"progress":{"done":1}})");
  // A message with a newline or invalid UTF-8 still makes one valid line.
  const std::string line = control_error("", "invalid", "bad\n\xff");
  CHECK(line.find('\n') == std::string::npos);
  CHECK_FALSE(json::parse(line, nullptr, false).is_discarded());
}
