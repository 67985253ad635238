"""End-to-end test of every dashboard query and alert rule against real data.

0. The real Loki (lokilib: KINDLING_LOKI, then PATH) started first, with the project's own
   k8s/observability/loki/loki.yaml, because it needs 15-20 s to become ready.
1. The test Postgres image in Docker (KINDLING_TEST_POSTGRES_IMAGE, default production's
   postgres:17-alpine) and the real kindling binary (target/debug/kindling serve) shipping its
   logs to that Loki through its own shipper (LOKI_URL). `promtool check metrics` must find
   nothing to say about its /metrics exposition.
2. A real Prometheus (3.5.3, the cluster's version: verify/install.sh) on 127.0.0.1 loading the shipped scrape config through
   promlib.file_sd_copy: the API is discovered as a pod with the Deployment's annotations and
   labels and goes through the shipped relabel rules; kube-state-metrics and the kubelet are
   fixtures (fixtures.KubeletAndKsm) reporting for the same pod.
3. A known mix of requests: successes, 404, 422, unmatched paths, one 500 (a CHECK added to
   the database refuses one name, so the API logs an error-level line), then 503s after
   Postgres is stopped.
4. Every PromQL expression of every dashboard and rule is executed; each must parse, each
   dashboard query must return series, every metric a dashboard names must be one the API
   exports (or a declared kube-state-metrics/cAdvisor family), the rules must evaluate
   without error.
5. After the API shuts down (flushing its log shipper), Loki must give back the probe
   request's lines by `request_id` (LogQL `| json`), and every LogQL query of the dashboards
   (with the request-id variable empty and set to the probe) must execute and return data.
   Without a Loki binary test_e2e.py skips this part, and fails it when KINDLING_REQUIRE_LOKI=1.

Prints a table of panels and series counts and writes it as JSON when --report is given.
Tests: test_e2e.py, one per part. By hand:
  .venv-checks/bin/python -m kindling_verify.observability.e2e [--binary PATH] [--report FILE] [--record-series]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from kindling_verify.helpers import (
    KINDLING_BINARY,
    POSTGRES_IMAGE,
    ROOT,
    Postgres,
    find_test_tool,
    free_port,
    http,
    start_api,
    stop_process,
    venv_tool,
    wait_for,
)
from kindling_verify.observability import dashboard_queries, lokilib, promlib, rule_test_series
from kindling_verify.observability.fixtures import KubeletAndKsm
from kindling_verify.observability.relabel import api_pod_metadata, node_target, pod_target, write_discovery

NAMESPACE = "kindling"
POD = "kindling-api-5f6d8c7b9d-e2e01"
PROBE_REQUEST_ID = "e2e-probe-0001"
# A name the database refuses through a CHECK added for this test: the API has validated it,
# so the refusal is an internal error (500) and the API logs it at error level.
REFUSED_NAME = "e2e: refused by the database"


# --------------------------------------------------------------------------- HTTP helpers

def exported_metric_names(exposition: str) -> set[str]:
    """Sample names in a text exposition (histograms as _bucket/_sum/_count)."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def traffic(base: str, seconds: float, db_up: bool, counts: dict, probe_id: str | None) -> None:
    """A fixed mix of requests, repeated until `seconds` have passed; with the database up,
    the first round also sends the name the database refuses (one 500)."""
    end = time.time() + seconds
    json_h = {"Content-Type": "application/json"}
    i = 0
    while time.time() < end:
        i += 1
        calls = [("GET", "/api/items", None, {}),
                 ("GET", "/api/items/999999999", None, {}),
                 ("POST", "/api/items", b'{"name": 42}', json_h),
                 ("GET", "/no/such/route", None, {}),
                 ("GET", "/api/v1/health/ready", None, {})]
        if db_up:
            calls.insert(0, ("POST", "/api/items",
                             json.dumps({"name": f"e2e item {i}", "description": None}).encode(),
                             json_h))
        if db_up and i == 1:
            calls.append(("POST", "/api/items", json.dumps({"name": REFUSED_NAME}).encode(),
                          json_h))
        for method, path, body, headers in calls:
            if probe_id and i == 1 and method == "GET" and path == "/api/items":
                headers = dict(headers, **{"X-Request-Id": probe_id})
            status, payload, _ = http(method, base + path, body, headers)
            counts[status] = counts.get(status, 0) + 1
            if db_up and method == "POST" and status == 201 and i % 3 == 0:
                try:
                    item_id = json.loads(payload)["id"]
                    s, _, _ = http("GET", f"{base}/api/items/{item_id}")
                    counts[s] = counts.get(s, 0) + 1
                except (ValueError, KeyError, TypeError):
                    pass
        time.sleep(0.05)


# --------------------------------------------------------------------------- the test

# What the run checks, each part a test of its own (test_e2e.py).
PARTS = ("exposition", "traffic", "dashboards", "rules", "outage", "recorded series", "logql")


def run(binary: Path, work: Path, loki: lokilib.Loki | None, *, phase_seconds: float = 15,
        record_series: bool = False, report_path: Path | None = None) -> dict[str, list[str]]:
    """The whole run; returns the failures of each part (PARTS). Loki, when given, has been
    started by the caller (its 15-20 s start overlaps other work); without it the LogQL part
    checks nothing. Set-up failures raise."""
    failures: dict[str, list[str]] = {part: [] for part in PARTS}

    def failer(part: str):
        def fail(msg: str) -> None:
            print(f"FAIL [{part}] {msg}", flush=True)
            failures[part].append(msg)
        return fail

    pg = api = prom = fx = None
    try:
        promlib.log(f"Postgres ({POSTGRES_IMAGE} in Docker)")
        pg = Postgres(POSTGRES_IMAGE, password="e2e")
        print(f"Postgres {pg.version}")
        api_port = free_port()
        env = dict(os.environ, DATABASE_URL=pg.url, ROCKET_ADDRESS="127.0.0.1",
                   ROCKET_PORT=str(api_port), MIGRATE_ON_START="true",
                   POD_NAMESPACE=NAMESPACE, POD_NAME=POD, APP_ENVIRONMENT="ci",
                   RUST_LOG="info",
                   # Fail fast once Postgres is gone, so the outage phase yields many 5xx.
                   DATABASE_ACQUIRE_TIMEOUT_MS="250")
        env.pop("LOKI_URL", None)
        if loki:
            env["LOKI_URL"] = loki.base
        # Started as after a live update: the build's figures, as tilt/stage-binary.sh writes
        # them, make the API log its `dev reload` line, which the Dev loop row queries.
        figures = work / "dev-reload.env"
        figures.write_text(f"build_id=e2e0c0de\nbuild_started_unix_ms={time.time_ns() // 10**6 - 1500}\n"
                           "compile_ms=1200\nstage_ms=40\n")
        env["KINDLING_DEV_RELOAD_FILE"] = str(figures)
        promlib.log(f"kindling API ({binary} serve) on 127.0.0.1:{api_port}")
        api = start_api(binary, env, work / "api.log", api_port)
        base = f"http://127.0.0.1:{api_port}"
        # The migrations have run (MIGRATE_ON_START): now make the database refuse one name.
        pg.psql(f"ALTER TABLE items ADD CONSTRAINT e2e_refused_name "
                f"CHECK (name <> '{REFUSED_NAME}')")

        status, exposition, _ = http("GET", base + "/metrics")
        exported = exported_metric_names(exposition.decode(errors="replace"))
        if status != 200 or not exported:
            raise RuntimeError(f"GET /metrics answered {status} with {len(exported)} metric names")
        check_exposition(exposition, failer("exposition"))

        # The pod labels and annotations of the rendered dev overlay's Deployment, with the
        # port the API listens on here.
        api_labels, annotations, container = api_pod_metadata()
        annotations = dict(annotations, **{"prometheus.io/port": str(api_port)})
        fx = KubeletAndKsm(namespace=NAMESPACE, pod=POD, container=container, pid=api.pid,
                           node="kind-control-plane")
        sd = work / "sd"
        sd.mkdir()
        write_discovery(sd, [pod_target(f"127.0.0.1:{api_port}", name=POD, labels=api_labels,
                                        annotations=annotations, container=container,
                                        port=str(api_port))],
                        [node_target(f"127.0.0.1:{fx.port}")])
        prom_port = free_port()
        cfg = promlib.file_sd_copy(promlib.load_config(), sd, prometheus_port=prom_port,
                                   ksm_address=f"127.0.0.1:{fx.port}", kubelet_http=True)
        (work / "prom").mkdir()
        prom = promlib.Prometheus(promlib.write_yaml(work / "prometheus.yaml", cfg), work / "prom",
                                  prom_port)
        if not wait_for(lambda: len([t for t in prom.api("targets", state="active")["activeTargets"]
                                     if t["health"] == "up"]) >= 4, 30):
            raise RuntimeError(f"targets not up: {prom.api('targets', state='active')['activeTargets']}")

        if loki:
            ready_after = loki.wait_ready()
            if ready_after is None:
                raise RuntimeError(f"Loki not ready 120 s after start; log tail: {loki.log_tail()}")
            print(f"Loki ready {ready_after:.1f} s after its start")

        counts_up: dict = {}
        counts_down: dict = {}
        probe_id = PROBE_REQUEST_ID
        traffic_start_ns = time.time_ns()
        promlib.log(f"traffic with the database up ({phase_seconds:.0f} s)")
        traffic(base, phase_seconds, True, counts_up, probe_id)
        promlib.log("stopping Postgres")
        pg.stop()
        promlib.log(f"traffic with the database down ({phase_seconds:.0f} s)")
        traffic(base, phase_seconds, False, counts_down, None)
        time.sleep(3)  # a few more scrapes and rule evaluations
        print(f"responses with database up:   {dict(sorted(counts_up.items()))}")
        print(f"responses with database down: {dict(sorted(counts_down.items()))}")
        for code, where in ((201, counts_up), (404, counts_up), (422, counts_up), (500, counts_up),
                            (503, counts_down)):
            if not where.get(code):
                failer("traffic")(f"the request mix produced no {code} response")

        # Labelled series (per route, per operation) exist only once observed: read the
        # exposition again now that the traffic has touched every code path.
        status, exposition, _ = http("GET", base + "/metrics")
        exported |= exported_metric_names(exposition.decode(errors="replace"))

        # ------------------------------------------------------------- dashboards (PromQL)
        fail = failer("dashboards")
        report = {"dashboards": {}, "rules": [], "logql": []}
        kube_names = set(promlib.CLUSTER_METRICS)
        for fname, dash in promlib.dashboards().items():
            rows = []
            for panel, t, expr in dashboard_queries.queries(dash, "prometheus"):
                names = promlib.promql_metric_names(expr)
                unknown = names - exported - kube_names
                source = "api" if not names & kube_names else "fixture:" + "+".join(
                    sorted({promlib.CLUSTER_METRICS[n] for n in names & kube_names}))
                result, err = prom.query(expr)
                n = len(result) if result is not None else None
                rows.append({"panel": panel["title"], "refId": t["refId"],
                             "legend": t.get("legendFormat", ""), "series": n,
                             "source": source, "expr": expr})
                where = f"{fname} '{panel['title']}' {t['refId']}"
                if err:
                    fail(f"{where}: does not execute: {err}")
                elif not n:
                    fail(f"{where}: returned no series: {expr}")
                if unknown:
                    fail(f"{where}: names metrics the API does not export: {sorted(unknown)}")
            report["dashboards"][fname] = rows

        # ------------------------------------------------------------- rules
        fail = failer("rules")
        for rf in sorted(promlib.RULES_DIR.glob("*.yaml")):
            for group in yaml.safe_load(rf.read_text())["groups"]:
                for rule in group["rules"]:
                    name = rule.get("alert") or rule.get("record")
                    result, err = prom.query(rule["expr"])
                    names = promlib.promql_metric_names(rule["expr"])
                    unknown = {n for n in names - exported - kube_names if not n.startswith("kindling:")}
                    report["rules"].append({"rule": name, "series": len(result or []),
                                            "error": err})
                    if err:
                        fail(f"rule {name}: does not execute: {err}")
                    if unknown:
                        fail(f"rule {name}: names metrics nobody exports: {sorted(unknown)}")
        loaded = prom.api("rules")["groups"]
        for g in loaded:
            for r in g["rules"]:
                if r.get("health") == "err":
                    fail(f"rule {r['name']} evaluates with error: {r.get('lastError')}")
        firing = sorted({a["labels"]["alertname"] for a in prom.api("alerts")["alerts"]})
        print(f"alerts pending or firing at the end of the run: {firing or 'none'}")
        check_outage(prom, failer("outage"))
        check_recorded_series(prom, record_series, failer("recorded series"))

        # ------------------------------------------------------------- logs (LogQL)
        promlib.log("stopping the API (flushes its Loki shipper)")
        stop_process(api, 30)
        if loki:
            check_logql(loki, traffic_start_ns, report, failer("logql"))
        report["responses"] = {"db_up": counts_up, "db_down": counts_down}
        report["exported_metrics"] = sorted(exported)

        print_report(report)
        if report_path:
            report_path.write_text(json.dumps(report, indent=1, default=str))
    finally:
        for stop in (lambda: prom and prom.stop(), lambda: fx and fx.stop(),
                     lambda: pg and pg.remove()):
            try:
                stop()
            except Exception as e:  # cleanup must not hide the test result
                print(f"cleanup: {e}")
        stop_process(api)

    print(f"e2e: {sum(map(len, failures.values()))} failures")
    return failures


def main() -> int:
    """By hand, e.g. to re-record the series the promtool tests may use:
    .venv-checks/bin/python -m kindling_verify.observability.e2e --record-series"""
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(KINDLING_BINARY))
    ap.add_argument("--report", type=Path, help="write the per-query results as JSON here")
    ap.add_argument("--phase-seconds", type=float, default=15)
    ap.add_argument("--record-series", action="store_true",
                    help="rewrite the promtool tests' series record "
                         f"({rule_test_series.SERIES_FILE.relative_to(ROOT)}) from this run")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kindling-e2e-"))
    loki_bin, loki_source = find_test_tool("loki")
    loki = None
    if loki_bin:
        promlib.log(f"Loki from {loki_source}, config {lokilib.LOKI_CONFIG}")
        loki = lokilib.Loki.start(loki_bin, work / "loki")
    else:
        print(f"SKIPPED the LogQL part: {loki_source}")
    try:
        failures = run(Path(args.binary), work, loki, phase_seconds=args.phase_seconds,
                       record_series=args.record_series, report_path=args.report)
    finally:
        if loki:
            loki.stop()
    print(f"work dir: {work}")
    return 1 if any(failures.values()) else 0


def check_exposition(exposition: bytes, fail) -> None:
    """`promtool check metrics` on the API's real /metrics: it exits 0 and reports nothing
    (a lint finding, such as a counter without _total, is printed with exit status 3)."""
    check = subprocess.run([venv_tool("promtool"), "check", "metrics"], input=exposition, capture_output=True)
    lint = (check.stdout + check.stderr).decode().strip()
    print(f"promtool check metrics on the API's exposition: exit {check.returncode}, "
          f"{'clean' if not lint else lint.replace(chr(10), '; ')}")
    if check.returncode != 0 or lint:
        fail(f"promtool check metrics on /metrics: exit {check.returncode}: {lint or 'no output'}")


def check_outage(prom: promlib.Prometheus, fail) -> None:
    """After the database-down phase: the API reports the database down, the outage alert
    has started (pending is enough: the test's Prometheus evaluates every second, but the
    shipped `for: 1m` is longer than the phase) and the 5xx ratio rule has recorded data."""
    db_up, err = prom.query(f'kindling_db_up{{app="kindling-api", pod="{POD}"}}')
    values = [float(r["value"][1]) for r in db_up or []]
    print(f"kindling_db_up of the API target after the outage: {values or err}")
    if values != [0.0]:
        fail(f"kindling_db_up for the API target is {values or err}, want [0] with Postgres down")
    alerts = [a for a in prom.api("alerts")["alerts"]
              if a["labels"].get("alertname") == "KindlingPostgresDown"]
    states = sorted(f'{a["state"]} (namespace={a["labels"].get("namespace")})' for a in alerts)
    print(f"KindlingPostgresDown: {states or 'not active'}")
    if not any(a["state"] in ("pending", "firing") and a["labels"].get("namespace") == NAMESPACE
               for a in alerts):
        fail(f"KindlingPostgresDown is not pending or firing for namespace {NAMESPACE} "
             f"after the outage: {states or 'not active'}")
    ratio, err = prom.query(f'kindling:http_requests_5xx:ratio_rate5m{{namespace="{NAMESPACE}"}}')
    values = [float(r["value"][1]) for r in ratio or []]
    print(f"kindling:http_requests_5xx:ratio_rate5m after the outage: {values or err}")
    if not values or not values[0] > 0:
        fail(f"the 5xx ratio recording rule has no data above 0 after the outage: {values or err}")


def scraped_api_series(prom: promlib.Prometheus) -> set[str]:
    """Every stored series of the API metrics the rules read, as rule_test_series writes them."""
    out = set()
    for name in sorted(rule_test_series.api_metric_names()):
        for labels in prom.api("series", **{"match[]": f'{name}{{pod="{POD}"}}'}):
            labels.pop("__name__")
            for dropped in rule_test_series.DROPPED_LABELS:
                labels.pop(dropped, None)
            out.add(rule_test_series.format_series(name, labels))
    return out


def check_recorded_series(prom: promlib.Prometheus, record: bool, fail) -> None:
    """The promtool tests' series record must still be what a real scrape gives: each recorded
    series still exists (a renamed metric, label or value fails here). With --record-series
    the record is rewritten from this run instead."""
    scraped = scraped_api_series(prom)
    path = rule_test_series.SERIES_FILE
    if record:
        header = ("# Recorded by kindling_verify/observability/e2e.py --record-series from a real scrape of\n"
                  "# the API (relabelled by the shipped config; `instance` dropped). Do not edit by\n"
                  "# hand: the promtool tests may only use these series (rule_test_series.py).\n")
        path.write_text(header + "".join(s + "\n" for s in sorted(scraped)))
        print(f"recorded {len(scraped)} series into {path}")
        return
    recorded = rule_test_series.load_recorded(path)
    gone = sorted(recorded - scraped)
    print(f"{path.name}: {len(recorded) - len(gone)} of {len(recorded)} recorded series still "
          f"scraped ({len(scraped - recorded)} new, not recorded)")
    for s in gone:
        fail(f"{path.name}: {s} is no longer scraped from the API "
             "(fix the rules/tests, then re-record with e2e.py --record-series)")


def check_logql(loki: lokilib.Loki, start_ns: int, report: dict, fail) -> None:
    """Every LogQL query of the dashboards, and the probe request by request_id, in Loki."""
    start_ns -= 60 * 10**9   # a rate's [1m] window reaches back before the traffic
    end_ns = time.time_ns() + 60 * 10**9

    # The probe request's lines, found by the request_id field of the JSON line.
    by_id = f'{{app="kindling-api", namespace="{NAMESPACE}"}} | json | request_id="{PROBE_REQUEST_ID}"'
    data, err = loki.query_range(by_id, start_ns, end_ns)
    if err:
        fail(f"LogQL {by_id}: {err}")
    else:
        streams, lines = lokilib.result_size(data)
        ids = {s["stream"].get("request_id") for s in data["result"]}
        # The pod is structured metadata on each entry; Loki returns it with the stream.
        pods = {s["stream"].get("pod") for s in data["result"]}
        print(f"Loki: {lines} lines of request {PROBE_REQUEST_ID} in {streams} streams "
              f"(labels {sorted({k for s in data['result'] for k in s['stream']})[:12]})")
        if not lines or ids != {PROBE_REQUEST_ID}:
            fail(f"LogQL {by_id}: expected the probe request's lines, got {lines} "
                 f"with request ids {sorted(map(str, ids))}")
        if pods != {POD}:
            fail(f"LogQL {by_id}: expected structured metadata pod={POD}, got {sorted(map(str, pods))}")

    for fname, dash in promlib.dashboards().items():
        # With the request-id variable empty (the dashboard's default) and set to the probe.
        for panel, t, expr in dashboard_queries.queries(dash, "loki", request_id=PROBE_REQUEST_ID):
            data, err = loki.query_range(expr, start_ns, end_ns)
            series, samples = lokilib.result_size(data) if data else (0, 0)
            report["logql"].append({"panel": panel["title"], "refId": t["refId"],
                                    "expr": expr, "series": series,
                                    "samples": samples, "error": err})
            where = f"{fname} '{panel['title']}' {t['refId']} ({expr})"
            if err:
                fail(f"{where}: does not execute in Loki: {err}")
            elif not samples:
                fail(f"{where}: Loki returned nothing")


def print_report(report: dict) -> None:
    print()
    print("Series returned per dashboard query (real Prometheus, real API; 'fixture' = "
          "kube-state-metrics/cAdvisor stand-ins):")
    for fname, rows in report["dashboards"].items():
        if not rows:
            continue
        print(f"  {fname}")
        for r in rows:
            print(f"    {r['panel'][:44]:<44} {r['refId']} {str(r['legend'])[:22]:<22} "
                  f"series={r['series']!s:<4} {r['source']}")
    print("  LogQL in Loki (series or streams, samples or lines)")
    for r in report["logql"]:
        print(f"    {r['panel'][:44]:<44} {r['refId']} series={r['series']} "
              f"samples={r['samples']}  {r['expr'][:70]}")
    print("Rules (instant query at the end of the run):")
    for r in report["rules"]:
        print(f"    {r['rule']:<48} series={r['series']}{' ERROR ' + r['error'] if r['error'] else ''}")


if __name__ == "__main__":
    sys.exit(main())
