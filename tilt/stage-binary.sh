#!/usr/bin/env bash
# Stage a dev build of kindling where the Tiltfile watches it. Called by
# tilt/build-binary.sh, on the host or inside its Rust container (so it needs
# only bash, coreutils and the toolchain; the container has no repository
# beyond /src).
#
#   tilt/stage-binary.sh BUILD_DIR OUT LINK
#
# BUILD_DIR   cargo's output directory (…/debug), holding kindling-devbin
# OUT         .dev-bin/ (the binary is staged as OUT/kindling)
# LINK        dynamic: the binary needs BUILD_DIR/libkindling_dylib.so (every
#             dependency) and the toolchain's libstd-*.so, staged in OUT/lib/
#             (the dev image's /app/lib); static: it needs neither.
#
# Before anything is staged, a dynamic binary is loaded once with every symbol
# bound (LD_BIND_NOW): a binary that would fail in the pod fails here instead.
# Each file is replaced atomically, and only when it changed: the binary
# first, then the libraries, which change only with the dependencies or the
# toolchain. The Tiltfile's fall_back_on turns a library change into an image
# rebuild, which must then copy the new binary, hence the order.
#
# With KINDLING_BUILD_STARTED_MS (Unix ms, set by tilt/build-binary.sh when
# the build began), a changed binary comes with OUT/dev-reload.env: its
# build id (CRC of the binary), the compile time (build start to staging
# start) and the staging time. Tilt syncs it beside the binary and the
# restarted service logs it as its `dev reload` line (core/src/dev_reload.rs).
set -euo pipefail

BUILD="$1" OUT="$2" LINK="$3"
mkdir -p "$OUT/lib"

# shellcheck source=tilt/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STAGE_STARTED_MS="$(epoch_ms)"

# Written before the binary: when Tilt sees the binary change, the figures
# that go with it are already in place.
hand_over_figures() {
  [[ -n "${KINDLING_BUILD_STARTED_MS:-}" ]] || return 0
  local crc
  read -r crc _ < <(cksum "$BUILD/kindling-devbin")
  printf '%s\n' "# this build's figures (tilt/stage-binary.sh), for core/src/dev_reload.rs" \
    "build_id=$(printf '%08x' "$crc")" \
    "build_started_unix_ms=$KINDLING_BUILD_STARTED_MS" \
    "compile_ms=$((STAGE_STARTED_MS - KINDLING_BUILD_STARTED_MS))" \
    "stage_ms=$(($(epoch_ms) - STAGE_STARTED_MS))" >"$OUT/dev-reload.env.new"
  mv -f "$OUT/dev-reload.env.new" "$OUT/dev-reload.env"
}

# Size and modification time tell whether cargo relinked a library: comparing
# 80 MB byte by byte on every edit would cost more than the link saves.
same_file() {
  [[ "$(stat -c %s.%Y "$1")" == "$(stat -c %s.%Y "$2" 2>/dev/null)" ]]
}

libs=()
if [[ "$LINK" == dynamic ]]; then
  # While the dependencies' library is the one staged, both libraries are:
  # a new toolchain rebuilds every crate, so libstd changes only with it.
  # Only otherwise is rustc asked where libstd is (~25 ms on each edit).
  staged_std=("$OUT"/lib/libstd-*.so)
  if same_file "$BUILD/libkindling_dylib.so" "$OUT/lib/libkindling_dylib.so" && [[ -e "${staged_std[0]}" ]]; then
    libs=("$OUT/lib/libkindling_dylib.so" "${staged_std[@]}")
  else
    libs=("$BUILD/libkindling_dylib.so" "$(rustc --print target-libdir)"/libstd-*.so)
  fi
  if ! out="$(LD_BIND_NOW=1 LD_LIBRARY_PATH="${libs[0]%/*}:${libs[1]%/*}" "$BUILD/kindling-devbin" --version 2>&1)"; then
    echo "the dynamically linked dev binary does not load: $out" >&2
    echo "build it statically instead: KINDLING_DEV_LINK=static (tilt up, or tilt/build-binary.sh)" >&2
    exit 1
  fi
fi

if cmp -s "$BUILD/kindling-devbin" "$OUT/kindling"; then
  echo "binary unchanged"
else
  hand_over_figures
  cp "$BUILD/kindling-devbin" "$OUT/kindling.new"
  mv -f "$OUT/kindling.new" "$OUT/kindling"
  echo "staged $OUT/kindling ($(du -h "$OUT/kindling" | cut -f1), $LINK linking)"
fi

declare -A linked=()
for lib in "${libs[@]}"; do
  name="${lib##*/}"
  linked[$name]=1
  if [[ "$lib" != "$OUT/lib/$name" ]] && ! same_file "$lib" "$OUT/lib/$name"; then
    cp -p "$lib" "$OUT/lib/$name.new"
    mv -f "$OUT/lib/$name.new" "$OUT/lib/$name"
    echo "staged $OUT/lib/$name: the dev image is rebuilt"
  fi
done
for staged in "$OUT"/lib/*; do
  if [[ -e "$staged" && -z "${linked[${staged##*/}]:-}" ]]; then
    rm -f "$staged"
    echo "removed $staged (no longer linked)"
  fi
done
