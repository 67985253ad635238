"""Every dashboard query and rule against a Prometheus that scraped the real kindling API
(target/debug/kindling) after a known mix of requests, and every LogQL query against the real
Loki the API shipped its logs to (e2e.py). One run; each part is a test."""

from __future__ import annotations

import pytest

from kindling_verify.helpers import built_kindling, required_test_tool
from kindling_verify.observability import e2e


@pytest.fixture(scope="module")
def failures(loki, tmp_path_factory) -> dict[str, list[str]]:
    work = tmp_path_factory.mktemp("e2e")
    return e2e.run(built_kindling(), work, loki, report_path=work / "e2e-report.json")


def test_promtool_check_metrics_finds_nothing_in_the_api_exposition(failures):
    assert not failures["exposition"]


def test_request_mix_produces_every_status(failures):
    assert not failures["traffic"]


def test_every_dashboard_query_executes_and_returns_series(failures):
    assert not failures["dashboards"]


def test_every_rule_executes_on_metrics_the_api_exports(failures):
    assert not failures["rules"]


def test_database_outage_shows_in_db_up_alert_and_5xx_ratio(failures):
    assert not failures["outage"]


def test_recorded_series_are_still_scraped(failures):
    assert not failures["recorded series"]


def test_loki_returns_the_probe_request_and_every_dashboard_logql_query(failures):
    required_test_tool("loki")
    assert not failures["logql"]


def test_a_promtool_finding_on_the_exposition_is_a_failure():
    """check_exposition itself, on a counter without the _total suffix and on a clean one."""
    found = []
    e2e.check_exposition(b"# HELP foo a counter\n# TYPE foo counter\nfoo 1\n", found.append)
    e2e.check_exposition(b"# HELP foo_total a counter\n# TYPE foo_total counter\nfoo_total 1\n", found.append)
    assert len(found) == 1 and 'should have "_total" suffix' in found[0], found
