#!/usr/bin/env bash
# Checks of k8s/observability, run by .ci/run with no arguments:
#   1. kustomize render, kubernetes-validate --strict, checkov, NetworkPolicies of both
#      namespaces together (scripts/manifest_xref.py --with-observability, with a self-test),
#      yamllint
#   2. promtool check rules + promtool test rules (unit tests of every alert), whose API series
#      must be ones recorded from a real scrape (prometheus/tests/scraped-series.txt)
#   3. promtool check config --syntax-only on a copy with static targets instead of
#      Kubernetes discovery (Debian's promtool 2.42 has none)
#   4. dashboards: structure, datasource uids, panel ids, variables, Loki labels, and PromQL
#      (dashboards and rules) that means the same on Prometheus 2.42 (here) and 3.5 (cluster)
#   5. relabelling: the shipped relabel rules run by a real Prometheus on hand-written
#      discovery results
#   6. end to end: every dashboard query and rule against a Prometheus that scraped the real
#      kindling API (target/debug/kindling, built with `cargo build` if missing) after a known
#      mix of requests; after the database-down phase kindling_db_up must be 0,
#      KindlingPostgresDown pending or firing and the 5xx ratio rule recorded; every series in
#      prometheus/tests/scraped-series.txt must still be scraped; and every LogQL query
#      against the real Loki (started with k8s/observability/loki/loki.yaml) that the API
#      shipped its logs to
# Needs: scripts/install-checkers.sh (venv + Debian's prometheus); Docker with the test
# Postgres image (scripts/docker-setup.sh; KINDLING_TEST_POSTGRES_IMAGE, default
# postgres:17-alpine); Loki from KINDLING_LOKI or PATH (without it the LogQL part is
# skipped, or fails when KINDLING_REQUIRE_LOKI=1).
# Exits non-zero if any step fails; prints one summary line per step.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OBS="$ROOT/k8s/observability"
VENV="$ROOT/.venv-checks"
PY="$VENV/bin/python"
HELPERS="$ROOT/scripts/observability"
K8S_VERSION="${K8S_VERSION:-1.35.0}"  # kind-config.yaml pins Kubernetes 1.35
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

log() { printf '==> %s\n' "$*"; }
declare -a SUMMARY=()
FAILED=0
record() { # record NAME STATUS DETAIL
  SUMMARY+=("$(printf '%-28s %-4s %s' "$1" "$2" "$3")")
  if [[ "$2" != "ok" ]]; then FAILED=1; fi
}
# run_step NAME CMD...: runs CMD with output in $TMP/NAME.log, echoes it, records the last line.
# CMD runs as an `if` condition, where `set -e` is off: helper functions return 1 explicitly.
run_step() {
  local name="$1"; shift
  log "$name"
  local status=ok
  if ! "$@" >"$TMP/$name.log" 2>&1; then status=FAIL; fi
  cat "$TMP/$name.log"
  record "$name" "$status" "$(grep -v '^\s*$' "$TMP/$name.log" | tail -n 1 | cut -c1-100)"
}

for tool in promtool prometheus kubectl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-checkers.sh" >&2; exit 1; }
done
[[ -x "$PY" ]] || { echo "missing $VENV: run scripts/install-checkers.sh" >&2; exit 1; }

# The real Loki needs 15-20 s to become ready: start it now, behind the static checks; the
# end-to-end step uses it (E2E_LOKI_URL). Without a Loki binary nothing starts here and the
# end-to-end step reports the skip (or fails when KINDLING_REQUIRE_LOKI=1).
E2E_LOKI_PID=""
loki_vars="$("$PY" "$HELPERS/lokilib.py" start "$TMP/loki")"
eval "$loki_vars"
export E2E_LOKI_URL E2E_LOKI_LOG E2E_LOKI_STARTED
stop_loki() {  # Loki is not this shell's child (lokilib.py started it), so poll, not wait
  [[ -n "$E2E_LOKI_PID" ]] || return 0
  kill "$E2E_LOKI_PID" 2>/dev/null || return 0  # already gone
  for _ in $(seq 1 40); do
    kill -0 "$E2E_LOKI_PID" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -9 "$E2E_LOKI_PID"
}
trap 'stop_loki; rm -rf "$TMP"' EXIT

# 1. Manifests -------------------------------------------------------------------------------
render() {
  kubectl kustomize "$OBS" -o "$TMP/observability.yaml" || return 1
  echo "render: $(grep -c '^kind:' "$TMP/observability.yaml") objects from k8s/observability"
}
run_step render render
validate() {
  "$VENV/bin/kubernetes-validate" --strict -k "$K8S_VERSION" "$TMP/observability.yaml" >"$TMP/kv.out" 2>&1 || {
    cat "$TMP/kv.out"; return 1; }
  # CRDs (unknown kinds) only warn with exit 0: they would not count as validated.
  if grep -qi "warn" "$TMP/kv.out"; then cat "$TMP/kv.out"; echo "kubernetes-validate: unvalidated kinds"; return 1; fi
  echo "kubernetes-validate --strict $K8S_VERSION: $(grep -c ' passed ' "$TMP/kv.out") resources valid"
}
run_step kubernetes-validate validate
mkdir -p "$TMP/checkov" && cp "$TMP/observability.yaml" "$TMP/checkov/"
run_step checkov "$VENV/bin/checkov" -d "$TMP/checkov" --framework kubernetes --skip-download --compact --quiet
# NetworkPolicies of both namespaces together (kindling from the dev overlay, and this one):
# the real render must permit exactly the platform's flows, and a render with a wrong
# Prometheus egress and Loki ingress (scripts/testdata/xref-observability-broken) must fail.
netpol_xref() {
  local xref=("$PY" "$ROOT/scripts/manifest_xref.py" --overlay dev)
  kubectl kustomize "$ROOT/k8s/overlays/dev" -o "$TMP/dev.yaml" || return 1
  "${xref[@]}" --with-observability "$TMP/observability.yaml" "$TMP/dev.yaml" || return 1
  kubectl kustomize "$ROOT/scripts/testdata/xref-observability-broken" -o "$TMP/obs-broken.yaml" || return 1
  "${xref[@]}" --with-observability "$TMP/obs-broken.yaml" \
    --expect-violations "$ROOT/scripts/testdata/xref-observability-broken.expected" "$TMP/dev.yaml"
}
run_step netpol-xref netpol_xref
YAMLLINT_CONFIG="$ROOT/.yamllint"
[[ -f "$YAMLLINT_CONFIG" ]] || { YAMLLINT_CONFIG="$TMP/yamllint"; printf 'extends: default\nrules: {line-length: {max: 120}, document-start: disable}\n' >"$YAMLLINT_CONFIG"; }
yamllint_all() { "$VENV/bin/yamllint" -s -c "$YAMLLINT_CONFIG" "$OBS" && echo "yamllint: clean"; }
run_step yamllint yamllint_all

# 2. Rules -----------------------------------------------------------------------------------
run_step promtool-check-rules promtool check rules "$OBS"/prometheus/rules/*.yaml
run_step promtool-test-rules promtool test rules "$OBS"/prometheus/tests/*.yaml
# The rule tests may only feed series recorded from a real scrape (e2e.py keeps the record honest).
run_step rule-test-series "$PY" "$HELPERS/rule_test_series.py"

# 3. Scrape config ---------------------------------------------------------------------------
syntax_copy() {
  (cd "$HELPERS" && "$PY" -c 'import promlib, sys, yaml; yaml.safe_dump(promlib.syntax_only_copy(promlib.load_config()), sys.stdout, sort_keys=False)') >"$TMP/prometheus-static.yaml" || return 1
  promtool check config --syntax-only "$TMP/prometheus-static.yaml"
}
run_step promtool-check-config syntax_copy

# 4-6. Dashboards, relabelling, end to end ---------------------------------------------------
run_step prom2-vs-3-selftest "$PY" "$HELPERS/prom_versions.py"
run_step dashboards "$PY" "$HELPERS/check_dashboards.py"
run_step relabelling "$PY" "$HELPERS/relabel_test.py"

BINARY="$ROOT/target/debug/kindling"
e2e() {
  if [[ ! -x "$BINARY" ]]; then
    log "building the service (cargo build) for the end-to-end test"
    (cd "$ROOT" && cargo build --quiet) || return 1
  fi
  "$PY" "$HELPERS/e2e.py" --binary "$BINARY" --report "${E2E_REPORT:-$TMP/e2e-report.json}"
}
run_step end-to-end e2e

echo
echo "check-observability summary:"
printf '  %s\n' "${SUMMARY[@]}"
passed=0; failed=0
for line in "${SUMMARY[@]}"; do
  if [[ "$line" == *" ok "* ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "observability: $passed passed, $failed failed"
exit "$FAILED"
