#!/bin/bash
# The example config of the package (firmware/meterd/meterd.toml): valid as
# shipped (0 buses, 0 meters: a fresh install polls nothing), and still
# valid with every commented-out key turned on, so the examples in it are
# not rotten (1 bus, 2 meters, the uplink on, the data tasks and an area).
#
#   tests/package/test_example_config.sh METERD CONFIG
#
# Catches: an example that meterd refuses (the package's ExecStart would
# fail at once), a commented example with a misspelt key or a value out of
# range, or a [[meter]] that names no bus.
set -euo pipefail
meterd=${1:?usage: test_example_config.sh METERD CONFIG}
config=${2:?usage: test_example_config.sh METERD CONFIG}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

out=$("$meterd" --check-config "$config")
echo "$out"
[ "$out" = "$config: ok (0 buses, 0 meters)" ]

# "# key = value" and "# [table]" lines are the examples; prose comments are not touched.
sed -E 's/^# ((\[|[a-z_]+ = ).*)$/\1/' "$config" >"$work/all.toml"
grep -q '^\[\[bus\]\]' "$work/all.toml"
grep -q '^\[mqtt\]' "$work/all.toml"
out=$("$meterd" --check-config "$work/all.toml")
echo "$out"
[ "$out" = "$work/all.toml: ok (1 buses, 2 meters)" ]
