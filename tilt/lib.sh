# Helpers shared by the scripts in tilt/ (sourced, never run).
# shellcheck shell=bash

# sha256 of stdin as bare hex. macOS before 14 has no sha256sum, only Perl's
# shasum; both print "HASH  -".
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 | cut -d' ' -f1
  else
    echo "neither sha256sum nor shasum is installed: cannot verify checksums" >&2
    return 1
  fi
}

# Whether cargo would show colour: CARGO_TERM_COLOR, else a terminal on stderr.
# The replayed rustc is given the same (`--color`), so its messages look like cargo's.
rustc_colour() {
  local colour="${CARGO_TERM_COLOR:-auto}"
  if [[ "$colour" == auto ]]; then
    colour=never
    [[ ! -t 2 ]] || colour=always
  fi
  echo "$colour"
}

# The environment variables that compiled crates read, from cargo's output
# directory (…/debug): `env!` and `option_env!` (rustc's `# env-dep:` lines in
# each crate's dep-info) and build scripts' `rerun-if-env-changed`. cargo
# recompiles a crate when one of them changes. Older builds' files count too:
# a name too many costs a cargo run, a name missing a stale binary.
env_inputs() {
  local dir="$1" name
  { grep -rhs --include='*.d' --include=output -e '^# env-dep:' -e '^cargo::\{0,1\}rerun-if-env-changed=' \
      "$dir/deps" "$dir/build" || [[ $? == 1 ]]; } |
    sed -e 's/^# env-dep:\([^=]*\).*/\1/' -e 's/^cargo::\{0,1\}rerun-if-env-changed=//' | sort -u |
    while IFS= read -r name; do
      # A name the shell cannot hold cannot be set through it either.
      if [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        printf '%s\n' "$name"
      fi
    done
}

# Each name on stdin (or each line of an earlier output: the name before the
# first "=" or space) with its value now, one line each, "NAME unset" for a
# variable that is not set: equal output, equal inputs.
env_values() {
  local line name
  while IFS= read -r line; do
    name="${line%%[= ]*}"
    if [[ -v "$name" ]]; then
      printf '%s=%q\n' "$name" "${!name}"
    else
      printf '%s unset\n' "$name"
    fi
  done
}

# Milliseconds since the epoch, for the dev loop's timings: bash 5's clock
# (no fork), else GNU date, else whole seconds (macOS's bash 3.2 and BSD date,
# where only docker mode's build start is taken).
epoch_ms() {
  local t
  if [[ -n "${EPOCHREALTIME:-}" ]]; then
    t="${EPOCHREALTIME//[.,]/}"
    echo "${t:0:${#t}-3}"
  elif t="$(date +%s%3N)" && [[ "$t" =~ ^[0-9]+$ ]]; then
    echo "$t"
  else
    echo "$(date +%s)000"
  fi
}
