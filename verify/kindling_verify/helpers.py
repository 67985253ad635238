"""What every suite needs, in one place.

The repository's paths, running a command so that a failure shows its output, the tools
in .venv-checks, free ports, waiting for HTTP, the test Postgres container, the kindling
binary and its API process, and the test tools (Tilt, Loki) with CI's rule: a check that
would skip for want of one fails instead when KINDLING_REQUIRE_<TOOL> is set.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv-checks" / "bin"
# ../shared next to the project root: the test tools and data CI uses (never committed).
SHARED = Path(os.environ.get("KINDLING_SHARED", ROOT.parent / "shared"))
KINDLING_BINARY = ROOT / "target" / "debug" / "kindling"
# Production's major by default; CI sets the locally built stand-in (verify/docker-setup.sh).
POSTGRES_IMAGE = os.environ.get("KINDLING_TEST_POSTGRES_IMAGE", "postgres:17-alpine")


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")


def venv_tool(name: str) -> str:
    """A checker from .venv-checks (verify/install.sh), else from PATH."""
    local = VENV_BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: run verify/install.sh", pytrace=False)
    return found


def run(cmd, *, check: bool = True, cwd: Path = ROOT, **kwargs) -> subprocess.CompletedProcess:
    """Runs `cmd` with its output captured as text and printed (pytest shows it when the test
    fails); with `check`, a non-zero exit fails the test."""
    cmd = [str(c) for c in cmd]
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kwargs)
    print(f"$ {shlex.join(cmd)}  (exit {p.returncode})\n{p.stdout}{p.stderr}")
    if check and p.returncode != 0:
        tail = (p.stdout + p.stderr).strip()[-3000:]
        pytest.fail(f"{shlex.join(cmd)} exited {p.returncode}:\n{tail}", pytrace=False)
    return p


@functools.cache
def kustomize(directory: Path | str) -> str:
    """`kubectl kustomize DIRECTORY` (offline), as YAML text; rendered once per run."""
    return run(["kubectl", "kustomize", ROOT / directory]).stdout


def yaml_documents(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    """(status, body, headers); status 0 when nothing answered."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)
    except OSError as e:
        return 0, str(e).encode(), {}


def wait_http(url: str, timeout: float) -> bool:
    """Until `url` answers 200."""
    return wait_for(lambda: http("GET", url)[0] == 200, timeout, 0.2)


# --------------------------------------------------------------------------- test tools

def find_test_tool(name: str) -> tuple[str | None, str]:
    """(path or None, where it came from or why there is none): KINDLING_<NAME>, then PATH.
    CI unpacks the real binaries from ../shared/bin: eval "$(verify/unpack-test-tools.sh)"."""
    var = f"KINDLING_{name.upper()}"
    configured = os.environ.get(var, "")
    if configured:
        if not os.access(configured, os.X_OK):
            pytest.fail(f"{var}={configured} is not an executable file", pytrace=False)
        return configured, f"{var}={configured}"
    on_path = shutil.which(name)
    if on_path:
        return on_path, f"{name} on PATH ({on_path})"
    return None, (f"no {name}: {var} is unset and there is no {name} on PATH "
                  "(CI: eval \"$(verify/unpack-test-tools.sh)\")")


def required_test_tool(name: str) -> str:
    """The tool's path; without it the test is skipped, or fails when
    KINDLING_REQUIRE_<NAME> is set (CI sets it)."""
    binary, reason = find_test_tool(name)
    if binary:
        return binary
    require = f"KINDLING_REQUIRE_{name.upper()}"
    if env_flag(require):
        pytest.fail(f"{reason}, and {require} is set", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- Postgres, the API

class Postgres:
    """The test Postgres image in a container on a free 127.0.0.1 port (`env`: more variables
    for the container); a cluster that is not UTF8 is refused."""

    def __init__(self, image: str = POSTGRES_IMAGE, password: str = "kindling", env: dict[str, str] | None = None):
        self.port = free_port()
        self.password = password
        extra_env = [f"--env={k}={v}" for k, v in (env or {}).items()]
        self.container = self._docker("run", "-d", "-e", f"POSTGRES_PASSWORD={password}", *extra_env,
                                      "-p", f"127.0.0.1:{self.port}:5432", image).strip()
        # Over TCP: during initdb the image's temporary server listens on the socket only.
        if not wait_for(lambda: subprocess.run(
                ["docker", "exec", self.container, "pg_isready", "-h", "127.0.0.1", "-U",
                 "postgres"], capture_output=True).returncode == 0, 90, 0.5):
            logs = subprocess.run(["docker", "logs", "--tail", "20", self.container],
                                  capture_output=True, text=True)
            self.remove()
            raise RuntimeError(f"Postgres ({image}) not ready in 90 s: {logs.stderr[-1500:]} "
                               "(Docker and the image: verify/docker-setup.sh)")
        self.version = self.psql("SELECT current_setting('server_version') || ', ' || "
                                 "current_setting('server_encoding')")
        # Production's cluster is UTF8, and length limits and case-insensitive uniqueness
        # depend on it: another encoding would make the checks pass or fail for the wrong reason
        # (the Rust harness refuses it too).
        encoding = self.psql("SHOW server_encoding")
        if encoding != "UTF8":
            self.remove()
            raise RuntimeError(f"Postgres ({image}) has server_encoding {encoding}, not UTF8 like production "
                               "(initialise it with UTF-8: verify/docker-setup.sh)")

    @staticmethod
    def _docker(*args: str) -> str:
        done = subprocess.run(["docker", *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:2])}: {done.stderr.strip()}")
        return done.stdout

    def psql(self, sql: str) -> str:
        return self._docker("exec", self.container, "psql", "-v", "ON_ERROR_STOP=1", "-At",
                            "-U", "postgres", "-d", "postgres", "-c", sql).strip()

    def stop(self) -> None:
        """Fast shutdown (the image's stop signal), as when the database pod goes away."""
        self._docker("stop", "-t", "10", self.container)

    def remove(self) -> None:
        self._docker("rm", "-f", "-v", self.container)

    @property
    def url(self) -> str:
        return f"postgres://postgres:{self.password}@127.0.0.1:{self.port}/postgres"


def built_kindling() -> Path:
    """target/debug/kindling, brought up to date (`cargo build --locked`; a no-op after
    `cargo test` in .ci/run)."""
    run(["cargo", "build", "--quiet", "--locked"])
    return KINDLING_BINARY


def start_api(binary: Path, env: dict, log_path: Path, port: int) -> subprocess.Popen:
    """`kindling serve` with the environment `env`, output into `log_path`; returns once
    /api/v1/health/ready answers 200, fails the test with the log's tail otherwise."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(binary), "serve"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    if not wait_http(f"http://127.0.0.1:{port}/api/v1/health/ready", 60):
        stop_process(proc)
        pytest.fail(f"API not ready in 60 s; log tail: {log_path.read_text()[-1500:]}", pytrace=False)
    return proc


def stop_process(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kubernetes_version() -> str:
    """The minor of the kind node image, as kubernetes-validate wants it:
    kindest/node:v1.35.8 -> 1.35.0."""
    text = (ROOT / "kind-config.yaml").read_text()
    match = re.search(r"^\s*image:\s*kindest/node:v(\d+\.\d+)\.", text, re.M)
    if not match:
        pytest.fail("could not read the kindest/node version from kind-config.yaml", pytrace=False)
    return f"{match.group(1)}.0"
