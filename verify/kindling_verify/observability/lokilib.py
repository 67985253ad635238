"""The real Loki for the checks: found, started with the project's own loki.yaml, queried.

Loki is a test tool like promtool, never part of the project. It is found through
KINDLING_LOKI, then PATH (`scripts/unpack-test-tools.sh` provides it in CI). The config is
k8s/observability/loki/loki.yaml itself; only what cannot be the cluster's here is overridden
with Loki's own command-line flags, which take precedence over the file: the `/loki` paths
(a scratch folder instead of the PVC) and the ports (free ones on 127.0.0.1 instead of
3100/9095 on all interfaces).

Loki needs 15-20 s to become ready on 2 cores, so `Loki.start` returns at once and
`wait_ready` is called when the caller has done its other setup. scripts/check-observability.sh
goes further: it starts Loki before its static checks (`lokilib.py start DIR`, which prints
E2E_LOKI_URL and E2E_LOKI_PID) and the end-to-end test attaches to it (`Loki.attach`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from promlib import OBS, free_port

LOKI_CONFIG = OBS / "loki" / "loki.yaml"


def find_loki() -> tuple[str | None, str]:
    """(path to the loki binary or None, where it came from or why there is none)."""
    configured = os.environ.get("KINDLING_LOKI", "")
    if configured:
        if os.access(configured, os.X_OK):
            return configured, f"KINDLING_LOKI={configured}"
        return None, f"KINDLING_LOKI={configured} is not an executable file"
    on_path = shutil.which("loki")
    if on_path:
        return on_path, f"loki on PATH ({on_path})"
    return None, ("no Loki: KINDLING_LOKI is unset and there is no loki on PATH "
                  "(CI: eval \"$(scripts/unpack-test-tools.sh)\")")


class Loki:
    """A Loki (-target=all) on 127.0.0.1: started here, or attached to by its URL."""

    def __init__(self, base: str, proc: subprocess.Popen | None = None,
                 log_path: Path | None = None):
        self.base = base
        self.proc = proc
        self.log_path = log_path
        self.started_at = time.time()

    @classmethod
    def start(cls, binary: str, workdir: Path) -> Loki:
        """Starts Loki with state under `workdir`, on free ports; returns before it is ready."""
        workdir.mkdir(parents=True, exist_ok=True)
        port, grpc_port, w = free_port(), free_port(), str(workdir)
        args = [
            binary, f"-config.file={LOKI_CONFIG}",
            # The file's /loki paths (common.path_prefix, the filesystem store, the
            # compactor and ruler directories), moved to the scratch folder.
            f"-common.path-prefix={w}",
            f"-common.storage.filesystem.chunk-directory={w}/chunks",
            f"-common.storage.filesystem.rules-directory={w}/rules",
            f"-compactor.working-directory={w}/compactor",
            f"-ruler.storage.local.directory={w}/rules",
            # The cluster's fixed ports on every interface, moved to free loopback ports.
            "-server.http-listen-address=127.0.0.1", f"-server.http-listen-port={port}",
            "-server.grpc-listen-address=127.0.0.1", f"-server.grpc-listen-port={grpc_port}",
        ]
        log_path = workdir / "loki.log"
        with open(log_path, "w") as log:
            # cwd: the ingester's WAL directory ("wal", unset in loki.yaml) is relative to it.
            proc = subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        return cls(f"http://127.0.0.1:{port}", proc, log_path)

    @classmethod
    def attach(cls, base: str, started_at: float, log_path: Path | None = None) -> Loki:
        """A Loki someone else started (at `started_at`, epoch seconds) and stops."""
        loki = cls(base.rstrip("/"), None, log_path)
        loki.started_at = started_at
        return loki

    def wait_ready(self, timeout: float = 120) -> float | None:
        """Seconds from start until /ready answered 200, or None (exited or timed out)."""
        deadline = self.started_at + timeout
        while time.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return None
            try:
                with urllib.request.urlopen(self.base + "/ready", timeout=2) as r:
                    if r.status == 200:
                        return time.time() - self.started_at
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        return None

    def log_tail(self, chars: int = 2000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-chars:]

    def query_range(self, expr: str, start_ns: int, end_ns: int,
                    step_s: int = 15) -> tuple[dict | None, str | None]:
        """(data, None) on success, (None, error text) when Loki refuses or fails the query."""
        params = urllib.parse.urlencode({"query": expr, "start": start_ns, "end": end_ns,
                                         "step": step_s, "limit": 5000,
                                         "direction": "forward"})
        try:
            with urllib.request.urlopen(f"{self.base}/loki/api/v1/query_range?{params}",
                                        timeout=30) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            return None, f"HTTP {e.code}: {e.read().decode(errors='replace').strip()[:300]}"
        except (urllib.error.URLError, OSError, ValueError) as e:
            return None, str(e)
        if body.get("status") != "success":
            return None, json.dumps(body)[:300]
        return body["data"], None

    def stop(self) -> None:
        """Stops a Loki started here; an attached one belongs to whoever started it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def result_size(data: dict) -> tuple[int, int]:
    """(series or streams, samples or lines) in a query_range result."""
    result = data.get("result", [])
    return len(result), sum(len(s.get("values", [])) for s in result)


def main(argv: list[str]) -> int:
    """`lokilib.py start DIR`: start Loki in the background and print shell assignments of
    E2E_LOKI_URL, E2E_LOKI_PID, E2E_LOKI_LOG and E2E_LOKI_STARTED; print nothing when there is no Loki binary
    (the end-to-end test then reports the skip, or fails when Loki is required)."""
    if len(argv) != 2 or argv[0] != "start":
        print("usage: lokilib.py start WORKDIR", file=sys.stderr)
        return 2
    binary, source = find_loki()
    if binary is None:
        print(source, file=sys.stderr)
        return 0
    loki = Loki.start(binary, Path(argv[1]).resolve())
    print(f"==> Loki from {source}, starting in the background on {loki.base}", file=sys.stderr)
    for name, value in (("E2E_LOKI_URL", loki.base), ("E2E_LOKI_PID", loki.proc.pid),
                        ("E2E_LOKI_LOG", loki.log_path),
                        ("E2E_LOKI_STARTED", f"{loki.started_at:.3f}")):
        print(f"{name}={shlex.quote(str(value))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
