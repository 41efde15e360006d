#include "drivers/modbus_master.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <thread>

#include <modbus.h>

#include "protocol/modbus_codec/crc.hpp"

namespace meterd::drivers {

namespace mb = protocol::modbus;
using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

namespace {

void set_timeout(modbus_t* ctx, int (*set)(modbus_t*, std::uint32_t, std::uint32_t),
                 SteadyClock::duration d) {
  auto us = duration_cast<microseconds>(d).count();
  if (us < 1) us = 1;  // libmodbus refuses 0 s 0 µs
  set(ctx, static_cast<std::uint32_t>(us / 1'000'000), static_cast<std::uint32_t>(us % 1'000'000));
}

std::string errno_text(int e) { return modbus_strerror(e); }

std::string hex2(unsigned v) {
  static constexpr char d[] = "0123456789ABCDEF";
  return {d[(v >> 4) & 0xF], d[v & 0xF]};
}

bool is_exception_errno(int e) { return e > MODBUS_ENOBASE && e <= EMBXGTAR; }

bool is_link_errno(int e) {
  return e == EMBBADCRC || e == EMBBADDATA || e == EMBBADEXC || e == EMBUNKEXC || e == EMBMDATA ||
         e == EMBBADSLAVE;
}

// What one attempt came to, before retries decide.
enum class End { ok, meter_error, timeout, bad_frame, mismatch, io_error };

Outcome outcome_of(End e) {
  switch (e) {
    case End::ok:
      return Outcome::ok;
    case End::meter_error:
      return Outcome::meter_error;
    case End::timeout:
      return Outcome::timeout;
    case End::bad_frame:
      return Outcome::bad_frame;
    case End::mismatch:
      return Outcome::mismatch;
    case End::io_error:
      return Outcome::io_error;
  }
  return Outcome::io_error;
}

bool retryable(End e) { return e == End::timeout || e == End::bad_frame || e == End::mismatch; }

// ---- RTU -----------------------------------------------------------------

class RtuMaster final : public ModbusMaster {
 public:
  explicit RtuMaster(SerialLine& line) : line_(line) {
    const auto& s = line.settings();
    const char parity = s.parity == Parity::even ? 'E' : s.parity == Parity::odd ? 'O' : 'N';
    // The device name is never opened: the descriptor is the line's
    // (modbus_set_socket); never modbus_connect / modbus_close here.
    ctx_ = modbus_new_rtu("/dev/null", static_cast<int>(s.baud), parity,
                          static_cast<int>(s.data_bits), static_cast<int>(s.stop_bits));
    if (ctx_) modbus_set_socket(ctx_, line.fd());
  }
  ~RtuMaster() override {
    if (ctx_) {
      modbus_set_socket(ctx_, -1);
      modbus_free(ctx_);
    }
  }

  RegisterRead read(std::uint8_t unit, std::uint8_t function, std::uint16_t address,
                    std::uint16_t count, const ModbusOptions& options) override {
    RegisterRead out;
    if ((function != 0x03 && function != 0x04) || count == 0 || count > 125 || unit == 0 ||
        unit > 247) {
      out.outcome = Outcome::bad_frame;
      out.detail = "not a read this master sends (unit " + std::to_string(unit) + ", function " +
                   hex2(function) + ", count " + std::to_string(count) + ")";
      return out;
    }
    const std::vector<std::uint8_t> pdu{unit,
                                        function,
                                        static_cast<std::uint8_t>(address >> 8),
                                        static_cast<std::uint8_t>(address),
                                        static_cast<std::uint8_t>(count >> 8),
                                        static_cast<std::uint8_t>(count)};
    const auto check = [&](const std::uint8_t* rsp, int n, std::string& detail) {
      if (rsp[2] != 2 * count || n != 5 + 2 * count) {
        detail = "byte count " + std::to_string(rsp[2]) + ", expected " + std::to_string(2 * count);
        return false;
      }
      return true;
    };
    std::array<std::uint8_t, MODBUS_RTU_MAX_ADU_LENGTH> rsp{};
    const End end = exchange(pdu, options, out.tally, rsp, out.exception, out.detail, check);
    out.outcome = outcome_of(end);
    if (end == End::ok) {
      out.words.resize(count);
      for (std::size_t k = 0; k < count; ++k)
        out.words[k] = static_cast<std::uint16_t>(rsp[3 + 2 * k] << 8 | rsp[4 + 2 * k]);
    }
    return out;
  }

  RegisterWrite write(std::uint8_t unit, std::uint16_t address,
                      const std::vector<std::uint16_t>& words,
                      const ModbusOptions& options) override {
    RegisterWrite out;
    if (words.empty() || words.size() > 123 || unit > 247) {
      out.outcome = Outcome::bad_frame;
      out.detail = "not a write this master sends";
      return out;
    }
    const auto n = static_cast<std::uint16_t>(words.size());
    std::vector<std::uint8_t> pdu{unit,
                                  0x10,
                                  static_cast<std::uint8_t>(address >> 8),
                                  static_cast<std::uint8_t>(address),
                                  static_cast<std::uint8_t>(n >> 8),
                                  static_cast<std::uint8_t>(n),
                                  static_cast<std::uint8_t>(2 * n)};
    for (const auto w : words) {
      pdu.push_back(static_cast<std::uint8_t>(w >> 8));
      pdu.push_back(static_cast<std::uint8_t>(w));
    }
    const auto check = [&](const std::uint8_t* rsp, int len, std::string& detail) {
      if (len != 8 || !std::equal(pdu.begin() + 2, pdu.begin() + 6, rsp + 2)) {
        detail = "write answer names another range";
        return false;
      }
      return true;
    };
    std::array<std::uint8_t, MODBUS_RTU_MAX_ADU_LENGTH> rsp{};
    out.outcome =
        outcome_of(exchange(pdu, options, out.tally, rsp, out.exception, out.detail, check));
    return out;
  }

 private:
  template <class Check>
  End exchange(const std::vector<std::uint8_t>& pdu, const ModbusOptions& options, Tally& tally,
               std::array<std::uint8_t, MODBUS_RTU_MAX_ADU_LENGTH>& rsp, std::uint8_t& exception,
               std::string& detail, const Check& check) {
    if (!ctx_) {
      detail = "libmodbus: no context";
      return End::io_error;
    }
    const std::uint8_t unit = pdu[0], function = pdu[1];
    // The frame as it goes on the wire, for the echo's length.
    std::vector<std::uint8_t> adu = pdu;
    const std::uint16_t crc = mb::crc16_update(mb::crc_init, adu);
    adu.push_back(static_cast<std::uint8_t>(crc));
    adu.push_back(static_cast<std::uint8_t>(crc >> 8));

    const auto t0 = SteadyClock::now();
    End end = End::timeout;
    for (unsigned n = 0; n <= options.retries; ++n) {
      // t3.5 (1.75 ms above 19200 baud) and the meter's own gap, from the end
      // of the last frame on the wire; libmodbus keeps neither.
      for (int round = 0; round < 4; ++round) {
        line_.wait_silence(line_.frame_gap() + options.min_gap, tally);
        if (line_.flush_input(tally) == 0) break;
      }
      modbus_set_slave(ctx_, unit);
      ++tally.attempts;
      if (modbus_send_raw_request(ctx_, pdu.data(), static_cast<int>(pdu.size())) < 0) {
        const int e = errno;
        detail = "write: " + errno_text(e);
        end = End::io_error;
        break;
      }
      line_.sent(adu.size(), tally);
      if (options.echo) line_.discard_echo(adu, options.limits, tally);
      if (unit == 0) {
        // Broadcast: nobody answers; every unit is busy with it for its
        // turnaround (MODBUS over Serial Line §2.4.1: 100-200 ms).
        line_.wait_silence(
            std::min<microseconds>(duration_cast<microseconds>(options.limits.response_timeout),
                                   milliseconds(200)),
            tally);
        end = End::ok;
        break;
      }
      set_timeout(ctx_, modbus_set_response_timeout,
                  line_.request_end() + options.limits.response_timeout - SteadyClock::now());
      set_timeout(ctx_, modbus_set_byte_timeout, options.limits.byte_timeout);
      const int rc = modbus_receive_confirmation(ctx_, rsp.data());
      const int e = errno;
      line_.mark_activity();
      end = judge(rc, e, unit, function, rsp, exception, detail, check, tally);
      if (!retryable(end)) break;
    }
    if (end == End::io_error) detail = detail.empty() ? "I/O error" : detail;
    const bool answered = end == End::ok || end == End::meter_error;
    const auto stop = answered ? line_.wire_end() : std::max(line_.wire_end(), SteadyClock::now());
    tally.busy += duration_cast<microseconds>(stop - t0) - tally.silence;
    if (tally.busy < microseconds(0)) tally.busy = microseconds(0);
    return end;
  }

  template <class Check>
  End judge(int rc, int e, std::uint8_t unit, std::uint8_t function,
            const std::array<std::uint8_t, MODBUS_RTU_MAX_ADU_LENGTH>& rsp, std::uint8_t& exception,
            std::string& detail, const Check& check, Tally& tally) {
    if (rc < 0) {
      if (e == ETIMEDOUT) {
        ++tally.timeouts;
        detail = "no answer";
        return End::timeout;
      }
      if (is_link_errno(e)) {
        ++tally.bad_frames;
        detail = errno_text(e);
        return End::bad_frame;
      }
      detail = "read: " + errno_text(e);
      return End::io_error;  // EIO, EBADF, ECONNRESET (a hung-up tty reads 0 bytes)
    }
    tally.rx_bytes += static_cast<std::uint64_t>(rc);
    // rc 0: libmodbus filtered another unit's answer before its CRC check.
    if (rc == 0 || rsp[0] != unit) {
      ++tally.mismatches;
      detail = rc == 0 ? "answer from another unit" : "answer from unit " + std::to_string(rsp[0]);
      return End::mismatch;
    }
    if (rsp[1] == (function | 0x80)) {
      if (rc != 5) {
        ++tally.mismatches;
        detail = "malformed exception answer";
        return End::mismatch;
      }
      ++tally.meter_errors;
      exception = rsp[2];
      detail = "exception " + hex2(exception);
      return End::meter_error;
    }
    if (rsp[1] != function) {
      ++tally.mismatches;
      detail = "answer to function " + hex2(rsp[1]) + ", expected " + hex2(function);
      return End::mismatch;
    }
    if (!check(rsp.data(), rc, detail)) {
      ++tally.mismatches;
      return End::mismatch;
    }
    detail.clear();
    return End::ok;
  }

  SerialLine& line_;
  modbus_t* ctx_ = nullptr;
};

// ---- TCP -----------------------------------------------------------------

class TcpMaster final : public ModbusMaster {
 public:
  TcpMaster(std::string host, std::uint16_t port)
      : host_(std::move(host)), ctx_(modbus_new_tcp(host_.c_str(), port)) {}
  ~TcpMaster() override {
    if (ctx_) {
      if (connected_) modbus_close(ctx_);
      modbus_free(ctx_);
    }
  }

  RegisterRead read(std::uint8_t unit, std::uint8_t function, std::uint16_t address,
                    std::uint16_t count, const ModbusOptions& options) override {
    RegisterRead out;
    if ((function != 0x03 && function != 0x04) || count == 0 || count > 125) {
      out.outcome = Outcome::bad_frame;
      out.detail = "not a read this master sends";
      return out;
    }
    std::vector<std::uint16_t> words(count);
    out.outcome = run(
        unit, options, out.tally, out.exception, out.detail, 12, 9 + 2u * count,
        [&]() {
          modbus_set_slave(ctx_, unit);
          return function == 0x03 ? modbus_read_registers(ctx_, address, count, words.data())
                                  : modbus_read_input_registers(ctx_, address, count, words.data());
        },
        count);
    if (out.outcome == Outcome::ok) out.words = std::move(words);
    return out;
  }

  RegisterWrite write(std::uint8_t unit, std::uint16_t address,
                      const std::vector<std::uint16_t>& words,
                      const ModbusOptions& options) override {
    RegisterWrite out;
    if (words.empty() || words.size() > 123) {
      out.outcome = Outcome::bad_frame;
      out.detail = "not a write this master sends";
      return out;
    }
    const int n = static_cast<int>(words.size());
    out.outcome = run(
        unit, options, out.tally, out.exception, out.detail, 13 + 2u * words.size(), 12,
        [&]() {
          modbus_set_slave(ctx_, unit);
          return modbus_write_registers(ctx_, address, n, words.data());
        },
        n);
    return out;
  }

 private:
  static constexpr milliseconds backoff_min{500};
  static constexpr milliseconds backoff_max{30000};

  // Connected, or bus_down at once while the back-off after a refused
  // connect runs (a dead converter must not cost a timeout per request).
  bool ensure_connected(const ModbusOptions& options, std::string& detail) {
    if (connected_) return true;
    const auto now = SteadyClock::now();
    if (now < next_try_) {
      detail = "converter " + host_ + " unreachable: " + last_error_ + " (retry in " +
               std::to_string(duration_cast<milliseconds>(next_try_ - now).count()) + " ms)";
      return false;
    }
    set_timeout(ctx_, modbus_set_response_timeout, options.limits.response_timeout);
    if (modbus_connect(ctx_) != 0) {
      last_error_ = errno_text(errno);
      backoff_ = backoff_ == milliseconds(0) ? backoff_min : std::min(backoff_ * 2, backoff_max);
      next_try_ = SteadyClock::now() + backoff_;
      detail = "connect to " + host_ + ": " + last_error_;
      return false;
    }
    connected_ = true;
    backoff_ = milliseconds(0);
    return true;
  }

  void disconnect() {
    if (connected_) modbus_close(ctx_);
    connected_ = false;
  }

  template <class Call>
  Outcome run(std::uint8_t unit, const ModbusOptions& options, Tally& tally,
              std::uint8_t& exception, std::string& detail, std::uint64_t tx, std::uint64_t rx,
              const Call& call, int expected) {
    if (!ctx_) {
      detail = "libmodbus: no context";
      return Outcome::io_error;
    }
    const auto t0 = SteadyClock::now();
    microseconds waited{0};
    Outcome o = Outcome::timeout;
    for (unsigned n = 0; n <= options.retries; ++n) {
      if (!ensure_connected(options, detail)) {
        o = Outcome::bus_down;
        break;
      }
      set_timeout(ctx_, modbus_set_response_timeout, options.limits.response_timeout);
      set_timeout(ctx_, modbus_set_byte_timeout, options.limits.byte_timeout);
      // The meter behind the converter keeps its own silent gap (SDM630):
      // timed per unit from the end of its last exchange.
      const auto ready = last_done_[unit] + options.min_gap;
      if (const auto now = SteadyClock::now(); ready > now) {
        std::this_thread::sleep_for(ready - now);
        waited += duration_cast<microseconds>(ready - now);
      }
      ++tally.attempts;
      tally.tx_bytes += tx;
      const int rc = call();
      const int e = errno;
      last_done_[unit] = SteadyClock::now();
      if (rc == expected) {
        tally.rx_bytes += rx;
        detail.clear();
        o = Outcome::ok;
        break;
      }
      if (rc >= 0 || is_link_errno(e)) {
        // No resync point on TCP: start again on a fresh connection.
        disconnect();
        if (e == EMBBADSLAVE || e == EMBBADDATA || rc >= 0) {
          ++tally.mismatches;
          o = Outcome::mismatch;
        } else {
          ++tally.bad_frames;
          o = Outcome::bad_frame;
        }
        detail = rc >= 0 ? "short answer" : errno_text(e);
        continue;
      }
      if (is_exception_errno(e)) {
        tally.rx_bytes += 9;
        ++tally.meter_errors;
        exception = static_cast<std::uint8_t>(e - MODBUS_ENOBASE);
        detail = "exception " + hex2(exception);
        o = Outcome::meter_error;
        break;
      }
      disconnect();  // a late answer must not be taken for the next one
      if (e == ETIMEDOUT) {
        ++tally.timeouts;
        detail = "no answer";
        o = Outcome::timeout;
        continue;
      }
      detail = errno_text(e);
      o = Outcome::io_error;
    }
    tally.silence += waited;
    tally.busy += duration_cast<microseconds>(SteadyClock::now() - t0) - waited;
    return o;
  }

  std::string host_;
  modbus_t* ctx_ = nullptr;
  bool connected_ = false;
  SteadyClock::time_point next_try_{};
  milliseconds backoff_{0};
  std::string last_error_;
  std::array<SteadyClock::time_point, 256> last_done_{};  // per unit
};

}  // namespace

std::unique_ptr<ModbusMaster> make_modbus_rtu(SerialLine& line) {
  return std::make_unique<RtuMaster>(line);
}

std::unique_ptr<ModbusMaster> make_modbus_tcp(const std::string& host, std::uint16_t port) {
  return std::make_unique<TcpMaster>(host, port);
}

}  // namespace meterd::drivers
