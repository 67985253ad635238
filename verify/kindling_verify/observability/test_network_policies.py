"""The NetworkPolicies of both namespaces together (kindling from the dev overlay, and
k8s/observability): the real renders must permit exactly the platform's flows, and a render
with a wrong Prometheus egress and Loki ingress (testdata/xref-observability-broken) must
give exactly the violations its .expected file lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from kindling_verify.helpers import kustomize, yaml_documents
from kindling_verify.manifests import xref

TESTDATA = Path(__file__).parent / "testdata"


def check_both_namespaces(observability_render: str) -> xref.Report:
    report, _, flows = xref.run_checks(yaml_documents(kustomize("k8s/overlays/dev")), xref.PROFILES["dev"],
                                       yaml_documents(observability_render))
    print(f"{len(report.violations)} violations, {flows} permitted flows")
    return report


def test_both_namespaces_permit_exactly_the_platforms_flows():
    report = check_both_namespaces(kustomize("k8s/observability"))
    assert not report.violations, "\n".join(f"[{c}] {o}: {m}" for c, o, m in report.violations)


@pytest.mark.parametrize("fixture", ["xref-observability-broken"])
def test_broken_render_reports_exactly_the_expected_violations(fixture):
    report = check_both_namespaces(kustomize(TESTDATA / fixture))
    _, problems = xref.unmatched(report, TESTDATA / f"{fixture}.expected")
    assert not problems, "\n".join(problems)
