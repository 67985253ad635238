"""The service's modules (src/ and core/src/) have no import cycle (so no two import each
other), neither between top-level modules nor between the files of one, core/ never reaches
into the routes' crate, and the check finds a cycle in fixture crates that have one and
reads every form of `use`. Also: the dev loop's shared library (dylib/) holds every
dependency the two crates have, so none is linked into the binary by mistake, and the dev
loop's binary (devbin/) compiles src/lib.rs with the same dependencies as the `kindling`
package."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from kindling_verify.architecture.modules import cycles, graph, mutual_imports, submodule_graph, use_paths
from kindling_verify.helpers import ROOT

TESTDATA = Path(__file__).parent / "testdata"
ROUTES_CRATE = ROOT / "src"
CORE_CRATE = ROOT / "core" / "src"
# The binary's allocator: the dynamically linked dev build does not install it (src/main.rs).
NOT_IN_DYLIB = {"mimalloc", "libmimalloc-sys"}


def test_the_service_modules_form_no_cycle(summary):
    edges = graph(ROUTES_CRATE, CORE_CRATE)
    assert {"config", "db", "error", "routes", "telemetry"} <= edges.keys()
    assert mutual_imports(edges) == []
    assert cycles(edges) == []
    summary(f"src/ + core/src/: {len(edges)} modules, {sum(map(len, edges.values()))} imports, no cycle")


def test_the_service_submodules_form_no_cycle(summary):
    edges = submodule_graph(ROUTES_CRATE, CORE_CRATE)
    # The document's assembly imports the handlers, so none of them may import it back; the
    # responses they share live below both.
    assert {"routes::health", "routes::items", "routes::users", "routes::responses"} <= edges["routes::openapi"]
    assert cycles(edges) == []
    summary(f"src/ + core/src/: {len(edges)} submodules, {sum(map(len, edges.values()))} imports, no cycle")


def test_grouped_imports_of_the_command_line_are_read():
    # core/src/cli.rs: `use crate::config::{self, Settings};` and `use crate::{db, telemetry};`,
    # of which the old `crate::(\w+)` regex saw only `config`.
    assert {"config", "db", "telemetry"} <= submodule_graph(ROUTES_CRATE, CORE_CRATE)["cli"]


def test_db_imports_neither_telemetry_nor_error():
    edges = graph(ROUTES_CRATE, CORE_CRATE)
    # db reports through its DbObserver trait, which telemetry implements.
    assert "telemetry" not in edges["db"]
    assert "error" not in edges["db"]


def test_core_holds_no_route_and_src_holds_only_the_entry_points():
    """Cargo already forbids core/ to import the routes' crate; this keeps the split where
    docs/architecture.md says it is: an edit to a handler recompiles src/ only."""
    routes_side = set(graph(ROUTES_CRATE))
    assert routes_side == {"allocator", "routes", "startup"}, routes_side
    assert not routes_side & set(graph(CORE_CRATE))


def test_the_dylib_links_every_dependency():
    def deps(manifest: Path) -> set[str]:
        return set(tomllib.loads(manifest.read_text())["dependencies"])

    wanted = (deps(ROOT / "Cargo.toml") | deps(ROOT / "core" / "Cargo.toml")) - NOT_IN_DYLIB
    wanted = {d for d in wanted if not d.startswith("kindling-")}
    assert deps(ROOT / "dylib" / "Cargo.toml") == wanted
    named = set(re.findall(r"^pub use (\w+);", (ROOT / "dylib" / "src" / "lib.rs").read_text(), re.M))
    assert named == {d.replace("-", "_") for d in wanted}


def test_the_dev_binary_compiles_the_library_with_its_dependencies():
    devbin = tomllib.loads((ROOT / "devbin" / "Cargo.toml").read_text())
    kindling = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert [b["path"] for b in devbin["bin"]] == ["../src/lib.rs"]
    assert set(devbin["dependencies"]) == set(kindling["dependencies"]) - NOT_IN_DYLIB
    assert devbin["features"] == kindling["features"]
    # The crate root it compiles has the entry point (`pub fn main`).
    assert re.search(r"^pub fn main\(\)", (ROUTES_CRATE / "lib.rs").read_text(), re.M)


def test_a_cycle_is_found_and_comments_are_not_imports():
    edges = graph(TESTDATA / "cycle" / "src")
    assert edges == {"a": {"b"}, "b": {"a", "c"}, "c": set()}
    assert mutual_imports(edges) == [("a", "b")]
    assert cycles(edges) == [["a", "b"]]


def test_a_cycle_between_submodules_is_found_and_a_parent_and_child_are_not_one():
    """routes/openapi.rs lists the handlers, routes/items.rs takes a response from it; routes/
    mod.rs re-exports routes/health.rs, which uses the parent's constant."""
    src = TESTDATA / "submodule_cycle" / "src"
    edges = submodule_graph(src)
    assert edges == {
        "routes": set(),
        "routes::health": set(),
        "routes::items": {"routes::openapi"},
        "routes::openapi": {"routes::health", "routes::items"},
    }
    assert cycles(edges) == [["routes::items", "routes::openapi"]]
    # One directory: the top-level graph cannot see it.
    assert graph(src) == {"routes": set()}


def test_every_form_of_use_is_read():
    edges = submodule_graph(TESTDATA / "grouped" / "src")
    assert edges["app::cli"] == {
        "config",  # crate::config::{self, Settings}
        "db",  # crate::{db, telemetry}
        "telemetry",
        "routes::items",  # pub use crate::{routes::{items::{self as item_routes}, users as people}, ...} over lines
        "routes::users",
        "error",
        "domain",  # pub(crate) use crate::domain::*
        "app::sibling",  # super::sibling::Helper
        "telemetry::metrics",  # crate::telemetry::metrics::endpoint() in a function
    }


def test_a_use_tree_expands_to_its_paths():
    tree = "crate::{config::{self, Settings as S}, routes::{items, users::{self}}}"
    assert list(use_paths(tree)) == [
        ("crate", "config"),
        ("crate", "config", "Settings"),
        ("crate", "routes", "items"),
        ("crate", "routes", "users"),
    ]
