#!/usr/bin/env python3
"""Request latency and resident memory of the API with Loki healthy, down and hanging.

A benchmark, not a test: it prints a table, asserts nothing. For each mode it
starts a release build of `kindling serve` against Postgres, points LOKI_URL at
a local receiver, drives load with wrk for a while, samples VmRSS every second
and reads the Loki counters from /metrics.

  modes:  off      no LOKI_URL (baseline)
          healthy  receiver answers 204 at once
          down     nothing listens on the port
          hanging  receiver accepts and reads, never answers

Usage: bench/loki_modes.py [--seconds 60] [--hanging-seconds 180] [--connections 8]
Needs: Docker (for Postgres, via verify/docker-setup.sh) or DATABASE_URL set, wrk
(apt-get install wrk), cargo.
"""

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "kindling")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """Loki push endpoint stand-in: 'healthy' answers 204, 'hanging' never answers."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            while len(buf) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[length:]
            if self.mode == "hanging":
                time.sleep(86400)
            conn.sendall(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def metric(base, name):
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


def wait_up(base, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/v1/health/ready", timeout=2)
            return
        except Exception:
            time.sleep(0.2)
    sys.exit(f"server at {base} did not become ready")


def parse_wrk(out):
    def ms(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    reqs = re.search(r"^\s*(\d+) requests in", out, re.M)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {
        "requests": int(reqs.group(1)) if reqs else 0,
        "rps": float(rate.group(1)) if rate else float("nan"),
        "p50": ms("50"),
        "p99": ms("99"),
    }


def run_mode(mode, seconds, connections, database_url):
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url, ROCKET_PORT=str(port),
               APP_ENVIRONMENT="bench", POD_NAMESPACE="bench")
    env.pop("RUST_LOG", None)  # the service default: one access line per request
    if mode == "healthy" or mode == "hanging":
        env["LOKI_URL"] = f"http://127.0.0.1:{Receiver(mode).port}"
    elif mode == "down":
        env["LOKI_URL"] = f"http://127.0.0.1:{free_port()}"
    else:
        env.pop("LOKI_URL", None)
    server = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, cwd="/tmp")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base)
        rss_start = rss_mib(server.pid)
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.wait(1.0):
                samples.append(rss_mib(server.pid))

        threading.Thread(target=sample, daemon=True).start()
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
             f"{base}/api/items?limit=10"],
            capture_output=True, text=True, check=True).stdout
        stop.set()
        result = parse_wrk(out)
        result.update(
            mode=mode, seconds=seconds, rss_start=rss_start,
            rss_max=max(samples) if samples else rss_start, rss_end=rss_mib(server.pid),
            delivered=metric(base, "kindling_loki_delivered_events_total"),
            dropped=metric(base, "kindling_loki_dropped_events_total"),
            queue=metric(base, "kindling_loki_queue_bytes"))
        server.terminate()
        started = time.time()
        server.wait(timeout=30)
        result["exit_s"] = time.time() - started
        return result
    finally:
        if server.poll() is None:
            server.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--hanging-seconds", type=int, default=180)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--modes", default="off,healthy,down,hanging")
    args = ap.parse_args()
    for tool in ("wrk", "cargo"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            sys.exit(f"{tool} not found (wrk: apt-get install wrk)")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)

    container = None
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        subprocess.run([os.path.join(ROOT, "verify", "docker-setup.sh")], check=True, stdout=subprocess.DEVNULL)
        pg_port = free_port()
        image = os.environ.get("KINDLING_TEST_POSTGRES_IMAGE", "local/postgres:test")
        container = subprocess.run(
            ["docker", "run", "-d", "--rm", "-e", "POSTGRES_PASSWORD=bench", "-p", f"{pg_port}:5432", image],
            capture_output=True, text=True, check=True).stdout.strip()
        database_url = f"postgres://postgres:bench@127.0.0.1:{pg_port}/postgres"
        deadline = time.time() + 60
        while subprocess.run([BIN, "migrate"], env=dict(os.environ, DATABASE_URL=database_url),
                             capture_output=True, cwd="/tmp").returncode != 0:
            if time.time() > deadline:
                sys.exit("Postgres did not come up")
            time.sleep(1)
    else:
        subprocess.run([BIN, "migrate"], env=dict(os.environ, DATABASE_URL=database_url), check=True,
                       capture_output=True, cwd="/tmp")
    try:
        rows = []
        for mode in args.modes.split(","):
            seconds = args.hanging_seconds if mode == "hanging" else args.seconds
            print(f"-- {mode}: {seconds} s of load with {args.connections} connections", file=sys.stderr)
            rows.append(run_mode(mode, seconds, args.connections, database_url))
    finally:
        if container:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)

    header = ("mode", "secs", "requests", "req/s", "p50 ms", "p99 ms", "RSS start MiB",
              "RSS max MiB", "RSS end MiB", "delivered", "dropped", "queue B", "SIGTERM→exit s")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join([
            r["mode"], str(r["seconds"]), str(r["requests"]), f"{r['rps']:.0f}", f"{r['p50']:.2f}",
            f"{r['p99']:.2f}", f"{r['rss_start']:.1f}", f"{r['rss_max']:.1f}", f"{r['rss_end']:.1f}",
            f"{r['delivered']:.0f}", f"{r['dropped']:.0f}", f"{r['queue']:.0f}", f"{r['exit_s']:.1f}",
        ]) + " |")
    baseline = next((r for r in rows if r["mode"] == "off"), None)
    if baseline:
        for r in rows:
            if r is not baseline:
                print(f"{r['mode']}: p50 ratio to off = {r['p50'] / baseline['p50']:.2f}")


if __name__ == "__main__":
    main()
