#include "tests/support/sim_link.hpp"

namespace meterd::test {

namespace dlt = protocol::dlt645;

namespace {

// The simulator's answer as the master would report it.
drivers::Dlt645Answer exchange(simulator::Dlt645Meter& meter, const dlt::Frame& request,
                               simulator::Millis now) {
  drivers::Dlt645Answer a;
  a.tally.attempts = 1;
  const auto answer = meter.handle(request, now);
  if (!answer) {
    a.outcome = drivers::Outcome::timeout;
    a.detail = "no answer";
    return a;
  }
  a.frame = *answer;
  if (answer->control & 0x40) {  // error answer: ERR (1 byte) or SERR (2 bytes)
    a.outcome = drivers::Outcome::meter_error;
    for (std::size_t i = 0; i < answer->data.size() && i < 2; ++i)
      a.error_word |= static_cast<std::uint16_t>(answer->data[i] << (8 * i));
    a.detail = "ERR " + std::to_string(a.error_word);
    return a;
  }
  a.outcome = drivers::Outcome::ok;
  return a;
}

}  // namespace

firmware::DltLink SimLink::link() {
  firmware::DltLink l;
  l.version = meter.config().version;
  l.read = [this](std::uint32_t di) {
    drivers::Dlt645Read r;
    r.di = di;
    asked.push_back(di);
    if (asked.size() + written.size() > answer_limit) {
      r.outcome = drivers::Outcome::timeout;
      r.detail = "no answer";
      return r;
    }
    const auto a = exchange(meter, dlt::request::read(meter.config().address, di), now);
    r.outcome = a.outcome;
    r.tally = a.tally;
    r.error_word = a.error_word;
    r.detail = a.detail;
    if (a.outcome == drivers::Outcome::ok && a.frame.data.size() >= 4) {
      r.data.assign(a.frame.data.begin() + 4, a.frame.data.end());
      r.frames = 1;
    }
    return r;
  };
  l.write = [this](std::uint32_t di, const std::vector<std::uint8_t>& data) {
    written.push_back(di);
    if (asked.size() + written.size() > answer_limit) {
      drivers::Dlt645Answer a;
      a.detail = "no answer";
      return a;
    }
    return exchange(
        meter, dlt::request::write(meter.config().address, di, password, operator_code, data), now);
  };
  return l;
}

}  // namespace meterd::test
