"""The queries of a Grafana dashboard as Grafana sends them: template variables at their defaults,
Grafana's own variables ($__rate_interval, ...) at the values it picks for the cluster's 15 s
scrape interval and a short time range. One place for both end-to-end checks: e2e.py (CI, a real
Prometheus and Loki on this machine) and scripts/e2e.sh (a user's cluster).

Standard library only, so that scripts/e2e.sh can run it with any python3:
  PYTHONPATH=verify python3 -m kindling_verify.observability.dashboard_queries \\
      prometheus|loki [REQUEST_ID] < dashboard.json
prints one query per line: panel title, refId and expression, separated by tabs. With
REQUEST_ID, a query that uses $request_id is printed a second time with it set.
"""

from __future__ import annotations

import json
import re
import sys

# $__rate_interval: Grafana makes it at least four scrape intervals (15 s in the cluster).
GRAFANA_VALUES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1m", "__auto": "1m"}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s",
                    "__range_ms", "__auto", "__all", "__dashboard", "__from", "__to", "__org",
                    "__user", "timeFilter", "__timeFilter"}
VARIABLE_REF = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)")


def variable_refs(text: str) -> set[str]:
    return {a or b or c for a, b, c in VARIABLE_REF.findall(text)}


def substitute(expr: str, values: dict[str, str]) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, m.group(0))
    return VARIABLE_REF.sub(repl, expr)


def panels(dash: dict):
    """Every panel, rows' nested panels included."""
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def variable_defaults(dash: dict) -> dict[str, str]:
    """Each template variable's default as a query would see it ("All" -> its allValue)."""
    out = {}
    for v in dash.get("templating", {}).get("list", []):
        cur = v.get("current", {}).get("value", "")
        if isinstance(cur, list):
            cur = cur[0] if len(cur) == 1 else "(" + "|".join(cur) + ")"
        if cur == "$__all":
            cur = v.get("allValue") or ".*"
        out[v["name"]] = cur
    return out


def queries(dash: dict, datasource_type: str, request_id: str | None = None) -> list[tuple[dict, dict, str]]:
    """(panel, target, expression as Grafana sends it) for every target of that datasource type;
    with `request_id`, a query using $request_id comes a second time with it set."""
    values = dict(variable_defaults(dash), **GRAFANA_VALUES)
    out = []
    for panel in panels(dash):
        for target in panel.get("targets", []):
            ds = (target.get("datasource") or panel.get("datasource") or {}).get("type")
            if ds != datasource_type:
                continue
            out.append((panel, target, substitute(target["expr"], values)))
            if request_id is not None and "request_id" in variable_refs(target["expr"]):
                out.append((panel, target, substitute(target["expr"], dict(values, request_id=request_id))))
    return out


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[0] not in ("prometheus", "loki"):
        print(__doc__, file=sys.stderr)
        return 2
    for panel, target, expr in queries(json.load(sys.stdin), argv[0], argv[1] if len(argv) == 2 else None):
        print("\t".join((panel["title"], target["refId"], " ".join(expr.split()))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
