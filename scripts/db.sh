#!/usr/bin/env bash
# The dev database's lifecycle, from a terminal or from Tilt's `db` buttons
# (the Tiltfile's db-* resources run exactly these commands):
#
#   scripts/db.sh snapshot [NAME]   pg_dump of the database into the snapshot folder
#                                   as NAME-<UTC time>.dump (NAME defaults to "snapshot")
#   scripts/db.sh restore [NAME]    the latest snapshot (or the latest called NAME, or
#                                   the file NAME) replaces the database
#   scripts/db.sh reset             an empty database at the current schema
#   scripts/db.sh seed [N]          N items and N users (default 20) through the API
#   scripts/db.sh psql              the command that opens psql; runs it on a terminal
#   scripts/db.sh list              the snapshots, newest first
#
# Snapshots go to $KINDLING_SNAPSHOT_DIR, default ~/.cache/kindling/snapshots
# (outside the repository: they hold data, not code).
#
# Nothing is lost on bad input. restore loads the snapshot into a scratch
# database first and swaps it in only when it loaded and its schema is not
# newer than migrations/; reset swaps in an empty database the same way. The
# swap is two renames in one transaction, after the API's connections are
# ended: its pool opens new ones by itself (no pod restart). A restored schema
# older than migrations/ is migrated forward afterwards. Every verb first
# checks that Postgres answers, and stops with the reason if it does not.
#
# Where it runs (the only cluster-specific part is choose_cluster below):
#   KINDLING_DB_TARGET=cluster (default)  the kind or minikube cluster Tilt
#       deploys to: pg_dump, pg_restore and psql run in the postgres-0 pod
#       (kubectl exec: the server's own client version), credentials come from
#       k8s/overlays/dev/db.dev-only.env, migrations run as the kindling-migrate
#       Job, seed goes through a port forward to the API's Service.
#   KINDLING_DB_TARGET=env  any reachable Postgres, for tests:
#       PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE  as the client tools see it
#       KINDLING_DB_EXEC     prefix that runs the client tools next to the server,
#                            e.g. "docker exec -i CONTAINER" (empty: this host's)
#       KINDLING_DB_MIGRATE  command that applies migrations/ to the database
#       KINDLING_API_URL     the API, for seed
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SNAPSHOTS="${KINDLING_SNAPSHOT_DIR:-$HOME/.cache/kindling/snapshots}"
NAMESPACE=kindling
DEFAULT_SEED=20

log() { printf '==> %s\n' "$*"; }
die() { printf 'db.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# ---- where: the thin layer ---------------------------------------------------------

choose_env() {
  DB_HOST="${PGHOST:?KINDLING_DB_TARGET=env needs PGHOST}"
  DB_PORT="${PGPORT:-5432}"
  DB_USER="${PGUSER:?KINDLING_DB_TARGET=env needs PGUSER}"
  DB_PASSWORD="${PGPASSWORD:-}"
  DB_NAME="${PGDATABASE:?KINDLING_DB_TARGET=env needs PGDATABASE}"
  read -r -a EXEC <<<"${KINDLING_DB_EXEC:-}"
  WHERE="Postgres at $DB_HOST:$DB_PORT${KINDLING_DB_EXEC:+ (tools run by: $KINDLING_DB_EXEC)}"
  PSQL_HINT="PGPASSWORD=$DB_PASSWORD psql -h $DB_HOST -p $DB_PORT -U $DB_USER $DB_NAME"
}

migrate_env() {
  [[ -n "${KINDLING_DB_MIGRATE:-}" ]] || die "KINDLING_DB_TARGET=env needs KINDLING_DB_MIGRATE (the migrate command)"
  bash -c "$KINDLING_DB_MIGRATE"
}

api_env() {
  API_URL="${KINDLING_API_URL:?KINDLING_DB_TARGET=env needs KINDLING_API_URL for seed}"
}

KUBECTL=()
choose_cluster() {
  command -v kubectl >/dev/null || die "kubectl is not installed"
  local context
  context="$(kubectl config current-context 2>/dev/null)" || die "no kubectl context: run scripts/dev-up.sh first"
  # The contexts the Tiltfile deploys to; anything else could be a real cluster.
  [[ "$context" == kind-kindling || "$context" == kindling ]] ||
    die "kubectl context is '$context'; db.sh works on kind-kindling or the minikube profile kindling only"
  KUBECTL=(kubectl --context "$context" -n "$NAMESPACE")
  local env_file="$ROOT/k8s/overlays/dev/db.dev-only.env"
  DB_USER="$(sed -n 's/^POSTGRES_USER=//p' "$env_file")"
  DB_PASSWORD="$(sed -n 's/^POSTGRES_PASSWORD=//p' "$env_file")"
  DB_NAME="$(sed -n 's/^POSTGRES_DB=//p' "$env_file")"
  DB_HOST=127.0.0.1 DB_PORT=5432
  EXEC=("${KUBECTL[@]}" exec -i postgres-0 -c postgres --)
  WHERE="the postgres-0 pod in namespace $NAMESPACE (context $context)"
  PSQL_HINT="${KUBECTL[*]} port-forward svc/postgres 5432:5432 &   # not needed while Tilt runs: it forwards 5432
PGPASSWORD=$DB_PASSWORD psql -h 127.0.0.1 -p 5432 -U $DB_USER $DB_NAME"
  # Fails fast and says so when the pod is gone (kubectl exec would only say
  # "not found" after its own timeout).
  local ready
  ready="$("${KUBECTL[@]}" get pod postgres-0 -o jsonpath='{.status.containerStatuses[0].ready}' 2>&1)" ||
    die "Postgres is down: $ready. Nothing was changed."
  [[ "$ready" == true ]] || die "Postgres is down: pod postgres-0 is not ready. Nothing was changed."
}

# The same Job the cluster runs at `tilt up`: the dev overlay's kindling-migrate,
# with the image the API runs now (Tilt's latest build), recreated under its own
# name. Rendered from the overlay rather than copied from the cluster, because
# a finished Job is deleted after a day (ttlSecondsAfterFinished).
migrate_cluster() {
  local image job status="" i
  image="$("${KUBECTL[@]}" get deployment kindling-api \
    -o jsonpath='{.spec.template.spec.containers[?(@.name=="api")].image}')"
  [[ -n "$image" ]] || die "no kindling-api Deployment to take the image from: run tilt up first"
  job="$(kubectl kustomize "$ROOT/k8s/overlays/dev" |
    awk 'BEGIN { RS = "\n---\n" } /(^|\n)kind: Job\n/ && /\n  name: kindling-migrate\n/ { print }' |
    kubectl set image --local -f - -o yaml "migrate=$image")"
  log "running the kindling-migrate Job with $image"
  "${KUBECTL[@]}" delete job kindling-migrate --ignore-not-found --wait=true
  "${KUBECTL[@]}" create -f - <<<"$job"
  for ((i = 0; i < 300; i++)); do
    status="$("${KUBECTL[@]}" get job kindling-migrate \
      -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')"
    case " $status " in
      *" Complete "*) "${KUBECTL[@]}" logs job/kindling-migrate -c migrate --tail=5; return 0 ;;
      *" Failed "*) "${KUBECTL[@]}" logs job/kindling-migrate -c migrate --tail=20 >&2
                    die "the kindling-migrate Job failed (its log is above)" ;;
    esac
    sleep 1
  done
  die "the kindling-migrate Job did not finish in 300 s (kubectl -n $NAMESPACE describe job kindling-migrate)"
}

# A port forward of its own to the API's Service, so seed works with or
# without Tilt's (localhost:8000); ended when the script exits.
api_cluster() {
  local out="" port="" i
  WORK="$(mktemp -d)"
  out="$WORK/port-forward.log"
  "${KUBECTL[@]}" port-forward svc/kindling-api :80 >"$out" 2>&1 &
  FORWARD_PID=$!
  for ((i = 0; i < 100; i++)); do
    port="$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$out" | head -n1)"
    [[ -n "$port" ]] && break
    kill -0 "$FORWARD_PID" 2>/dev/null || die "port-forward to the API failed: $(cat "$out")"
    sleep 0.1
  done
  [[ -n "$port" ]] || die "port-forward to the API did not start in 10 s: $(cat "$out")"
  API_URL="http://127.0.0.1:$port"
}

# ---- Postgres, wherever it is ------------------------------------------------------

# pgtool TOOL ARGS...: a client tool connected as the dev user; stdin and stdout pass through.
pgtool() {
  local tool="$1"
  shift
  # Warnings and errors only: no NOTICE for a DROP ... IF EXISTS of nothing.
  # ${a[@]+...}: macOS's bash 3.2 treats an empty array as unset under set -u.
  ${EXEC[@]+"${EXEC[@]}"} env PGPASSWORD="$DB_PASSWORD" PGOPTIONS='-c client_min_messages=warning' "$tool" -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" "$@"
}

# sql DATABASE STATEMENT...: each statement in one psql run, rows unaligned.
sql() {
  local db="$1" args=()
  shift
  for statement in "$@"; do args+=(-c "$statement"); done
  pgtool psql -X -q -v ON_ERROR_STOP=1 -At -d "$db" "${args[@]}"
}

require_postgres() {
  local out
  out="$(sql postgres 'SELECT 1' 2>&1)" || die "Postgres is down or refuses the connection ($WHERE): $out. Nothing was changed."
}

# The newest migration in migrations/ (sqlx's version: the file name's number).
latest_migration() {
  local latest=0 file version
  for file in "$ROOT"/migrations/*.sql; do
    version="${file##*/}"
    version="${version%%_*}"
    ((version > latest)) && latest="$version"
  done
  echo "$latest"
}

# schema_version DATABASE: the newest migration applied there (0 for none).
schema_version() {
  sql "$1" "SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success"
}

row_counts() {
  sql "$1" "SELECT 'items ' || (SELECT count(*) FROM items) || ', users ' || (SELECT count(*) FROM users)"
}

# What the EXIT trap undoes when a verb stops half-way: the scratch database
# is dropped, the dev database accepts connections again, the port forward
# and the temporary files go.
SCRATCH="" LOCKED="" FORWARD_PID="" WORK=""
cleanup() {
  if [[ -n "$FORWARD_PID" ]]; then kill "$FORWARD_PID" 2>/dev/null || log "port-forward $FORWARD_PID had ended"; fi
  if [[ -n "$WORK" ]]; then rm -rf "$WORK"; fi
  if [[ -n "$LOCKED" ]]; then
    sql postgres "ALTER DATABASE \"$LOCKED\" WITH ALLOW_CONNECTIONS true" >/dev/null
  fi
  if [[ -n "$SCRATCH" ]]; then
    sql postgres "DROP DATABASE IF EXISTS \"$SCRATCH\" WITH (FORCE)" >/dev/null
  fi
}

new_scratch() {
  SCRATCH="${DB_NAME}_scratch_$$"
  sql postgres "DROP DATABASE IF EXISTS \"$SCRATCH\" WITH (FORCE)" "CREATE DATABASE \"$SCRATCH\" TEMPLATE template0" >/dev/null
}

# Swaps the scratch database in for the dev database: new connections to it
# are refused, the open ones (the API's pool) ended, and both renames happen
# in one transaction, so either both happen or neither. The API's next
# connection reaches the new database.
swap_in_scratch() {
  local old="${DB_NAME}_replaced_$$"
  LOCKED="$DB_NAME"
  sql postgres "ALTER DATABASE \"$DB_NAME\" WITH ALLOW_CONNECTIONS false" \
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$DB_NAME' AND pid <> pg_backend_pid()" \
    "ALTER DATABASE \"$DB_NAME\" RENAME TO \"$old\"; ALTER DATABASE \"$SCRATCH\" RENAME TO \"$DB_NAME\"" >/dev/null ||
    die "could not swap the databases (the error is above); the database is as it was"
  LOCKED="" SCRATCH=""
  sql postgres "DROP DATABASE \"$old\" WITH (FORCE)" >/dev/null
}

migrate() {
  if [[ "$TARGET" == cluster ]]; then migrate_cluster; else migrate_env; fi
}

# ---- the verbs ---------------------------------------------------------------------

check_name() {
  [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "a snapshot name is letters, digits, '.', '_' and '-', not '$1'"
}

cmd_snapshot() {
  local name="${1:-snapshot}" file version
  check_name "$name"
  require_postgres
  mkdir -p "$SNAPSHOTS"
  file="$SNAPSHOTS/$name-$(date -u +%Y%m%dT%H%M%SZ).dump"
  [[ ! -e "$file" ]] || die "$file exists already (one snapshot per name and second)"
  version="$(schema_version "$DB_NAME")"
  log "snapshot of $DB_NAME ($(row_counts "$DB_NAME"); schema $version) from $WHERE"
  # pg_dump reads everything in one transaction: a consistent snapshot while
  # the API keeps writing. Custom format: compressed, restored by pg_restore.
  if ! pgtool pg_dump -Fc --no-owner --no-acl -d "$DB_NAME" >"$file.partial"; then
    rm -f "$file.partial"
    die "pg_dump failed (its error is above); no snapshot was written"
  fi
  mv "$file.partial" "$file"
  log "wrote $file ($(du -h "$file" | cut -f1))"
}

# find_snapshot [NAME]: the file to restore.
find_snapshot() {
  local name="${1:-}" newest
  if [[ -n "$name" && ( "$name" == */* || "$name" == *.dump ) ]]; then
    [[ "$name" == */* ]] || name="$SNAPSHOTS/$name"
    [[ -f "$name" ]] || die "no snapshot $name. Nothing was changed."
    echo "$name"
    return
  fi
  [[ -z "$name" ]] || check_name "$name"
  newest="$(newest_first "${name:-*}" | head -n1)"
  [[ -n "$newest" ]] || die "no snapshot${name:+ called $name} in $SNAPSHOTS (scripts/db.sh list). Nothing was changed."
  echo "$newest"
}

# newest_first PATTERN: the snapshots NAME-<time>.dump whose NAME matches, the
# last written first (ls -t: portable, and finer than the name's seconds).
newest_first() {
  # $1 is a pattern on purpose ('*' or a checked name); the folder is quoted.
  # shellcheck disable=SC2206
  local files=("$SNAPSHOTS"/$1-*Z.dump)
  [[ -e "${files[0]}" ]] || return 0
  ls -1t -- "${files[@]}"
}

cmd_restore() {
  local file version latest
  file="$(find_snapshot "${1:-}")"
  require_postgres
  latest="$(latest_migration)"
  log "restoring $file into $DB_NAME ($WHERE)"
  new_scratch
  if ! pgtool pg_restore --no-owner --no-acl --exit-on-error -d "$SCRATCH" <"$file"; then
    die "pg_restore failed (its error is above): $file is damaged or not a kindling snapshot. Nothing was changed."
  fi
  if ! version="$(schema_version "$SCRATCH" 2>&1)"; then
    die "$file has no _sqlx_migrations table: not a kindling snapshot. Nothing was changed."
  fi
  if ((version > latest)); then
    die "$file has schema $version, newer than this checkout's migrations/ ($latest): check out the" \
        "commit that made it, or run its migrations first. Nothing was changed."
  fi
  swap_in_scratch
  log "restored: $(row_counts "$DB_NAME"); schema $version"
  if ((version < latest)); then
    log "the snapshot's schema $version is older than migrations/ ($latest): migrating forward"
    migrate
  fi
}

cmd_reset() {
  local version latest
  require_postgres
  latest="$(latest_migration)"
  log "resetting $DB_NAME ($WHERE): an empty database, then the migrations"
  new_scratch
  swap_in_scratch
  migrate
  version="$(schema_version "$DB_NAME")"
  ((version == latest)) || die "after the migration the schema is $version, migrations/ has $latest"
  log "reset: $(row_counts "$DB_NAME"); schema $version"
}

# Deterministic, realistic rows: row i always has the same name, description,
# username and email, so the same N gives the same rows.
ADJECTIVES=(Walnut Brass Linen Copper Oak Ceramic Wool Cedar Slate Birch)
PRODUCTS=("desk lamp" "bookshelf" "coffee mug" "side table" "wall clock" "throw blanket" "pen holder" "planter")
FINISHES=(matte polished natural oiled)
FIRST=(ada grace alan barbara edsger frances donald margaret ken radia linus hedy)
LAST=(lovelace hopper turing liskov dijkstra allen knuth hamilton thompson perlman torvalds lamarr)

item_name() {
  local i="$1" a=${#ADJECTIVES[@]} p=${#PRODUCTS[@]} f=${#FINISHES[@]}
  printf '%s %s, %s, no. %d' "${ADJECTIVES[i % a]}" "${PRODUCTS[(i / a) % p]}" "${FINISHES[(i / (a * p)) % f]}" "$((i + 1))"
}

username() {
  local i="$1" f=${#FIRST[@]} l=${#LAST[@]}
  local first="${FIRST[i % f]}" last="${LAST[(i / f + i) % l]}"
  printf '%s.%s%d' "$first" "$last" "$((i + 1))"
}

# post PATH JSON: 201, or stop with the API's answer.
post() {
  local path="$1" body="$2" out code
  out="$(curl -sS --max-time 10 -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data "$body" "$API_URL$path")" || die "POST $API_URL$path failed: the API does not answer"
  code="${out##*$'\n'}"
  [[ "$code" == 201 ]] || die "POST $path $body: the API answered $code ${out%$'\n'*}"
}

# missing HAVE WANT: the 0-based line numbers of WANT's lines that HAVE lacks.
missing() {
  awk 'FILENAME == ARGV[1] { have[$0]; next } !($0 in have) { print FNR - 1 }' "$1" "$2"
}

cmd_seed() {
  local n="${1:-$DEFAULT_SEED}" i added_items=0 added_users=0 user
  [[ "$n" =~ ^[1-9][0-9]{0,3}$ ]] || die "seed takes a count from 1 to 9999, not '$n'"
  require_postgres
  command -v curl >/dev/null || die "curl is not installed"
  if [[ "$TARGET" == cluster ]]; then api_cluster; else api_env; fi
  # A 503 is retried for up to 15 s: right after a restore or reset the
  # pool's first tries meet the connections the swap ended, and it replaces
  # them. No answer at all stops at once.
  local code=""
  for ((i = 0; i < 30; i++)); do
    code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$API_URL/api/v1/health/ready")" ||
      die "the API at $API_URL does not answer (is kindling-api running?). Nothing was changed."
    [[ "$code" == 503 ]] || break
    sleep 0.5
  done
  [[ "$code" == 200 ]] || die "the API at $API_URL is not ready ($code). Nothing was changed."
  log "seeding $n items and $n users through the API at $API_URL"
  # What exists is read from the database; what is missing is written through
  # the API, so every row passes its validation. Seeding again adds nothing.
  # (Files and awk rather than an associative array: macOS's bash 3.2 has none.)
  [[ -n "$WORK" ]] || WORK="$(mktemp -d)"
  for ((i = 0; i < n; i++)); do item_name "$i"; echo; done >"$WORK/items"
  for ((i = 0; i < n; i++)); do username "$i"; echo; done >"$WORK/users"
  sql "$DB_NAME" "SELECT name FROM items" >"$WORK/have-items"
  sql "$DB_NAME" "SELECT lower(username) FROM users" >"$WORK/have-users"
  for i in $(missing "$WORK/have-items" "$WORK/items"); do
    post /api/items "{\"name\":\"$(item_name "$i")\",\"description\":\"Stock code KD-$(printf '%04d' "$((i + 1))").\"}"
    added_items=$((added_items + 1))
  done
  for i in $(missing "$WORK/have-users" "$WORK/users"); do
    user="$(username "$i")"
    post /api/users "{\"username\":\"$user\",\"email\":\"$user@example.com\"}"
    added_users=$((added_users + 1))
  done
  log "added $added_items items and $added_users users; $DB_NAME has $(row_counts "$DB_NAME")"
}

cmd_psql() {
  require_postgres
  printf 'psql on %s:\n%s\n' "$WHERE" "$PSQL_HINT"
  # The client next to the server: no port forward and no local psql needed.
  if [[ -t 0 && -t 1 ]]; then
    log "opening it here (psql inside the server's container)"
    if [[ "${EXEC[0]:-}" == docker || "${EXEC[0]:-}" == kubectl ]]; then
      # -i alone gives psql no terminal: add -t after "exec".
      local with_tty=() part
      for part in ${EXEC[@]+"${EXEC[@]}"}; do
        with_tty+=("$part")
        [[ "$part" == exec ]] && with_tty+=(-t)
      done
      EXEC=("${with_tty[@]}")
    fi
    exec ${EXEC[@]+"${EXEC[@]}"} env PGPASSWORD="$DB_PASSWORD" psql -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" "$DB_NAME"
  fi
  # From Tilt's button there is no terminal: open one where the desktop has one.
  local here="$ROOT/scripts/db.sh psql"
  if [[ "${KINDLING_DB_OPEN_TERMINAL:-1}" == 1 ]]; then
    if [[ "$(uname -s)" == Darwin ]] && command -v osascript >/dev/null; then
      log "opening it in Terminal"
      osascript -e "tell application \"Terminal\" to do script \"$here\"" >/dev/null
      return
    elif [[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]] && command -v x-terminal-emulator >/dev/null; then
      log "opening it in x-terminal-emulator"
      x-terminal-emulator -e "$here" >/dev/null 2>&1 &
      return
    fi
  fi
  log "no terminal to open it in: run the command above, or scripts/db.sh psql in a terminal"
}

cmd_list() {
  local file
  log "snapshots in $SNAPSHOTS, newest first"
  while IFS= read -r file; do
    printf '%-50s %8s KiB\n' "${file##*/}" "$(($(wc -c <"$file") / 1024))"
  done < <(newest_first '*')
}

(($#)) || usage
verb="$1"
shift
case "$verb" in
  snapshot | restore | reset | seed | psql) ;;
  list) cmd_list; exit 0 ;;
  -h | --help) usage ;;
  *) echo "db.sh: unknown verb '$verb'" >&2; usage ;;
esac
(($# <= 1)) || usage

TARGET="${KINDLING_DB_TARGET:-cluster}"
trap cleanup EXIT
case "$TARGET" in
  cluster) choose_cluster ;;
  env) choose_env ;;
  *) die "KINDLING_DB_TARGET must be cluster or env, not '$TARGET'" ;;
esac
"cmd_$verb" "$@"
