#include "drivers/dlt645_master.hpp"

#include <optional>

#include "protocol/dlt645/catalogue.hpp"
#include "protocol/dlt645/followup.hpp"
#include "protocol/dlt645/requests.hpp"

namespace meterd::drivers {

namespace dlt = protocol::dlt645;
using std::chrono::duration_cast;
using std::chrono::microseconds;

namespace {

// What the request expects of its answer besides address and function.
struct Expect {
  dlt::Address address;
  std::uint8_t function = 0;
  std::optional<std::vector<std::uint8_t>> di;  // the DI bytes as sent
  std::optional<std::uint8_t> seq;              // 2007 follow-up: the last data byte
  bool any_read_function = false;               // 1997 re-read: the answer repeats the last one
};

Expect expect_for(dlt::Version v, const dlt::Frame& request) {
  Expect e;
  e.address = request.address;
  e.function = dlt::control::function(request.control);
  const auto& d = request.data;
  if (v == dlt::Version::v2007) {
    if ((e.function == dlt::fn2007::read || e.function == dlt::fn2007::read_follow_up) &&
        d.size() >= 4)
      e.di = std::vector<std::uint8_t>(d.begin(), d.begin() + 4);
    if (e.function == dlt::fn2007::read_follow_up && d.size() == 5) e.seq = d[4];
  } else {
    if ((e.function == dlt::fn1997::read || e.function == dlt::fn1997::read_follow_up) &&
        d.size() >= 2)
      e.di = std::vector<std::uint8_t>(d.begin(), d.begin() + 2);
    if (e.function == dlt::fn1997::reread) e.any_read_function = true;
  }
  return e;
}

enum class Verdict { ours, meter_error, foreign };

Verdict judge(const Expect& e, const dlt::Frame& f) {
  // Address: exact, or the meter's own address behind AA wildcards.
  if (e.address.has_wildcard()) {
    if (f.address.has_wildcard() || !e.address.addresses(f.address)) return Verdict::foreign;
  } else if (f.address != e.address) {
    return Verdict::foreign;
  }
  if (!dlt::control::is_response(f.control)) return Verdict::foreign;  // a request (echo, a master)
  const auto fn = dlt::control::function(f.control);
  const bool fn_ok = e.any_read_function
                         ? (fn == dlt::fn1997::read || fn == dlt::fn1997::read_follow_up ||
                            fn == dlt::fn1997::reread)
                         : fn == e.function;
  if (!fn_ok) return Verdict::foreign;
  if (dlt::control::is_abnormal(f.control))
    return f.data.size() == 1 || f.data.size() == 2 ? Verdict::meter_error : Verdict::foreign;
  if (e.di) {
    if (f.data.size() < e.di->size() || !std::equal(e.di->begin(), e.di->end(), f.data.begin()))
      return Verdict::foreign;
  }
  if (e.seq) {
    if (f.data.size() < 5 || f.data.back() != *e.seq) return Verdict::foreign;
  }
  return Verdict::ours;
}

std::string hex_word(std::uint16_t w, bool two) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string s;
  if (two) {
    s += digits[(w >> 12) & 0xF];
    s += digits[(w >> 8) & 0xF];
  }
  s += digits[(w >> 4) & 0xF];
  s += digits[w & 0xF];
  return s;
}

enum class AttemptEnd { answer, meter_error, timeout, bad_frame, mismatch, io_error };

struct Attempt {
  AttemptEnd end = AttemptEnd::timeout;
  dlt::Frame frame;
  std::string detail;
  std::error_code error;
};

// Keeps the silence the line and the meter need, dropping whatever arrives
// meanwhile (a late answer, an active report, a stray 00H): a byte that
// arrives restarts the silence.
void quiet_line(SerialLine& line, std::chrono::microseconds min_gap, Tally& tally) {
  for (int round = 0; round < 4; ++round) {
    line.wait_silence(line.frame_gap() + min_gap, tally);
    if (line.flush_input(tally) == 0) return;
  }
}

Attempt attempt(SerialLine& line, const Expect& expect, std::span<const std::uint8_t> bytes,
                const Dlt645Options& options, Tally& tally) {
  Attempt a;
  quiet_line(line, options.min_gap, tally);
  ++tally.attempts;
  if ((a.error = line.write(bytes, tally))) {
    a.end = AttemptEnd::io_error;
    a.detail = "write: " + a.error.message();
    return a;
  }
  if (options.echo) line.discard_echo(bytes, options.limits, tally);

  dlt::StreamDecoder decoder;
  bool saw_bad = false, saw_foreign = false;
  std::optional<Verdict> verdict;
  // Takes every frame and error out of the decoder; stops at ours.
  const auto take = [&](const dlt::DecodeResult& r) {
    if (r.status == dlt::DecodeStatus::error) {
      ++tally.bad_frames;
      saw_bad = true;
      a.detail = dlt::describe(r);
      return false;
    }
    const Verdict v = judge(expect, r.frame);
    if (v == Verdict::foreign) {
      ++tally.mismatches;
      saw_foreign = true;
      a.detail = "answer from " + r.frame.address.to_string() + " control " +
                 hex_word(r.frame.control, false) + " is not the one awaited";
      return false;
    }
    verdict = v;
    a.frame = r.frame;
    return true;
  };
  std::size_t fed = 0;
  const auto complete = [&](std::span<const std::uint8_t> so_far) {
    decoder.feed(so_far.subspan(fed));
    fed = so_far.size();
    while (auto r = decoder.next())
      if (take(*r)) return Completion::complete;
    return Completion::need_more;
  };
  const auto deadline = line.request_end() + options.limits.response_timeout;
  for (;;) {
    fed = 0;
    const auto r = line.read(complete, options.limits, tally);
    if (r.error) {
      a.end = AttemptEnd::io_error;
      a.error = r.error;
      a.detail = "read: " + r.error.message();
      tally.noise_bytes += decoder.noise_bytes();
      return a;
    }
    if (r.complete) break;
    // A gap after a foreign frame, noise or a false head: the wait goes on
    // until the response timeout.
    if (SteadyClock::now() >= deadline) break;
  }
  // End of input: a head the timeout cut off is named once, and a whole
  // frame behind it still comes out (never reset() here).
  if (!verdict)
    while (auto r = decoder.flush())
      if (take(*r)) break;
  // Bytes read after our answer (a stray 00H, a report on its heels) are
  // dropped with the decoder: noise too.
  tally.noise_bytes += decoder.noise_bytes() + decoder.buffered();
  if (verdict) {
    a.end = *verdict == Verdict::ours ? AttemptEnd::answer : AttemptEnd::meter_error;
    return a;
  }
  ++tally.timeouts;
  a.end = saw_foreign ? AttemptEnd::mismatch
          : saw_bad   ? AttemptEnd::bad_frame
                      : AttemptEnd::timeout;
  if (a.end == AttemptEnd::timeout) a.detail = "no answer";
  return a;
}

}  // namespace

Dlt645Answer dlt645_exchange(SerialLine& line, dlt::Version version, const dlt::Frame& request,
                             const Dlt645Options& options) {
  Dlt645Answer out;
  const auto bytes = dlt::encode(request, options.preamble);
  if (bytes.empty()) {
    out.outcome = Outcome::bad_frame;
    out.detail = "request does not fit one frame";
    return out;
  }
  const Expect expect = expect_for(version, request);
  const auto t0 = SteadyClock::now();
  for (unsigned n = 0; n <= options.retries; ++n) {
    Attempt a = attempt(line, expect, bytes, options, out.tally);
    out.detail = a.detail;
    switch (a.end) {
      case AttemptEnd::answer:
        out.outcome = Outcome::ok;
        out.frame = std::move(a.frame);
        break;
      case AttemptEnd::meter_error: {
        out.outcome = Outcome::meter_error;
        ++out.tally.meter_errors;
        const auto& d = a.frame.data;
        out.error_word = d.size() == 2 ? static_cast<std::uint16_t>(d[0] | d[1] << 8) : d[0];
        out.detail = d.size() == 2 ? "SERR " + hex_word(out.error_word, true) + ": " +
                                         dlt::security_error_meaning(out.error_word)
                                   : "ERR " + hex_word(out.error_word, false) + ": " +
                                         dlt::error_meaning(version, d[0]);
        out.frame = std::move(a.frame);
        break;
      }
      case AttemptEnd::io_error:
        out.outcome = Outcome::io_error;
        break;
      case AttemptEnd::timeout:
        out.outcome = Outcome::timeout;
        break;
      case AttemptEnd::bad_frame:
        out.outcome = Outcome::bad_frame;
        break;
      case AttemptEnd::mismatch:
        out.outcome = Outcome::mismatch;
        break;
    }
    if (out.outcome == Outcome::ok || out.outcome == Outcome::meter_error ||
        out.outcome == Outcome::io_error)
      break;
  }
  // Busy: from the first request byte to the last answer byte (or the end
  // of the wait), less the silences kept before requests.
  const bool answered = out.outcome == Outcome::ok || out.outcome == Outcome::meter_error;
  const auto end = answered ? line.wire_end() : std::max(line.wire_end(), SteadyClock::now());
  out.tally.busy += duration_cast<microseconds>(end - t0) - out.tally.silence;
  if (out.tally.busy < microseconds(0)) out.tally.busy = microseconds(0);
  return out;
}

namespace {

Dlt645Read read_from(Dlt645Answer&& a, std::uint32_t di) {
  Dlt645Read r;
  r.outcome = a.outcome;
  r.tally = a.tally;
  r.di = di;
  r.error_word = a.error_word;
  r.detail = std::move(a.detail);
  return r;
}

}  // namespace

Dlt645Read dlt645_read(SerialLine& line, dlt::Version version, const dlt::Address& address,
                       std::uint32_t di, const Dlt645Options& options) {
  const bool v2007 = version == dlt::Version::v2007;
  auto first =
      dlt645_exchange(line, version,
                      v2007 ? dlt::request::read(address, di)
                            : dlt::request::v1997::read(address, static_cast<std::uint16_t>(di)),
                      options);
  Dlt645Read r = read_from(Dlt645Answer(first), di);
  if (first.outcome != Outcome::ok) return r;
  const std::size_t di_bytes = dlt::di_size(version);
  r.frames = 1;
  if (!dlt::control::has_follow_up(first.frame.control)) {
    r.data.assign(first.frame.data.begin() + static_cast<std::ptrdiff_t>(di_bytes),
                  first.frame.data.end());
    return r;
  }
  // Long answer: follow-up frames from the meter's own address (the request
  // may have used AA wildcards).
  const dlt::Address meter = first.frame.address;
  std::vector<dlt::Frame> continuations;
  std::vector<std::uint8_t> joined(first.frame.data.begin() + static_cast<std::ptrdiff_t>(di_bytes),
                                   first.frame.data.end());
  bool more = true;
  for (std::size_t k = 1; more && k <= options.max_follow_ups; ++k) {
    const auto request =
        v2007 ? dlt::request::read_follow_up(meter, di, static_cast<std::uint8_t>(k))
              : dlt::request::v1997::read_follow_up(meter, static_cast<std::uint16_t>(di));
    auto next = dlt645_exchange(line, version, request, options);
    r.tally += next.tally;
    if (next.outcome != Outcome::ok) {
      r.outcome = next.outcome;
      r.error_word = next.error_word;
      r.detail = "follow-up " + std::to_string(k) + ": " + next.detail;
      return r;
    }
    more = dlt::control::has_follow_up(next.frame.control);
    if (!v2007)
      joined.insert(joined.end(), next.frame.data.begin() + static_cast<std::ptrdiff_t>(di_bytes),
                    next.frame.data.end());
    continuations.push_back(std::move(next.frame));
  }
  if (more) {
    r.outcome = Outcome::bad_frame;
    r.detail = "more than " + std::to_string(options.max_follow_ups) + " follow-up frames";
    return r;
  }
  r.frames = 1 + continuations.size();
  if (v2007) {
    auto joined2007 = dlt::reassemble(first.frame, continuations);
    if (joined2007.error) {
      r.outcome = Outcome::bad_frame;
      r.detail = joined2007.message;
      return r;
    }
    r.data = std::move(joined2007.data);
  } else {
    r.data = std::move(joined);
  }
  return r;
}

Dlt645Heard dlt645_split(std::span<const std::uint8_t> heard) {
  Dlt645Heard out;
  out.heard_bytes = heard.size();
  // Bytes inside clean frames are accounted for; every other byte but a
  // wake-up FE is garbage.
  std::vector<bool> in_frame(heard.size(), false);
  dlt::StreamDecoder decoder;
  decoder.feed(heard);
  const auto take = [&](std::uint64_t base, const dlt::DecodeResult& r) {
    if (r.status == dlt::DecodeStatus::frame) {
      const std::size_t from = static_cast<std::size_t>(base) + r.skipped;
      for (std::size_t i = from; i < from + r.frame_size && i < in_frame.size(); ++i)
        in_frame[i] = true;
      out.frames.push_back(r.frame);
    } else if (r.status == dlt::DecodeStatus::error) {
      ++out.bad_frames;
    }
  };
  for (;;) {
    const auto base = decoder.offset();
    const auto r = decoder.next();
    if (!r) break;
    take(base, *r);
  }
  for (;;) {
    const auto base = decoder.offset();
    const auto r = decoder.flush();
    if (!r) break;
    take(base, *r);
  }
  for (std::size_t i = 0; i < heard.size(); ++i)
    if (!in_frame[i] && heard[i] != dlt::wake_byte) ++out.garbage_bytes;
  return out;
}

Dlt645Heard dlt645_listen_all(SerialLine& line, const dlt::Frame& request,
                              const Dlt645Options& options) {
  Dlt645Heard out;
  const auto bytes = dlt::encode(request, options.preamble);
  if (bytes.empty()) {
    out.error = std::make_error_code(std::errc::message_size);
    return out;
  }
  quiet_line(line, options.min_gap, out.tally);
  ++out.tally.attempts;
  const auto t0 = SteadyClock::now();
  if ((out.error = line.write(bytes, out.tally))) return out;
  if (options.echo) line.discard_echo(bytes, options.limits, out.tally);

  // The whole window, whatever arrives: SerialLine::read with a test that
  // never says complete ends after the byte timeout of silence (or at the
  // response timeout with nothing); past the window's end a read returns at
  // once unless bytes are waiting, so the loop ends when the line is quiet.
  std::vector<std::uint8_t> heard;
  const auto window_end = line.request_end() + options.limits.response_timeout;
  // A line that never falls silent (a babbling transmitter) ends the window
  // after this many bytes: more than 100 answers' worth.
  constexpr std::size_t cap = 32768;
  const auto never = [](std::span<const std::uint8_t> so_far) {
    return so_far.size() >= cap ? Completion::complete : Completion::need_more;
  };
  while (heard.size() < cap) {
    auto r = line.read(never, options.limits, out.tally);
    heard.insert(heard.end(), r.bytes.begin(), r.bytes.end());
    if (r.error) {
      out.error = r.error;
      break;
    }
    if (r.bytes.empty() && SteadyClock::now() >= window_end) break;
  }
  {
    auto split = dlt645_split(heard);
    out.frames = std::move(split.frames);
    out.garbage_bytes = split.garbage_bytes;
    out.bad_frames = split.bad_frames;
    out.heard_bytes = split.heard_bytes;
    out.tally.bad_frames += static_cast<std::uint32_t>(split.bad_frames);
  }
  out.tally.noise_bytes += out.garbage_bytes;
  if (heard.empty()) ++out.tally.timeouts;
  const auto end = std::max(line.wire_end(), SteadyClock::now());
  out.tally.busy += duration_cast<microseconds>(end - t0) - out.tally.silence;
  if (out.tally.busy < microseconds(0)) out.tally.busy = microseconds(0);
  return out;
}

Tally dlt645_broadcast(SerialLine& line, const dlt::Frame& request, const Dlt645Options& options) {
  Tally tally;
  const auto bytes = dlt::encode(request, options.preamble);
  if (bytes.empty()) return tally;
  quiet_line(line, options.min_gap, tally);
  ++tally.attempts;
  const auto t0 = SteadyClock::now();
  if (line.write(bytes, tally)) return tally;
  if (options.echo) line.discard_echo(bytes, options.limits, tally);
  tally.busy += duration_cast<microseconds>(line.wire_end() - t0);
  // Nobody answers, but every meter is busy with it for up to its turnaround:
  // hold the line that long (the silence counts as required, not idle).
  line.wait_silence(duration_cast<microseconds>(options.limits.response_timeout), tally);
  line.flush_input(tally);
  return tally;
}

}  // namespace meterd::drivers
