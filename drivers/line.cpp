#include "drivers/line.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <thread>

#include <poll.h>
#include <unistd.h>

namespace meterd::drivers {

namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::nanoseconds;

std::error_code last_error() { return {errno, std::generic_category()}; }

enum class Wait { readable, timeout, error };

// Waits until fd is readable or `deadline` passes. POLLHUP/POLLERR without
// data is a vanished device (the pty master closed, the USB adapter gone).
Wait wait_readable(int fd, SteadyClock::time_point deadline, std::error_code& ec) {
  for (;;) {
    const auto left = deadline - SteadyClock::now();
    timespec ts{};
    if (left > nanoseconds(0)) {
      const auto ns = duration_cast<nanoseconds>(left).count();
      ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    }
    pollfd p{fd, POLLIN, 0};
    const int r = ::ppoll(&p, 1, &ts, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      ec = last_error();
      return Wait::error;
    }
    if (r == 0) return Wait::timeout;
    if (p.revents & POLLIN) return Wait::readable;
    if (p.revents & POLLNVAL) {
      ec = std::make_error_code(std::errc::bad_file_descriptor);
      return Wait::error;
    }
    ec = std::make_error_code(std::errc::io_error);  // POLLHUP / POLLERR
    return Wait::error;
  }
}

// Reads what is waiting (non-blocking). 0 bytes with POLLIN reported means
// a hang-up on a tty in raw mode with VMIN = VTIME = 0.
std::size_t read_some(int fd, std::vector<std::uint8_t>& out, std::error_code& ec) {
  std::array<std::uint8_t, 512> buf{};
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      out.insert(out.end(), buf.begin(), buf.begin() + n);
      return static_cast<std::size_t>(n);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    ec = n < 0 ? last_error() : std::make_error_code(std::errc::io_error);
    return 0;
  }
}

}  // namespace

SerialLine::SerialLine(Fd fd, const LineSettings& settings)
    : fd_(std::move(fd)), settings_(settings) {}

microseconds SerialLine::char_time() const noexcept {
  return microseconds(settings_.char_time_us());
}

microseconds SerialLine::frame_gap() const noexcept {
  if (settings_.baud > 19200) return microseconds(1750);
  return microseconds((settings_.char_time_us() * 7 + 1) / 2);
}

void SerialLine::wait_silence(microseconds gap, Tally& tally) {
  const auto until = last_wire_end_ + gap;
  const auto now = SteadyClock::now();
  if (now >= until) return;
  std::this_thread::sleep_until(until);
  tally.silence += duration_cast<microseconds>(SteadyClock::now() - now);
}

std::size_t SerialLine::flush_input(Tally& tally) {
  std::size_t total = 0;
  std::vector<std::uint8_t> sink;
  for (;;) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) break;
    std::error_code ec;
    sink.clear();
    const std::size_t n = read_some(fd_.get(), sink, ec);
    if (n == 0) break;
    total += n;
  }
  if (total > 0) {
    // Those bytes were on the wire until a moment ago.
    last_wire_end_ = std::max(last_wire_end_, SteadyClock::now());
    tally.stale_bytes += total;
    tally.rx_bytes += total;
  }
  return total;
}

std::error_code SerialLine::write(std::span<const std::uint8_t> bytes, Tally& tally) {
  const auto start = SteadyClock::now();
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_.get(), bytes.data() + done, bytes.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_.get(), POLLOUT, 0};
      const int r = ::poll(&p, 1, 1000);
      if (r > 0 && (p.revents & POLLOUT)) continue;
      if (r == 0) return std::make_error_code(std::errc::timed_out);
      return std::make_error_code(std::errc::io_error);
    }
    return n < 0 ? last_error() : std::make_error_code(std::errc::io_error);
  }
  tally.tx_bytes += bytes.size();
  // The kernel took the bytes at once; the wire carries them for n × char time.
  request_end_ = last_wire_end_ = start + char_time() * static_cast<long>(bytes.size());
  return {};
}

void SerialLine::sent(std::size_t bytes, Tally& tally) noexcept {
  tally.tx_bytes += bytes;
  request_end_ = last_wire_end_ = SteadyClock::now() + char_time() * static_cast<long>(bytes);
}

void SerialLine::discard_echo(std::span<const std::uint8_t> request, const ReadLimits& limits,
                              Tally& tally) {
  // The echo is heard while the request is on the wire: it is whole by the
  // request's end plus one inter-byte timeout.
  const auto deadline = request_end_ + limits.byte_timeout;
  std::vector<std::uint8_t> got;
  got.reserve(request.size());
  while (got.size() < request.size()) {
    std::error_code ec;
    if (wait_readable(fd_.get(), deadline, ec) != Wait::readable) break;
    // Read no further than the echo: the answer may follow it at once.
    std::array<std::uint8_t, 512> buf{};
    const std::size_t want = std::min(buf.size(), request.size() - got.size());
    const ssize_t n = ::read(fd_.get(), buf.data(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got.insert(got.end(), buf.begin(), buf.begin() + n);
  }
  tally.echo_bytes += got.size();
  tally.rx_bytes += got.size();
}

ReadResult SerialLine::read(
    const std::function<Completion(std::span<const std::uint8_t>)>& complete,
    const ReadLimits& limits, Tally& tally) {
  ReadResult r;
  const auto first_deadline = request_end_ + limits.response_timeout;
  auto deadline = first_deadline;
  for (;;) {
    const Wait w = wait_readable(fd_.get(), deadline, r.error);
    if (w == Wait::timeout) return r;
    if (w == Wait::error) return r;
    const std::size_t n = read_some(fd_.get(), r.bytes, r.error);
    if (r.error) return r;
    if (n == 0) continue;
    const auto now = SteadyClock::now();
    last_wire_end_ = now;
    tally.rx_bytes += n;
    if (complete(r.bytes) == Completion::complete) {
      r.complete = true;
      return r;
    }
    deadline = now + limits.byte_timeout;
  }
}

}  // namespace meterd::drivers
