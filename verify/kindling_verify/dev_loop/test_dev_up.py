"""Tests of scripts/dev-up.sh, without kind, minikube, Tilt or a cluster: each case runs it
with the stand-in docker/kind/minikube/kubectl/tilt/cargo commands of testdata/dev-up-standins
on PATH, inside an empty network namespace (unshare) so the ports
80/443/3000/5432/8000/9090/10350 are free or taken exactly as the case says. Most cases run
the machine checks (`dev-up.sh --check`); the full runs let it go on to create the cluster
and start Tilt, and the stand-ins record every call (kind create, minikube start with its
profile, Kubernetes version, addons and CNI, kubectl use-context, tilt up) for the case to
assert."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from kindling_verify.helpers import ROOT, env_flag

STANDINS = Path(__file__).parent / "testdata" / "dev-up-standins"
# A PATH with the system tools but none of the developer's (cargo lives in ~/.cargo/bin).
SYSTEM_PATH = "/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"
MEM_8G = "8589934592"

# Takes the case's ports inside the namespace, then runs dev-up.sh ($0) with its arguments.
# Single-quoted for bash -c on purpose: it expands inside the namespace.
IN_NAMESPACE = '''
ip link set lo up
pids=()
for p in $LISTEN; do
  python3 -c "import socket, time; s = socket.socket(); s.bind((\\"127.0.0.1\\", $p)); s.listen(); time.sleep(60)" \\
    </dev/null >/dev/null 2>&1 &
  pids+=($!)
done
for p in $LISTEN; do
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
done
rc=0
if [[ "${FULL:-0}" == 1 ]]; then "$0" "$@" || rc=$?; else "$0" --check "$@" || rc=$?; fi
((${#pids[@]} == 0)) || kill "${pids[@]}"
exit "$rc"
'''


@dataclass
class Case:
    rc: int
    args: list
    env: dict
    want: str                # every line must be in the output
    listen: str = ""         # ports taken inside the namespace
    cargo: bool = False      # a cargo on PATH
    full: bool = False       # dev-up.sh ARGS instead of dev-up.sh --check ARGS
    calls: str = ""          # every line must be among the stand-ins' calls
    no_calls: str = ""       # no line may be among them
    minikube: bool = True    # the minikube stand-in on PATH


def kind_env(version="0.33.0", mem=MEM_8G, **extra):
    return {"FAKE_KIND_VERSION": version, "FAKE_DOCKER_MEM": mem, **extra}


def minikube_env(version="1.38.1", mem=MEM_8G, **extra):
    return {"FAKE_MINIKUBE_VERSION": version, "FAKE_DOCKER_MEM": mem, **extra}


def running_profile(status, memory, k8s, cni) -> str:
    """The JSON `minikube profile list -o json` prints for the profile kindling."""
    return json.dumps({"invalid": [], "valid": [{"Name": "kindling", "Status": status, "Config": {
        "Name": "kindling", "Driver": "docker", "CPUs": 4, "Memory": memory, "KubernetesConfig": {
            "KubernetesVersion": k8s, "ContainerRuntime": "docker", "CNI": cni}}}]})


MINIKUBE_START = ("minikube start -p kindling --driver docker --kubernetes-version v1.35.1 --container-runtime docker "
                  "--cni calico")

CASES = {
    "a ready machine passes": Case(0, [], kind_env(), "checks passed", cargo=True),
    "old kind, no cargo, too little memory, ports 80/8000 taken: each named with its fix": Case(
        1, [], kind_env("0.29.0", "2147483648"), """kind 0.29.0 is older than 0.33.0
install kind v0.33.0 or newer
cargo not found
scripts/dev-up.sh --build=docker
Docker has 2048 MiB of memory, the platform needs about 4096 MiB
Settings > Resources > Memory
port 80 on 127.0.0.1 is in use
port 8000 on 127.0.0.1 is in use
5 problem(s)""", listen="80 8000"),
    "--build=docker needs no cargo; --skip-observability needs less memory and no 3000/9090": Case(
        0, ["--build=docker", "--skip-observability"], kind_env("0.33.1", "3221225472"), "checks passed",
        listen="3000 9090"),
    "Docker not running": Case(1, [], kind_env(mem="down"), "Docker is not running", cargo=True),
    "port 443 taken": Case(1, [], kind_env(), "port 443 on 127.0.0.1 is in use", listen="443", cargo=True),
    # ---- full runs: what dev-up.sh asks kind, minikube, kubectl and tilt to do
    "kind (the default): creates the cluster from kind-config.yaml, selects kind-kindling, tilt up with the flags": Case(
        0, ["--build=docker"], kind_env(), "creating kind cluster kindling", full=True,
        calls=f"""kind create cluster --config {ROOT}/kind-config.yaml --wait 120s
kubectl config use-context kind-kindling
tilt up -- --build=docker""", no_calls="minikube"),
    "kind: an existing cluster is reused": Case(
        0, ["--build=docker"], kind_env(FAKE_KIND_CLUSTERS="kindling"), "kind cluster kindling exists",
        listen="80 443", full=True, calls="kubectl config use-context kind-kindling\ntilt up", no_calls="kind create"),
    "minikube: profile kindling, Kubernetes v1.35.1, calico, docker runtime, ingress + metrics-server addons; "
    "80/443 not needed": Case(
        0, ["--cluster", "minikube", "--build=docker", "--skip-observability"], minikube_env(),
        "creating minikube profile kindling: Kubernetes v1.35.1, calico, 4 CPUs, 6144 MiB", listen="80 443",
        full=True, calls=f"""{MINIKUBE_START} --cpus 4 --memory 6144 --addons ingress --addons metrics-server --wait all
kubectl config use-context kindling
tilt up -- --build=docker --skip-observability""", no_calls="kind "),
    "minikube: --cpus/--memory (both spellings) size the profile": Case(
        0, ["--cluster=minikube", "--cpus", "6", "--memory=10240", "--build=docker"],
        minikube_env("1.39.0", "17179869184"), "checks passed: tools, minikube >= 1.38.1", full=True,
        calls=f"{MINIKUBE_START} --cpus 6 --memory 10240 --addons ingress --addons metrics-server --wait all"),
    "minikube --no-tilt (scripts/e2e.sh): the profile and its context, no tilt up": Case(
        0, ["--no-tilt", "--cluster", "minikube", "--build=docker"], minikube_env(), "kubectl context kindling",
        full=True, calls=f"""{MINIKUBE_START} --cpus 4 --memory 6144 --addons ingress --addons metrics-server --wait all
kubectl config use-context kindling""", no_calls="tilt up"),
    "minikube: a running profile with the same settings is reused; the addons are enabled (idempotent)": Case(
        0, ["--cluster", "minikube", "--build=docker"],
        minikube_env(FAKE_MINIKUBE_PROFILES=running_profile("Running", 6144, "v1.35.1", "calico")),
        "minikube profile kindling is running", full=True, calls="""minikube -p kindling addons enable ingress
minikube -p kindling addons enable metrics-server
minikube -p kindling update-context
kubectl config use-context kindling
tilt up""", no_calls="minikube start"),
    "minikube: a stopped profile is started with the same settings": Case(
        0, ["--cluster", "minikube", "--build=docker"],
        minikube_env(FAKE_MINIKUBE_PROFILES=running_profile("Stopped", 6144, "v1.35.1", "calico")),
        "starting the stopped minikube profile kindling", full=True,
        calls=f"{MINIKUBE_START} --cpus 4 --memory 6144 --addons ingress --addons metrics-server --wait all"),
    "minikube: a profile running with other settings (memory, Kubernetes, no CNI) is refused, naming the fix": Case(
        1, ["--cluster", "minikube", "--build=docker"],
        minikube_env(FAKE_MINIKUBE_PROFILES=running_profile("Running", 4096, "v1.34.0", "")),
        "minikube profile kindling exists (Running) with other settings: 4096 MiB (want 6144), "
        "Kubernetes v1.34.0 (want v1.35.1), CNI default (want calico)\nminikube delete -p kindling\n1 problem(s)",
        full=True, no_calls="minikube start\ntilt up"),
    "minikube: too old, Docker's memory below the profile's, port 5432 taken": Case(
        1, ["--cluster", "minikube", "--build=docker"], minikube_env("1.37.0", "4294967296"),
        """minikube 1.37.0 is older than 1.38.1
install minikube v1.38.1 or newer
Docker has 4096 MiB of memory, the minikube profile is to get --memory 6144 MiB
3 problem(s)""", listen="5432"),
    "minikube: --memory too small for the whole stack": Case(
        1, ["--cluster", "minikube", "--memory", "4096", "--build=docker"], minikube_env(),
        """--memory 4096 MiB is too little for the platform on minikube (about 5120 MiB)
or run with --skip-observability"""),
    "minikube: --memory 4096 is enough with --skip-observability": Case(
        0, ["--cluster", "minikube", "--memory", "4096", "--build=docker", "--skip-observability"], minikube_env(),
        "checks passed"),
    "minikube: not installed": Case(1, ["--cluster", "minikube", "--build=docker"], {"FAKE_DOCKER_MEM": MEM_8G},
                                    "minikube is not installed", minikube=False),
    "--memory without --cluster minikube is a usage error": Case(
        2, ["--memory", "8192"], kind_env(), "--cpus, --memory and --driver size the minikube profile; "
        "add --cluster minikube"),
    "an unknown --cluster is a usage error": Case(
        2, ["--cluster", "k3d"], {"FAKE_DOCKER_MEM": MEM_8G}, "--cluster must be kind or minikube, not 'k3d'"),
}


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> dict[bool, Path]:
    """{with minikube: its PATH folder}: the stand-ins, and the same less minikube."""
    unshare = shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0
    if not unshare or not shutil.which("ip"):
        # Without a private network namespace the machine's own listeners decide the
        # port checks, so the cases cannot be made exact. CI runs as root, where unshare works.
        reason = "needs unshare -rn and ip (util-linux, iproute2)"
        if env_flag("KINDLING_REQUIRE_UNSHARE") or env_flag("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    for tool in ("cargo", "minikube"):
        found = shutil.which(tool, path=SYSTEM_PATH)
        if found:
            pytest.fail(f"{tool} is in a system directory ({found}); the case without it cannot be made",
                        pytrace=False)
    without = tmp_path_factory.mktemp("bin-no-minikube")
    for f in (STANDINS / "tools").iterdir():
        if f.name != "minikube":
            (without / f.name).symlink_to(f)
    return {True: STANDINS / "tools", False: without}


@pytest.mark.parametrize("name", list(CASES))
def test_dev_up(standins, name, tmp_path):
    case = CASES[name]
    calls_log = tmp_path / "calls.log"
    calls_log.touch()
    path = ([str(STANDINS / "cargo")] if case.cargo else []) + [str(standins[case.minikube]), SYSTEM_PATH]
    env = dict(os.environ, **case.env, FAKE_CALLS=str(calls_log), PATH=":".join(path), LISTEN=case.listen,
               FULL="1" if case.full else "0")
    p = subprocess.run(["unshare", "-rn", "bash", "-c", IN_NAMESPACE, str(ROOT / "scripts" / "dev-up.sh"), *case.args],
                       env=env, capture_output=True, text=True)
    out, recorded = p.stdout + p.stderr, calls_log.read_text()
    print(f"exit {p.returncode}\n{out}\ncalls:\n{recorded}")
    missing = [line for line in case.want.splitlines() if line not in out]
    missing += [f"call: {line}" for line in case.calls.splitlines() if line not in recorded]
    missing += [f"(unwanted) call: {line}" for line in case.no_calls.splitlines() if line in recorded]
    assert p.returncode == case.rc and not missing, f"exit {p.returncode}, want {case.rc}; missing: {missing}"
