// meterd: the concentrator daemon (docs/design.md, docs/config.md).
//   meterd --config FILE         run
//   meterd --check-config FILE   validate: exit 0, or every error as file:line: key: problem, exit
//   2 meterd --version
// Signals (through the loop): SIGHUP reloads the config (a bad one is
// refused and logged, the running one carries on); SIGTERM/SIGINT stop:
// the exchange in flight finishes, the buffer is closed cleanly, exit 0.
// Under systemd (Type=notify, firmware/notify.hpp): READY=1 once started,
// RELOADING=1 ... READY=1 around a reload, STOPPING=1 on SIGTERM, and
// WATCHDOG=1 at half of WatchdogSec= from the loop thread.
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <malloc.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "firmware/config.hpp"
#include "firmware/daemon.hpp"
#include "firmware/notify.hpp"

namespace fw = meterd::firmware;

namespace {

constexpr const char* version = fw::meterd_version;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("meterd");
  // journald stamps each line itself; elsewhere an ISO UTC time leads.
  if (std::getenv("JOURNAL_STREAM") != nullptr)
    logger->set_pattern("%l %v");
  else
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

// systemctl status shows this line.
std::string status_line(const fw::Config& c) {
  return "polling " + std::to_string(c.meters.size()) +
         (c.meters.size() == 1 ? " meter" : " meters") + " on " + std::to_string(c.buses.size()) +
         (c.buses.size() == 1 ? " bus" : " buses");
}

int print_errors(const fw::LoadResult& r, const std::string& file) {
  for (const auto& e : r.errors) std::cerr << e.to_string() << "\n";
  std::cerr << "meterd: " << file << ": " << r.errors.size()
            << (r.errors.size() == 1 ? " error" : " errors") << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena per bus thread would keep each thread's freed blocks
  // resident; the threads allocate little, so two arenas serve them all
  // (1024 meters on 16 buses: peak 15.7 -> 12.9 MiB, docs/performance.md).
  mallopt(M_ARENA_MAX, 2);
  CLI::App app{"meterd: smart-meter data concentrator"};
  std::string config_file, check_file, log_level = "info";
  bool show_version = false;
  app.add_option("--config", config_file, "Run with this config file");
  app.add_option("--check-config", check_file, "Validate a config file and exit");
  app.add_flag("--version", show_version, "Print the version and exit");
  app.add_option("--log-level", log_level, "trace | debug | info | warn | error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "meterd: " << e.what() << "\n";
    return 2;
  }
  if (show_version) {
    std::cout << "meterd " << version << "\n";
    return 0;
  }
  if (!check_file.empty()) {
    const auto r = fw::load_config(check_file);
    if (!r.errors.empty()) return print_errors(r, check_file);
    std::cout << check_file << ": ok (" << r.config->buses.size() << " buses, "
              << r.config->meters.size() << " meters)\n";
    return 0;
  }
  if (config_file.empty()) {
    std::cerr << "meterd: --config FILE is required (or --check-config FILE, --version)\n";
    return 2;
  }
  auto loaded = fw::load_config(config_file);
  if (!loaded.errors.empty()) return print_errors(loaded, config_file);

  setup_logging(log_level);
  auto notify = fw::Notifier::from_environment();
  if (!notify.problem().empty()) spdlog::warn("{}: no systemd notifications", notify.problem());
  boost::asio::io_context io;
  std::string status = status_line(*loaded.config);
  fw::Daemon daemon(io, std::move(*loaded.config), wall_ms);
  try {
    daemon.start();
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    std::cerr << "meterd: " << e.what() << "\n";
    notify.status(std::string("cannot start: ") + e.what());
    return 1;
  }
  notify.send("READY=1\nSTATUS=" + status);

  // The watchdog pings come from the loop thread itself: if the loop hangs,
  // they stop and systemd restarts meterd.
  boost::asio::steady_timer watchdog_timer(io);
  std::function<void()> arm_watchdog = [&] {
    const auto period = fw::watchdog_ping_period(*notify.watchdog());
    watchdog_timer.expires_after(period);
    watchdog_timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      notify.watchdog_ping();
      arm_watchdog();
    });
  };
  if (notify.watchdog()) {
    notify.watchdog_ping();
    arm_watchdog();
  }

  // SIGHUP and the `reload` command: a bad config is refused whole.
  const auto reload = [&]() -> std::vector<std::string> {
    notify.reloading();
    auto next = fw::load_config(config_file);
    std::vector<std::string> errors;
    for (const auto& e : next.errors) errors.push_back(e.to_string());
    if (!errors.empty()) {
      for (const auto& e : errors) spdlog::error("reload refused: {}", e);
      spdlog::error("reload refused: {} errors; the running config carries on", errors.size());
    } else {
      spdlog::info("reload: {}", config_file);
      status = status_line(*next.config);
      daemon.reload(std::move(*next.config));
    }
    // READY=1 either way: a refused reload leaves the old config running.
    notify.send("READY=1\nSTATUS=" + status +
                (errors.empty() ? "" : " (last reload refused: see the log)"));
    return errors;
  };
  daemon.set_reloader(reload);

  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          reload();
          signals.async_wait(on_signal);
          return;
        }
        spdlog::info("signal {}: stopping", sig == SIGTERM ? "TERM" : "INT");
        notify.stopping();
        watchdog_timer.cancel();
        daemon.log_summary();
        daemon.stop();
        io.stop();
      };
  signals.async_wait(on_signal);
  io.run();
  spdlog::info("meterd stopped");
  return 0;
}
