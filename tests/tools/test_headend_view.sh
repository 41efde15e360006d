#!/usr/bin/env bash
# The demo's head-end view (demo/headend_view.py): its own self-test, then a
# canned stream of '%t %p' lines piped in as mosquitto_sub would print them.
# Usage: test_headend_view.sh VIEW STREAM
set -euo pipefail
view=$1
stream=$2
fail() { echo "FAIL: $*" >&2; exit 1; }

/usr/bin/python3 "$view" --selftest

# The stream: seq 4 arrives twice (one duplicate), 6..9 are named by
# buffer.seq_gap, 11..13 by buffer.evicted: no gap, both meters seen.
out=$(/usr/bin/python3 "$view" --input - --prefix meterd/gw --meters m01,m02 --first-seq 1 <"$stream") ||
  fail "a clean stream exits non-zero: $out"
echo "$out"
grep -q "readings received: 5 (+ 3 events), meters seen: 2 of 2, duplicates: 1, gaps: 0" <<<"$out" ||
  fail "counts of the clean stream"
grep -q "result: ok" <<<"$out" || fail "verdict of the clean stream"

# The same stream without its seq_gap event: 6..10 missing, exit 1.
if out=$(grep -v seq_gap "$stream" | /usr/bin/python3 "$view" --input - --prefix meterd/gw \
  --meters m01,m02 --first-seq 1); then
  fail "a stream with a gap exits 0: $out"
fi
echo "$out"
grep -q "duplicates: 1, gaps: 5" <<<"$out" || fail "count of the gap"
grep -q "missing seqs: 6-10" <<<"$out" || fail "the missing seqs"

# A meter that sent nothing fails the run.
if out=$(/usr/bin/python3 "$view" --input - --prefix meterd/gw --meters m01,m02,m03 \
  --first-seq 1 <"$stream"); then
  fail "a silent meter exits 0: $out"
fi
grep -q "no reading from: m03" <<<"$out" || fail "the silent meter named"
echo "test_headend_view: ok"
