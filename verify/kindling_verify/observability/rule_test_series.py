"""The promtool rule tests must feed series the API really exports, not hand-typed ones.

k8s/observability/prometheus/tests/scraped-series.txt is recorded by the end-to-end test
(e2e.py --record-series) from what a real Prometheus stored after scraping the real API
through the shipped relabel rules: one series per line, for every API metric the rules name,
with `instance` (a random port here) dropped. e2e.py also checks on every run that each
recorded series is still scraped, so a renamed metric or label breaks the run.

This check (no Prometheus needed) holds the rule tests to that record: every input series
of an API metric in tests/*.yaml must be a recorded series, label for label. Only `pod` may
differ, so that a test can stand for several replicas. Cluster metrics (kube-state-metrics,
cAdvisor) come from fixtures, not the API, and are not checked here.

Test: test_static.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from kindling_verify.observability import promlib

TESTS_DIR = promlib.OBS / "prometheus" / "tests"
SERIES_FILE = TESTS_DIR / "scraped-series.txt"
# The one label a rule test may set to a value of its own: several pods of one Deployment.
FREE_LABELS = {"pod"}
# Prometheus sets it from the scraped address, a random port in the end-to-end test.
DROPPED_LABELS = {"instance"}

_SERIES = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*$", re.S)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_series(text: str) -> tuple[str, dict[str, str]]:
    """'name{a="x", b="y"}' -> ('name', {'a': 'x', 'b': 'y'})."""
    m = _SERIES.match(text)
    if not m:
        raise ValueError(f"not a series: {text!r}")
    body, labels, pos = m.group(2) or "", {}, 0
    while pos < len(body.rstrip()):
        lm = _LABEL.match(body, pos)
        if not lm:
            raise ValueError(f"bad label list in {text!r}")
        labels[lm.group(1)] = lm.group(2)
        pos = lm.end()
    return m.group(1), labels


def format_series(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def api_metric_names() -> set[str]:
    """Metrics the rules read from the API: every name in a rule expression that is neither
    a recording rule's output nor a cluster metric."""
    names = set()
    for rf in sorted(promlib.RULES_DIR.glob("*.yaml")):
        for group in yaml.safe_load(rf.read_text())["groups"]:
            for rule in group["rules"]:
                names |= promlib.promql_metric_names(rule["expr"])
    return {n for n in names if ":" not in n and n not in promlib.CLUSTER_METRICS}


def load_recorded(path: Path = SERIES_FILE) -> set[str]:
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    return {format_series(*parse_series(ln)) for ln in lines if ln and not ln.startswith("#")}


def key(name: str, labels: dict[str, str]) -> str:
    """A series with the free labels blanked, for matching."""
    return format_series(name, {k: ("*" if k in FREE_LABELS else v) for k, v in labels.items()})


def test_series() -> list[tuple[str, str, str]]:
    """(file, test name, series) for every input series of the rule tests."""
    out = []
    for tf in sorted(TESTS_DIR.glob("*.yaml")):
        for test in yaml.safe_load(tf.read_text())["tests"]:
            for s in test.get("input_series", []):
                out.append((tf.name, test["name"], " ".join(s["series"].split())))
    return out


def failures() -> list[str]:
    recorded = {key(*parse_series(s)) for s in load_recorded()}
    api_names = api_metric_names()
    recorded_names = {parse_series(s)[0] for s in load_recorded()}
    found, checked = [], 0
    for missing in sorted(api_names - recorded_names):
        found.append(f"{SERIES_FILE.name} has no series of {missing}, which the rules read: "
                        "re-record it (e2e.py --record-series)")
    for fname, test, series in test_series():
        name, labels = parse_series(series)
        if name not in api_names:
            continue
        checked += 1
        if key(name, labels) not in recorded:
            found.append(f"{fname} '{test}': {series} is not a series the API exports "
                            f"(see {SERIES_FILE.name}; only {sorted(FREE_LABELS)} may differ)")
    for f in found:
        print(f"FAIL {f}")
    print(f"rule-test series: {checked} input series of {sorted(api_names)} checked against "
          f"{len(recorded)} recorded series, {len(found)} failures")
    return found
