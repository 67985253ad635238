"""Checks of k8s/observability that need no running service: the alert rules (promtool,
and their input series held to a real scrape), the scrape config (promtool, on a copy with
static targets instead of Kubernetes discovery, which Debian's promtool 2.42 lacks), and the
dashboards' structure and PromQL (dashboards.py)."""

from __future__ import annotations

import yaml

from kindling_verify.helpers import run, venv_tool
from kindling_verify.observability import dashboards, promlib, rule_test_series

PROM = promlib.OBS / "prometheus"


def test_promtool_check_rules():
    run([venv_tool("promtool"), "check", "rules", *sorted((PROM / "rules").glob("*.yaml"))])


def test_promtool_test_rules():
    run([venv_tool("promtool"), "test", "rules", *sorted((PROM / "tests").glob("*.yaml"))])


def test_rule_tests_feed_only_series_recorded_from_a_real_scrape():
    assert not rule_test_series.failures()


def test_scrape_config_syntax(tmp_path):
    copy = tmp_path / "prometheus-static.yaml"
    copy.write_text(yaml.safe_dump(promlib.syntax_only_copy(promlib.load_config()), sort_keys=False))
    run([venv_tool("promtool"), "check", "config", "--syntax-only", copy])


def test_dashboards_structure_datasources_and_promql():
    assert not dashboards.problems()
