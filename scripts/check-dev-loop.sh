#!/usr/bin/env bash
# What CI runs for the dev loop, without kind, a cluster or a registry:
#   1. hadolint on the Dockerfiles; ShellCheck on scripts/*.sh and tilt/*.sh;
#      the GitHub workflow (actionlint when present, else its structure and
#      ShellCheck on every run: block)
#   2. the Tiltfile contract with the real Tilt (scripts/tilt_contract.py:
#      tilt alpha tiltfile-result for every flag combination, the ingress-nginx
#      cache offline and tampered)
#   3. scripts/check-dev-up.sh: dev-up.sh's machine checks with stand-in tools
#   4. a real build of both images on Debian 13 trixie stand-ins (local base
#      images through the build arguments), each checked for glibc 2.41
#   5. the production image against the test Postgres: migrate, serve,
#      /api/v1/health/ready = 200, non-root uid, no shell, Docker HEALTHCHECK
#   6. the dev image the way the pod runs it, and one live update the way Tilt
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
# Tagged with the Debian release so a stand-in built on an older base is rebuilt.
RUNTIME_LOCAL=local/distroless-cc:debian13
DEV_BASE_LOCAL=local/debian:trixie
# glibc of Debian 13 trixie: every image must carry it (the Tiltfile's
# DEV_IMAGE_GLIBC relies on it for choosing the build mode).
WANT_GLIBC=2.41
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
  log "building $RUNTIME_LOCAL (stand-in for gcr.io/distroless/cc-debian13)"
  docker build -q -t "$RUNTIME_LOCAL" scripts/images/runtime >/dev/null
fi

# 1. hadolint: every ignore is inline, next to its reason.
dockerfiles=(Dockerfile Dockerfile.dev scripts/images/*/Dockerfile)
if "$VENV/bin/hadolint" "${dockerfiles[@]}"; then
  ok "hadolint: ${#dockerfiles[@]} Dockerfiles, 0 findings"
else
  bad "hadolint"
fi
# ShellCheck at warning level and above (its info notes flag trap handlers as unused).
shell_scripts=(scripts/*.sh tilt/*.sh)
if "$VENV/bin/shellcheck" -S warning -x "${shell_scripts[@]}"; then
  ok "shellcheck: ${#shell_scripts[@]} scripts, 0 warnings"
else
  bad "shellcheck"
fi
if "$VENV/bin/python" scripts/workflow_lint.py .github/workflows/*.yml \
   && "$VENV/bin/python" scripts/workflow_lint.py --self-test; then
  ok "GitHub workflows (and the linter's self-test)"
else
  bad "GitHub workflows"
fi

# 2. Tiltfile contract with the real Tilt (KINDLING_TILT, else PATH).
if "$VENV/bin/python" scripts/tilt_contract.py; then ok "Tiltfile contract"; else bad "Tiltfile contract"; fi

# 3. dev-up.sh's machine checks. CI runs as root, where unshare always works.
if KINDLING_REQUIRE_UNSHARE="${CI:+1}" scripts/check-dev-up.sh; then ok "dev-up.sh checks"; else bad "dev-up.sh checks"; fi

# 4. Image builds (legacy builder: no BuildKit on these machines).
log "docker build Dockerfile (production)"
t0=$(now)
if docker build -q -t "$PROD_TAG" --build-arg RUST_IMAGE="$RUST_IMAGE_LOCAL" \
     --build-arg RUNTIME_IMAGE="$RUNTIME_LOCAL" \
     --build-arg GIT_SHA="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" . >/dev/null; then
  ok "production image built in $(elapsed "$t0") s: $(image_mb "$PROD_TAG")"
else
  bad "production image build"
fi
# glibc_of IMAGE: the version its dynamic loader reports. Works without a shell
# (distroless): the loader itself is the entrypoint.
glibc_of() {
  docker run --rm --entrypoint /lib64/ld-linux-x86-64.so.2 "$1" --version 2>/dev/null \
    | sed -n '1s/.* version \([0-9.]*\)\.$/\1/p'
}
log "compile the dev binary in a Rust container (tilt/build-binary.sh docker)"
t0=$(now)
if RUST_IMAGE="$RUST_IMAGE_LOCAL" tilt/build-binary.sh docker \
   && docker build -q -f Dockerfile.dev -t "$DEV_TAG" --build-arg RUNTIME_IMAGE="$DEV_BASE_LOCAL" . >/dev/null; then
  ok "dev binary + dev image built in $(elapsed "$t0") s: $(image_mb "$DEV_TAG")"
else
  bad "dev image build"
fi
for image in "$PROD_TAG" "$DEV_TAG"; do
  if docker image inspect "$image" >/dev/null 2>&1; then
    got="$(glibc_of "$image")"
    if [[ "$got" == "$WANT_GLIBC" ]]; then
      ok "$image: glibc $got (Debian 13 trixie)"
    else
      bad "$image: glibc '$got', want $WANT_GLIBC (Debian 13 trixie)"
    fi
  fi
done

# 5. Production image against the test Postgres.
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

# 6. Dev image as the pod runs it, then one live update as Tilt performs it.
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
