"""Checks of k8s/observability that need no running service: the alert rules (promtool,
and their input series held to a real scrape), the scrape config as shipped (promtool; its
Kubernetes discovery is checked for syntax only, there is no API server here), the dashboards'
structure and PromQL (dashboards.py), and CI's Prometheus being the cluster's version."""

from __future__ import annotations

import re

import yaml

from kindling_verify.helpers import ROOT, run, venv_tool
from kindling_verify.observability import dashboards, promlib, rule_test_series

PROM = promlib.OBS / "prometheus"


def test_promtool_check_rules():
    run([venv_tool("promtool"), "check", "rules", *sorted((PROM / "rules").glob("*.yaml"))])


def test_promtool_test_rules():
    run([venv_tool("promtool"), "test", "rules", *sorted((PROM / "tests").glob("*.yaml"))])


def test_rule_tests_feed_only_series_recorded_from_a_real_scrape():
    assert not rule_test_series.failures()


def test_scrape_config_syntax():
    # --syntax-only: the kubelet job's token file exists only inside the cluster.
    run([venv_tool("promtool"), "check", "config", "--syntax-only", promlib.PROM_CONFIG])


def test_ci_runs_the_prometheus_version_the_cluster_runs():
    """The image tag of the cluster's Prometheus and the version of the binaries every query,
    rule test and scrape check here runs on (verify/install.sh) are the same release."""
    [deployment] = [d for d in yaml.safe_load_all((PROM / "deployment.yaml").read_text())
                    if d and d["kind"] == "Deployment"]
    [image] = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "prometheus"]
    for tool in ("prometheus", "promtool"):
        version = run([venv_tool(tool), "--version"]).stdout.splitlines()[0]
        print(f"{tool}: {version}; cluster image: {image}")
        found = re.search(r"version (\d+\.\d+\.\d+)", version)
        assert found and image.endswith(f":v{found.group(1)}"), f"{tool} reports {version!r}, the cluster runs {image}"


def test_ci_prometheus_checksums_are_read_at_run_time():
    """verify/install.sh checks the .debs against the suite's index as it is when it runs: a
    checksum written into the script would pin a file the testing suite may have replaced."""
    install = ROOT / "verify" / "install.sh"
    assert not re.findall(r"\b[0-9a-f]{64}\b", install.read_text()), f"{install} holds a written-in sha256"


def test_dashboards_structure_datasources_and_promql():
    assert not dashboards.problems()
