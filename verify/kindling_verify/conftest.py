"""For every suite: the figures a test records with the `summary` fixture (cases fuzzed, objects
validated, checks passed), printed at the run's end beside pytest's "N passed"; and CI's rule
that nothing skips silently.

With KINDLING_CI=1 (.ci/run sets it) a skipped test, or a skipped module, is reported as a
failure with the skip's reason, unless its node id matches an entry of CI_ALLOWED_SKIPS, which
gives the reason CI accepts that skip. Tests: dev_loop/test_ci_skips.py.
"""

from __future__ import annotations

import pytest

from kindling_verify.helpers import env_flag

# Node id (relative to verify/; a trailing * matches any rest, e.g. every parameter) -> why
# CI may skip it. Keep it short: every
# entry is a check CI does not make.
CI_ALLOWED_SKIPS: dict[str, str] = {
    # None today: Tilt, Loki and helm are required in CI (KINDLING_REQUIRE_*), CI runs as
    # root where `unshare -rn` works, and ../shared/data holds the upstream ingress manifest.
}


def ci_allowed_skip(nodeid: str) -> str | None:
    """The reason CI accepts a skip of `nodeid`, or None."""
    for pattern, reason in CI_ALLOWED_SKIPS.items():
        if nodeid == pattern or (pattern.endswith("*") and nodeid.startswith(pattern[:-1])):
            return reason
    return None


def _skip_reason(report) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return report.longrepr[2].removeprefix("Skipped: ")
    return str(report.longrepr or getattr(report, "wasxfail", ""))


def _fail_if_skipped_in_ci(report) -> None:
    if not report.skipped or not env_flag("KINDLING_CI") or ci_allowed_skip(report.nodeid):
        return
    reason = _skip_reason(report)
    report.outcome = "failed"
    report.longrepr = (f"{report.nodeid} skipped in CI ({reason}); KINDLING_CI=1 makes a skip a failure: "
                       "provide what it needs, or add it to CI_ALLOWED_SKIPS in kindling_verify/conftest.py "
                       "with the reason")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_if_skipped_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_if_skipped_in_ci(outcome.get_result())


@pytest.fixture
def summary(request):
    """summary(line): print `line` in the run's summary section."""
    return lambda line: request.node.user_properties.append(("summary", line))


def pytest_terminal_summary(terminalreporter):
    lines = [value for report in terminalreporter.getreports("passed") + terminalreporter.getreports("failed")
             for key, value in report.user_properties if key == "summary"]
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)
