"""What every suite's run prints at its end, beside pytest's "N passed": the figures a test
records with the `summary` fixture (cases fuzzed, objects validated, checks passed)."""

from __future__ import annotations

import pytest


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
