"""Range windows long enough for the cluster's scrape interval.

The end-to-end test's Prometheus scrapes every second, so it cannot see a window that is too
short for the cluster, which scrapes every 15 s: a query over one or two of its scrapes returns
data in CI and nothing, or a jumpy rate, in the cluster. Prometheus 3's range selectors are
left-open (`x[w]` at t holds the samples in (t-w, t]), so a window of two scrapes may hold a
single sample, and rate() needs two. Every window of a dashboard or rule must therefore span at
least four scrape intervals. `$__rate_interval` qualifies when the Grafana datasource's
`timeInterval` is the scrape interval: Grafana then makes it at least four of them
(dashboards.py checks that setting).

`short_windows(expr, scrape_interval_s)` lists the windows of an expression that break this.
"""

from __future__ import annotations

import re

MIN_SCRAPES_PER_WINDOW = 4

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
                   "y": 31536000}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
# A range or subquery selector: [5m], [$__rate_interval], [1h:5m]. Label matchers use {}.
_RANGE = re.compile(r"\[\s*([^\]:\s]+)\s*(?::[^\]]*)?\]")


def duration_seconds(text: str) -> float | None:
    """Seconds in a Prometheus duration such as 90s, 5m or 1h30m; None if it is not one."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)


def short_windows(expr: str, scrape_interval_s: float) -> list[str]:
    problems = []
    for window in _RANGE.findall(expr):
        if window == "$__rate_interval":
            continue
        seconds = duration_seconds(window)
        if seconds is None:
            problems.append(f"range [{window}] is neither a duration nor $__rate_interval")
        elif seconds < MIN_SCRAPES_PER_WINDOW * scrape_interval_s:
            problems.append(f"range [{window}] spans fewer than {MIN_SCRAPES_PER_WINDOW} scrapes of "
                            f"{scrape_interval_s:g} s: a left-open window may hold a single sample")
    return problems
