#!/usr/bin/env bash
# The layering check checked: in a scratch tree, each planted violation must
# be reported (exit 1, naming the file and line) and each legal include must
# pass. A check that matched the whole grep line instead of the include
# target, or that only knew a deny-list of project layers, fails here.
# Usage: test_check_layers.sh PATH/TO/check-layers
set -u
tool=${1:?usage: test_check_layers.sh CHECK_LAYERS}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failures=0 cases=0

plant() {  # layer/file.cpp, include line
  mkdir -p "$scratch/$(dirname "$1")"
  printf '// planted\n%s\n' "$2" >"$scratch/$1"
}

expect() {  # want (clean|violation), file, include line
  local want=$1 file=$2 line=$3 out rc
  rm -rf "${scratch:?}"/*
  plant "$file" "$line"
  out=$("$tool" "$scratch" 2>&1)
  rc=$?
  cases=$((cases + 1))
  if [ "$want" = clean ] && [ $rc -ne 0 ]; then
    echo "FAIL: '$line' in $file should pass, got rc=$rc: $out"
    failures=$((failures + 1))
  elif [ "$want" = violation ] && { [ $rc -ne 1 ] || ! grep -q "$file:2:" <<<"$out"; }; then
    echo "FAIL: '$line' in $file should be reported at $file:2, got rc=$rc: $out"
    failures=$((failures + 1))
  fi
}

# Codecs: standard library and nlohmann-json only, no other layer.
expect violation protocol/x.cpp '#include "drivers/serial_port.hpp"'
expect violation protocol/x.cpp '#include "buffer/store.hpp"'
expect violation protocol/x.cpp '#include <boost/asio.hpp>'
expect violation protocol/x.cpp '#include <modbus.h>'
expect violation protocol/x.cpp '#include <modbus/modbus.h>'
expect violation protocol/x.cpp '#include <unistd.h>'
expect violation protocol/x.cpp '#include <sys/socket.h>'
expect violation protocol/x.cpp '#include <thread>'
expect violation protocol/x.cpp '#include <fstream>'
expect violation protocol/x.cpp '  #  include <spdlog/spdlog.h>'
expect clean protocol/x.cpp '#include <nlohmann/json.hpp>'
expect clean protocol/x.cpp '#include <cstdint>'
# The Modbus codec's own folder is not libmodbus.
expect clean protocol/modbus_codec/x.cpp '#include "protocol/modbus_codec/pdu.hpp"'
# Drivers: protocol and the I/O libraries; never the buffer or the application.
expect clean drivers/x.cpp '#include "protocol/dlt645/frame.hpp"'
expect clean drivers/x.cpp '#include <modbus.h>'
expect clean drivers/x.cpp '#include <mosquitto.h>'
expect violation drivers/x.cpp '#include "buffer/store.hpp"'
expect violation drivers/x.cpp '#include "firmware/config.hpp"'
expect violation drivers/x.cpp '#include <sqlite3.h>'
# Buffer: SQLite only; it knows rows, not meters.
expect clean buffer/x.cpp '#include <sqlite3.h>'
expect violation buffer/x.cpp '#include "protocol/decimal.hpp"'
expect violation buffer/x.cpp '#include "drivers/serial_port.hpp"'
expect violation buffer/x.cpp '#include <mosquitto.h>'
# Firmware: everything but the simulator.
expect clean firmware/x.cpp '#include "buffer/store.hpp"'
expect clean firmware/x.cpp '#include "drivers/serial_port.hpp"'
expect violation firmware/x.cpp '#include "simulator/fleet.hpp"'
# Simulator: protocol and drivers only.
expect clean simulator/x.cpp '#include "drivers/serial_port.hpp"'
expect violation simulator/x.cpp '#include "firmware/config.hpp"'
expect violation simulator/x.cpp '#include "buffer/store.hpp"'
expect violation simulator/x.cpp '#include <sqlite3.h>'
# Tests may include anything.
expect clean tests/x.cpp '#include "simulator/fleet.hpp"'

echo "check-layers: $((cases - failures)) passed, $failures failed"
[ $failures -eq 0 ]
