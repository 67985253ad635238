"""src/ has no import cycle between its modules (so no two import each other), and the
check finds one in a fixture crate that has."""

from __future__ import annotations

from pathlib import Path

from kindling_verify.architecture.modules import cycles, graph, mutual_imports
from kindling_verify.helpers import ROOT

FIXTURE = Path(__file__).parent / "testdata" / "cycle" / "src"


def test_the_service_modules_form_no_cycle(summary):
    edges = graph(ROOT / "src")
    assert {"config", "db", "error", "routes", "telemetry"} <= edges.keys()
    assert mutual_imports(edges) == []
    assert cycles(edges) == []
    summary(f"src/: {len(edges)} modules, {sum(map(len, edges.values()))} imports, no cycle")


def test_db_imports_neither_telemetry_nor_error():
    edges = graph(ROOT / "src")
    # db reports through its DbObserver trait, which telemetry implements.
    assert "telemetry" not in edges["db"]
    assert "error" not in edges["db"]


def test_a_cycle_is_found_and_comments_are_not_imports():
    edges = graph(FIXTURE)
    assert edges == {"a": {"b"}, "b": {"a", "c"}, "c": set()}
    assert mutual_imports(edges) == [("a", "b")]
    assert cycles(edges) == [["a", "b"]]
