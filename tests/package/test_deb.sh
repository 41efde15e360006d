#!/bin/bash
# The amd64 .deb, installed for real: cpack -G DEB in the build directory,
# dpkg -i, checks of what landed where (programs, conffile, unit, man pages,
# completion, the meterd user in dialout), a reinstall over an edited config,
# then dpkg --purge and checks that nothing is left.
#
#   tests/package/test_deb.sh BUILD_DIR
#
# Exit 77 (ctest: skipped) when it cannot run without harm: not root and no
# passwordless sudo, no dpkg, a meterd package or a meterd user already on
# the machine, or a dependency of the package not installed (dpkg -i would
# leave it half-configured). The machine is left as it was: the package is
# purged on every way out (trap), and a lock keeps two runs (two worktrees'
# ctest) from installing at once.
#
# Catches: a package that installs to /usr/local or leaves the config at
# /usr/etc (prefix taken from the build, not /usr), a unit whose ExecStart
# names a path that is not installed, a config that meterd refuses, a
# conffile not declared (an upgrade would overwrite the technician's config),
# unstripped binaries, metersim or tests in the package, Depends without the
# shared libraries (dpkg-shlibdeps not run) or without adduser, a postinst
# that forgets dialout, and a purge that leaves the user, the buffer or
# /etc/meterd behind.
set -uo pipefail

build=${1:?usage: test_deb.sh BUILD_DIR}
build=$(cd "$build" && pwd)
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
failures=0

command -v dpkg >/dev/null && command -v dpkg-deb >/dev/null || skip "dpkg not found"
command -v cpack >/dev/null || skip "cpack not found"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  skip "needs root or passwordless sudo (it runs dpkg -i and dpkg --purge)"
fi
R() { "${as_root[@]}" "$@"; }

# One run at a time on this machine.
exec 9>/tmp/meterd-test-deb.lock
flock -w 300 9 || skip "another test_deb.sh holds /tmp/meterd-test-deb.lock"

status=$(dpkg-query -W -f='${Status}' meterd 2>/dev/null || true)
[ -z "$status" ] || [ "$status" = "unknown ok not-installed" ] ||
  skip "a meterd package is already on this machine ($status): not touching it"
getent passwd meterd >/dev/null && skip "a user meterd already exists: purging would remove it"
getent group meterd >/dev/null && skip "a group meterd already exists: purging would remove it"
[ -e /etc/meterd ] && skip "/etc/meterd already exists"
[ -e /var/lib/meterd ] && skip "/var/lib/meterd already exists"

work=$(mktemp -d "$build/test-deb.XXXXXX")
installed=0
cleanup() {
  if [ $installed = 1 ]; then
    R dpkg --purge meterd >/dev/null 2>&1 ||
      echo "WARNING: dpkg --purge meterd failed during cleanup: remove it by hand" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ the package
t0=$SECONDS
if ! (cd "$build" && cpack -G DEB -B "$work" >"$work/cpack.log" 2>&1); then
  cat "$work/cpack.log" >&2
  echo "FAIL: cpack -G DEB (are meterd, meterctl and meterd_package_files built?)" >&2
  exit 1
fi
deb=$(ls "$work"/meterd_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { cat "$work/cpack.log" >&2; echo "FAIL: no meterd_*.deb in $work" >&2; exit 1; }
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes) in $((SECONDS - t0)) s"

version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg-deb -f "$deb" Architecture)
depends=$(dpkg-deb -f "$deb" Depends)
echo "Version: $version  Architecture: $arch"
echo "Depends: $depends"
[ "$arch" = "$(dpkg --print-architecture)" ] || fail "Architecture $arch, machine is $(dpkg --print-architecture)"
[ "$(dpkg-deb -f "$deb" Package)" = meterd ] || fail "Package is not meterd"
for dep in adduser libc6 libsqlite3-0 libmodbus5 libmosquitto1; do
  grep -qE "(^|, )$dep( |,|$)" <<<"$depends" || fail "Depends lacks $dep: $depends"
done

contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
for f in /usr/bin/meterd /usr/bin/meterctl /etc/meterd/meterd.toml \
         /usr/lib/systemd/system/meterd.service /usr/share/man/man8/meterd.8.gz \
         /usr/share/man/man1/meterctl.1.gz /usr/share/bash-completion/completions/meterctl \
         /usr/share/doc/meterd/meterd.toml.example; do
  grep -qxF "$f" <<<"$contents" || fail "$f not in the package"
done
grep -E 'metersim|test_|bench|/usr/local|/usr/etc|\.a$|/include/' <<<"$contents" &&
  fail "the package carries something it should not (above)"
dpkg-deb --ctrl-tarfile "$deb" | tar -tf - | grep -qx './conffiles' || fail "no conffiles in the control archive"

# Every dependency must already be here, or dpkg -i would leave a broken package.
missing=()
IFS=',' read -ra deps <<<"$depends"
for d in "${deps[@]}"; do
  name=$(sed -E 's/^ *//; s/[ (|].*//; s/:.*//' <<<"$d")
  [ -n "$name" ] || continue
  dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'install ok installed' || missing+=("$name")
done
[ ${#missing[@]} -eq 0 ] || skip "dependencies not installed here: ${missing[*]}"

# -------------------------------------------------------------------- install
installed=1
if ! R dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1; then
  cat "$work/dpkg-i.log" >&2
  echo "FAIL: dpkg -i" >&2
  exit 1
fi
[ "$(dpkg-query -W -f='${Status}' meterd)" = "install ok installed" ] || fail "not installed after dpkg -i"

out=$(/usr/bin/meterd --version) || fail "meterd --version exited $?"
[ "$out" = "meterd ${version%%-*}" ] || fail "meterd --version says '$out', the package is $version"
out=$(/usr/bin/meterd --check-config /etc/meterd/meterd.toml 2>&1) ||
  fail "meterd --check-config /etc/meterd/meterd.toml: $out"
echo "$out"
/usr/bin/meterctl --help >/dev/null || fail "meterctl --help"

conffiles=$(cat /var/lib/dpkg/info/meterd.conffiles 2>/dev/null || dpkg-query --control-show meterd conffiles)
grep -qxF /etc/meterd/meterd.toml <<<"$conffiles" || fail "/etc/meterd/meterd.toml is not a conffile"

unit=/usr/lib/systemd/system/meterd.service
grep -qx 'ExecStart=/usr/bin/meterd --config /etc/meterd/meterd.toml' "$unit" ||
  fail "ExecStart in $unit: $(grep ^ExecStart "$unit")"
grep -qx 'Type=notify' "$unit" || fail "$unit is not Type=notify"
if command -v systemd-analyze >/dev/null; then
  # Offline check of the installed unit: the program and the man pages it names exist.
  out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || { echo "$out"; fail "systemd-analyze verify complained"; }
fi
for page in 8/meterd.8 1/meterctl.1; do
  gzip -t "/usr/share/man/man$page.gz" || fail "man$page.gz is not gzip"
  zcat "/usr/share/man/man$page.gz" | grep -q '^\.TH ' || fail "man$page has no .TH"
done

for b in /usr/bin/meterd /usr/bin/meterctl; do
  readelf -S "$b" | grep -qE '\.(symtab|debug_info)' && fail "$b is not stripped"
done

# The completion completes verbs.
got=$(bash -c 'source /usr/share/bash-completion/completions/meterctl
               COMP_WORDS=(meterctl sta); COMP_CWORD=1; _meterctl; echo "${COMPREPLY[*]}"')
[ "$got" = status ] || fail "completion of 'meterctl sta': '$got'"

getent passwd meterd >/dev/null || fail "no user meterd"
getent group meterd >/dev/null || fail "no group meterd"
id -nG meterd | tr ' ' '\n' | grep -qx dialout || fail "meterd is not in dialout: $(id -nG meterd)"
case $(getent passwd meterd | cut -d: -f7) in
  */nologin|/bin/false) ;;
  *) fail "user meterd has a login shell: $(getent passwd meterd)" ;;
esac

# An edited config survives a reinstall (dpkg keeps a modified conffile).
R sh -c 'printf "\n# edited on site\n" >> /etc/meterd/meterd.toml'
if ! R dpkg -i "$deb" >"$work/dpkg-i2.log" 2>&1; then
  cat "$work/dpkg-i2.log" >&2
  fail "dpkg -i over the installed package"
fi
grep -qx '# edited on site' /etc/meterd/meterd.toml || fail "the reinstall overwrote the edited config"

# What a running meterd leaves: the buffer in its state directory.
R mkdir -p /var/lib/meterd
R sh -c 'echo x > /var/lib/meterd/buffer.db'

# ---------------------------------------------------------------------- purge
if ! R dpkg --purge meterd >"$work/purge.log" 2>&1; then
  cat "$work/purge.log" >&2
  fail "dpkg --purge meterd"
fi
installed=0
status=$(dpkg-query -W -f='${Status}' meterd 2>/dev/null || true)
[ -z "$status" ] || [ "$status" = "unknown ok not-installed" ] || fail "after purge: $status"
for f in /usr/bin/meterd /usr/bin/meterctl /etc/meterd /var/lib/meterd "$unit" \
         /usr/share/man/man8/meterd.8.gz /usr/share/man/man1/meterctl.1.gz \
         /usr/share/bash-completion/completions/meterctl /usr/share/doc/meterd \
         /var/lib/dpkg/info/meterd.conffiles; do
  [ ! -e "$f" ] || fail "$f is left after purge"
done
getent passwd meterd >/dev/null && fail "user meterd is left after purge"
getent group meterd >/dev/null && fail "group meterd is left after purge"

echo "test_deb: $failures failures, $((SECONDS - t0)) s"
[ $failures -eq 0 ]
