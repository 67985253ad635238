#!/usr/bin/env bash
# Compile kindling for the dev image and stage it where Tilt watches it.
#
#   tilt/build-binary.sh [host|docker]
#
# Output (what the Tiltfile's docker_build and live_update use), staged by
# tilt/stage-binary.sh:
#   .dev-bin/kindling     the binary; replaced atomically, and only when it changed
#   .dev-bin/lib/         the shared libraries it links: every dependency
#                         (libkindling_dylib.so, see dylib/Cargo.toml) and the
#                         toolchain's libstd; they change only with the
#                         dependencies or the toolchain, and the Tiltfile
#                         rebuilds the image when they do
#   .dev-bin/deps.stamp   hash of the Cargo manifests, Cargo.lock and migrations/;
#                         it changes only when they do, and the Tiltfile's
#                         fall_back_on turns that into a full image rebuild
#                         (written after the binary, so the rebuild always
#                         copies the new one)
#
# host    cargo on this machine (Linux). Fastest: incremental, nothing to sync
#         but the binary. The binary must run on Debian trixie's glibc 2.41:
#         on a distribution with a newer glibc use docker mode (the Tiltfile
#         picks it by itself when --build is not given).
# docker  cargo in a Rust container (RUST_IMAGE, default the official
#         rust:1.95-slim-trixie) with the registry and target directory in
#         named volumes, so it stays incremental. For macOS and Windows (a host
#         build would not be a Linux binary) and for newer-glibc Linux hosts.
#
# Both build the dev loop's binary, devbin/ (src/lib.rs compiled as one
# binary crate: one rustc run per handler edit), with the dev profile without
# debuginfo (the binary is ~5x smaller to sync and links faster) and
# `--features dynamic-linking`: the dependencies come from one shared
# library, so the link after an edit is small (docs/dev-loop.md, "Measured").
# Host mode also skips cargo after an edit under src/ alone (replay_build
# below).
#
# Environment: KINDLING_DEV_DEBUG=1 adds debug info for a debugger (below);
# KINDLING_DEV_LINK=static links everything into the binary
# instead (slower, and the way out should a toolchain ever produce a dynamic
# binary that does not load: the staging step checks that it does);
# KINDLING_DEV_REPLAY=off runs cargo for every build; KINDLING_SRC (source
# tree, default the repository; the benchmark points it at a copy);
# KINDLING_DEV_TARGET (host mode target dir, default target/tilt, kept apart
# from plain `cargo build` output because the profile differs).
set -euo pipefail

MODE="${1:-host}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${KINDLING_SRC:-$ROOT}"
OUT="$SRC/.dev-bin"
RUST_IMAGE="${RUST_IMAGE:-rust:1.95-slim-trixie}"
LINK="${KINDLING_DEV_LINK:-dynamic}"
export CARGO_PROFILE_DEV_DEBUG=0 SQLX_OFFLINE=true
case "$LINK" in
  dynamic) FEATURES="--features=dynamic-linking" ;;
  static) FEATURES="--features=" ;;
  *) echo "KINDLING_DEV_LINK must be dynamic or static, not '$LINK'" >&2; exit 2 ;;
esac
# KINDLING_DEV_DEBUG=1 (`tilt up -- --debug`): full debug info for the
# workspace's own crates, the dev binary (src/) and core/, for a debugger.
# The dependencies keep none, so switching recompiles two crates, not ~260.
DEBUG="${KINDLING_DEV_DEBUG:-0}"
case "$DEBUG" in
  0) DEBUG_CONFIG=() ;;
  1) DEBUG_CONFIG=(--config profile.dev.package.kindling-devbin.debug=2
                   --config profile.dev.package.kindling-core.debug=2) ;;
  *) echo "KINDLING_DEV_DEBUG must be 0 or 1, not '$DEBUG'" >&2; exit 2 ;;
esac
# shellcheck source=tilt/lib.sh
source "$ROOT/tilt/lib.sh"
# Where the edit's clock starts: tilt/stage-binary.sh hands the build's
# timings to the restarted service (its `dev reload` line).
KINDLING_BUILD_STARTED_MS="$(epoch_ms)"
export KINDLING_BUILD_STARTED_MS

# Host mode, after an edit under src/ alone: rustc run exactly as cargo last
# ran it for the dev binary (recorded by tilt/rustc-wrapper.sh), without
# cargo's start-up. Anything else goes through cargo: other files changed
# since the recording (manifests, core/, migrations/, cargo configuration,
# the toolchain), other settings, another value of an environment variable a
# compiled crate reads (`option_env!` in core/: $REPLAY.env), or an error
# (cargo then shows it as usual). rustc's warnings are shown as it prints
# them (the replay runs it in its human format): handing them to cargo would
# compile the crate a second time.
# KINDLING_DEV_REPLAY=off always runs cargo.
replay_build() {
  [[ "${KINDLING_DEV_REPLAY:-on}" == on && -f "$REPLAY" && -f "$REPLAY.env" ]] || return 1
  [[ "$(cat "$REPLAY.settings" 2>/dev/null)" == "$settings" ]] || return 1
  [[ "$(env_values <"$REPLAY.env")" == "$(<"$REPLAY.env")" ]] || return 1
  local rustup="${RUSTUP_HOME:-$HOME/.rustup}" changed
  changed="$(find "$SRC/Cargo.toml" "$SRC/Cargo.lock" "$SRC/core" "$SRC/dylib" "$SRC/devbin" \
    "$SRC/migrations" "$SRC/.cargo" "$SRC/rust-toolchain" "$SRC/rust-toolchain.toml" \
    "${CARGO_HOME:-$HOME/.cargo}/config.toml" "$rustup/settings.toml" "$ROOT/tilt/rustc-wrapper.sh" \
    -newer "$REPLAY.settings" -print -quit 2>/dev/null || true)"
  [[ -z "$changed" ]] || return 1
  KINDLING_REPLAY_COLOR="$(rustc_colour)" bash "$REPLAY" 2>"$REPLAY.log" || return 1
  cat "$REPLAY.log" >&2
}

mkdir -p "$OUT"
case "$MODE" in
  host)
    if [[ "$OSTYPE" != linux* ]]; then
      echo "host mode builds a $(uname -s) binary; use: tilt up -- --build=docker" >&2
      exit 2
    fi
    glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null || true)"
    glibc="${glibc#glibc }"
    if [[ "$glibc" =~ ^([0-9]+)\.([0-9]+) ]] &&
       ((BASH_REMATCH[1] > 2 || (BASH_REMATCH[1] == 2 && BASH_REMATCH[2] > 41))); then
      echo "warning: host glibc $glibc is newer than the dev image's (2.41); if the pod fails" \
           "with 'GLIBC_2.xx not found', use: tilt up -- --build=docker" >&2
    fi
    TARGET="${KINDLING_DEV_TARGET:-$SRC/target/tilt}"
    REPLAY="$TARGET/kindling-devbin.replay"
    mkdir -p "$TARGET"
    # What the recorded rustc run depends on besides src/: the link mode and
    # every cargo and rustc setting in the environment.
    settings="$LINK debug=$DEBUG"
    for name in $(compgen -e); do
      if [[ "$name" == CARGO* || "$name" == RUST* ]]; then
        settings+=$'\n'"$name=${!name}"
      fi
    done
    if replay_build; then
      echo "compiled src/ with rustc alone, as cargo last ran it (no other input changed)"
    else
      # The settings file is dated when cargo starts: a file changed while
      # cargo runs counts as changed after the recording.
      rm -f "$REPLAY.settings"
      printf '%s\n' "$settings" >"$REPLAY.settings.new"
      KINDLING_REPLAY="$REPLAY" RUSTC_WORKSPACE_WRAPPER="$ROOT/tilt/rustc-wrapper.sh" \
        cargo build --locked --package kindling-devbin "$FEATURES" ${DEBUG_CONFIG[@]+"${DEBUG_CONFIG[@]}"} \
          --manifest-path "$SRC/Cargo.toml" --target-dir "$TARGET"
      # Only a recording made by this build matches these settings (with the
      # dev binary fresh, cargo runs no rustc and records nothing).
      if [[ "$REPLAY" -nt "$REPLAY.settings.new" ]]; then
        env_inputs "$TARGET/debug" | env_values >"$REPLAY.env"
        mv -f "$REPLAY.settings.new" "$REPLAY.settings"
      fi
    fi
    "$ROOT/tilt/stage-binary.sh" "$TARGET/debug" "$OUT" "$LINK"
    ;;
  docker)
    # Source read-only at a fixed path (incremental fingerprints include it);
    # the result is staged from inside the container (the libraries are
    # copied only when they change: a bind mount on macOS is slow) and handed
    # to the caller's uid.
    docker run --rm \
      -v "$SRC:/src:ro" -v "$OUT:/out" \
      -v kindling-dev-cargo-registry:/usr/local/cargo/registry \
      -v kindling-dev-target:/target \
      -e CARGO_TARGET_DIR=/target -e CARGO_PROFILE_DEV_DEBUG=0 -e SQLX_OFFLINE=true \
      -e KINDLING_BUILD_STARTED_MS \
      -e OWNER="$(id -u):$(id -g)" -e LINK="$LINK" -e FEATURES="$FEATURES" -w /src "$RUST_IMAGE" \
      sh -euc 'cargo build --locked --package kindling-devbin "$FEATURES" "$@"
               /src/tilt/stage-binary.sh /target/debug /out "$LINK"
               chown -R "$OWNER" /out' build ${DEBUG_CONFIG[@]+"${DEBUG_CONFIG[@]}"}
    ;;
  *)
    echo "usage: $0 [host|docker]" >&2
    exit 2
    ;;
esac

stamp="$(cd "$SRC" && cat Cargo.toml core/Cargo.toml dylib/Cargo.toml devbin/Cargo.toml Cargo.lock migrations/* | sha256)"
if [[ "$(cat "$OUT/deps.stamp" 2>/dev/null)" != "$stamp" ]]; then
  echo "$stamp" >"$OUT/deps.stamp"
  echo "dependencies or migrations changed: Tilt rebuilds the image"
fi
