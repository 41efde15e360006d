#include "simulator/modbus_meter.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "protocol/decimal.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/modbus_codec/error.hpp"
#include "protocol/modbus_codec/value.hpp"

namespace meterd::simulator {

namespace mb = protocol::modbus;
namespace dlt = protocol::dlt645;
using protocol::Decimal;
using protocol::rescale;
using protocol::Rounding;

namespace {

// Canonical quantity -> (2007 DI, field index) of its current value, found
// once in the DL/T 645 catalogue so both protocols read one model.
const std::unordered_map<std::string, std::pair<std::uint32_t, std::size_t>>& quantity_sources() {
  static const auto table = [] {
    std::unordered_map<std::string, std::pair<std::uint32_t, std::size_t>> t;
    for (const auto di : dlt::catalogued(dlt::Version::v2007)) {
      if ((di >> 24) > 0x02) continue;  // energy, demand, variables
      const auto item = dlt::lookup(dlt::Version::v2007, di);
      if (!item || item->frozen != dlt::Frozen::none || item->group_size) continue;
      for (std::size_t i = 0; i < item->fields.size(); ++i)
        t.emplace(item->fields[i].quantity, std::make_pair(di, i));
    }
    return t;
  }();
  return table;
}

Dlt645MeterConfig engine_config(const ModbusMeterConfig& c) {
  Dlt645MeterConfig e;
  e.id = c.id;
  e.address = *dlt::Address::parse("1");
  e.seed = c.seed;
  e.static_values = c.static_values;
  e.utc_offset_ms = c.utc_offset_ms;
  e.tariffs = 4;
  const bool single = c.model && (c.model->name == "sdm120");
  e.phases = single ? 1 : 3;
  return e;
}

}  // namespace

ModbusMeter::ModbusMeter(ModbusMeterConfig config, Millis start)
    : config_(std::move(config)), engine_(engine_config(config_), start) {
  // Built once, here rather than on the first request: it walks the whole
  // DL/T 645 catalogue, which in a sanitizer build on a busy machine took
  // longer than a master's response timeout.
  (void)quantity_sources();
}

std::optional<Decimal> ModbusMeter::canonical(const mb::Register& r, Millis now) {
  const auto& sources = quantity_sources();
  const auto it = sources.find(r.quantity);
  if (it == sources.end()) return derived(r.quantity, now);
  const auto values = engine_.read(it->second.first, now);
  if (!values || it->second.second >= values->size()) return std::nullopt;
  const auto* d = std::get_if<Decimal>(&(*values)[it->second.second].value);
  if (!d) return Decimal{0, 0};  // absent phase on a single-phase meter: reads 0
  return *d;
}

// Quantities a Modbus meter reports that the DL/T 645 model has no item
// for: averages, sums and line-to-line voltages derived from the phases;
// anything else (demand history, THD of line voltages, …) reads 0.
std::optional<Decimal> ModbusMeter::derived(const std::string& q, Millis now) {
  const auto phase_sum = [&](const char* base, std::int32_t exponent, int& present) {
    std::int64_t sum = 0;
    present = 0;
    for (int l = 1; l <= 3; ++l) {
      mb::Register probe;
      probe.quantity = std::string(base) + ".l" + std::to_string(l);
      const auto v = canonical(probe, now);
      if (!v || (v->mantissa == 0 && l > 1 && engine_.config().phases == 1)) continue;
      const auto m = rescale(*v, exponent, Rounding::toward_zero);
      if (!m) continue;
      sum += *m;
      ++present;
    }
    return sum;
  };
  if (const auto s = setting(q)) return s;
  const auto sum_of = [&](const char* a, const char* b) -> std::optional<Decimal> {
    mb::Register pa, pb;
    pa.quantity = a;
    pb.quantity = b;
    const auto x = canonical(pa, now), y = canonical(pb, now);
    if (!x || !y) return std::nullopt;
    const auto e = std::min(x->exponent, y->exponent);
    const auto mx = rescale(*x, e), my = rescale(*y, e);
    if (!mx || !my) return std::nullopt;
    return Decimal{*mx + *my, e};
  };
  // SDM630 0x0156/0x0158 (V1.8 note 3): total = import + export.
  if (q == "energy.active.total")
    return sum_of("energy.active.import.total", "energy.active.export.total");
  if (q == "energy.reactive.total")
    return sum_of("energy.reactive.import.total", "energy.reactive.export.total");
  // Phase angle in degrees, consistent with the power factor: acos(PF),
  // at 0.01° (the model's load is inductive, so the angle is positive).
  if (q.rfind("phase_angle.", 0) == 0) {
    mb::Register pf;
    pf.quantity = "power_factor." + q.substr(12);
    const auto v = canonical(pf, now);
    if (!v) return Decimal{0, 0};
    const auto micro = rescale(*v, -6, Rounding::toward_zero);  // PF in millionths
    if (!micro || *micro == 0) return Decimal{0, 0};            // absent phase
    double x = static_cast<double>(*micro) / 1e6;
    x = std::clamp(std::abs(x), 0.0, 1.0);
    return Decimal{std::llround(std::acos(x) * 180.0 / 3.14159265358979323846 * 100), -2};
  }
  int n = 0;
  if (q == "voltage.ln_avg") {
    const auto sum = phase_sum("voltage", -1, n);
    return n ? Decimal{sum / n, -1} : Decimal{0, 0};
  }
  if (q == "voltage.l1_l2" || q == "voltage.l2_l3" || q == "voltage.l3_l1" ||
      q == "voltage.ll_avg") {
    if (engine_.config().phases == 1) return Decimal{0, 0};
    const auto sum = phase_sum("voltage", -1, n);
    return n ? Decimal{sum / n * 17320508 / 10000000, -1} : Decimal{0, 0};  // × √3
  }
  if (q == "current.sum" || q == "current.avg") {
    const auto sum = phase_sum("current", -3, n);
    if (q == "current.sum") return Decimal{sum, -3};
    return n ? Decimal{sum / n, -3} : Decimal{0, 0};
  }
  return Decimal{0, 0};
}

// Configuration registers read their documented factory values (SDM630
// V1.8/v2.0 holding registers, SDM120 V2.4, Chint ZTY0.464.1448 table 11,
// see docs/modbus.md), with the unit id and serial settings of the line
// the meter actually sits on.
std::optional<Decimal> ModbusMeter::setting(const std::string& q) const {
  const std::string& m = config_.model->name;
  const auto& quirks = config_.model->quirks;
  const unsigned baud = config_.baud ? config_.baud : quirks.default_baud;
  const char parity = config_.parity ? config_.parity : quirks.default_parity;
  const unsigned stop = config_.stop_bits ? config_.stop_bits : quirks.default_stop_bits;
  const auto code = [&](std::initializer_list<unsigned> rates) -> std::optional<Decimal> {
    std::int64_t k = 0;
    for (const unsigned r : rates) {
      if (r == baud) return Decimal{k, 0};
      ++k;
    }
    return Decimal{0, 0};
  };
  if (q == "setting.unit_id") return Decimal{config_.unit, 0};
  if (q == "setting.baud_code") {
    if (m == "sdm630") return code({2400, 4800, 9600, 19200, 38400});
    if (m == "sdm120") return baud == 1200 ? Decimal{5, 0} : *code({2400, 4800, 9600});
    if (m == "dtsu666h") return code({4800, 9600});
    return code({1200, 2400, 4800, 9600, 19200});  // DTSU666 bAud, generic
  }
  if (q == "setting.parity_stop")  // Eastron: 0 = N1, 1 = E1, 2 = O1, 3 = N2
    return Decimal{parity == 'E' ? 1 : parity == 'O' ? 2 : stop == 2 ? 3 : 0, 0};
  if (q == "setting.demand_period") return Decimal{60, 0};
  if (q == "setting.pulse_width") return Decimal{100, 0};
  if (q == "setting.system_type") return Decimal{engine_.config().phases == 1 ? 1 : 3, 0};
  if (q == "setting.measurement_mode") return Decimal{2, 0};  // SDM120: import + export
  if (q == "setting.ct_ratio") return Decimal{1, 0};          // DTSU666 IrAt
  if (q == "setting.pt_ratio")  // DTSU666 UrAt 10 (×0.1: PT ratio 1); -H block: 1
    return m == "dtsu666h" ? Decimal{1, 0} : Decimal{10, -1};
  if (q == "setting.protocol") return Decimal{3, 0};  // DTSU666: n.1 Modbus
  if (q == "setting.wiring" || q == "setting.energy_clear") return Decimal{0, 0};
  if (q == "info.software_version" && m == "dtsu666") return Decimal{204, 0};  // REV.
  if (q == "setting.programming_code") return Decimal{701, 0};                 // UCode
  return std::nullopt;
}

std::optional<std::vector<std::uint16_t>> ModbusMeter::words(const mb::Register& r, Millis now) {
  const std::uint32_t key = (static_cast<std::uint32_t>(r.table) << 16) | r.address;
  if (const auto w = written_.find(key); w != written_.end()) return w->second;
  auto value = canonical(r, now);
  if (!value) return std::nullopt;
  // raw = canonical / scale; integer registers hold whole raw units, so
  // drop the digits finer than the register can carry (a meter truncates).
  if (r.encoding != mb::Encoding::float32) {
    // At most 19 turns: past them the mantissa is 0, which divides exactly.
    while (value->exponent < 0) {
      if (const auto raw = mb::divide_exact(*value, r.scale); raw && raw->exponent >= 0) break;
      if (value->mantissa == 0) {
        *value = Decimal{0, 0};
        break;
      }
      value->mantissa /= 10;
      ++value->exponent;
    }
  }
  return mb::encode_value(r, *value, config_.model->quirks.word_order);
}

std::optional<mb::Pdu> ModbusMeter::handle(const mb::Pdu& req, Millis now, Millis quiet_ms) {
  const auto& model = *config_.model;
  const auto& q = model.quirks;
  if (req.unit != config_.unit || !engine_.powered(now)) return std::nullopt;
  // Eastron needs a silent gap before a request, timed from the end of the
  // previous frame on the wire: a request that starts sooner is not heard.
  if (q.min_request_gap_ms && quiet_ms < q.min_request_gap_ms) return std::nullopt;
  const auto fn = req.function;
  if ((fn == mb::fc::read_holding_registers || fn == mb::fc::read_input_registers) &&
      req.data.size() == 4) {
    const std::uint16_t address = static_cast<std::uint16_t>(req.data[0] << 8 | req.data[1]);
    const std::uint16_t count = static_cast<std::uint16_t>(req.data[2] << 8 | req.data[3]);
    if (const auto ec = mb::check_read(model, fn, address, count))
      return mb::response::exception(config_.unit, fn, static_cast<std::uint8_t>(ec.value()));
    const auto table = *mb::table_for_read(model, fn);
    std::vector<std::uint16_t> out(count, 0);
    if (count == 1 && q.single_register_answer && q.even_alignment) {
      out[0] = *q.single_register_answer;
      return mb::response::read(config_.unit, fn, out);
    }
    for (std::uint32_t a = address; a < std::uint32_t{address} + count;) {
      const auto* r = mb::register_at(model, table, static_cast<std::uint16_t>(a));
      if (!r) {
        ++a;
        continue;
      }
      const auto w = words(*r, now);
      if (!w)
        return mb::response::exception(config_.unit, fn, mb::Exception::server_device_failure);
      for (std::size_t k = 0; k < w->size() && a + k < std::uint32_t{address} + count; ++k)
        out[a - address + k] = (*w)[k];
      a += r->words();
    }
    return mb::response::read(config_.unit, fn, out);
  }
  if ((fn == mb::fc::write_single_register && req.data.size() == 4) ||
      (fn == mb::fc::write_multiple_registers && req.data.size() >= 5)) {
    const std::uint16_t address = static_cast<std::uint16_t>(req.data[0] << 8 | req.data[1]);
    const std::uint16_t count = fn == mb::fc::write_single_register
                                    ? 1
                                    : static_cast<std::uint16_t>(req.data[2] << 8 | req.data[3]);
    if (const auto ec = mb::check_write(model, fn, address, count))
      return mb::response::exception(config_.unit, fn, static_cast<std::uint8_t>(ec.value()));
    const std::size_t at = fn == mb::fc::write_single_register ? 2 : 5;
    if (req.data.size() < at + 2u * count)
      return mb::response::exception(config_.unit, fn, mb::Exception::illegal_data_value);
    std::vector<std::uint16_t> w(count);
    for (std::size_t k = 0; k < count; ++k)
      w[k] = static_cast<std::uint16_t>(req.data[at + 2 * k] << 8 | req.data[at + 2 * k + 1]);
    written_[(static_cast<std::uint32_t>(mb::Table::holding) << 16) | address] = w;
    if (fn == mb::fc::write_single_register)
      return mb::response::write_single(config_.unit, address, w[0]);
    return mb::response::write_multiple(config_.unit, address, count);
  }
  // FC 08 sub-function 00 (return query data) echoes the request; the
  // Eastron manuals list no other sub-function (MODBUS Application
  // Protocol V1.1b3 §6.8).
  if (fn == mb::fc::diagnostics && req.data.size() == 4) {
    if (req.data[0] == 0 && req.data[1] == 0) return req;
    return mb::response::exception(config_.unit, fn, mb::Exception::illegal_data_value);
  }
  return mb::response::exception(config_.unit, fn, mb::Exception::illegal_function);
}

nlohmann::json ModbusMeter::truth(Millis now) {
  nlohmann::json values = nlohmann::json::object();
  for (const auto& r : config_.model->registers) {
    if (r.alternative != 0 || r.access == mb::Access::write || values.contains(r.quantity))
      continue;
    const auto w = words(r, now);
    if (!w) continue;
    const auto d = mb::decode_value(r, *w, config_.model->quirks.word_order);
    if (d) values[r.quantity] = protocol::to_string(d.value());
  }
  return {{"meter", config_.id},  {"protocol", "modbus"}, {"model", config_.model->name},
          {"unit", config_.unit}, {"utc", iso_utc(now)},  {"values", values}};
}

}  // namespace meterd::simulator
