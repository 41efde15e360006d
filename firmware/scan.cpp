// The bus search (docs/scan.md). DL/T 645 short addressing puts AA in the
// high address bytes and matches the low ones (DL/T 645-2007 §4.2.2 缩位寻址),
// so the search narrows one address byte at a time from A0 (the lowest two
// digits): a garbled pattern splits into its 100 BCD children.
#include "firmware/scan.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <set>

#include "protocol/dlt645/control.hpp"
#include "protocol/dlt645/requests.hpp"

namespace meterd::firmware {

namespace dlt = protocol::dlt645;
using drivers::Outcome;

namespace {

constexpr std::uint32_t search_di_2007 = 0x04000401;    // communication address: every 2007 meter
constexpr std::uint16_t search_di_1997 = 0x9010;        // forward active energy: every 1997 meter
constexpr std::uint32_t identify_di_2007 = 0x00010000;  // forward active energy (total)
constexpr std::uint16_t identify_di_1997 = 0x9010;
constexpr std::size_t dlt_total = 10000;  // progress: 1/10000 of the address space
constexpr unsigned leaf_retries = 2;      // a full address still garbled: asked again this often

// A search pattern: the low `fixed` address bytes (A0 first), AA above.
struct Pattern {
  std::array<std::uint8_t, 6> wire{0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA};
  unsigned fixed = 0;
  unsigned tries = 0;
  dlt::Address address() const { return dlt::Address::from_wire(wire); }
  double weight() const { return std::pow(0.01, static_cast<double>(fixed)); }
};

bool bcd_address(const dlt::Address& a) {
  for (auto b : a.wire())
    if ((b & 0x0F) > 9 || (b >> 4) > 9) return false;
  return true;
}

float float_abcd(const std::vector<std::uint16_t>& w) {
  if (w.size() < 2) return std::nanf("");
  return std::bit_cast<float>(static_cast<std::uint32_t>(w[0]) << 16 | w[1]);
}

// A value that reads as a mains voltage (or a scaled one): a normal float.
bool plausible(float f, float lo, float hi) { return std::isnormal(f) && f >= lo && f <= hi; }

std::string shortest(float f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  // The shortest text that reads back as exactly this float.
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, f);
  return std::string(buf, r.ptr);
}

std::string words_hex(const std::vector<std::uint16_t>& w) {
  std::string s;
  char buf[8];
  for (auto x : w) {
    std::snprintf(buf, sizeof buf, "%s%04X", s.empty() ? "" : " ", x);
    s += buf;
  }
  return s;
}

std::string hex2(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02X", v & 0xFF);
  return buf;
}

// A bus's port as the search uses it.
class PortLink final : public ScanLink {
 public:
  PortLink(drivers::BusPort& port, const drivers::Dlt645Options& d, const drivers::ModbusOptions& m,
           bool& answered, drivers::Tally& tally)
      : port_(port), dlt_(d), modbus_(m), answered_(answered), tally_(tally) {}

  drivers::Dlt645Heard listen(const dlt::Frame& request) override {
    if (!port_.serial) {
      drivers::Dlt645Heard h;
      h.error = std::make_error_code(std::errc::not_connected);
      return h;
    }
    auto h = drivers::dlt645_listen_all(*port_.serial, request, dlt_);
    tally_ += h.tally;
    if (h.error && h.error != std::errc::message_size) port_.fail(h.error);
    return h;
  }
  drivers::Dlt645Answer exchange(dlt::Version v, const dlt::Frame& request) override {
    if (!port_.serial) {
      drivers::Dlt645Answer a;
      a.outcome = Outcome::bus_down;
      return a;
    }
    auto a = drivers::dlt645_exchange(*port_.serial, v, request, dlt_);
    tally_ += a.tally;
    port_.note(a.outcome);
    return a;
  }
  drivers::RegisterRead read_registers(std::uint8_t unit, std::uint8_t function,
                                       std::uint16_t address, std::uint16_t count) override {
    if (!port_.modbus) {
      drivers::RegisterRead r;
      r.outcome = Outcome::bus_down;
      return r;
    }
    // Eastron meters do not hear a request sooner than 60 ms after the last
    // frame on the wire (docs/modbus.md, quirks): 100 ms, their
    // recommendation, counted by the line from the end of the last frame,
    // whoever sent it. In the daemon the schedule's reads run between the
    // probes, so the last frame is often a meter's answer even when the
    // previous probe timed out; after a timeout the wait is already over.
    auto options = modbus_;
    options.min_gap = std::max(options.min_gap, std::chrono::microseconds(100000));
    auto r = port_.modbus->read(unit, function, address, count, options);
    tally_ += r.tally;
    answered_ = r.outcome != Outcome::timeout;
    port_.note(r.outcome);
    return r;
  }

 private:
  drivers::BusPort& port_;
  drivers::Dlt645Options dlt_;
  drivers::ModbusOptions modbus_;
  bool& answered_;  // the last Modbus read was answered (kept across steps)
  drivers::Tally& tally_;
};

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

class Scanner::Impl {
 public:
  Impl(ScanRequest request, const drivers::BusConfig& bus)
      : req_(std::move(request)), tcp_(bus.is_tcp()) {
    dlt_ = drivers::dlt645_options(bus);
    modbus_ = drivers::modbus_options(bus);
    modbus_.retries = 0;  // one try: a scan asks 247 units
    if (req_.protocol == "modbus") {
      if (req_.first_unit < 1 || req_.last_unit > 247 || req_.first_unit > req_.last_unit)
        fail("unit ids: expected 1 <= first <= last <= 247, got " +
             std::to_string(req_.first_unit) + ".." + std::to_string(req_.last_unit));
      next_unit_ = req_.first_unit;
    } else if (req_.protocol == "dlt645") {
      if (tcp_) fail("DL/T 645 needs a serial bus (DL/T 645 over TCP is not supported)");
    } else {
      fail("protocol: expected dlt645 or modbus, got '" + req_.protocol + "'");
    }
  }

  bool finished() const noexcept { return finished_; }
  const std::vector<FoundMeter>& found() const noexcept { return found_; }
  const std::string& error() const noexcept { return error_; }
  const std::vector<std::string>& warnings() const noexcept { return warnings_; }

  ScanProgress progress() const {
    ScanProgress p;
    p.found = found_.size();
    p.probes = probes_;
    if (req_.protocol == "modbus") {
      p.total = req_.last_unit >= req_.first_unit ? req_.last_unit - req_.first_unit + 1 : 0;
      p.done = finished_ ? p.total : std::min<std::size_t>(p.total, next_unit_ - req_.first_unit);
    } else {
      p.total = dlt_total;
      const double passes = req_.search_1997 ? 2.0 : 1.0;
      const auto share = static_cast<std::size_t>(resolved_ / passes * dlt_total);
      p.done = finished_ ? dlt_total : std::min(share, dlt_total - 1);
    }
    return p;
  }

  void step(ScanLink& link) {
    if (finished_) return;
    if (!to_identify_.empty()) {
      const auto a = to_identify_.front();
      to_identify_.pop_front();
      identify(link, a);
    } else if (req_.protocol == "modbus") {
      probe_unit(link, static_cast<std::uint8_t>(next_unit_));
      ++next_unit_;
    } else if (!read_address_done_) {
      read_address(link);
    } else if (!queue_.empty()) {
      const Pattern p = queue_.front();
      queue_.pop_front();
      probe(link, p);
    } else if (req_.search_1997 && pass_ == 0) {
      pass_ = 1;
      queue_.push_back(Pattern{});
      return;
    }
    maybe_finish();
  }

 private:
  void fail(std::string why) {
    error_ = std::move(why);
    finished_ = true;
  }

  void maybe_finish() {
    if (finished_ || !to_identify_.empty()) return;
    if (req_.protocol == "modbus") {
      if (next_unit_ > req_.last_unit) finished_ = true;
      return;
    }
    if (read_address_done_ && queue_.empty() && (!req_.search_1997 || pass_ == 1)) finished_ = true;
  }

  // A port that failed: the scan ends (the worker reopens the port; the
  // client may scan again).
  bool lost(Outcome o, const std::string& detail) {
    if (o != Outcome::io_error && o != Outcome::bus_down && o != Outcome::cancelled) return false;
    fail(std::string("bus ") + drivers::to_string(o) + (detail.empty() ? "" : ": " + detail));
    return true;
  }

  // Takes the meters a window names under `pattern`; true if the window
  // also held something that names nobody (the pattern must split).
  bool take(const drivers::Dlt645Heard& h, const dlt::Address& pattern) {
    bool dirty = !h.clean();
    for (const auto& f : h.frames) {
      if (!dlt::control::is_response(f.control)) continue;  // a request: an echo, another master
      // Overlapping answers can add up to a frame that parses; its address
      // is then rarely BCD or under the pattern. Either way it names
      // nobody for sure: split, and let the meters answer one by one.
      if (f.address.has_wildcard() || !bcd_address(f.address) || !pattern.addresses(f.address)) {
        dirty = true;
        continue;
      }
      if (named_.insert(f.address.wire()).second) to_identify_.push_back(f.address);
    }
    return dirty;
  }

  void read_address(ScanLink& link) {
    read_address_done_ = true;
    ++probes_;
    const auto h = link.listen(dlt::request::read_address());
    if (h.error) return fail("bus: " + h.error.message());
    const bool dirty = take(h, dlt::Address::wildcard());
    if (h.silent()) {
      // Nobody answers 13H (1997 meters have no such function): the same
      // question as a read to AA..AA.
      queue_.push_back(Pattern{});
    } else if (!dirty) {
      resolved_ += 1.0;  // one meter, or several that answered one after another
    } else {
      split(Pattern{});
    }
  }

  void probe(ScanLink& link, const Pattern& p) {
    ++probes_;
    const auto address = p.address();
    const auto h = link.listen(pass_ == 0 ? dlt::request::read(address, search_di_2007)
                                          : dlt::request::v1997::read(address, search_di_1997));
    if (h.error) return fail("bus: " + h.error.message());
    const bool dirty = take(h, address);
    if (!dirty) {
      resolved_ += p.weight();
    } else if (p.fixed < 6 && h.frames.empty() && p.tries == 0) {
      // Garbage and not one frame: a collision, or line noise over an empty
      // subtree. Ask once more before splitting: a collision garbles again,
      // noise rarely strikes twice, and a split costs 100 probes.
      Pattern again = p;
      ++again.tries;
      queue_.push_front(again);
    } else if (p.fixed < 6) {
      split(p);
    } else if (p.tries < leaf_retries) {
      Pattern again = p;
      ++again.tries;
      queue_.push_front(again);
    } else {
      resolved_ += p.weight();
      warnings_.push_back("address " + address.to_string() + ": answers garbled " +
                          std::to_string(p.tries + 1) + " times; not counted");
    }
  }

  void split(const Pattern& p) {
    for (unsigned d = 0; d < 100; ++d) {
      Pattern c = p;
      c.wire[p.fixed] = static_cast<std::uint8_t>((d / 10) << 4 | (d % 10));
      c.fixed = p.fixed + 1;
      c.tries = 0;
      queue_.push_back(c);
    }
  }

  // A named address: which protocol version, and is it really there (a
  // frame made of two overlapping answers could name a meter that is not).
  void identify(ScanLink& link, const dlt::Address& a) {
    ++probes_;
    const auto r07 = link.exchange(dlt::Version::v2007, dlt::request::read(a, identify_di_2007));
    if (lost(r07.outcome, r07.detail)) return;
    FoundMeter m;
    m.address = a.to_string();
    if (r07.outcome == Outcome::ok) {
      m.protocol = "dlt645-2007";
      m.profile = "dlt645-basic";
      m.note = "answers DL/T 645-2007 reads (11H, DI 00010000)";
      found_.push_back(std::move(m));
      return;
    }
    ++probes_;
    const auto r97 =
        link.exchange(dlt::Version::v1997, dlt::request::v1997::read(a, identify_di_1997));
    if (lost(r97.outcome, r97.detail)) return;
    if (r97.outcome == Outcome::ok) {
      m.protocol = "dlt645-1997";
      m.profile = "dlt645-1997-basic";
      m.note = "answers DL/T 645-1997 reads (01H, DI 9010), not 2007 reads (" + r07.detail + ")";
    } else if (r07.outcome == Outcome::meter_error) {
      m.protocol = "dlt645-2007";
      m.profile = "dlt645-basic";
      m.note = "answers 2007 reads of DI 00010000 with " + r07.detail +
               " and 1997 reads not at all: the profile is a guess";
    } else if (r97.outcome == Outcome::meter_error) {
      m.protocol = "dlt645-1997";
      m.profile = "dlt645-1997-basic";
      m.note = "answers 1997 reads of DI 9010 with " + r97.detail + ": the profile is a guess";
    } else {
      warnings_.push_back("address " + m.address + " answered the search but not a read (2007: " +
                          r07.detail + "; 1997: " + r97.detail + "); not counted");
      return;
    }
    found_.push_back(std::move(m));
  }

  drivers::RegisterRead read(ScanLink& link, std::uint8_t unit, std::uint8_t fn,
                             std::uint16_t address, std::uint16_t count) {
    ++probes_;
    return link.read_registers(unit, fn, address, count);
  }

  static bool present(const drivers::RegisterRead& r) {
    // 0AH/0BH come from a gateway (TCP converter): nobody answered behind it.
    return r.outcome == Outcome::ok ||
           (r.outcome == Outcome::meter_error && r.exception != 0x0A && r.exception != 0x0B);
  }

  void probe_unit(ScanLink& link, std::uint8_t unit) {
    auto r0 = read(link, unit, 0x04, 0x0000, 2);
    if (lost(r0.outcome, r0.detail)) return;
    if (r0.outcome == Outcome::bad_frame) {  // something answered, garbled: once more
      r0 = read(link, unit, 0x04, 0x0000, 2);
      if (lost(r0.outcome, r0.detail)) return;
      if (r0.outcome == Outcome::bad_frame) {
        warnings_.push_back("unit " + std::to_string(unit) + ": answers garbled twice (" +
                            r0.detail + "); not counted");
        return;
      }
    }
    if (!present(r0)) return;
    FoundMeter m;
    m.protocol = "modbus";
    m.address = std::to_string(unit);
    if (!classify(link, unit, r0, m)) return;
    found_.push_back(std::move(m));
  }

  // Guesses the profile from registers each model has or lacks
  // (docs/modbus.md, register maps and quirks). False: the port failed.
  bool classify(ScanLink& link, std::uint8_t unit, const drivers::RegisterRead& r0, FoundMeter& m) {
    if (r0.outcome == Outcome::ok) {
      const float f0 = float_abcd(r0.words);
      if (plausible(f0, 1.0f, 1000.0f)) {
        // Eastron: float32 voltages in input registers. L2 voltage at 0x0002
        // exists on the SDM630 and reads 0 on the single-phase SDM120.
        const auto r2 = read(link, unit, 0x04, 0x0002, 2);
        if (lost(r2.outcome, r2.detail)) return false;
        const float f2 = float_abcd(r2.words);
        if (r2.outcome == Outcome::ok && plausible(f2, 1.0f, 1000.0f)) {
          m.profile = "sdm630";
          m.note = "float32 voltages in input registers 0x0000 (" + shortest(f0) +
                   " V) and 0x0002 (" + shortest(f2) + " V): three-phase Eastron map";
        } else {
          m.profile = "sdm120";
          m.note = "float32 voltage in input register 0x0000 (" + shortest(f0) +
                   " V), none at 0x0002: single-phase Eastron map (an SDM630 wired "
                   "single-phase looks the same)";
        }
        return true;
      }
      // Chint DTSU666 answers FC 04 from its holding table (REV., UCode);
      // its Ua is a float32 in 0.1 V at holding 0x2006.
      const auto rd = read(link, unit, 0x03, 0x2006, 2);
      if (lost(rd.outcome, rd.detail)) return false;
      const float fd = float_abcd(rd.words);
      if (rd.outcome == Outcome::ok && plausible(fd, 10.0f, 10000.0f)) {
        m.profile = "dtsu666";
        m.note =
            "FC 04 at 0x0000 answers " + words_hex(r0.words) +
            " (not a voltage: the DTSU666 REV./UCode words); holding 0x2006 = " + shortest(fd) +
            " (Ua in 0.1 V)";
        return true;
      }
      const auto rh = read(link, unit, 0x03, 0x083E, 2);
      if (lost(rh.outcome, rh.detail)) return false;
      const float fh = float_abcd(rh.words);
      if (rh.outcome == Outcome::ok && plausible(fh, 1.0f, 1000.0f)) {
        m.profile = "dtsu666h";
        m.note = "holding 0x083E = " + shortest(fh) + " V (Ua of the DTSU666-H map)";
        return true;
      }
      m.note =
          "FC 04 at 0x0000 answers " + words_hex(r0.words) + ", which no built-in profile explains";
      return true;
    }
    const std::string refused = "refuses FC 04 at 0x0000 (exception " + hex2(r0.exception) + ")";
    const auto rh = read(link, unit, 0x03, 0x083E, 2);
    if (lost(rh.outcome, rh.detail)) return false;
    const float fh = float_abcd(rh.words);
    if (rh.outcome == Outcome::ok && plausible(fh, 1.0f, 1000.0f)) {
      m.profile = "dtsu666h";
      m.note = refused + "; holding 0x083E = " + shortest(fh) + " V (Ua of the DTSU666-H map)";
      return true;
    }
    const auto rg = read(link, unit, 0x03, 0x0000, 2);
    if (lost(rg.outcome, rg.detail)) return false;
    if (rg.outcome == Outcome::ok && rg.words.size() == 2) {
      const std::uint32_t v = static_cast<std::uint32_t>(rg.words[0]) << 16 | rg.words[1];
      if (v >= 10 && v <= 10000) {
        m.profile = "generic";
        m.note = refused + "; holding 0x0000 = " + std::to_string(v) +
                 " (uint32 voltage in 0.1 V: the generic map)";
        return true;
      }
    }
    m.note = refused + "; no built-in profile's registers answer";
    return true;
  }

  ScanRequest req_;
  bool tcp_ = false;
  drivers::Dlt645Options dlt_;
  drivers::ModbusOptions modbus_;
  bool finished_ = false;
  std::string error_;
  std::vector<std::string> warnings_;
  std::vector<FoundMeter> found_;
  std::size_t probes_ = 0;
  // DL/T 645
  bool read_address_done_ = false;
  int pass_ = 0;  // 0: 2007 reads, 1: 1997 reads
  std::deque<Pattern> queue_;
  double resolved_ = 0;  // share of the address space settled, summed over passes
  std::set<std::array<std::uint8_t, 6>> named_;
  std::deque<dlt::Address> to_identify_;
  // Modbus
  unsigned next_unit_ = 1;
  bool modbus_answered_ = false;
  drivers::Tally tally_;  // the probes' wire counters since take_tally()

  friend class Scanner;
};

Scanner::Scanner(ScanRequest request, const drivers::BusConfig& bus)
    : impl_(std::make_unique<Impl>(std::move(request), bus)) {}
Scanner::~Scanner() = default;
Scanner::Scanner(Scanner&&) noexcept = default;
Scanner& Scanner::operator=(Scanner&&) noexcept = default;

bool Scanner::finished() const noexcept { return impl_->finished(); }

void Scanner::step(drivers::BusPort& port) {
  if (impl_->finished()) return;
  if (!port.up()) {
    impl_->fail(port.stopping ? "bus stopped" : "bus down");
    return;
  }
  PortLink link(port, impl_->dlt_, impl_->modbus_, impl_->modbus_answered_, impl_->tally_);
  impl_->step(link);
}

void Scanner::step(ScanLink& link) { impl_->step(link); }
ScanProgress Scanner::progress() const { return impl_->progress(); }
drivers::Tally Scanner::take_tally() { return std::exchange(impl_->tally_, drivers::Tally{}); }
const std::vector<FoundMeter>& Scanner::found() const noexcept { return impl_->found(); }
const std::string& Scanner::error() const noexcept { return impl_->error(); }
const std::vector<std::string>& Scanner::warnings() const noexcept { return impl_->warnings(); }

nlohmann::json to_json(const FoundMeter& m) {
  return {
      {"protocol", m.protocol}, {"address", m.address}, {"profile", m.profile}, {"note", m.note}};
}

std::string meter_config_toml(const std::vector<FoundMeter>& found, const std::string& bus) {
  std::string out;
  for (const auto& m : found) {
    const bool modbus = m.protocol == "modbus";
    if (!out.empty()) out += "\n";
    if (!m.note.empty()) out += "# " + m.note + "\n";
    out += "[[meter]]\n";
    out += "id = " + toml_string(bus + (modbus ? "-unit" : "-") + m.address) + "\n";
    out += "bus = " + toml_string(bus) + "\n";
    out += "protocol = " + toml_string(m.protocol) + "\n";
    out += "address = " + (modbus ? m.address : toml_string(m.address)) + "\n";
    if (m.profile.empty())
      out += "# profile = \"...\"  # no built-in profile fits: name one of yours\n";
    else
      out += "profile = " + toml_string(m.profile) + "\n";
    out += "interval = \"15m\"\n";
  }
  return out;
}

}  // namespace meterd::firmware
