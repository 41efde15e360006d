// System tier: the serial port, the DL/T 645 and Modbus masters and the bus
// worker against the real metersim (its ptys, its TCP converter, its fault
// switches and its ground truth). Each test names the mistake it catches.
#include <atomic>
#include <charconv>
#include <cstring>
#include <future>
#include <thread>

#include <doctest/doctest.h>
#include <termios.h>

#include "drivers/bus.hpp"
#include "drivers/dlt645_master.hpp"
#include "drivers/modbus_master.hpp"
#include "protocol/decimal.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/requests.hpp"
#include "tests/support/metersim.hpp"

using namespace meterd;
using namespace meterd::drivers;
using namespace meterd::testing;
using namespace std::chrono_literals;
namespace dlt = meterd::protocol::dlt645;

namespace {

std::string bus_toml(unsigned baud, const char* parity = "even", const char* extra = "") {
  return "seed = 11\nstatic = true\n[[bus]]\nname = \"b1\"\nbaud = " + std::to_string(baud) +
         "\nparity = \"" + parity + "\"\n" + extra + "\n";
}

std::string meter(const char* id, const char* protocol, const char* address,
                  const char* extra = "") {
  return std::string("[[meter]]\nid = \"") + id + "\"\nbus = \"b1\"\nprotocol = \"" + protocol +
         "\"\naddress = \"" + address + "\"\nturnaround_ms = 20\n" + extra + "\n";
}

LineSettings line_settings(unsigned baud, Parity parity = Parity::even) {
  LineSettings s;
  s.baud = baud;
  s.parity = parity;
  return s;
}

SerialLine open_line(const std::string& path, const LineSettings& s) {
  std::error_code ec;
  Fd fd = open_serial(path, s, ec);
  REQUIRE_MESSAGE(!ec, path, ": ", ec.message());
  return SerialLine(std::move(fd), s);
}

Dlt645Options dlt_options(unsigned retries = 0) {
  Dlt645Options o;
  o.limits.response_timeout = 500ms;
  o.limits.byte_timeout = 150ms;
  o.retries = retries;
  return o;
}

// The values the answer's data decode to, as metersim's `read` prints them.
std::vector<nlohmann::json> values_of(dlt::Version v, std::uint32_t di,
                                      const std::vector<std::uint8_t>& data) {
  const auto item = dlt::lookup(v, di);
  REQUIRE(item);
  const auto decoded = dlt::decode_values(*item, data);
  REQUIRE_MESSAGE(!decoded.error, decoded.message);
  std::vector<nlohmann::json> out;
  for (const auto& value : decoded.values) {
    if (const auto* d = std::get_if<protocol::Decimal>(&value.value))
      out.emplace_back(protocol::to_string(*d));
    else if (const auto* t = std::get_if<std::string>(&value.value))
      out.emplace_back(*t);
    else
      out.emplace_back(nullptr);
  }
  return out;
}

std::vector<nlohmann::json> truth_of(Metersim& sim, const char* id, const std::string& di) {
  const auto t = sim.ctl({{"cmd", "read"}, {"meter", id}, {"di", di}});
  REQUIRE(t["ok"] == true);
  std::vector<nlohmann::json> out;
  for (const auto& v : t["values"]) out.push_back(v["value"]);
  return out;
}

float float_at(const std::vector<std::uint16_t>& words, std::size_t k) {
  const std::uint32_t bits = std::uint32_t{words[2 * k]} << 16 | words[2 * k + 1];
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace

TEST_CASE(
    "serial port: a metersim bus opens at 8E1 though a pty drops parity; a wrong setting "
    "still fails") {
  // Catches: configure() failing on every pty at even parity (glibc's EINVAL
  // after the kernel cleared PARENB), and a tolerance so broad that it
  // accepts settings that did not apply.
  Metersim sim(bus_toml(2400) + meter("m1", "dlt645-2007", "000000000001"));
  std::error_code ec;
  {
    Fd fd = open_serial(sim.bus_path(), line_settings(2400), ec);
    CHECK_MESSAGE(!ec, ec.message());
    termios t{};
    REQUIRE(::tcgetattr(fd.get(), &t) == 0);
    CHECK(::cfgetospeed(&t) == B2400);  // the baud rate did apply
  }
  auto odd7 = line_settings(4800, Parity::odd);
  odd7.data_bits = 7;
  odd7.stop_bits = 2;
  {
    Fd fd = open_serial(sim.bus_path(), odd7, ec);
    CHECK_MESSAGE(!ec, ec.message());
    termios t{};
    REQUIRE(::tcgetattr(fd.get(), &t) == 0);
    CHECK(::cfgetospeed(&t) == B4800);
    CHECK((t.c_cflag & CSTOPB) != 0);
  }
  auto s = line_settings(14400);  // no such standard rate
  CHECK_FALSE(open_serial(sim.bus_path(), s, ec));
  CHECK(ec == std::errc::invalid_argument);
  s = line_settings(2400);
  s.stop_bits = 3;
  CHECK_FALSE(open_serial(sim.bus_path(), s, ec));
  CHECK(ec);
  CHECK_FALSE(open_serial("/dev/null", line_settings(2400), ec));  // not a tty at all
  CHECK(ec);
  // RS-485 mode: a pty has no such ioctl, and says so distinctly.
  Fd fd = open_serial(sim.bus_path(), line_settings(2400), ec);
  REQUIRE_FALSE(ec);
  Rs485Settings rs;
  rs.enabled = true;
  CHECK(set_rs485(fd.get(), rs) == std::errc::not_supported);
}

TEST_CASE("serial port: a second exclusive open of the same bus fails until the first closes") {
  // Catches: two processes (two meterd, meterd and a commissioning tool)
  // driving one bus; TIOCEXCL alone does not stop root.
  Metersim sim(bus_toml(2400) + meter("m1", "dlt645-2007", "000000000001"));
  std::error_code ec;
  Fd first = open_serial(sim.bus_path(), line_settings(2400), ec);
  REQUIRE_FALSE(ec);
  REQUIRE_FALSE(lock_exclusive(first.get()));
  {
    Fd second = open_serial(sim.bus_path(), line_settings(2400), ec);
    if (!ec) {  // root may open a TIOCEXCL tty; the lock still refuses
      ec = lock_exclusive(second.get());
      CHECK(ec == std::errc::resource_unavailable_try_again);
    }
    CHECK(ec);
  }
  release_exclusive(first.get());
  first.reset();
  Fd third = open_serial(sim.bus_path(), line_settings(2400), ec);
  REQUIRE_FALSE(ec);
  CHECK_FALSE(lock_exclusive(third.get()));
}

TEST_CASE("DL/T 645 against metersim: values equal the ground truth; follow-ups; 1997; ERR 02") {
  // Catches: values taken from the wrong bytes, a long block cut at its
  // first frame, a 1997 DI sent as 4 bytes, an error answer taken for a
  // timeout.
  Metersim sim(bus_toml(9600) + meter("m1", "dlt645-2007", "000000000001") +
               meter("m2", "dlt645-2007", "000000000002", "tariffs = 63") +
               meter("m3", "dlt645-1997", "000000000003"));
  auto line = open_line(sim.bus_path(), line_settings(9600));
  const auto a1 = *dlt::Address::parse("000000000001");
  const auto v2007 = dlt::Version::v2007;

  auto r = dlt645_read(line, v2007, a1, 0x00010000, dlt_options());
  REQUIRE(r.outcome == Outcome::ok);
  CHECK(values_of(v2007, 0x00010000, r.data) == truth_of(sim, "m1", "00010000"));
  CHECK(r.tally.attempts == 1);
  CHECK(r.tally.rx_bytes >= 16 + 4);

  r = dlt645_read(line, v2007, a1, 0x0001FF00, dlt_options());
  REQUIRE(r.outcome == Outcome::ok);
  CHECK(r.frames == 1);
  CHECK(values_of(v2007, 0x0001FF00, r.data) == truth_of(sim, "m1", "0001FF00"));

  // 63 tariffs: 64 × 4 = 256 bytes, past the 200 of one frame: B1H + 12H.
  r = dlt645_read(line, v2007, *dlt::Address::parse("000000000002"), 0x0001FF00, dlt_options());
  REQUIRE(r.outcome == Outcome::ok);
  CHECK(r.frames == 2);
  CHECK(r.data.size() == 256);
  CHECK(values_of(v2007, 0x0001FF00, r.data) == truth_of(sim, "m2", "0001FF00"));

  // 1997: 9010 forward active total, 2-byte DI.
  r = dlt645_read(line, dlt::Version::v1997, *dlt::Address::parse("000000000003"), 0x9010,
                  dlt_options());
  REQUIRE(r.outcome == Outcome::ok);
  CHECK(values_of(dlt::Version::v1997, 0x9010, r.data) == truth_of(sim, "m3", "9010"));

  // No such data: ERR 02, final, distinct from a timeout.
  r = dlt645_read(line, v2007, a1, 0x12345678, dlt_options(2));  // not a DI it has
  CHECK(r.outcome == Outcome::meter_error);
  CHECK(r.error_word == 0x02);
  CHECK(r.tally.attempts == 1);
  CHECK(r.tally.timeouts == 0);
}

TEST_CASE("DL/T 645 against metersim: read-address through the exchange with AA wildcards") {
  // Catches: a wildcard answer rejected because its address is the meter's own.
  Metersim sim(bus_toml(2400) + meter("m1", "dlt645-2007", "123456789012"));
  auto line = open_line(sim.bus_path(), line_settings(2400));
  const auto a =
      dlt645_exchange(line, dlt::Version::v2007, dlt::request::read_address(), dlt_options());
  REQUIRE(a.outcome == Outcome::ok);
  CHECK(a.frame.address.to_string() == "123456789012");
}

TEST_CASE("DL/T 645 against metersim with faults: retries recover, no wrong value is ever ok") {
  // Catches: a parser that locks on the first 68H (noise ends in a false
  // head of L = 200), a master that does not check the address
  // (wrong_address), a corrupted value accepted (corrupt keeps the old
  // checksum), the unsolicited B1H report or a stray 00H taken as the answer.
  Metersim sim(bus_toml(9600) + meter("m1", "dlt645-2007", "000000000001") +
               meter("m2", "dlt645-2007", "000000000002"));
  auto line = open_line(sim.bus_path(), line_settings(9600));
  const auto a1 = *dlt::Address::parse("000000000001");
  const auto truth = truth_of(sim, "m1", "00010000");
  struct Case {
    const char* name;
    nlohmann::json faults;
    std::uint32_t Tally::*counter;  // must have moved (nullptr: no requirement)
    bool always = false;            // every answer is affected: none may be ok
  };
  const Case cases[] = {
      {"noise", {{"noise", 16}}, nullptr},
      {"corrupt", {{"corrupt", 0.5}}, &Tally::bad_frames},
      {"corrupt_checksum", {{"corrupt_checksum", 0.5}}, &Tally::bad_frames},
      {"wrong_address", {{"wrong_address", true}}, &Tally::mismatches, true},
      {"drop", {{"drop", 0.4}}, &Tally::timeouts},
      {"stall_ms", {{"stall_ms", 60}}, nullptr},
      {"unsolicited", {{"unsolicited", 1.0}}, nullptr},
  };
  for (const auto& c : cases) {
    const std::string name = c.name;
    CAPTURE(name);
    REQUIRE(sim.ctl({{"cmd", "clear_faults"}, {"bus", "b1"}})["ok"] == true);
    REQUIRE(sim.ctl({{"cmd", "fault"}, {"bus", "b1"}, {"faults", c.faults}})["ok"] == true);
    Tally sum;
    int ok = 0;
    const int reads = c.always ? 2 : 6;
    auto o = dlt_options(c.always ? 1 : 4);
    o.limits.response_timeout = 300ms;
    // Active reports go out on an idle line only: leave it idle a moment.
    if (name == "unsolicited") std::this_thread::sleep_for(1200ms);
    for (int k = 0; k < reads; ++k) {
      const auto r = dlt645_read(line, dlt::Version::v2007, a1, 0x00010000, o);
      sum += r.tally;
      if (r.outcome == Outcome::ok) {
        ++ok;
        CHECK(values_of(dlt::Version::v2007, 0x00010000, r.data) == truth);
      } else {
        CHECK(r.data.empty());
        if (c.always) CHECK(r.outcome == Outcome::mismatch);
      }
    }
    MESSAGE(name, ": ", ok, "/", reads, " ok; attempts ", sum.attempts, ", timeouts ", sum.timeouts,
            ", bad frames ", sum.bad_frames, ", mismatches ", sum.mismatches, ", noise bytes ",
            sum.noise_bytes, ", stale bytes ", sum.stale_bytes);
    CHECK(ok >= (c.always ? 0 : reads - 1));
    if (c.always) CHECK(ok == 0);
    if (c.counter) CHECK(sum.*c.counter > 0);
    if (name == "noise") CHECK(sum.noise_bytes >= 16u * reads);
    // Stray 00H after answers and reports sent while the line was idle: dropped, counted.
    if (name == "unsolicited") CHECK(sum.stale_bytes + sum.noise_bytes + sum.mismatches > 0);
  }
}

TEST_CASE("an echo bus: the request heard back is dropped, the answer taken (DL/T 645 and RTU)") {
  // Catches: the master's own request parsed as a frame (it is a request
  // to the very address awaited) or the echo left to eat the answer;
  // libmodbus reading the echo of its own request as the answer.
  Metersim sim(bus_toml(9600, "even", "echo = true") + meter("m1", "dlt645-2007", "000000000001") +
               meter("m2", "modbus", "1", "model = \"sdm630\""));
  auto line = open_line(sim.bus_path(), line_settings(9600));
  auto o = dlt_options();
  o.echo = true;
  for (int k = 0; k < 3; ++k) {
    const auto r =
        dlt645_read(line, dlt::Version::v2007, *dlt::Address::parse("000000000001"), 0x00010000, o);
    REQUIRE(r.outcome == Outcome::ok);
    CHECK(values_of(dlt::Version::v2007, 0x00010000, r.data) == truth_of(sim, "m1", "00010000"));
    CHECK(r.tally.echo_bytes == 16 + 4);
    CHECK(r.tally.mismatches == 0);
  }
  auto master = make_modbus_rtu(line);
  ModbusOptions mo;
  mo.limits = o.limits;
  mo.min_gap = 60ms;
  mo.echo = true;
  const auto truth = sim.ctl({{"cmd", "truth"}, {"meter", "m2"}})["values"];
  for (int k = 0; k < 2; ++k) {
    const auto r = master->read(1, 0x04, 0x0000, 2, mo);
    REQUIRE_MESSAGE(r.outcome == Outcome::ok, r.detail);
    char text[32];
    const auto end = std::to_chars(text, text + sizeof text, float_at(r.words, 0)).ptr;
    CHECK(std::string(text, end) == truth["voltage.l1"].get<std::string>());
    CHECK(r.tally.echo_bytes == 8);
  }
}

TEST_CASE("Modbus RTU against metersim's SDM630: 80 registers, its 60 ms gap, exceptions, faults") {
  // Catches: requests closer than the meter's gap (metersim does not hear
  // them: not_heard), an exception taken for a timeout, another unit's
  // answer accepted, a CRC error returned as a value.
  Metersim sim(bus_toml(9600, "none") + meter("m1", "modbus", "1", "model = \"sdm630\""));
  auto line = open_line(sim.bus_path(), line_settings(9600, Parity::none));
  auto master = make_modbus_rtu(line);
  ModbusOptions o;
  o.limits.response_timeout = 500ms;
  o.limits.byte_timeout = 100ms;
  o.min_gap = 60ms;

  const auto truth = sim.ctl({{"cmd", "truth"}, {"meter", "m1"}})["values"];
  for (int k = 0; k < 4; ++k) {
    const auto r = master->read(1, 0x04, 0x0000, 80, o);
    REQUIRE_MESSAGE(r.outcome == Outcome::ok, r.detail);
    REQUIRE(r.words.size() == 80);
    char text[32];
    const auto end = std::to_chars(text, text + sizeof text, float_at(r.words, 0)).ptr;
    CHECK(std::string(text, end) == truth["voltage.l1"].get<std::string>());
    CHECK(r.tally.attempts == 1);
    if (k > 0) CHECK(r.tally.silence > 0us);  // the gap after the previous answer
  }
  CHECK(sim.bus_stats()["not_heard"] == 0);

  // Odd start: exception 02, final.
  auto r = master->read(1, 0x04, 0x0001, 2, o);
  CHECK(r.outcome == Outcome::meter_error);
  CHECK(r.exception == 0x02);
  CHECK(r.tally.attempts == 1);

  // Another unit's answer: never ok.
  o.retries = 1;
  sim.ctl({{"cmd", "fault"}, {"bus", "b1"}, {"faults", {{"wrong_address", true}}}});
  r = master->read(1, 0x04, 0x0000, 2, o);
  CHECK(r.outcome == Outcome::mismatch);
  CHECK(r.words.empty());
  CHECK(r.tally.mismatches == 2);

  // A bad CRC: bad_frame; once the line is clean again, the retry reads.
  sim.ctl({{"cmd", "clear_faults"}, {"bus", "b1"}});
  sim.ctl({{"cmd", "fault"}, {"bus", "b1"}, {"faults", {{"corrupt_checksum", 1.0}}}});
  r = master->read(1, 0x04, 0x0000, 2, o);
  CHECK(r.outcome == Outcome::bad_frame);
  CHECK(r.tally.bad_frames == 2);
  CHECK(r.words.empty());
  sim.ctl({{"cmd", "clear_faults"}, {"bus", "b1"}});
  sim.ctl({{"cmd", "fault"}, {"bus", "b1"}, {"faults", {{"corrupt", 0.5}}}});
  Tally sum;
  int ok = 0;
  o.retries = 4;
  for (int k = 0; k < 6; ++k) {
    r = master->read(1, 0x04, 0x0000, 2, o);
    sum += r.tally;
    if (r.outcome == Outcome::ok) {
      ++ok;
      char text[32];
      const auto end = std::to_chars(text, text + sizeof text, float_at(r.words, 0)).ptr;
      CHECK(std::string(text, end) == truth["voltage.l1"].get<std::string>());
    }
  }
  MESSAGE("corrupt 0.5: ", ok, "/6 ok; bad frames ", sum.bad_frames, ", mismatches ",
          sum.mismatches, ", timeouts ", sum.timeouts);
  CHECK(ok >= 5);
  CHECK(sum.bad_frames + sum.mismatches + sum.timeouts > 0);
  CHECK(sim.bus_stats()["not_heard"] == 0);
}

TEST_CASE("Modbus RTU without the meter's gap is not heard: min_gap matters") {
  // The counter-test of the one above: the same reads with min_gap 0 lose
  // requests to the SDM630's 60 ms gap (so the gap is what kept them heard).
  Metersim sim(bus_toml(19200, "none") + meter("m1", "modbus", "1", "model = \"sdm630\""));
  auto line = open_line(sim.bus_path(), line_settings(19200, Parity::none));
  auto master = make_modbus_rtu(line);
  ModbusOptions o;
  o.limits.response_timeout = 300ms;
  o.limits.byte_timeout = 50ms;
  for (int k = 0; k < 3; ++k) master->read(1, 0x04, 0x0000, 2, o);
  CHECK(sim.bus_stats()["not_heard"] > 0);
}

TEST_CASE("Modbus TCP against metersim's converter: values, exception 0B, a dead converter") {
  // Catches: a converter's 0B answer taken for a timeout; a timeout per
  // request against a converter that refuses connections.
  Metersim sim("", {"--modbus-tcp", "1", "--static"});
  const int port = sim.endpoints["tcp"][0]["port"];
  auto master = make_modbus_tcp("127.0.0.1", static_cast<std::uint16_t>(port));
  ModbusOptions o;
  o.limits.response_timeout = 500ms;
  const auto truth = sim.ctl({{"cmd", "truth"}, {"meter", "m0001"}})["values"];
  auto r = master->read(1, 0x04, 0x0000, 80, o);
  REQUIRE_MESSAGE(r.outcome == Outcome::ok, r.detail);
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, float_at(r.words, 0)).ptr;
  CHECK(std::string(text, end) == truth["voltage.l1"].get<std::string>());
  r = master->read(9, 0x04, 0x0000, 2, o);  // nobody behind the port at unit 9
  CHECK(r.outcome == Outcome::meter_error);
  CHECK(r.exception == 0x0B);
  // Write (FC 10) of a register the SDM630 does not let write: exception, not a link error.
  const auto w = master->write(1, 0x0000, {0x0000, 0x0000}, o);
  CHECK(w.outcome == Outcome::meter_error);

  // A converter that is gone: bus_down at once, and again at once (back-off).
  sim.proc->stop();
  auto dead = make_modbus_tcp("127.0.0.1", static_cast<std::uint16_t>(port));
  const auto t0 = SteadyClock::now();
  for (int k = 0; k < 3; ++k) {
    r = dead->read(1, 0x04, 0x0000, 2, o);
    CHECK(r.outcome == Outcome::bus_down);
    CHECK(r.tally.attempts == 0);
  }
  CHECK(SteadyClock::now() - t0 < 1s);
}

TEST_CASE("bus worker against metersim: the bus vanishes and comes back without a restart") {
  // Catches: a worker that blocks its queue while the device is gone, that
  // never reopens, or that reopens the old descriptor.
  Metersim sim(bus_toml(9600) + meter("m1", "dlt645-2007", "000000000001"));
  BusConfig c;
  c.name = "b1";
  c.device = sim.bus_path();
  c.line = line_settings(9600);
  c.limits.response_timeout = 400ms;
  c.limits.byte_timeout = 100ms;
  c.reopen_min = 30ms;
  c.reopen_max = 120ms;
  std::atomic<int> ups{0}, downs{0};
  BusWorker worker(c, [&](bool up, const std::string&) { ++(up ? ups : downs); });
  worker.start();
  const auto a1 = *dlt::Address::parse("000000000001");
  // One read as a job, the way firmware/ will post it; waits for its result.
  const auto read = [&] {
    std::promise<Dlt645Read> done;
    auto fut = done.get_future();
    worker.post(Priority::schedule, [&](BusPort& p) {
      Dlt645Read r;
      if (!p.up()) {
        r.outcome = Outcome::bus_down;
      } else {
        r = dlt645_read(*p.serial, dlt::Version::v2007, a1, 0x00010000, dlt645_options(*p.config));
        p.note(r.outcome);
      }
      worker.account(r.tally);
      done.set_value(r);
    });
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    return fut.get();
  };
  CHECK(read().outcome == Outcome::ok);
  CHECK(worker.stats().up);

  REQUIRE(sim.ctl({{"cmd", "vanish"}, {"bus", "b1"}})["present"] == false);
  auto r = read();
  CHECK((r.outcome == Outcome::io_error || r.outcome == Outcome::bus_down));
  // Down now: jobs come back at once with bus_down.
  const auto t0 = SteadyClock::now();
  for (int k = 0; k < 5; ++k) CHECK(read().outcome == Outcome::bus_down);
  CHECK(SteadyClock::now() - t0 < 1s);
  CHECK_FALSE(worker.stats().up);
  CHECK(downs >= 1);
  std::this_thread::sleep_for(150ms);
  CHECK(worker.stats().open_failures >= 1);

  REQUIRE(sim.ctl({{"cmd", "reappear"}, {"bus", "b1"}})["present"] == true);
  bool back = false;
  for (int k = 0; k < 100 && !back; ++k) {
    back = read().outcome == Outcome::ok;
    if (!back) std::this_thread::sleep_for(20ms);
  }
  CHECK(back);
  const auto s = worker.stats();
  CHECK(s.up);
  CHECK(s.opens == 2);
  CHECK(ups == 2);
  CHECK(s.tally.attempts >= 3);
  worker.stop();
}

TEST_CASE(
    "bus worker against metersim: at the wrong baud nothing is read, and the counters say so") {
  // Catches: garbage at the wrong rate reported as ok, or a clean-looking
  // timeout with no trace of the bytes that came.
  Metersim sim(bus_toml(9600) + meter("m1", "dlt645-2007", "000000000001"));
  BusConfig c;
  c.name = "b1";
  c.device = sim.bus_path();
  c.line = line_settings(4800);
  c.limits.response_timeout = 400ms;
  c.limits.byte_timeout = 100ms;
  c.retries = 1;
  BusWorker worker(c);
  worker.start();
  std::promise<Dlt645Read> done;
  auto fut = done.get_future();
  worker.post(Priority::on_demand, [&](BusPort& p) {
    Dlt645Read r;
    if (p.up())
      r = dlt645_read(*p.serial, dlt::Version::v2007, *dlt::Address::parse("000000000001"),
                      0x00010000, dlt645_options(*p.config));
    else
      r.outcome = Outcome::bus_down;
    worker.account(r.tally);
    done.set_value(r);
  });
  REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  const auto r = fut.get();
  CHECK(r.outcome != Outcome::ok);
  CHECK(r.outcome != Outcome::bus_down);
  CHECK(r.data.empty());
  worker.stop();
  const auto t = worker.stats().tally;
  MESSAGE("wrong baud: ", std::string(to_string(r.outcome)), "; attempts ", t.attempts,
          ", timeouts ", t.timeouts, ", bad frames ", t.bad_frames, ", rx ", t.rx_bytes, ", noise ",
          t.noise_bytes);
  CHECK(t.attempts == 2);
  CHECK(t.timeouts == 2);
  CHECK(t.rx_bytes > 0);
  CHECK(t.noise_bytes + t.stale_bytes > 0);
  CHECK(sim.bus_stats()["settings_mismatch"] >= 1);
}
