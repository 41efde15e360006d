# bash completion for meterctl (installed as
# /usr/share/bash-completion/completions/meterctl). Verbs and options as in
# meterctl(1) and docs/control.md.
_meterctl() {
  local cur prev verb i
  COMPREPLY=()
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  local verbs="status meters read scan backlog tail export relay timesync reload probe modbus decode encode"
  local globals="--socket --config --json --port --baud --parity --help"

  # Values of options.
  case $prev in
    --socket|--data-dir)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --config)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -f -X '!*.toml' -- "$cur") $(compgen -d -- "$cur")); return ;;
    --port)
      COMPREPLY=($(compgen -W "$(ls /dev/ttyS* /dev/ttyUSB* /dev/ttyACM* /dev/ttyAMA* 2>/dev/null)" -- "$cur")); return ;;
    --baud)
      COMPREPLY=($(compgen -W "300 600 1200 2400 4800 9600 19200 38400 57600 115200" -- "$cur")); return ;;
    --parity)
      COMPREPLY=($(compgen -W "none even odd" -- "$cur")); return ;;
    --format)
      COMPREPLY=($(compgen -W "csv jsonl" -- "$cur")); return ;;
    --protocol)
      COMPREPLY=($(compgen -W "dlt645-2007 dlt645-1997 modbus" -- "$cur")); return ;;
  esac

  # The verb: the first word that is not an option or an option's value.
  verb=
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --socket|--config|--port|--baud|--parity) ((i++)) ;;
      -*) ;;
      *) verb=${COMP_WORDS[i]}; break ;;
    esac
  done

  if [ -z "$verb" ]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "$globals" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
    fi
    return
  fi

  local opts="--json --help"
  case $verb in
    meters) opts+=" --bus --offline" ;;
    tail) opts+=" --meter --quantity" ;;
    export) opts+=" --meter --from --to --format --data-dir" ;;
    relay)
      if [[ $cur != -* ]] && [ "$COMP_CWORD" -ge $((i + 2)) ]; then
        COMPREPLY=($(compgen -W "trip close" -- "$cur")); return
      fi ;;
    probe) opts+=" --address --di" ;;
    modbus) opts+=" --unit --read" ;;
    decode) opts+=" --protocol" ;;
    encode)
      if [[ $cur != -* ]] && [ "$COMP_CWORD" -eq $((i + 1)) ]; then
        COMPREPLY=($(compgen -W "read read-follow-up read-address timesync relay" -- "$cur")); return
      fi
      opts+=" --address --di --protocol --preamble --blocks --from --seq --time --command --password --level --operator --valid-until" ;;
  esac
  [[ $cur == -* ]] && COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _meterctl meterctl
