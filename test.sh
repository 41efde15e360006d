#!/usr/bin/env bash
# The test command: installs what it needs, builds, runs the whole suite.
# Exits non-zero on any failure. Steps:
#   1. toolchains/install-deps.sh (Debian packages; quick when present)
#   2. layering check (../shared/tools/check-layers) and format check
#   3. build/ (RelWithDebInfo) + ctest: unit, component and system tests
#   4. build-asan/ (ASan + UBSan) + ctest: the same suite under sanitizers
#   5. build-fuzz/ (clang libFuzzer): each fuzz target for a few seconds
# Environment: METERD_SKIP_SANITIZE=1 / METERD_SKIP_FUZZ=1 skip steps 4/5
# for a quick local run; CI runs everything. METERD_FUZZ_SECONDS (default 20).
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
jobs=${METERD_JOBS:-2}

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
toolchains/install-deps.sh

step "layering"
layers_tool="$root/../shared/tools/check-layers"
if [ -x "$layers_tool" ]; then
  "$layers_tool" "$root"
else
  echo "check-layers not found at $layers_tool" >&2
  exit 1
fi

step "format"
mapfile -t sources < <(git ls-files '*.cpp' '*.hpp' '*.h' 2>/dev/null || find protocol drivers buffer firmware simulator tests -name '*.[ch]pp')
if [ ${#sources[@]} -gt 0 ]; then
  clang-format --dry-run -Werror "${sources[@]}"
fi
echo "format: clean (${#sources[@]} files)"

run_suite() {  # $1 build dir, rest: cmake options
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  ninja -C "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 600
}

step "build and test (build/)"
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo

if [ "${METERD_SKIP_SANITIZE:-0}" != 1 ]; then
  step "build and test under ASan/UBSan (build-asan/)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DMETERD_SANITIZE=ON
fi

if [ "${METERD_SKIP_FUZZ:-0}" != 1 ] && command -v clang++ >/dev/null; then
  step "fuzz (build-fuzz/, ${METERD_FUZZ_SECONDS:-20} s per target)"
  CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMETERD_FUZZ=ON -DMETERD_PROTOCOL_ONLY=ON -DBUILD_TESTING=ON >/dev/null
  for target in $(sed -n 's/^add_executable(\(fuzz_[a-z0-9_]*\).*/\1/p' tests/fuzz/CMakeLists.txt); do
    ninja -C build-fuzz -j "$jobs" "$target"
    corpus="tests/fuzz/corpus/${target#fuzz_}"
    scratch=$(mktemp -d)
    # New inputs go to the scratch dir; the committed corpus is only read.
    build-fuzz/bin/"$target" -max_total_time="${METERD_FUZZ_SECONDS:-20}" -print_final_stats=1 \
      -artifact_prefix="$scratch/" "$scratch" "$corpus" 2>&1 | tail -n 12
    rm -rf "$scratch"
  done
fi

step "all tests passed"
