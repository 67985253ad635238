"""Log lines of known content, planted in the real Loki, for the checks of the queries that
need lines the end-to-end run cannot produce on demand: reloads of the dev loop, requests
slower than a threshold, a request with SQL events.

The lines have the shape the API writes (one JSON object per line, event fields at the top
level; events inside a request carry the request span in `span` and `spans`) and go to Loki
with the stream labels the API's shipper uses (core/src/telemetry/loki.rs) and the pod as
structured metadata. Each check plants into a namespace of its own, so nothing else in the
same Loki (the end-to-end run's lines) can answer its queries.

Also: finding a dashboard's queries by panel title, and running one the way Grafana does
(an instant query at the end of the range, or a range query with a step).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kindling_verify.helpers import required_test_tool
from kindling_verify.observability import dashboard_queries, lokilib, promlib

POD = "kindling-api-5f6d8c7b9d-plant1"


def iso(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Plant:
    """Lines to push into one fresh namespace."""

    namespace: str = field(default_factory=lambda: "plant-" + uuid.uuid4().hex[:8])
    lines: list[tuple[int, str, dict]] = field(default_factory=list)  # (ns, level, JSON object)

    def event(self, t_ns: int, level: str, target: str, message: str, span: dict | None = None,
              **fields) -> dict:
        obj = {"timestamp": iso(t_ns), "level": level.upper(), "message": message, **fields,
               "target": target}
        if span:
            obj["span"] = span
            obj["spans"] = [span]
        self.lines.append((t_ns, level, obj))
        return obj

    def request(self, t_ns: int, request_id: str, route: str, status: int, latency_ms: float,
                sql: int = 1) -> None:
        """One request as the API logs it: `sql` statements by sqlx inside the request span,
        then the access line."""
        span = {"request_id": request_id, "method": "GET", "route": route, "name": "request"}
        for i in range(sql):
            self.event(t_ns - (sql - i) * 1000, "debug", "sqlx::query", "summary",
                       span=span, **{"db.statement": f"SELECT id, name FROM items -- {i}",
                                     "rows_returned": 1})
        self.event(t_ns, "info", "kindling::access", "request completed", request_id=request_id,
                   method="GET", route=route, path=route.replace("<id>", "7"), status=status,
                   latency_ms=latency_ms)

    def reload(self, t_ns: int, build_id: str, compile_ms: int, stage_ms: int,
               edit_to_live_ms: int) -> None:
        self.event(t_ns, "info", "kindling::dev", "dev reload", build_id=build_id,
                   compile_ms=compile_ms, stage_ms=stage_ms, edit_to_live_ms=edit_to_live_ms)

    def push(self, loki: lokilib.Loki) -> None:
        """One push with a stream per level, as the API's shipper sends them."""
        streams: dict[str, list] = {}
        for t_ns, level, obj in sorted(self.lines, key=lambda x: x[0]):
            streams.setdefault(level, []).append([str(t_ns), json.dumps(obj, separators=(",", ":")),
                                                  {"pod": POD}])
        body = {"streams": [{"stream": {"app": "kindling-api", "namespace": self.namespace,
                                        "environment": "ci", "level": level}, "values": values}
                            for level, values in streams.items()]}
        req = urllib.request.Request(f"{loki.base}/loki/api/v1/push", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 204, f"Loki push answered {r.status}"

    def json_lines(self, pred) -> set[str]:
        """The pushed lines whose object satisfies `pred`, as Loki returns them."""
        return {json.dumps(obj, separators=(",", ":")) for _, _, obj in self.lines if pred(obj)}


# --------------------------------------------------------------------------- dashboards

def dashboard(uid: str) -> dict:
    for dash in promlib.dashboards().values():
        if dash["uid"] == uid:
            return dash
    raise AssertionError(f"no dashboard with uid {uid}")


def panel(dash: dict, title_start: str) -> dict:
    found = [p for p in dashboard_queries.panels(dash) if p.get("title", "").startswith(title_start)]
    assert len(found) == 1, f"{dash['uid']}: {len(found)} panels titled {title_start!r}..."
    return found[0]


def target(p: dict, ref: str = "A") -> dict:
    return next(t for t in p["targets"] if t["refId"] == ref)


def run_query(loki: lokilib.Loki, t: dict, values: dict, start_ns: int, end_ns: int,
              step_s: int) -> list[dict]:
    """The target's expression with `values` substituted, run as Grafana runs it: an instant
    query at end_ns (over [$__range] = the whole window), else a range query."""
    expr = dashboard_queries.substitute(t["expr"], values)
    if t.get("queryType") == "instant":
        start_ns = end_ns
    data, err = loki.query_range(expr, start_ns, end_ns, step_s)
    assert err is None, f"Loki refused {expr}: {err}"
    return data["result"]


def window(start_ns: int, end_ns: int) -> str:
    return f"{(end_ns - start_ns) // 10**9 + 1}s"


def ready(loki: lokilib.Loki | None) -> lokilib.Loki:
    """The suite's Loki (conftest.py), once ready; without one the test skips (or fails
    with KINDLING_REQUIRE_LOKI)."""
    required_test_tool("loki")
    # wait_ready's timeout counts from Loki's start, which may be minutes ago by now.
    timeout = time.time() - loki.started_at + 60
    assert loki.wait_ready(timeout) is not None, f"Loki not ready: {loki.log_tail()}"
    return loki


def push_and_wait(loki: lokilib.Loki, plant: Plant, start_ns: int) -> int:
    """Pushes the planted lines; returns the end of a window that holds them all."""
    plant.push(loki)
    end_ns = time.time_ns() + 10**9
    wait_indexed(loki, plant, start_ns)
    return end_ns


def wait_indexed(loki: lokilib.Loki, plant: Plant, start_ns: int) -> None:
    """Pushed lines are queryable at once in practice; wait briefly all the same."""
    expr = f'{{app="kindling-api", namespace="{plant.namespace}"}}'
    deadline = time.time() + 10
    while time.time() < deadline:
        data, _ = loki.query_range(expr, start_ns, time.time_ns())
        if data and lokilib.result_size(data)[1] >= len(plant.lines):
            return
        time.sleep(0.2)
    raise AssertionError(f"Loki did not return the {len(plant.lines)} planted lines in 10 s")
