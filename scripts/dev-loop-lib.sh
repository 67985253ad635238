# Shared by scripts/bench-dev-loop.sh (sourced) and the dev-loop suite
# (verify/kindling_verify/dev_loop/test_images.py, which calls its functions):
# a test Postgres and the API containers on a private Docker network, the way
# the pod runs them (uid 10001, read-only root filesystem, tmpfs /tmp).
# shellcheck shell=bash
# The variables are used by the scripts that source this file.
# shellcheck disable=SC2034

NET="${DEV_LOOP_NET:-kindling-devloop}"
PG="${NET}-postgres"
PG_IMAGE="${PG_IMAGE:-local/postgres:test}"
DB_URL="postgres://kindling:kindling@${PG}:5432/kindling"
RUST_VERSION="$(rustc --version | awk '{print $2}')"
RUST_IMAGE_LOCAL="local/rust:${RUST_VERSION}-trixie"  # verify/docker-setup.sh --builder

log() { printf '==> %s\n' "$*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

start_postgres() {
  docker network inspect "$NET" >/dev/null 2>&1 || docker network create "$NET" >/dev/null
  docker rm -f "$PG" >/dev/null 2>&1 || true
  docker run -d --name "$PG" --network "$NET" \
    -e POSTGRES_USER=kindling -e POSTGRES_PASSWORD=kindling -e POSTGRES_DB=kindling \
    "$PG_IMAGE" >/dev/null
  for _ in $(seq 1 60); do
    docker logs "$PG" 2>&1 | grep -q 'database system is ready to accept connections' && return 0
    sleep 1
  done
  docker logs "$PG" >&2
  echo "test Postgres did not start" >&2
  return 1
}

# run_api NAME IMAGE [ARGS...]: detached, as in the pod; prints the host port.
run_api() {
  local name="$1" image="$2"
  shift 2
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker run -d --name "$name" --network "$NET" --read-only \
    --tmpfs /tmp:rw,size=64m,uid=10001,gid=10001 \
    -e DATABASE_URL="$DB_URL" -e RUST_LOG=warn -p 127.0.0.1::8000 \
    "$@" "$image" >/dev/null
  docker port "$name" 8000/tcp | head -n1 | sed 's/.*://'
}

# wait_http URL [SECONDS] [PATTERN]: until URL answers 200 (and its body matches PATTERN).
wait_http() {
  local url="$1" limit="${2:-60}" pattern="${3:-}" end body
  end=$(($(date +%s) + limit))
  while (($(date +%s) < end)); do
    if body="$(curl -fsS --max-time 2 "$url" 2>/dev/null)" && [[ -z "$pattern" || "$body" == *"$pattern"* ]]; then
      return 0
    fi
    sleep 0.05
  done
  return 1
}

cleanup_containers() {
  docker rm -f "$@" "$PG" >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
}

image_mb() { docker image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.1f MB", $1 / 1e6 }'; }
