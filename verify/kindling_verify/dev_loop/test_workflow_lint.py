"""The GitHub workflows pass workflow_lint.py (actionlint, yamllint, structure, expressions,
ShellCheck on run: blocks, no written-in checksums), and its broken fixture gives exactly
the expected reports."""

from __future__ import annotations

import pytest

from kindling_verify.dev_loop import workflow_lint
from kindling_verify.helpers import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_workflow_is_clean(workflow):
    problems = workflow_lint.run([workflow])
    assert not problems, "\n".join(problems)


def test_broken_workflow_reports_exactly_the_expected_problems():
    problems = workflow_lint.self_test()
    assert not problems, "\n".join(problems)
