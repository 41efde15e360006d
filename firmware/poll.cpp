#include "firmware/poll.hpp"

#include <algorithm>
#include <variant>

#include "drivers/dlt645_master.hpp"
#include "drivers/modbus_master.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/modbus_codec/plan.hpp"

namespace meterd::firmware {

namespace dlt = protocol::dlt645;
namespace mb = protocol::modbus;
using drivers::Outcome;

namespace {

// ERR bit 1: "no requested data" (DL/T 645-2007 §7.2 table; the 1997 word's
// bit 1 "wrong data identifier" means the same to a master).
constexpr std::uint16_t err_no_data = 0x02;

class Poller {
 public:
  Poller(drivers::BusPort& port, const drivers::BusConfig& bus, const PollRequest& request)
      : port_(port), bus_(bus), req_(request) {
    result_.meter = request.meter.id;
    result_.memory = request.memory;
    result_.started_ms = request.now_ms();
  }

  PollResult run() {
    const Profile& profile = *req_.profile;
    if (!port_.up()) {
      fail(Outcome::bus_down, "bus " + bus_.name + " is down");
    } else if (profile.kind == Profile::Kind::dlt645) {
      run_dlt645(profile);
    } else {
      run_modbus(profile);
    }
    result_.finished_ms = req_.now_ms();
    if (result_.failure == Outcome::ok) result_.ok = true;
    return std::move(result_);
  }

 private:
  // ---- common -------------------------------------------------------
  bool failed() {
    if (result_.failure == Outcome::ok && req_.stopping && req_.stopping->load())
      fail(Outcome::cancelled, "stopping");
    return result_.failure != Outcome::ok;
  }

  void fail(Outcome o, std::string detail) {
    if (result_.failure != Outcome::ok) return;
    result_.failure = o;
    result_.detail = std::move(detail);
  }

  bool wanted(const std::string& quantity) const {
    const auto& keep = req_.profile->keep;
    return keep.empty() || std::find(keep.begin(), keep.end(), quantity) != keep.end();
  }

  void add_reading(const std::string& quantity, const std::string& unit,
                   const protocol::Decimal& value, std::int64_t ts_ms) {
    if (!wanted(quantity)) return;
    buffer::Reading r;
    r.meter = req_.meter.id;
    r.quantity = quantity;
    r.unit = unit;
    r.mantissa = value.mantissa;
    r.exponent = value.exponent;
    r.ts_ms = ts_ms;
    result_.readings.push_back(std::move(r));
  }

  void account(const drivers::Tally& t) {
    result_.tally += t;
    ++result_.exchanges;
    if (req_.on_exchange) req_.on_exchange(t);
  }

  // ---- DL/T 645 -------------------------------------------------------
  drivers::Dlt645Options dlt_options(const Profile& profile) const {
    drivers::Dlt645Options o = drivers::dlt645_options(bus_);
    o.preamble = req_.meter.preamble;
    o.min_gap = profile.min_gap;
    return o;
  }

  // Reads one DI and stores its values. Returns the outcome of the exchange.
  Outcome read_di(const dlt::DataItem& item, const Profile& profile) {
    const auto answer = drivers::dlt645_read(*port_.serial, profile.version, req_.meter.address,
                                             item.di, dlt_options(profile));
    account(answer.tally);
    const std::string name = dlt::di_to_string(profile.version, item.di);
    if (answer.outcome == Outcome::ok) {
      const std::int64_t ts = req_.now_ms();
      const auto decoded = dlt::decode_values(item, answer.data);
      if (decoded.error) {
        result_.problems.push_back(name + ": " + decoded.message);
        return Outcome::ok;
      }
      for (const auto& p : decoded.problems) result_.problems.push_back(name + ": " + p);
      for (const auto& v : decoded.values)
        if (const auto* d = std::get_if<protocol::Decimal>(&v.value))
          add_reading(v.quantity, v.unit, *d, ts);
      // Nulls (FF filler: an absent phase) and texts (dates) are not readings.
    } else if (answer.outcome != Outcome::meter_error) {
      if (answer.outcome == Outcome::io_error)
        port_.fail(std::make_error_code(std::errc::io_error));
      fail(answer.outcome, name + ": " + drivers::to_string(answer.outcome) +
                               (answer.detail.empty() ? "" : " (" + answer.detail + ")"));
    }
    last_error_word_ = answer.error_word;
    return answer.outcome;
  }

  void run_dlt645(const Profile& profile) {
    if (port_.serial == nullptr) {
      fail(Outcome::bus_down, "DL/T 645 needs a serial bus");
      return;
    }
    MeterMemory& mem = result_.memory;
    for (const DltRead& read : profile.dlt_reads) {
      if (failed()) return;
      const bool block = !read.singles.empty();
      if (!block || !mem.refused_blocks.contains(read.item.di)) {
        if (!block && mem.refused_dis.contains(read.item.di)) continue;
        const Outcome o = read_di(read.item, profile);
        if (o != Outcome::meter_error) continue;
        if (!(last_error_word_ & err_no_data)) continue;  // another refusal: nothing to learn
        if (!block) {
          mem.refused_dis.insert(read.item.di);
          continue;
        }
        mem.refused_blocks.insert(read.item.di);  // fall back to the singles, now and later
      }
      for (const auto& single : read.singles) {
        if (failed()) return;
        if (mem.refused_dis.contains(single.di)) continue;
        if (read_di(single, profile) == Outcome::meter_error && (last_error_word_ & err_no_data))
          mem.refused_dis.insert(single.di);
      }
    }
  }

  // ---- Modbus -----------------------------------------------------------
  drivers::ModbusOptions modbus_options(const Profile& profile) const {
    drivers::ModbusOptions o = drivers::modbus_options(bus_);
    o.min_gap = profile.min_gap;
    return o;
  }

  static std::uint16_t largest_register(const mb::Block& block) {
    std::uint16_t n = 1;
    for (const mb::Register* reg : block.registers) n = std::max(n, reg->words());
    return n;
  }

  static bool gateway_exception(const drivers::RegisterRead& r) {
    return r.outcome == Outcome::meter_error && (r.exception == 0x0B || r.exception == 0x0A);
  }

  static std::pair<std::uint8_t, std::uint16_t> key(const mb::Register* r) {
    return {static_cast<std::uint8_t>(r->table), r->address};
  }

  // The register to read for a wanted one: itself, or the first fallback
  // address of its quantity the meter has not refused; nullptr if none.
  const mb::Register* usable(const mb::Model& model, const mb::Register* r) const {
    const auto& refused = result_.memory.refused_registers;
    if (!refused.contains(key(r))) return r;
    for (const mb::Register* alt : mb::find_registers(model, r->quantity))
      if (!refused.contains(key(alt)) && alt->table == r->table) return alt;
    for (const mb::Register* alt : mb::find_registers(model, r->quantity))
      if (!refused.contains(key(alt))) return alt;
    return nullptr;
  }

  std::vector<mb::Block> plan(const Profile& profile,
                              const std::vector<const mb::Register*>& regs) const {
    mb::PlanOptions po;
    const MeterMemory& mem = result_.memory;
    po.max_registers = mem.modbus_max_registers.value_or(profile.max_registers);
    po.max_gap = mem.modbus_no_bridging ? 0 : profile.max_gap;
    return mb::plan_reads(*profile.model, regs, po);
  }

  // Reads blocks; a block refused for its size or its span is split and
  // read again at once, and the lesson kept in the meter's memory.
  void read_blocks(const Profile& profile, const std::vector<mb::Block>& blocks, int depth) {
    const mb::Model& model = *profile.model;
    MeterMemory& mem = result_.memory;
    for (const auto& block : blocks) {
      if (failed()) return;
      // A converter's 0B/0A ("target failed to respond", "path unavailable")
      // is a timeout on its RS-485 side: retried like one.
      drivers::RegisterRead r;
      for (unsigned attempt = 0;; ++attempt) {
        r = port_.modbus->read(req_.meter.unit, block.function, block.address, block.count,
                               modbus_options(profile));
        account(r.tally);
        if (!gateway_exception(r) || attempt >= bus_.retries || failed()) break;
      }
      const std::string where = "unit " + std::to_string(req_.meter.unit) + " fc " +
                                std::to_string(block.function) + " @" +
                                std::to_string(block.address) + "+" + std::to_string(block.count);
      if (r.outcome == Outcome::ok) {
        const std::int64_t ts = req_.now_ms();
        for (const auto& bv : mb::decode_block(block, r.words, model.quirks.word_order)) {
          if (bv.value.ok())
            add_reading(bv.reg->quantity, bv.reg->unit, bv.value.value(), ts);
          else
            result_.problems.push_back(bv.reg->quantity + ": " + bv.value.error().message());
        }
        continue;
      }
      if (r.outcome != Outcome::meter_error) {
        if (r.outcome == Outcome::io_error) port_.fail(std::make_error_code(std::errc::io_error));
        fail(r.outcome, where + ": " + drivers::to_string(r.outcome) +
                            (r.detail.empty() ? "" : " (" + r.detail + ")"));
        return;
      }
      // 0B: a TCP converter's "target failed to respond" is the meter not answering.
      if (r.exception == 0x0B || r.exception == 0x0A) {
        fail(Outcome::timeout, where + ": gateway exception " + std::to_string(r.exception));
        return;
      }
      // Each lesson halves the block limit or turns bridging off, so this
      // ends after a few rounds; a refused single register is final.
      if (depth > 8) continue;
      std::uint32_t wanted_words = 0;
      for (const mb::Register* reg : block.registers) wanted_words += reg->words();
      const std::uint16_t largest = largest_register(block);
      if (r.exception == 0x02 && block.registers.size() > 1 && wanted_words < block.count &&
          !mem.modbus_no_bridging) {
        // The read spanned registers nobody asked for: read only wanted ones.
        mem.modbus_no_bridging = true;
        read_blocks(profile, plan(profile, block.registers), depth + 1);
      } else if ((r.exception == 0x02 || r.exception == 0x03) && block.registers.size() > 1 &&
                 block.count > largest) {
        // Too long for this meter (03), or a contiguous run it will not give
        // in one read (02): halve the block limit.
        mem.modbus_max_registers =
            static_cast<std::uint16_t>(std::max<int>(largest, block.count / 2));
        read_blocks(profile, plan(profile, block.registers), depth + 1);
      } else if (r.exception == 0x02 && block.registers.size() == 1) {
        const mb::Register* reg = block.registers.front();
        mem.refused_registers.insert(key(reg));
        if (const mb::Register* alt = usable(model, reg); alt != nullptr && alt != reg)
          read_blocks(profile, plan(profile, {alt}), depth + 1);
      }
      // Other exceptions (01, 04, 06): the meter refused this read; nothing to learn.
    }
  }

  void run_modbus(const Profile& profile) {
    if (port_.modbus == nullptr || !profile.model) {
      fail(Outcome::bus_down, "no Modbus master on this bus");
      return;
    }
    std::vector<const mb::Register*> regs;
    for (const mb::Register* r : profile.registers)
      if (const mb::Register* u = usable(*profile.model, r)) regs.push_back(u);
    read_blocks(profile, plan(profile, regs), 0);
  }

  drivers::BusPort& port_;
  const drivers::BusConfig& bus_;
  const PollRequest& req_;
  PollResult result_;
  std::uint16_t last_error_word_ = 0;
};

}  // namespace

PollResult poll_meter(drivers::BusPort& port, const drivers::BusConfig& bus,
                      const PollRequest& request) {
  return Poller(port, bus, request).run();
}

}  // namespace meterd::firmware
