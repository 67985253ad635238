"""Relabelling test: the shipped scrape config's relabel rules, run by a real Prometheus.

No Kubernetes API server runs in CI, so each kubernetes_sd_configs block is swapped for
file_sd_configs (promlib.file_sd_copy) and the discovery result is written by hand:
targets carrying the __meta_kubernetes_* labels that Prometheus' pod and node roles document.
The API and migration pods carry the labels and annotations of the rendered dev overlay
(`kubectl kustomize k8s/overlays/dev`), so a change to the Deployment is tested here.
The relabel_configs themselves are untouched. The test then reads /api/v1/targets and the
scraped series and compares them with what the dashboards and rules rely on.

Test: test_relabel.py.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from kindling_verify.helpers import free_port, wait_for
from kindling_verify.observability import promlib
from kindling_verify.observability.fixtures import KubeletAndKsm

NODE = "kind-control-plane"


def pod_target(address: str, *, name: str, namespace: str = "kindling", labels: dict,
               annotations: dict, phase: str = "Running", container: str = "api",
               port: str = "8000", init: bool = False) -> dict:
    meta = {
        "__address__": address,
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_phase": phase,
        "__meta_kubernetes_pod_node_name": NODE,
        "__meta_kubernetes_pod_ready": "true",
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_pod_container_init": "true" if init else "false",
        "__meta_kubernetes_pod_container_port_number": port,
        "__meta_kubernetes_pod_container_port_name": "http",
        "__meta_kubernetes_pod_container_port_protocol": "TCP",
    }
    for k, v in labels.items():
        meta["__meta_kubernetes_pod_label_" + k.replace(".", "_").replace("/", "_").replace("-", "_")] = v
        meta["__meta_kubernetes_pod_labelpresent_" + k.replace(".", "_").replace("/", "_").replace("-", "_")] = "true"
    for k, v in annotations.items():
        key = k.replace(".", "_").replace("/", "_").replace("-", "_")
        meta["__meta_kubernetes_pod_annotation_" + key] = v
        meta["__meta_kubernetes_pod_annotationpresent_" + key] = "true"
    return {"targets": [meta.pop("__address__")], "labels": meta}


def node_target(address: str) -> dict:
    return {"targets": [address], "labels": {
        "__meta_kubernetes_node_name": NODE,
        "__meta_kubernetes_node_address_InternalIP": address.split(":")[0],
        "__meta_kubernetes_node_label_kubernetes_io_hostname": NODE,
    }}


def write_discovery(sd_dir: Path, pods: list[dict], nodes: list[dict]) -> None:
    (sd_dir / "kubernetes-pods.json").write_text(json.dumps(pods, indent=1))
    (sd_dir / "kubelet-cadvisor.json").write_text(json.dumps(nodes, indent=1))


def start_prometheus(work: Path, fixture_port: int) -> promlib.Prometheus:
    sd_dir = work / "sd"
    sd_dir.mkdir(exist_ok=True)
    port = free_port()
    cfg = promlib.file_sd_copy(promlib.load_config(), sd_dir, prometheus_port=port,
                               ksm_address=f"127.0.0.1:{fixture_port}", kubelet_http=True)
    path = promlib.write_yaml(work / "prometheus.yaml", cfg)
    return promlib.Prometheus(path, work, port)


def api_pod_metadata() -> tuple[dict, dict, str]:
    """Labels, annotations and container name of the API's pods in the rendered dev overlay."""
    template = promlib.rendered_pod_template("Deployment", "kindling-api")
    meta = template["metadata"]
    return meta.get("labels") or {}, meta.get("annotations") or {}, template["spec"]["containers"][0]["name"]


def run() -> list[str]:
    """Every expectation, printed ok or FAIL; returns the failed ones."""
    failures: list[str] = []
    checks = 0

    def expect(cond: bool, what: str) -> None:
        nonlocal checks
        checks += 1
        print(f"{'ok  ' if cond else 'FAIL'} {what}")
        if not cond:
            failures.append(what)

    api_labels, api_annotations, api_container = api_pod_metadata()
    migrate_labels = promlib.rendered_pod_template("Job", "kindling-migrate")["metadata"]["labels"]
    work = Path(tempfile.mkdtemp(prefix="kindling-relabel-"))
    fx = KubeletAndKsm(namespace="kindling", pod="kindling-api-7d4b9c6f5-abcde", container=api_container,
                       pid=os.getpid(), node=NODE)
    p = fx.port
    # The rendered annotations, with the port the stand-in listens on here (checked below
    # to be the container's port in the render).
    ann = dict(api_annotations, **{"prometheus.io/port": str(p)})
    rendered_port = api_annotations.get("prometheus.io/port")
    pods = [
        # The API pod as the rendered Deployment labels it; discovery reports one target
        # per container port, both must collapse into one scrape of the annotated port.
        pod_target(f"127.0.0.1:{rendered_port}", name="kindling-api-7d4b9c6f5-abcde", labels=api_labels,
                   annotations=ann, container=api_container, port=str(rendered_port)),
        pod_target("127.0.0.1:9100", name="kindling-api-7d4b9c6f5-abcde", labels=api_labels,
                   annotations=ann, container=api_container, port="9100"),
        # Labelled the other common way: name=kindling-api and no component.
        pod_target("127.0.0.1:8000", name="kindling-api-7d4b9c6f5-fghij",
                   labels={"app.kubernetes.io/name": "kindling-api"},
                   annotations={"prometheus.io/scrape": "true", "prometheus.io/port": str(p)}),
        # A custom path.
        pod_target("127.0.0.1:8000", name="custom-path-0", labels={"app.kubernetes.io/name": "custom"},
                   annotations={"prometheus.io/scrape": "true", "prometheus.io/port": str(p),
                                "prometheus.io/path": "/custom-metrics"}),
        # Must be dropped: no annotation, scrape=false, finished pod, init container.
        pod_target("127.0.0.1:5432", name="postgres-0",
                   labels={"app.kubernetes.io/name": "postgres"}, annotations={}),
        pod_target("127.0.0.1:8000", name="opted-out-0", labels={"app.kubernetes.io/name": "x"},
                   annotations={"prometheus.io/scrape": "false", "prometheus.io/port": str(p)}),
        pod_target("127.0.0.1:8000", name="kindling-migrate-xyz", labels=migrate_labels,
                   annotations=ann, phase="Succeeded"),
        pod_target("127.0.0.1:8000", name="with-init-0", labels=api_labels, annotations=ann,
                   container="wait-for-db", init=True),
    ]
    api_ports = [str(port["containerPort"]) for port in
                 promlib.rendered_pod_template("Deployment", "kindling-api")["spec"]["containers"][0].get("ports", [])]
    expect(rendered_port in api_ports,
           f"the rendered prometheus.io/port ({rendered_port}) is a port of the API container ({api_ports})")
    (work / "sd").mkdir()
    write_discovery(work / "sd", pods, [node_target(f"127.0.0.1:{p}")])
    prom = start_prometheus(work, p)
    try:
        def active():
            return prom.api("targets", state="active")["activeTargets"]

        wait_for(lambda: {t["scrapePool"] for t in active()} >= {
            "kubernetes-pods", "kubelet-cadvisor", "kube-state-metrics", "prometheus"}
            and all(t["health"] == "up" for t in active()), 30)
        time.sleep(2)
        targets = active()
        pods_t = [t for t in targets if t["scrapePool"] == "kubernetes-pods"]
        by_pod = {t["labels"].get("pod"): t for t in pods_t}

        expect(len(pods_t) == 3, f"kubernetes-pods keeps 3 targets (got {len(pods_t)}: {sorted(by_pod)})")
        api = by_pod.get("kindling-api-7d4b9c6f5-abcde", {})
        lab = api.get("labels", {})
        expect(lab.get("app") == "kindling-api",
               f"the rendered Deployment's labels {api_labels} -> app=kindling-api ({lab.get('app')})")
        expect(lab.get("namespace") == "kindling" and lab.get("node") == NODE,
               f"namespace and node labels set ({lab.get('namespace')}, {lab.get('node')})")
        expect(api.get("scrapeUrl") == f"http://127.0.0.1:{p}/metrics",
               f"two container ports collapse onto the annotated port ({api.get('scrapeUrl')})")
        other = by_pod.get("kindling-api-7d4b9c6f5-fghij", {}).get("labels", {})
        expect(other.get("app") == "kindling-api", f"name=kindling-api -> app=kindling-api ({other.get('app')})")
        custom = by_pod.get("custom-path-0", {})
        expect(custom.get("scrapeUrl", "").endswith("/custom-metrics"),
               f"prometheus.io/path is honoured ({custom.get('scrapeUrl')})")
        for dropped in ("postgres-0", "opted-out-0", "kindling-migrate-xyz", "with-init-0"):
            expect(dropped not in by_pod, f"{dropped} is not scraped")
        expect(not any(k.startswith("__meta") for t in pods_t for k in t["labels"]),
               "no discovery label leaks into target labels")
        expect(all(t["health"] == "up" for t in targets),
               f"every target is up ({[(t['scrapePool'], t['lastError']) for t in targets if t['health'] != 'up']})")

        kubelet = [t for t in targets if t["scrapePool"] == "kubelet-cadvisor"]
        expect(len(kubelet) == 1 and kubelet[0]["labels"].get("node") == NODE
               and kubelet[0]["scrapeUrl"].endswith("/metrics/cadvisor"),
               f"kubelet target scrapes /metrics/cadvisor with node label ({[t['scrapeUrl'] for t in kubelet]})")

        names, _ = prom.query('count by (__name__) ({job="kubelet-cadvisor"})')
        synthetic = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                     "scrape_samples_post_metric_relabeling", "scrape_series_added"}
        got = sorted(r["metric"]["__name__"] for r in names or [] if r["metric"]["__name__"] not in synthetic)
        expect(got == ["container_cpu_usage_seconds_total", "container_memory_working_set_bytes"],
               f"kubelet metric_relabel keeps only the two container families ({got})")
        ksm, _ = prom.query('kube_pod_container_resource_requests{job="kube-state-metrics"}')
        ns = {r["metric"].get("namespace") for r in ksm or []}
        exported = any("exported_namespace" in r["metric"] for r in ksm or [])
        expect(ns == {"kindling"} and not exported,
               f"honor_labels keeps kube-state-metrics' namespace label ({ns}, exported_namespace={exported})")
        rules = prom.api("rules")["groups"]
        bad = [r["name"] for g in rules for r in g["rules"] if r.get("health") not in ("ok", "unknown")]
        expect(rules and not bad, f"rule files load and evaluate ({len(rules)} groups, unhealthy: {bad})")
    finally:
        prom.stop()
        fx.stop()

    print(f"relabel: {checks - len(failures)} passed, {len(failures)} failed")
    return failures
