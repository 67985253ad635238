"""Contract test for the Tiltfile, with the real Tilt and no cluster.

Runs `tilt alpha tiltfile-result` (Tilt evaluates the Tiltfile exactly as
`tilt up` would, then prints the resulting resources as JSON) against a
throwaway kubeconfig, for both clusters the Tiltfile targets (kind-kindling,
and the minikube profile kindling in the shape minikube writes it: cluster
kindling with its cluster_info extension, the CA under a fake HOME's
.minikube/), for every documented flag combination: --build=host /
--build=docker / automatic, each with and without --skip-observability. Any Tilt error fails, and so does any Tilt warning (Tilt
only warns, then silently drops, an unused image or an unknown resource_dep):
every log line Tilt prints must be one of the few known-benign kinds.

Real Tilt checks the Tiltfile's syntax, builtins and their arguments, unknown
resources, missing files, live_update step order, sync sources outside the
context and dependency cycles. On top of its result this script checks what
Tilt does not know about this project:

  parallel     every local_resource has allow_parallel (Tilt holds every other
               update while a non-parallel one runs: the first `tilt up` would
               deploy nothing until the Rust compile ends)
  graph        a workload whose image copies .dev-bin/ depends on api-compile;
               the API waits for ingress-nginx and migrations; the dependency
               map in the Tiltfile's header comment is exactly Tilt's graph
  labels       every resource has labels from {app, db, observability, infra}
  links        one Grafana link per dashboard uid; the API's links
  live-update  sync targets are where Dockerfile.dev creates and chowns the live
               directory and where tilt/dev-entrypoint.sh runs the binary from,
               on an emptyDir of the pod; the run step's command is installed
               by the Dockerfile
  port         port forwards name container ports of their workload
  settings     watch_settings ignores target/ (gigabytes; inotify); image
               pruning is on
  flags        --skip-observability deploys nothing into kindling-observability;
               --build chooses tilt/build-binary.sh's mode; without it, a host
               glibc newer than the dev image's (or macOS) picks docker mode and
               says why in Tilt's log
  guard        kind-kindling and the minikube profile kindling are accepted; a
               `kindling` context without minikube's provenance (no cluster_info
               extension, an embedded CA, a CA outside ~/.minikube/) and any
               other context are refused, each saying why
  minikube     on the profile kindling: no ingress-nginx or metrics-server
               (minikube's addons own them), a parallel minikube-addons wait
               that kindling-api and grafana depend on, and otherwise the same
               resources, objects, labels, links, port forwards and live update
               as on kind
  db           the database's lifecycle (scripts/db.sh): a manual db-VERB resource in the
               db group for each verb, never run at `tilt up`, running exactly
               `scripts/db.sh VERB`, a verb db.sh documents; the verbs that take an
               argument also have a button with a text field on their resource,
               whose Cmd runs the same verb (restore's asks for confirmation)
  debug        --debug builds with debug info (api-compile's KINDLING_DEV_DEBUG=1),
               gdbserver in the image (DEBUGGER=gdbserver), forwards 2345 on
               127.0.0.1 and applies the dev-debug overlay (SYS_PTRACE on the
               API's container); without it none of that is anywhere
  cache        ingress-nginx (the real upstream v1.15.1 kind manifest) is
               downloaded once, verified by sha256, read from the cache with the
               network gone, and a tampered cache or download fails; sha256 works
               with only macOS's `shasum`

Stand-ins only for what cannot exist here: the cluster (a kubeconfig pointing
nowhere, in kind's or minikube's shape) and the network (the upstream manifest from ../shared/data served as a
file:// URL, when present; otherwise the real download).

Negative case: testdata/Tiltfile.broken, each of whose mistakes must be
reported (testdata/Tiltfile.broken.expected) and nothing else.

Tilt: $KINDLING_TILT, else `tilt` on PATH; without either the tests skip, or
fail when KINDLING_REQUIRE_TILT is set (CI). Tests: test_tilt_contract.py.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from kindling_verify.helpers import ROOT, SHARED

TESTDATA = Path(__file__).parent / "testdata"
UPSTREAM_INGRESS = SHARED / "data" / "ingress-nginx" / "kind-deploy-v1.15.1.yaml"
INGRESS_SHA256 = "2a3ae008c8786431115502644e77ab398fdebfb721a5d1195ed3089cde3299df"
INGRESS_CACHE_NAME = "ingress-nginx-kind-v1.15.1.yaml"
CONTEXT = "kind-" + yaml.safe_load((ROOT / "kind-config.yaml").read_text())["name"]
MINIKUBE_PROFILE = "kindling"
# What each cluster has that the other does not; everything else must be equal.
KIND_ONLY = {"ingress-nginx-controller", "ingress-nginx-admission-create", "ingress-nginx-admission-patch",
             "metrics-server"}
MINIKUBE_ONLY = {"minikube-addons"}
# Objects minikube's addons own: none of them may be applied on minikube.
ADDON_OWNED = {"ingress-nginx", "metrics-server"}  # app.kubernetes.io/name, or the namespace ingress-nginx
ALLOWED_LABELS = {"app", "db", "observability", "infra"}
OBSERVABILITY_NS = "kindling-observability"
DEV_IMAGE_GLIBC = "2.41"
# scripts/db.sh's verbs, each a db-VERB button. Tilt's model.TriggerModeManual (2):
# trigger_mode=TRIGGER_MODE_MANUAL with auto_init=False, nothing at `tilt up`.
DB_VERBS = ("snapshot", "restore", "reset", "seed", "psql")
TRIGGER_MODE_MANUAL_NO_INIT = 2
# The verbs with an argument: a UIButton with a text field each (True: asks to confirm).
DB_INPUT_BUTTONS = {"snapshot": False, "restore": True, "seed": False}
GDBSERVER_PORT = 2345
# Tilt's log lines that are not warnings: the load itself, the commands it runs
# (local(), kustomize) and the Tiltfile's own print()s, which start "kindling:".
BENIGN = re.compile(r"^(Loading Tiltfile at: |Successfully loaded Tiltfile |Falling back to `kubectl kustomize` "
                    r"|Running: |local: |kindling: |$)")


@dataclass
class Result:
    rc: int
    data: dict | None
    log: list[str]

    @property
    def manifests(self) -> dict:
        return {m["Name"]: m for m in (self.data or {}).get("Manifests") or []}

    def warnings(self) -> list[str]:
        return [line for line in self.log if not BENIGN.match(line)]


class Tilt:
    def __init__(self, binary: str, work: Path):
        self.binary = binary
        self.work = work
        self.cache = work / "cache"
        self.kubeconfig = self.write_kubeconfig(CONTEXT)
        self.ingress_url = UPSTREAM_INGRESS.as_uri() if UPSTREAM_INGRESS.is_file() else None

    def write_kubeconfig(self, context: str) -> Path:
        path = self.work / f"kubeconfig-{context}"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            # Nothing listens on port 1: Tilt needs the context, never the server.
            "clusters": [{"name": context, "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": context, "user": {"token": "unused"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}]}))
        return path

    def write_minikube_kubeconfig(self, profile: str = MINIKUBE_PROFILE, extension: bool = True,
                                  ca: str | None = "home", tag: str = "") -> Path:
        """The entries `minikube start -p PROFILE` writes: context, cluster and
        user named after the profile, a cluster_info extension with minikube's
        provider, the CA and client certificates as files under ~/.minikube/.
        ca: "home" (that file), "embedded" (certificate-authority-data), or a path."""
        home = self.work / "home"
        mk = home / ".minikube"
        (mk / "profiles" / profile).mkdir(parents=True, exist_ok=True)
        # Tilt flattens the kubeconfig (reads every file it names), so the
        # files must exist and hold PEM: one throwaway self-signed pair.
        if not (mk / "ca.crt").is_file():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                            "-subj", "/CN=minikubeCA", "-keyout", str(mk / "ca.key"), "-out", str(mk / "ca.crt")],
                           check=True, capture_output=True)
        shutil.copy(mk / "ca.crt", mk / "profiles" / profile / "client.crt")
        shutil.copy(mk / "ca.key", mk / "profiles" / profile / "client.key")
        info = {"last-update": "Wed, 02 Dec 2026 05:00:00 UTC", "provider": "minikube.sigs.k8s.io",
                "version": "v1.37.0"}
        cluster = {"server": "https://127.0.0.1:1"}
        if ca == "home":
            cluster["certificate-authority"] = str(mk / "ca.crt")
        elif ca == "embedded":
            cluster["certificate-authority-data"] = base64.b64encode((mk / "ca.crt").read_bytes()).decode()
        else:  # a copy of the CA elsewhere
            Path(ca).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(mk / "ca.crt", ca)
            cluster["certificate-authority"] = ca
        if extension:
            cluster["extensions"] = [{"name": "cluster_info", "extension": dict(info)}]
        path = self.work / f"kubeconfig-minikube-{profile}{tag}"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": profile, "preferences": {},
            "clusters": [{"name": profile, "cluster": cluster}],
            "contexts": [{"name": profile, "context": {
                "cluster": profile, "user": profile, "namespace": "default",
                "extensions": [{"name": "context_info", "extension": dict(info)}] if extension else []}}],
            "users": [{"name": profile, "user": {
                "client-certificate": str(mk / "profiles" / profile / "client.crt"),
                "client-key": str(mk / "profiles" / profile / "client.key")}}]}))
        return path

    def run(self, args=(), tiltfile: Path = ROOT / "Tiltfile", kubeconfig: Path | None = None,
            env: dict | None = None, prefix=()) -> Result:
        e = dict(os.environ, KUBECONFIG=str(kubeconfig or self.kubeconfig), KINDLING_CACHE_DIR=str(self.cache),
                 HOME=str(self.work / "home"))
        if self.ingress_url:
            e["KINDLING_INGRESS_NGINX_URL"] = self.ingress_url
        e.update(env or {})
        cmd = [*prefix, self.binary, "alpha", "tiltfile-result", "-v", "-f", str(tiltfile)]
        if args:
            cmd += ["--", *args]
        p = subprocess.run(cmd, cwd=tiltfile.parent, env=e, capture_output=True, text=True, timeout=300)
        data = None
        if p.returncode == 0:
            data = json.loads(p.stdout)
        return Result(p.returncode, data, p.stderr.splitlines())


# ---- what Tilt does not check --------------------------------------------------------

def k8s_objects(m: dict) -> list[dict]:
    return [d for d in yaml.safe_load_all((m.get("DeployTarget") or {}).get("yaml") or "") if d]


def pod_spec(obj: dict) -> dict | None:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return (spec.get("template") or {}).get("spec")


def dockerfile_facts(text: str):
    copies = {m.group(2): m.group(1) for m in re.finditer(r"^COPY\s+(?:--\S+\s+)*(\S+)\s+(\S+)\s*$", text, re.M)}
    made = {d for group in re.findall(r"mkdir -p ((?:/\S+\s*)+)", text) for d in group.split()}
    chowned = set(re.findall(r"chown \d+:\d+ (/\S+)", text))
    return copies, made, chowned


def link_urls(m: dict) -> set[str]:
    out = set()
    for link in (m.get("DeployTarget") or {}).get("Links") or []:
        u = link["URL"]
        out.add(f"{u['Scheme']}://{u['Host']}{u['Path']}")
    return out


def depends_on(manifests: dict, name: str, target: str) -> bool:
    seen, todo = set(), [name]
    while todo:
        n = todo.pop()
        for d in (manifests.get(n) or {}).get("ResourceDependencies") or []:
            if d == target:
                return True
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return False


def check(r: Result, full: bool = True, cluster: str = "kind") -> list[str]:
    """Violations as "[check] message"."""
    v = []
    ms = r.manifests
    for w in r.warnings():
        v.append(f"[warning] Tilt: {w}")
    for name, m in ms.items():
        dt = m.get("DeployTarget") or {}
        if "UpdateCmdSpec" in dt and not dt.get("AllowParallel"):
            v.append(f"[parallel] local_resource {name} lacks allow_parallel=True: it would hold every other update")
        if name != "uncategorized":
            labels = set((m.get("Labels") or {}).values())
            if not labels or not labels <= ALLOWED_LABELS:
                v.append(f"[labels] {name}: labels {sorted(labels)} not a non-empty subset of {sorted(ALLOWED_LABELS)}")

        objs = k8s_objects(m)
        workloads = [o for o in objs if pod_spec(o) is not None]
        ports = {p["containerPort"] for o in workloads for c in pod_spec(o).get("containers") or []
                 for p in c.get("ports") or []}
        for pf in (dt.get("portForwardTemplateSpec") or {}).get("forwards") or []:
            if pf["containerPort"] not in ports:
                v.append(f"[port] {name}: port forward to {pf['containerPort']}, container ports {sorted(ports)}")

        for it in m.get("ImageTargets") or []:
            bd = it.get("BuildDetails") or {}
            text = bd.get("dockerfileContents") or ""
            ignores = [p for ig in bd.get("contextIgnores") or [] for p in ig.get("patterns") or []]
            if any(p.startswith("!.dev-bin/") for p in ignores) and "api-compile" in ms \
                    and not depends_on(ms, name, "api-compile"):
                v.append(f"[graph] {name}: its image copies .dev-bin/ but it does not depend on api-compile")
            lu = it.get("LiveUpdateSpec") or {}
            if not lu.get("syncs"):
                continue
            copies, made, chowned = dockerfile_facts(text)
            # One of the syncs is the binary the entrypoint runs (another may carry the
            # build's timings beside it: test_dev_reload_contract.py).
            remotes = sorted(s["containerPath"] for s in lu["syncs"])
            for dst, src in copies.items():
                f = ROOT / src
                if dst.startswith("/usr/local/bin/") and f.is_file():
                    mm = re.search(r"^LIVE_BIN=(\S+)", f.read_text(), re.M)
                    if mm and mm.group(1) not in remotes:
                        v.append(f"[live-update] {src} runs {mm.group(1)} but live_update syncs to "
                                 f"{', '.join(remotes)}")
            for s in lu["syncs"]:
                remote = s["containerPath"]
                live_dir = str(Path(remote).parent)
                if live_dir not in made or live_dir not in chowned:
                    v.append(f"[live-update] sync target dir {live_dir} is not created and chowned in the Dockerfile")
                for o in workloads:
                    if o["kind"] in ("Job", "CronJob"):
                        continue  # exited pods are not live-updated
                    pod = pod_spec(o)
                    vols = {x["name"]: x for x in pod.get("volumes") or []}
                    for c in pod.get("containers") or []:
                        if not (c.get("securityContext") or {}).get("readOnlyRootFilesystem"):
                            continue
                        mounts = {x["mountPath"]: x["name"] for x in c.get("volumeMounts") or []}
                        if not (live_dir in mounts and "emptyDir" in vols.get(mounts[live_dir], {})):
                            v.append(f"[live-update] {o['metadata']['name']}/{c['name']}: read-only root "
                                     f"filesystem and no emptyDir at {live_dir}")
            for ex in lu.get("execs") or []:
                argv = ex["args"][2:] if ex["args"][:2] == ["sh", "-c"] else ex["args"]
                exe = shlex.split(" ".join(argv))[0]
                if exe not in copies:
                    v.append(f"[live-update] run step {exe} is not installed by the Dockerfile")

    if not full:
        return v
    ignored = [p for ig in (r.data.get("WatchSettings") or {}).get("Ignores") or [] for p in ig.get("Patterns") or []]
    if not any(p.rstrip("/") in ("target", "**/target") for p in ignored):
        v.append(f"[settings] watch_settings does not ignore target/: {ignored}")
    if not (r.data.get("DockerPruneSettings") or {}).get("Enabled"):
        v.append("[settings] docker_prune_settings is off: every image build stays on disk")
    api = ms.get("kindling-api")
    if not api:
        return v + ["[graph] no kindling-api resource"]
    ingress_ready = ("minikube-addons",) if cluster == "minikube" else \
        ("ingress-nginx-controller", "ingress-nginx-admission-patch")
    for dep in ("kindling-migrate", *ingress_ready):
        if not depends_on(ms, "kindling-api", dep):
            v.append(f"[graph] kindling-api does not wait for {dep}")
    if "grafana" in ms:
        for dep in ingress_ready:
            if not depends_on(ms, "grafana", dep):
                v.append(f"[graph] grafana (its Ingress) does not wait for {dep}")
    if cluster == "minikube":
        v += check_minikube(r)
    v += check_db_actions(r)
    links = set().union(*(link_urls(m) for m in ms.values()))
    if "http://kindling.localhost/api/items" not in links or not any("/api/v1/health" in u for u in links):
        v.append("[links] the API's links (items through ingress, health) are missing")
    if "grafana" in ms:
        for f in sorted((ROOT / "k8s/observability/grafana/dashboards").glob("*.json")):
            uid = json.loads(f.read_text())["uid"]
            if f"http://localhost:3000/d/{uid}" not in links:
                v.append(f"[links] no Grafana link for dashboard uid {uid}")
    return v


def check_db_actions(r: Result) -> list[str]:
    v, ms = [], r.manifests
    usage = (ROOT / "scripts" / "db.sh").read_text()
    for verb in DB_VERBS:
        name = f"db-{verb}"
        m = ms.get(name)
        if m is None:
            v.append(f"[db] no {name} resource")
            continue
        args = ((m.get("DeployTarget") or {}).get("UpdateCmdSpec") or {}).get("args")
        if args != ["scripts/db.sh", verb]:
            v.append(f"[db] {name} runs {args}, want scripts/db.sh {verb}")
        if f"#   scripts/db.sh {verb}" not in usage:
            v.append(f"[db] scripts/db.sh does not document the verb {verb}")
        if sorted((m.get("Labels") or {}).values()) != ["db"]:
            v.append(f"[db] {name} is not in the db group: {m.get('Labels')}")
        if m.get("TriggerMode") != TRIGGER_MODE_MANUAL_NO_INIT:
            v.append(f"[db] {name} has trigger mode {m.get('TriggerMode')}: it must be manual and not run at tilt up")
    objects = (r.data or {}).get("ObjectSet") or {}
    buttons = objects.get("tilt.dev/v1alpha1, Resource=uibuttons") or {}
    cmds = objects.get("tilt.dev/v1alpha1, Resource=cmds") or {}
    for verb, confirm in DB_INPUT_BUTTONS.items():
        resource = f"db-{verb}"
        found = [(n, b["spec"]) for n, b in buttons.items()
                 if (b["spec"].get("location") or {}).get("componentID") == resource]
        if len(found) != 1:
            v.append(f"[db] {resource}: {len(found)} buttons on it, want one with a text field")
            continue
        button, spec = found[0]
        if [bool(i.get("text") is not None) for i in spec.get("inputs") or []] != [True]:
            v.append(f"[db] button {button}: inputs {spec.get('inputs')}, want one text field")
        if bool(spec.get("requiresConfirmation")) != confirm:
            v.append(f"[db] button {button}: requiresConfirmation {spec.get('requiresConfirmation')}, want {confirm}")
        starts = [c["spec"] for c in cmds.values() if button in ((c["spec"].get("startOn") or {}).get("uiButtons") or [])]
        if len(starts) != 1 or f"scripts/db.sh {verb}" not in " ".join(starts[0].get("args") or []):
            v.append(f"[db] button {button}: {len(starts)} commands start on it, want one running scripts/db.sh {verb}")
    return v


def check_debug(r: Result, debug: bool) -> list[str]:
    """--debug's four parts, all present with it and all absent without it."""
    v, ms = [], r.manifests
    api = ms.get("kindling-api") or {}
    env = ((ms.get("api-compile") or {}).get("DeployTarget") or {}).get("UpdateCmdSpec", {}).get("env") or []
    args = [a for it in api.get("ImageTargets") or [] for a in (it.get("BuildDetails") or {}).get("args") or []]
    forwards = {f["containerPort"]: f.get("host") for f in
                ((api.get("DeployTarget") or {}).get("portForwardTemplateSpec") or {}).get("forwards") or []}
    ptrace = [f"{name}:{o['kind']}/{o['metadata']['name']}" for name, m in ms.items() for o in k8s_objects(m)
              for c in (pod_spec(o) or {}).get("containers") or []
              if "SYS_PTRACE" in (((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or [])]
    parts = {"api-compile's KINDLING_DEV_DEBUG=1": "KINDLING_DEV_DEBUG=1" in env,
             "the image's build arg DEBUGGER=gdbserver": "DEBUGGER=gdbserver" in args,
             f"a port forward to {GDBSERVER_PORT}": GDBSERVER_PORT in forwards,
             "SYS_PTRACE on the API's container": ptrace == ["kindling-api:Deployment/kindling-api"]}
    for what, present in parts.items():
        if present != debug:
            v.append(f"[debug] {'--debug lacks' if debug else 'without --debug there is'} {what} ({ptrace})")
    if debug and forwards.get(GDBSERVER_PORT) not in ("127.0.0.1", None):
        v.append(f"[debug] gdbserver's port forward listens on {forwards[GDBSERVER_PORT]}, not 127.0.0.1")
    return v


def object_id(o: dict) -> str:
    return f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}"


def addon_owned(o: dict) -> bool:
    labels = o["metadata"].get("labels") or {}
    return (labels.get("app.kubernetes.io/name") in ADDON_OWNED or o["metadata"].get("namespace") == "ingress-nginx"
            or (o["kind"] == "Namespace" and o["metadata"]["name"] == "ingress-nginx"))


def check_minikube(r: Result) -> list[str]:
    """On minikube the addons own ingress-nginx and metrics-server."""
    v, ms = [], r.manifests
    for name in sorted(KIND_ONLY & set(ms)):
        v.append(f"[minikube] resource {name} exists: minikube's addon owns it")
    for name, m in ms.items():
        for o in k8s_objects(m):
            if addon_owned(o):
                v.append(f"[minikube] {name} applies {object_id(o)}, which minikube's addons own")
    wait = ms.get("minikube-addons")
    if not wait:
        return v + ["[minikube] no minikube-addons resource: nothing waits for the addons"]
    dt = wait.get("DeployTarget") or {}
    args = (dt.get("UpdateCmdSpec") or {}).get("args") or []
    if args != ["tilt/wait-minikube-addons.sh", MINIKUBE_PROFILE]:
        v.append(f"[minikube] minikube-addons runs {args}, want tilt/wait-minikube-addons.sh {MINIKUBE_PROFILE}")
    if not dt.get("AllowParallel"):
        v.append("[minikube] minikube-addons lacks allow_parallel=True")
    return v


def resource_facts(r: Result) -> dict[str, dict]:
    """Per resource, what must be the same on both clusters."""
    out = {}
    for name, m in r.manifests.items():
        dt = m.get("DeployTarget") or {}
        out[name] = {
            "labels": sorted((m.get("Labels") or {}).values()),
            "links": sorted(link_urls(m)),
            "port forwards": sorted(json.dumps(f, sort_keys=True) for f in
                                    (dt.get("portForwardTemplateSpec") or {}).get("forwards") or []),
            "objects": sorted(object_id(o) for o in k8s_objects(m) if not addon_owned(o)),
            "yaml": sorted(yaml.safe_dump(o, sort_keys=True) for o in k8s_objects(m) if not addon_owned(o)),
            "images": [json.dumps({k: it.get(k) for k in ("LiveUpdateSpec", "BuildDetails")}, sort_keys=True)
                       for it in m.get("ImageTargets") or []],
            "deps": sorted(set(m.get("ResourceDependencies") or []) - KIND_ONLY - MINIKUBE_ONLY),
            "cmd": (dt.get("UpdateCmdSpec") or {}).get("args"),
            "trigger": m.get("TriggerMode"),
        }
    return out


def compare_clusters(kind: Result, minikube: Result) -> list[str]:
    """minikube = kind less KIND_ONLY plus MINIKUBE_ONLY, every shared resource equal."""
    v = []
    want = (set(kind.manifests) - KIND_ONLY) | MINIKUBE_ONLY
    got = set(minikube.manifests)
    if got != want:
        v.append(f"[minikube] resources differ from kind's: missing {sorted(want - got)}, extra {sorted(got - want)}")
    a, b = resource_facts(kind), resource_facts(minikube)
    for name in sorted(set(a) & set(b)):
        for key in a[name]:
            if a[name][key] != b[name][key]:
                v.append(f"[minikube] {name}: {key} differ from kind's")
    return v


ARROW = re.compile(r"^#\s+(\S.*?)\s+─►\s+([\w-]+)\s*$")


def header_map(tiltfile: Path) -> dict[str, set[str]]:
    """The `a, b ─► c` lines of the Tiltfile's opening comment block."""
    out = {}
    for line in tiltfile.read_text().splitlines():
        if not line.startswith("#"):
            break
        m = ARROW.match(line)
        if m:
            out[m.group(2)] = {d.strip() for d in m.group(1).split(",")}
    return out


def check_header_map(r: Result, tiltfile: Path, other_cluster_only: frozenset = frozenset()) -> list[str]:
    """Each resource's resource_deps equal its line of the map, less resources
    this flag combination or this cluster does not create; no line for one
    without deps."""
    drawn, ms, v = header_map(tiltfile), r.manifests, []
    if not drawn:
        return ["[graph] the Tiltfile's header has no dependency map (lines `a, b ─► c`)"]
    for name, m in ms.items():
        actual = set(m.get("ResourceDependencies") or [])
        want = {d for d in drawn.get(name, set()) if d in ms}
        if actual != want:
            v.append(f"[graph] {name}: Tilt has resource_deps {sorted(actual)}, the header map draws {sorted(want)}")
    if "grafana" in ms:  # the whole platform: every resource drawn must exist
        for n in sorted(set(drawn).union(*drawn.values()) - set(ms) - other_cluster_only):
            v.append(f"[graph] the header map draws {n}, which is no resource")
    return v


def compile_mode(r: Result) -> str:
    args = r.manifests["api-compile"]["DeployTarget"]["UpdateCmdSpec"]["args"]
    return " ".join(args).split("tilt/build-binary.sh")[-1].split()[0]


def observability_objects(r: Result) -> list[str]:
    return [f"{name}:{o['kind']}/{o['metadata']['name']}" for name, m in r.manifests.items()
            for o in k8s_objects(m) if o["metadata"].get("namespace") == OBSERVABILITY_NS
            or (o["kind"] == "Namespace" and o["metadata"]["name"] == OBSERVABILITY_NS)]


# ---- driver -----------------------------------------------------------------------

# Each cluster: its context and the resources only the other cluster has.
CLUSTERS = {"kind": (CONTEXT, frozenset(MINIKUBE_ONLY)), "minikube": (MINIKUBE_PROFILE, frozenset(KIND_ONLY))}


class Contract:
    """One Tilt with a kubeconfig for each cluster; each result evaluated once."""

    def __init__(self, binary: str, work: Path):
        self.tilt = Tilt(binary, work)
        (work / "home").mkdir(exist_ok=True)
        self.kubeconfigs = {"kind": self.tilt.kubeconfig, "minikube": self.tilt.write_minikube_kubeconfig()}
        self._results: dict[tuple, Result] = {}

    def result(self, cluster: str, args=()) -> Result:
        key = (cluster, tuple(args))
        if key not in self._results:
            self._results[key] = self.tilt.run(list(args), kubeconfig=self.kubeconfigs[cluster])
        return self._results[key]


def flag_args(build: str | None, skip_obs: bool) -> list[str]:
    return ([f"--build={build}"] if build else []) + (["--skip-observability"] if skip_obs else [])


def combination_violations(contract: Contract, cluster: str, build: str | None, skip_obs: bool) -> list[str]:
    """Everything wrong with one documented flag combination on one cluster."""
    args = flag_args(build, skip_obs)
    r = contract.result(cluster, args)
    if r.rc != 0:
        return ["[error] tiltfile-result failed: " + "\n    ".join(r.log[-10:])]
    v = check(r, cluster=cluster) + check_header_map(r, ROOT / "Tiltfile", CLUSTERS[cluster][1])
    want_mode = build or "host"  # this machine: Linux, glibc 2.36
    if compile_mode(r) != want_mode:
        v.append(f"[flags] api-compile runs build-binary.sh {compile_mode(r)}, want {want_mode}")
    obs = observability_objects(r)
    v += check_debug(r, debug=False)
    if skip_obs and obs:
        v.append(f"[flags] --skip-observability still deploys {obs}")
    if not skip_obs and not obs:
        v.append("[flags] observability is missing without --skip-observability")
    if cluster == "minikube":
        kind = contract.result("kind", args)
        if kind.rc == 0:
            v += compare_clusters(kind, r)
    return v


def fake_bin(work: Path, name: str, script: str) -> Path:
    d = work / f"fake-{name}-{abs(hash(script))}"
    d.mkdir(exist_ok=True)
    (d / name).write_text("#!/bin/sh\n" + script + "\n")
    (d / name).chmod(0o755)
    return d


def cache_steps(tilt: Tilt) -> dict[str, tuple[bool, str, str]]:
    """The ingress-nginx cache, step by step on an empty cache: {step: (ok, what, detail)}."""
    steps = {}

    def ok(step: str, passed: bool, what: str, detail: str = "") -> None:
        steps[step] = (passed, what, detail)

    cached = tilt.cache / "downloads" / INGRESS_CACHE_NAME
    if tilt.ingress_url is None:
        print(f"note: {UPSTREAM_INGRESS} is missing: the first load downloads from GitHub")
    # A download that does not match the pin is refused and not cached.
    tampered = tilt.work / "tampered-deploy.yaml"
    source = UPSTREAM_INGRESS.read_text() if UPSTREAM_INGRESS.is_file() else None
    if source is not None:
        tampered.write_text(source.replace("replicas: 1", "replicas: 2", 1) + "# changed\n")
        r = tilt.run(env={"KINDLING_INGRESS_NGINX_URL": tampered.as_uri()})
        ok("tampered-download", r.rc != 0 and any("expected " + INGRESS_SHA256 in line for line in r.log) and not cached.exists(),
           "cache: a download whose sha256 differs from the pin fails and is not cached",
           f"rc={r.rc}; {r.log[-3:]}")
    # First load: downloads into the empty cache.
    r = tilt.run()
    ok("first-load", r.rc == 0 and cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == INGRESS_SHA256
       and "ingress-nginx-controller" in r.manifests,
       "cache: the first load downloads ingress-nginx v1.15.1 and caches the verified file", f"rc={r.rc}; {r.log[-3:]}")
    # Second load with the network gone: a URL nothing answers, inside an
    # empty network namespace where that is possible.
    prefix = ["unshare", "-rn"] if shutil.which("unshare") and subprocess.run(
        ["unshare", "-rn", "true"], capture_output=True).returncode == 0 else []
    r = tilt.run(env={"KINDLING_INGRESS_NGINX_URL": "https://127.0.0.1:9/unreachable/deploy.yaml"}, prefix=prefix)
    ok("offline", r.rc == 0 and "ingress-nginx-controller" in r.manifests,
       "cache: a second load with the network gone reads the cache"
       + (" (unshare -rn: no network at all)" if prefix else " (unreachable URL)"), f"rc={r.rc}; {r.log[-3:]}")
    # A cache changed after the download fails and says what to do.
    if not cached.is_file():
        ok("tampered-cache", False, "cache: tampered cache (nothing was cached to tamper with)")
        return steps
    good = cached.read_bytes()
    cached.write_bytes(good + b"# edited\n")
    r = tilt.run()
    ok("tampered-cache", r.rc != 0 and any("changed or is damaged" in line for line in r.log),
       "cache: a tampered cached file fails the Tiltfile with the reason", f"rc={r.rc}; {r.log[-3:]}")
    cached.write_bytes(good)
    # macOS before 14 has shasum but no sha256sum: run the download script
    # with a PATH whose only sha256 tool is shasum.
    bindir = tilt.work / "no-sha256sum"
    bindir.mkdir(exist_ok=True)
    for tool in ("bash", "cat", "cut", "dirname", "mkdir", "mktemp", "mv", "rm", "curl", "shasum", "perl"):
        path = shutil.which(tool)
        if path and not (bindir / tool).exists():
            (bindir / tool).symlink_to(path)
    if (bindir / "shasum").exists():
        p = subprocess.run([str(ROOT / "tilt/cached-download.sh"), "https://127.0.0.1:9/x", INGRESS_SHA256,
                            INGRESS_CACHE_NAME], env={"PATH": str(bindir), "KINDLING_CACHE_DIR": str(tilt.cache)},
                           capture_output=True, text=True)
        ok("shasum", p.returncode == 0 and hashlib.sha256(p.stdout.encode()).hexdigest() == INGRESS_SHA256,
           "sha256 falls back to `shasum -a 256` where sha256sum is missing (macOS < 14)",
           p.stderr.strip()[-300:])
    else:
        ok("shasum", False, "sha256 fallback: no shasum on this machine to test it with")
    return steps
