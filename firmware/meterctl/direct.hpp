// meterctl's direct mode: commissioning without the daemon. meterctl opens
// the serial port (or a Modbus TCP converter) itself, takes it the way
// meterd does (drivers::lock_exclusive: flock + TIOCEXCL) and refuses with
// exit code 4 when another process holds it:
//
//   meterctl --port /dev/ttyUSB0 [--baud 2400] [--parity even] probe --address A --di DI
//   meterctl --port P ... scan [--protocol dlt645|modbus] [--first N --last M]
//   meterctl --port P ... modbus --unit N --read 3:0x0000:2:float
//   meterctl --host H --tcp-port N modbus|scan ...     (Modbus TCP converter)
//
// Exit codes (docs/control.md): 0 ok, 1 failed / nothing found, 2 usage,
// 4 port held by another process.
#pragma once

#include <memory>
#include <optional>

namespace CLI {
class App;
}

namespace meterd::meterctl {

class DirectCommands;

// Adds the global port options and the probe, modbus and scan subcommands
// to `app`. Call it after the daemon verbs are defined: an existing `scan`
// subcommand (the daemon's `scan BUS`) gets the direct options added, and
// runs direct only when --port or --host is given.
std::shared_ptr<DirectCommands> add_direct_commands(CLI::App& app);

// After app.parse(): the exit code of the direct command that was given, or
// nullopt when none was (the daemon's verbs run).
std::optional<int> run_direct(DirectCommands& commands);

}  // namespace meterd::meterctl
