// A simulated DL/T 645 meter (2007 or 1997): registers that grow with a
// deterministic load curve, a time-of-use tariff table, a drifting clock,
// freezes, event logs, a relay, and the request -> answer function a real
// meter implements. Pure model: no I/O, time comes in as an argument.
// Not thread-safe; one owner (the simulator's loop).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/frame.hpp"
#include "protocol/dlt645/requests.hpp"
#include "simulator/clock.hpp"
#include "simulator/meter.hpp"

namespace meterd::simulator {

namespace dlt = protocol::dlt645;

struct Dlt645MeterConfig {
  std::string id;  // name in the endpoints file and control channel
  dlt::Version version = dlt::Version::v2007;
  dlt::Address address;
  unsigned tariffs = 4;  // 1..63 configured tariffs (block reads return these)
  unsigned phases = 3;   // 1 or 3; a single-phase meter answers FF FF for B and C
  std::uint64_t seed = 1;
  bool static_values = false;       // values never move: exact comparisons in tests
  Millis utc_offset_ms = 0;         // meter local time = UTC + offset
  double drift_ppm = 0;             // clock drift
  unsigned turnaround_ms = 40;      // delay before answering (DL/T 645: 20..500 ms)
  std::size_t answer_preamble = 2;  // FE bytes before an answer (0..4 seen in the field)
  dlt::Password password{0x02, {0x00, 0x00, 0x00}};      // plaintext high level
  dlt::Password password_low{0x04, {0x00, 0x00, 0x00}};  // plaintext low level
  Millis broadcast_time_limit_ms = 5 * ms_per_minute;    // larger corrections are ignored
};

enum class RelayState { closed, open };

class Dlt645Meter;

// What a transformer area's summary meter (台区总表) measures: the true load
// of its households' premises (metered or bypassed) plus the technical line
// loss, so that summary = Σ households / (1 - loss) minute by minute. The
// households must outlive the summary (the fleet owns both).
struct AreaFeed {
  std::vector<const Dlt645Meter*> households;
  std::int64_t loss_ppm = 0;  // technical loss, parts per million of the summary's energy
};

// One entry of an event log.
struct MeterEvent {
  Millis start = 0;  // meter local time
  Millis end = 0;
  std::array<std::int64_t, 6> before{};  // energies (µWh) before: imp, exp, q1..q4
  std::array<std::int64_t, 6> after{};
  dlt::OperatorCode op{};
};

class Dlt645Meter final : public Meter {
 public:
  // Builds the meter with a consistent history: a year of energy growth,
  // 62 daily freezes, 12 settlement periods, a few past events.
  // With a non-empty `area` the meter is that area's summary meter: its load
  // is the households' (see AreaFeed), from its history on.
  Dlt645Meter(Dlt645MeterConfig config, Millis start, AreaFeed area = {});

  const Dlt645MeterConfig& config() const noexcept { return config_; }

  // Should this meter act on a frame sent to `a`? (own address, AA
  // short-addressing wildcard, or broadcast)
  bool accepts(const dlt::Address& a) const noexcept;

  // The meter's answer to one request at time `now`, or nullopt when it
  // stays silent (broadcast, not addressed, not a request, powered off).
  std::optional<dlt::Frame> handle(const dlt::Frame& request, Millis now);

  // The declared table: the quantities this model has values for. A read
  // is answered exactly when every field it must send is declared here, the
  // tariff is configured, and the history reaches back to the period asked
  // for (history(), records()); anything else is ERR 02 (no such data).
  static bool models(const protocol::QuantityKey& key) noexcept;
  std::size_t history(dlt::Frozen kind) const noexcept;       // freezes kept of that kind
  std::size_t records(protocol::Event event) const noexcept;  // event records kept

  // Ground truth: the values the meter would answer for `di` right now, or
  // nullopt if it would answer "no requested data".
  std::optional<std::vector<dlt::Value>> read(std::uint32_t di, Millis now);
  // Current values of the basic quantities, clock, relay and counters.
  nlohmann::json truth(Millis now) override;
  nlohmann::json events_json() const;

  // Fault and life events driven by the control channel.
  void power_cycle(Millis now, Millis off_duration) override;
  unsigned turnaround_ms() const override { return config_.turnaround_ms; }
  bool powered(Millis now) const noexcept { return now >= powered_from_; }
  void open_cover(Millis now, Millis duration);
  void skew_clock(Millis delta_ms) noexcept { skew_ms_ += delta_ms; }
  void set_clock(Millis now, Millis meter_local);
  void press_button(Millis now);  // closes a relay whose close was allowed
  RelayState relay() const noexcept { return relay_; }
  Millis local_time(Millis now) const noexcept;

  // Area (line loss). The load behind the meter's terminals in one UTC
  // minute (mW): zero while powered off or while its relay is open,
  // whatever the meter registers of it. A pure function of the minute and
  // of the meter's recorded changes, never of how far it has advanced, so
  // a summary meter gets the same figures whichever meter is read first.
  std::int64_t consumed_mw(std::int64_t minute) const;
  // What it registers of that load: consumed less the bypassed share.
  std::int64_t metered_mw(std::int64_t minute) const;
  // From `now` on, `share_ppm` (0..1'000'000) of the load goes round the
  // meter (a bypass, 窃电); 0 ends it.
  void bypass(Millis now, std::int64_t share_ppm);
  std::int64_t bypass_ppm() const noexcept;
  // Forward active energy total (µWh) of the daily freeze stamped at this
  // meter-local midnight, if the meter holds it (after advancing to `now`).
  std::optional<std::int64_t> daily_freeze_uwh(Millis now, Millis local_midnight);

 private:
  enum Kind { imp, exp, q1, q2, q3, q4, app_imp, app_exp, kinds };
  struct Registers {
    std::vector<std::array<std::int64_t, kinds>> r;  // [tariff 0 = total][kind], µWh / µvarh
  };
  struct Demand {
    std::int64_t max_w10 = 0;  // 0.1 W
    Millis at_local = 0;
  };
  struct Freeze {
    Millis local_time = 0;
    Registers regs;
    std::vector<Demand> demand;  // per tariff, forward active
  };
  struct Instant {
    std::array<std::int64_t, 4> p_w10{};  // total, l1..l3 in 0.1 W
    std::array<std::int64_t, 4> q_w10{};
    std::array<std::int64_t, 4> s_w10{};
    std::array<std::int64_t, 4> pf{};    // 0.001
    std::array<std::int64_t, 4> v_dv{};  // index 1..3, 0.1 V
    std::array<std::int64_t, 4> i_ma{};  // index 1..3, mA; [0] neutral
    std::int64_t f_chz = 5000;           // 0.01 Hz
    std::int64_t temp_dc = 250;          // 0.1 °C
  };

  std::int64_t load_mw(std::int64_t minute) const;  // active power (mW) in that minute
  double noise(std::int64_t key) const;
  unsigned tariff_at(Millis local) const;
  Instant instant(Millis now) const;
  void integrate(std::int64_t minute, Millis span_ms, Registers& regs);
  void advance(Millis now);
  Registers registers_at(Millis now) const;
  void on_local_boundaries(Millis prev_local, Millis next_local);

  using Data = dlt::ValueData;
  std::optional<Data> value(const dlt::DataItem& item, const dlt::Field& field, Millis now);
  std::optional<Data> energy_value(const protocol::QuantityKey& key, const dlt::DataItem& item,
                                   Millis now);
  std::optional<Data> event_value(const protocol::QuantityKey& key, unsigned record, Millis now);
  std::optional<std::vector<Data>> values_for(const dlt::DataItem& item, Millis now);
  std::uint16_t status_word(unsigned n, Millis now) const;

  std::optional<dlt::Frame> handle_2007(const dlt::Frame& f, Millis now);
  std::optional<dlt::Frame> handle_1997(const dlt::Frame& f, Millis now);
  dlt::Frame answer(std::uint8_t control, std::vector<std::uint8_t> data) const;
  dlt::Frame error(std::uint8_t request_control, std::uint8_t err) const;
  bool password_ok(std::span<const std::uint8_t> pa_p0_p2) const;
  void relay_command(dlt::RelayCommand c, Millis now, const dlt::OperatorCode& op);
  void record(std::deque<MeterEvent>& log, MeterEvent e, unsigned& count);
  void set_relay(Millis now, RelayState state);
  std::array<std::int64_t, 6> snapshot(Millis now);

  Dlt645MeterConfig config_;
  Millis start_ = 0;
  Millis skew_ms_ = 0;
  Millis powered_from_ = 0;
  std::vector<std::pair<Millis, Millis>> outages_;  // UTC [from, to): no energy
  std::vector<double> phase_share_;
  double base_w_ = 300, peak_w_ = 1500, pf_ = 0.95;

  std::int64_t minute_ = 0;  // registers_ hold energy up to the start of this minute
  Registers registers_;
  std::vector<Demand> demand_;  // current period max demand per tariff
  std::int64_t block_sum_w10_ = 0;
  int block_minutes_ = 0;
  std::deque<Freeze> daily_, monthly_, hourly_, timed_, instant_freezes_;

  std::deque<MeterEvent> power_downs_, cover_opens_, time_adjusts_, trips_, closes_, event_clears_;
  unsigned power_down_count_ = 0, cover_open_count_ = 0, time_adjust_count_ = 0, trip_count_ = 0,
           close_count_ = 0, programming_count_ = 0, meter_clear_count_ = 0,
           demand_clear_count_ = 0, event_clear_count_ = 0;
  Millis cover_open_until_ = 0;

  RelayState relay_ = RelayState::closed;
  // Changes with their UTC time, so the load of any minute can be told
  // later: a minute counts with the state its end saw (the registers of a
  // minute are integrated only after it, with the state then in force).
  std::vector<std::pair<Millis, RelayState>> relay_changes_;
  std::vector<std::pair<Millis, std::int64_t>> bypass_changes_;  // share, ppm
  AreaFeed area_;
  bool trip_commanded_ = false;
  bool close_allowed_ = false;
  bool alarm_ = false;
  bool keep_power_ = false;

  // Follow-up frames of a long answer (2007 §7.2.2, 12H).
  std::uint32_t follow_di_ = 0;
  std::vector<std::vector<std::uint8_t>> follow_chunks_;
  std::optional<dlt::Frame> last_answer_;  // 1997 re-read (03H)
};

}  // namespace meterd::simulator
