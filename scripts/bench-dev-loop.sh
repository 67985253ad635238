#!/usr/bin/env bash
# Benchmark of the inner dev loop (not a test; CI does not run it).
#
#   scripts/bench-dev-loop.sh [--edits N]      (default 7, at least 5)
#
# Measures, on the path Tilt takes with the default host build:
#   edit-to-live   edit a handler (the liveness probe's JSON) -> tilt/build-binary.sh
#                  (incremental cargo build, staged binary) -> tar -x of the binary
#                  into the running dev container's /app/live (what live_update's
#                  sync does) -> kindling-dev --restart (the run step) -> first HTTP
#                  response that shows the edit. p50/min/max over N edits.
#   dependency     Cargo.toml changed -> binary rebuilt -> dev image rebuilt ->
#   rebuild        container replaced -> ready (Tilt's fall_back_on path).
#   image sizes    dev image (just built) and production image (kindling-api:check
#                  from the dev-loop suite, verify/run dev_loop, if present).
# Not included: Tilt's file-watch debounce and kubectl exec/kind overhead (a
# kind cluster is not available here); see docs/dev-loop.md.
#
# Works on a copy of HEAD (git archive) under target/bench/, never on the
# working tree; the copy's target dir persists, so only the first run compiles
# all dependencies. Needs verify/docker-setup.sh --builder to have run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/dev-loop-lib.sh
DEV_LOOP_NET=kindling-bench source scripts/dev-loop-lib.sh
EDITS=7
[[ "${1:-}" == "--edits" ]] && EDITS="$2"
((EDITS >= 5)) || { echo "--edits must be at least 5" >&2; exit 2; }

WORK="$ROOT/target/bench"
SRC="$WORK/src"
export KINDLING_SRC="$SRC" KINDLING_DEV_TARGET="$WORK/target"
DEV_TAG=kindling-api:dev-bench
CTR=kindling-bench-dev
HANDLER="src/routes/health.rs"
trap 'cleanup_containers "$CTR"' EXIT

log "copy of HEAD in $SRC (build output: $WORK/build.log)"
mkdir -p "$WORK" && : >"$WORK/build.log"
rm -rf "$SRC" && mkdir -p "$SRC"
git archive HEAD | tar -x -C "$SRC"
# The edit: the liveness handler's `Json(Probe::ok(None))` answers a marker.
grep -q 'Json(Probe::ok(None))' "$SRC/$HANDLER" || { echo "edit target not found in $HANDLER" >&2; exit 1; }
cp "$SRC/$HANDLER" "$WORK/handler.orig"

log "initial build (the first run compiles every dependency)"
t0=$(now)
tilt/build-binary.sh host >/dev/null 2>>"$WORK/build.log"
initial_build=$(elapsed "$t0")
docker build -q -f "$SRC/Dockerfile.dev" -t "$DEV_TAG" --build-arg RUNTIME_IMAGE=local/debian:trixie "$SRC" >/dev/null 2>>"$WORK/build.log"
start_postgres
run_dev() {
  run_api "$CTR" "$DEV_TAG" --tmpfs /app/live:rw,exec,size=128m,uid=10001,gid=10001 -e MIGRATE_ON_START=true
}
port="$(run_dev)"
wait_http "http://127.0.0.1:$port/api/v1/health/ready" 60 || { docker logs "$CTR" >&2; exit 1; }

# What live_update does: sync (tar -x from /) then the run step.
live_update() {
  tar -C "$SRC/.dev-bin" -cf - --transform 's|^kindling$|app/live/kindling|' kindling \
    | docker exec -i "$CTR" tar -C / -xf -
  docker exec "$CTR" /usr/local/bin/kindling-dev --restart
}

declare -a total compile deploy
for i in $(seq 1 "$EDITS"); do
  marker="bench-edit-$i-$RANDOM"
  cp "$WORK/handler.orig" "$SRC/$HANDLER"
  sed -i "s|Json(Probe::ok(None))|Json(Probe::ok(Some(json!({\"edit\": \"$marker\"}))))|" "$SRC/$HANDLER"
  t0=$(now)
  tilt/build-binary.sh host >/dev/null 2>>"$WORK/build.log"
  t1=$(now)
  live_update
  wait_http "http://127.0.0.1:$port/api/v1/health/live" 30 "$marker" || { echo "edit $i never went live" >&2; exit 1; }
  total+=("$(elapsed "$t0")")
  compile+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')")
  deploy+=("$(elapsed "$t1")")
  log "edit $i: ${total[-1]} s (compile ${compile[-1]} s, sync + restart + first response ${deploy[-1]} s)"
done

log "Cargo.toml change: binary, dev image, new container"
# A dependency change that keeps Cargo.lock valid (--locked): one more tokio
# feature (test-util adds no crate). Cargo recompiles tokio and everything built on it (hyper, rocket,
# sqlx, reqwest, ...), as for a version bump of a core dependency.
sed -i 's/^tokio = { version = "\([^"]*\)", features = \[/tokio = { version = "\1", features = ["test-util", /' "$SRC/Cargo.toml"
grep -q '^tokio = .*features = \["test-util", ' "$SRC/Cargo.toml" || { echo "Cargo.toml edit failed" >&2; exit 1; }
t0=$(now)
tilt/build-binary.sh host >/dev/null 2>>"$WORK/build.log"
docker build -q -f "$SRC/Dockerfile.dev" -t "$DEV_TAG" --build-arg RUNTIME_IMAGE=local/debian:trixie "$SRC" >/dev/null 2>>"$WORK/build.log"
port="$(run_dev)"
wait_http "http://127.0.0.1:$port/api/v1/health/ready" 60 || { docker logs "$CTR" >&2; exit 1; }
rebuild=$(elapsed "$t0")

stats() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%6.2f %6.2f %6.2f", m, a[1], a[NR] }'; }
echo
echo "dev loop benchmark ($(nproc) cores, host build, N=$EDITS edits)"
printf '%-44s %6s %6s %6s\n' "" p50 min max
printf '%-44s %s\n' "edit-to-live total (s)" "$(stats "${total[@]}")"
printf '%-44s %s\n' "  compile + stage (s)" "$(stats "${compile[@]}")"
printf '%-44s %s\n' "  sync + restart + first response (s)" "$(stats "${deploy[@]}")"
printf '%-44s %6s\n' "Cargo.toml (tokio +test-util) -> rebuilt, ready (s)" "$rebuild"
printf '%-44s %6s\n' "initial build of this run (s)" "$initial_build"
printf '%-44s %s\n' "dev image $DEV_TAG" "$(image_mb "$DEV_TAG")"
printf '%-44s %s\n' "  of which its base local/debian:trixie" "$(image_mb local/debian:trixie)"
if docker image inspect kindling-api:check >/dev/null 2>&1; then
  printf '%-44s %s\n' "production image kindling-api:check" "$(image_mb kindling-api:check)"
fi
printf '%-44s %s\n' "staged dev binary" "$(du -h "$SRC/.dev-bin/kindling" | cut -f1)"
printf '%-44s %s\n' "staged libraries (in the image, never synced)" "$(du -sh "$SRC/.dev-bin/lib" | cut -f1)"
