#include "simulator/faults.hpp"

#include <algorithm>

#include "protocol/dlt645/frame.hpp"
#include "protocol/modbus_codec/crc.hpp"

namespace meterd::simulator {

namespace dlt = protocol::dlt645;
namespace mb = protocol::modbus;

nlohmann::json Faults::to_json() const {
  return {{"drop", drop},
          {"corrupt", corrupt},
          {"corrupt_checksum", corrupt_checksum},
          {"truncate", truncate},
          {"delay_ms", delay_ms},
          {"noise", noise_bytes},
          {"wrong_address", wrong_address},
          {"stall_ms", stall_ms},
          {"unsolicited", unsolicited}};
}

std::string Faults::apply(const nlohmann::json& j) {
  if (!j.is_object()) return "faults must be an object";
  for (const auto& [key, v] : j.items()) {
    const auto fraction = [&](double& out) -> std::string {
      if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1)
        return key + ": expected a fraction 0..1";
      out = v.get<double>();
      return {};
    };
    const auto millis = [&](Millis& out, Millis max) -> std::string {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > max)
        return key + ": expected milliseconds 0.." + std::to_string(max);
      out = v.get<Millis>();
      return {};
    };
    std::string err;
    if (key == "drop")
      err = fraction(drop);
    else if (key == "corrupt")
      err = fraction(corrupt);
    else if (key == "corrupt_checksum")
      err = fraction(corrupt_checksum);
    else if (key == "truncate")
      err = fraction(truncate);
    else if (key == "unsolicited")
      err = fraction(unsolicited);
    else if (key == "delay_ms")
      err = millis(delay_ms, 3'600'000);
    else if (key == "stall_ms")
      err = millis(stall_ms, 10'000);
    else if (key == "noise") {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > 200)
        return key + ": expected 0..200 bytes";
      noise_bytes = v.get<std::size_t>();
    } else if (key == "wrong_address") {
      if (!v.is_boolean()) return key + ": expected true or false";
      wrong_address = v.get<bool>();
    } else {
      return "unknown fault '" + key +
             "' (drop, corrupt, corrupt_checksum, truncate, delay_ms, noise, wrong_address, "
             "stall_ms, unsolicited)";
    }
    if (!err.empty()) return err;
  }
  return {};
}

FaultRoll roll(const Faults& a, const Faults& b, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  // Every switch draws, hit or not, so one switch does not shift another's dice.
  const auto hit = [&](double p, double q) { return u(rng) < 1.0 - (1.0 - p) * (1.0 - q); };
  FaultRoll r;
  r.drop = hit(a.drop, b.drop);
  r.corrupt = hit(a.corrupt, b.corrupt);
  r.corrupt_checksum = hit(a.corrupt_checksum, b.corrupt_checksum);
  r.truncate = hit(a.truncate, b.truncate);
  r.stray_byte = hit(a.unsolicited, b.unsolicited);
  r.wrong_address = a.wrong_address || b.wrong_address;
  r.delay_ms = a.delay_ms + b.delay_ms;
  r.stall_ms = a.stall_ms + b.stall_ms;
  r.noise_bytes = a.noise_bytes + b.noise_bytes;
  return r;
}

namespace {

constexpr std::size_t npos = static_cast<std::size_t>(-1);

// Index of the frame's first 68H (after the FE preamble), or npos.
std::size_t frame_start(const std::vector<std::uint8_t>& w, Framing f) {
  if (f == Framing::modbus_rtu) return 0;
  const auto it = std::find(w.begin(), w.end(), dlt::start_byte);
  return it == w.end() ? npos : static_cast<std::size_t>(it - w.begin());
}

void set_crc(std::vector<std::uint8_t>& w) {
  const auto crc = mb::crc16(std::span(w).first(w.size() - 2));
  w[w.size() - 2] = static_cast<std::uint8_t>(crc & 0xFF);
  w[w.size() - 1] = static_cast<std::uint8_t>(crc >> 8);
}

}  // namespace

Injected inject(const FaultRoll& r, std::vector<std::uint8_t> wire, Framing framing,
                std::mt19937_64& rng) {
  Injected out;
  const std::size_t at = frame_start(wire, framing);
  const bool dlt645 = framing == Framing::dlt645;
  const bool whole = at != npos && wire.size() >= at + (dlt645 ? dlt::min_frame_size : 4);
  if (r.wrong_address && whole) {
    if (dlt645) {
      // A0 is the lowest BCD pair: the next address up, re-checksummed.
      std::uint8_t& a0 = wire[at + 1];
      a0 = static_cast<std::uint8_t>(a0 == 0x99 ? 0x00 : ((a0 & 0x0F) == 9 ? a0 + 7 : a0 + 1));
      const std::size_t cs = wire.size() - 2;
      wire[cs] = dlt::checksum(std::span(wire).subspan(at, cs - at));
    } else {
      wire[0] = static_cast<std::uint8_t>(wire[0] % 247 + 1);
      set_crc(wire);
    }
  }
  if (r.corrupt && whole) {
    // Payload bits (address, length, data), the old checksum kept: only a
    // master that verifies it notices.
    std::vector<std::size_t> payload;
    if (dlt645) {
      for (std::size_t k = 1; k <= 6; ++k) payload.push_back(at + k);               // A0..A5
      for (std::size_t k = at + 9; k + 2 < wire.size(); ++k) payload.push_back(k);  // L, data
    } else {
      for (std::size_t k = 0; k + 2 < wire.size(); ++k) payload.push_back(k);
    }
    std::uniform_int_distribution<std::size_t> pick(0, payload.size() - 1);
    std::uniform_int_distribution<int> bit(0, 7);
    wire[payload[pick(rng)]] ^= static_cast<std::uint8_t>(1u << bit(rng));
  }
  if (r.corrupt_checksum && wire.size() >= 2) wire[wire.size() - (dlt645 ? 2 : 1)] ^= 0x5A;
  if (r.truncate && wire.size() >= 2) {
    std::uniform_int_distribution<std::size_t> keep(1, wire.size() - 1);
    wire.resize(keep(rng));
  }
  if (r.stall_ms > 0 && wire.size() >= 2) {
    std::uniform_int_distribution<std::size_t> where(1, wire.size() - 1);
    out.stall_at = where(rng);
  }
  if (r.noise_bytes) {
    auto n = noise(r.noise_bytes, framing, rng);
    wire.insert(wire.begin(), n.begin(), n.end());
    if (out.stall_at) out.stall_at += n.size();
  }
  if (r.stray_byte) wire.push_back(0x00);  // the driver's enable line drops mid-stop-bit
  out.bytes = std::move(wire);
  return out;
}

std::vector<std::uint8_t> noise(std::size_t n, Framing framing, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<std::uint8_t> out;
  out.reserve(n);
  if (framing == Framing::modbus_rtu) {
    while (out.size() < n) out.push_back(static_cast<std::uint8_t>(byte(rng)));
    return out;
  }
  // Random bytes with some 68H among them, then a false head at the end.
  const std::size_t head = n >= 10 ? 10 : 0;
  while (out.size() < n - head) {
    const auto v = static_cast<std::uint8_t>(byte(rng));
    out.push_back(v % 7 == 0 ? dlt::start_byte : v);
  }
  if (head) {
    out.push_back(dlt::start_byte);
    for (int k = 0; k < 6; ++k) out.push_back(static_cast<std::uint8_t>(byte(rng) % 0x9A));
    out.push_back(dlt::start_byte);
    out.push_back(0x91);  // looks like a normal read answer
    out.push_back(0xC8);  // 200 data bytes: runs past the real answer
  }
  return out;
}

std::vector<std::uint8_t> scramble(const std::vector<std::uint8_t>& wire) {
  std::vector<std::uint8_t> out;
  out.reserve(wire.size());
  for (const std::uint8_t b : wire) {
    // Sampled at the wrong rate a character's bits smear: reverse and mix.
    std::uint8_t r = 0;
    for (int k = 0; k < 8; ++k)
      if (b & (1u << k)) r = static_cast<std::uint8_t>(r | (0x80u >> k));
    r = static_cast<std::uint8_t>((r ^ 0xA5) | 0x01);  // odd: never 68H, 16H or FEH
    out.push_back(r);
  }
  return out;
}

}  // namespace meterd::simulator
