"""The real Loki for the checks: found, started with the project's own loki.yaml, queried.

Loki is a test tool like promtool, never part of the project. It is found through
KINDLING_LOKI, then PATH (helpers.find_test_tool; `verify/unpack-test-tools.sh` provides it
in CI). The config is
k8s/observability/loki/loki.yaml itself; only what cannot be the cluster's here is overridden
with Loki's own command-line flags, which take precedence over the file: the `/loki` paths
(a scratch folder instead of the PVC) and the ports (free ones on 127.0.0.1 instead of
3100/9095 on all interfaces).

Loki needs 15-20 s to become ready on 2 cores, so `Loki.start` returns at once and
`wait_ready` is called when the caller has done its other setup.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from kindling_verify.helpers import free_port, stop_process
from kindling_verify.observability.promlib import OBS

LOKI_CONFIG = OBS / "loki" / "loki.yaml"


class Loki:
    """A Loki (-target=all) on 127.0.0.1, started here."""

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
        stop_process(self.proc)


def result_size(data: dict) -> tuple[int, int]:
    """(series or streams, samples or lines) in a query_range result."""
    result = data.get("result", [])
    return len(result), sum(len(s.get("values", [])) for s in result)
