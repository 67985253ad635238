"""The `dev reload` line in the real images, built by test_images.py's fixtures (imported
below, so the images and the test Postgres are the same as there): after a live update done
the way Tilt does it (the build's figures and the binary synced into /app/live, then
`kindling-dev --restart`), the dev image's API logs one `dev reload` line carrying the staged
build's figures, and an edit-to-live that runs from that build's start to the new process
being ready; its first start and a restart without a new sync log none. The production image
logs none."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from kindling_verify.dev_loop import test_images as images
from kindling_verify.helpers import ROOT, run, wait_for, wait_http

# That module's fixtures, used here under the same names (pytest finds them as attributes):
# the images, the test Postgres on its Docker network, the migrated database.
base_images, dev_image, postgres, migrated = images.base_images, images.dev_image, images.postgres, images.migrated
prod_image, docker = images.prod_image, images.docker
# Containers of this module's own: run as there, except that RUST_LOG is the service's default
# (an empty value), which is also the pod's, so that info lines such as `dev reload` show.
DEV = "kindling-check-dev-reload"
API = "kindling-check-api-reload"

STAGED = ROOT / ".dev-bin"
# Clocks of the host and the container are the same kernel's; this covers rounding and
# the moment between the process's liftoff and the probe that saw it ready.
SLACK_MS = 50


def log_events(container: str) -> list[dict]:
    """The container's JSON log lines (the message at the top level or under `fields`)."""
    p = docker("logs", container)
    events = []
    for line in (p.stdout + p.stderr).splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            events.append(dict(obj.get("fields") or {}, **obj))
    return events


def reloads(container: str) -> list[dict]:
    return [e for e in log_events(container) if e.get("message") == "dev reload"]


@pytest.fixture(scope="module")
def staged_figures(request) -> dict[str, str]:
    """The dev image built from a fresh staging: without the staged binary, the build stages
    it again and writes the figures that go with it (tilt/stage-binary.sh)."""
    (STAGED / "kindling").unlink(missing_ok=True)
    request.getfixturevalue("dev_image")
    text = (STAGED / "dev-reload.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_staged_figures_belong_to_the_staged_binary(staged_figures):
    crc = run(["cksum", STAGED / "kindling"]).stdout.split()[0]
    assert staged_figures["build_id"] == f"{int(crc):08x}"
    assert int(staged_figures["compile_ms"]) > 0 and int(staged_figures["stage_ms"]) >= 0


@pytest.fixture(scope="module")
def dev_api(staged_figures, dev_image, postgres):
    port = images.lib("run_api", DEV, dev_image, "--tmpfs", "/app/live:rw,exec,size=128m,uid=10001,gid=10001",
                      "-e", "MIGRATE_ON_START=true", "-e", "RUST_LOG=")
    yield port
    docker("rm", "-f", DEV, check=False)


@pytest.fixture(scope="module")
def prod_api(prod_image, migrated):
    port = images.lib("run_api", API, prod_image, "-e", "RUST_LOG=")
    yield port
    docker("rm", "-f", API, check=False)


def test_dev_image_logs_one_reload_line_per_live_update(staged_figures, dev_api):
    ready = f"http://127.0.0.1:{dev_api}/api/v1/health/ready"
    assert wait_http(ready, 60), "the dev image never became ready"
    assert reloads(DEV) == [], "the pod's first start is not a reload"

    # live_update's two syncs (tar -x from /), then its run step.
    tar = subprocess.run(["tar", "-C", str(STAGED), "-cf", "-", "--transform", "s|^|app/live/|",
                          "dev-reload.env", "kindling"], capture_output=True, check=True).stdout
    subprocess.run(["docker", "exec", "-i", DEV, "tar", "-C", "/", "-xf", "-"], input=tar, check=True)
    restart_ms = time.time() * 1000
    docker("exec", DEV, "/usr/local/bin/kindling-dev", "--restart")
    assert wait_http(ready, 30), "not ready after the restart"
    ready_ms = time.time() * 1000
    assert wait_for(lambda: reloads(DEV), 10), "no dev reload line after the live update"
    (line,) = reloads(DEV)
    print(json.dumps(line))
    assert (line["build_id"], line["compile_ms"], line["stage_ms"]) == (
        staged_figures["build_id"], int(staged_figures["compile_ms"]), int(staged_figures["stage_ms"]))
    started = int(staged_figures["build_started_unix_ms"])
    assert restart_ms - started - SLACK_MS <= line["edit_to_live_ms"] <= ready_ms - started + SLACK_MS

    # The figures went with that start only.
    docker("exec", DEV, "/usr/local/bin/kindling-dev", "--restart")
    assert wait_http(ready, 30), "not ready after the second restart"
    time.sleep(1)
    assert len(reloads(DEV)) == 1, "a restart without a new sync reported a reload"


def test_production_image_logs_no_reload_line(prod_api):
    assert wait_http(f"http://127.0.0.1:{prod_api}/api/v1/health/ready", 60)
    assert wait_for(lambda: any(e.get("message") == "start-up complete" for e in log_events(API)), 10)
    events = log_events(API)
    assert any(e.get("message") == "start-up complete" for e in events), "its log was not read"
    assert [e for e in events if e.get("message") == "dev reload"] == []
