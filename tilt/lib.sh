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
