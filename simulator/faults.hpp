// Fault switches and the one fault injector both transports use (the
// RS-485 bus and the Modbus TCP converter's RS-485 side). Pure: the
// random draws come from a generator the caller owns and seeds, so a
// fleet seed gives the same faults every run. No I/O, no clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "simulator/clock.hpp"

namespace meterd::simulator {

// One set of switches: a meter's own, or its bus's / converter's. The two
// add up (fractions combine as independent chances, counts add).
struct Faults {
  double drop = 0;              // fraction of answers never sent
  double corrupt = 0;           // fraction with flipped payload bits, old checksum/CRC kept
  double corrupt_checksum = 0;  // fraction with a bad checksum/CRC byte only
  double truncate = 0;          // fraction of answers cut short
  Millis delay_ms = 0;          // extra delay before answering (beyond a timeout)
  std::size_t noise_bytes = 0;  // line noise before each answer (DL/T 645: with false heads)
  bool wrong_address = false;   // answer carries a foreign address / unit id
  Millis stall_ms = 0;          // a pause this long inside each answer (DL/T 645 allows 500)
  double unsolicited = 0;       // stray direction-switch bytes per answer, and (2007)
                                // active reports per simulated minute, as a rate

  nlohmann::json to_json() const;
  // Applies the keys present in `j`; returns an error text for a bad key/value.
  std::string apply(const nlohmann::json& j);
};

// How an answer is framed, which says where its checksum and address sit.
enum class Framing { dlt645, modbus_rtu };

// What the dice decided for one answer. Pure data: the transport decides
// how each decision shows on its medium.
struct FaultRoll {
  bool drop = false;
  bool corrupt = false;
  bool corrupt_checksum = false;
  bool truncate = false;
  bool wrong_address = false;
  Millis delay_ms = 0;
  Millis stall_ms = 0;
  std::size_t noise_bytes = 0;
  bool stray_byte = false;  // a direction-switch glitch right after the answer
};

// Rolls the switches of a meter (`own`) and its transport (`shared`).
FaultRoll roll(const Faults& own, const Faults& shared, std::mt19937_64& rng);

// The answer as the master receives it: `wire` (a whole frame with its
// preamble) with the roll applied. `truncate_to` is set to the length the
// answer is cut at (0: not cut). Never changes a dropped answer (callers
// check `drop` first). The stall position is returned in `stall_at`
// (index of the first byte after the pause; 0: none).
struct Injected {
  std::vector<std::uint8_t> bytes;
  std::size_t stall_at = 0;
};
Injected inject(const FaultRoll& r, std::vector<std::uint8_t> wire, Framing framing,
                std::mt19937_64& rng);

// Line noise of `n` bytes. For DL/T 645 it holds 68H bytes and, when there
// is room (n >= 10), a false frame head `68 A0..A5 68 C L` whose length runs
// past any real answer, so a parser that locks on the first 68H misses the
// answer that follows.
std::vector<std::uint8_t> noise(std::size_t n, Framing framing, std::mt19937_64& rng);

// What a master at the wrong baud rate or stop bits reads: a deterministic
// scramble of each byte (never a 68H, so no frame head appears).
std::vector<std::uint8_t> scramble(const std::vector<std::uint8_t>& wire);

}  // namespace meterd::simulator
