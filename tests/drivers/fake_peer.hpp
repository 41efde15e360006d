// A scripted peer on a pty for component tests of the drivers: the test
// holds the master side and plays the meters, byte by byte and on time
// (STYLE.md: a fake stream that expects a request and replies with bytes).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <poll.h>
#include <unistd.h>

#include "drivers/serial_port.hpp"

namespace meterd::testing {

using Bytes = std::vector<std::uint8_t>;

class FakePeer {
 public:
  // One request awaited, then replies, each after its delay (counted from the
  // request, or from the previous reply).
  struct Step {
    std::vector<std::pair<std::chrono::milliseconds, Bytes>> replies;
  };
  using Complete = std::function<bool(const Bytes&)>;

  explicit FakePeer(const drivers::LineSettings& settings) {
    std::error_code ec;
    pty_ = drivers::open_pty(settings, ec);
    if (ec) throw std::system_error(ec, "open_pty");
  }
  ~FakePeer() { join(); }

  const std::string& path() const { return pty_.slave_path; }
  int master() const { return pty_.master.get(); }

  // Plays `steps` on a thread; a step starts when `complete(bytes so far)`
  // says a whole request arrived (5 s at most each, so a test cannot hang).
  void play(std::vector<Step> steps, Complete complete) {
    thread_ = std::thread([this, steps = std::move(steps), complete = std::move(complete)] {
      for (const auto& step : steps) {
        Bytes got;
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!complete(got) && std::chrono::steady_clock::now() < until) {
          pollfd p{master(), POLLIN, 0};
          if (::poll(&p, 1, 20) > 0 && (p.revents & POLLIN)) {
            std::uint8_t buf[512];
            const ssize_t n = ::read(master(), buf, sizeof buf);
            if (n > 0) got.insert(got.end(), buf, buf + n);
          }
        }
        {
          std::lock_guard lk(mu_);
          requests_.push_back(got);
        }
        for (const auto& [delay, bytes] : step.replies) {
          std::this_thread::sleep_for(delay);
          send(bytes);
        }
      }
    });
  }
  void send(const Bytes& bytes) {
    if (!bytes.empty() && ::write(master(), bytes.data(), bytes.size()) < 0) return;
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  std::vector<Bytes> requests() {
    std::lock_guard lk(mu_);
    return requests_;
  }

 private:
  drivers::Pty pty_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Bytes> requests_;
};

}  // namespace meterd::testing
