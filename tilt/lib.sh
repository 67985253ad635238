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
