"""The API overview's view of the dev loop, against the real Loki: the "Dev reloads"
annotation and the "Dev loop" row return exactly the planted `dev reload` lines (the line
core/src/dev_reload.rs writes after a live update), with their figures, and nothing of the
lines around them that look alike."""

from __future__ import annotations

import re
import statistics
import time

import pytest

from kindling_verify.observability import planted

# (build id, compile ms, stage ms, edit-to-live ms): distinct values, an odd count so the
# median is one of them.
RELOADS = [("1a2b3c4d", 812, 47, 1107), ("5e6f7a8b", 1320, 52, 1690), ("9c0d1e2f", 760, 41, 1012),
           ("3a4b5c6d", 2950, 60, 3411), ("7e8f9a0b", 905, 44, 1230)]
STEP_S = 10  # Grafana's $__interval for the per-reload panel; reloads are 30 s apart


@pytest.fixture(scope="module")
def reloads(loki):
    loki = planted.ready(loki)
    plant = planted.Plant()
    start = time.time_ns() - 200 * 10**9
    for i, (build_id, compile_ms, stage_ms, e2l) in enumerate(RELOADS):
        t = start + (10 + 30 * i) * 10**9
        plant.reload(t, build_id, compile_ms, stage_ms, e2l)
        # Around each reload, lines that share words or the target with it.
        plant.event(t + 10**6, "info", "kindling::startup", "start-up complete")
        plant.request(t + 2 * 10**9, f"req-{i}", "/api/items", 200, 3.5)
    plant.event(start + 170 * 10**9, "warn", "kindling::dev", "dev reload figures ignored",
                error="compile_ms is missing")
    plant.event(start + 175 * 10**9, "info", "kindling::access", "request completed",
                request_id="dev-reload-lookalike", route="/api/items", status=404,
                path="/dev reload", latency_ms=2950.0, method="GET")
    end = planted.push_and_wait(loki, plant, start)
    return loki, plant, start, end


def values(plant: planted.Plant, start: int, end: int) -> dict:
    return {"namespace": plant.namespace, "__range": planted.window(start, end),
            "__interval": f"{STEP_S}s"}


def test_reload_annotation_returns_each_reload_with_its_figures(reloads):
    loki, plant, start, end = reloads
    annotation = next(a for a in planted.dashboard("kindling-api-overview")["annotations"]["list"]
                      if a["name"] == "Dev reloads")
    assert annotation["datasource"]["type"] == "loki" and annotation["enable"]
    streams = planted.run_query(loki, annotation, values(plant, start, end), start, end, STEP_S)
    lines = {line for s in streams for _, line in s["values"]}
    assert lines == plant.json_lines(lambda o: o["message"] == "dev reload")
    # What Grafana shows: the title and text with the labels the query extracted.
    def fill(fmt: str, labels: dict) -> str:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), "?"), fmt)

    shown = {(fill(annotation["titleFormat"], s["stream"]), fill(annotation["textFormat"], s["stream"]))
             for s in streams}
    print("\n".join(f"{title}: {text}" for title, text in sorted(shown)))
    assert shown == {(f"dev reload {b}", f"edit-to-live {e} ms (compile {c} ms, stage {s} ms)")
                     for b, c, s, e in RELOADS}


@pytest.mark.parametrize("ref, index", [("A", 3), ("B", 1)], ids=["edit-to-live", "compile"])
def test_dev_loop_row_plots_one_point_per_reload(reloads, ref, index):
    loki, plant, start, end = reloads
    dash = planted.dashboard("kindling-api-overview")
    panel = planted.panel(dash, "Edit-to-live and compile time per reload")
    result = planted.run_query(loki, planted.target(panel, ref), values(plant, start, end),
                               start, end, STEP_S)
    points = sorted({float(v) for series in result for _, v in series["values"]})
    print(f"{ref}: {points}")
    assert points == sorted(float(r[index]) for r in RELOADS)


@pytest.mark.parametrize("ref, index", [("A", 3), ("B", 1)], ids=["edit-to-live", "compile"])
def test_dev_loop_row_p50_over_the_range(reloads, ref, index):
    loki, plant, start, end = reloads
    panel = planted.panel(planted.dashboard("kindling-api-overview"), "p50 over the time range")
    result = planted.run_query(loki, planted.target(panel, ref), values(plant, start, end),
                               start, end, STEP_S)
    got = [float(series["values"][-1][1]) for series in result]
    assert got == [statistics.median(r[index] for r in RELOADS)]


def test_dev_loop_row_counts_the_reloads(reloads):
    loki, plant, start, end = reloads
    panel = planted.panel(planted.dashboard("kindling-api-overview"), "Reloads in the time range")
    result = planted.run_query(loki, planted.target(panel), values(plant, start, end),
                               start, end, STEP_S)
    assert [float(series["values"][-1][1]) for series in result] == [len(RELOADS)]


def test_dev_loop_panels_sit_in_the_dev_loop_row():
    dash = planted.dashboard("kindling-api-overview")
    top = dash["panels"]
    row = next(i for i, p in enumerate(top) if p["type"] == "row" and p["title"] == "Dev loop")
    after = {p["title"] for p in top[row + 1:]}
    assert {"Edit-to-live and compile time per reload", "p50 over the time range",
            "Reloads in the time range"} <= after
