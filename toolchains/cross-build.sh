#!/usr/bin/env bash
# Cross-builds all of meterd for an ARM Debian target and runs its unit and
# component tests under qemu-user. See docs/cross-build.md.
#
# Usage (as root, or with sudo available), from anywhere:
#   toolchains/cross-build.sh aarch64|armhf [--targets "T1 T2 ..."] [--package] [extra cmake arguments...]
#
# --targets: build only these targets (and what they need) instead of every
#   one; the tests are then not run (their executables are not built).
# --package: after the build, `cpack -G DEB` the meterd package for the
#   target into build-<arch>/package/ (toolchains/package.sh does both).
#
# 1. installs the cross compiler and qemu-user, then, through Debian multiarch
#    (dpkg --add-architecture), the target's -dev packages; idempotent: only
#    dpkg-query runs when everything is there;
# 2. configures build-<arch>/ with toolchains/<triplet>.cmake (Ninja), the
#    target's pkg-config and CMAKE_CROSSCOMPILING_EMULATOR=qemu-<cpu> (so no
#    binfmt_misc is needed);
# 3. builds every target (-j2): the libraries, meterctl, metersim, meterd once
#    it exists, the tests and the benchmarks; checks that each binary is ARM;
# 4. runs the tests labelled unit or component under qemu (ctest -L); finding
#    zero tests, or any failing, is a failure. Tests labelled system (they
#    start other target programs, which need qemu too) are not run.
#
# The package step never falls back to a smaller build: when the target's
# index stays incomplete after the retries (an armhf security index out of sync
# with its mirror), it installs the versions the target's index has and moves
# the native copies of the few Multi-Arch: same packages in the way to the same
# versions (see "Version alignment" in docs/cross-build.md).
#
# Environment: METERD_CROSS_JOBS (default 2); METERD_CROSS_LABELS (ctest -L
# regex, default ^(unit|component)$); METERD_CROSS_APT_TRIES (apt-get update
# tries, default 6, pauses of 20 s, 40 s, ...); METERD_CROSS_ALIGN=0 (fail
# instead of aligning versions); METERD_CROSS_SKIP_INSTALL=1 (no package step).
set -euo pipefail

usage() { echo "usage: $0 aarch64|armhf [--targets \"T1 T2 ...\"] [--package] [cmake args...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in
  aarch64|arm64) arch=aarch64 debarch=arm64 triplet=aarch64-linux-gnu qemu=qemu-aarch64 ;;
  armhf|arm)     arch=armhf   debarch=armhf triplet=arm-linux-gnueabihf qemu=qemu-arm ;;
  *) usage ;;
esac
shift
targets=()
package=0
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) [ $# -ge 2 ] || usage; read -ra targets <<<"$2"; shift 2 ;;
    --package) package=1; shift ;;
    *) break ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-$arch"
jobs=${METERD_CROSS_JOBS:-2}
labels=${METERD_CROSS_LABELS:-'^(unit|component)$'}
log() { echo "cross-build[$arch]: $*"; }
t_start=$SECONDS

# ---------------------------------------------------------------- 1. packages
# Host packages. nlohmann-json3-dev, libcli11-dev and doctest-dev are
# Architecture: all / Multi-Arch: foreign: the native one serves the target too.
host_pkgs=(cmake ninja-build pkgconf binutils "crossbuild-essential-$debarch"
           nlohmann-json3-dev libcli11-dev doctest-dev)
# Target packages (Multi-Arch: same: their version must equal the native
# one's; apt upgrades the native package when needed). libtomlplusplus-dev is
# NOT header-only on Debian (it ships libtomlplusplus.so), so it needs
# :$debarch too. pkgconf:$debarch brings /usr/bin/$triplet-pkg-config.
target_pkgs=(libboost-dev libmodbus-dev libmosquitto-dev libsqlite3-dev
             libspdlog-dev libfmt-dev libtomlplusplus-dev libssl-dev pkgconf)

installed() { [[ "$(dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null)" == *"install ok installed"* ]]; }
foreign_arch() { [[ " $(dpkg --print-foreign-architectures | tr '\n' ' ') " == *" $1 "* ]]; }
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
# DPkg::Lock::Timeout waits for another apt (install-deps.sh in a parallel
# shell) instead of failing at once.
apt=("${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600)

# apt-get update until every index is fetched. A foreign-arch index (armhf's
# security index especially) can be out of sync with its mirror ("File has
# unexpected size ... Mirror sync in progress?"): apt-get update then exits 100
# and keeps the old lists of that whole suite, for every architecture. Retry
# with growing pauses; returns 1 if it is still incomplete after the last try.
apt_update() {
  local tries=${METERD_CROSS_APT_TRIES:-6} attempt
  for ((attempt = 1; attempt <= tries; attempt++)); do
    if "${apt[@]}" update; then return 0; fi
    [ "$attempt" -lt "$tries" ] || break
    log "apt-get update incomplete (attempt $attempt/$tries), retrying in $((attempt * 20)) s" >&2
    sleep $((attempt * 20))
  done
  log "WARNING: apt-get update still incomplete after $tries tries" >&2
  return 1
}

# apt-get install "$@", 3 tries (a .deb can be out of sync with its mirror too).
# --no-remove: never remove a package to make room (the native build needs them all).
apt_install() {
  local attempt
  for attempt in 1 2 3; do
    if "${apt[@]}" install -y --no-install-recommends --no-remove --allow-downgrades "$@"; then
      return 0
    fi
    [ "$attempt" -lt 3 ] || break
    log "apt-get install failed (attempt $attempt/3), retrying in $((attempt * 20)) s" >&2
    sleep $((attempt * 20))
    "${apt[@]}" update >/dev/null 2>&1 || true
  done
  return 1
}

# Version alignment. Multi-Arch: same packages (libssl3, libmodbus5,
# linux-libc-dev, ...) must have one version on every architecture. When the
# target's index lacks the version installed natively (the suite it came from,
# bookworm-security, could not be fetched for the target), apt reports
# "Depends: X:<arch> ... but it is not going to be installed". For each such X,
# take the version that the target's index has and install X at that version on
# every architecture where X is installed and on the target; a package that
# would then be removed (libmodbus-dev:amd64 depends on libmodbus5 (= its own
# version)) is moved to the same version too. Prints the pins ("name:arch=version"),
# one per line; returns 1 if no consistent set is found in 8 rounds.
align_versions() {
  local -A pin=()
  local round out name a v found
  for ((round = 1; round <= 8; round++)); do
    local args=()
    for name in "${!pin[@]}"; do args+=("$name=${pin[$name]}"); done
    if out=$(apt-get -q install -s --no-install-recommends --allow-downgrades "$@" "${args[@]}" 2>&1) &&
       ! grep -q '^Remv ' <<<"$out"; then
      printf '%s\n' "${args[@]}"
      return 0
    fi
    found=0
    # Blockers: "Depends: X:$debarch (...) but it is not going to be installed".
    while read -r name; do
      [ -n "$name" ] || continue
      v=$(apt-cache policy "$name:$debarch" | awk '/Candidate:/{print $2}')
      if [ -z "$v" ] || [ "$v" = "(none)" ]; then continue; fi
      for a in $(dpkg --print-architecture) $(dpkg --print-foreign-architectures); do
        if [ "$a" = "$debarch" ] || installed "$name:$a"; then
          [ "${pin[$name:$a]:-}" = "$v" ] || { pin[$name:$a]=$v; found=1; }
        fi
      done
    done < <(grep -oE "Depends: [a-z0-9][a-z0-9.+-]*:$debarch" <<<"$out" | sed -E "s/^Depends: //; s/:$debarch\$//" | sort -u)
    # Packages apt would remove: keep them, at the version of their pinned sibling.
    while read -r name a; do
      [ -n "$name" ] || continue
      for v in $(apt-cache madison "$name:$a" 2>/dev/null | awk -F' *\\| *' '{print $2}'); do
        if printf '%s\n' "${pin[@]}" | grep -qxF "$v"; then
          [ "${pin[$name:$a]:-}" = "$v" ] || { pin[$name:$a]=$v; found=1; }
          break
        fi
      done
    done < <(sed -nE 's/^Remv ([^ :]+)(:([a-z0-9]+))? .*/\1 \3/p' <<<"$out" |
             awk -v n="$(dpkg --print-architecture)" '{print $1, ($2 == "" ? n : $2)}')
    [ $found = 1 ] || break
  done
  echo "$out" >&2
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
    # One update: the native indexes are what matter here (apt_install retries).
    "${apt[@]}" update || log "apt-get update incomplete, trying the install anyway" >&2
    apt_install "${missing[@]}" || { log "could not install ${missing[*]}" >&2; exit 1; }
  fi

  missing=()
  for p in "${target_pkgs[@]}"; do installed "$p:$debarch" || missing+=("$p:$debarch"); done
  if [ ${#missing[@]} -gt 0 ]; then
    if ! foreign_arch "$debarch"; then
      log "dpkg --add-architecture $debarch"
      "${sudo_cmd[@]}" dpkg --add-architecture "$debarch"
    fi
    log "installing target packages: ${missing[*]}"
    apt_update || log "installing from the indexes that were fetched" >&2
    if apt-get -q install -s --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
      apt_install "${missing[@]}" || { log "could not install ${missing[*]}" >&2; exit 1; }
    else
      [ "${METERD_CROSS_ALIGN:-1}" != 0 ] ||
        { log "the $debarch packages do not match the native versions (METERD_CROSS_ALIGN=0)" >&2; exit 1; }
      log "the $debarch index lacks some native versions: aligning Multi-Arch: same versions"
      pins_text=$(align_versions "${missing[@]}") ||
        { log "no consistent set of versions for ${missing[*]} (apt's answer above)" >&2; exit 1; }
      mapfile -t pins < <(grep . <<<"$pins_text" || true)
      log "version pins: ${pins[*]}"
      apt_install "${missing[@]}" "${pins[@]}" || { log "could not install ${missing[*]}" >&2; exit 1; }
    fi
  fi
  log "package step took $((SECONDS - t_install)) s"
fi

qemu_bin=$(command -v "$qemu" || command -v "$qemu-static" || true)
[ -n "$qemu_bin" ] || { log "$qemu not found (package qemu-user)" >&2; exit 1; }
command -v "$triplet-g++" >/dev/null || { log "$triplet-g++ not found (crossbuild-essential-$debarch)" >&2; exit 1; }
[ -x "/usr/bin/$triplet-pkg-config" ] || { log "/usr/bin/$triplet-pkg-config not found (pkgconf:$debarch)" >&2; exit 1; }

# ------------------------------------------------------- 2. configure, 3. build
# The emulator and the target's pkg-config go on the command line, not in the
# toolchain file (which holds compilers, sysroot and find-root modes only).
# -L: where qemu finds the target's dynamic loader and libc (the cross libc
# from crossbuild-essential); the target's other libraries are found in
# /usr/lib/$triplet. Debian's $triplet-pkg-config reads only the target's .pc files.
t_build=$SECONDS
cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_TOOLCHAIN_FILE="$root/toolchains/$triplet.cmake" \
  "-DCMAKE_CROSSCOMPILING_EMULATOR=$qemu_bin;-L;/usr/$triplet" \
  -DPKG_CONFIG_EXECUTABLE="/usr/bin/$triplet-pkg-config" \
  -DBUILD_TESTING=ON \
  -DMETERD_PROTOCOL_ONLY=OFF \
  "$@"
if [ ${#targets[@]} -gt 0 ]; then
  cmake --build "$build" -j "$jobs" --target "${targets[@]}"
else
  cmake --build "$build" -j "$jobs"
fi
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

# ------------------------------------------------------------- the package
if [ $package = 1 ]; then
  t_pkg=$SECONDS
  # The generated CPack config sets DEB_HOST_ARCH=$debarch for
  # dpkg-shlibdeps, which then resolves the binaries' libraries in
  # /usr/lib/$triplet to the :$debarch packages installed above.
  (cd "$build" && cpack -G DEB -B "$build/package")
  deb=$(ls -t "$build"/package/meterd_*_"$debarch".deb | head -1)
  log "package: $deb ($(stat -c %s "$deb") bytes) in $((SECONDS - t_pkg)) s"
fi

# --------------------------------------------------------------- 4. tests
if [ ${#targets[@]} -gt 0 ]; then
  log "tests not run: only ${targets[*]} built (--targets)"
  log "total $((SECONDS - t_start)) s"
  exit 0
fi
# A test in none of the tiers is neither run here nor knowingly left out: say so.
mapfile -t unclassified < <(comm -23 \
  <(ctest --test-dir "$build" -N | sed -nE 's/^ *Test +#[0-9]+: +//p' | sort) \
  <(ctest --test-dir "$build" -N -L '^(unit|component|system|bench|tools|fuzz)$' | sed -nE 's/^ *Test +#[0-9]+: +//p' | sort))
[ ${#unclassified[@]} -eq 0 ] ||
  log "WARNING: not run under qemu, no unit/component/system label: ${unclassified[*]}" >&2
t_test=$SECONDS
# Tests labelled no-qemu are left out: they pass natively but not under
# qemu-user (see docs/cross-build.md for which and why).
ctest --test-dir "$build" -L "$labels" -LE '^no-qemu$' --output-on-failure --no-tests=error \
  -j "$jobs" | tee "$build/cross-ctest.log"
log "tests (-L '$labels') under $qemu took $((SECONDS - t_test)) s: $(grep -E 'tests passed' "$build/cross-ctest.log" | tail -1)"
log "total $((SECONDS - t_start)) s"
