"""The scripts that prove live update (scripts/e2e.sh on a real cluster, and the dev-loop
benchmark) edit the liveness handler by text substitution: the text they look for must be
in the handler, once, or the check fails on a user's first run instead of here."""

from __future__ import annotations

import pytest

from kindling_verify.helpers import ROOT

HANDLER = ROOT / "src" / "routes" / "health.rs"
EDIT_TARGET = "Json(Probe::ok(None))"


@pytest.mark.parametrize("script", ["scripts/e2e.sh", "scripts/bench-dev-loop.sh"])
def test_the_live_update_edit_finds_its_target(script):
    text = (ROOT / script).read_text()
    assert f"s|{EDIT_TARGET}|" in text, f"{script} no longer edits {EDIT_TARGET}"
    assert HANDLER.read_text().count(EDIT_TARGET) == 1, f"{EDIT_TARGET} must occur once in {HANDLER}"
