"""The GitHub workflows pass workflow_lint.py (actionlint, yamllint, structure, expressions,
ShellCheck on run: blocks, no written-in checksums), its broken fixture gives exactly the
expected reports (actionlint's and yamllint's among them), and a checker that fails without
findings is reported."""

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


def test_a_checker_that_fails_without_findings_is_reported(tmp_path, monkeypatch):
    """actionlint crashing (exit 3, nothing on stdout) and yamllint refusing its config."""
    crash = tmp_path / "actionlint"
    crash.write_text("#!/bin/sh\necho 'actionlint: fatal: out of memory' >&2\nexit 3\n")
    crash.chmod(0o755)
    (tmp_path / ".yamllint").write_text("extends: no-such-config\n")
    monkeypatch.setenv("KINDLING_ACTIONLINT", str(crash))
    monkeypatch.setattr(workflow_lint, "ROOT", tmp_path)
    problems = workflow_lint.run([WORKFLOWS[0]])
    assert any(p.startswith("actionlint: exited 3 with 0 findings: actionlint: fatal") for p in problems), problems
    assert any(p.startswith("yamllint: exited ") for p in problems), problems
