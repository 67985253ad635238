#!/usr/bin/env python3
"""Contract test for the Tiltfile, without Tilt or a cluster.

Evaluates the real Tiltfile with starlark-rust (starlark-pyo3) against stubs of
every Tilt builtin it uses. The stubs have Tilt's parameter names, so an
unknown keyword fails as it would in Tilt, and docker_build() rejects
live_update steps out of Tilt's order. The recorded calls are then checked
against the repository and the manifests rendered by `kubectl kustomize`:

  files       every file and directory the Tiltfile names exists (or is staged
              by the api-compile local_resource)
  workload    every k8s_resource names a workload in the rendered YAML, and
              every workload has a k8s_resource
  image       every docker_build image is used by a workload; every workload
              image that we build (manifest_xref.BUILT_IMAGES) has a docker_build
  live-update sync targets are where Dockerfile.dev and tilt/dev-entrypoint.sh
              expect the binary, on a writable volume of the pod; the run step's
              command is installed by Dockerfile.dev
  port        port forwards name container ports of their workload
  deps        resource_deps name real resources and form no cycle
  labels      every resource has labels from {app, db, observability, infra}
  links       Grafana links cover every dashboard uid; the API links exist
  settings    watch_settings ignores target/; docker_prune_settings is set;
              ingress-nginx is pinned to v1.15.1's kind provider manifest
  guard       evaluation against a non-local kubectl context fails
  flag        --skip-observability deploys no observability workload

What is not verified here: Tilt's real behaviour at run time, the upstream
ingress-nginx manifest (local() returns scripts/testdata/ingress-nginx-kind.yaml,
a hand-written stand-in with the workload names of v1.15.1's kind manifest).

Negative cases (scripts/testdata/Tiltfile.broken and inline snippets) prove
each check can fail. Usage: scripts/tilt_contract.py [--tiltfile PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import starlark as sl
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from manifest_xref import BUILT_IMAGES  # noqa: E402

TESTDATA = ROOT / "scripts" / "testdata"
INGRESS_FIXTURE = TESTDATA / "ingress-nginx-kind.yaml"
ALLOWED_LABELS = {"app", "db", "observability", "infra"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"}
OBSERVABILITY_NS = "kindling-observability"
# Files that do not exist in a fresh clone: tilt/build-binary.sh (run by the
# api-compile local_resource) writes them before the image is built.
STAGED = {".dev-bin/kindling", ".dev-bin/deps.stamp"}
STAGER = "tilt/build-binary.sh"


class TiltError(Exception):
    """What Tilt itself would report as a Tiltfile error."""


@dataclass
class Calls:
    docker_builds: list = field(default_factory=list)
    yaml_docs: list = field(default_factory=list)
    k8s_resources: list = field(default_factory=list)
    local_resources: list = field(default_factory=list)
    kustomize_dirs: list = field(default_factory=list)
    local_cmds: list = field(default_factory=list)
    read_paths: list = field(default_factory=list)
    allow_contexts: list = field(default_factory=list)
    watch_ignore: list | None = None
    prune: dict | None = None
    flags: dict = field(default_factory=dict)


def as_list(v):
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def evaluate(tiltfile: Path, context: str = "kind-kindling", args: dict | None = None) -> Calls:
    """Run the Tiltfile against the stubs; raises TiltError or sl.StarlarkError."""
    c = Calls()
    args = args or {}
    base = tiltfile.parent

    def rel(p):
        return str((base / p).resolve().relative_to(ROOT)) if not os.path.isabs(p) else p

    # -- images and live update --------------------------------------------------
    def docker_build(ref, context, build_args={}, dockerfile="Dockerfile", dockerfile_contents="",
                     live_update=[], match_in_env_vars=False, ignore=[], only=[], entrypoint=[],
                     target="", ssh="", network="", secret="", extra_tag="", container_args=None,
                     cache_from=[], pull=False, platform="", extra_hosts=[]):
        order = {"initial_sync": 0, "fall_back_on": 1, "sync": 2, "run": 3}
        last = -1
        for step in as_list(live_update):
            if not isinstance(step, dict) or step.get("step") not in order:
                raise TiltError(f"docker_build({ref!r}): live_update takes only live update steps")
            if order[step["step"]] < last:
                raise TiltError(f"docker_build({ref!r}): live_update steps out of order "
                                "(initial_sync, fall_back_on, sync, run)")
            last = order[step["step"]]
        c.docker_builds.append(dict(ref=ref, context=rel(context), dockerfile=rel(dockerfile),
                                    live_update=as_list(live_update), only=as_list(only),
                                    build_args=dict(build_args)))

    def sync(local_path, remote_path):
        return {"step": "sync", "local_path": rel(local_path), "remote_path": remote_path}

    def run(cmd, trigger=[], echo_off=False):
        return {"step": "run", "cmd": cmd, "trigger": as_list(trigger)}

    def fall_back_on(files):
        return {"step": "fall_back_on", "files": [rel(f) for f in as_list(files)]}

    def initial_sync():
        return {"step": "initial_sync"}

    # -- Kubernetes ----------------------------------------------------------------
    def kustomize(pathToDir, kustomize_bin=None, flags=[]):
        d = rel(pathToDir)
        c.kustomize_dirs.append(d)
        if not (ROOT / d).is_dir():
            raise TiltError(f"kustomize: {d} is not a directory")
        return subprocess.run(["kubectl", "kustomize", str(ROOT / d)], check=True,
                              capture_output=True, text=True).stdout

    def k8s_yaml(yaml_arg, allow_duplicates=False):
        for item in as_list(yaml_arg):
            text = item
            if "\n" not in item and (ROOT / rel(item)).is_file():
                text = (ROOT / rel(item)).read_text()
            c.yaml_docs.extend(d for d in yaml.safe_load_all(text) if d)

    def k8s_resource(workload="", new_name="", port_forwards=[], extra_pod_selectors=[],
                     trigger_mode=None, resource_deps=[], objects=[], auto_init=True,
                     pod_readiness="", links=[], labels=[], discovery_strategy=""):
        pfs = []
        for pf in as_list(port_forwards):
            if isinstance(pf, (int, str)):
                parts = str(pf).split(":")
                pf = {"local_port": int(parts[0]), "container_port": int(parts[-1])}
            pfs.append(pf)
        c.k8s_resources.append(dict(workload=workload, new_name=new_name, port_forwards=pfs,
                                    resource_deps=as_list(resource_deps), links=as_list(links),
                                    labels=as_list(labels), trigger_mode=trigger_mode,
                                    objects=as_list(objects)))

    def local_resource(name, cmd="", deps=[], trigger_mode="auto", resource_deps=[], ignore=[],
                       auto_init=True, serve_cmd="", cmd_bat="", serve_cmd_bat="",
                       allow_parallel=False, links=[], tags=[], env={}, serve_env={},
                       readiness_probe=None, dir="", serve_dir="", labels=[]):
        c.local_resources.append(dict(name=name, cmd=cmd, deps=[rel(d) for d in as_list(deps)],
                                      resource_deps=as_list(resource_deps), labels=as_list(labels),
                                      trigger_mode=trigger_mode, auto_init=auto_init))

    def port_forward(local_port, container_port=None, name=None, link_path=None, host=None):
        return {"local_port": local_port, "container_port": container_port or local_port, "name": name}

    def link(url, name=""):
        return {"url": url, "name": name}

    # -- settings, context, files --------------------------------------------------
    def allow_k8s_contexts(contexts):
        c.allow_contexts.extend(as_list(contexts))

    def k8s_context():
        return context

    def watch_settings(ignore):
        c.watch_ignore = as_list(ignore)

    def docker_prune_settings(disable=False, max_age_mins=360, num_builds=0, interval_hrs=1, keep_recent=2):
        c.prune = dict(disable=disable, max_age_mins=max_age_mins, num_builds=num_builds, keep_recent=keep_recent)

    def update_settings(max_parallel_updates=3, k8s_upsert_timeout_secs=30, suppress_unused_image_warnings=None):
        pass

    def version_settings(check_updates=True, constraint=""):
        pass

    def local(command, quiet=False, command_bat="", echo_off=False, env={}, dir="", stdin=None):
        argv = as_list(command) if isinstance(command, (list, tuple)) else shlex.split(command)
        c.local_cmds.append(argv)
        if argv[:1] == ["curl"] and any("ingress-nginx" in a for a in argv):
            return INGRESS_FIXTURE.read_text()
        if argv == ["uname", "-s"]:
            return "Linux\n"
        raise TiltError(f"local(): the contract test has no stand-in for {argv}; add one")

    def listdir(directory, recursive=False):
        d = rel(directory)
        c.read_paths.append(d)
        return sorted(str(Path(d) / n) for n in os.listdir(ROOT / d))

    def read_json(path, default=None):
        c.read_paths.append(rel(path))
        return json.loads((ROOT / rel(path)).read_text())

    def define_string(name, args=False, usage=""):
        c.flags[name] = "string"

    def define_bool(name, args=False, usage=""):
        c.flags[name] = "bool"

    def define_string_list(name, args=False, usage=""):
        c.flags[name] = "string_list"

    def parse():
        unknown = set(args) - set(c.flags)
        if unknown:
            raise TiltError(f"config.parse(): unknown flags {sorted(unknown)}")
        return dict(args)

    builtins = dict(docker_build=docker_build, sync=sync, run=run, fall_back_on=fall_back_on,
                    initial_sync=initial_sync, kustomize=kustomize, k8s_yaml=k8s_yaml,
                    k8s_resource=k8s_resource, local_resource=local_resource,
                    port_forward=port_forward, link=link, allow_k8s_contexts=allow_k8s_contexts,
                    k8s_context=k8s_context, watch_settings=watch_settings,
                    docker_prune_settings=docker_prune_settings, update_settings=update_settings,
                    version_settings=version_settings, local=local, listdir=listdir,
                    read_json=read_json)
    config_fns = dict(define_string=define_string, define_bool=define_bool,
                      define_string_list=define_string_list, parse=parse)

    glb = sl.Globals.extended_by([sl.LibraryExtension.Print, sl.LibraryExtension.Json,
                                  sl.LibraryExtension.StructType])
    dialect = sl.Dialect.extended()
    # `config` is a namespace and TRIGGER_MODE_* are constants in Tilt; a prelude
    # module provides them and the Tiltfile's first line loads it (line numbers
    # in errors stay those of the Tiltfile).
    prelude = sl.Module()
    for name, fn in config_fns.items():
        prelude.add_callable("_" + name, fn)
    sl.eval(prelude, sl.parse("tilt_prelude", "config = struct(" + ", ".join(
        f"{n}=_{n}" for n in config_fns) + ")\nTRIGGER_MODE_AUTO = 'auto'\n"
        "TRIGGER_MODE_MANUAL = 'manual'\n", dialect), glb)
    frozen = prelude.freeze()

    mod = sl.Module()
    for name, fn in builtins.items():
        mod.add_callable(name, fn)
    src = ('load("@tilt_prelude", "config", "TRIGGER_MODE_AUTO", "TRIGGER_MODE_MANUAL"); '
           + tiltfile.read_text())

    def loader(name):
        if name == "@tilt_prelude":
            return frozen
        raise TiltError(f"load({name!r}): extensions are not stubbed")

    sl.eval(mod, sl.parse(str(tiltfile), src, dialect), glb, sl.FileLoader(loader))
    return c


# ---- checks over the recorded calls -------------------------------------------------

def workloads(docs):
    out = {}
    for d in docs:
        if d.get("kind") in WORKLOAD_KINDS:
            spec = d["spec"]
            if d["kind"] == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            pod = spec.get("template", {}).get("spec", spec if d["kind"] == "Pod" else {})
            out[d["metadata"]["name"]] = dict(doc=d, pod=pod, ns=d["metadata"].get("namespace", ""))
    return out


def image_name(image):
    """Repository without tag or digest: kindling-api:dev -> kindling-api."""
    repo = image.split("@")[0]
    head, _, last = repo.rpartition("/")
    return (head + "/" if head else "") + last.split(":")[0]


def dockerfile_facts(path: Path):
    text = path.read_text()
    copies = {m.group(2): m.group(1) for m in re.finditer(r"^COPY\s+(?:--\S+\s+)*(\S+)\s+(\S+)\s*$", text, re.M)}
    dirs = set(re.findall(r"mkdir -p ((?:/\S+\s*)+)", text))
    made = {d for group in dirs for d in group.split()}
    chowned = set(re.findall(r"chown \d+:\d+ (/\S+)", text))
    user = re.findall(r"^USER\s+(\d+)", text, re.M)
    return copies, made, chowned, user[-1] if user else None


def check(c: Calls, full: bool = True) -> list[tuple[str, str]]:
    """Returns (check-id, message) for every violation."""
    v = []
    wl = workloads(c.yaml_docs)
    resources = {}
    for r in c.k8s_resources:
        resources[r["new_name"] or r["workload"]] = r
    local_names = {r["name"] for r in c.local_resources}

    # files
    def exists(p, what):
        if p in STAGED:
            stager = (ROOT / STAGER).read_text() if (ROOT / STAGER).exists() else ""
            runs = any(STAGER in r["cmd"] for r in c.local_resources)
            if Path(p).name not in stager or not runs:
                v.append(("files", f"{what} {p} is staged by no local_resource running {STAGER}"))
        elif not (ROOT / p).exists():
            v.append(("files", f"{what} {p} does not exist"))

    for b in c.docker_builds:
        exists(b["context"], f"docker_build({b['ref']}) context")
        exists(b["dockerfile"], f"docker_build({b['ref']}) dockerfile")
        for o in b["only"]:
            exists(str(Path(b["context"]) / o) if b["context"] != "." else o, f"docker_build({b['ref']}) only")
        for s in b["live_update"]:
            for p in [s["local_path"]] if s["step"] == "sync" else s.get("files", []):
                exists(p, f"live_update {s['step']}")
    for r in c.local_resources:
        for d in r["deps"]:
            exists(d, f"local_resource({r['name']}) dep")
        first = shlex.split(r["cmd"])[0] if r["cmd"] else ""
        if "/" in first:
            exists(first, f"local_resource({r['name']}) command")
    for p in c.read_paths:
        exists(p, "read path")

    # workloads <-> k8s_resource
    for name, r in resources.items():
        if r["workload"] not in wl:
            v.append(("workload", f"k8s_resource({r['workload']!r}) names no workload in the rendered YAML"))
    for name in wl:
        if name not in resources:
            v.append(("workload", f"workload {name} has no k8s_resource (labels, deps)"))

    # objects= selectors (name[:kind[:namespace]]) must each match a rendered object
    for name, r in resources.items():
        for sel in r.get("objects", []):
            parts = sel.split(":")
            hits = [d for d in c.yaml_docs if d["metadata"]["name"] == parts[0]
                    and (len(parts) < 2 or d["kind"].lower() == parts[1].lower())
                    and (len(parts) < 3 or d["metadata"].get("namespace", "") == parts[2])]
            if len(hits) != 1:
                v.append(("workload", f"{name}: objects selector {sel!r} matches {len(hits)} objects"))

    # images
    used = {}
    for name, w in wl.items():
        for ctr in w["pod"].get("containers", []) + w["pod"].get("initContainers", []):
            used.setdefault(image_name(ctr["image"]), []).append((name, ctr))
    refs = {b["ref"] for b in c.docker_builds}
    for ref in refs:
        if ref not in used:
            v.append(("image", f"docker_build({ref!r}) is used by no workload"))
    for img in used:
        if img in BUILT_IMAGES and img not in refs:
            v.append(("image", f"workload image {img} is in BUILT_IMAGES but has no docker_build"))
    if full and refs != set(BUILT_IMAGES):
        v.append(("image", f"docker_build refs {sorted(refs)} != manifest_xref.BUILT_IMAGES {sorted(BUILT_IMAGES)}"))

    # live update
    for b in c.docker_builds:
        syncs = [s for s in b["live_update"] if s["step"] == "sync"]
        runs = [s for s in b["live_update"] if s["step"] == "run"]
        if not b["live_update"]:
            continue
        dockerfile = ROOT / b["dockerfile"]
        if not dockerfile.exists():
            continue
        copies, made, chowned, user = dockerfile_facts(dockerfile)
        ignore_file = ROOT / b["context"] / ".dockerignore"
        allowed = ignore_file.read_text().split() if ignore_file.exists() else None
        for s in syncs:
            remote = s["remote_path"]
            live_dir = str(Path(remote).parent)
            if live_dir not in made or live_dir not in chowned:
                v.append(("live-update", f"sync target dir {live_dir} is not created and chowned to USER in {b['dockerfile']}"))
            rel_local = os.path.relpath(s["local_path"], b["context"])
            if b["only"] and not any(rel_local == o or rel_local.startswith(o.rstrip("/") + "/") for o in b["only"]):
                v.append(("live-update", f"sync source {s['local_path']} is outside docker_build only="))
            if allowed is not None and allowed[:1] == ["*"] and f"!{rel_local}" not in allowed:
                v.append(("live-update", f"sync source {rel_local} is excluded by .dockerignore (Tilt would not watch it)"))
            entry = [src for dst, src in copies.items() if dst.startswith("/usr/local/bin/")]
            for src in entry:
                m = re.search(r"^LIVE_BIN=(\S+)", (ROOT / src).read_text(), re.M) if (ROOT / src).exists() else None
                if m and m.group(1) != remote:
                    v.append(("live-update", f"{src} runs {m.group(1)} but live_update syncs to {remote}"))
            for name, ctr in used.get(b["ref"], []):
                w = wl[name]
                if w["doc"]["kind"] in ("Job", "CronJob"):
                    continue  # exited pods are not live-updated
                ro = (ctr.get("securityContext") or {}).get("readOnlyRootFilesystem")
                mounts = {m["mountPath"]: m["name"] for m in ctr.get("volumeMounts", [])}
                vols = {x["name"]: x for x in w["pod"].get("volumes", [])}
                if ro and not (live_dir in mounts and "emptyDir" in vols.get(mounts[live_dir], {})):
                    v.append(("live-update", f"{name}/{ctr['name']}: read-only root filesystem and no emptyDir at {live_dir}"))
        for r in runs:
            exe = shlex.split(r["cmd"])[0]
            if exe not in copies:
                v.append(("live-update", f"run step {exe} is not installed by {b['dockerfile']}"))

    # port forwards
    for name, r in resources.items():
        w = wl.get(r["workload"])
        if not w:
            continue
        ports = {p["containerPort"] for ctr in w["pod"].get("containers", []) for p in ctr.get("ports", [])}
        for pf in r["port_forwards"]:
            if pf["container_port"] not in ports:
                v.append(("port", f"{name}: port forward to {pf['container_port']}, container ports {sorted(ports)}"))

    # resource_deps
    known = set(resources) | local_names | set(wl)
    graph = {}
    for r in list(resources.values()) + c.local_resources:
        rname = r.get("name") or r["new_name"] or r["workload"]
        graph[rname] = r["resource_deps"]
        for d in r["resource_deps"]:
            if d not in known:
                v.append(("deps", f"{rname}: resource_deps names unknown resource {d!r}"))
    state = {}

    def visit(n, stack):
        if state.get(n) == 1:
            v.append(("deps", "resource_deps cycle: " + " -> ".join(stack + [n])))
            return
        if state.get(n) == 2:
            return
        state[n] = 1
        for d in graph.get(n, []):
            visit(d, stack + [n])
        state[n] = 2

    for n in graph:
        visit(n, [])

    # labels
    for r in list(resources.values()) + c.local_resources:
        rname = r.get("name") or r["new_name"] or r["workload"]
        if not r["labels"] or not set(r["labels"]) <= ALLOWED_LABELS:
            v.append(("labels", f"{rname}: labels {r['labels']} not a non-empty subset of {sorted(ALLOWED_LABELS)}"))

    if not full:
        return v

    # links
    links = {l["url"] for r in resources.values() for l in r["links"]}
    obs = any(w["ns"] == OBSERVABILITY_NS for w in wl.values())
    if obs:
        for f in sorted((ROOT / "k8s/observability/grafana/dashboards").glob("*.json")):
            uid = json.loads(f.read_text())["uid"]
            if f"http://localhost:3000/d/{uid}" not in links:
                v.append(("links", f"no Grafana link for dashboard uid {uid}"))
    for url in ("http://kindling.localhost/api/items",):
        if url not in links:
            v.append(("links", f"no link {url}"))
    if not any("/api/v1/health" in u for u in links):
        v.append(("links", "no health link for the API"))

    # settings
    if not c.watch_ignore or not any(i.rstrip("/") in ("target", "**/target") for i in c.watch_ignore):
        v.append(("settings", "watch_settings does not ignore target/"))
    if not c.prune or c.prune["disable"]:
        v.append(("settings", "docker_prune_settings missing or disabled"))
    cluster = yaml.safe_load((ROOT / "kind-config.yaml").read_text())["name"]
    if c.allow_contexts != [f"kind-{cluster}"]:
        v.append(("settings", f"allow_k8s_contexts {c.allow_contexts} != ['kind-{cluster}'] (kind-config.yaml)"))
    curls = [a for argv in c.local_cmds if argv[:1] == ["curl"] for a in argv if a.startswith("https://")]
    if not any("/controller-v1.15.1/deploy/static/provider/kind/deploy.yaml" in u for u in curls):
        v.append(("settings", f"ingress-nginx not fetched from v1.15.1's kind provider manifest: {curls}"))
    return v


# ---- driver ---------------------------------------------------------------------------

def expect_error(label, src_or_path, needle, results, **kw):
    path = src_or_path
    if isinstance(src_or_path, str):
        path = TESTDATA / ".inline.Tiltfile"
        path.write_text(src_or_path)
    try:
        evaluate(path, **kw)
        results.append((label, False, "evaluated without error"))
    except (TiltError, sl.StarlarkError, TypeError) as e:
        msg = str(e)
        results.append((label, needle in msg, msg.strip().splitlines()[-1][:160] if needle not in msg else needle))
    finally:
        if isinstance(src_or_path, str):
            path.unlink()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiltfile", default=str(ROOT / "Tiltfile"))
    a = ap.parse_args()
    tiltfile = Path(a.tiltfile)
    failed = 0

    # 1. The real Tiltfile, default flags and with --skip-observability.
    for label, kw in (("default flags", {}), ("--skip-observability", {"args": {"skip-observability": True}}),
                      ("--build=docker", {"args": {"build": "docker"}})):
        c = evaluate(tiltfile, **kw)
        v = check(c)
        wl = workloads(c.yaml_docs)
        if "skip-observability" in kw.get("args", {}):
            v += [("flag", f"observability workload {n} deployed with --skip-observability")
                  for n, w in wl.items() if w["ns"] == OBSERVABILITY_NS]
        n_checks = (len(c.k8s_resources) + len(c.local_resources) + len(c.docker_builds))
        print(f"tilt-contract ({label}): {len(v)} violations; {len(wl)} workloads, "
              f"{len(c.k8s_resources)} k8s_resources, {len(c.local_resources)} local_resources, "
              f"{len(c.docker_builds)} docker_build, "
              f"{sum(len(r['port_forwards']) for r in c.k8s_resources)} port forwards, "
              f"{sum(len(r['links']) for r in c.k8s_resources)} links")
        for check_id, msg in v:
            print(f"  FAIL [{check_id}] {msg}")
        failed += bool(v)
        del n_checks

    # 2. The context guard.
    results = []
    expect_error("guard rejects a non-local context", tiltfile, "refusing to deploy", results,
                 context="gke_prod_europe-west1_main")

    # 3. Negative cases: each check must be able to fail.
    expect_error("unknown keyword is rejected",
                 "docker_build('kindling-api', '.', dockerfile='Dockerfile.dev', live_updates=[])\n",
                 "live_updates", results)
    expect_error("live_update steps out of order are rejected",
                 "docker_build('kindling-api', '.', dockerfile='Dockerfile.dev',\n"
                 "    live_update=[run('true'), sync('src', '/app/src')])\n",
                 "out of order", results)
    broken = TESTDATA / "Tiltfile.broken"
    expected = [l.strip() for l in (TESTDATA / "Tiltfile.broken.expected").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    got = check(evaluate(broken), full=False)
    got_msgs = [f"[{i}] {m}" for i, m in got]
    for e in expected:
        results.append((f"broken: {e}", any(e in m for m in got_msgs), "not reported"))
    for m in got_msgs:
        if not any(e in m for e in expected):
            results.append((f"broken: unexpected {m}", False, "reported but not expected"))
    ok = sum(1 for _, good, _ in results if good)
    print(f"tilt-contract negative cases: {ok} detected, {len(results) - ok} missed")
    for label, good, detail in results:
        if not good:
            print(f"  MISSED {label}: {detail}")
    failed += ok != len(results)
    print("tilt-contract: " + ("FAILED" if failed else "passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
