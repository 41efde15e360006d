#!/usr/bin/env bash
# The main job, on a fresh Debian machine: installs what it needs, builds,
# and runs a concentrator end to end on this one machine:
#
#   metersim (demo/fleet.toml: 24 DL/T 645 and 8 Modbus meters on three
#   RS-485 buses and a Modbus TCP converter, wire timing, light faults)
#     -> meterd (reads every meter every DEMO_INTERVAL, buffers, uplinks)
#     -> mosquitto (a private broker on a free loopback port)
#     -> demo/headend_view.py (a head-end: latest values per meter, seq
#        accounting: duplicates and gaps, the gateway's status and health)
#
#   ./demo.sh                    run until Ctrl-C
#   DEMO_SECONDS=40 ./demo.sh    stop after 40 s; exit 0 only if every meter's
#                                readings arrived and no seq is missing
#   DEMO_INTERVAL=30s            meters' read interval (default 15s)
#
# Every process it starts runs in its own process group and is stopped
# (TERM, then KILL after 10 s) when the demo ends, however it ends. Logs,
# configs and meterd's buffer are kept in the folder it names.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${DEMO_SECONDS:-0}
interval=${DEMO_INTERVAL:-15s}
gateway=gw-demo
prefix=meterd/$gateway
py=/usr/bin/python3  # Debian's interpreter (tomllib; no third-party module needed)

toolchains/install-deps.sh
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR=/ CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B build -G Ninja "${launcher[@]}" >/dev/null
ninja -C build -j "${METERD_JOBS:-2}" meterd metersim

run=$(mktemp -d /tmp/meterd-demo-XXXXXX)
groups=()  # process group ids (each started with setsid: pid = pgid), in start order
view=
cleanup() {
  local status=$? g i
  trap - EXIT INT TERM
  # Newest first: the view, then meterd (its clean stop publishes the offline
  # status), metersim and the broker last.
  for ((i = ${#groups[@]} - 1; i >= 0; i--)); do
    g=${groups[i]}
    kill -TERM -- "-$g" 2>/dev/null || continue
    for _ in $(seq 100); do kill -0 -- "-$g" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$g" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  echo "demo: logs, configs and meterd's buffer kept in $run"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started() {  # NAME PID: remember the group; fail if the process is already gone
  groups+=("$2")
  sleep 0.2
  kill -0 "$2" 2>/dev/null || { echo "demo: $1 did not start (see $run/$1.log)" >&2; exit 1; }
}

# The broker: a private mosquitto on a free loopback port, nothing kept on disk.
port=$($py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$run/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
log_dest stdout
connection_messages true
EOF
# (Logging to stdout: started as root, mosquitto drops to its own user, which
# cannot write into the private run folder.)
setsid /usr/sbin/mosquitto -c "$run/mosquitto.conf" >"$run/mosquitto.log" 2>&1 &
started mosquitto $!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

# The meters, and a meterd config written by metersim for exactly this fleet.
setsid build/bin/metersim --config demo/fleet.toml --run-dir "$run/sim" \
  --endpoints "$run/sim.json" --gateway-config "$run/meterd.toml" \
  --gateway-id "$gateway" --data-dir "$run/data" >"$run/metersim.log" 2>&1 &
started metersim $!
for _ in $(seq 100); do [ -f "$run/sim.json" ] && break; sleep 0.1; done
[ -f "$run/sim.json" ] || { echo "demo: metersim did not start (see $run/metersim.log)" >&2; exit 1; }

# Light faults, as on a real line (simulator/README.md "Control channel"):
# line noise with false 68H heads ahead of one meter's answers, a lost answer
# now and then (a timeout, retried) from a DL/T 645 and a Modbus meter, an
# occasional bad checksum.
sim_control() {
  $py - "$run/sim/control.sock" "$1" <<'PY'
import socket, sys, json
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
answer = json.loads(s.makefile().readline())
sys.exit(0 if answer.get("ok") else f"demo: metersim refused {sys.argv[2]}: {answer}")
PY
}
sim_control '{"cmd":"fault","meter":"m03","faults":{"noise":6}}'
sim_control '{"cmd":"fault","meter":"m14","faults":{"drop":0.1}}'
sim_control '{"cmd":"fault","meter":"m22","faults":{"corrupt_checksum":0.1}}'
sim_control '{"cmd":"fault","meter":"m10","faults":{"drop":0.05}}'

# Every meter every $interval instead of the written 15 min; the uplink to
# the private broker, health every 10 s. metersim writes an [mqtt] table for
# a broker on 1883: it is replaced.
awk '/^\[/ { skip = ($0 == "[mqtt]") } !skip' "$run/meterd.toml" |
  sed "s/^interval = .*/interval = \"$interval\"/" >"$run/meterd.toml.new"
cat >>"$run/meterd.toml.new" <<EOF

[mqtt]
host = "127.0.0.1"
port = $port
topic_prefix = "$prefix"
health_interval = "10s"
EOF
mv "$run/meterd.toml.new" "$run/meterd.toml"
build/bin/meterd --check-config "$run/meterd.toml"

# The head-end subscribes before meterd starts, in a persistent session, so
# that no reading is published while nobody listens.
timeout 10 mosquitto_sub -h 127.0.0.1 -p "$port" -c -i demo-headend -q 1 -t "$prefix/#" -E

setsid build/bin/meterd --config "$run/meterd.toml" 2>"$run/meterd.log" &
started meterd $!
echo "demo: broker 127.0.0.1:$port, run folder $run (Ctrl-C stops)"
echo "demo: the technician's view: build/bin/meterctl --config $run/meterd.toml status (or meters, tail, read m02, scan rs485-1)"

# The view runs in its own group too; the terminal's Ctrl-C reaches this
# script only, which passes it on, so the view prints its summary and stops
# its mosquitto_sub itself.
setsid $py demo/headend_view.py --port "$port" --prefix "$prefix" --client-id demo-headend \
  --config "$run/meterd.toml" --first-seq 1 --seconds "$seconds" &
view=$!
groups+=("$view")
trap 'kill -INT "$view" 2>/dev/null || true' INT
trap 'kill -TERM "$view" 2>/dev/null || true' TERM
while kill -0 "$view" 2>/dev/null; do wait "$view" || true; done
wait "$view" && status=0 || status=$?
exit "$status"
