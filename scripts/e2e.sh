#!/usr/bin/env bash
# End-to-end check of the whole platform on a real kind or minikube cluster, for
# any machine with Docker, kubectl, Tilt and kind or minikube (and, for the
# default host build on Linux, cargo). It is what a new user's first
# `scripts/dev-up.sh` does (it runs `dev-up.sh --no-tilt` for the cluster), then
# proves it:
#
#   scripts/e2e.sh [--cluster kind|minikube] [--skip-observability]
#                                  create the cluster (or reuse it), tilt ci, the
#                                  checks below, then delete what it created
#                                  (scripts/e2e-kind.sh: --cluster kind)
#   E2E_KEEP=1 scripts/e2e.sh      keep the cluster and the workloads afterwards
#   E2E_SMOKE_ONLY=1 scripts/e2e.sh  only the checks through the ingress, against what
#                                  already runs (the Helm job in e2e.yml); creates and
#                                  removes nothing
#
# --skip-observability is passed on to the Tiltfile; without it a missing
# observability namespace is a failure, not a note.
#
# One PASS/FAIL line per check, then "N passed, N failed". Settings (env):
#   E2E_TILT_TIMEOUT      tilt ci --timeout (default 30m: the first run compiles
#                         every dependency)
#   E2E_LIVE_SECONDS      edit-to-live limit of the live update through Tilt, from
#                         saving the handler to the first response with the edit
#                         (default 15)
#   E2E_WAIT_SECONDS      how long a check waits for Prometheus, Loki or the HPA to
#                         show what it looks for (default 120)
#   E2E_TILT_ARGS         Tiltfile flags, e.g. "--build=docker"
#   E2E_INGRESS_IP        where kindling.localhost:80 is reached: kind 127.0.0.1
#                         (its port mapping); minikube the node IP, reachable from
#                         a Linux host (on macOS run `minikube tunnel -p kindling
#                         --bind-address 127.0.0.1` and set 127.0.0.1)
# The handler edit is made on the working tree and always reverted on exit.
#
# The checks are functions that read the cluster through kubectl and curl only, and
# sourcing this file defines them without running anything: the self-test
# (verify/kindling_verify/dev_loop/test_e2e_checks.py) runs them against recorded
# answers and expects each bad one to FAIL.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NS=kindling
OBS_NS=kindling-observability
HOST=kindling.localhost
HANDLER=src/routes/health.rs
# The API's pods and container (k8s/base/api/deployment.yaml).
API_SELECTOR=app.kubernetes.io/name=kindling,app.kubernetes.io/component=api
API_CONTAINER=api
# tilt up forwards Prometheus and Grafana; Loki is forwarded by this script.
PROM_URL=http://localhost:9090
GRAFANA_URL=http://localhost:3000
LOKI_PORT=13100
LOKI_URL="http://localhost:$LOKI_PORT"
TILT_PORT=10350
LIVE_SECONDS="${E2E_LIVE_SECONDS:-15}"
WAIT_SECONDS="${E2E_WAIT_SECONDS:-120}"
# The database refuses this name through a CHECK added for the run: the API has
# validated it, so the refusal is an internal error (500), logged at error level,
# which the logs dashboard's error panel needs (as in CI's observability/e2e.py).
REFUSED_NAME="e2e: refused by the database"
REFUSED_CONSTRAINT=e2e_refused_name

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'PASS %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
log() { printf '==> %s\n' "$*" >&2; }
# json EXPR: evaluate a Python expression over the JSON document on stdin (j).
json() { python3 -c "import json, sys; j = json.load(sys.stdin); print($1)"; }
# retry SECONDS CMD...: until CMD succeeds or SECONDS pass (0: once).
retry() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < end)) || return 1
    sleep 3
  done
}
now() { python3 -c 'import time; print(f"{time.time():.2f}")'; }
now_ns() { python3 -c 'import time; print(time.time_ns())'; }

# ---- answers of Prometheus and Loki ---------------------------------------------------
# prom_query EXPR: the instant query's result as "labels value" lines (nothing for an
# empty result); non-zero with the error when Prometheus refuses it or does not answer.
prom_query() {
  curl -sS --max-time 10 -G "$PROM_URL/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
try:
    j = json.load(sys.stdin)
except ValueError:
    sys.exit("no JSON answer from Prometheus")
if j.get("status") != "success":
    sys.exit(j.get("error") or "status " + str(j.get("status")))
data = j["data"]
result = data["result"] if data["resultType"] in ("vector", "matrix") else [{"metric": {}, "value": data["result"]}]
for r in result:
    labels = ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()))
    print("{" + labels + "}", r["value"][1] if "value" in r else len(r["values"]))
'
}

# loki_count QUERY START_NS: the number of samples or lines Loki's query_range gives
# from START_NS to now; non-zero with the error when Loki refuses it or does not answer.
loki_count() {
  curl -sS --max-time 20 -G "$LOKI_URL/loki/api/v1/query_range" --data-urlencode "query=$1" \
    --data-urlencode "start=$2" --data-urlencode "end=$(now_ns)" --data-urlencode "limit=100" | python3 -c '
import json, sys
try:
    j = json.load(sys.stdin)
except ValueError:
    sys.exit("no JSON answer from Loki")
if j.get("status") != "success":
    sys.exit(j.get("error") or j.get("message") or "status " + str(j.get("status")))
print(sum(len(s.get("values", [])) for s in j["data"]["result"]))
'
}

# dashboard_queries TYPE [REQUEST_ID] < dashboard.json: "title<TAB>refId<TAB>expr" per
# query, as Grafana sends it (the module CI's observability suite uses).
dashboard_queries() {
  PYTHONPATH="$ROOT/verify" python3 -m kindling_verify.observability.dashboard_queries "$@"
}

# ---- checks: each prints PASS or FAIL lines ---------------------------------------------
# check_observability_namespace SKIP(true|false): succeeds when the observability checks
# apply. A missing namespace is a failure unless the run skips observability.
check_observability_namespace() {
  if $1; then
    log "--skip-observability: the observability checks do not apply"
    return 1
  elif kubectl get namespace "$OBS_NS" >/dev/null; then
    pass "namespace $OBS_NS exists"
  else
    fail "namespace $OBS_NS is missing (Prometheus, Loki and Grafana were not deployed)"
    return 1
  fi
}

# post_201_count: how many item creations Prometheus has counted (0 before the first).
POST_201='sum(http_requests_total{namespace="kindling", route="/api/items", method="POST", status="201"})'
post_201_count() {
  local out
  out="$(prom_query "$POST_201")" || return 1
  if [[ -z "$out" ]]; then echo 0; else echo "${out##* }"; fi
}

# check_post_counted BEFORE: the smoke POST is counted by what it is.
check_post_counted() {
  local before=$1 after=""
  counted() { after="$(post_201_count)" && python3 -c "import sys; sys.exit(not float('$after') > float('$before'))"; }
  if retry "$WAIT_SECONDS" counted; then
    pass "Prometheus: POST /api/items 201 counted ($before -> $after)"
  else
    fail "Prometheus: POST /api/items 201 not counted after the smoke POST ($before -> ${after:-no answer}): $POST_201"
  fi
}

# check_targets_up: every target of the API, kube-state-metrics and the kubelet's cAdvisor
# is up (there is at least one of each).
check_targets_up() {
  local selector out
  for selector in 'job="kubernetes-pods", app="kindling-api"' 'job="kube-state-metrics"' 'job="kubelet-cadvisor"'; do
    all_up() { out="$(prom_query "up{$selector}")" && [[ -n "$out" ]] && ! grep -qv ' 1$' <<<"$out"; }
    if retry "$WAIT_SECONDS" all_up; then
      pass "Prometheus: up{$selector} is 1 ($(wc -l <<<"$out" | tr -d ' ') targets)"
    else
      fail "Prometheus: up{$selector}: ${out:-no target}"
    fi
  done
}

# query_size prometheus|loki EXPR START_NS: how many series (Prometheus) or samples and
# lines since START_NS (Loki) the query returns; non-zero with the error when refused.
query_size() {
  local out
  if [[ "$1" == prometheus ]]; then
    out="$(prom_query "$2")" || return 1
    awk 'NF { n++ } END { print n + 0 }' <<<"$out"
  else
    loki_count "$2" "$3"
  fi
}

# check_dashboard_queries prometheus|loki REQUEST_ID START_NS DASHBOARD.json...: every
# query of that datasource executes and returns data (queries on $request_id: with it
# empty, then set), as CI's observability/e2e.py requires of the same queries.
check_dashboard_queries() {
  local kind=$1 id=$2 start=$3 source language board queries title ref expr out n bad
  shift 3
  if [[ "$kind" == prometheus ]]; then source=Prometheus language=PromQL; else source=Loki language=LogQL; fi
  has_data() { out="$(query_size "$kind" "$expr" "$start" 2>&1)" && ((out > 0)); }
  for board in "$@"; do
    queries="$(dashboard_queries "$kind" "$id" <"$board")" || { fail "$source: could not read the queries of $board"; continue; }
    [[ -n "$queries" ]] || continue  # none of this datasource on this dashboard
    n=0
    bad=0
    while IFS=$'\t' read -r title ref expr; do
      n=$((n + 1))
      # A series appears with the first scrape after the request that makes it; the API
      # ships its log lines in batches.
      if retry $((WAIT_SECONDS / 4)) has_data; then
        continue
      elif [[ "$out" =~ ^[0-9]+$ ]]; then
        fail "$source: $(basename "$board") '$title' $ref returned nothing: $expr"
      else
        fail "$source: $(basename "$board") '$title' $ref does not execute: ${out:-no answer}"
      fi
      bad=$((bad + 1))
    done <<<"$queries"
    if ((bad == 0)); then pass "$source: all $n $language queries of $(basename "$board") return data"; fi
  done
}

# check_rules RULE_FILE...: Prometheus has loaded every rule of the files, evaluates each
# without error, and each one's expression executes when queried.
check_rules() {
  local want got name health query error out bad=0 rules
  want="$(awk '/^[[:space:]]*- (alert|record):/ { n++ } END { print n + 0 }' "$@")"
  if ! rules="$(curl -sS --max-time 10 "$PROM_URL/api/v1/rules" | python3 -c '
import json, sys
for g in json.load(sys.stdin)["data"]["groups"]:
    for r in g["rules"]:
        print("\t".join((r["name"], r.get("health", ""), " ".join(r["query"].split()), r.get("lastError", ""))))
' 2>&1)"; then
    fail "Prometheus: /api/v1/rules: $rules"
    return
  fi
  got="$(awk 'NF { n++ } END { print n + 0 }' <<<"$rules")"
  if ((got != want)); then
    fail "Prometheus: $got rules loaded, the rule files define $want"
    bad=1
  fi
  while IFS=$'\t' read -r name health query error; do
    [[ -n "$name" ]] || continue
    if [[ "$health" != ok ]]; then
      fail "Prometheus: rule $name health '$health' ${error:+($error)}"
      bad=1
    elif ! out="$(prom_query "$query" 2>&1)"; then
      fail "Prometheus: rule $name does not execute: $out"
      bad=1
    fi
  done <<<"$rules"
  if ((bad == 0)); then pass "Prometheus: all $want rules loaded, healthy and executing"; fi
}

# check_loki_request REQUEST_ID START_NS: the request's log lines, found by its id (a
# line filter, whatever the JSON layout of the line).
check_loki_request() {
  local query="{app=\"kindling-api\", namespace=\"$NS\"} |= \"$1\"" start=$2 count=""
  found() { count="$(loki_count "$query" "$start" 2>&1)" && ((count > 0)); }
  if retry "$WAIT_SECONDS" found; then
    pass "Loki: $count log lines of request $1"
  else
    fail "Loki: no log line of request $1 (${count:-no answer}): $query"
  fi
}

# api_pod_states: one line per running API pod: name uid restartCount imageID pid, the
# pid being the kindling process the dev entrypoint (tilt/dev-entrypoint.sh) started.
api_pod_states() {
  local pods name uid restarts image pid
  pods="$(kubectl -n "$NS" get pods -l "$API_SELECTOR" -o json | python3 -c '
import json, sys
for p in json.load(sys.stdin)["items"]:
    if p["status"].get("phase") != "Running" or p["metadata"].get("deletionTimestamp"):
        continue
    c = [c for c in p["status"].get("containerStatuses", []) if c["name"] == sys.argv[1]][0]
    print(p["metadata"]["name"], p["metadata"]["uid"], c["restartCount"], c["imageID"] or "none")
' "$API_CONTAINER")" || return 1
  while read -r name uid restarts image; do
    [[ -n "$name" ]] || continue
    # shellcheck disable=SC2016  # expanded by the container's shell
    pid="$(kubectl -n "$NS" exec "$name" -c "$API_CONTAINER" -- \
             sh -c 'cat "${KINDLING_DEV_STATE:-/tmp}/kindling-dev.pid"' </dev/null)" || pid=none
    echo "$name $uid $restarts $image $pid"
  done <<<"$pods"
}

# check_updated_in_place BEFORE AFTER (api_pod_states, before and after the edit): the
# live update replaced the process in each pod and nothing else: same pod (uid), no
# container restart, the same image; only the pid changed.
check_updated_in_place() {
  local name uid restarts image pid now_line n_uid n_restarts n_image n_pid problems
  if [[ -z "$1" ]]; then
    fail "live update: no running API pod before the edit"
    return
  fi
  while read -r name uid restarts image pid; do
    now_line="$(grep "^$name " <<<"$2")" || now_line=""
    if [[ -z "$now_line" ]]; then
      fail "live update: pod $name (uid $uid) is gone: the pod was replaced, not updated"
      continue
    fi
    read -r _ n_uid n_restarts n_image n_pid <<<"$now_line"
    problems=""
    [[ "$n_uid" == "$uid" ]] || problems+=" pod uid $uid -> $n_uid;"
    [[ "$n_restarts" == "$restarts" ]] || problems+=" container restarts $restarts -> $n_restarts;"
    [[ "$n_image" == "$image" ]] || problems+=" image $image -> $n_image;"
    [[ "$pid" != none && "$n_pid" != none && "$n_pid" != "$pid" ]] || problems+=" process not replaced (pid $pid -> $n_pid);"
    if [[ -z "$problems" ]]; then
      pass "live update in place: pod $name kept (uid, $restarts restarts, image), process $pid -> $n_pid"
    else
      fail "live update: pod $name:$problems"
    fi
  done <<<"$1"
}

# every_process_replaced BEFORE AFTER: each pod of BEFORE runs a process with another pid.
every_process_replaced() {
  local name uid restarts image pid n_pid
  while read -r name uid restarts image pid; do
    n_pid="$(awk -v n="$name" '$1 == n { print $5 }' <<<"$2")"
    [[ -n "$n_pid" && "$n_pid" != none && "$n_pid" != "$pid" ]] || return 1
  done <<<"$1"
}

# check_edit_to_live SECONDS: the measured time from saving the edit to its first
# response, against the limit.
check_edit_to_live() {
  if python3 -c "import sys; sys.exit(not float('$1') <= float('$LIVE_SECONDS'))"; then
    pass "live update: edit-to-live through Tilt $1 s (save of $HANDLER to the first response with the edit; limit $LIVE_SECONDS s)"
  else
    fail "live update: edit-to-live through Tilt $1 s, over the limit of $LIVE_SECONDS s (E2E_LIVE_SECONDS)"
  fi
}

# ---- the run ----------------------------------------------------------------------------
usage() { echo "usage: $0 [--cluster kind|minikube] [--skip-observability]" >&2; exit 2; }

main() {
  local cluster=kind skip_obs=false
  while (($#)); do
    case "$1" in
      --cluster=*) cluster="${1#--cluster=}" ;;
      --cluster) cluster="${2:-}"; shift ;;
      --skip-observability) skip_obs=true ;;
      *) usage ;;
    esac
    shift
  done
  CLUSTER="$(sed -n 's/^name:[[:space:]]*//p' "$ROOT/kind-config.yaml")"
  case "$cluster" in
    kind) CONTEXT="kind-$CLUSTER" ;;
    minikube) CONTEXT="$CLUSTER" ;;  # the profile is named like the kind cluster
    *) usage ;;
  esac
  read -r -a TILT_ARGS <<<"${E2E_TILT_ARGS:-}"
  # The flag may also come in E2E_TILT_ARGS (the Tiltfile's own flag).
  for arg in ${TILT_ARGS[@]+"${TILT_ARGS[@]}"}; do [[ "$arg" != --skip-observability ]] || skip_obs=true; done
  if $skip_obs && [[ " ${TILT_ARGS[*]-} " != *" --skip-observability "* ]]; then TILT_ARGS+=(--skip-observability); fi
  SMOKE_ONLY="${E2E_SMOKE_ONLY:-0}"
  cd "$ROOT"

  # Before the trap: a missing tool leaves nothing to clean up.
  local tools=(docker "$cluster" kubectl tilt curl python3)
  if [[ "$SMOKE_ONLY" == 1 ]]; then tools=(kubectl curl python3); fi
  for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (see docs/dev-loop.md, Prerequisites)" >&2; exit 2; }
  done
  WORK="$(mktemp -d)"
  created_cluster=false
  tilt_up_pid=""
  pf_pids=()
  constraint_added=false
  trap cleanup EXIT
  local run_start_ns
  run_start_ns="$(now_ns)"

  if [[ "$SMOKE_ONLY" == 1 ]]; then
    INGRESS=(--resolve "$HOST:80:${E2E_INGRESS_IP:-127.0.0.1}")
    log "E2E_SMOKE_ONLY=1: ingress checks only, against context $(kubectl config current-context)"
  else
    start_cluster_and_tilt "$cluster"
  fi

  # ---- the API through the ingress ------------------------------------------------------
  local obs=false post_before=0
  if [[ "$SMOKE_ONLY" != 1 ]] && check_observability_namespace "$skip_obs"; then
    obs=true
    # Counted before the smoke POST, so that only an increase counts.
    post_before="$(retry "$WAIT_SECONDS" post_201_count)" \
      || { post_before=0; log "Prometheus did not answer $POST_201; counting from 0"; }
  fi
  smoke_id="e2e-$RANDOM$RANDOM"
  name="e2e item $smoke_id"
  item_id=""
  local body code
  if body="$(api -f -H 'Content-Type: application/json' -H "X-Request-Id: $smoke_id" \
               -d "{\"name\": \"$name\", \"description\": \"made by scripts/e2e.sh\"}" "http://$HOST/api/items")" \
     && item_id="$(json 'j["id"]' <<<"$body")" \
     && [[ "$(api -f "http://$HOST/api/items/$item_id" | json 'j["name"]')" == "$name" ]]; then
    pass "item $item_id created and read back through the ingress at $HOST"
  else
    fail "create and read back an item through the ingress at $HOST: ${body:-no answer}"
  fi
  # curl prints 000 when nothing answers; its exit status adds nothing to that.
  code="$(api -o /dev/null -w '%{http_code}' "http://$HOST/api/v1/health/ready")" || code="${code:-000}"
  if [[ "$code" == 200 ]]; then pass "readiness through the ingress: 200"; else fail "readiness through the ingress: $code"; fi
  if [[ "$SMOKE_ONLY" == 1 ]]; then
    echo "e2e smoke: $passed passed, $failed failed"
    exit $((failed > 0))
  fi

  if $obs; then
    check_refused_name_is_a_500
    observability_checks "$post_before" "$smoke_id" "$run_start_ns"
  fi
  check_postgres_restart
  live_update_checks
  check_db_lifecycle
  if $obs; then
    # Last, so that every panel has had its data: the reload panels need the `dev reload`
    # line of the live update's new process.
    check_dashboard_queries prometheus "$smoke_id" "$run_start_ns" k8s/observability/grafana/dashboards/*.json
    check_dashboard_queries loki "$smoke_id" "$run_start_ns" k8s/observability/grafana/dashboards/*.json
  fi

  echo "e2e ($cluster): $passed passed, $failed failed"
  ((failed == 0))
}

api() { curl -sS --max-time 10 "${INGRESS[@]}" "$@"; }

start_cluster_and_tilt() {
  local cluster=$1 ingress_ip start
  cluster_exists() {
    if [[ "$cluster" == kind ]]; then
      kind get clusters 2>/dev/null | grep -qx "$CLUSTER"
    else
      minikube profile list -o json | python3 -c \
        "import json, sys; sys.exit(not any(p.get('Name') == '$CLUSTER' for p in json.load(sys.stdin).get('valid') or []))"
    fi
  }
  if cluster_exists; then
    log "reusing the $cluster cluster $CLUSTER"
  else
    created_cluster=true
  fi
  # The same checks, cluster settings and context as a user's dev-up.sh.
  scripts/dev-up.sh --no-tilt --cluster "$cluster" ${TILT_ARGS[@]+"${TILT_ARGS[@]}"}
  if [[ "$cluster" == kind ]]; then
    ingress_ip="${E2E_INGRESS_IP:-127.0.0.1}"
  else
    ingress_ip="${E2E_INGRESS_IP:-$(minikube -p "$CLUSTER" ip)}"
  fi
  # curl resolves *.localhost to 127.0.0.1 itself; --resolve sends it where the
  # ingress listens.
  INGRESS=(--resolve "$HOST:80:$ingress_ip")
  log "ingress: $HOST -> $ingress_ip"

  log "tilt ci (timeout ${E2E_TILT_TIMEOUT:-30m})"
  start=$SECONDS
  if tilt ci --context "$CONTEXT" --timeout "${E2E_TILT_TIMEOUT:-30m}" -- ${TILT_ARGS[@]+"${TILT_ARGS[@]}"} >"$WORK/tilt-ci.log" 2>&1; then
    pass "tilt ci: every resource ready in $((SECONDS - start)) s"
  else
    fail "tilt ci (last lines below)"
    tail -n 40 "$WORK/tilt-ci.log"
    echo "$passed passed, $failed failed"
    exit 1
  fi

  # tilt up for the port forwards and the live update (tilt ci has exited).
  tilt up --context "$CONTEXT" --port "$TILT_PORT" -- ${TILT_ARGS[@]+"${TILT_ARGS[@]}"} >"$WORK/tilt-up.log" 2>&1 &
  tilt_up_pid=$!
  retry 300 tilt wait --port "$TILT_PORT" --for=condition=Ready uiresource/kindling-api --timeout 10s >/dev/null 2>&1 \
    || log "tilt up: kindling-api not Ready yet"
}

# psql_in_cluster SQL: as the database's owner, inside the Postgres pod (local socket).
psql_in_cluster() {
  # shellcheck disable=SC2016  # expanded by the pod's shell, from its mounted Secret
  kubectl -n "$NS" exec postgres-0 -c postgres -- sh -c \
    'psql -v ON_ERROR_STOP=1 -qAt -U "$(cat /run/secrets/kindling-db/POSTGRES_USER)" -d "$(cat /run/secrets/kindling-db/POSTGRES_DB)" -c "$1"' \
    psql "$1"
}

# One internal error, so that an error-level line exists for the logs dashboard.
check_refused_name_is_a_500() {
  local code
  if ! psql_in_cluster "ALTER TABLE items ADD CONSTRAINT $REFUSED_CONSTRAINT CHECK (name <> '$REFUSED_NAME')" >/dev/null; then
    fail "could not add the CHECK constraint that makes one request an internal error"
    return
  fi
  constraint_added=true
  code="$(api -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
            -d "{\"name\": \"$REFUSED_NAME\"}" "http://$HOST/api/items")" || code="${code:-000}"
  if psql_in_cluster "ALTER TABLE items DROP CONSTRAINT $REFUSED_CONSTRAINT" >/dev/null; then constraint_added=false; fi
  if [[ "$code" == 500 ]]; then pass "a name the database refuses is an internal error: 500"
  else fail "a name the database refuses: $code, want 500"; fi
}

observability_checks() {
  local post_before=$1 smoke_id=$2 start_ns=$3 secret password uid got status board cpu
  # Prometheus and Grafana are forwarded by tilt up; Loki is not, so forward it here.
  kubectl -n "$OBS_NS" port-forward svc/loki "$LOKI_PORT:3100" >"$WORK/pf-loki.log" 2>&1 &
  pf_pids+=($!)

  check_targets_up
  check_post_counted "$post_before"
  check_rules k8s/observability/prometheus/rules/*.yaml
  check_loki_request "$smoke_id" "$start_ns"

  # The Secret's name carries kustomize's content hash: read it from the Deployment.
  secret="$(kubectl -n "$OBS_NS" get deployment grafana \
              -o jsonpath='{.spec.template.spec.volumes[?(@.name=="admin")].secret.secretName}')"
  password="$(kubectl -n "$OBS_NS" get secret "$secret" -o jsonpath='{.data.admin-password}' | base64 -d)"
  graf() { curl -sS --max-time 10 -u "admin:$password" "$GRAFANA_URL$1"; }
  if [[ "$(graf /api/health | json 'j["database"]' 2>/dev/null)" == ok ]]; then pass "Grafana: /api/health ok"
  else fail "Grafana: /api/health"; fi
  for uid in prometheus loki; do
    status="$(graf "/api/datasources/uid/$uid/health" | json 'j["status"]' 2>/dev/null)" || status="no answer"
    if [[ "$status" == OK ]]; then pass "Grafana: datasource $uid healthy"; else fail "Grafana: datasource $uid: $status"; fi
  done
  for board in k8s/observability/grafana/dashboards/*.json; do
    uid="$(json 'j["uid"]' <"$board")"
    got="$(graf "/api/dashboards/uid/$uid" | json 'j["dashboard"]["uid"]' 2>/dev/null)" || got="no answer"
    if [[ "$got" == "$uid" ]]; then pass "Grafana: dashboard $uid loads"; else fail "Grafana: dashboard $uid: $got"; fi
  done

  if retry 180 kubectl -n "$NS" top pod >/dev/null 2>&1; then pass "kubectl top pod answers (metrics-server)"
  else fail "kubectl top pod (metrics-server)"; fi
  hpa_cpu() {
    local v
    v="$(kubectl -n "$NS" get hpa kindling-api \
           -o jsonpath='{.status.currentMetrics[?(@.resource.name=="cpu")].resource.current.averageUtilization}')"
    [[ -n "$v" ]] && echo "$v"
  }
  if cpu="$(retry 180 hpa_cpu)"; then pass "HPA kindling-api: current CPU ${cpu}%"; else fail "HPA shows no current CPU"; fi
}

check_postgres_restart() {
  if [[ -z "$item_id" ]]; then
    fail "Postgres restart: no item to look for"
    return
  fi
  item_back() { [[ "$(api -f "http://$HOST/api/items/$item_id" 2>/dev/null | json 'j["name"]')" == "$name" ]]; }
  if kubectl -n "$NS" delete pod postgres-0 --wait=true >/dev/null \
     && kubectl -n "$NS" wait --for=condition=Ready pod/postgres-0 --timeout=180s >/dev/null \
     && retry 120 item_back; then
    pass "Postgres pod deleted and back; item $item_id still there"
  else
    fail "after deleting the Postgres pod, item $item_id is not served"
  fi
}

live_update_checks() {
  local marker before after="" t0 t1 limit deadline
  if ! before="$(api_pod_states)"; then
    fail "live update: could not read the API pods"
    return
  fi
  cp "$HANDLER" "$WORK/handler.orig"
  marker="e2e-live-$RANDOM"
  # Only the liveness handler's body, `Json(Probe::ok(None))`: the probe then
  # answers {"status": "ok", "checks": {"edit": "<marker>"}}.
  sed -i.bak "s|Json(Probe::ok(None))|Json(Probe::ok(Some(json!({\"edit\": \"$marker\"}))))|" "$HANDLER"
  t0="$(now)"
  rm -f "$HANDLER.bak"
  if ! grep -q "$marker" "$HANDLER"; then
    fail "live update: could not edit $HANDLER"
    return
  fi
  # Polled every 0.2 s for the figure; waited for well past the limit, so that a slow
  # update is measured, not only called late.
  limit=$((LIVE_SECONDS * 4 > 120 ? LIVE_SECONDS * 4 : 120))
  deadline=$((SECONDS + limit))
  t1=""
  while ((SECONDS < deadline)); do
    if api -f "http://$HOST/api/v1/health/live" 2>/dev/null | grep -q "$marker"; then
      t1="$(now)"
      break
    fi
    sleep 0.2
  done
  if [[ -z "$t1" ]]; then
    fail "live update: the edit was not served within $limit s"
    tail -n 20 "$WORK/tilt-up.log"
    return
  fi
  check_edit_to_live "$(python3 -c "print(f'{float(\"$t1\") - float(\"$t0\"):.1f}')")"
  # The edit may reach one replica first: wait until every pod shows a new process (or
  # 20 s), then compare.
  settled() { after="$(api_pod_states)" && every_process_replaced "$before" "$after"; }
  retry 20 settled || log "live update: not every pod shows a new process after 20 s"
  check_updated_in_place "$before" "$after"
}

# scripts/db.sh on the real cluster, the commands the Tiltfile's db-* buttons run:
# seed, snapshot, reset (through the migration Job), restore; rows counted in
# Postgres after each, and the API serving the smoke item again afterwards.
check_db_lifecycle() {
  local seeded="" after_reset="" restored=""
  db_sh() { KINDLING_SNAPSHOT_DIR="$WORK/snapshots" scripts/db.sh "$@" >>"$WORK/db.log" 2>&1; }
  rows() { psql_in_cluster "SELECT (SELECT count(*) FROM items) || ' items, ' || (SELECT count(*) FROM users) || ' users'"; }
  item_served() { [[ "$(api -f "http://$HOST/api/items/$item_id" 2>/dev/null | json 'j["name"]')" == "$name" ]]; }
  if db_sh seed 5 && seeded="$(rows)" && db_sh snapshot e2e && db_sh reset && after_reset="$(rows)" \
     && [[ "$after_reset" == "0 items, 0 users" ]] && db_sh restore e2e && restored="$(rows)" \
     && [[ "$restored" == "$seeded" ]] && retry 30 item_served; then
    pass "db.sh: seed ($seeded), snapshot, reset ($after_reset, migration Job), restore ($restored); item $item_id served again"
  else
    fail "db.sh seed/snapshot/reset/restore: seeded '$seeded', after reset '$after_reset', restored '$restored'"
    tail -n 20 "$WORK/db.log"
  fi
}

cleanup() {
  local rc=$?
  if [[ -f "$WORK/handler.orig" ]]; then
    cp "$WORK/handler.orig" "$HANDLER"
    log "reverted the edit of $HANDLER"
  fi
  if $constraint_added; then
    psql_in_cluster "ALTER TABLE items DROP CONSTRAINT IF EXISTS $REFUSED_CONSTRAINT" >/dev/null \
      || log "could not drop the constraint $REFUSED_CONSTRAINT on items; drop it by hand"
  fi
  # ${a[@]+...}: macOS's bash 3.2 treats an empty array as unset under set -u.
  for pid in ${pf_pids[@]+"${pf_pids[@]}"} $tilt_up_pid; do
    if kill "$pid" 2>/dev/null; then
      # A process ended by SIGTERM exits non-zero; that is the expected outcome here.
      wait "$pid" 2>/dev/null || log "stopped process $pid"
    fi
  done
  if [[ "${E2E_KEEP:-0}" == 1 || "$SMOKE_ONLY" == 1 ]]; then
    log "leaving the cluster and the workloads (E2E_KEEP or E2E_SMOKE_ONLY)"
  elif $created_cluster && [[ "$CONTEXT" == kind-* ]]; then
    log "deleting the kind cluster $CLUSTER (created by this run)"
    kind delete cluster --name "$CLUSTER"
  elif $created_cluster; then
    log "deleting the minikube profile $CLUSTER (created by this run)"
    minikube delete -p "$CLUSTER"
  else
    log "tilt down (the cluster existed before this run and stays)"
    tilt down --context "$CONTEXT" >/dev/null 2>&1 || log "tilt down failed; remove the workloads by hand"
  fi
  rm -rf "$WORK"
  exit "$rc"
}

# Sourced (the self-test), this file only defines the checks.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
