// The verbs that talk to meterd over its control socket (docs/control.md, docs/meterctl.md),
// and export's offline path straight from a buffer file.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace meterd::meterctl {

class DaemonVerbs {
 public:
  // Adds the global options (--socket, --config, --timeout, --json) and the verbs to `app`.
  explicit DaemonVerbs(CLI::App& app);
  // One of these verbs was on the command line.
  bool chosen() const;
  // Runs it; returns the exit code or throws Failure.
  int run();

 private:
  // Global options.
  std::string socket_, config_;
  double timeout_s_ = 30;
  bool json_ = false;

  CLI::App *status_, *meters_, *read_, *scan_, *backlog_, *tail_, *export_, *relay_, *timesync_,
      *reload_;
  // Arguments.
  std::string bus_, meter_, quantity_, protocol_, from_, to_, format_ = "csv", data_dir_, action_;
  std::vector<std::string> quantities_;
  bool offline_ = false, events_ = false;
  int first_ = 0, last_ = 0;

  int status();
  int meters();
  int read();
  int scan();
  int backlog();
  int tail();
  int export_rows();
  int relay();
  int timesync();
  int reload();
};

}  // namespace meterd::meterctl
