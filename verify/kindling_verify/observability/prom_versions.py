"""PromQL that means the same on Prometheus 2 (CI: Debian's 2.42) and 3 (the cluster: v3.5.0).

No Prometheus 3 binary is available here, so the end-to-end test runs every query on 2.42 only.
Prometheus 3 changed two things that can make the same query answer differently:

1. Range selectors are left-open: `x[5m]` evaluated at t holds the samples in (t-5m, t], not
   [t-5m, t]. A window loses at most the one sample that sits exactly on its left edge, so a
   query means the same on both when every window spans at least four scrape intervals: at
   least three samples remain, and rate()/increase() extrapolate to the window's edges either
   way. A shorter window can hold two samples on 2.x and one (no result) on 3.x.
   `$__rate_interval` qualifies when the Grafana datasource's `timeInterval` is the scrape
   interval: Grafana then makes it at least four of them.
2. In regex matchers `.` also matches a newline. That changes nothing for a label whose values
   cannot contain one; those labels are listed below, with the reason, and a regex with `.` on
   any other label is refused.

`version_problems(expr, scrape_interval_s)` lists where an expression breaks either rule.
"""

from __future__ import annotations

import re

# Labels whose values never contain a newline, and why.
NEWLINE_FREE_LABELS = {
    "status": "a three-digit HTTP status code (core/src/telemetry/metrics.rs)",
    "pod": "a Kubernetes object name (DNS subdomain)",
    "namespace": "a Kubernetes namespace name (DNS label)",
    "container": "a Kubernetes container name (DNS label)",
}

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
                   "y": 31536000}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
# A range or subquery selector: [5m], [$__rate_interval], [1h:5m]. Label matchers use {}.
_RANGE = re.compile(r"\[\s*([^\]:\s]+)\s*(?::[^\]]*)?\]")
_REGEX_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~)\s*"((?:[^"\\]|\\.)*)"')


def duration_seconds(text: str) -> float | None:
    """Seconds in a Prometheus duration such as 90s, 5m or 1h30m; None if it is not one."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)


def has_unescaped_dot(pattern: str) -> bool:
    """True when `.` appears as "any character": not escaped and not inside [...]."""
    escaped = in_class = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == ".":
            return True
    return False


def version_problems(expr: str, scrape_interval_s: float) -> list[str]:
    problems = []
    for window in _RANGE.findall(expr):
        if window == "$__rate_interval":
            continue
        seconds = duration_seconds(window)
        if seconds is None:
            problems.append(f"range [{window}] is neither a duration nor $__rate_interval")
        elif seconds < 4 * scrape_interval_s:
            problems.append(f"range [{window}] spans fewer than four {scrape_interval_s:g} s "
                            f"scrapes: Prometheus 3's left-open windows may leave one sample")
    for label, op, pattern in _REGEX_MATCHER.findall(expr):
        if has_unescaped_dot(pattern) and label not in NEWLINE_FREE_LABELS:
            problems.append(f'{label}{op}"{pattern}": `.` matches a newline on Prometheus 3 '
                            f"only, and {label!r} is not a label known to be newline-free")
    return problems
