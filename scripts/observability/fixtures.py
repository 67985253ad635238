"""Stand-ins for the cluster-side scrape targets that cannot run on a CI machine, and a Loki
push receiver.

- KubeletAndKsm serves, on one port, what kube-state-metrics (/metrics) and the kubelet's
  cAdvisor (/metrics/cadvisor) would report for the kindling API's pod. Metric names and label
  names follow kube-state-metrics v2 and cAdvisor as embedded in the kubelet; CPU and memory
  are the real usage of a process on this machine (the API under test), so rate() sees a
  genuine counter. These are fixtures: they prove the queries' label joins and PromQL, not
  that the cluster exports the same values.
- LokiReceiver accepts tracing-loki's pushes (snappy-compressed protobuf PushRequest, or
  Loki's JSON push format) and keeps every stream's labels and lines.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
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


# --------------------------------------------------------------------------- Loki receiver

def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A base-128 varint (snappy's length prefix, protobuf keys and lengths): (value, next pos)."""
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def snappy_block_decompress(buf: bytes) -> bytes:
    """Snappy's raw (block) format: a varint length, then literals and back-references."""
    length, pos = read_varint(buf, 0)
    out = bytearray()
    while pos < len(buf):
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(buf[pos:pos + extra], "little")
                pos += extra
            n += 1
            out += buf[pos:pos + n]
            pos += n
            continue
        if kind == 1:
            n = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | buf[pos]
            pos += 1
        elif kind == 2:
            n = 1 + (tag >> 2)
            offset = int.from_bytes(buf[pos:pos + 2], "little")
            pos += 2
        else:
            n = 1 + (tag >> 2)
            offset = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise ValueError("snappy: bad offset")
        for _ in range(n):  # byte by byte: copies may overlap their own output
            out.append(out[-offset])
    if len(out) != length:
        raise ValueError(f"snappy: expected {length} bytes, got {len(out)}")
    return bytes(out)


def _protobuf_fields(buf: bytes):
    """(field number, wire type, value) of one protobuf message; bytes for length-delimited."""
    pos = 0

    def varint():
        nonlocal pos
        value, pos = read_varint(buf, pos)
        return value

    while pos < len(buf):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, wire, varint()
        elif wire == 1:
            yield field, wire, buf[pos:pos + 8]
            pos += 8
        elif wire == 2:
            n = varint()
            yield field, wire, buf[pos:pos + n]
            pos += n
        elif wire == 5:
            yield field, wire, buf[pos:pos + 4]
            pos += 4
        else:
            raise ValueError(f"protobuf: wire type {wire}")


def parse_label_string(s: str) -> dict[str, str]:
    return {k: bytes(v, "utf-8").decode("unicode_escape")
            for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"', s)}


def decode_push_request(body: bytes) -> list[tuple[dict[str, str], list[str]]]:
    """logproto.PushRequest -> [(labels, [line, ...])]."""
    streams = []
    for field, _, stream in _protobuf_fields(body):
        if field != 1:
            continue
        labels, lines = {}, []
        for f, _, v in _protobuf_fields(stream):
            if f == 1:
                labels = parse_label_string(v.decode())
            elif f == 2:
                for ef, _, ev in _protobuf_fields(v):
                    if ef == 2:
                        lines.append(ev.decode())
        streams.append((labels, lines))
    return streams


class LokiReceiver(_Server):
    def __init__(self):
        self.lock = threading.Lock()
        self.streams: dict[tuple, list[str]] = {}
        self.pushes = 0
        self.errors: list[str] = []
        super().__init__(_LokiHandler)

    def add(self, labels: dict[str, str], lines: list[str]) -> None:
        with self.lock:
            self.streams.setdefault(tuple(sorted(labels.items())), []).extend(lines)

    def snapshot(self) -> list[tuple[dict[str, str], list[str]]]:
        with self.lock:
            return [(dict(k), list(v)) for k, v in self.streams.items()]


class _LokiHandler(_Quiet):
    def do_POST(self):
        owner = self.server.owner
        if self.path.split("?")[0] != "/loki/api/v1/push":
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            if "json" in self.headers.get("Content-Type", ""):
                for s in json.loads(body)["streams"]:
                    owner.add(s["stream"], [v[1] for v in s["values"]])
            else:
                for labels, lines in decode_push_request(snappy_block_decompress(body)):
                    owner.add(labels, lines)
            owner.pushes += 1
        except Exception as e:  # a malformed push is a finding, not a crash
            owner.errors.append(f"{type(e).__name__}: {e}")
            self.send_error(400)
            return
        self.send_response(204)
        self.end_headers()


def wait_for(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
