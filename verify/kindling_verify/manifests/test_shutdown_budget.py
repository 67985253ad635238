"""The API pod's shutdown budget (shutdown_budget.py) fits terminationGracePeriodSeconds in
every overlay, and the check fails when either side moves the wrong way."""

from __future__ import annotations

import pytest

from kindling_verify.manifests import shutdown_budget


@pytest.mark.parametrize("overlay", ["k8s/overlays/dev", "k8s/overlays/prod"])
def test_shutdown_fits_the_grace_period(overlay):
    assert shutdown_budget.check(overlay, shutdown_budget.render(overlay))


@pytest.mark.parametrize("variant", ["grace period 1 s shorter", "drain 1 s longer"])
def test_budget_check_rejects(variant):
    docs = shutdown_budget.render("k8s/overlays/dev")
    assert not shutdown_budget.check(variant, shutdown_budget.broken_variants(docs)[variant])
