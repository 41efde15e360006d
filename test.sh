#!/usr/bin/env bash
# The test command: installs what it needs, builds, runs the whole suite.
# Exits non-zero on any failure. Steps:
#   1. toolchains/install-deps.sh (Debian packages; quick when present)
#   2. the repository stands alone: no tracked file refers to a folder beside it
#   3. layering check (tools/check-layers) and format check
#   4. build/ (RelWithDebInfo) + ctest: unit, component and system tests
#   5. the quick mode (steps 1-4) again from a copy of the tracked files in an
#      empty folder, so nothing outside the repository can be reached
#   6. build-asan/ (ASan + UBSan) + ctest: the same suite under sanitizers
#   7. build-fuzz/ (clang libFuzzer): each fuzz target for a few seconds
# Environment: METERD_SKIP_SANITIZE=1 / METERD_SKIP_FUZZ=1 skip steps 6/7 (the
# quick mode); METERD_SKIP_STANDALONE=1 skips step 5. CI runs everything.
# METERD_FUZZ_SECONDS (default 20). Builds go through ccache when it is there
# (install-deps installs it), so step 5 recompiles little.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
jobs=${METERD_JOBS:-2}

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
toolchains/install-deps.sh

step "standalone"
# The pattern is written so that this line does not match itself.
outside_ref='\.\./shared'
if git rev-parse --show-toplevel 2>/dev/null | grep -qx "$root"; then
  outside=$(git grep -nE "$outside_ref" -- . || true)
else  # a copy without .git (step 5, or a release tarball)
  outside=$(grep -rnE "$outside_ref" --exclude-dir='build*' . || true)
fi
if [ -n "$outside" ]; then
  printf '%s\n' "$outside" >&2
  echo "standalone: the files above refer to a folder outside the repository" >&2
  exit 1
fi
echo "standalone: no file refers outside the repository"

step "layering"
tools/check-layers "$root"

step "format"
mapfile -t sources < <(git ls-files '*.cpp' '*.hpp' '*.c' '*.h' 2>/dev/null || find protocol drivers buffer firmware simulator tests -name '*.[ch]pp' -o -name '*.[ch]')
if [ ${#sources[@]} -gt 0 ]; then
  clang-format --dry-run -Werror "${sources[@]}"
fi
echo "format: clean (${#sources[@]} files)"

launcher=()
if command -v ccache >/dev/null; then
  # Paths relative to the build dir, so a copy of the tree elsewhere hits the cache.
  export CCACHE_BASEDIR=/ CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

run_suite() {  # $1 build dir, rest: cmake options
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja "${launcher[@]}" "$@" >/dev/null
  ninja -C "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 600
}

step "build and test (build/)"
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo

if [ "${METERD_IN_COPY:-0}" != 1 ] && [ "${METERD_SKIP_STANDALONE:-0}" != 1 ]; then
  step "quick mode from a copy of the repository alone (no sibling folders)"
  parent=$(mktemp -d)
  trap 'rm -rf "$parent"' EXIT
  mkdir "$parent/meterd"
  # The tracked files as they are in the work tree: what a user's clone holds.
  git ls-files -z | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$parent/meterd"
  (cd "$parent/meterd" && METERD_IN_COPY=1 METERD_SKIP_SANITIZE=1 METERD_SKIP_FUZZ=1 ./test.sh)
  rm -rf "$parent"
  trap - EXIT
fi

if [ "${METERD_SKIP_SANITIZE:-0}" != 1 ]; then
  step "build and test under ASan/UBSan (build-asan/)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DMETERD_SANITIZE=ON
fi

if [ "${METERD_SKIP_FUZZ:-0}" != 1 ]; then
  step "fuzz (build-fuzz/, ${METERD_FUZZ_SECONDS:-20} s per target)"
  # No silent skip: CI says "nothing skipped". install-deps.sh installs clang.
  if ! command -v clang++ >/dev/null; then
    echo "fuzz: clang++ not found (toolchains/install-deps.sh installs clang);" \
      "METERD_SKIP_FUZZ=1 skips fuzzing on purpose" >&2
    exit 1
  fi
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
