#!/usr/bin/env bash
# Installs every Debian package that meterd's build, tests and demo need.
# Idempotent: when everything is present it only runs dpkg-query and exits.
# Usage (as root, or with sudo available): toolchains/install-deps.sh
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config clang-format ccache
  # libraries (docs/design.md "Dependencies")
  libboost-dev libmodbus-dev libmosquitto-dev libsqlite3-dev doctest-dev
  libtomlplusplus-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libssl-dev
  # test peers and servers
  mosquitto mosquitto-clients mbpoll python3-pymodbus sqlite3 util-linux openssl tmux faketime
  # fuzzing and sanitizers (clang's libFuzzer runtime)
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
# An index can be briefly out of sync with its mirror: retry a few times.
for attempt in 1 2 3; do
  # apt-get update exits 100 if any one index (e.g. a foreign architecture
  # that toolchains/cross-build.sh added) is out of sync: let the install decide.
  "${sudo_cmd[@]}" apt-get update -q || echo "install-deps: apt-get update incomplete" >&2
  if "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    exit 0
  fi
  echo "install-deps: attempt $attempt failed, retrying" >&2
  sleep $((attempt * 5))
done
echo "install-deps: could not install ${missing[*]}" >&2
exit 1
