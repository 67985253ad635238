"""tilt/build-binary.sh in host mode (Tilt's default on Linux) on a copy of the workspace,
edit after edit as Tilt runs it, each staged binary run with its staged libraries as the pod
runs it and asked over HTTP:

- an edit under src/ alone is compiled by rustc without cargo (the run tilt/rustc-wrapper.sh
  recorded) and the binary serves it;
- a warning is shown as cargo shows it, and the crate is compiled once, not once by the
  replay and again by cargo;
- a compile error shows rustc's own message and the next build goes through cargo again;
- an edit in core/, KINDLING_DEV_REPLAY=off, a changed cargo setting and a changed value of
  an environment variable that core/ reads (`option_env!("KINDLING_GIT_SHA")`) go through
  cargo, and the binary shows the change.

The copy and its target directory live in target/verify-host-build/ (the first run compiles
every dependency once; later runs reuse them).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from kindling_verify.helpers import ROOT, free_port, http, run, stop_process, wait_for

BASE = ROOT / "target" / "verify-host-build"
WORKSPACE = ["Cargo.toml", "Cargo.lock", "src", "core", "dylib", "devbin", "migrations", "tilt"]
HANDLER = Path("src") / "routes" / "health.rs"
EDIT_TARGET = "Json(Probe::ok(None))"
WITHOUT_CARGO = "compiled src/ with rustc alone"


@pytest.fixture(scope="module")
def copy():
    # One run at a time: a second run (another checkout's suite on the same machine) would
    # replace the copy and its recording under this one's feet. It waits here instead.
    BASE.mkdir(parents=True, exist_ok=True)
    with open(BASE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        src = BASE / "src"
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir()
        for item in WORKSPACE:
            # New modification times (copy, not copy2): the copy starts as an edited tree.
            if (ROOT / item).is_dir():
                shutil.copytree(ROOT / item, src / item, copy_function=shutil.copy)
            else:
                shutil.copy(ROOT / item, src / item)
        yield src


def build(copy: Path, **env: str):
    environ = {k: v for k, v in os.environ.items() if k not in ("KINDLING_DEV_REPLAY", "KINDLING_GIT_SHA")}
    environ.update(KINDLING_DEV_TARGET=str(BASE / "target"), **env)
    return run([copy / "tilt" / "build-binary.sh", "host"], cwd=copy, check=False, env=environ)


def edit_handler(copy: Path, replacement: str) -> None:
    original = (ROOT / HANDLER).read_text()
    assert original.count(EDIT_TARGET) == 1
    (copy / HANDLER).write_text(original.replace(EDIT_TARGET, replacement))


def mark(copy: Path, marker: str, *, with_warning: bool = False) -> None:
    """The liveness probe answers {"status":"ok","checks":{"edit":MARKER}}; with_warning adds
    an unused variable (rustc warns, the build succeeds)."""
    served = f'Json(Probe::ok(Some(json!({{"edit": "{marker}"}}))))'
    edit_handler(copy, f"{{ let unused_in_live = 1; {served} }}" if with_warning else served)


@contextmanager
def serving(copy: Path):
    """The staged binary as the pod runs it (`kindling serve`, the loader pointed at the staged
    libraries, as Dockerfile.dev's LD_LIBRARY_PATH does), with no Postgres listening: the pool
    connects lazily and the liveness probe does not touch it. Yields the base URL."""
    staged = copy / ".dev-bin"
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "LD_LIBRARY_PATH": str(staged / "lib"),
        "ROCKET_ADDRESS": "127.0.0.1",
        "ROCKET_PORT": str(port),
        "DATABASE_URL": f"postgres://kindling@127.0.0.1:{free_port()}/kindling",
        "RUST_LOG": "warn",
    }
    log = BASE / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([staged / "kindling", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_for(lambda: proc.poll() is not None or http("GET", f"{url}/api/v1/health/live")[0] == 200, 30, 0.05):
            pytest.fail(f"the staged binary did not answer in 30 s: {log.read_text()[-1500:]}", pytrace=False)
        assert proc.poll() is None, f"the staged binary exited {proc.returncode}: {log.read_text()[-1500:]}"
        # The libraries it runs with are the staged ones, not the build's.
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert f"{staged / 'lib'}/libkindling_dylib.so" in maps, "libkindling_dylib.so not loaded from .dev-bin/lib"
        yield url
    finally:
        stop_process(proc)


def served(copy: Path) -> tuple[str, str]:
    """(the liveness probe's edit marker, the git_sha label of kindling_build_info) of the
    staged binary."""
    with serving(copy) as url:
        status, body, _ = http("GET", f"{url}/api/v1/health/live")
        assert status == 200, body
        marker = json.loads(body).get("checks", {}).get("edit", "")
        status, metrics, _ = http("GET", f"{url}/metrics")
        assert status == 200, metrics
    sha = re.search(r'^kindling_build_info\{[^}]*git_sha="([^"]*)"', metrics.decode(), re.M)
    assert sha, "no kindling_build_info in /metrics"
    return marker, sha.group(1)


def serves(copy: Path, marker: str) -> bool:
    return served(copy)[0] == marker


def compiled_once_without_cargo(result) -> bool:
    return result.returncode == 0 and WITHOUT_CARGO in result.stdout and "Compiling" not in result.stderr


def settle(copy: Path, marker: str) -> None:
    """A successful build of an edit, through cargo or not: either way the next edit under
    src/ alone can be replayed."""
    mark(copy, marker)
    assert build(copy).returncode == 0


def test_an_edit_under_src_alone_is_compiled_without_cargo(copy):
    first = build(copy)
    assert first.returncode == 0
    assert WITHOUT_CARGO not in first.stdout, "the first build must go through cargo"

    mark(copy, "edit-one-7f3a")
    fast = build(copy)
    assert compiled_once_without_cargo(fast), "cargo ran"
    assert serves(copy, "edit-one-7f3a"), "the staged binary does not serve the edit"

    # A compile error: rustc's message as cargo shows it (not rustc's JSON), and the build
    # fails; the next build, once mended, goes through cargo.
    edit_handler(copy, "Json(Probe::ok(Nonee))")
    broken = build(copy)
    assert broken.returncode != 0
    assert "error[E0425]" in broken.stderr and '"$message_type"' not in broken.stderr + broken.stdout
    mark(copy, "edit-two-91c2")
    mended = build(copy)
    assert mended.returncode == 0 and WITHOUT_CARGO not in mended.stdout
    assert serves(copy, "edit-two-91c2")

    mark(copy, "edit-three-5d0e")
    again = build(copy)
    assert compiled_once_without_cargo(again)
    assert serves(copy, "edit-three-5d0e")


def test_a_warning_is_shown_and_the_edit_compiled_once(copy):
    settle(copy, "edit-settle-a16f")
    for marker in ("edit-warn-2b7d", "edit-warn-again-e05c"):
        mark(copy, marker, with_warning=True)
        warned = build(copy)
        assert compiled_once_without_cargo(warned), "the warning made cargo compile the crate again"
        # As cargo shows it without a terminal: rustc's text, no JSON, no colour codes.
        assert "warning: unused variable: `unused_in_live`" in warned.stderr
        assert "src/routes/health.rs" in warned.stderr
        assert '"$message_type"' not in warned.stderr and "\x1b[" not in warned.stderr
        assert serves(copy, marker)


def test_a_changed_environment_input_of_core_goes_through_cargo(copy):
    settle(copy, "edit-settle-7d21")
    assert served(copy)[1] == "unknown"

    mark(copy, "edit-sha-c3b0")
    with_sha = build(copy, KINDLING_GIT_SHA="abc1234")
    assert with_sha.returncode == 0 and WITHOUT_CARGO not in with_sha.stdout
    assert "Compiling kindling-core" in with_sha.stderr
    assert served(copy) == ("edit-sha-c3b0", "abc1234")

    # The same value again: nothing but src/ changed, so no cargo.
    mark(copy, "edit-sha-same-81aa")
    same = build(copy, KINDLING_GIT_SHA="abc1234")
    assert compiled_once_without_cargo(same)
    assert served(copy) == ("edit-sha-same-81aa", "abc1234")

    # Unset again is a change too.
    mark(copy, "edit-sha-unset-4f19")
    unset = build(copy)
    assert unset.returncode == 0 and WITHOUT_CARGO not in unset.stdout
    assert served(copy) == ("edit-sha-unset-4f19", "unknown")


def test_core_and_cargo_settings_go_through_cargo(copy):
    core_file = copy / "core" / "src" / "error.rs"
    core_file.write_text(core_file.read_text() + "\n// an edit in core/\n")
    mark(copy, "edit-four-0b6d")
    core_edit = build(copy)
    assert core_edit.returncode == 0
    assert WITHOUT_CARGO not in core_edit.stdout and "Compiling kindling-core" in core_edit.stderr
    assert serves(copy, "edit-four-0b6d")

    mark(copy, "edit-off-3e8a")
    off = build(copy, KINDLING_DEV_REPLAY="off")
    assert off.returncode == 0 and WITHOUT_CARGO not in off.stdout
    assert "Compiling kindling-devbin" in off.stderr
    assert serves(copy, "edit-off-3e8a")

    mark(copy, "edit-five-c41e")
    other_settings = build(copy, CARGO_TERM_COLOR="never")
    assert other_settings.returncode == 0 and WITHOUT_CARGO not in other_settings.stdout
    assert serves(copy, "edit-five-c41e")
