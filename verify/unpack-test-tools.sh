#!/usr/bin/env bash
# Unpack the real Tilt, Loki and Helm that CI uses as test tools (../shared/bin, next to
# the project root) into a scratch folder outside the repository, and print the
# `export` lines that point the checks at them:
#   eval "$(verify/unpack-test-tools.sh)"
# Contributors with tilt, loki or helm on PATH do not need this: the checks look at
# KINDLING_TILT / KINDLING_LOKI / KINDLING_HELM first, then PATH. Idempotent (checks sha256).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${KINDLING_SHARED:-$ROOT/../shared}"
DEST="${KINDLING_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kindling/tools}"
mkdir -p "$DEST"

# sha256 of the unpacked binaries, from ../shared/bin/README.md.
declare -A SHA=(
  [tilt]=3db0d80b010790f57e0ae4c5669d0fe93e6b6f42fb51e017c1d92ad3c7a6ef0a
  [loki]=649a1ba21d1c1255bee40b1ae2346f7a5412f0081c50eea3fa1ff29f6b998cdc
  [helm]=605ef976539ca6423b76e4c013f7bc181f9e0e55f4d6cb5d39abff60bf94d7a0
)
for tool in tilt loki helm; do
  src="$SHARED/bin/$tool.xz"
  bin="$DEST/$tool"
  if [[ -x "$bin" ]] && [[ "$(sha256sum "$bin" | cut -d' ' -f1)" == "${SHA[$tool]}" ]]; then
    :
  elif [[ -f "$src" ]]; then
    printf '==> unpacking %s into %s\n' "$src" "$DEST" >&2
    xz -dc "$src" >"$bin.tmp"
    chmod +x "$bin.tmp"
    got="$(sha256sum "$bin.tmp" | cut -d' ' -f1)"
    if [[ "$got" != "${SHA[$tool]}" ]]; then
      echo "$src unpacks to sha256 $got, expected ${SHA[$tool]}" >&2
      rm -f "$bin.tmp"
      exit 1
    fi
    mv "$bin.tmp" "$bin"
  else
    echo "no $src: cannot provide $tool" >&2
    exit 1
  fi
  upper="$(tr '[:lower:]' '[:upper:]' <<<"$tool")"
  printf 'export KINDLING_%s=%q\n' "$upper" "$bin"
done
