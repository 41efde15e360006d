// A DltLink (firmware/tasks.hpp) backed by a simulated DL/T 645 meter with a
// manual clock: the data tasks' reads and writes become request frames the
// real simulator answers, without a port. A test can make the link go dead
// after a number of exchanges (a meter that stops answering mid-task).
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "firmware/tasks.hpp"
#include "protocol/dlt645/requests.hpp"
#include "simulator/clock.hpp"
#include "simulator/dlt645_meter.hpp"

namespace meterd::test {

struct SimLink {
  explicit SimLink(simulator::Dlt645Meter& m) : meter(m) {}

  simulator::Dlt645Meter& meter;
  simulator::Millis now = 0;  // the simulated UTC time of the next exchange
  std::size_t answer_limit = std::numeric_limits<std::size_t>::max();  // then timeouts
  std::vector<std::uint32_t> asked;                                    // DIs read, in order
  std::vector<std::uint32_t> written;                                  // DIs written
  protocol::dlt645::Password password{0x02, {0x00, 0x00, 0x00}};
  protocol::dlt645::OperatorCode operator_code{};

  firmware::DltLink link();
};

}  // namespace meterd::test
