"""Structural checks of the Grafana dashboards and their provisioning (no Grafana needed).

- every dashboard file is valid JSON with a unique, stable uid and a title;
- every datasource uid a panel or target names is defined in grafana/provisioning/datasources.yaml,
  with the matching type;
- panel ids are unique within a dashboard, every panel has a gridPos and at least one query;
- every $variable a query uses is a template variable of that dashboard or a Grafana builtin;
- LogQL queries select and group only on the labels the API sends to Loki (the static list
  below; e2e.py checks it again against the labels the running API
  actually pushed);
- the kustomization's grafana-dashboards generator ships exactly the JSON files in the folder;
- every range window of the dashboards' and rules' PromQL spans at least four of the cluster's
  scrape intervals (promql_windows.py: CI's Prometheus scrapes every second and cannot show a
  window that is too short). The Prometheus datasource's timeInterval must be the scrape
  interval, which that relies on for $__rate_interval.

Prints one line per dashboard and a summary; test_static.py fails on any finding.
"""

from __future__ import annotations

import yaml

from kindling_verify.observability.dashboard_queries import GRAFANA_BUILTINS, panels, variable_refs
from kindling_verify.observability.promlib import (
    DASHBOARDS_DIR,
    DATASOURCES,
    OBS,
    RULES_DIR,
    dashboards,
    load_config,
    logql_grouping_labels,
    logql_selectors,
)
from kindling_verify.observability.promql_windows import duration_seconds, short_windows

# The stream labels the API's Loki shipper attaches (core/src/telemetry/loki.rs); the pod's name
# is structured metadata, not a stream label.
API_LOKI_LABELS = {"app", "namespace", "environment", "level"}


def problems() -> list[str]:
    found: list[str] = []
    datasources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    sources = {d["uid"]: d["type"] for d in datasources}
    scrape_interval = duration_seconds(load_config()["global"]["scrape_interval"])
    for d in datasources:
        if d["type"] == "prometheus":
            time_interval = duration_seconds(d.get("jsonData", {}).get("timeInterval", ""))
            if time_interval != scrape_interval:
                found.append(f"datasources.yaml: {d['uid']} timeInterval is {time_interval} s, "
                                f"not the scrape interval {scrape_interval} s")
    seen_uids: dict[str, str] = {}
    n_panels = n_queries = 0

    for name, dash in dashboards().items():
        where = f"{name}"
        uid = dash.get("uid")
        if not uid or not dash.get("title"):
            found.append(f"{where}: missing uid or title")
        elif uid in seen_uids:
            found.append(f"{where}: uid {uid} also used by {seen_uids[uid]}")
        else:
            seen_uids[uid] = name
        variables = {v["name"] for v in dash.get("templating", {}).get("list", [])}
        ids: set[int] = set()
        for p in panels(dash):
            n_panels += 1
            pw = f"{where} panel {p.get('id')} '{p.get('title')}'"
            if p.get("type") == "row":
                continue
            if p.get("id") in ids:
                found.append(f"{pw}: duplicate panel id")
            ids.add(p.get("id"))
            if not isinstance(p.get("gridPos"), dict):
                found.append(f"{pw}: no gridPos")
            targets = p.get("targets") or []
            if not targets:
                found.append(f"{pw}: no queries")
            refs = [t.get("refId") for t in targets]
            if len(refs) != len(set(refs)):
                found.append(f"{pw}: duplicate refId")
            for t in targets:
                n_queries += 1
                ds = t.get("datasource") or p.get("datasource") or {}
                ds_uid, ds_type = ds.get("uid"), ds.get("type")
                if ds_uid not in sources:
                    found.append(f"{pw}: datasource uid {ds_uid!r} is not provisioned")
                    continue
                if ds_type and ds_type != sources[ds_uid]:
                    found.append(f"{pw}: datasource {ds_uid} is {sources[ds_uid]}, not {ds_type}")
                expr = t.get("expr", "")
                if not expr.strip():
                    found.append(f"{pw} {t.get('refId')}: empty expr")
                for var in variable_refs(expr) | variable_refs(t.get("legendFormat", "")):
                    if var not in variables and var not in GRAFANA_BUILTINS:
                        found.append(f"{pw} {t.get('refId')}: unknown variable ${var}")
                if sources[ds_uid] == "prometheus":
                    for problem in short_windows(expr, scrape_interval):
                        found.append(f"{pw} {t.get('refId')}: {problem}")
                if sources[ds_uid] == "loki":
                    used = {lbl for sel in logql_selectors(expr) for lbl, _, _ in sel}
                    used |= logql_grouping_labels(expr)
                    if not logql_selectors(expr):
                        found.append(f"{pw} {t.get('refId')}: no stream selector")
                    for lbl in sorted(used - API_LOKI_LABELS):
                        found.append(f"{pw} {t.get('refId')}: Loki label {lbl!r} is not one the API sends")
        for v in dash.get("templating", {}).get("list", []):
            for var in variable_refs(str(v.get("query", ""))):
                if var not in variables and var not in GRAFANA_BUILTINS:
                    found.append(f"{where} variable {v['name']}: unknown variable ${var}")
        print(f"dashboard {name}: uid={uid} panels={len(ids)} variables={sorted(variables)}")

    n_rules = 0
    for rf in sorted(RULES_DIR.glob("*.yaml")):
        for group in yaml.safe_load(rf.read_text())["groups"]:
            for rule in group["rules"]:
                n_rules += 1
                for problem in short_windows(rule["expr"], scrape_interval):
                    name = rule.get("alert") or rule.get("record")
                    found.append(f"{rf.name} {name}: {problem}")

    kustomization = yaml.safe_load((OBS / "kustomization.yaml").read_text())
    shipped = set()
    for gen in kustomization.get("configMapGenerator", []):
        if gen["name"] == "grafana-dashboards":
            shipped = {f.split("=")[-1] for f in gen.get("files", [])}
    on_disk = {str(p.relative_to(OBS)) for p in DASHBOARDS_DIR.glob("*.json")}
    for missing in sorted(on_disk - shipped):
        found.append(f"kustomization.yaml: {missing} is not in the grafana-dashboards generator")
    for extra in sorted(shipped - on_disk):
        found.append(f"kustomization.yaml: grafana-dashboards names missing file {extra}")

    for p in found:
        print(f"FAIL {p}")
    print(f"dashboards: {len(seen_uids)} dashboards, {n_panels} panels, {n_queries} queries, "
          f"{n_rules} rules checked for range windows, {len(found)} problems")
    return found
