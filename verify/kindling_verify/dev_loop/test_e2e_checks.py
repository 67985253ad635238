"""scripts/e2e.sh's checks fail on a broken platform. Nothing here runs a cluster, so the checks
run on recorded answers (testdata/e2e-answers/, see its README): the script is sourced, which
defines its check functions without running anything, and kubectl and curl are replaced by
shell functions that print the answer the test picks. Each bad answer must give a FAIL line
that says what is wrong, and the matching good answer a PASS line, so a check that passes on
everything fails here."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kindling_verify.helpers import ROOT

E2E = ROOT / "scripts" / "e2e.sh"
ANSWERS = Path(__file__).parent / "testdata" / "e2e-answers"
DASHBOARDS = ROOT / "k8s" / "observability" / "grafana" / "dashboards"
RULES = sorted((ROOT / "k8s" / "observability" / "prometheus" / "rules").glob("*.yaml"))

# kubectl and curl answer from $ANSWERS; the variables name the file for each kind of call.
STUBS = r'''
kubectl() {
  case "$*" in
    *"get namespace"*)
      if [[ -n "${NAMESPACE_ANSWER:-}" ]]; then cat "$ANSWERS/$NAMESPACE_ANSWER" >&2; return 1; fi
      echo "namespace/kindling-observability" ;;
    *"get pods"*) cat "$ANSWERS/$PODS" ;;
    *" exec "*) echo "$PID" ;;
    *) echo "unexpected: kubectl $*" >&2; return 1 ;;
  esac
}
curl() {
  case "$*" in
    *"/api/v1/rules"*) cat "$ANSWERS/$RULES" ;;
    *"/loki/api/v1/query_range"*) cat "$ANSWERS/$LOKI" ;;
    *"/api/v1/query"*) cat "$ANSWERS/$PROM" ;;
    *) echo "unexpected: curl $*" >&2; return 1 ;;
  esac
}
'''


def run_checks(script: str, **answers: str) -> list[str]:
    """The PASS/FAIL lines of `script`, run after sourcing e2e.sh with the stubs."""
    driver = f'set -euo pipefail\nsource "{E2E}"\nANSWERS="{ANSWERS}"\n{STUBS}\ncd "{ROOT}"\n{script}\n'
    # No waiting: each check asks once.
    env = dict(os.environ, E2E_WAIT_SECONDS="0", E2E_LIVE_SECONDS="15", **answers)
    p = subprocess.run(["bash", "-c", driver], capture_output=True, text=True, env=env, cwd=ROOT)
    print(p.stdout, p.stderr)
    assert p.returncode == 0, f"the driver failed ({p.returncode}): {p.stderr[-2000:]}"
    return [line for line in p.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]


def test_sourcing_runs_nothing():
    p = subprocess.run(["bash", "-c", f'source "{E2E}"; declare -F check_updated_in_place'],
                       capture_output=True, text=True, cwd="/")
    assert p.returncode == 0 and p.stdout.strip() == "check_updated_in_place", p.stderr
    assert p.stderr == "", "sourcing printed something: it ran part of the script"


def test_a_missing_observability_namespace_fails_unless_skipped():
    out = run_checks('check_observability_namespace false || echo "not applicable"\n'
                     'check_observability_namespace true || echo "not applicable"',
                     NAMESPACE_ANSWER="namespace-missing.stderr")
    assert out == ["FAIL namespace kindling-observability is missing (Prometheus, Loki and Grafana were not deployed)"]
    assert run_checks("check_observability_namespace false") == ["PASS namespace kindling-observability exists"]


LIVE_UPDATE = {
    "changed pod uid": ("pods-after-new-uid.json", 97,
                        "FAIL live update: pod kindling-api-6d4f9b7c8-x2k9p: pod uid 3f0c6b52-9a1e-4d7c-8b2f-1e5a9c7d3b60 "
                        "-> c81d2e4f-7b3a-4e9c-a1d5-6f0b8e2c4a97; image "),
    "pod replaced": ("pods-after-replaced.json", 97,
                     "FAIL live update: pod kindling-api-6d4f9b7c8-x2k9p (uid 3f0c6b52-9a1e-4d7c-8b2f-1e5a9c7d3b60) is gone"),
    "container restarted": ("pods-after-restarted.json", 97,
                            "FAIL live update: pod kindling-api-6d4f9b7c8-x2k9p: container restarts 0 -> 1;"),
    "process not replaced": ("pods-after-in-place.json", 41,
                             "FAIL live update: pod kindling-api-6d4f9b7c8-x2k9p: process not replaced (pid 41 -> 41);"),
    "in place": ("pods-after-in-place.json", 97,
                 "PASS live update in place: pod kindling-api-6d4f9b7c8-x2k9p kept (uid, 0 restarts, image), process 41 -> 97"),
}


@pytest.mark.parametrize("case", LIVE_UPDATE)
def test_live_update_must_replace_the_process_and_keep_pod_container_and_image(case):
    after, pid_after, expected = LIVE_UPDATE[case]
    out = run_checks(f'PODS=pods-before.json PID=41; before="$(api_pod_states)"\n'
                     f'PODS={after} PID={pid_after}; after="$(api_pod_states)"\n'
                     'check_updated_in_place "$before" "$after"')
    assert len(out) == 1 and out[0].startswith(expected), out


def test_edit_to_live_over_the_limit_fails():
    assert run_checks("check_edit_to_live 23.4; check_edit_to_live 3.1") == [
        "FAIL live update: edit-to-live through Tilt 23.4 s, over the limit of 15 s (E2E_LIVE_SECONDS)",
        "PASS live update: edit-to-live through Tilt 3.1 s (save of src/routes/health.rs to the first response "
        "with the edit; limit 15 s)"]


def test_a_zero_result_dashboard_query_fails():
    board = DASHBOARDS / "database.json"
    check = f'check_dashboard_queries prometheus e2e-1234 0 "{board}"'
    out = run_checks(check, PROM="prom-empty.json")
    assert out and all(line.startswith("FAIL Prometheus: database.json '") and " returned nothing: " in line
                       for line in out), out
    refused = run_checks(check, PROM="prom-parse-error.json")
    assert refused and all(" does not execute: invalid parameter " in line for line in refused), refused
    assert run_checks(check, PROM="prom-one-series.json") == [
        f"PASS Prometheus: all {len(out)} PromQL queries of database.json return data"]


def test_a_down_target_fails():
    out = run_checks("check_targets_up", PROM="prom-up-0.json")
    assert len(out) == 3 and all(line.startswith("FAIL Prometheus: up{") for line in out), out
    assert all(line.startswith("PASS") for line in run_checks("check_targets_up", PROM="prom-one-series.json"))


def test_the_smoke_post_must_increase_the_201_counter():
    assert run_checks("check_post_counted 1", PROM="prom-one-series.json") == [
        "FAIL Prometheus: POST /api/items 201 not counted after the smoke POST (1 -> 1): "
        'sum(http_requests_total{namespace="kindling", route="/api/items", method="POST", status="201"})']
    assert run_checks("check_post_counted 0", PROM="prom-one-series.json") == [
        "PASS Prometheus: POST /api/items 201 counted (0 -> 1)"]
    # No series yet (before the first creation) counts as 0.
    assert run_checks('[[ "$(post_201_count)" == 0 ]] && pass zero', PROM="prom-empty.json") == ["PASS zero"]


def test_an_unhealthy_rule_and_a_missing_rule_fail():
    files = " ".join(f'"{r}"' for r in RULES)
    out = run_checks(f"check_rules {files}", RULES="prom-rules-err.json", PROM="prom-one-series.json")
    assert any(line.startswith("FAIL Prometheus: 1 rules loaded, the rule files define ") for line in out), out
    assert ("FAIL Prometheus: rule kindling:http_requests_5xx:ratio_rate5m health 'err' "
            "(vector contains metrics with the same labelset after applying rule labels)") in out


def test_loki_without_the_request_or_the_dashboard_data_fails():
    board = DASHBOARDS / "logs.json"
    checks = f'check_loki_request e2e-1234 0; check_dashboard_queries loki e2e-1234 0 "{board}"'
    out = run_checks(checks, LOKI="loki-empty.json")
    assert out[0].startswith("FAIL Loki: no log line of request e2e-1234 (0): "), out
    assert len(out) > 1 and all(line.startswith("FAIL Loki: logs.json '") and " returned nothing: " in line
                                for line in out[1:]), out
    good = run_checks(checks, LOKI="loki-one-line.json")
    assert good == ["PASS Loki: 1 log lines of request e2e-1234",
                    f"PASS Loki: all {len(out) - 1} LogQL queries of logs.json return data"]
