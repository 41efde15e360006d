#include "protocol/dlt645/interpret.hpp"

#include <span>

#include "protocol/bcd.hpp"
#include "protocol/dlt645/requests.hpp"
#include "protocol/dlt645/values.hpp"

namespace meterd::protocol::dlt645 {

namespace {

using Bytes = std::span<const std::uint8_t>;

std::string printed(Bytes wire) {  // low byte first on the wire -> printed MSB first
  return to_hex(std::vector<std::uint8_t>(wire.rbegin(), wire.rend()));
}

Address address_of(Bytes six) {
  return Address::from_wire({six[0], six[1], six[2], six[3], six[4], six[5]});
}

std::string datetime_text(Bytes six) {
  const auto t = decode_datetime(six.first<6>());
  if (!t) return "invalid (" + printed(six) + ")";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", t->year, t->month, t->day,
                t->hour, t->minute, t->second);
  return buf;
}

class Reader {
 public:
  Reader(Interpretation& out, Bytes data) : out_(out), data_(data) {}

  bool has(std::size_t n) const { return data_.size() - pos_ >= n; }
  Bytes take(std::size_t n) {
    auto s = data_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  Bytes rest() { return take(data_.size() - pos_); }
  std::size_t remaining() const { return data_.size() - pos_; }

  void field(std::string key, std::string value) {
    out_.fields.emplace_back(std::move(key), std::move(value));
  }

  bool di() {
    const auto n = di_size(out_.version);
    if (!has(n)) return short_data("data identifier");
    out_.di = read_di(out_.version, take(n));
    if (const auto item = lookup(out_.version, *out_.di)) out_.item_name = item->name;
    return true;
  }
  bool password(const char* prefix = "") {
    if (!has(4)) return short_data("password");
    const auto p = take(4);
    field(std::string(prefix) + "password_level", to_hex(p.first(1)));
    field(std::string(prefix) + "password", printed(p.subspan(1)));
    return true;
  }
  bool operator_code() {
    if (!has(4)) return short_data("operator code");
    field("operator", printed(take(4)));
    return true;
  }
  bool short_data(const char* what) {
    out_.problem = std::string("data area too short for the ") + what;
    return false;
  }
  void address_field(const char* key) {
    if (has(6)) field(key, address_of(take(6)).to_string());
  }
  void leftover() {
    if (remaining() > 0) field("data", to_hex(rest()));
  }

  // Values of the DI in `out_.di` from the remaining bytes.
  void values(Bytes payload) {
    if (!out_.di) return;
    const auto item = lookup(out_.version, *out_.di);
    if (!item) {
      out_.problem = "DI " + di_to_string(out_.version, *out_.di) + " not in the catalogue";
      if (!payload.empty()) field("data", to_hex(payload));
      return;
    }
    if (payload.empty()) return;
    auto decoded = decode_values(*item, payload);
    if (decoded.error) {
      out_.problem = (out_.follow_up ? "partial answer (follow-up frames carry the rest): "
                                     : "data length: ") +
                     decoded.message;
      field("data", to_hex(payload));
      return;
    }
    out_.values = std::move(decoded.values);
    for (const auto& p : decoded.problems) out_.problem += (out_.problem.empty() ? "" : "; ") + p;
  }

 private:
  Interpretation& out_;
  Bytes data_;
  std::size_t pos_ = 0;
};

void error_answer(Interpretation& out, Bytes data) {
  if (data.size() == 1) {
    out.error_word = data[0];
    out.error_meaning = error_meaning(out.version, data[0]);
  } else if (data.size() == 2 && out.version == Version::v2007) {
    out.error_word = static_cast<std::uint16_t>(data[0] | (data[1] << 8));
    out.error_meaning = security_error_meaning(*out.error_word);
  } else {
    out.problem = "error answer with " + std::to_string(data.size()) + " data bytes (expected 1)";
  }
}

std::string freeze_pattern(Bytes p) {  // mm hh DD MM, 99 = any
  if (p[0] == 0x99 && p[1] == 0x99 && p[2] == 0x99 && p[3] == 0x99) return "instant freeze";
  const auto f = [&](std::size_t i) {
    return p[i] == 0x99 ? std::string("**") : to_hex(p.subspan(i, 1));
  };
  return "month " + f(3) + " day " + f(2) + " " + f(1) + ":" + f(0);
}

void baud_field(Reader& r) {
  if (!r.has(1)) return void(r.short_data("baud-rate word"));
  const auto z = r.take(1)[0];
  const auto baud = baud_from_word(z);
  r.field("baud_word", to_hex(std::span(&z, 1)));
  r.field("baud", baud ? std::to_string(*baud) : "invalid word");
}

void interpret_2007(Interpretation& out, const Frame& f, Reader& r) {
  const auto fn = control::function(f.control);
  const bool rsp = out.response;
  switch (fn) {
    case fn2007::broadcast_time:
      if (r.has(6)) r.field("time", datetime_text(r.take(6)));
      break;
    case fn2007::read:
      if (!r.di()) return;
      if (rsp) return r.values(r.rest());
      if (r.has(1)) r.field("blocks", to_hex(r.take(1)));
      if (r.has(5)) {
        std::array<std::uint8_t, 6> w{0};
        const auto t = r.take(5);
        std::copy(t.begin(), t.end(), w.begin() + 1);
        r.field("from", datetime_text(w).substr(0, 16));
      }
      break;
    case fn2007::read_follow_up: {
      if (!r.di()) return;
      if (r.remaining() < 1) return void(r.short_data("frame sequence number"));
      const auto body = r.take(r.remaining() - 1);
      out.seq = r.take(1)[0];
      if (!rsp) break;
      // A continuation carries the middle of a block: reading it from the
      // block's first field would label its bytes wrongly. Only the whole
      // block (reassemble(), followup.hpp) can be read value by value.
      if (!body.empty()) r.field("data", to_hex(body));
      out.problem = "continuation frame " + std::to_string(*out.seq) +
                    " of a long answer: its data continues the block (reassemble it with the "
                    "first answer and the other continuations)";
      return;
    }
    case fn2007::read_address:
      if (rsp && r.has(6))
        out.values.push_back({"meter.address", "", address_of(r.take(6)).to_string()});
      break;
    case fn2007::write:
      if (rsp) break;
      if (!r.di() || !r.password() || !r.operator_code()) return;
      r.leftover();
      break;
    case fn2007::write_address:
      r.address_field("new_address");
      break;
    case fn2007::freeze:
      if (r.has(4)) r.field("freeze", freeze_pattern(r.take(4)));
      break;
    case fn2007::change_baud:
      baud_field(r);
      break;
    case fn2007::change_password:
      if (rsp) {
        r.password("new_");
        break;
      }
      if (!r.di() || !r.password("old_")) return;
      r.password("new_");
      break;
    case fn2007::demand_reset:
    case fn2007::meter_clear:
    case fn2007::event_clear:
      if (rsp) break;
      if (!r.password() || !r.operator_code()) return;
      if (fn == fn2007::event_clear) r.di();
      break;
    case fn2007::relay_control: {
      if (rsp) break;
      if (!r.password() || !r.operator_code()) return;
      if (!r.has(8)) return void(r.short_data("relay command"));
      const auto n1 = r.take(1)[0];
      const auto cmd = relay_command_from_byte(n1);
      r.field("command",
              cmd ? std::string(to_string(*cmd)) : "unknown (" + to_hex(std::span(&n1, 1)) + ")");
      r.field("reserved", to_hex(r.take(1)));
      r.field("valid_until", datetime_text(r.take(6)));
      break;
    }
    case fn2007::output_select:
      if (r.has(1)) {
        const auto v = r.take(1)[0];
        r.field("output", v == 0   ? "clock second pulse"
                          : v == 1 ? "demand period"
                          : v == 2 ? "tariff switch"
                                   : to_hex(std::span(&v, 1)));
      }
      break;
    default:
      break;
  }
  r.leftover();
}

void interpret_1997(Interpretation& out, const Frame& f, Reader& r) {
  const auto fn = control::function(f.control);
  const bool rsp = out.response;
  switch (fn) {
    case fn1997::read:
    case fn1997::read_follow_up:
    case fn1997::reread:
      if (!rsp && fn == fn1997::reread) break;
      if (!r.di()) return;
      if (rsp) return r.values(r.rest());
      break;
    case fn1997::write:
      if (rsp) break;
      if (!r.di() || !r.password()) return;
      r.leftover();
      break;
    case fn1997::broadcast_time:
      if (r.has(6)) r.field("time", datetime_text(r.take(6)));
      break;
    case fn1997::write_address:
      r.address_field("new_address");
      break;
    case fn1997::change_baud:
      baud_field(r);
      break;
    case fn1997::change_password:
      if (r.password(rsp ? "new_" : "old_") && !rsp) r.password("new_");
      break;
    case fn1997::demand_reset:
      if (!rsp) r.password();
      break;
    default:
      break;
  }
  r.leftover();
}

}  // namespace

Interpretation interpret(const Frame& f, std::optional<Version> version) {
  Interpretation out;
  out.version = version.value_or(infer_version(f.control, f.data.size()));
  out.response = control::is_response(f.control);
  out.abnormal = control::is_abnormal(f.control);
  out.follow_up = control::has_follow_up(f.control);
  out.function = function_name(out.version, f.control);
  if (out.response && out.abnormal) {
    error_answer(out, f.data);
    return out;
  }
  Reader r(out, f.data);
  if (out.version == Version::v2007)
    interpret_2007(out, f, r);
  else
    interpret_1997(out, f, r);
  return out;
}

}  // namespace meterd::protocol::dlt645
