"""`tilt up -- --debug` without a cluster, as far as Docker and gdb can take it.

The debug dev binary is built the way the api-compile resource builds it with --debug
(tilt/build-binary.sh host, KINDLING_DEV_DEBUG=1), on a copy of the workspace so the
repository's .dev-bin/ (a running Tilt's) is left alone; the dev image is built with
DEBUGGER=gdbserver and run with Docker as the dev-debug overlay runs the pod (uid 10001,
read-only root filesystem, every capability dropped but SYS_PTRACE, KINDLING_DEV_GDBSERVER)
beside the test Postgres. gdb (this machine's) connects over the published port, attaches
with .vscode/kindling-attach.py, sets a breakpoint in the items list handler (its name read
from src/routes/items.rs), a request hits it, and the backtrace names the handler. After a
live update (the binary tar'ed into /app/live, `kindling-dev --restart`) the same script
attaches to the new process.

The overlays: dev and prod carry none of the debugger's relaxations; dev-debug differs
from dev only in the API's container (gdbserver's env and port, SYS_PTRACE, privilege
escalation, no liveness probe).

Cost: the copy's target directory is the host-build check's (test_host_build.py), whose
dependencies are already compiled; --debug recompiles only the workspace's crates.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading

import pytest

from kindling_verify.helpers import ROOT, http, kustomize, run, wait_for, wait_http, yaml_documents

COPY = ROOT / "target" / "verify-debugger" / "src"
# Shared with test_host_build.py: the dependencies compiled there serve here.
TARGET = ROOT / "target" / "verify-host-build" / "target"
WORKSPACE = ["Cargo.toml", "Cargo.lock", "src", "core", "dylib", "devbin", "migrations", "tilt", "Dockerfile.dev"]
IMAGE = "kindling-api:debug-check"
CONTAINER = "kindling-check-debug"
NET = "kindling-debugger"
DEV_BASE_LOCAL = "local/debian:trixie"
ATTACH = ROOT / ".vscode" / "kindling-attach.py"
GDB_PORT = 2345


def lib(*command: str) -> str:
    """A function of scripts/dev-loop-lib.sh on this suite's own Docker network."""
    script = f'DEV_LOOP_NET={NET}; source "{ROOT}/scripts/dev-loop-lib.sh"; "$@"'
    return run(["bash", "-c", script, "dev-loop-lib", *command]).stdout.strip()


def handler_symbol() -> str:
    """The GET /api/items handler, as gdb names it: <dev binary's crate>::routes::items::<fn>."""
    source = (ROOT / "src" / "routes" / "items.rs").read_text()
    match = re.search(r'#\[get\("/api/items(?:\?[^"]*)?"[^\]]*\)\]\s*(?:pub\s+)?async\s+fn\s+(\w+)', source)
    assert match, "no #[get(\"/api/items\")] handler in src/routes/items.rs"
    crate = re.search(r'^\[\[bin\]\]\s*name\s*=\s*"([^"]+)"', (ROOT / "devbin" / "Cargo.toml").read_text(), re.M)
    assert crate, "devbin/Cargo.toml names no [[bin]]"
    return f"{crate.group(1).replace('-', '_')}::routes::items::{match.group(1)}"


def gdb(port: str, *commands: str) -> list[str]:
    """gdb in batch mode on the debug binary, attached by the VS Code configuration's script."""
    argv = ["gdb", "-q", "-batch", "-nx", str(COPY / ".dev-bin" / "kindling"), "-ex", "set pagination off",
            "-ex", "set confirm off", "-ex", f"target extended-remote 127.0.0.1:{port}", "-x", str(ATTACH)]
    for c in commands:
        argv += ["-ex", c]
    return argv


@pytest.fixture(scope="module")
def debug_image() -> str:
    if shutil.which("gdb") is None:
        pytest.fail("gdb is not installed (apt-get install gdb)", pytrace=False)
    run([ROOT / "verify" / "docker-setup.sh", "--builder"])
    shutil.rmtree(COPY, ignore_errors=True)
    COPY.mkdir(parents=True)
    for item in WORKSPACE:
        # copy2 keeps modification times: unchanged crates stay fresh for cargo.
        if (ROOT / item).is_dir():
            shutil.copytree(ROOT / item, COPY / item, copy_function=shutil.copy2)
        else:
            shutil.copy2(ROOT / item, COPY / item)
    run([COPY / "tilt" / "build-binary.sh", "host"], cwd=COPY,
        env={**os.environ, "KINDLING_DEV_DEBUG": "1", "KINDLING_DEV_TARGET": str(TARGET),
             "KINDLING_DEV_REPLAY": "off"})
    run(["docker", "build", "-q", "-f", COPY / "Dockerfile.dev", "-t", IMAGE, "--build-arg", "DEBUGGER=gdbserver",
         "--build-arg", f"RUNTIME_IMAGE={DEV_BASE_LOCAL}", COPY])
    return IMAGE


@pytest.fixture(scope="module")
def debug_api(debug_image):
    """(API port, gdbserver port): the pod's settings under Docker."""
    lib("start_postgres")
    api = lib("run_api", CONTAINER, debug_image, "--tmpfs", "/app/live:rw,exec,size=128m,uid=10001,gid=10001",
              "--cap-drop", "ALL", "--cap-add", "SYS_PTRACE", "-e", f"KINDLING_DEV_GDBSERVER=0.0.0.0:{GDB_PORT}",
              "-p", f"127.0.0.1::{GDB_PORT}", "-e", "MIGRATE_ON_START=true")
    gdb_port = run(["docker", "port", CONTAINER, f"{GDB_PORT}/tcp"]).stdout.splitlines()[0].rsplit(":", 1)[1]
    if not wait_http(f"http://127.0.0.1:{api}/api/v1/health/ready", 60):
        run(["docker", "logs", "--tail", "30", CONTAINER], check=False)
        pytest.fail("debug image: /api/v1/health/ready never answered 200", pytrace=False)
    yield api, gdb_port
    lib("cleanup_containers", CONTAINER)


def test_the_debug_binary_carries_debug_info_for_the_handlers(debug_image):
    sections = run(["readelf", "-S", "-W", COPY / ".dev-bin" / "kindling"]).stdout
    assert ".debug_info" in sections and ".debug_line" in sections


def test_gdb_stops_in_the_handler_a_request_reaches(debug_api, summary):
    api, port = debug_api
    symbol = handler_symbol()
    log = COPY.parent / "gdb.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(gdb(port, f"break {symbol}", "continue", "bt 4", "detach"),
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        # The request waits in the socket's queue while gdb holds the process.
        def breakpoint_set() -> bool:
            return "Breakpoint 1 at" in log.read_text() or proc.poll() is not None
        assert wait_for(breakpoint_set, 90, 0.2), "gdb set no breakpoint in 90 s"
        answers = []
        request = threading.Thread(target=lambda: answers.append(http("GET", f"http://127.0.0.1:{api}/api/items")[0]))
        request.start()
        proc.wait(timeout=120)
        request.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    print(out[-4000:])
    hit = [line for line in out.splitlines() if f"hit Breakpoint 1, {symbol} " in line]
    frame = [line for line in out.splitlines() if re.match(rf"#0\s+{re.escape(symbol)} ", line)]
    assert hit and frame, f"no stop in {symbol}; gdb said:\n{out[-2000:]}"
    assert answers == [200], f"the request after detach answered {answers}"
    summary(f"debugger: {frame[0].strip()}")


def test_gdb_attaches_to_the_new_process_after_a_live_update(debug_api):
    api, port = debug_api
    before = run(["docker", "exec", CONTAINER, "kindling-dev", "--pid"]).stdout.strip()
    tar = subprocess.run(["tar", "-C", str(COPY / ".dev-bin"), "-cf", "-", "--transform",
                          "s|^kindling$|app/live/kindling|", "kindling"], capture_output=True, check=True).stdout
    subprocess.run(["docker", "exec", "-i", CONTAINER, "tar", "-C", "/", "-xf", "-"], input=tar, check=True)
    run(["docker", "exec", CONTAINER, "kindling-dev", "--restart"])
    assert wait_http(f"http://127.0.0.1:{api}/api/v1/health/ready", 30), "not ready after the restart"
    after = run(["docker", "exec", CONTAINER, "kindling-dev", "--pid"]).stdout.strip()
    assert after != before
    out = run(gdb(port, "info inferiors", "detach"), timeout=90).stdout
    assert re.search(rf"process {after}\s", out), f"gdb did not attach to the new pid {after}:\n{out[-2000:]}"
    exe = run(["docker", "exec", CONTAINER, "readlink", f"/proc/{after}/exe"]).stdout.strip()
    assert exe == "/app/live/kindling"


# ---- the overlays: the relaxations exist only with --debug -------------------------------

def containers(docs: list[dict]):
    for d in docs:
        spec = (d.get("spec") or {})
        if d["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        pod = (spec.get("template") or {}).get("spec") or {}
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            yield f"{d['kind']}/{d['metadata']['name']}/{c['name']}", c


@pytest.mark.parametrize("overlay", ["k8s/overlays/dev", "k8s/overlays/prod"])
def test_overlay_without_debug_keeps_every_restriction(overlay):
    relaxed = []
    for where, c in containers(yaml_documents(kustomize(overlay))):
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            relaxed.append(f"{where}: allowPrivilegeEscalation {sc.get('allowPrivilegeEscalation')}")
        if (sc.get("capabilities") or {}).get("add"):
            relaxed.append(f"{where}: adds capabilities {sc['capabilities']['add']}")
        if any(e.get("name") == "KINDLING_DEV_GDBSERVER" for e in c.get("env") or []):
            relaxed.append(f"{where}: starts gdbserver")
        if any(p.get("containerPort") == GDB_PORT for p in c.get("ports") or []):
            relaxed.append(f"{where}: exposes {GDB_PORT}")
    assert not relaxed, "\n".join(relaxed)


def test_dev_debug_differs_from_dev_only_in_the_apis_container():
    dev = {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml_documents(kustomize("k8s/overlays/dev"))}
    debug = {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml_documents(kustomize("k8s/overlays/dev-debug"))}
    assert dev.keys() == debug.keys()
    changed = [k for k in dev if dev[k] != debug[k]]
    assert changed == ["Deployment/kindling-api"], changed
    a = dev["Deployment/kindling-api"]["spec"]["template"]["spec"]["containers"][0]
    b = debug["Deployment/kindling-api"]["spec"]["template"]["spec"]["containers"][0]
    differing = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    assert differing == ["env", "livenessProbe", "ports", "securityContext"], differing
    assert b["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["SYS_PTRACE"]}
    assert {"name": "KINDLING_DEV_GDBSERVER", "value": f"127.0.0.1:{GDB_PORT}"} in b["env"]
