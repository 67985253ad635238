"""From a slow or failed request to its lines, against the real Loki: the API overview's latency
and error panels link to the "kindling / Requests" dashboard; its tables return exactly the
planted slow (or failed) requests of the route; a request_id (the table's link, the Loki
datasource's derived field) opens exactly the lines of that request, its SQL events included."""

from __future__ import annotations

import re
import time
import urllib.parse

import pytest
import yaml

from kindling_verify.observability import planted
from kindling_verify.observability.dashboard_queries import variable_refs
from kindling_verify.observability.promlib import DATASOURCES

ITEM = "/api/items/<id>"
ITEMS = "/api/items"
# What the latency panel's link passes: the p95 clicked, in seconds (its unit).
CLICKED_P95_S = "0.5"
# (request id, route, status, latency ms). The slow ones are above CLICKED_P95_S; "slow-item-1"
# is a prefix of "slow-item-10", so a substring match alone would mix their lines.
REQUESTS = ([(f"fast-item-{i}", ITEM, 200, 1.0 + i * 0.7) for i in range(12)]
            + [("slow-item-1", ITEM, 200, 812.5), ("slow-item-10", ITEM, 200, 640.0),
               ("slow-item-2", ITEM, 404, 501.25)]
            + [(f"fast-items-{i}", ITEMS, 201, 4.0 + i) for i in range(4)]
            + [("slow-items-1", ITEMS, 201, 930.0), ("fail-items-1", ITEMS, 500, 12.0),
               ("fail-items-2", ITEMS, 503, 2.5), ("fail-item-1", ITEM, 500, 7.0)])
BULK = 600


@pytest.fixture(scope="module")
def traffic(loki):
    loki = planted.ready(loki)
    plant = planted.Plant()
    start = time.time_ns() - 120 * 10**9
    for i, (rid, route, status, latency) in enumerate(REQUESTS):
        plant.request(start + (5 + 3 * i) * 10**9, rid, route, status, latency, sql=1 + i % 3)
    # More requests than Loki's 500 series per metric query: the tables must still list them.
    for i in range(BULK):
        plant.request(start + 100 * 10**9 + i * 10**7, f"bulk-{i}", ITEMS, 200, 2.0, sql=0)
    plant.event(start + 110 * 10**9, "info", "kindling::startup", "start-up complete")
    end = planted.push_and_wait(loki, plant, start)
    return loki, plant, start, end


def requests_dashboard() -> dict:
    return planted.dashboard("kindling-requests")


def rows(traffic, title: str, **variables) -> list[dict]:
    """The table's rows: one access line each, its columns the line's labels and its time."""
    loki, plant, start, end = traffic
    panel = planted.panel(requests_dashboard(), title)
    values = dict(namespace=plant.namespace, **variables)
    result = planted.run_query(loki, planted.target(panel), values, start, end, 15)
    return [dict(s["stream"], time_ns=int(t)) for s in result for t, _ in s["values"]]


def ids(table: list[dict]) -> set[str]:
    return {r["request_id"] for r in table}


def test_slowest_requests_of_a_route_are_exactly_the_planted_slow_ones(traffic):
    table = rows(traffic, "Slowest requests", route=ITEM, min_latency_s=CLICKED_P95_S)
    for r in sorted(table, key=lambda r: -float(r["latency_ms"])):
        print(f"{planted.iso(r['time_ns'])}  {r['route']}  {r['status']}  {r['latency_ms']} ms  {r['request_id']}")
    assert ids(table) == {rid for rid, route, _, ms in REQUESTS if route == ITEM and ms >= 500}
    # The table's columns, with the values the access lines carried, at the lines' times.
    _, plant, _, _ = traffic
    planted_lines = {o["request_id"]: (t, o) for t, _, o in plant.lines if o["target"] == "kindling::access"}
    for r in table:
        t, line = planted_lines[r["request_id"]]
        assert (r["time_ns"], r["route"], r["status"], float(r["latency_ms"])) == (
            t, line["route"], str(line["status"]), line["latency_ms"])


def test_every_route_with_no_threshold_lists_every_request_even_past_500(traffic):
    table = rows(traffic, "Slowest requests", route=".+", min_latency_s="0")
    assert ids(table) == {rid for rid, *_ in REQUESTS} | {f"bulk-{i}" for i in range(BULK)}


def test_failed_requests_are_exactly_the_planted_5xx(traffic):
    assert ids(rows(traffic, "Failed requests", route=".+")) == {
        rid for rid, _, status, _ in REQUESTS if status >= 500}
    assert ids(rows(traffic, "Failed requests", route=ITEMS)) == {"fail-items-1", "fail-items-2"}


def lines_of(plant: planted.Plant, rid: str) -> set[str]:
    return plant.json_lines(lambda o: o.get("request_id") == rid
                            or o.get("span", {}).get("request_id") == rid)


def returned_lines(streams: list[dict]) -> set[str]:
    return {line for s in streams for _, line in s["values"]}


@pytest.mark.parametrize("rid", ["slow-item-1", "fail-items-1"])
def test_request_lines_panel_returns_every_line_of_that_request_and_no_other(traffic, rid):
    loki, plant, start, end = traffic
    panel = planted.panel(requests_dashboard(), "Every line of request")
    got = returned_lines(planted.run_query(loki, planted.target(panel),
                                           {"namespace": plant.namespace, "request_id": rid},
                                           start, end, 15))
    want = lines_of(plant, rid)
    print(f"{rid}: {len(got)} lines")
    print("\n".join(sorted(got)))
    assert any('"target":"sqlx::query"' in line for line in want)
    assert got == want


def test_derived_field_links_each_request_line_to_exactly_its_request(traffic):
    """The Loki datasource's derived field: its regex finds the id in every line of a request
    (access line and SQL events alike), and its query returns exactly those lines."""
    loki, plant, start, end = traffic
    loki_ds = next(d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"] if d["uid"] == "loki")
    field = next(f for f in loki_ds["jsonData"]["derivedFields"] if f["name"] == "request_id")
    assert field["datasourceUid"] == "loki", "the link must open the lines in Loki itself"
    rid = "slow-item-1"
    for line in lines_of(plant, rid):
        assert re.search(field["matcherRegex"], line).group(1) == rid, line
    # Grafana reads `$$` in a provisioning file as a literal `$`.
    expr = field["url"].replace("$${__value.raw}", rid)
    assert "$" not in expr, f"variables left in the derived field's query: {expr}"
    data, err = loki.query_range(expr, start, end, 15)
    assert err is None, err
    assert returned_lines(data["result"]) == lines_of(plant, rid)


def link_query(url: str) -> dict[str, str]:
    path, _, query = url.partition("?")
    return {"path": path, **{k: v for k, v in urllib.parse.parse_qsl(query) if k.startswith("var-")}}


def test_request_id_column_links_to_that_requests_lines():
    dash = requests_dashboard()
    variables = {v["name"] for v in dash["templating"]["list"]}
    lines_panel = planted.panel(dash, "Every line of request")
    assert "request_id" in variable_refs(planted.target(lines_panel)["expr"])
    for title in ("Slowest requests", "Failed requests"):
        overrides = planted.panel(dash, title)["fieldConfig"]["overrides"]
        links = [link for o in overrides if o["matcher"]["options"] == "request_id"
                 for p in o["properties"] if p["id"] == "links" for link in p["value"]]
        assert len(links) == 1, f"{title}: request_id links {links}"
        q = link_query(links[0]["url"])
        assert q["path"] == f"/d/{dash['uid']}/requests" and q["var-request_id"] == "${__value.raw}"
        assert variable_refs(links[0]["url"]) - {"__value", "__url_time_range"} <= variables


@pytest.mark.parametrize("title, route_from, min_from", [
    ("Latency p50 / p95 / p99", ".+", "${__value.numeric}"),
    ("p95 latency by route", "${__field.labels.route}", "${__value.numeric}"),
    ("5xx ratio", ".+", "0"),
    ("Responses by status", ".+", "0"),
])
def test_latency_and_error_panels_link_to_the_requests_of_their_route(title, route_from, min_from):
    """Each link opens the requests dashboard with its variables: the route from the series
    (which the panel's query must group by), the clicked latency in the unit the threshold
    is in (seconds)."""
    panel = planted.panel(planted.dashboard("kindling-api-overview"), title)
    links = panel["fieldConfig"]["defaults"]["links"]
    assert len(links) == 1
    q = link_query(links[0]["url"])
    assert q["path"] == f"/d/{requests_dashboard()['uid']}/requests"
    assert (q["var-route"], q["var-min_latency_s"]) == (route_from, min_from)
    if "__field.labels.route" in route_from:
        assert all(re.search(r"by \([^)]*\broute\b", t["expr"]) for t in panel["targets"])
    if min_from == "${__value.numeric}":
        assert panel["fieldConfig"]["defaults"]["unit"] == "s"
    assert "${__url_time_range}" in links[0]["url"]
