"""Stand-ins for the cluster-side scrape targets that cannot run on a CI machine.

- KubeletAndKsm serves, on one port, what kube-state-metrics (/metrics) and the kubelet's
  cAdvisor (/metrics/cadvisor) would report for the kindling API's pod. Metric names and label
  names follow kube-state-metrics v2 and cAdvisor as embedded in the kubelet; CPU and memory
  are the real usage of a process on this machine (the API under test), so rate() sees a
  genuine counter. These are fixtures: they prove the queries' label joins and PromQL, not
  that the cluster exports the same values.

Logs go to the real Loki (lokilib.py); the Rust tests keep their own push receiver for the
failure modes a real Loki cannot be made to show.
"""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _proc_usage(pid: int) -> tuple[float, int]:
    """(cpu seconds, resident bytes) of a process, from /proc."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        rss = int(open(f"/proc/{pid}/statm").read().split()[1]) * PAGE
        return cpu, rss
    except (OSError, ValueError, IndexError):
        return 0.0, 0


class _Server:
    def __init__(self, handler_cls):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output readable
        pass


class KubeletAndKsm(_Server):
    def __init__(self, *, namespace: str, pod: str, container: str, pid: int, node: str):
        self.namespace, self.pod, self.container, self.pid, self.node = (
            namespace, pod, container, pid, node)
        super().__init__(_KubeletHandler)

    def ksm(self) -> str:
        ns, pod, c = self.namespace, self.pod, self.container
        p = f'namespace="{ns}",pod="{pod}",container="{c}",uid="0b7c3c1e-e2e0"'
        lines = [
            "# TYPE kube_pod_container_resource_requests gauge",
            f'kube_pod_container_resource_requests{{{p},node="{self.node}",resource="cpu",unit="core"}} 0.1',
            f'kube_pod_container_resource_requests{{{p},node="{self.node}",resource="memory",unit="byte"}} 134217728',
            "# TYPE kube_pod_container_resource_limits gauge",
            f'kube_pod_container_resource_limits{{{p},node="{self.node}",resource="cpu",unit="core"}} 0.5',
            f'kube_pod_container_resource_limits{{{p},node="{self.node}",resource="memory",unit="byte"}} 268435456',
            "# TYPE kube_pod_container_status_restarts_total counter",
            f"kube_pod_container_status_restarts_total{{{p}}} 0",
            "# TYPE kube_pod_container_status_waiting_reason gauge",
            f'kube_pod_container_status_waiting_reason{{{p},reason="CrashLoopBackOff"}} 0',
            "# TYPE kube_deployment_status_replicas_available gauge",
            f'kube_deployment_status_replicas_available{{namespace="{ns}",deployment="kindling-api"}} 1',
            "# TYPE kube_horizontalpodautoscaler_status_desired_replicas gauge",
            f'kube_horizontalpodautoscaler_status_desired_replicas{{namespace="{ns}",horizontalpodautoscaler="kindling-api"}} 2',
            "# TYPE kube_horizontalpodautoscaler_status_current_replicas gauge",
            f'kube_horizontalpodautoscaler_status_current_replicas{{namespace="{ns}",horizontalpodautoscaler="kindling-api"}} 2',
            "# TYPE kube_horizontalpodautoscaler_spec_max_replicas gauge",
            f'kube_horizontalpodautoscaler_spec_max_replicas{{namespace="{ns}",horizontalpodautoscaler="kindling-api"}} 5',
        ]
        return "\n".join(lines) + "\n"

    def cadvisor(self) -> str:
        cpu, rss = _proc_usage(self.pid)
        ns, pod, c = self.namespace, self.pod, self.container
        cid = f'id="/kubepods/burstable/pod0b7c3c1e/{c}",image="kindling-api:dev",name="{c}"'
        lines = [
            "# TYPE container_cpu_usage_seconds_total counter",
            f'container_cpu_usage_seconds_total{{container="{c}",{cid},namespace="{ns}",pod="{pod}"}} {cpu}',
            # Pod-level cgroup: container="" (the dashboards exclude it).
            f'container_cpu_usage_seconds_total{{container="",id="/kubepods/burstable/pod0b7c3c1e",'
            f'image="",name="",namespace="{ns}",pod="{pod}"}} {cpu}',
            "# TYPE container_memory_working_set_bytes gauge",
            f'container_memory_working_set_bytes{{container="{c}",{cid},namespace="{ns}",pod="{pod}"}} {rss}',
            # A family the kubelet job's metric_relabel_configs must drop.
            "# TYPE container_fs_reads_total counter",
            f'container_fs_reads_total{{container="{c}",{cid},device="/dev/vda",namespace="{ns}",pod="{pod}"}} 1',
        ]
        return "\n".join(lines) + "\n"


class _KubeletHandler(_Quiet):
    def do_GET(self):
        owner = self.server.owner
        path = self.path.split("?")[0]
        if path == "/metrics/cadvisor":
            body = owner.cadvisor()
        elif path in ("/metrics", "/custom-metrics"):
            body = owner.ksm()
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
