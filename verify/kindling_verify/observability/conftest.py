"""The real Loki needs 15-20 s to become ready: it starts with the suite's first test, so
that its start overlaps the static checks, and the end-to-end test, which runs last, uses it.
Without a Loki binary nothing starts here; the LogQL test reports the skip, or fails when
KINDLING_REQUIRE_LOKI is set."""

from __future__ import annotations

import pytest

from kindling_verify.helpers import find_test_tool
from kindling_verify.observability import lokilib


@pytest.fixture(scope="package", autouse=True)
def loki(tmp_path_factory):
    binary, source = find_test_tool("loki")
    if binary is None:
        yield None
        return
    instance = lokilib.Loki.start(binary, tmp_path_factory.mktemp("loki"))
    print(f"Loki from {source}, starting in the background on {instance.base}")
    yield instance
    instance.stop()


def pytest_collection_modifyitems(items):
    """The end-to-end tests last, so that Loki's start overlaps everything before them."""
    items.sort(key=lambda item: item.module.__name__.endswith(".test_e2e"))
