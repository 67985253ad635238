"""Tests of bench/benchlib.py's verdict: a full run that misses a target exits non-zero, a
quick run only fails on its nothing-lost checks. Standard library only, like benchlib:

  python3 -m unittest bench/test_benchlib.py      (bench/run.sh runs them first)
"""

import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402  (beside this file, not installed)

# Requests per second of a run that meets every target: GET ÷ pgbench read 0.30, ÷ additive
# ideal (1/(1/40000 + 1/60000) = 24000) 0.75, telemetry cost 1 − 18000/19000 = 0.053,
# POST ÷ pgbench insert 0.50.
MEETS_ALL = {
    "pgbench_read": 60000, "health": 40000, "get": 18000, "get_error_level": 19000,
    "list": 5000, "post": 4000, "put": 3000, "pgbench_insert": 8000,
}
RSS_MEETS_KIB = 14 * 1024


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


def workdir(root, mode, rps, rss_kib=RSS_MEETS_KIB, lost_lines=0):
    """The files bench/run.sh leaves for `report`, one repetition, with these figures."""
    for sub in ("rows", "instances"):
        os.makedirs(os.path.join(root, sub))
    write_json(os.path.join(root, "meta.json"), {
        "mode": mode, "reps": 1, "duration_s": 10, "connections": 32,
        "load_before": "0.1 0.1 0.1", "load_after": "1.9 1.5 0.8",
        "machine": {"nproc": 2, "cpu": "test"}, "versions": {"postgres": "postgres (PostgreSQL) 17"},
    })
    for name, value in rps.items():
        write_json(os.path.join(root, "rows", f"{name}.1.json"), {
            "requests": value * 10, "duration_us": 10_000_000, "rps": value, "errors": {},
            "latency_us": {"p50": 1000, "p99": 4000, "p999": 8000},
        })
    for label, level in (("error-level-1", "error"), ("full-1", "default")):
        served = 1000
        write_json(os.path.join(root, "instances", f"{label}.json"), {
            "label": label, "log_level": level, "ready_ms": 40, "rss_idle_kib": 9000,
            "rss_after_load_kib": rss_kib, "access_lines": served, "stdout_lines": served + 2,
            "loki_received": served + 2 - lost_lines,
        })
        with open(os.path.join(root, "instances", f"{label}.metrics"), "w") as f:
            f.write(f'http_requests_total{{route="/api/items/<id>",method="GET",status="200"}} {served}\n'
                    "kindling_loki_dropped_events_total 0\n")


class Verdict(unittest.TestCase):
    def report(self, mode, rps=MEETS_ALL, **figures):
        """(exit status, printed report, result JSON) of `report` on such a run."""
        with tempfile.TemporaryDirectory() as root:
            workdir(os.path.join(root, "work"), mode, rps, **figures)
            result = os.path.join(root, "result.json")
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                status = benchlib.report(os.path.join(root, "work"), result)
            with open(result) as f:
                return status, printed.getvalue(), json.load(f)

    def test_a_full_run_that_meets_every_target_passes(self):
        status, printed, result = self.report("full")
        self.assertEqual(status, 0, printed)
        self.assertTrue(all(t["met"] for t in result["targets"].values()), result["targets"])
        self.assertNotIn("FAIL", printed)

    def test_a_full_run_that_misses_a_target_fails_and_names_it(self):
        misses = {
            "get_vs_pgbench_read": {**MEETS_ALL, "pgbench_read": 80000},
            "get_vs_additive_ideal": {**MEETS_ALL, "health": 200000},
            "telemetry_cost": {**MEETS_ALL, "get_error_level": 21000},
            "post_vs_pgbench_insert": {**MEETS_ALL, "post": 3000},
        }
        for target, rps in misses.items():
            with self.subTest(target):
                status, printed, result = self.report("full", rps)
                self.assertEqual(status, 1, printed)
                self.assertIn(f"FAIL: target {target}", printed)
                self.assertFalse(result["targets"][target]["met"])
                missed = [k for k, t in result["targets"].items() if not t["met"]]
                self.assertEqual(missed, [target], "the figures were meant to miss one target")

    def test_a_full_run_over_the_memory_target_fails(self):
        status, printed, _ = self.report("full", rss_kib=17 * 1024)
        self.assertEqual(status, 1, printed)
        self.assertIn("FAIL: target rss_after_load_mib", printed)

    def test_a_row_missing_from_a_full_run_is_a_missed_target(self):
        rps = {k: v for k, v in MEETS_ALL.items() if k != "pgbench_insert"}
        status, printed, result = self.report("full", rps)
        self.assertEqual(status, 1, printed)
        self.assertIsNone(result["targets"]["post_vs_pgbench_insert"]["value"])

    def test_a_quick_run_does_not_count_targets(self):
        status, printed, result = self.report("quick", {**MEETS_ALL, "get_error_level": 21000})
        self.assertEqual(status, 0, printed)
        self.assertFalse(result["targets"]["telemetry_cost"]["met"])
        self.assertIn("not counted: telemetry_cost", printed)

    def test_a_lost_line_fails_a_quick_run_too(self):
        for mode in ("quick", "full"):
            with self.subTest(mode):
                status, printed, _ = self.report(mode, lost_lines=1)
                self.assertEqual(status, 1, printed)
                self.assertIn("FAIL: full-1: stdout lines == entries the Loki stand-in received", printed)


if __name__ == "__main__":
    unittest.main()
