"""End-to-end test of every dashboard query and alert rule against real data.

1. A throwaway Postgres cluster (initdb in a temp dir) and the real kindling binary
   (target/debug/kindling serve) with LOKI_URL pointing at an in-process Loki receiver.
2. A real Prometheus (Debian's 2.42) on 127.0.0.1 loading the shipped scrape config through
   promlib.file_sd_copy: the API is discovered as a pod with the Deployment's annotations and
   labels and goes through the shipped relabel rules; kube-state-metrics and the kubelet are
   fixtures (fixtures.KubeletAndKsm) reporting for the same pod.
3. A known mix of requests: successes, 404, 422, unmatched paths, then 503s after Postgres
   is stopped.
4. Every PromQL expression of every dashboard and rule is executed; each must parse, each
   dashboard query must return series, every metric a dashboard names must be one the API
   exports (or a declared kube-state-metrics/cAdvisor family), the rules must evaluate
   without error.
5. After the API shuts down (flushing its log shipper), every LogQL query's labels must be
   labels the API pushed, and its selector and line filter must match pushed streams.

Prints a table of panels and series counts and writes it as JSON when --report is given.
Run: .venv-checks/bin/python scripts/observability/e2e.py [--binary PATH] [--report FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import promlib
import yaml
from fixtures import KubeletAndKsm, LokiReceiver, wait_for
from relabel_test import API_LABELS, node_target, pod_target, write_discovery

NAMESPACE = "kindling"
POD = "kindling-api-5f6d8c7b9d-e2e01"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# Grafana picks $__rate_interval from the time range; the test's whole run fits in one minute.
GRAFANA_VALUES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1m", "__auto": "1m"}


# --------------------------------------------------------------------------- Postgres

class Postgres:
    """initdb + pg_ctl as the unprivileged `postgres` user when run as root."""

    def __init__(self, work: Path):
        self.dir = work / "pg"
        self.dir.mkdir()
        self.port = promlib.free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(work, pw.pw_uid, pw.pw_gid)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self._run(PG_BIN / "initdb", "-D", self.dir / "data", "-U", "postgres", "-A", "trust",
                  "--no-sync")
        self.start()

    def _run(self, *args) -> None:
        subprocess.run(self.prefix + [str(a) for a in args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-o", opts, "-l",
                  self.dir / "pg.log", "-w", "start")

    def stop(self) -> None:
        subprocess.run(self.prefix + [str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"),
                                      "-m", "fast", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"


# --------------------------------------------------------------------------- HTTP helpers

def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)
    except OSError as e:
        return 0, str(e).encode(), {}


def exported_metric_names(exposition: str) -> set[str]:
    """Sample names in a text exposition (histograms as _bucket/_sum/_count)."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def traffic(base: str, seconds: float, db_up: bool, counts: dict, probe_id: str | None) -> None:
    """A fixed mix of requests, repeated until `seconds` have passed."""
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

def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(promlib.ROOT / "target" / "debug" / "kindling"))
    ap.add_argument("--report", help="write the per-query results as JSON here")
    ap.add_argument("--phase-seconds", type=float, default=15)
    args = ap.parse_args()

    failures: list[str] = []

    def fail(msg: str) -> None:
        print(f"FAIL {msg}", flush=True)
        failures.append(msg)

    binary = Path(args.binary)
    if not binary.exists():
        print(f"FAIL {binary} does not exist: build the service first (cargo build)")
        return 1

    work = Path(tempfile.mkdtemp(prefix="kindling-e2e-"))
    procs: list = []
    pg = api = prom = fx = loki = None
    api_log = open(work / "api.log", "w")
    try:
        promlib.log(f"Postgres (initdb in {work})")
        pg = Postgres(work)
        loki = LokiReceiver()
        api_port = promlib.free_port()
        env = dict(os.environ, DATABASE_URL=pg.url, ROCKET_ADDRESS="127.0.0.1",
                   ROCKET_PORT=str(api_port), MIGRATE_ON_START="true",
                   LOKI_URL=f"http://127.0.0.1:{loki.port}", POD_NAMESPACE=NAMESPACE,
                   POD_NAME=POD, APP_ENVIRONMENT="ci", RUST_LOG="info",
                   # Fail fast once Postgres is gone, so the outage phase yields many 5xx.
                   DATABASE_ACQUIRE_TIMEOUT_MS="250")
        promlib.log(f"kindling API ({binary} serve) on 127.0.0.1:{api_port}")
        api = subprocess.Popen([str(binary), "serve"], env=env, stdout=api_log,
                               stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{api_port}"
        if not wait_for(lambda: http("GET", base + "/api/v1/health/ready")[0] == 200, 60, 0.5):
            fail(f"API not ready in 60 s; log tail: {(work / 'api.log').read_text()[-1500:]}")
            return 1

        status, exposition, _ = http("GET", base + "/metrics")
        exported = exported_metric_names(exposition.decode(errors="replace"))
        if status != 200 or not exported:
            fail(f"GET /metrics answered {status} with {len(exported)} metric names")
            return 1
        check = subprocess.run(["promtool", "check", "metrics"], input=exposition,
                               capture_output=True)
        lint = (check.stdout + check.stderr).decode().strip()
        print(f"promtool check metrics on the API's exposition: "
              f"{'clean' if not lint else lint.replace(chr(10), '; ')}")

        fx = KubeletAndKsm(namespace=NAMESPACE, pod=POD, container="api", pid=api.pid,
                           node="kind-control-plane")
        sd = work / "sd"
        sd.mkdir()
        # The Deployment's pod annotations, with the port the API listens on here.
        annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(api_port),
                       "prometheus.io/path": "/metrics"}
        write_discovery(sd, [pod_target(f"127.0.0.1:{api_port}", name=POD, labels=API_LABELS,
                                        annotations=annotations)],
                        [node_target(f"127.0.0.1:{fx.port}")])
        prom_port = promlib.free_port()
        cfg = promlib.file_sd_copy(promlib.load_config(), sd, prometheus_port=prom_port,
                                   ksm_address=f"127.0.0.1:{fx.port}", kubelet_http=True)
        (work / "prom").mkdir()
        prom = promlib.Prometheus(promlib.write_yaml(work / "prometheus.yaml", cfg), work / "prom",
                                  prom_port)
        if not wait_for(lambda: len([t for t in prom.api("targets", state="active")["activeTargets"]
                                     if t["health"] == "up"]) >= 4, 30):
            fail(f"targets not up: {prom.api('targets', state='active')['activeTargets']}")
            return 1

        counts_up: dict = {}
        counts_down: dict = {}
        probe_id = "e2e-probe-0001"
        promlib.log(f"traffic with the database up ({args.phase_seconds:.0f} s)")
        traffic(base, args.phase_seconds, True, counts_up, probe_id)
        promlib.log("stopping Postgres")
        pg.stop()
        promlib.log(f"traffic with the database down ({args.phase_seconds:.0f} s)")
        traffic(base, args.phase_seconds, False, counts_down, None)
        time.sleep(3)  # a few more scrapes and rule evaluations
        print(f"responses with database up:   {dict(sorted(counts_up.items()))}")
        print(f"responses with database down: {dict(sorted(counts_down.items()))}")
        for code, where in ((201, counts_up), (404, counts_up), (422, counts_up), (503, counts_down)):
            if not where.get(code):
                fail(f"the request mix produced no {code} response")

        # Labelled series (per route, per operation) exist only once observed: read the
        # exposition again now that the traffic has touched every code path.
        status, exposition, _ = http("GET", base + "/metrics")
        exported |= exported_metric_names(exposition.decode(errors="replace"))

        # ------------------------------------------------------------- dashboards (PromQL)
        report = {"dashboards": {}, "rules": [], "logql": []}
        kube_names = set(promlib.CLUSTER_METRICS)
        for fname, dash in promlib.dashboards().items():
            values = dict(promlib.variable_defaults(dash), **GRAFANA_VALUES)
            rows = []
            for panel in promlib.panels(dash):
                for t in panel.get("targets", []):
                    ds = (t.get("datasource") or panel.get("datasource") or {}).get("type")
                    if ds != "prometheus":
                        continue
                    expr = promlib.substitute(t["expr"], values)
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

        # ------------------------------------------------------------- logs (LogQL)
        promlib.log("stopping the API (flushes its Loki shipper)")
        api.send_signal(signal.SIGTERM)
        try:
            api.wait(30)
        except subprocess.TimeoutExpired:
            api.kill()
        wait_for(lambda: False, 1)
        streams = loki.snapshot()
        if loki.errors:
            fail(f"Loki receiver could not decode pushes: {loki.errors[:3]}")
        pushed_labels = set().union(*(s[0].keys() for s in streams)) if streams else set()
        print(f"Loki: {loki.pushes} pushes, {len(streams)} streams, labels {sorted(pushed_labels)}")
        for labels, lines in streams:
            print(f"  stream {labels}: {len(lines)} lines")
        if not streams:
            fail("the API pushed no log stream to LOKI_URL")
        lines_with_probe = [ln for _, lines in streams for ln in lines if probe_id in ln]
        for fname, dash in promlib.dashboards().items():
            values = dict(promlib.variable_defaults(dash), **GRAFANA_VALUES)
            for panel in promlib.panels(dash):
                for t in panel.get("targets", []):
                    ds = (t.get("datasource") or panel.get("datasource") or {}).get("type")
                    if ds != "loki":
                        continue
                    variants = [values]
                    if "$request_id" in t["expr"]:
                        variants.append(dict(values, request_id=probe_id))
                    for label_values in variants:
                        expr = promlib.substitute(t["expr"], label_values)
                        used = {n for sel in promlib.logql_selectors(expr) for n, _, _ in sel}
                        used |= promlib.logql_grouping_labels(expr)
                        missing = used - pushed_labels
                        sel = promlib.logql_selectors(expr)[0]
                        matching = [(lb, ls) for lb, ls in streams if promlib.stream_matches(sel, lb)]
                        lines = [ln for _, ls in matching for ln in ls
                                 if all(v in ln if op == "|=" else v not in ln
                                        for op, v in promlib.logql_line_filters(expr)
                                        if op in ("|=", "!="))]
                        row = {"panel": panel["title"], "refId": t["refId"], "expr": expr,
                               "streams": len(matching), "lines": len(lines)}
                        report["logql"].append(row)
                        where = f"{fname} '{panel['title']}' {t['refId']} ({expr})"
                        if missing:
                            fail(f"{where}: uses labels the API never pushed: {sorted(missing)}")
                        elif not matching and "error" not in expr:
                            fail(f"{where}: selects no stream the API pushed")
                        if "$request_id" in t["expr"] and label_values.get("request_id") == probe_id:
                            if not lines:
                                fail(f"{where}: finds no line for request id {probe_id} "
                                     f"({len(lines_with_probe)} pushed lines contain it)")
        report["responses"] = {"db_up": counts_up, "db_down": counts_down}
        report["exported_metrics"] = sorted(exported)
        report["loki_labels"] = sorted(pushed_labels)

        print_report(report)
        if args.report:
            Path(args.report).write_text(json.dumps(report, indent=1, default=str))
    finally:
        for stop in (lambda: prom and prom.stop(), lambda: fx and fx.stop(),
                     lambda: loki and loki.stop(), lambda: pg and pg.stop()):
            try:
                stop()
            except Exception as e:  # cleanup must not hide the test result
                print(f"cleanup: {e}")
        if api and api.poll() is None:
            api.kill()
            api.wait()
        api_log.close()
        if not failures and not promlib.env_flag("KEEP_E2E_DIR"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work dir kept for inspection: {work}")

    print(f"e2e: {len(failures)} failures")
    return 1 if failures else 0


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
    print("  logs.json (LogQL against the streams the API pushed)")
    for r in report["logql"]:
        print(f"    {r['panel'][:44]:<44} {r['refId']} streams={r['streams']} lines={r['lines']}"
              f"  {r['expr'][:70]}")
    print("Rules (instant query at the end of the run):")
    for r in report["rules"]:
        print(f"    {r['rule']:<48} series={r['series']}{' ERROR ' + r['error'] if r['error'] else ''}")


if __name__ == "__main__":
    sys.exit(main())
