"""Offline validation of every kustomization: it renders; kubernetes-validate --strict against
the Kubernetes version kind-config.yaml pins (unknown kinds count as failures: kindling uses no
CRDs); checkov (kubernetes framework, offline) with zero failures; yamllint -s with the
committed .yamllint."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest

from kindling_verify.helpers import ROOT, kubernetes_version, kustomize, run, venv_tool, yaml_documents

KUSTOMIZATIONS = {"dev": "k8s/overlays/dev", "prod": "k8s/overlays/prod", "observability": "k8s/observability"}


@pytest.fixture(params=sorted(KUSTOMIZATIONS))
def rendered(request, tmp_path) -> Path:
    """The render of one kustomization, alone in a folder (checkov reads a folder)."""
    text = kustomize(KUSTOMIZATIONS[request.param])
    counts = collections.Counter(d["kind"] for d in yaml_documents(text))
    print(f"render {KUSTOMIZATIONS[request.param]}: {sum(counts.values())} objects: "
          + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    path = tmp_path / "render" / "rendered.yaml"
    path.parent.mkdir()
    path.write_text(text)
    return path


def test_kubernetes_validate_strict(rendered):
    version = kubernetes_version()
    p = run([venv_tool("kubernetes-validate"), "--strict", "-k", version, rendered], check=False)
    lines = p.stdout.splitlines() + p.stderr.splitlines()
    valid = [x for x in lines if re.match(r"^INFO .* passed", x)]
    invalid = [x for x in lines if x.startswith("ERROR")]
    unknown = [x for x in lines if x.startswith("WARN")]
    print(f"kubernetes-validate --strict -k {version}: {len(valid)} valid, {len(invalid)} invalid, "
          f"{len(unknown)} unknown kinds")
    assert p.returncode == 0 and not invalid and not unknown and valid, "\n".join(invalid + unknown)


def test_checkov_passes(rendered):
    p = run([venv_tool("checkov"), "-d", rendered.parent, "--framework", "kubernetes", "--skip-download",
             "--compact", "--quiet"], check=False)
    summary = next((x for x in p.stdout.splitlines() if "Passed checks:" in x), "no summary line")
    print(f"checkov: {summary}")
    assert p.returncode == 0 and "Failed checks: 0," in summary, p.stdout[-4000:]


def test_yamllint_strict():
    fixtures = {p for ext in ("*.yaml", "*.yml") for p in (ROOT / "verify").glob(f"kindling_verify/*/testdata/**/{ext}")}
    # `*-broken.*` fixtures are wrong on purpose: the checks they feed expect findings.
    fixtures = {p for p in fixtures if "-broken." not in p.name}
    files = sorted({ROOT / "kind-config.yaml", ROOT / ".yamllint"}
                   | {p for ext in ("*.yaml", "*.yml") for p in (ROOT / "k8s").rglob(ext)}
                   | fixtures)
    run([venv_tool("yamllint"), "-s", "-c", ROOT / ".yamllint", *files])
    print(f"yamllint -s: {len(files)} files, 0 problems")
