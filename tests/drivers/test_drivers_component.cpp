// Component tier: the serial line, the DL/T 645 master and the bus worker's
// queue against a scripted peer on a pty (tests/drivers/fake_peer.hpp). Each
// test names the careless implementation it would catch.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <doctest/doctest.h>

#include "drivers/bus.hpp"
#include "drivers/dlt645_master.hpp"
#include "drivers/line.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/requests.hpp"
#include "tests/drivers/fake_peer.hpp"

using namespace meterd;
using namespace meterd::drivers;
using namespace meterd::testing;
using namespace std::chrono_literals;
namespace dlt = meterd::protocol::dlt645;

namespace {

const dlt::Address meter1 = *dlt::Address::parse("000000000001");
const dlt::Address meter2 = *dlt::Address::parse("000000000002");

LineSettings at(unsigned baud) {
  LineSettings s;
  s.baud = baud;
  s.parity = Parity::even;
  return s;
}

SerialLine open_line(const FakePeer& peer, const LineSettings& s) {
  std::error_code ec;
  Fd fd = open_serial(peer.path(), s, ec);
  REQUIRE_MESSAGE(!ec, ec.message());
  return SerialLine(std::move(fd), s);
}

bool dlt_request(const Bytes& b) { return dlt::decode(b).status == dlt::DecodeStatus::frame; }

Bytes di_bytes(dlt::Version v, std::uint32_t di) {
  Bytes d;
  dlt::append_di(v, di, d);
  return d;
}

// A meter's answer on the wire: FE FE, then the frame.
Bytes frame(const dlt::Address& a, std::uint8_t control, Bytes data) {
  return dlt::encode(dlt::Frame{a, control, std::move(data)}, 2);
}

// 00010000 = 1234.56 kWh: DI, then 56 34 12 00.
// Another meter's answer carries another value, so taking it shows in the data.
Bytes energy_answer(const dlt::Address& a, std::uint8_t control = 0x91) {
  auto d = di_bytes(dlt::Version::v2007, 0x00010000);
  if (a == *dlt::Address::parse("000000000001"))
    d.insert(d.end(), {0x56, 0x34, 0x12, 0x00});
  else
    d.insert(d.end(), {0x99, 0x99, 0x00, 0x00});
  return frame(a, control, d);
}
const Bytes energy_data{0x56, 0x34, 0x12, 0x00};

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Dlt645Options options(unsigned retries = 0) {
  Dlt645Options o;
  o.limits.response_timeout = 600ms;
  o.limits.byte_timeout = 100ms;
  o.retries = retries;
  return o;
}

double ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

}  // namespace

TEST_CASE("SerialLine: the silence runs from the end of the last byte on the wire") {
  // Catches: silence counted from the write() call (the kernel takes 22
  // bytes at once; at 2400 8E1 they are on the wire for 100.8 ms).
  FakePeer peer(at(2400));
  auto line = open_line(peer, at(2400));
  CHECK(line.char_time() == 4583us);
  CHECK(line.frame_gap() == 16041us);  // 3.5 characters
  Tally t;
  const Bytes request(22, 0x55);
  const auto t0 = SteadyClock::now();
  REQUIRE_FALSE(line.write(request, t));
  line.wait_silence(line.frame_gap(), t);
  const double waited = ms(SteadyClock::now() - t0);
  const double due = 22 * 4.583 + 16.041;
  MESSAGE("silence after 22 bytes at 2400 8E1: ", waited, " ms after write(), due ", due,
          " ms (overshoot ", waited - due, " ms)");
  CHECK(waited >= due - 0.01);
  CHECK(waited < due + 500);  // a hang, not performance
  CHECK(t.tx_bytes == 22);
  CHECK(t.silence > 100ms);

  // A byte received: the silence runs from its arrival.
  peer.send({0x00});
  std::this_thread::sleep_for(20ms);
  CHECK(line.flush_input(t) == 1);
  CHECK(t.stale_bytes == 1);
  const auto t1 = SteadyClock::now();
  line.wait_silence(30ms, t);
  CHECK(ms(SteadyClock::now() - t1) >= 29.9 - 0.5);  // arrival was at most a moment before t1

  // Above 19200 baud t3.5 is 1.75 ms.
  FakePeer fast(at(38400));
  auto fast_line = open_line(fast, at(38400));
  CHECK(fast_line.frame_gap() == 1750us);
}

TEST_CASE(
    "DL/T 645: noise, a false head, a foreign meter, an active report and a bad checksum "
    "do not end the wait; the answer behind them is taken") {
  // Catches: a parser that locks on the first 68H (the false head promises
  // 200 bytes), a master that does not check the address, one that takes
  // the meter's unsolicited B1H report (DI 04001501) as the answer, and one
  // that gives up on the first bad frame.
  FakePeer peer(at(9600));
  auto line = open_line(peer, at(9600));
  const Bytes false_head{0x00, 0x68, 0x11, 0x68, 0xA0, 0xA1, 0xA2,
                         0xA3, 0xA4, 0xA5, 0x68, 0x91, 0xC8};
  auto report_data = di_bytes(dlt::Version::v2007, 0x04001501);
  report_data.insert(report_data.end(), {0x01, 0x00, 0x00, 0x00});
  const Bytes report = frame(meter1, 0xB1, report_data);
  Bytes bad = energy_answer(meter1);
  bad[bad.size() - 2] ^= 0x01;  // checksum
  peer.play({{{{30ms, cat({false_head, energy_answer(meter2)})},
               {40ms, report},
               {40ms, bad},
               {40ms, energy_answer(meter1)}}}},
            dlt_request);
  const auto r = dlt645_read(line, dlt::Version::v2007, meter1, 0x00010000, options());
  peer.join();
  CHECK(r.outcome == Outcome::ok);
  CHECK(r.data == energy_data);
  CHECK(r.tally.attempts == 1);
  CHECK(r.tally.mismatches == 2);  // meter 2, the active report
  CHECK(r.tally.bad_frames == 1);
  CHECK(r.tally.noise_bytes >= false_head.size());
}

TEST_CASE(
    "DL/T 645: a foreign answer then a pause longer than the byte timeout: the wait goes on "
    "until the response timeout") {
  // Catches: ending the attempt when the byte timeout passes after a frame
  // that was not ours (the meter's own answer comes later, still in time).
  FakePeer peer(at(9600));
  auto line = open_line(peer, at(9600));
  peer.play({{{{30ms, energy_answer(meter2)}, {250ms, energy_answer(meter1)}}}}, dlt_request);
  const auto r = dlt645_read(line, dlt::Version::v2007, meter1, 0x00010000, options());
  peer.join();
  CHECK(r.outcome == Outcome::ok);
  CHECK(r.data == energy_data);
  CHECK(r.tally.attempts == 1);
  CHECK(r.tally.mismatches == 1);
}

TEST_CASE("DL/T 645: retries after silence and after a bad frame; the last attempt decides") {
  // Catches: no retry, or a retry that reports the first failure.
  FakePeer peer(at(9600));
  auto line = open_line(peer, at(9600));
  Bytes bad = energy_answer(meter1);
  bad[bad.size() - 5] ^= 0x10;  // a data bit: the checksum catches it
  peer.play({{}, {{{30ms, bad}}}, {{{30ms, energy_answer(meter1)}}}}, dlt_request);
  auto o = options(2);
  o.limits.response_timeout = 300ms;
  const auto r = dlt645_read(line, dlt::Version::v2007, meter1, 0x00010000, o);
  peer.join();
  CHECK(r.outcome == Outcome::ok);
  CHECK(r.data == energy_data);
  CHECK(r.tally.attempts == 3);
  CHECK(r.tally.timeouts == 2);
  CHECK(r.tally.bad_frames == 1);
  CHECK(r.tally.busy > 600ms);  // two response timeouts on the wire

  // Without enough retries the last attempt's reason is the outcome.
  FakePeer peer2(at(9600));
  auto line2 = open_line(peer2, at(9600));
  peer2.play({{{{30ms, bad}}}}, dlt_request);
  const auto r2 = dlt645_read(line2, dlt::Version::v2007, meter1, 0x00010000, o = options(0));
  peer2.join();
  CHECK(r2.outcome == Outcome::bad_frame);
  CHECK(r2.detail.find("checksum") != std::string::npos);
  CHECK(r2.data.empty());
}

TEST_CASE("DL/T 645: ERR 02 is a meter error, final, with its error word") {
  // Catches: an error answer taken for a timeout, retried, or matched by DI
  // (an error answer carries no DI).
  FakePeer peer(at(9600));
  auto line = open_line(peer, at(9600));
  peer.play({{{{30ms, frame(meter1, 0xD1, {0x02})}}}}, dlt_request);
  const auto r = dlt645_read(line, dlt::Version::v2007, meter1, 0x0001FF09, options(3));
  peer.join();
  CHECK(r.outcome == Outcome::meter_error);
  CHECK(r.error_word == 2);
  CHECK(r.tally.attempts == 1);
  CHECK(r.tally.meter_errors == 1);
  CHECK(r.detail.rfind("ERR 02", 0) == 0);
}

TEST_CASE("DL/T 645: stale input is flushed before the request, and an echo is discarded") {
  // Catches: a late answer left in the input taken as the answer to the
  // next request; the bus's own echo taken for a frame.
  FakePeer peer(at(9600));
  auto line = open_line(peer, at(9600));
  peer.send(energy_answer(meter1));  // the right answer, but stale: must not count
  std::this_thread::sleep_for(30ms);
  // The echo: the request comes back, then the answer with another value.
  auto d = di_bytes(dlt::Version::v2007, 0x00010000);
  d.insert(d.end(), {0x11, 0x11, 0x00, 0x00});
  const Bytes fresh = frame(meter1, 0x91, d);
  const Bytes request = dlt::encode(dlt::request::read(meter1, 0x00010000), 4);
  peer.play({{{{0ms, request}, {30ms, fresh}}}}, dlt_request);
  auto o = options();
  o.echo = true;
  const auto r = dlt645_read(line, dlt::Version::v2007, meter1, 0x00010000, o);
  peer.join();
  CHECK(r.outcome == Outcome::ok);
  CHECK(r.data == Bytes{0x11, 0x11, 0x00, 0x00});
  CHECK(r.tally.stale_bytes == energy_answer(meter1).size());
  CHECK(r.tally.echo_bytes == request.size());
  CHECK(r.tally.mismatches == 0);
  REQUIRE(peer.requests().size() == 1);
  CHECK(peer.requests()[0] == request);  // 4 FE, then the frame
}

TEST_CASE("DL/T 645: read-address to AAAAAAAAAAAA takes the meter's own address") {
  // Catches: requiring the answer's address to equal the wildcard, or
  // accepting any address for a wildcard request that it cannot match.
  FakePeer peer(at(2400));
  auto line = open_line(peer, at(2400));
  const auto real = *dlt::Address::parse("123456789012");
  const auto& w = real.wire();
  peer.play({{{{30ms, frame(real, 0x93, Bytes(w.begin(), w.end()))}}}}, dlt_request);
  const auto a =
      dlt645_exchange(line, dlt::Version::v2007, dlt::request::read_address(), options());
  peer.join();
  CHECK(a.outcome == Outcome::ok);
  CHECK(a.frame.address == real);
  // AA in the low bytes only (short addressing): a meter outside the pattern is foreign.
  FakePeer peer2(at(2400));
  auto line2 = open_line(peer2, at(2400));
  peer2.play({{{{30ms, energy_answer(meter2)}, {30ms, energy_answer(meter1)}}}}, dlt_request);
  const auto pattern = *dlt::Address::parse("AAAAAAAAAA01");
  const auto r = dlt645_read(line2, dlt::Version::v2007, pattern, 0x00010000, options());
  peer2.join();
  CHECK(r.outcome == Outcome::ok);
  CHECK(r.data == energy_data);
  CHECK(r.tally.mismatches == 1);
}

TEST_CASE("DL/T 645-2007 follow-ups: SEQ is checked, frames joined in order") {
  // Catches: a continuation with the wrong SEQ (a repeat) joined as if it
  // were the next one, and follow-ups sent to the wildcard instead of the
  // meter's own address.
  FakePeer peer(at(9600));
  auto line = open_line(peer, at(9600));
  const std::uint32_t di = 0x0001FF00;
  auto first = di_bytes(dlt::Version::v2007, di);
  for (int k = 0; k < 196; ++k)
    first.push_back(static_cast<std::uint8_t>(k % 100 == 99 ? 0 : 0x11));
  const auto cont = [&](std::uint8_t seq) {
    auto d = di_bytes(dlt::Version::v2007, di);
    d.insert(d.end(), {0x22, 0x22, 0x22, 0x22});
    d.push_back(seq);
    return d;
  };
  auto o = options(1);
  o.limits.response_timeout = 300ms;
  peer.play({{{{30ms, frame(meter1, 0xB1, first)}}},
             {{{30ms, frame(meter1, 0x92, cont(2))}}},  // wrong SEQ: not ours
             {{{30ms, frame(meter1, 0x92, cont(1))}}}},
            dlt_request);
  const auto r =
      dlt645_read(line, dlt::Version::v2007, *dlt::Address::parse("AAAAAAAAAAAA"), di, o);
  peer.join();
  CHECK(r.outcome == Outcome::ok);
  CHECK(r.frames == 2);
  CHECK(r.data.size() == 200);
  CHECK(r.tally.mismatches == 1);
  const auto reqs = peer.requests();
  REQUIRE(reqs.size() == 3);
  const auto follow = dlt::decode(reqs[1]).frame;
  CHECK(follow.control == 0x12);
  CHECK(follow.address == meter1);
  CHECK(follow.data.back() == 1);
}

TEST_CASE("DL/T 645-1997: a read and its 02H follow-up") {
  // Catches: a 1997 answer with D5 set returned as if whole.
  FakePeer peer(at(1200));
  auto line = open_line(peer, at(1200));
  const std::uint16_t di = 0x901F;
  auto first = di_bytes(dlt::Version::v1997, di);
  first.insert(first.end(), {0x01, 0x02, 0x03, 0x04});
  auto second = di_bytes(dlt::Version::v1997, di);
  second.insert(second.end(), {0x05, 0x06, 0x07, 0x08});
  peer.play({{{{20ms, frame(meter1, 0xA1, first)}}}, {{{20ms, frame(meter1, 0x82, second)}}}},
            dlt_request);
  const auto r = dlt645_read(line, dlt::Version::v1997, meter1, di, options());
  peer.join();
  CHECK(r.outcome == Outcome::ok);
  CHECK(r.frames == 2);
  CHECK(r.data == Bytes{1, 2, 3, 4, 5, 6, 7, 8});
  const auto reqs = peer.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(dlt::decode(reqs[0]).frame.control == 0x01);
  CHECK(dlt::decode(reqs[1]).frame.control == 0x02);
  CHECK(dlt::decode(reqs[1]).frame.data == di_bytes(dlt::Version::v1997, di));
}

TEST_CASE("DL/T 645: a broadcast awaits no answer and keeps the line quiet after it") {
  // Catches: waiting for an answer nobody sends (a timeout per broadcast) or
  // addressing a meter while it is still busy with the broadcast.
  FakePeer peer(at(9600));
  auto line = open_line(peer, at(9600));
  auto o = options();
  o.limits.response_timeout = 200ms;
  const auto t = dlt645_broadcast(line, dlt::request::broadcast_time({2026, 11, 27, 12, 0, 0}), o);
  CHECK(t.attempts == 1);
  CHECK(t.timeouts == 0);
  CHECK(t.silence >= 190ms);
}

TEST_CASE("bus worker: command before on-demand before schedule, FIFO within, one job at a time") {
  // Catches: a FIFO queue (a schedule backlog delays a relay command) or a
  // LIFO within one priority.
  FakePeer peer(at(9600));
  BusConfig c;
  c.name = "b1";
  c.device = peer.path();
  c.line = at(9600);
  BusWorker worker(c);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false, blocked = false;
  std::vector<std::string> order;
  std::atomic<int> running{0}, overlap{0};
  worker.post(Priority::schedule, [&](BusPort& p) {
    CHECK(p.up());
    std::unique_lock lk(mu);
    blocked = true;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
  });
  worker.start();
  {
    std::unique_lock lk(mu);
    REQUIRE(cv.wait_for(lk, 5s, [&] { return blocked; }));
  }
  const auto job = [&](std::string name) {
    return [&, name](BusPort&) {
      if (running.fetch_add(1) != 0) ++overlap;
      {
        std::lock_guard lk(mu);
        order.push_back(name);
      }
      std::this_thread::sleep_for(1ms);
      running.fetch_sub(1);
    };
  };
  worker.post(Priority::schedule, job("s1"));
  worker.post(Priority::schedule, job("s2"));
  worker.post(Priority::on_demand, job("d1"));
  worker.post(Priority::command, job("c1"));
  worker.post(Priority::schedule, job("s3"));
  worker.post(Priority::command, job("c2"));
  CHECK(worker.stats().queued == 6);
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  for (int k = 0; k < 5000 && worker.stats().jobs < 7; ++k) std::this_thread::sleep_for(1ms);
  CHECK(order == std::vector<std::string>{"c1", "c2", "d1", "s1", "s2", "s3"});
  CHECK(overlap == 0);
  CHECK(worker.stats().jobs == 7);
  CHECK(worker.stats().opens == 1);

  // stop(): the job in flight finishes with its port; the queued ones run
  // with a down port that says the worker is stopping.
  release = blocked = false;
  worker.post(Priority::schedule, [&](BusPort& p) {
    CHECK(p.up());
    std::unique_lock lk(mu);
    blocked = true;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
  });
  {
    std::unique_lock lk(mu);
    REQUIRE(cv.wait_for(lk, 5s, [&] { return blocked; }));
  }
  int stopped_jobs = 0;
  for (int k = 0; k < 2; ++k)
    worker.post(Priority::command, [&](BusPort& p) {
      CHECK_FALSE(p.up());
      CHECK(p.stopping);
      ++stopped_jobs;
    });
  std::thread stopper([&] { worker.stop(); });
  std::this_thread::sleep_for(20ms);
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  stopper.join();
  CHECK(stopped_jobs == 2);
  CHECK_FALSE(worker.stats().up);

  // After stop a job still runs, at once, with a down port that says why.
  bool ran = false;
  worker.post(Priority::command, [&](BusPort& p) {
    ran = true;
    CHECK_FALSE(p.up());
    CHECK(p.stopping);
  });
  CHECK(ran);
}

TEST_CASE(
    "bus worker: a device that cannot be opened gives down ports at once, and stats say why") {
  // Catches: a queue blocked behind reopen attempts.
  BusConfig c;
  c.name = "b1";
  c.device = "/nonexistent/ttyUSB9";
  c.reopen_min = 20ms;
  c.reopen_max = 80ms;
  std::vector<std::pair<bool, std::string>> states;
  std::mutex mu;
  BusWorker worker(c, [&](bool up, const std::string& why) {
    std::lock_guard lk(mu);
    states.emplace_back(up, why);
  });
  worker.start();
  std::atomic<int> down{0};
  const auto t0 = SteadyClock::now();
  for (int k = 0; k < 5; ++k)
    worker.post(Priority::schedule, [&](BusPort& p) {
      if (!p.up()) ++down;
    });
  while (down < 5 && SteadyClock::now() - t0 < 5s) std::this_thread::sleep_for(1ms);
  CHECK(down == 5);
  CHECK(SteadyClock::now() - t0 < 1s);
  std::this_thread::sleep_for(200ms);  // a few reopen attempts
  const auto s = worker.stats();
  CHECK_FALSE(s.up);
  CHECK(s.open_failures >= 2);
  CHECK(s.last_error.find("/nonexistent/ttyUSB9") != std::string::npos);
  worker.stop();
  std::lock_guard lk(mu);
  REQUIRE_FALSE(states.empty());
  CHECK(states.size() == 1);  // down once, not once per attempt
  CHECK_FALSE(states[0].first);
}

// ---- dlt645_listen_all: the bus search's window ------------------------------

TEST_CASE(
    "listen_all: answers one after another are all heard, gaps longer than the byte timeout "
    "included") {
  // Catches: a window that ends at the first frame or at the first silence
  // of a byte timeout (the later meters' answers would then land in the
  // next probe's window).
  FakePeer peer(at(9600));
  auto line = open_line(peer, at(9600));
  const auto m3 = *dlt::Address::parse("000000000003");
  peer.play({{{{30ms, energy_answer(meter1)},
               {150ms, energy_answer(meter2)},
               {150ms, energy_answer(m3)}}}},
            dlt_request);
  const auto h =
      dlt645_listen_all(line, dlt::request::read(dlt::Address::wildcard(), 0x00010000), options());
  peer.join();
  CHECK(!h.error);
  REQUIRE(h.frames.size() == 3);
  CHECK(h.frames[0].address == meter1);
  CHECK(h.frames[1].address == meter2);
  CHECK(h.frames[2].address == m3);
  CHECK(h.garbage_bytes == 0);  // the FE wake-up bytes are not garbage
  CHECK(h.clean());
  CHECK(h.tally.attempts == 1);
}

TEST_CASE("listen_all: overlapping answers are garbage, a clean frame beside them is kept") {
  // Catches: a splitter that drops the garbage silently (the search would
  // never split) or that loses the clean frame behind it.
  FakePeer peer(at(9600));
  auto line = open_line(peer, at(9600));
  auto a = energy_answer(meter1), b = energy_answer(meter2);
  Bytes ored(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) ored[i] = a[i] | b[i];
  peer.play({{{{30ms, ored}, {100ms, energy_answer(meter2)}}}}, dlt_request);
  const auto h =
      dlt645_listen_all(line, dlt::request::read(dlt::Address::wildcard(), 0x00010000), options());
  peer.join();
  REQUIRE(h.frames.size() == 1);
  CHECK(h.frames[0].address == meter2);
  CHECK(h.garbage_bytes > 0);
  CHECK(!h.clean());
  CHECK(!h.silent());
}

TEST_CASE("listen_all: an answer still arriving when the window closes is heard to its end") {
  // Catches: cutting the window at the response timeout mid-answer.
  FakePeer peer(at(9600));
  auto line = open_line(peer, at(9600));
  const auto whole = energy_answer(meter1);
  const Bytes head(whole.begin(), whole.begin() + 8), tail(whole.begin() + 8, whole.end());
  peer.play({{{{560ms, head}, {70ms, tail}}}}, dlt_request);
  const auto h =
      dlt645_listen_all(line, dlt::request::read(dlt::Address::wildcard(), 0x00010000), options());
  peer.join();
  REQUIRE(h.frames.size() == 1);
  CHECK(h.clean());
}

TEST_CASE("listen_all: silence is silent") {
  FakePeer peer(at(9600));
  auto line = open_line(peer, at(9600));
  peer.play({{{}}}, dlt_request);
  const auto h = dlt645_listen_all(line, dlt::request::read_address(), options());
  peer.join();
  CHECK(h.silent());
  CHECK(h.frames.empty());
  CHECK(h.tally.timeouts == 1);
}
