"""promql_windows.py flags exactly the range windows too short for the cluster's scrape interval."""

from kindling_verify.observability.promql_windows import duration_seconds, short_windows


def test_durations_parse_and_non_durations_do_not():
    assert duration_seconds("1h30m") == 5400 and duration_seconds("5x") is None


def test_rate_interval_long_windows_and_subqueries_pass():
    assert short_windows("rate(x[$__rate_interval]) + max_over_time(y[1h:5m]) + rate(z[1m])", 15) == []


def test_a_window_shorter_than_four_scrapes_is_reported():
    assert len(short_windows("rate(x[30s])", 15)) == 1


def test_a_window_that_is_no_duration_is_reported():
    assert len(short_windows("rate(x[$window])", 15)) == 1
