#!/usr/bin/env bash
# The performance benchmark (docs/performance.md): one command, one run, the
# API measured side by side with pgbench issuing the API's own queries.
#
#   bench/run.sh [--quick] [--name NAME] [--reps N] [--duration SECONDS] [--binary PATH]
#
# Starts a throwaway local PostgreSQL (17 when installed, else 16 or 15) and
# a Loki stand-in, builds and starts the release binary, seeds 10,000 items,
# loads it with wrk (32 keep-alive connections) and pgbench (-M prepared, 32
# clients), prints a table with ratios, writes bench/results/NAME.json and
# checks that no log line was lost. Exits 1 when something was lost or
# failed, or when a full run misses a target (docs/performance.md).
# --quick: one repetition of 2 s per row, whose ratios are not judged (CI
# keeps the script from rotting); the default is 3 repetitions of 10 s.
# --binary: measure that kindling binary instead of building one (an earlier
# commit's, for a before/after pair); the result records its path and git
# describes the checkout, not the binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

QUICK=0 NAME="" REPS=3 DURATION=10 BINARY=
CONNECTIONS=32 THREADS=2 ITEMS=10000
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 REPS=1 DURATION=2 ;;
    --name) NAME=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --binary) BINARY=$(realpath "$2"); shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
MODE=$([[ $QUICK == 1 ]] && echo quick || echo full)
[[ -n $NAME ]] || NAME="$MODE-$(date -u +%Y%m%dT%H%M%SZ)"
RESULT=$ROOT/bench/results/$NAME.json

STARTED=$(date +%s)
log() { printf '[bench +%3ds] %s\n' "$(($(date +%s) - STARTED))" "$*" >&2; }

# The verdict's own tests first (a fraction of a second): a report that
# passed a missed target would make the whole run meaningless.
log "python3 -m unittest bench/test_benchlib.py"
python3 -m unittest -q bench/test_benchlib.py

# ---------------------------------------------------------------- tools
# wrk from Debian: installs in seconds (oha would compile for minutes) and
# its Lua hooks give p99.9, per-request URLs and bodies (PUT's If-Match).
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  apt-get update -qq
  apt-get install -y -qq wrk >/dev/null
fi
PG_BIN=""
for v in 17 16 15; do
  if [[ -x /usr/lib/postgresql/$v/bin/postgres ]]; then PG_BIN=/usr/lib/postgresql/$v/bin; break; fi
done
[[ -n $PG_BIN ]] || { echo "no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql)" >&2; exit 1; }
PGBENCH=$PG_BIN/pgbench
[[ -x $PGBENCH ]] || PGBENCH=$(command -v pgbench)
for tool in python3 curl psql; do
  command -v $tool >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/kindling-bench.XXXXXX)
chmod 755 "$WORK" # the postgres user reaches its data directory through it
mkdir -p "$WORK/rows" "$WORK/instances" "$WORK/pglog" "$WORK/pg"
API_PID="" STANDIN_PID=""
cleanup() {
  local rc=$?
  [[ -z $API_PID ]] || kill "$API_PID" 2>/dev/null || true
  [[ -z $STANDIN_PID ]] || kill "$STANDIN_PID" 2>/dev/null || true
  if [[ -f $WORK/pg/data/postmaster.pid ]]; then as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop >/dev/null || true; fi
  if [[ ${BENCH_KEEP:-0} == 1 || $rc != 0 ]]; then log "work files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- build
if [[ -n $BINARY ]]; then
  [[ -x $BINARY ]] || { echo "--binary $BINARY: not an executable" >&2; exit 2; }
  log "measuring $BINARY (no build)"
  BIN=$BINARY BUILD_MS=0
else
  log "cargo build --release --locked"
  build_started=$(date +%s%N)
  cargo build --release --locked --quiet
  BUILD_MS=$((($(date +%s%N) - build_started) / 1000000))
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/kindling
fi

# ---------------------------------------------------------------- Postgres
PG_PORT=$(free_port)
[[ $(id -u) != 0 ]] || chown postgres "$WORK/pg"
log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (throwaway, $WORK/pg)"
as_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK/pg -c max_connections=200" start >/dev/null
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres)
"${PSQL[@]}" -d postgres -c 'CREATE DATABASE bench'
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/bench"
RUST_LOG=warn "$BIN" migrate >/dev/null
log "seeding $ITEMS items"
"${PSQL[@]}" -d bench -c "INSERT INTO items (name, description)
  SELECT 'item ' || g, 'seeded by bench/run.sh' FROM generate_series(1, $ITEMS) g" -c 'VACUUM ANALYZE items'
python3 bench/benchlib.py pgbench-scripts core/src/repository/items.rs "$WORK/sql"

# ---------------------------------------------------------------- Loki stand-in
python3 bench/loki_standin.py "$WORK/loki.port" &
STANDIN_PID=$!
for _ in $(seq 100); do [[ -s $WORK/loki.port ]] && break; sleep 0.05; done
LOKI_PORT=$(cat "$WORK/loki.port")
loki_entries() { curl -fsS "http://127.0.0.1:$LOKI_PORT/count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"])'; }

# ---------------------------------------------------------------- the API
API_PORT=$(free_port)
API=http://127.0.0.1:$API_PORT
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$API_PID/status"; }

# start_api LABEL LEVEL: LEVEL is "default" (the shipped RUST_LOG default) or a RUST_LOG value.
start_api() {
  local label=$1 level=$2 t0
  LABEL=$label LEVEL=$level
  LOKI_BEFORE=$(loki_entries)
  t0=$(date +%s%N)
  if [[ $level == default ]]; then
    env -u RUST_LOG ROCKET_ADDRESS=127.0.0.1 ROCKET_PORT="$API_PORT" LOKI_URL="http://127.0.0.1:$LOKI_PORT" \
      "$BIN" serve >"$WORK/instances/$label.stdout" 2>"$WORK/instances/$label.stderr" &
  else
    env RUST_LOG="$level" ROCKET_ADDRESS=127.0.0.1 ROCKET_PORT="$API_PORT" LOKI_URL="http://127.0.0.1:$LOKI_PORT" \
      "$BIN" serve >"$WORK/instances/$label.stdout" 2>"$WORK/instances/$label.stderr" &
  fi
  API_PID=$!
  until curl -fsS -o /dev/null "$API/api/v1/health/ready" 2>/dev/null; do
    kill -0 "$API_PID" 2>/dev/null || { cat "$WORK/instances/$label.stderr" >&2; exit 1; }
    sleep 0.005
  done
  READY_MS=$((($(date +%s%N) - t0) / 1000000))
  sleep 1
  RSS_IDLE=$(rss_kib)
  log "API $label (RUST_LOG=$level) ready in $READY_MS ms, RSS $((RSS_IDLE / 1024)) MiB idle"
  # Warm-up: opens the pool's connections and prepares the statements.
  WRK_OUT=$WORK/warmup.json WRK_LUA_DIR=$ROOT/bench/wrk BENCH_ITEMS=$ITEMS BENCH_THREADS=$THREADS \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d1s -s bench/wrk/get.lua "$API" >/dev/null
}

stop_api() {
  local rss_loaded access stdout_lines loki_after
  rss_loaded=$(rss_kib)
  curl -fsS "$API/metrics" >"$WORK/instances/$LABEL.metrics"
  kill -TERM "$API_PID"
  wait "$API_PID" || { echo "API exited with $?" >&2; exit 1; }
  API_PID=""
  access=$(grep -c '"target":"kindling::access"' "$WORK/instances/$LABEL.stdout" || [[ $? == 1 ]])
  stdout_lines=$(wc -l <"$WORK/instances/$LABEL.stdout")
  loki_after=$(loki_entries)
  printf '{"label":"%s","log_level":"%s","ready_ms":%d,"rss_idle_kib":%d,"rss_after_load_kib":%d,"access_lines":%d,"stdout_lines":%d,"loki_received":%d}\n' \
    "$LABEL" "$LEVEL" "$READY_MS" "$RSS_IDLE" "$rss_loaded" "$access" "$stdout_lines" "$((loki_after - LOKI_BEFORE))" \
    >"$WORK/instances/$LABEL.json"
  log "API $LABEL stopped: RSS $((rss_loaded / 1024)) MiB after load, $access access lines, $stdout_lines stdout lines, $((loki_after - LOKI_BEFORE)) received by the Loki stand-in"
}

# ---------------------------------------------------------------- rows
summary() { python3 bench/benchlib.py summary "$1"; }

# CPU time (user + system, in clock ticks) the API process has used so far.
api_cpu_ticks() { awk '{print $14 + $15}' "/proc/$API_PID/stat"; }
CLK_TCK=$(getconf CLK_TCK)

http_row() { # ROW SCRIPT REP
  local out=$WORK/rows/$1.$3.json cpu0
  cpu0=$(api_cpu_ticks)
  WRK_OUT=$out WRK_LUA_DIR=$ROOT/bench/wrk BENCH_ITEMS=$ITEMS BENCH_THREADS=$THREADS \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s "bench/wrk/$2.lua" "$API" >>"$WORK/wrk.log"
  python3 bench/benchlib.py row-cpu "$out" "$(($(api_cpu_ticks) - cpu0))" "$CLK_TCK"
  log "$(printf '%-16s' "$1") $(summary "$out")"
}

# Dead rows (the PUT row's old versions) and stale statistics slow the rows
# after them: each pgbench row and each API's GET row starts on a vacuumed,
# analysed table, whatever ran before it.
vacuum() { "${PSQL[@]}" -d bench -c 'VACUUM (ANALYZE) items'; }

pgbench_row() { # ROW SCRIPT REP
  local prefix=$WORK/pglog/$1.$3 out=$WORK/rows/$1.$3.json
  vacuum
  (cd "$WORK/pglog" && "$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared \
    -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" -D items="$ITEMS" \
    -D name="bench item" -D description="written by pgbench" \
    -l --log-prefix="$prefix" -f "$WORK/sql/$2.sql" bench) >"$prefix.out" 2>&1 \
    || { cat "$prefix.out" >&2; exit 1; }
  python3 bench/benchlib.py pgbench-row "$prefix.out" "$prefix".[0-9]* >"$out"
  rm -f "$prefix".[0-9]*
  log "$(printf '%-16s' "$1") $(summary "$out")"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $LOAD_BEFORE; $REPS repetition(s) of ${DURATION}s per row"
error_level_rows() { # REP
  vacuum
  start_api "error-level-$1" error
  http_row get_error_level get "$1"
  stop_api
}
full_level_rows() { # REP
  vacuum
  start_api "full-$1" default
  http_row get get "$1"
  http_row health health "$1"
  http_row list list "$1"
  http_row post post "$1"
  "${PSQL[@]}" -d bench -c "UPDATE items SET version = 1 WHERE id <= $ITEMS AND version <> 1"
  http_row put put "$1"
  stop_api
}
for rep in $(seq "$REPS"); do
  log "repetition $rep/$REPS"
  pgbench_row pgbench_read read "$rep"
  # The telemetry cost compares the two GET rows: they swap places from one
  # repetition to the next, so that neither is always the one that runs
  # first (on a cooler machine, closer to the pgbench row).
  if ((rep % 2)); then
    error_level_rows "$rep"
    full_level_rows "$rep"
  else
    full_level_rows "$rep"
    error_level_rows "$rep"
  fi
  pgbench_row pgbench_insert insert "$rep"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
git_sha=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- src Cargo.toml Cargo.lock || git_sha="$git_sha+local changes"
python3 - "$WORK/meta.json" <<PY
import json, platform, subprocess, sys
def first(cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
json.dump({
    "mode": "$MODE", "reps": $REPS, "duration_s": $DURATION,
    "connections": $CONNECTIONS, "load_threads": $THREADS, "items": $ITEMS,
    "date": "$(date -u +%FT%TZ)", "git": "$git_sha",
    "release_build_ms": $BUILD_MS, "binary": "${BINARY:-built from this checkout}",
    "load_before": "$LOAD_BEFORE", "load_after": "$LOAD_AFTER",
    "machine": {"nproc": $(nproc), "cpu": cpu, "mem_mib": mem // 1024,
                "kernel": platform.release(), "os": first(["sh", "-c", ". /etc/os-release; echo \$PRETTY_NAME"])},
    "versions": {"postgres": first(["$PG_BIN/postgres", "--version"]),
                 "pgbench": first(["$PGBENCH", "--version"]),
                 "wrk": first(["wrk", "--version"]).split(" [")[0],
                 "rustc": first(["rustc", "--version"])},
}, open(sys.argv[1], "w"), indent=1)
PY
log "release build took $((BUILD_MS / 1000)) s; total $(($(date +%s) - STARTED)) s"
python3 bench/benchlib.py report "$WORK" "$RESULT"
