#!/usr/bin/env bash
# Cross-builds meterd for an ARM Debian target and runs the protocol unit tests
# under qemu-user. See docs/cross-build.md.
#
# Usage (as root, or with sudo available), from anywhere:
#   toolchains/cross-build.sh aarch64|armhf [extra cmake arguments...]
# e.g. toolchains/cross-build.sh armhf -DMETERD_PROTOCOL_ONLY=ON
#
# 1. installs the cross compiler and qemu-user, then, through Debian multiarch
#    (dpkg --add-architecture), the target's -dev packages; idempotent: only
#    dpkg-query runs when everything is there;
# 2. configures build-<arch>/ with toolchains/<triplet>.cmake (Ninja) and
#    CMAKE_CROSSCOMPILING_EMULATOR=qemu-<cpu> (so no binfmt_misc is needed);
# 3. builds every target (-j2);
# 4. runs the ctest tests whose names match ^test_protocol_ under qemu;
#    finding zero tests is a failure.
# If the target -dev packages cannot be installed after the retries (a foreign
# index out of sync with its mirror), it builds and tests the protocol layer
# only (-DMETERD_PROTOCOL_ONLY=ON, which needs no target package) and says so.
#
# Environment: METERD_CROSS_JOBS (default 2); METERD_CROSS_TESTS (ctest -R
# regex, default ^test_protocol_); METERD_CROSS_APT_TRIES (default 6);
# METERD_CROSS_STRICT=1 (fail instead of the protocol-only fallback);
# METERD_CROSS_SKIP_INSTALL=1 (no package step).
set -euo pipefail

usage() { echo "usage: $0 aarch64|armhf [cmake args...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in
  aarch64|arm64) arch=aarch64 debarch=arm64 triplet=aarch64-linux-gnu qemu=qemu-aarch64 ;;
  armhf|arm)     arch=armhf   debarch=armhf triplet=arm-linux-gnueabihf qemu=qemu-arm ;;
  *) usage ;;
esac
shift

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-$arch"
jobs=${METERD_CROSS_JOBS:-2}
tests=${METERD_CROSS_TESTS:-^test_protocol_}
log() { echo "cross-build[$arch]: $*"; }
t_start=$SECONDS

# ---------------------------------------------------------------- 1. packages
# Host packages. nlohmann-json3-dev, libcli11-dev and doctest-dev are
# Architecture: all / Multi-Arch: foreign: the native one serves the target too.
# The cross compiler comes from the native index, so the protocol-only build
# needs nothing from the $debarch index.
host_pkgs=(cmake ninja-build pkgconf binutils "crossbuild-essential-$debarch"
           nlohmann-json3-dev libcli11-dev doctest-dev)
# Target packages (Multi-Arch: same: their version must equal the native
# one's; apt upgrades the native package when needed). libtomlplusplus-dev is
# NOT header-only on Debian (it ships libtomlplusplus.so), so it needs
# :$debarch too. pkgconf:$debarch brings /usr/bin/$triplet-pkg-config.
target_pkgs=(libboost-dev libmodbus-dev libmosquitto-dev libsqlite3-dev
             libspdlog-dev libfmt-dev libtomlplusplus-dev pkgconf)

# -DMETERD_PROTOCOL_ONLY=ON on the command line: the target -dev packages are not needed.
protocol_only=0
for a in "$@"; do
  if [[ "$a" =~ ^-DMETERD_PROTOCOL_ONLY(:BOOL)?=(ON|on|On|1|TRUE|true|YES|yes|Y|y)$ ]]; then protocol_only=1; fi
done
fallback=0

installed() { [[ "$(dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null)" == *"install ok installed"* ]]; }
foreign_arch() { [[ " $(dpkg --print-foreign-architectures | tr '\n' ' ') " == *" $1 "* ]]; }
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
# apt-get update, then install "$@". A foreign-arch index (armhf especially) can
# be out of sync with its mirror for a while ("File has unexpected size ...
# Mirror sync in progress?"): apt-get update then exits 100 although the other
# indexes are fresh, so go on to the install, which fails by itself when the
# missing index matters, and retry the pair with a growing pause.
# DPkg::Lock::Timeout waits for another apt (install-deps.sh in a parallel
# shell) instead of failing at once.
apt_install() {
  local tries=${METERD_CROSS_APT_TRIES:-6} attempt
  local apt=("${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600)
  for ((attempt = 1; attempt <= tries; attempt++)); do
    "${apt[@]}" update ||
      log "apt-get update incomplete (attempt $attempt), trying the install anyway" >&2
    if "${apt[@]}" install -y --no-install-recommends "$@"; then
      return 0
    fi
    [ "$attempt" -lt "$tries" ] || break
    log "apt attempt $attempt/$tries failed, retrying in $((attempt * 15)) s" >&2
    sleep $((attempt * 15))
  done
  return 1
}

if [ "${METERD_CROSS_SKIP_INSTALL:-0}" != 1 ]; then
  t_install=$SECONDS
  missing=()
  for p in "${host_pkgs[@]}"; do installed "$p" || missing+=("$p"); done
  # qemu-user (qemu-aarch64, qemu-arm); qemu-user-static's *-static binaries do too.
  command -v "$qemu" >/dev/null || command -v "$qemu-static" >/dev/null || missing+=(qemu-user)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing host packages: ${missing[*]}"
    apt_install "${missing[@]}" || { log "could not install ${missing[*]}" >&2; exit 1; }
  fi

  if [ $protocol_only = 0 ]; then
    missing=()
    for p in "${target_pkgs[@]}"; do installed "$p:$debarch" || missing+=("$p:$debarch"); done
    if [ ${#missing[@]} -gt 0 ]; then
      added_arch=0
      if ! foreign_arch "$debarch"; then
        log "dpkg --add-architecture $debarch"
        "${sudo_cmd[@]}" dpkg --add-architecture "$debarch"
        added_arch=1
      fi
      log "installing target packages: ${missing[*]}"
      if ! apt_install "${missing[@]}"; then
        # Leave apt as it was: a foreign architecture whose index cannot be
        # fetched makes every later 'apt-get update' exit 100 (install-deps.sh).
        if [ $added_arch = 1 ] && [ -z "$(dpkg-query -W -f='${Architecture}\n' 2>/dev/null | grep -x "$debarch")" ]; then
          log "removing the $debarch architecture again (no $debarch package installed)" >&2
          "${sudo_cmd[@]}" dpkg --remove-architecture "$debarch" || true
        fi
        [ "${METERD_CROSS_STRICT:-0}" != 1 ] || { log "could not install ${missing[*]}" >&2; exit 1; }
        log "WARNING: could not install ${missing[*]}; falling back to the protocol-only build (-DMETERD_PROTOCOL_ONLY=ON)" >&2
        protocol_only=1 fallback=1
      fi
    fi
  fi
  log "package step took $((SECONDS - t_install)) s"
fi

qemu_bin=$(command -v "$qemu" || command -v "$qemu-static" || true)
[ -n "$qemu_bin" ] || { log "$qemu not found (package qemu-user)" >&2; exit 1; }
command -v "$triplet-g++" >/dev/null || { log "$triplet-g++ not found (crossbuild-essential-$debarch)" >&2; exit 1; }

# ------------------------------------------------------- 2. configure, 3. build
# The emulator goes on the command line, not in the toolchain file (which holds
# compilers, sysroot and find-root modes only). -L: where qemu finds the target's
# dynamic loader and libc (the cross libc from crossbuild-essential).
t_build=$SECONDS
cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_TOOLCHAIN_FILE="$root/toolchains/$triplet.cmake" \
  "-DCMAKE_CROSSCOMPILING_EMULATOR=$qemu_bin;-L;/usr/$triplet" \
  -DBUILD_TESTING=ON \
  "-DMETERD_PROTOCOL_ONLY=$([ $protocol_only = 1 ] && echo ON || echo OFF)" \
  "$@"
cmake --build "$build" -j "$jobs"
log "configure + build took $((SECONDS - t_build)) s"

# Every ELF in bin/ must be for the target, not the host.
want=$([ "$arch" = aarch64 ] && echo AArch64 || echo ARM)
for f in "$build"/bin/*; do
  [ -f "$f" ] || continue
  m=$(readelf -h "$f" 2>/dev/null | sed -n 's/^ *Machine: *//p')
  [ -z "$m" ] && continue
  [ "$m" = "$want" ] || { log "$f is built for '$m', expected $want" >&2; exit 1; }
  log "$(du -h "$f" | cut -f1)	$(basename "$f")	($m)"
done

# --------------------------------------------------------------- 4. tests
t_test=$SECONDS
ctest --test-dir "$build" -R "$tests" --output-on-failure --no-tests=error -j "$jobs"
log "tests under $qemu took $((SECONDS - t_test)) s; total $((SECONDS - t_start)) s"
if [ $fallback = 1 ]; then
  log "WARNING: protocol layer only: the $debarch -dev packages did not install (see above)" >&2
fi
