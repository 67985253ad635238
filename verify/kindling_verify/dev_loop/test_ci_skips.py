"""CI never skips silently: with KINDLING_CI=1 the hook in kindling_verify/conftest.py turns a
skipped test or module into a failure that names the skip's reason; without it a skip stays a
skip. Run on a pytest session of its own, outside verify/, with the hook loaded as a plugin."""

from __future__ import annotations

import os
import subprocess
import sys

from kindling_verify.conftest import CI_ALLOWED_SKIPS, ci_allowed_skip

SKIPPING_TESTS = {
    "test_skips_in_test.py": "import pytest\n\ndef test_needs_a_tool():\n"
                             "    pytest.skip('no frobnicator on PATH')\n",
    "test_skips_in_fixture.py": "import pytest\n\n@pytest.fixture\ndef tool():\n"
                                "    pytest.skip('no unshare')\n\ndef test_uses_it(tool):\n    pass\n",
}
# A module that skips as a whole; its collection error stops the session, so it runs alone.
SKIPPING_MODULE = {"test_skips_module.py": "import pytest\n\npytest.skip('module needs docker', allow_module_level=True)\n"}


def run_pytest(tmp_path, files: dict[str, str], ci: bool) -> tuple[int, str]:
    """(exit status, output) of pytest on `files`, with the hook, KINDLING_CI=1 or unset."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = dict(os.environ)
    env.pop("KINDLING_CI", None)
    if ci:
        env["KINDLING_CI"] = "1"
    # -p loads the hook from the installed package; the run's rootdir is tmp_path.
    p = subprocess.run([sys.executable, "-m", "pytest", "-p", "kindling_verify.conftest", "-rA",
                        "-p", "no:cacheprovider", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    print(p.stdout[-4000:], p.stderr[-2000:])
    return p.returncode, p.stdout


def test_a_skipped_test_fails_under_kindling_ci_and_names_its_reason(tmp_path):
    status, out = run_pytest(tmp_path, SKIPPING_TESTS, ci=True)
    assert status == 1
    for reason in ("no frobnicator on PATH", "no unshare"):
        assert f"skipped in CI ({reason})" in out
    last = out.strip().splitlines()[-1]
    assert "skipped" not in last and "1 failed" in last and "1 error" in last, last


def test_a_skipped_module_fails_under_kindling_ci(tmp_path):
    status, out = run_pytest(tmp_path, SKIPPING_MODULE, ci=True)
    assert status != 0 and "skipped in CI (module needs docker)" in out


def test_without_kindling_ci_a_skip_stays_a_skip(tmp_path):
    status, out = run_pytest(tmp_path, SKIPPING_TESTS | SKIPPING_MODULE, ci=False)
    assert status == 0
    assert "3 skipped" in out.strip().splitlines()[-1]


def test_an_allowed_skip_is_matched_by_its_pattern_only(monkeypatch):
    monkeypatch.setitem(CI_ALLOWED_SKIPS, "kindling_verify/x/test_y.py::test_z[*", "a reason in words")
    assert ci_allowed_skip("kindling_verify/x/test_y.py::test_z[kind]") == "a reason in words"
    assert ci_allowed_skip("kindling_verify/x/test_y.py::test_other") is None
