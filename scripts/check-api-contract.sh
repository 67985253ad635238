#!/usr/bin/env bash
# Fuzzes the running API against its own OpenAPI document with schemathesis:
# a real Postgres container, `kindling serve` (debug build), then property-based
# requests from /api/openapi.json with a fixed seed so failures reproduce.
#
# Excluded checks, with reasons:
#   positive_data_acceptance  off for four operations only (the config written
#                             below), where the contract mandates rejecting
#                             schema-valid input: replaceItem (412 for a
#                             non-matching If-Match), listItems and listUsers
#                             (422 for a well-formed cursor this API never
#                             issued), createItem and replaceItem (422 for a
#                             name that is only whitespace, which JSON Schema's
#                             minLength cannot see because the API trims first,
#                             and for U+0000 in any text, which the schema does
#                             not forbid). Every other operation must accept it.
#   unsupported_method        Rocket 0.5 answers methods it does not know (e.g.
#                             QUERY) with 400 before routing; known methods on
#                             known paths get 405 + Allow (tests/api/errors.rs).
# Needs: Docker with the Postgres image (scripts/docker-setup.sh) and cargo.
# schemathesis lives in its own venv (.venv-contract): its dependencies clash
# with checkov's pins in .venv-checks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${KINDLING_TEST_POSTGRES_IMAGE:-postgres:17-alpine}"  # production's major
VENV="$ROOT/.venv-contract"
ST="$VENV/bin/st"
SCHEMATHESIS_VERSION=4.32.5
# log, wait_http
# shellcheck source=scripts/dev-loop-lib.sh
source "$ROOT/scripts/dev-loop-lib.sh"

if ! "$ST" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

log "building kindling"
(cd "$ROOT" && cargo build --quiet --locked)

PG_PORT="$(free_port)"
API_PORT="$(free_port)"
CONTAINER="$(docker run -d --rm -e POSTGRES_PASSWORD=contract -p "$PG_PORT:5432" "$IMAGE")"
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null
  docker rm -f "$CONTAINER" >/dev/null 2>&1
  return 0
}
trap cleanup EXIT

log "serving on 127.0.0.1:$API_PORT against $IMAGE"
DATABASE_URL="postgres://postgres:contract@127.0.0.1:$PG_PORT/postgres" \
  ROCKET_PORT="$API_PORT" MIGRATE_ON_START=true RUST_LOG=warn \
  "$ROOT/target/debug/kindling" serve >"$ROOT/target/contract-serve.log" 2>&1 &
SERVER_PID=$!
wait_http "http://127.0.0.1:$API_PORT/api/v1/health/ready" 60 \
  || { echo "API did not become ready; see target/contract-serve.log" >&2; exit 1; }

# Checks are chosen in a config file, not with --checks/--exclude-checks: a
# check named on the command line overrides every per-operation setting, and
# positive_data_acceptance is off for four operations only (see the header).
CONFIG="$ROOT/target/contract-schemathesis.toml"
{
  printf 'checks.enabled = true\nchecks.unsupported_method.enabled = false\n\n'
  for op in createItem replaceItem listItems listUsers; do
    printf '[[operations]]\ninclude-operation-id = "%s"\nchecks.positive_data_acceptance.enabled = false\n\n' "$op"
  done
} >"$CONFIG"

log "schemathesis"
# One worker: with two, schemathesis 4.32.5's coverage phase intermittently
# failed inside CPython 3.11 ("AST constructor recursion depth mismatch").
"$ST" --config-file "$CONFIG" run "http://127.0.0.1:$API_PORT/api/openapi.json" \
  --max-examples 100 --workers 1 --seed 20261123
