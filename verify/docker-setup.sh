#!/usr/bin/env bash
# Make a Docker engine available and build the local base images that CI uses
# instead of registry images (no registry is reachable on CI machines).
#
# Idempotent: every step checks whether its result already exists.
#   verify/docker-setup.sh            engine + local/postgres:test (PostgreSQL 17) test image
#   verify/docker-setup.sh --builder  also local/debian:trixie and local/rust:<ver> base images
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${KINDLING_IMAGE_CACHE:-/var/cache/kindling}"
WANT_BUILDER=false
[[ "${1:-}" == "--builder" ]] && WANT_BUILDER=true

log() { printf '==> %s\n' "$*"; }

debian_mirror() {
  # The mirror apt already uses on this machine: deb822 "URIs:" or one-line "deb" entries,
  # skipping comments, disabled files and the security archive.
  local m
  m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -v '^[[:space:]]*#' \
        | grep -oE '^(URIs:[[:space:]]*|deb[[:space:]]+)https?://[^ ]*/debian/?$' \
        | grep -oE 'https?://[^ ]*' | head -n1 || true)"
  echo "${m:-http://deb.debian.org/debian}"
}

ensure_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_engine() {
  if docker info >/dev/null 2>&1; then
    log "docker engine already running"
    return
  fi
  log "starting dockerd"
  (dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && { log "docker engine up"; return; }
    sleep 1
  done
  echo "dockerd did not start; see /var/log/dockerd.log" >&2
  exit 1
}

# rootfs_image NAME PACKAGES [SUITE]: debootstrap a minbase Debian SUITE (default
# bookworm) with PACKAGES, import as NAME.
rootfs_image() {
  local name="$1" include="$2" suite="${3:-bookworm}" dir
  if docker image inspect "$name" >/dev/null 2>&1; then
    log "$name already present"
    return
  fi
  dir="$CACHE/rootfs-${name//[\/:]/-}"
  rm -rf "$dir"
  mkdir -p "$dir"
  log "debootstrap $name (${include:-minbase})"
  if ! debootstrap --variant=minbase ${include:+--include="$include"} "$suite" "$dir" "$(debian_mirror)" >"$dir.log" 2>&1; then
    tail -n 20 "$dir.log" >&2
    echo "debootstrap of $name failed (full log: $dir.log)" >&2
    exit 1
  fi
  tar -C "$dir" -c . | docker import - "$name" >/dev/null
  rm -rf "$dir"
  log "imported $name"
}

ensure_packages
ensure_engine

# Test Postgres: behaves like the official postgres:17-alpine for what the tests rely on
# (same major, UTF-8 cluster with the same locale; see verify/images/postgres/Dockerfile).
# Debian 13 trixie is the Debian release that ships PostgreSQL 17; `locales` provides
# localedef for the en_US.UTF-8 locale the official image initialises with.
rootfs_image local/debian-postgres:17 postgresql-17,locales,ca-certificates trixie
# The tag stays local/postgres:test (what CI points the tests at), so an image built from
# older files is recognised by a label holding the hash of verify/images/postgres/.
pg_context="$ROOT/verify/images/postgres"
pg_hash="$(cd "$pg_context" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
if [[ "$(docker image inspect -f '{{ index .Config.Labels "kindling.context-hash" }}' local/postgres:test 2>/dev/null)" != "$pg_hash" ]]; then
  log "building local/postgres:test (context $pg_hash)"
  docker build -q --label "kindling.context-hash=$pg_hash" -t local/postgres:test "$pg_context" >/dev/null
else
  log "local/postgres:test up to date (context $pg_hash)"
fi

if $WANT_BUILDER; then
  # Debian 13 trixie (glibc 2.41), like the official rust:*-slim-trixie and
  # distroless cc-debian13 images it stands in for.
  rootfs_image local/debian:trixie ca-certificates trixie
  # The tag names the Debian release, so an image built on an older base is
  # never mistaken for this one.
  RUST_VERSION="$(rustc --version | awk '{print $2}')"
  if ! docker image inspect "local/rust:$RUST_VERSION-trixie" >/dev/null 2>&1; then
    log "building local/rust:$RUST_VERSION-trixie from this machine's toolchain"
    "$ROOT/verify/images/rust/build.sh" "local/rust:$RUST_VERSION-trixie" local/debian:trixie
  fi
fi
log "done"
