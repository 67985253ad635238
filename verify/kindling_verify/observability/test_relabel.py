"""The shipped relabel rules, run by a real Prometheus on hand-written discovery results
(relabel.py)."""

from kindling_verify.observability import relabel


def test_relabelling_keeps_renames_and_drops_the_right_targets():
    assert not relabel.run()
