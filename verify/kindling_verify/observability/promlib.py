"""The observability suite's own helpers: paths, the scrape config with Kubernetes discovery
replaced by files (no API server runs here), a Prometheus process (3.5.3, the cluster's version,
from verify/install.sh), and PromQL / LogQL inspection.
What every suite needs (ports, processes, the repository root) is in kindling_verify.helpers.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from kindling_verify.helpers import ROOT, kustomize, stop_process, venv_tool

OBS = ROOT / "k8s" / "observability"
PROM_CONFIG = OBS / "prometheus" / "prometheus.yaml"
RULES_DIR = OBS / "prometheus" / "rules"
DASHBOARDS_DIR = OBS / "grafana" / "dashboards"
DATASOURCES = OBS / "grafana" / "provisioning" / "datasources.yaml"

# Metric families that come from the cluster rather than from the API: kube-state-metrics
# (v2 names) and the kubelet's cAdvisor. A dashboard may name these and nothing else besides
# what the API exports.
CLUSTER_METRICS = {
    "kube_pod_container_resource_requests": "kube-state-metrics",
    "kube_pod_container_resource_limits": "kube-state-metrics",
    "kube_pod_container_status_restarts_total": "kube-state-metrics",
    "kube_pod_container_status_waiting_reason": "kube-state-metrics",
    "kube_deployment_status_replicas_available": "kube-state-metrics",
    "kube_horizontalpodautoscaler_status_desired_replicas": "kube-state-metrics",
    "kube_horizontalpodautoscaler_status_current_replicas": "kube-state-metrics",
    "kube_horizontalpodautoscaler_spec_max_replicas": "kube-state-metrics",
    "container_cpu_usage_seconds_total": "cAdvisor",
    "container_memory_working_set_bytes": "cAdvisor",
}


def log(msg: str) -> None:
    print(f"==> {msg}", flush=True)


# --------------------------------------------------------------------------- config variants

def load_config() -> dict:
    return yaml.safe_load(PROM_CONFIG.read_text())


def file_sd_copy(cfg: dict, sd_dir: Path, *, prometheus_port: int, ksm_address: str,
                 kubelet_http: bool, scrape_interval: str = "1s") -> dict:
    """The config with each kubernetes_sd_configs block replaced by file_sd_configs reading
    <sd_dir>/<job>.json. Relabel rules are kept untouched, so targets written with the
    __meta_kubernetes_* labels that Kubernetes discovery would attach go through exactly the
    relabelling the cluster's Prometheus applies.

    Other differences from the shipped config, all outside relabelling:
    - scrape and evaluation every `scrape_interval`, so a test needs seconds, not minutes;
    - rule files read from the repository;
    - kube-state-metrics' in-cluster DNS name replaced by `ksm_address`;
    - with kubelet_http, the kubelet job talks plain HTTP without a token (the test's stand-in
      kubelet has neither TLS nor a service account).
    """
    cfg = copy.deepcopy(cfg)
    cfg["global"]["scrape_interval"] = scrape_interval
    cfg["global"]["evaluation_interval"] = scrape_interval
    cfg["global"]["scrape_timeout"] = scrape_interval
    cfg["rule_files"] = [str(RULES_DIR / "*.yaml")]
    for job in cfg["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["file_sd_configs"] = [{"files": [str(sd_dir / f"{job['job_name']}.json")],
                                       "refresh_interval": "1s"}]
        if job["job_name"] == "kube-state-metrics":
            job["static_configs"] = [{"targets": [ksm_address]}]
        if job["job_name"] == "prometheus":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{prometheus_port}"]}]
        if kubelet_http and job.get("scheme") == "https":
            job["scheme"] = "http"
            job.pop("tls_config", None)
            job.pop("authorization", None)
    return cfg


DEV_OVERLAY = ROOT / "k8s" / "overlays" / "dev"


def rendered_pod_template(kind: str, name: str, overlay: Path = DEV_OVERLAY) -> dict:
    """The pod template of one workload as `kubectl kustomize <overlay>` renders it, so that
    tests use the labels and annotations the cluster's pods really carry, not a copy."""
    for doc in yaml.safe_load_all(kustomize(overlay)):
        if doc and doc.get("kind") == kind and doc["metadata"]["name"] == name:
            path = ("spec", "jobTemplate", "spec", "template") if kind == "CronJob" else ("spec", "template")
            template = doc
            for key in path:
                template = template[key]
            template = copy.deepcopy(template)
            template["metadata"].setdefault("namespace", doc["metadata"].get("namespace", "default"))
            return template
    raise SystemExit(f"{kind}/{name} is not in the render of {overlay}")


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --------------------------------------------------------------------------- Prometheus process

class Prometheus:
    """The Prometheus server of .venv-checks (verify/install.sh) on 127.0.0.1, in a scratch directory."""

    def __init__(self, config: Path, workdir: Path, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        binary = venv_tool("prometheus")
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
             "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            try:
                if urllib.request.urlopen(f"{self.url}/-/ready", timeout=1).status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("prometheus did not become ready in 30 s")

    def api(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body}")
        return body["data"]

    def query(self, expr: str) -> tuple[list | None, str | None]:
        """Instant query; returns (result, None) or (None, error message)."""
        try:
            data = self.api("query", query=expr)
        except urllib.error.HTTPError as e:
            return None, json.load(e).get("error", str(e))
        if data["resultType"] in ("vector", "matrix"):
            return data["result"], None
        return [data["result"]], None  # scalar / string: one value

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self._log.close()


# --------------------------------------------------------------------------- PromQL / LogQL

PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2",
}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are neither functions, keywords,
    label names inside {...} or grouping clauses, nor durations."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # string literals
    s = re.sub(r"\{[^}]*\}", "{}", s)                       # label matchers
    s = re.sub(r"\[[^\]]*\]", "[]", s)                      # range / subquery
    s = _GROUPING.sub(" ", s)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


LABEL_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def logql_selectors(expr: str) -> list[list[tuple[str, str, str]]]:
    """The stream selectors of a LogQL query, each as [(label, op, value)]."""
    return [LABEL_MATCHER.findall(body) for body in re.findall(r"\{([^{}]*)\}", expr)]


def logql_grouping_labels(expr: str) -> set[str]:
    out = set()
    for body in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        out |= {x.strip() for x in body.split(",") if x.strip()}
    return out
