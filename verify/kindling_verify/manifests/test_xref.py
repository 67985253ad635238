"""How the rendered objects fit together (xref.py): each overlay, kind-config.yaml with the
observability render, and the broken fixtures that must give exactly the violations their
.expected files list, so that every check can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from kindling_verify.helpers import ROOT, kustomize, yaml_documents
from kindling_verify.manifests import xref

TESTDATA = Path(__file__).parent / "testdata"


def violations(report: xref.Report) -> str:
    return "\n".join(f"[{check}] {obj}: {msg}" for check, obj, msg in report.violations)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_objects_fit_together(overlay):
    report, m, flows = xref.run_checks(yaml_documents(kustomize(f"k8s/overlays/{overlay}")), xref.PROFILES[overlay])
    print(f"manifest-xref ({overlay}): {len(report.violations)} violations; {len(m.docs)} objects, "
          f"{len(m.workloads)} pod templates, {flows} permitted flows")
    assert not report.violations, violations(report)


def test_platform_exposes_nothing_beyond_the_laptop():
    """kind's port mappings on 127.0.0.1 only, and a Grafana that does not reach for the internet."""
    docs = yaml_documents((ROOT / "kind-config.yaml").read_text()) + yaml_documents(kustomize("k8s/observability"))
    report, mappings = xref.check_platform(docs)
    print(f"manifest-xref (platform): {mappings} kind port mappings, {len(xref.GRAFANA_OFFLINE_ENV)} Grafana settings")
    assert not report.violations, violations(report)


# The checker must also fail when it should: a deliberately broken manifest, the dev render
# held to prod's rules (Tilt-built image, no backup flows), and a broken platform.
SELF_TESTS = {
    "broken-manifest": ("dev", lambda: (TESTDATA / "xref-broken.yaml").read_text(), "xref-broken.expected"),
    "dev-as-prod": ("prod", lambda: kustomize("k8s/overlays/dev"), "xref-dev-as-prod.expected"),
    "platform": (None, lambda: (TESTDATA / "xref-platform-broken.yaml").read_text(), "xref-platform-broken.expected"),
}


@pytest.mark.parametrize("case", sorted(SELF_TESTS))
def test_broken_fixture_reports_exactly_the_expected_violations(case):
    profile, text, expected = SELF_TESTS[case]
    docs = yaml_documents(text())
    report = xref.check_platform(docs)[0] if profile is None else xref.run_checks(docs, xref.PROFILES[profile])[0]
    n_expected, problems = xref.unmatched(report, TESTDATA / expected)
    print(f"{case}: {len(report.violations)} violations reported for {n_expected} expected patterns")
    assert not problems, "\n".join(problems)
