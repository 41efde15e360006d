#!/usr/bin/env bash
# The main job, on a fresh Debian machine: installs what it needs, builds,
# starts a fleet of virtual meters (metersim) and meterd reading them, and
# shows the readings arriving in meterd's buffer as they are stored.
# (The MQTT uplink and its broker join this demo with the uplink issue.)
#
#   ./demo.sh                 run for 60 s
#   DEMO_SECONDS=0 ./demo.sh  run until Ctrl-C
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
seconds=${DEMO_SECONDS:-60}

toolchains/install-deps.sh
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR=/ CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B build -G Ninja "${launcher[@]}" >/dev/null
ninja -C build -j "${METERD_JOBS:-2}" meterd metersim meterctl

run=$(mktemp -d /tmp/meterd-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo: logs and buffer kept in $run"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# 6 DL/T 645-2007, 2 DL/T 645-1997 and 4 Modbus RTU meters on two RS-485
# buses at 9600 baud, 2 Modbus TCP meters behind a converter.
build/bin/metersim --dlt645-2007 6 --dlt645-1997 2 --modbus-rtu 4 --modbus-tcp 2 --buses 2 \
  --baud 9600 --run-dir "$run/sim" --endpoints "$run/sim.json" \
  --gateway-config "$run/meterd.toml" --gateway-id gw-demo --data-dir "$run/data" \
  >"$run/metersim.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -f "$run/sim.json" ] && break; sleep 0.1; done
[ -f "$run/sim.json" ] || { echo "demo: metersim did not start (see $run/metersim.log)" >&2; exit 1; }

# Read every meter every 10 s instead of the written 15 min, and log a bus
# summary every 30 s.
sed -i 's/^interval = .*/interval = "10s"/' "$run/meterd.toml"
printf '\n[polling]\nsummary_interval = "30s"\n' >>"$run/meterd.toml"
build/bin/meterd --check-config "$run/meterd.toml"
build/bin/meterd --config "$run/meterd.toml" 2>"$run/meterd.log" &
pids+=($!)
echo "demo: metersim and meterd running in $run (meterd log: $run/meterd.log)"

# Show each reading once it is committed: seq, meter, quantity, exact value, unit, time.
/usr/bin/python3 - "$run/data/buffer.db" "$seconds" "$run/meterd.log" <<'PY'
import os, sqlite3, sys, time
db, seconds, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
end = time.time() + seconds if seconds > 0 else float("inf")
last, shown = 0, 0
def value(m, e):
    s = str(abs(m)).rjust(-e + 1, "0") if e < 0 else str(abs(m)) + "0" * e
    if e < 0: s = s[:e] + "." + s[e:]
    return ("-" if m < 0 else "") + s
while time.time() < end:
    if os.path.exists(db):
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
            rows = con.execute(
                "SELECT r.seq, s.meter, s.quantity, r.mantissa, r.exponent, s.unit, r.ts "
                "FROM readings r JOIN series s ON s.id = r.series WHERE r.seq > ? ORDER BY r.seq",
                (last,)).fetchall()
            con.close()
        except sqlite3.Error:
            rows = []
        for seq, meter, q, m, e, unit, ts in rows:
            t = time.strftime("%H:%M:%S", time.gmtime(ts / 1000))
            print(f"seq {seq:>6}  {meter:<6} {q:<30} {value(m, e):>14} {unit:<5} {t}Z", flush=True)
            last, shown = seq, shown + 1
    time.sleep(1)
print(f"demo: {shown} readings stored; meterd's bus summaries are in {log}")
PY
