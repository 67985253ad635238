#!/usr/bin/env bash
# Print a pinned third-party file, downloading it only the first time.
#
#   tilt/cached-download.sh URL SHA256 NAME
#
# The Tiltfile runs this on every load (each Tiltfile or dashboard edit): the
# first run downloads URL into the cache and every later run reads the cache,
# so `tilt up` works offline once it has worked online. The file is verified
# against SHA256 both when downloaded and when read back; a mismatch stops the
# Tiltfile with the reason instead of deploying a file nobody reviewed.
# Cache: $KINDLING_CACHE_DIR, default ${XDG_CACHE_HOME:-~/.cache}/kindling.
set -euo pipefail

URL="${1:?usage: cached-download.sh URL SHA256 NAME}"
WANT="${2:?usage: cached-download.sh URL SHA256 NAME}"
NAME="${3:?usage: cached-download.sh URL SHA256 NAME}"
# shellcheck source=tilt/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CACHE="${KINDLING_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kindling}/downloads"
FILE="$CACHE/$NAME"

if [[ -f "$FILE" ]]; then
  got="$(sha256 <"$FILE")"
  if [[ "$got" != "$WANT" ]]; then
    echo "$FILE has sha256 $got, expected $WANT (pinned in the Tiltfile)." >&2
    echo "The cached copy of $URL was changed or is damaged; delete it and run again to download it anew." >&2
    exit 1
  fi
  cat "$FILE"
  exit 0
fi

mkdir -p "$CACHE"
tmp="$(mktemp "$FILE.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
echo "downloading $URL into $CACHE (once; later loads read the cache)" >&2
if ! curl -fsSL --retry 3 --connect-timeout 10 -o "$tmp" "$URL"; then
  echo "could not download $URL: the first tilt up needs the network once, later ones read $FILE" >&2
  exit 1
fi
got="$(sha256 <"$tmp")"
if [[ "$got" != "$WANT" ]]; then
  echo "downloaded $URL has sha256 $got, expected $WANT (pinned in the Tiltfile): not using it." >&2
  exit 1
fi
mv "$tmp" "$FILE"
cat "$FILE"
