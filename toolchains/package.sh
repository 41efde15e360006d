#!/bin/bash
# The meterd .deb for one architecture (docs/install.md, "Building the package").
#
#   toolchains/package.sh amd64|arm64|armhf [extra cmake arguments...]
#
# amd64: a native build in build-amd64/ (no tests), then cpack -G DEB.
# arm64, armhf: toolchains/cross-build.sh with --targets (only what the package
# carries) and --package, in build-aarch64/ or build-armhf/ (run as root or
# with sudo: it installs the target's -dev packages once).
# Either way the package lands in build-<dir>/package/meterd_<version>_<arch>.deb
# and the script prints its size and the sizes of the stripped programs in it.
set -euo pipefail

usage() { echo "usage: $0 amd64|arm64|armhf [cmake args...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
targets="meterd meterctl meterd_package_files"
case "$1" in
  amd64|x86_64) debarch=amd64 build="$root/build-amd64" ;;
  arm64|aarch64) debarch=arm64 build="$root/build-aarch64" ;;
  armhf|arm) debarch=armhf build="$root/build-armhf" ;;
  *) usage ;;
esac
shift
log() { echo "package[$debarch]: $*"; }
t0=$SECONDS

if [ $debarch = amd64 ]; then
  [ "$(dpkg --print-architecture)" = amd64 ] || { log "not an amd64 machine: cross-build it" >&2; exit 1; }
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF "$@"
  # shellcheck disable=SC2086
  cmake --build "$build" -j "${METERD_CROSS_JOBS:-2}" --target $targets
  (cd "$build" && cpack -G DEB -B "$build/package")
else
  "$root/toolchains/cross-build.sh" "$debarch" --targets "$targets" --package "$@"
fi

deb=$(ls -t "$build"/package/meterd_*_"$debarch".deb | head -1)
x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$deb" "$x"
log "$deb"
log "  .deb $(stat -c %s "$deb") bytes; Depends: $(dpkg-deb -f "$deb" Depends)"
for b in meterd meterctl; do
  f="$x/usr/bin/$b"
  log "  $b $(stat -c %s "$f") bytes stripped ($(readelf -h "$f" | sed -n 's/^ *Machine: *//p'))"
done
log "done in $((SECONDS - t0)) s"
