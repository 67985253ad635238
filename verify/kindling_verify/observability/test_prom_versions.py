"""prom_versions.py flags exactly the PromQL that could mean something else on Prometheus 3."""

from kindling_verify.observability.prom_versions import duration_seconds, has_unescaped_dot, version_problems


def test_durations_parse_and_non_durations_do_not():
    assert duration_seconds("1h30m") == 5400 and duration_seconds("5x") is None


def test_escaped_and_bracketed_dots_are_literal():
    assert not has_unescaped_dot(r"5[.]\.x") and has_unescaped_dot("kindling-api-.*")


def test_a_regex_on_a_newline_free_label_and_a_long_window_pass():
    assert version_problems('rate(x{status=~"5.."}[1m])', 15) == []
    assert version_problems("rate(x[$__rate_interval]) + max_over_time(y[1h:5m])", 15) == []


def test_a_window_shorter_than_four_scrapes_is_reported():
    assert len(version_problems("rate(x[30s])", 15)) == 1


def test_a_dot_on_a_label_that_may_hold_a_newline_is_reported():
    assert len(version_problems('x{route=~"/api/.*"}', 15)) == 1
