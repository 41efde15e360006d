#!/usr/bin/env bash
# The bash completion (firmware/meterctl/meterctl.bash): COMPREPLY for a few command lines.
# A stub meterctl on PATH plays the daemon for the meter ids and records how it was asked.
# Usage: test_completion.sh path/to/meterctl.bash
set -u
completion=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/data/sub"
touch "$tmp/meterd.toml"
cat >"$tmp/bin/meterctl" <<STUB
#!/usr/bin/env bash
echo "\$*" >>"$tmp/asked"
case " \$* " in
  *" meters --json "*) echo '{"meters":[{"id":"m1","bus":"rs485-1","latest":[{"quantity":"q"}]},{"id":"m20","bus":"rs485-1"},{"id":"x7","bus":"tcp"}]}' ;;
esac
STUB
chmod +x "$tmp/bin/meterctl"
PATH="$tmp/bin:$PATH"
# shellcheck source=/dev/null
source "$completion"

failures=0
# check "expected words (sorted, space separated)" word0 word1 ... (the last word is the cursor's)
check() {
    local expected=$1
    shift
    COMP_WORDS=("$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _meterctl
    local got
    got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//')
    if [[ $got != "$expected" ]]; then
        echo "FAIL: '${COMP_WORDS[*]}': expected '$expected', got '$got'"
        failures=$((failures + 1))
    else
        echo "ok: '${COMP_WORDS[*]}' -> '$got'"
    fi
}

check "read relay reload" meterctl re
check "scan status" meterctl s
check "--baud --config --help --json --parity --port --socket --timeout" meterctl --
check "--format --from" meterctl export --f
check "--data-dir --events --format --from --help --json --meter --to" meterctl export --meter m1 --
check "csv jsonl" meterctl export --format ""
check "m1 m20" meterctl read m
check "m1 m20 x7" meterctl --socket /tmp/s.sock relay ""
check "close trip" meterctl relay m1 ""
check "--help --json" meterctl relay m1 trip ""
check "m1 m20" meterctl tail --meter m
check "--help --json --meter --quantity" meterctl tail --json --
check "dlt645 modbus" meterctl scan rs485-1 --protocol ""
check "$tmp/data/sub" meterctl export --data-dir "$tmp/data/"
check "$tmp/meterd.toml" meterctl --config "$tmp/meterd."
check "read read-address read-follow-up" meterctl encode read
# --port offers the serial devices under /dev.
got_port=$(COMP_WORDS=(meterctl --port /dev/tty); COMP_CWORD=2; _meterctl; printf '%s\n' "${COMPREPLY[@]}" | head -1)
if [[ -n $(compgen -f -- /dev/tty) && $got_port != /dev/tty* ]]; then
    echo "FAIL: --port /dev/tty offered '$got_port'"
    failures=$((failures + 1))
fi
# The socket option on the line reached the daemon question.
if ! grep -q -- "--socket /tmp/s.sock --timeout 2 meters --json" "$tmp/asked"; then
    echo "FAIL: meter ids not asked through the command line's --socket:"
    cat "$tmp/asked"
    failures=$((failures + 1))
fi
# No daemon: no ids, no noise.
cat >"$tmp/bin/meterctl" <<'STUB'
#!/usr/bin/env bash
echo "meterctl: cannot reach meterd at /run/meterd/meterd.sock: No such file or directory" >&2
exit 3
STUB
check "" meterctl read ""

if [[ $failures -ne 0 ]]; then
    echo "$failures completion check(s) failed"
    exit 1
fi
echo "all completion checks passed"
