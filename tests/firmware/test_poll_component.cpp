// The poller over a real serial line with a scripted meter on the other end
// of a pty (component tier): what a meter refuses is learnt once and not
// asked again, and what it answers is stored exactly.
#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include <doctest/doctest.h>
#include <poll.h>
#include <unistd.h>

#include "drivers/bus.hpp"
#include "drivers/line.hpp"
#include "drivers/modbus_master.hpp"
#include "firmware/poll.hpp"
#include "firmware/profiles.hpp"
#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/frame.hpp"
#include "protocol/modbus_codec/pdu.hpp"
#include "protocol/modbus_codec/rtu.hpp"

namespace dlt = meterd::protocol::dlt645;
namespace mb = meterd::protocol::modbus;
namespace fw = meterd::firmware;
namespace drv = meterd::drivers;
using Bytes = std::vector<std::uint8_t>;

namespace {

// A meter on the master side of a pty: each whole request (by `split`) is
// handed to `answer`, whose bytes go back at once.
class ScriptedMeter {
 public:
  using Split = std::function<std::optional<std::size_t>(const Bytes&)>;  // request length
  using Answer = std::function<Bytes(const Bytes& request)>;

  ScriptedMeter(const drv::LineSettings& line, Split split, Answer answer)
      : split_(std::move(split)), answer_(std::move(answer)) {
    std::error_code ec;
    pty_ = drv::open_pty(line, ec);
    REQUIRE_FALSE(ec);
    thread_ = std::thread([this] { run(); });
  }
  ~ScriptedMeter() {
    stop_ = true;
    thread_.join();
  }
  const std::string& path() const { return pty_.slave_path; }
  std::vector<Bytes> requests() {
    std::lock_guard lk(mu_);
    return requests_;
  }
  void clear() {
    std::lock_guard lk(mu_);
    requests_.clear();
  }

 private:
  void run() {
    Bytes got;
    while (!stop_) {
      pollfd p{pty_.master.get(), POLLIN, 0};
      if (::poll(&p, 1, 10) <= 0 || !(p.revents & POLLIN)) continue;
      std::uint8_t buf[512];
      const ssize_t n = ::read(pty_.master.get(), buf, sizeof buf);
      if (n <= 0) continue;
      got.insert(got.end(), buf, buf + n);
      while (const auto len = split_(got)) {
        const Bytes req(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(*len));
        got.erase(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(*len));
        {
          std::lock_guard lk(mu_);
          requests_.push_back(req);
        }
        const Bytes a = answer_(req);
        if (!a.empty() && ::write(pty_.master.get(), a.data(), a.size()) < 0) return;
      }
    }
  }

  Split split_;
  Answer answer_;
  drv::Pty pty_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Bytes> requests_;
};

std::int64_t fixed_now() { return 1'795'946'833'250; }

drv::BusConfig bus_config() {
  drv::BusConfig c;
  c.name = "b";
  c.line = {9600, drv::Parity::none, 8, 1};
  c.limits.response_timeout = std::chrono::milliseconds(300);
  c.limits.byte_timeout = std::chrono::milliseconds(100);
  c.retries = 0;
  return c;
}

struct Line {
  std::unique_ptr<drv::SerialLine> line;
  std::unique_ptr<drv::ModbusMaster> modbus;
  drv::BusPort port;
  Line(const std::string& path, const drv::BusConfig& cfg) {
    std::error_code ec;
    auto fd = drv::open_serial(path, cfg.line, ec);
    REQUIRE_FALSE(ec);
    line = std::make_unique<drv::SerialLine>(std::move(fd), cfg.line);
    modbus = drv::make_modbus_rtu(*line);
    port.config = &cfg;
    port.serial = line.get();
    port.modbus = modbus.get();
  }
};

// The DI of each DL/T 645 read request in `requests`.
std::vector<std::uint32_t> dis_of(const std::vector<Bytes>& requests) {
  std::vector<std::uint32_t> out;
  for (const auto& r : requests) {
    const auto d = dlt::decode(r);
    if (d.status == dlt::DecodeStatus::frame && d.frame.data.size() >= 4)
      out.push_back(dlt::read_di(dlt::Version::v2007, d.frame.data));
  }
  return out;
}

bool is_block(std::uint32_t di) {
  for (int i = 0; i < 4; ++i)
    if (((di >> (8 * i)) & 0xFF) == 0xFF) return true;
  return false;
}

}  // namespace

// Catches: a poller with no fallback (a meter that refuses block reads is
// never read), and one that does not remember it (every read of that meter
// costs the bus one refused block per block, forever).
TEST_CASE("DL/T 645: blocks refused with ERR 02 are read as single DIs, and not asked again") {
  const auto address = *dlt::Address::parse("000000000007");
  // Each single DI answers its catalogue layout with value 100 + DI's low
  // byte + field index, at the field's decimals: known exactly.
  ScriptedMeter meter(
      {9600, drv::Parity::none, 8, 1},
      [](const Bytes& got) -> std::optional<std::size_t> {
        const auto d = dlt::decode(got);
        if (d.status != dlt::DecodeStatus::frame) return std::nullopt;
        return d.consumed;
      },
      [&](const Bytes& req) {
        const auto d = dlt::decode(req);
        const std::uint32_t di = dlt::read_di(dlt::Version::v2007, d.frame.data);
        dlt::Frame answer{address, 0x91, {}};
        dlt::append_di(dlt::Version::v2007, di, answer.data);
        const auto item = dlt::lookup(dlt::Version::v2007, di);
        if (is_block(di) || !item) return dlt::encode({address, 0xD1, {0x02}});
        std::vector<dlt::ValueData> values;
        for (std::size_t i = 0; i < item->fields.size(); ++i)
          values.push_back(meterd::protocol::Decimal{
              static_cast<std::int64_t>(100 + (di & 0xFF) + i), -item->fields[i].decimals});
        const auto data = dlt::encode_values(*item, values);
        REQUIRE(data.has_value());
        answer.data.insert(answer.data.end(), data->begin(), data->end());
        return dlt::encode(answer);
      });
  const auto cfg = bus_config();
  Line line(meter.path(), cfg);
  const auto profiles = fw::ProfileSet::builtin();
  fw::PollRequest req;
  req.meter.id = "m7";
  req.meter.address = address;
  req.meter.preamble = 0;
  req.profile = std::make_shared<fw::Profile>(*profiles->find("dlt645-basic"));
  req.now_ms = fixed_now;

  const auto first = fw::poll_meter(line.port, cfg, req);
  CHECK(first.ok);
  const auto asked = dis_of(meter.requests());
  std::size_t blocks = 0;
  for (auto di : asked) blocks += is_block(di);
  std::size_t profile_blocks = 0;
  for (const auto& r : req.profile->dlt_reads) profile_blocks += !r.singles.empty();
  CHECK(profile_blocks >= 5);
  CHECK(blocks == profile_blocks);  // every block asked once
  CHECK(first.memory.refused_blocks.size() == blocks);
  // Exact values, as sent: energy total = 100 + 0x00 at 2 decimals.
  bool saw_total = false;
  for (const auto& r : first.readings) {
    CHECK(r.ts_ms == fixed_now());
    if (r.quantity == "energy.active.import.total") {
      saw_total = true;
      CHECK(r.mantissa == 100);
      CHECK(r.exponent == -2);
    }
  }
  CHECK(saw_total);

  meter.clear();
  req.memory = first.memory;
  const auto second = fw::poll_meter(line.port, cfg, req);
  CHECK(second.ok);
  for (auto di : dis_of(meter.requests())) CHECK_FALSE(is_block(di));
  CHECK(second.readings.size() == first.readings.size());
  CHECK(second.tally.meter_errors == 0);
}

namespace {

// A Modbus meter answering every register with the float32 230.5, refusing
// reads longer than `max_count` words with `exception`.
Bytes modbus_answer(const Bytes& req, std::uint16_t max_count, std::uint8_t exception,
                    std::atomic<int>& refused) {
  const auto d = mb::decode_rtu_request(req, true);
  REQUIRE(d.status == mb::DecodeStatus::frame);
  const auto r = mb::parse_read_request(d.pdu);
  REQUIRE(r.ok());
  if (r->count > max_count) {
    ++refused;
    return mb::encode_rtu(mb::response::exception(d.pdu.unit, d.pdu.function, exception));
  }
  std::vector<std::uint16_t> words;
  for (std::uint16_t i = 0; i < r->count; ++i) words.push_back(i % 2 == 0 ? 0x4366 : 0x8000);
  return mb::encode_rtu(mb::response::read(d.pdu.unit, d.pdu.function, words));
}

}  // namespace

// Catches: a Modbus poller that gives up on a meter refusing the planner's
// bridged or long reads, and one that keeps sending the refused shape.
TEST_CASE("Modbus: reads refused with exception 02 or 03 are split, and the split is remembered") {
  for (const std::uint8_t exception : {std::uint8_t{0x02}, std::uint8_t{0x03}}) {
    CAPTURE(int(exception));
    std::atomic<int> refused{0};
    ScriptedMeter meter(
        {9600, drv::Parity::none, 8, 1},
        [](const Bytes& got) -> std::optional<std::size_t> {
          if (got.size() < 8) return std::nullopt;
          return 8;  // every request here is a read: 8 bytes
        },
        [&](const Bytes& req) { return modbus_answer(req, 20, exception, refused); });
    const auto cfg = bus_config();
    Line line(meter.path(), cfg);
    fw::PollRequest req;
    req.meter.id = "s1";
    req.meter.protocol = fw::MeterProtocol::modbus;
    req.meter.unit = 1;
    auto profile = *fw::ProfileSet::builtin()->find("sdm630");
    profile.min_gap = {};  // the scripted meter needs no gap
    req.profile = std::make_shared<fw::Profile>(profile);
    req.now_ms = fixed_now;

    const auto first = fw::poll_meter(line.port, cfg, req);
    CHECK(first.ok);
    CHECK(refused > 0);
    CHECK(first.readings.size() == profile.registers.size());
    for (const auto& r : first.readings) CHECK(r.quantity.size() > 0);

    refused = 0;
    req.memory = first.memory;
    const auto second = fw::poll_meter(line.port, cfg, req);
    CHECK(second.ok);
    CHECK(refused == 0);
    CHECK(second.readings.size() == first.readings.size());
  }
}
