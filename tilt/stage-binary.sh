#!/usr/bin/env bash
# Stage a dev build of kindling where the Tiltfile watches it. Called by
# tilt/build-binary.sh, on the host or inside its Rust container (so it needs
# only bash and coreutils; the container has no repository beyond /src).
#
#   tilt/stage-binary.sh BUILD_DIR STD_LIBDIR OUT LINK
#
# BUILD_DIR   cargo's output directory (…/debug)
# STD_LIBDIR  `rustc --print target-libdir` of the toolchain that built it
# OUT         .dev-bin/
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
set -euo pipefail

BUILD="$1" STD="$2" OUT="$3" LINK="$4"
mkdir -p "$OUT/lib"
libs=()
if [[ "$LINK" == dynamic ]]; then
  libs=("$BUILD/libkindling_dylib.so" "$STD"/libstd-*.so)
  if ! out="$(LD_BIND_NOW=1 LD_LIBRARY_PATH="$BUILD:$STD" "$BUILD/kindling-devbin" --version 2>&1)"; then
    echo "the dynamically linked dev binary does not load: $out" >&2
    echo "build it statically instead: KINDLING_DEV_LINK=static (tilt up, or tilt/build-binary.sh)" >&2
    exit 1
  fi
fi

if cmp -s "$BUILD/kindling-devbin" "$OUT/kindling"; then
  echo "binary unchanged"
else
  cp "$BUILD/kindling-devbin" "$OUT/kindling.new"
  mv -f "$OUT/kindling.new" "$OUT/kindling"
  echo "staged $OUT/kindling ($(du -h "$OUT/kindling" | cut -f1), $LINK linking)"
fi

# Size and modification time tell whether cargo relinked a library: comparing
# 80 MB byte by byte on every edit would cost more than the link saves.
declare -A linked=()
for lib in "${libs[@]}"; do
  name="${lib##*/}"
  linked[$name]=1
  if [[ "$(stat -c %s.%Y "$lib")" != "$(stat -c %s.%Y "$OUT/lib/$name" 2>/dev/null)" ]]; then
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
