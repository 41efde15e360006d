# bash completion for meterctl (docs/meterctl.md "Completion").
# Installed to share/bash-completion/completions/meterctl; or: source meterctl.bash
# Self-contained: needs no bash-completion helpers. Meter ids come from the running daemon
# (meterctl meters --json, 2 s at most); when it does not answer, no ids are offered.

_meterctl_verbs="status meters read scan backlog tail export relay timesync reload decode encode probe modbus"
_meterctl_globals="--socket --config --timeout --json --help --port --baud --parity"

# The meter ids the daemon knows, asked through the same socket options as the command line.
_meterctl_meter_ids() {
    local prog=${COMP_WORDS[0]} i opts=()
    command -v "$prog" >/dev/null 2>&1 || prog=meterctl
    for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
        case ${COMP_WORDS[i]} in
            --socket | --config) opts+=("${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}") ;;
        esac
    done
    "$prog" "${opts[@]}" --timeout 2 meters --json 2>/dev/null |
        grep -o '"id":"[^"]*"' | sed 's/^"id":"//; s/"$//'
}

_meterctl_files() {  # $1: -f or -d; $2: the word so far
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen "$1" -- "$2"))
}

_meterctl() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local verb="" i positional=0
    COMPREPLY=()

    # Values of options first: they do not depend on the verb.
    case $prev in
        --config) _meterctl_files -f "$cur"; return ;;
        --data-dir) _meterctl_files -d "$cur"; return ;;
        --socket) _meterctl_files -f "$cur"; return ;;
        --port)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "${cur:-/dev/tty}"))
            return ;;
        --meter) COMPREPLY=($(compgen -W "$(_meterctl_meter_ids)" -- "$cur")); return ;;
        --format) COMPREPLY=($(compgen -W "csv jsonl" -- "$cur")); return ;;
        --parity) COMPREPLY=($(compgen -W "none even odd" -- "$cur")); return ;;
        --baud) COMPREPLY=($(compgen -W "1200 2400 4800 9600 19200 38400 115200" -- "$cur")); return ;;
        --timeout | --bus | --quantity | --from | --to | --first | --last | --address | --di | \
            --unit | --read | --time | --password | --level | --operator | --valid-until | \
            --blocks | --seq | --command)
            return ;;
    esac

    # The verb, and how many positional words follow it before the cursor.
    for ((i = 1; i < COMP_CWORD; i++)); do
        local w=${COMP_WORDS[i]}
        if [[ -z $verb ]]; then
            case $w in
                --socket | --config | --timeout | --port | --baud | --parity) ((i++)) ;;
                -*) ;;
                *) verb=$w ;;
            esac
        else
            case $w in
                --meter | --quantity | --from | --to | --format | --data-dir | --bus | \
                    --protocol | --first | --last | --socket | --config | --timeout) ((i++)) ;;
                -*) ;;
                *) ((positional++)) ;;
            esac
        fi
    done

    if [[ -z $verb ]]; then
        COMPREPLY=($(compgen -W "$([[ $cur == -* ]] && echo "$_meterctl_globals" || echo "$_meterctl_verbs")" -- "$cur"))
        return
    fi

    local opts=""
    case $verb in
        status | backlog | reload) opts="--json" ;;
        meters) opts="--bus --offline --json" ;;
        read)
            if [[ $cur != -* && $positional -eq 0 ]]; then
                COMPREPLY=($(compgen -W "$(_meterctl_meter_ids)" -- "$cur"))
                return
            fi
            opts="--json" ;;
        scan)
            [[ $prev == --protocol ]] && { COMPREPLY=($(compgen -W "dlt645 modbus" -- "$cur")); return; }
            opts="--protocol --first --last --json" ;;
        tail) opts="--meter --quantity --json" ;;
        export) opts="--meter --from --to --format --events --data-dir --json" ;;
        relay)
            if [[ $cur != -* ]]; then
                case $positional in
                    0) COMPREPLY=($(compgen -W "$(_meterctl_meter_ids)" -- "$cur")); return ;;
                    1) COMPREPLY=($(compgen -W "trip close" -- "$cur")); return ;;
                esac
            fi
            opts="--json" ;;
        timesync) opts="--json" ;;
        decode)
            [[ $prev == --protocol ]] && { COMPREPLY=($(compgen -W "dlt645-2007 dlt645-1997" -- "$cur")); return; }
            opts="--json --protocol" ;;
        encode)
            if [[ $positional -eq 0 && $cur != -* ]]; then
                COMPREPLY=($(compgen -W "read read-follow-up read-address timesync relay" -- "$cur"))
                return
            fi
            opts="--address --di --protocol --blocks --from --seq --time --command --password --level --operator --valid-until --preamble" ;;
        probe) opts="--address --di --json" ;;
        modbus) opts="--unit --read --json" ;;
    esac
    COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
}

complete -F _meterctl meterctl
