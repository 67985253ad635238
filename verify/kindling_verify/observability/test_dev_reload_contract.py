"""What the Tiltfile must do for this concern, on the real Tilt (`tilt alpha tiltfile-result`,
through dev_loop/tilt_contract.py), on both clusters:

- the API's resource links to the "kindling / Requests" dashboard, and only where Grafana is
  deployed (not with --skip-observability);
- live update carries the build's figures to where tilt/dev-entrypoint.sh reads them, and
  only a new binary restarts the process (the figures alone must not).
"""

from __future__ import annotations

import re

import pytest

from kindling_verify.dev_loop import tilt_contract as tc
from kindling_verify.helpers import ROOT, required_test_tool
from kindling_verify.observability import planted

REQUESTS_LINK = "http://localhost:3000/d/" + planted.dashboard("kindling-requests")["uid"]


@pytest.fixture(scope="module")
def contract(tmp_path_factory) -> tc.Contract:
    return tc.Contract(required_test_tool("tilt"), tmp_path_factory.mktemp("tilt-dev-reload"))


def api(contract: tc.Contract, cluster: str, args=()) -> dict:
    r = contract.result(cluster, list(args))
    assert r.rc == 0, "\n".join(r.log[-20:])
    return r.manifests["kindling-api"]


@pytest.mark.parametrize("cluster", sorted(tc.CLUSTERS))
def test_api_links_to_its_slowest_requests_only_with_observability(contract, cluster):
    assert REQUESTS_LINK in tc.link_urls(api(contract, cluster))
    assert REQUESTS_LINK not in tc.link_urls(api(contract, cluster, ["--skip-observability"]))


def test_live_update_syncs_the_figures_and_restarts_on_the_binary_only(contract):
    (image,) = [it for it in api(contract, "kind").get("ImageTargets") or [] if it.get("LiveUpdateSpec")]
    spec = image["LiveUpdateSpec"]
    syncs = {s["localPath"]: s["containerPath"] for s in spec["syncs"]}
    entrypoint = (ROOT / "tilt" / "dev-entrypoint.sh").read_text()
    live_bin = re.search(r"^LIVE_BIN=(\S+)", entrypoint, re.M).group(1)
    figures = re.search(r"^LIVE_FIGURES=(\S+)", entrypoint, re.M).group(1)
    # tilt/stage-binary.sh writes the figures beside the binary in .dev-bin/.
    assert syncs == {".dev-bin/kindling": live_bin, ".dev-bin/dev-reload.env": figures}
    stage = (ROOT / "tilt" / "stage-binary.sh").read_text()
    assert '"$OUT/dev-reload.env"' in stage
    (restart,) = spec["execs"]
    assert restart["triggerPaths"] == [".dev-bin/kindling"]
