#!/usr/bin/env bash
# cargo's RUSTC_WORKSPACE_WRAPPER in tilt/build-binary.sh's host mode:
#
#   tilt/rustc-wrapper.sh RUSTC ARGS...      (cargo runs it, never a person)
#
# Runs rustc exactly as cargo asked. For the dev binary's crate
# (kindling_devbin) it first writes that run, with cargo's environment, to
# $KINDLING_REPLAY as a script: after an edit under src/ alone, build-binary.sh
# runs the script instead of cargo, saving cargo's ~0.27 s of start-up on each
# edit (docs/dev-loop.md, "Measured"). The script refuses (exit 3) once the
# toolchain's rustc is newer than itself; build-binary.sh decides when else it
# is stale.
set -euo pipefail

if [[ -n "${KINDLING_REPLAY:-}" && " $* " == *" --crate-name kindling_devbin "* ]]; then
  args=("$@")
  out_dir="" extra=""
  for ((i = 1; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
      --out-dir) out_dir="${args[i + 1]}" ;;
      extra-filename=*) extra="${args[i]#extra-filename=}" ;;
    esac
  done
  {
    echo "#!/usr/bin/env bash"
    echo "# Written by tilt/rustc-wrapper.sh: cargo's last rustc run for kindling-devbin."
    echo "set -euo pipefail"
    # shellcheck disable=SC2016 # ${BASH_SOURCE[0]} is for the script written
    printf '[[ ! %q -nt "${BASH_SOURCE[0]}" ]] || exit 3\n' "$(command -v "$1")"
    printf 'cd %q\n' "$PWD"
    # cargo's variables for the crate (CARGO_PKG_VERSION and the like) and
    # its library path, not its jobserver, whose file descriptors exist only
    # inside cargo.
    for name in $(compgen -e); do
      if [[ ("$name" == CARGO* && "$name" != CARGO_MAKEFLAGS) || "$name" == LD_LIBRARY_PATH ]]; then
        printf 'export %s=%q\n' "$name" "${!name}"
      fi
    done
    # rustc in its own human format, not the JSON cargo asks for (cargo
    # renders that JSON; the replay has no cargo): its messages then need no
    # decoding, and their colour is the caller's (build-binary.sh).
    for arg in "$@"; do
      case "$arg" in
        --error-format=* | --json=* | --color=*) ;;
        *) printf '%q ' "$arg" ;;
      esac
    done
    # shellcheck disable=SC2016 # expanded when the replay runs
    echo '--color="${KINDLING_REPLAY_COLOR:-never}"'
    # What cargo does after rustc: the binary under its plain name.
    printf 'ln -f %q %q\n' "$out_dir/kindling_devbin$extra" "$out_dir/../kindling-devbin"
  } >"$KINDLING_REPLAY.new"
  mv -f "$KINDLING_REPLAY.new" "$KINDLING_REPLAY"
fi
exec "$@"
