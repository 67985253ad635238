#!/usr/bin/env bash
# Build a Rust builder image from this machine's toolchain, for CI machines
# where neither a registry nor rustup's servers are reachable.
#
#   verify/images/rust/build.sh local/rust:1.95.0 [BASE_IMAGE]
#
# The image follows the official rust:<version>-slim-trixie layout where the
# Dockerfiles rely on it (cargo/rustc on PATH, CARGO_HOME=/usr/local/cargo),
# so Dockerfile and Dockerfile.dev build unchanged with
# --build-arg RUST_IMAGE=local/rust:<version>.
set -euo pipefail

TAG="${1:?usage: build.sh IMAGE_TAG [BASE_IMAGE]}"
BASE="${2:-local/debian:trixie}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SYSROOT="$(rustc --print sysroot)"
SYSROOT="$(readlink -f "$SYSROOT")"

log() { printf '==> %s\n' "$*"; }

docker image inspect "$BASE" >/dev/null 2>&1 \
  || { echo "base image $BASE missing: run verify/docker-setup.sh --builder" >&2; exit 1; }

CTX="$(mktemp -d)"
trap 'rm -rf "$CTX"' EXIT
cp "$HERE/Dockerfile" "$CTX/Dockerfile"
cp -L "${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" "$CTX/host-ca-certificates.crt"
log "packing toolchain $SYSROOT (bin, lib)"
# Only what compiling needs: the compilers and the standard library. Tools that
# CI does not use in images (docs, clippy, rustfmt, debugger wrappers) stay out.
tar -C "$SYSROOT" -cf "$CTX/toolchain.tar" \
  bin/cargo bin/rustc bin/rustdoc lib
log "building $TAG from $BASE"
docker build -q --build-arg BASE_IMAGE="$BASE" -t "$TAG" "$CTX" >/dev/null
docker run --rm "$TAG" sh -c 'rustc --version && cargo --version'
log "built $TAG"
