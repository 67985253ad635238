"""The Postgres helper the end-to-end test runs on refuses a cluster that is not UTF8, as the
Rust test harness does: the image initialised under LANG=C gives SQL_ASCII."""

from __future__ import annotations

import pytest

from kindling_verify.helpers import POSTGRES_IMAGE, Postgres


def test_a_cluster_that_is_not_utf8_is_refused():
    with pytest.raises(RuntimeError, match="server_encoding SQL_ASCII, not UTF8"):
        Postgres(POSTGRES_IMAGE, password="encoding", env={"LANG": "C", "LC_ALL": "C"})
