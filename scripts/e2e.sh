#!/usr/bin/env bash
# End-to-end check of the whole platform on a real kind or minikube cluster, for
# any machine with Docker, kubectl, Tilt and kind or minikube (and, for the
# default host build on Linux, cargo). It is what a new user's first
# `scripts/dev-up.sh` does (it runs `dev-up.sh --no-tilt` for the cluster), then
# proves it:
#
#   scripts/e2e.sh [--cluster kind|minikube]  create the cluster (or reuse it),
#                                  tilt ci, the checks below, then delete what it
#                                  created (scripts/e2e-kind.sh: --cluster kind)
#   E2E_KEEP=1 scripts/e2e.sh      keep the cluster and the workloads afterwards
#   E2E_SMOKE_ONLY=1 scripts/e2e.sh  only the checks through the ingress, against what
#                                  already runs (the Helm job in e2e.yml); creates and
#                                  removes nothing
#
# One PASS/FAIL line per check, then "N passed, N failed". Settings (env):
#   E2E_TILT_TIMEOUT      tilt ci --timeout (default 30m: the first run compiles
#                         every dependency)
#   E2E_LIVE_SECONDS      edit-to-live limit for the live update check (default 60)
#   E2E_TILT_ARGS         Tiltfile flags, e.g. "--build=docker"
#   E2E_INGRESS_IP        where kindling.localhost:80 is reached: kind 127.0.0.1
#                         (its port mapping); minikube the node IP, reachable from
#                         a Linux host (on macOS run `minikube tunnel -p kindling
#                         --bind-address 127.0.0.1` and set 127.0.0.1)
# The handler edit is made on the working tree and always reverted on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLUSTER="$(sed -n 's/^name:[[:space:]]*//p' kind-config.yaml)"
case "${1:-}" in
  "" | --cluster=kind) cluster=kind ;;
  --cluster=minikube) cluster=minikube ;;
  --cluster) cluster="${2:-}" ;;
  *) echo "usage: $0 [--cluster kind|minikube]" >&2; exit 2 ;;
esac
case "$cluster" in
  kind) CONTEXT="kind-$CLUSTER" ;;
  minikube) CONTEXT="$CLUSTER" ;;  # the profile is named like the kind cluster
  *) echo "usage: $0 [--cluster kind|minikube]" >&2; exit 2 ;;
esac
TILT_TIMEOUT="${E2E_TILT_TIMEOUT:-30m}"
LIVE_SECONDS="${E2E_LIVE_SECONDS:-60}"
HOST=kindling.localhost
HANDLER=src/routes/health.rs
OBS_NS=kindling-observability
WORK="$(mktemp -d)"
TILT_PORT=10350

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'PASS %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
log() { printf '==> %s\n' "$*" >&2; }
# json EXPR: evaluate a Python expression over the JSON document on stdin (j).
json() { python3 -c "import json, sys; j = json.load(sys.stdin); print($1)"; }
# retry SECONDS CMD...: until CMD succeeds or SECONDS pass.
retry() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < end)) || return 1
    sleep 3
  done
}

created_cluster=false
tilt_up_pid=""
pf_pids=()
cleanup() {
  local rc=$?
  if [[ -f "$WORK/handler.orig" ]]; then
    cp "$WORK/handler.orig" "$HANDLER"
    log "reverted the edit of $HANDLER"
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
  elif $created_cluster && [[ "$cluster" == kind ]]; then
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
# Before the trap: a missing tool leaves nothing to clean up.
SMOKE_ONLY="${E2E_SMOKE_ONLY:-0}"
tools=(docker "$cluster" kubectl tilt curl python3)
if [[ "$SMOKE_ONLY" == 1 ]]; then tools=(kubectl curl python3); fi
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (see docs/dev-loop.md, Prerequisites)" >&2; rm -rf "$WORK"; exit 2; }
done
trap cleanup EXIT

# ---- cluster and tilt ci ----------------------------------------------------------
if [[ "$SMOKE_ONLY" == 1 ]]; then
  INGRESS=(--resolve "$HOST:80:${E2E_INGRESS_IP:-127.0.0.1}")
  log "E2E_SMOKE_ONLY=1: ingress checks only, against context $(kubectl config current-context)"
else
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
  read -r -a TILT_ARGS <<<"${E2E_TILT_ARGS:-}"
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

  log "tilt ci (timeout $TILT_TIMEOUT)"
  start=$SECONDS
  if tilt ci --context "$CONTEXT" --timeout "$TILT_TIMEOUT" -- ${TILT_ARGS[@]+"${TILT_ARGS[@]}"} >"$WORK/tilt-ci.log" 2>&1; then
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
fi

# ---- the API through the ingress ------------------------------------------------------
api() { curl -sS --max-time 10 "${INGRESS[@]}" "$@"; }
smoke_id="e2e-$RANDOM$RANDOM"
name="e2e item $smoke_id"
item_id=""
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

# ---- observability ---------------------------------------------------------------------
if kubectl get namespace "$OBS_NS" >/dev/null 2>&1; then
  # Prometheus and Grafana are forwarded by tilt up; Loki is not, so forward it here.
  kubectl -n "$OBS_NS" port-forward svc/loki 13100:3100 >"$WORK/pf-loki.log" 2>&1 &
  pf_pids+=($!)
  prom() { curl -sS --max-time 10 -G http://localhost:9090/api/v1/query --data-urlencode "query=$1" | json "$2"; }
  prom_up() { [[ "$(prom 'max(up{namespace="kindling"})' 'j["data"]["result"][0]["value"][1]')" == 1 ]]; }
  prom_requests() { (($(prom 'sum(http_requests_total{namespace="kindling"})' 'int(float(j["data"]["result"][0]["value"][1]))') > 0)); }
  if retry 120 prom_up 2>/dev/null; then pass "Prometheus: the API target is up"
  else fail "Prometheus: the API target is not up"; fi
  if retry 120 prom_requests 2>/dev/null; then pass "Prometheus: http_requests_total counts the smoke requests"
  else fail "Prometheus: no http_requests_total"; fi

  loki_line() {
    curl -sS --max-time 10 -G http://localhost:13100/loki/api/v1/query_range \
      --data-urlencode "query={app=\"kindling-api\"} |= \"$smoke_id\"" --data-urlencode "limit=5" \
      | json 'sum(len(s["values"]) for s in j["data"]["result"])' | grep -qv '^0$'
  }
  if retry 120 loki_line 2>/dev/null; then pass "Loki: the smoke request's log line found by request_id $smoke_id"
  else fail "Loki: no log line with request_id $smoke_id"; fi

  # The Secret's name carries kustomize's content hash: read it from the Deployment.
  secret="$(kubectl -n "$OBS_NS" get deployment grafana \
              -o jsonpath='{.spec.template.spec.volumes[?(@.name=="admin")].secret.secretName}')"
  password="$(kubectl -n "$OBS_NS" get secret "$secret" -o jsonpath='{.data.admin-password}' | base64 -d)"
  graf() { curl -sS --max-time 10 -u "admin:$password" "http://localhost:3000$1"; }
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

  if retry 180 kubectl -n kindling top pod >/dev/null 2>&1; then pass "kubectl top pod answers (metrics-server)"
  else fail "kubectl top pod (metrics-server)"; fi
  hpa_cpu() {
    local v
    v="$(kubectl -n kindling get hpa kindling-api \
           -o jsonpath='{.status.currentMetrics[?(@.resource.name=="cpu")].resource.current.averageUtilization}')"
    [[ -n "$v" ]] && echo "$v"
  }
  if cpu="$(retry 180 hpa_cpu)"; then pass "HPA kindling-api: current CPU ${cpu}%"; else fail "HPA shows no current CPU"; fi
else
  log "observability skipped (E2E_TILT_ARGS has --skip-observability): its checks do not apply"
fi

# ---- Postgres restart keeps the data ------------------------------------------------------
if [[ -n "$item_id" ]]; then
  item_back() { [[ "$(api -f "http://$HOST/api/items/$item_id" 2>/dev/null | json 'j["name"]')" == "$name" ]]; }
  if kubectl -n kindling delete pod postgres-0 --wait=true >/dev/null \
     && kubectl -n kindling wait --for=condition=Ready pod/postgres-0 --timeout=180s >/dev/null \
     && retry 120 item_back; then
    pass "Postgres pod deleted and back; item $item_id still there"
  else
    fail "after deleting the Postgres pod, item $item_id is not served"
  fi
else
  fail "Postgres restart: no item to look for"
fi

# ---- live update ---------------------------------------------------------------------------
cp "$HANDLER" "$WORK/handler.orig"
marker="e2e-live-$RANDOM"
# Only the liveness handler's body, `Json(Probe::ok(None))`: the probe then
# answers {"status": "ok", "checks": {"edit": "<marker>"}}.
sed -i.bak "s|Json(Probe::ok(None))|Json(Probe::ok(Some(json!({\"edit\": \"$marker\"}))))|" "$HANDLER"
rm -f "$HANDLER.bak"
if ! grep -q "$marker" "$HANDLER"; then
  fail "live update: could not edit $HANDLER"
else
  start=$SECONDS
  live() { api -f "http://$HOST/api/v1/health/live" 2>/dev/null | grep -q "$marker"; }
  if retry "$LIVE_SECONDS" live; then
    pass "live update: the edit of $HANDLER served after $((SECONDS - start)) s (limit $LIVE_SECONDS s)"
  else
    fail "live update: the edit was not served within $LIVE_SECONDS s"
    tail -n 20 "$WORK/tilt-up.log"
  fi
fi

echo "e2e ($cluster): $passed passed, $failed failed"
((failed == 0))
