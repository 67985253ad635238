"""The platform's cost on a laptop, as numbers (scripts/footprint.sh runs this).

For each platform the Tiltfile can deploy (kind or minikube, everything or
--skip-observability) it sums the memory and CPU requests and limits of what runs for good:
every Deployment, StatefulSet and DaemonSet of the rendered manifests (k8s/overlays/dev,
k8s/observability, as the Tiltfile applies them) and of the pinned upstream ones (ingress-nginx
v1.15.1 on kind, verified against the Tiltfile's sha256; on minikube the `ingress` and
`metrics-server` addons, whose requests are copied below from minikube v1.38.1). A pod counts
as Kubernetes counts it (its containers' sum, or its largest init container if that is more),
times its replicas; the API runs at its HorizontalPodAutoscaler's minimum. A container without
a limit leaves the pod's limit unbounded: it is named, and its request stands in for it. Jobs
(migration, ingress-nginx's certificate jobs) finish and are listed apart.

Images: the size of each pinned image where this machine has it (`docker image inspect`, or
`crictl images` inside the kind node `kindling-control-plane`); CI machines pull nothing, so
there most upstream images are "not here".

`--measure SECONDS` runs the end-to-end workload of e2e.py (the real API, Postgres, Loki and
Prometheus on this machine, the same request mix, SECONDS per phase) and reports each one's
peak resident memory; Grafana, ingress-nginx, metrics-server and kube-state-metrics cannot run
here, and their requests and limits are all there is.

  .venv-checks/bin/python -m kindling_verify.observability.footprint [--measure 15] [--json FILE]

test_footprint.py holds README.md's table to these sums.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kindling_verify.helpers import ROOT, SHARED, yaml_documents

GIB = 1024**3
MIB = 1024**2
TILTFILE = ROOT / "Tiltfile"
README = ROOT / "README.md"
INGRESS_NAME = "ingress-nginx-kind-v1.15.1.yaml"
KIND_NODE = "kindling-control-plane"

# minikube v1.38.1's addons (kubernetes/minikube at tag v1.38.1): the ingress controller
# (deploy/addons/ingress/ingress-deploy.yaml.tmpl) and metrics-server
# (deploy/addons/metrics-server/metrics-server-deployment.yaml.tmpl) set requests, no limits.
MINIKUBE_ADDONS = [
    ("minikube ingress addon", "ingress-nginx", "ingress-nginx-controller", "controller",
     {"requests": {"cpu": "100m", "memory": "90Mi"}}),
    ("minikube metrics-server addon", "kube-system", "metrics-server", "metrics-server",
     {"requests": {"cpu": "100m", "memory": "200Mi"}}),
]
PLATFORMS = [("kind", False), ("kind", True), ("minikube", False), ("minikube", True)]


def platform_name(cluster: str, skip_observability: bool) -> str:
    return f"{cluster}, " + ("`--skip-observability`" if skip_observability else "everything")


def quantity(q: str | int | float, cpu: bool) -> float:
    """Cores for CPU, bytes for memory, from Kubernetes' quantity syntax."""
    s = str(q)
    if cpu:
        return float(s[:-1]) / 1000 if s.endswith("m") else float(s)
    units = {"Ki": 1024, "Mi": MIB, "Gi": GIB, "Ti": 1024**4, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in units.items():
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * factor
    return float(s)


@dataclass
class Pod:
    """One workload as its pods run: per pod, then times `replicas`."""

    source: str
    kind: str
    namespace: str
    name: str
    replicas: int
    requests: dict[str, float] = field(default_factory=dict)   # cpu (cores), memory (bytes)
    limits: dict[str, float | None] = field(default_factory=dict)  # None: a container sets none
    unlimited: list[str] = field(default_factory=list)  # containers without a memory limit
    images: list[str] = field(default_factory=list)


def _amounts(containers: list[dict], res: str, cpu: bool) -> list[tuple[float, float | None]]:
    """(request, limit or None) of each container for one resource."""
    out = []
    for c in containers:
        r = c.get("resources") or {}
        req = quantity(r["requests"][res], cpu) if res in (r.get("requests") or {}) else 0.0
        lim = quantity(r["limits"][res], cpu) if res in (r.get("limits") or {}) else None
        out.append((req, lim))
    return out


def pod_resources(spec: dict) -> tuple[dict, dict, list[str]]:
    """(requests, limits, containers without a memory limit) of a pod spec: the containers' sum,
    or the largest init container where that is more. A missing limit stands in as the
    container's request in the sum (the pod is unbounded: see the third element)."""
    containers, init = spec.get("containers") or [], spec.get("initContainers") or []
    requests, limits = {}, {}
    for res, cpu in (("cpu", True), ("memory", False)):
        main = [(req, req if lim is None else lim) for req, lim in _amounts(containers, res, cpu)]
        first = [(req, req if lim is None else lim) for req, lim in _amounts(init, res, cpu)]
        requests[res] = max(sum(r for r, _ in main), max((r for r, _ in first), default=0.0))
        limits[res] = max(sum(lim for _, lim in main), max((lim for _, lim in first), default=0.0))
    unlimited = [c["name"] for c, (_, lim) in zip(containers, _amounts(containers, "memory", False), strict=True)
                 if lim is None]
    return requests, limits, unlimited


def workloads(docs: list[dict], source: str) -> tuple[list[Pod], list[Pod]]:
    """(long-running workloads, jobs) of a set of manifests."""
    hpa_min = {d["spec"]["scaleTargetRef"]["name"]: d["spec"].get("minReplicas", 1)
               for d in docs if d.get("kind") == "HorizontalPodAutoscaler"}
    running, jobs = [], []
    for d in docs:
        kind = d.get("kind")
        if kind not in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
            continue
        spec = d["spec"]
        template = spec["jobTemplate"]["spec"]["template"] if kind == "CronJob" else spec["template"]
        name = d["metadata"]["name"]
        replicas = spec.get("replicas", hpa_min.get(name, 1)) if kind != "DaemonSet" else 1
        req, lim, unlimited = pod_resources(template["spec"])
        images = [c["image"] for c in (template["spec"].get("initContainers") or [])
                  + template["spec"]["containers"]]
        pod = Pod(source, kind, d["metadata"].get("namespace", "default"), name, replicas,
                  req, lim, unlimited, images)
        (jobs if kind in ("Job", "CronJob") else running).append(pod)
    return running, jobs


def rendered(directory: Path) -> list[dict]:
    """`kubectl kustomize`, as the Tiltfile's kustomize() renders it (quietly: this is a report)."""
    p = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"kubectl kustomize {directory}: {p.stderr.strip()}")
    return yaml_documents(p.stdout)


def ingress_manifest() -> Path:
    """The pinned ingress-nginx manifest, where the Tiltfile's cache or CI's copy has it,
    checked against the Tiltfile's sha256."""
    want = re.search(r"INGRESS_NGINX_SHA256 = '([0-9a-f]{64})'", TILTFILE.read_text()).group(1)
    cache = Path(os.environ.get("KINDLING_CACHE_DIR")
                 or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kindling")
    for path in (SHARED / "data" / "ingress-nginx" / "kind-deploy-v1.15.1.yaml",
                 cache / "downloads" / INGRESS_NAME):
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == want:
            return path
    raise SystemExit(f"no copy of the ingress-nginx manifest with sha256 {want}: run `tilt up` "
                     f"once (it caches {INGRESS_NAME}) or provide ../shared/data")


def addon_pods() -> list[Pod]:
    pods = []
    for source, namespace, name, container, resources in MINIKUBE_ADDONS:
        spec = {"containers": [{"name": container, "resources": resources}]}
        req, lim, unlimited = pod_resources(spec)
        pods.append(Pod(source, "Deployment", namespace, name, 1, req, lim, unlimited))
    return pods


def platform(cluster: str, skip_observability: bool) -> tuple[list[Pod], list[Pod]]:
    """What the Tiltfile deploys on `cluster` with or without --skip-observability."""
    running, jobs = workloads(rendered(ROOT / "k8s" / "overlays" / "dev"),
                              "k8s/overlays/dev")
    if not skip_observability:
        obs, obs_jobs = workloads(rendered(ROOT / "k8s" / "observability"),
                                  "k8s/observability")
        if cluster == "minikube":
            # The Tiltfile leaves ours out: minikube's addon runs metrics-server.
            obs = [p for p in obs if p.name != "metrics-server"]
        running += obs
        jobs += obs_jobs
    if cluster == "kind":
        ingress, ingress_jobs = workloads(yaml_documents(ingress_manifest().read_text()),
                                          "ingress-nginx v1.15.1")
        running += ingress
        jobs += ingress_jobs
    else:
        running += addon_pods()
    return running, jobs


def totals(pods: list[Pod]) -> dict[str, float]:
    return {f"{what}_{res}": sum(getattr(p, what)[res] * p.replicas for p in pods)
            for what in ("requests", "limits") for res in ("cpu", "memory")}


# --------------------------------------------------------------------------- images

def image_sizes(images: set[str]) -> dict[str, int | None]:
    """Bytes per image where this machine has it: Docker's image store, then the kind node's
    containerd (`crictl images`); None where neither has it."""
    sizes: dict[str, int | None] = {}
    node: dict[str, int] = {}
    p = subprocess.run(["docker", "exec", KIND_NODE, "crictl", "images", "-o", "json"],
                       capture_output=True, text=True)
    if p.returncode == 0:
        for img in json.loads(p.stdout).get("images", []):
            for ref in (img.get("repoTags") or []) + (img.get("repoDigests") or []):
                node[ref] = int(img["size"])
    for image in sorted(images):
        p = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", image],
                           capture_output=True, text=True)
        if p.returncode == 0:
            sizes[image] = int(p.stdout.strip())
        else:
            name = image.split("@")[0]
            sizes[image] = node.get(image) or node.get(name) or node.get("docker.io/" + name)
    return sizes


# --------------------------------------------------------------------------- measured memory

def _status_kib(pid: int, key: str) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(parent: int) -> dict[int, str]:
    """{pid: command name} of the direct children of `parent`."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1: stat.rindex(")")]
            if int(stat[stat.rindex(")") + 2:].split()[1]) == parent:
                out[int(entry)] = comm
    return out


def measure(seconds: float, binary: Path | None = None) -> dict[str, float]:
    """Peak resident memory (bytes) of the API, Prometheus, Loki and Postgres while e2e.py's
    workload runs: each single process's high-water mark (VmHWM), Postgres's processes summed
    by proportional set size (they share their buffers), sampled every 0.2 s."""
    from kindling_verify.helpers import built_kindling, find_test_tool
    from kindling_verify.observability import e2e, lokilib

    loki_bin, why = find_test_tool("loki")
    if loki_bin is None:
        raise SystemExit(why)
    containers: list[str] = []

    class RecordedPostgres(e2e.Postgres):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            containers.append(self.container)

    peaks = {"kindling API": 0, "Prometheus": 0, "Loki": 0, "Postgres": 0}
    done = threading.Event()
    work = Path(tempfile.mkdtemp(prefix="kindling-footprint-"))
    binary = binary or built_kindling()
    loki = lokilib.Loki.start(loki_bin, work / "loki")

    def sample() -> None:
        # /proc's command name: the executable's name, cut to 15 characters.
        names = {binary.name[:15]: "kindling API", "prometheus": "Prometheus"}
        while not done.is_set():
            for pid, comm in _children(os.getpid()).items():
                if comm in names:
                    peaks[names[comm]] = max(peaks[names[comm]], _status_kib(pid, "VmHWM") * 1024)
            peaks["Loki"] = max(peaks["Loki"], _status_kib(loki.proc.pid, "VmHWM") * 1024)
            for c in containers:
                top = subprocess.run(["docker", "top", c, "-o", "pid"], capture_output=True, text=True)
                pids = [int(x) for x in top.stdout.split()[1:] if x.isdigit()]
                peaks["Postgres"] = max(peaks["Postgres"], sum(_pss_kib(p) for p in pids) * 1024)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    e2e.Postgres = RecordedPostgres  # the run's own Postgres, recorded to find its processes
    log = work / "e2e.log"
    try:
        with open(log, "w") as out, contextlib.redirect_stdout(out):
            failures = e2e.run(binary, work, loki, phase_seconds=seconds)
    finally:
        done.set()
        sampler.join()
        loki.stop()
    failed = sum(map(len, failures.values()))
    print(f"workload: e2e.py's request mix, {seconds:.0f} s per phase ({failed} check failures; "
          f"log {log})")
    return peaks


# --------------------------------------------------------------------------- README

README_ROW = re.compile(r"^\| (kind|minikube), (everything|`--skip-observability`) \| (.+) \|$", re.M)


def readme_table(text: str) -> dict[tuple[str, bool], list[str]]:
    """README's footprint rows: (cluster, skip) -> the cells after the first."""
    return {(m.group(1), m.group(2) != "everything"): [c.strip() for c in m.group(3).split("|")]
            for m in README_ROW.finditer(text)}


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def cores(n: float) -> str:
    return f"{n:.2f}"


def row_cells(pods: list[Pod]) -> list[str]:
    t = totals(pods)
    return [gib(t["requests_memory"]), gib(t["limits_memory"]), cores(t["requests_cpu"]),
            cores(t["limits_cpu"])]


def readme_problems(text: str | None = None) -> list[str]:
    """README's table must state exactly the computed sums; the limit sums must not exceed it."""
    rows = readme_table(README.read_text() if text is None else text)
    found = []
    for cluster, skip in PLATFORMS:
        name = platform_name(cluster, skip)
        pods, _ = platform(cluster, skip)
        want = row_cells(pods)
        got = rows.get((cluster, skip))
        if got is None:
            found.append(f"README.md has no footprint row '{name}'")
            continue
        promised = float(got[1].split()[0]) * GIB if got[1:] and got[1].endswith("GiB") else 0.0
        if totals(pods)["limits_memory"] > promised + 0.005 * GIB:
            found.append(f"{name}: memory limits sum to {want[1]}, README promises {got[1]}")
        if got[:4] != want:
            found.append(f"{name}: README states {got[:4]}, the manifests sum to {want}")
    return found


# --------------------------------------------------------------------------- report

def report(measured: dict[str, float] | None) -> dict:
    out: dict = {"platforms": {}, "images": {}, "measured_rss": measured}
    all_images: set[str] = set()
    for cluster, skip in PLATFORMS:
        pods, jobs = platform(cluster, skip)
        all_images |= {i for p in pods + jobs for i in p.images}
        out["platforms"][platform_name(cluster, skip)] = {
            "totals": totals(pods),
            "pods": [{"name": f"{p.namespace}/{p.name}", "source": p.source, "replicas": p.replicas,
                      "requests": p.requests, "limits": p.limits, "no_memory_limit": p.unlimited,
                      "images": p.images} for p in pods],
            "jobs": [f"{p.namespace}/{p.name}" for p in jobs],
        }
    out["images"] = image_sizes(all_images)
    return out


def print_report(data: dict) -> None:
    measured = data["measured_rss"] or {}
    sizes = data["images"]
    component = {"kindling-api": "kindling API", "prometheus": "Prometheus", "loki": "Loki",
                 "postgres": "Postgres"}
    for name, plat in data["platforms"].items():
        print(f"\n{name}")
        print(f"  {'workload':<44} {'n':>2} {'mem req':>9} {'mem lim':>9} {'cpu req':>7} "
              f"{'cpu lim':>7}  measured peak RSS")
        for p in plat["pods"]:
            rss = measured.get(component.get(p["name"].split("/")[1], ""))
            lim = f"{p['limits']['memory'] / MIB:.0f}Mi" + ("*" if p["no_memory_limit"] else "")
            print(f"  {p['name']:<44} {p['replicas']:>2} {p['requests']['memory'] / MIB:>7.0f}Mi "
                  f"{lim:>9} {p['requests']['cpu']:>7.2f} {p['limits']['cpu']:>7.2f}  "
                  + (f"{rss / MIB:.0f} MiB" if rss else "-"))
        t = plat["totals"]
        images = {i for p in plat["pods"] for i in p["images"]}
        known = [sizes[i] for i in images if sizes.get(i)]
        print(f"  {'total':<44} {'':>2} {gib(t['requests_memory']):>9} {gib(t['limits_memory']):>9} "
              f"{t['requests_cpu']:>7.2f} {t['limits_cpu']:>7.2f}")
        print(f"  images: {len(images)} pinned, {len(known)} present here, "
              f"{sum(known) / 1e6:.0f} MB of those")
        unlimited = [f"{p['name']} ({', '.join(p['no_memory_limit'])})" for p in plat["pods"]
                     if p["no_memory_limit"]]
        if unlimited:
            print(f"  * no limit (its requests counted instead): {'; '.join(unlimited)}")
        print(f"  jobs (run to completion, not summed): {', '.join(plat['jobs']) or 'none'}")
    print("\nimages (bytes where this machine has them):")
    for image, size in sorted(sizes.items()):
        print(f"  {image:<110} {f'{size / 1e6:.1f} MB' if size else 'not here'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--measure", type=float, metavar="SECONDS",
                    help="also run e2e.py's workload (SECONDS per phase) and report peak RSS")
    ap.add_argument("--binary", type=Path, help="the API binary to measure (default: target/debug/"
                    "kindling, built first)")
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = ap.parse_args()
    measured = measure(args.measure, args.binary) if args.measure else None
    data = report(measured)
    print_report(data)
    problems = readme_problems()
    for p in problems:
        print(f"README: {p}")
    if args.json:
        args.json.write_text(json.dumps(data, indent=1, default=str))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
