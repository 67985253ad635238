"""tilt/build-binary.sh in host mode (Tilt's default on Linux) on a copy of the workspace,
edit after edit as Tilt runs it: an edit under src/ alone is compiled by rustc without
cargo (the run tilt/rustc-wrapper.sh recorded) and the staged binary carries it; a compile
error shows rustc's own message and the next build goes through cargo again; an edit in
core/, KINDLING_DEV_REPLAY=off and a changed cargo setting go through cargo.

The copy and its target directory live in target/verify-host-build/ (the first run compiles
every dependency once; later runs reuse them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kindling_verify.helpers import ROOT, run

BASE = ROOT / "target" / "verify-host-build"
WORKSPACE = ["Cargo.toml", "Cargo.lock", "src", "core", "dylib", "devbin", "migrations", "tilt"]
HANDLER = Path("src") / "routes" / "health.rs"
EDIT_TARGET = "Json(Probe::ok(None))"
WITHOUT_CARGO = "compiled src/ with rustc alone"


@pytest.fixture(scope="module")
def copy() -> Path:
    src = BASE / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for item in WORKSPACE:
        # New modification times (copy, not copy2): the copy starts as an edited tree.
        if (ROOT / item).is_dir():
            shutil.copytree(ROOT / item, src / item, copy_function=shutil.copy)
        else:
            shutil.copy(ROOT / item, src / item)
    return src


def build(copy: Path, **env: str):
    environ = {k: v for k, v in os.environ.items() if k != "KINDLING_DEV_REPLAY"}
    environ.update(KINDLING_DEV_TARGET=str(BASE / "target"), **env)
    return run([copy / "tilt" / "build-binary.sh", "host"], cwd=copy, check=False, env=environ)


def edit_handler(copy: Path, replacement: str) -> None:
    original = (ROOT / HANDLER).read_text()
    assert original.count(EDIT_TARGET) == 1
    (copy / HANDLER).write_text(original.replace(EDIT_TARGET, replacement))


def mark(copy: Path, marker: str) -> None:
    edit_handler(copy, f'Json(Probe::ok(Some(json!({{"edit": "{marker}"}}))))')


def staged(copy: Path) -> bytes:
    return (copy / ".dev-bin" / "kindling").read_bytes()


def test_an_edit_under_src_alone_is_compiled_without_cargo(copy):
    first = build(copy)
    assert first.returncode == 0
    assert WITHOUT_CARGO not in first.stdout, "the first build must go through cargo"

    mark(copy, "edit-one-7f3a")
    fast = build(copy)
    assert fast.returncode == 0
    assert WITHOUT_CARGO in fast.stdout
    assert "Compiling" not in fast.stderr, "cargo ran"
    assert b"edit-one-7f3a" in staged(copy), "the staged binary lacks the edit"

    # A compile error: rustc's message as cargo shows it (not rustc's JSON), and the
    # build fails; the next build, once mended, goes through cargo.
    edit_handler(copy, "Json(Probe::ok(Nonee))")
    broken = build(copy)
    assert broken.returncode != 0
    assert "error[E0425]" in broken.stderr and '"$message_type"' not in broken.stderr + broken.stdout
    mark(copy, "edit-two-91c2")
    mended = build(copy)
    assert mended.returncode == 0 and WITHOUT_CARGO not in mended.stdout
    assert b"edit-two-91c2" in staged(copy)

    mark(copy, "edit-three-5d0e")
    again = build(copy)
    assert again.returncode == 0 and WITHOUT_CARGO in again.stdout
    assert b"edit-three-5d0e" in staged(copy)


def test_core_and_cargo_settings_go_through_cargo(copy):
    core_file = copy / "core" / "src" / "error.rs"
    core_file.write_text(core_file.read_text() + "\n// an edit in core/\n")
    mark(copy, "edit-four-0b6d")
    core_edit = build(copy)
    assert core_edit.returncode == 0
    assert WITHOUT_CARGO not in core_edit.stdout and "Compiling kindling-core" in core_edit.stderr
    assert b"edit-four-0b6d" in staged(copy)

    mark(copy, "edit-off-3e8a")
    off = build(copy, KINDLING_DEV_REPLAY="off")
    assert off.returncode == 0 and WITHOUT_CARGO not in off.stdout
    assert "Compiling kindling-devbin" in off.stderr
    assert b"edit-off-3e8a" in staged(copy)

    mark(copy, "edit-five-c41e")
    other_settings = build(copy, CARGO_TERM_COLOR="never")
    assert other_settings.returncode == 0 and WITHOUT_CARGO not in other_settings.stdout
    assert b"edit-five-c41e" in staged(copy)
