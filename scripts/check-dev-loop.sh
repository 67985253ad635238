#!/usr/bin/env bash
# What CI runs for the dev loop (issue 6), without Tilt, kind or a registry:
#   1. hadolint on Dockerfile, Dockerfile.dev and the local base images
#   2. the Tiltfile contract test (scripts/tilt_contract.py)
#   3. a real build of both images, with local base images substituted through
#      the build arguments (Debian rootfs, the machine's Rust toolchain)
#   4. the production image against the test Postgres: migrate, serve,
#      /api/v1/health/ready = 200, non-root uid, no shell, Docker HEALTHCHECK
#   5. the dev image the way the pod runs it, and one live update the way Tilt
#      does it (tar -x of the new binary into /app/live, kindling-dev --restart)
# Expects scripts/docker-setup.sh to have run (CI does); runs its --builder step.
# Repeated runs reuse Docker's layer cache (dependency layer) and the named
# volumes of tilt/build-binary.sh's docker mode.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/dev-loop-lib.sh
source scripts/dev-loop-lib.sh
VENV="$ROOT/.venv-checks"
PROD_TAG=kindling-api:check
DEV_TAG=kindling-api:dev-check
RUNTIME_LOCAL=local/distroless-cc
API=kindling-check-api
DEV=kindling-check-dev
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'PASS %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
trap 'cleanup_containers "$API" "$DEV"' EXIT

[[ -x "$VENV/bin/hadolint" && -x "$VENV/bin/python" ]] || scripts/install-checkers.sh
scripts/docker-setup.sh --builder
if ! docker image inspect "$RUNTIME_LOCAL" >/dev/null 2>&1; then
  log "building $RUNTIME_LOCAL (stand-in for gcr.io/distroless/cc-debian12)"
  docker build -q -t "$RUNTIME_LOCAL" scripts/images/runtime >/dev/null
fi

# 1. hadolint: every ignore is inline, next to its reason.
dockerfiles=(Dockerfile Dockerfile.dev scripts/images/*/Dockerfile)
if "$VENV/bin/hadolint" "${dockerfiles[@]}"; then
  ok "hadolint: ${#dockerfiles[@]} Dockerfiles, 0 findings"
else
  bad "hadolint"
fi
if sh -n tilt/dev-entrypoint.sh && bash -n tilt/build-binary.sh scripts/dev-up.sh scripts/loadgen.sh scripts/bench-dev-loop.sh; then
  ok "shell syntax of the dev-loop scripts"
else
  bad "shell syntax"
fi

# 2. Tiltfile contract.
if "$VENV/bin/python" scripts/tilt_contract.py; then ok "Tiltfile contract"; else bad "Tiltfile contract"; fi

# 3. Image builds (legacy builder: no BuildKit on these machines).
log "docker build Dockerfile (production)"
t0=$(now)
if docker build -q -t "$PROD_TAG" --build-arg RUST_IMAGE="$RUST_IMAGE_LOCAL" \
     --build-arg RUNTIME_IMAGE="$RUNTIME_LOCAL" \
     --build-arg GIT_SHA="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" . >/dev/null; then
  ok "production image built in $(elapsed "$t0") s: $(image_mb "$PROD_TAG")"
else
  bad "production image build"
fi
log "compile the dev binary in a Rust container (tilt/build-binary.sh docker)"
t0=$(now)
if RUST_IMAGE="$RUST_IMAGE_LOCAL" tilt/build-binary.sh docker \
   && docker build -q -f Dockerfile.dev -t "$DEV_TAG" --build-arg RUNTIME_IMAGE=local/debian:bookworm . >/dev/null; then
  ok "dev binary + dev image built in $(elapsed "$t0") s: $(image_mb "$DEV_TAG")"
else
  bad "dev image build"
fi

# 4. Production image against the test Postgres.
start_postgres
if docker image inspect "$PROD_TAG" >/dev/null 2>&1; then
  if docker run --rm --network "$NET" --read-only -e DATABASE_URL="$DB_URL" "$PROD_TAG" migrate >/dev/null; then
    ok "production image: kindling migrate exit 0"
  else
    bad "production image: kindling migrate"
  fi
  port="$(run_api "$API" "$PROD_TAG")"
  if wait_http "http://127.0.0.1:$port/api/v1/health/ready" 60; then
    ok "production image: GET /api/v1/health/ready = 200"
  else
    bad "production image: /api/v1/health/ready"; docker logs "$API" 2>&1 | tail -n 20
  fi
  uid="$(docker top "$API" -o pid,uid | awk 'NR > 1 { print $2 }' | sort -u | tr '\n' ' ')" || uid="?"
  user="$(docker image inspect --format '{{.Config.User}}' "$PROD_TAG")"
  if [[ "$user" == "10001:10001" && "$uid" == "10001 " ]]; then
    ok "production image: USER $user, process uid $uid"
  else
    bad "production image: USER '$user', process uid '$uid' (want 10001)"
  fi
  if docker run --rm --entrypoint /bin/sh "$PROD_TAG" -c true >/dev/null 2>&1; then
    bad "production image has a shell"
  else
    ok "production image: no /bin/sh"
  fi
  health=""
  for _ in $(seq 1 30); do
    health="$(docker inspect --format '{{.State.Health.Status}}' "$API")"
    [[ "$health" == healthy ]] && break
    sleep 1
  done
  if [[ "$health" == healthy ]]; then
    ok "production image: Docker HEALTHCHECK (kindling healthcheck) healthy"
  else
    bad "production image: HEALTHCHECK status '$health'"
  fi
fi

# 5. Dev image as the pod runs it, then one live update as Tilt performs it.
if docker image inspect "$DEV_TAG" >/dev/null 2>&1; then
  port="$(run_api "$DEV" "$DEV_TAG" --tmpfs /app/live:rw,exec,size=128m,uid=10001,gid=10001 -e MIGRATE_ON_START=true)"
  if wait_http "http://127.0.0.1:$port/api/v1/health/ready" 60; then
    ok "dev image: GET /api/v1/health/ready = 200 (read-only root, uid 10001)"
  else
    bad "dev image: /api/v1/health/ready"; docker logs "$DEV" 2>&1 | tail -n 20
  fi
  before="$(docker exec "$DEV" cat /tmp/kindling-dev.pid)"
  tar -C .dev-bin -cf - --transform 's|^kindling$|app/live/kindling|' kindling \
    | docker exec -i "$DEV" tar -C / -xf -
  docker exec "$DEV" /usr/local/bin/kindling-dev --restart
  if wait_http "http://127.0.0.1:$port/api/v1/health/ready" 30 \
     && after="$(docker exec "$DEV" cat /tmp/kindling-dev.pid)" && [[ "$after" != "$before" ]] \
     && docker exec "$DEV" sh -c "readlink /proc/$after/exe" | grep -qx /app/live/kindling; then
    ok "dev image: live update (tar -x into /app/live + kindling-dev --restart) serves from /app/live/kindling"
  else
    bad "dev image: live update"; docker logs "$DEV" 2>&1 | tail -n 20
  fi
fi

echo "check-dev-loop: $passed passed, $failed failed"
((failed == 0))
