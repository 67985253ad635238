"""The platform's footprint (footprint.py): README.md states the sums of memory and CPU
requests and limits of what the Tiltfile deploys, and no memory limit sum may exceed what it
promises; the sums cover exactly the workloads the real Tilt deploys for each platform."""

from __future__ import annotations

import pytest

from kindling_verify.dev_loop import tilt_contract as tc
from kindling_verify.helpers import required_test_tool
from kindling_verify.observability import footprint


def test_readme_states_the_sums_and_no_limit_sum_exceeds_its_promise():
    problems = footprint.readme_problems()
    assert not problems, "\n".join(problems + ["(figures: scripts/footprint.sh)"])


def test_a_limit_sum_above_the_readme_promise_is_reported():
    """The check can fail: README's limit for the full kind platform lowered by 0.5 GiB."""
    text = footprint.README.read_text()
    rows = footprint.readme_table(text)
    cells = rows[("kind", False)]
    lowered = f"{float(cells[1].split()[0]) - 0.5:.2f} GiB"
    broken = text.replace(f"| kind, everything | {cells[0]} | {cells[1]} |",
                          f"| kind, everything | {cells[0]} | {lowered} |")
    assert broken != text
    problems = footprint.readme_problems(broken)
    assert any(p.startswith("kind, everything: memory limits sum to") for p in problems), problems


def test_a_pod_counts_as_kubernetes_counts_it():
    """The containers' sum, or a larger init container; a missing limit is named and its
    request stands in."""
    spec = {"initContainers": [{"name": "wait", "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                                             "limits": {"cpu": "1", "memory": "1Gi"}}}],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                                                        "limits": {"cpu": "500m", "memory": "512Mi"}}},
                           {"name": "b", "resources": {"requests": {"cpu": "100m", "memory": "90Mi"}}}]}
    requests, limits, unlimited = footprint.pod_resources(spec)
    assert requests == {"cpu": 1.0, "memory": 1024**3}
    assert limits == {"cpu": 1.0, "memory": 1024**3}
    assert unlimited == ["b"]
    spec["initContainers"] = []
    requests, limits, _ = footprint.pod_resources(spec)
    assert requests == {"cpu": 0.35, "memory": (256 + 90) * 1024**2}
    assert limits == {"cpu": 0.6, "memory": (512 + 90) * 1024**2}


@pytest.fixture(scope="module")
def contract(tmp_path_factory) -> tc.Contract:
    return tc.Contract(required_test_tool("tilt"), tmp_path_factory.mktemp("tilt-footprint"))


@pytest.mark.parametrize("cluster, skip", footprint.PLATFORMS,
                         ids=[footprint.platform_name(c, s).strip("`").replace("`", "") for c, s in footprint.PLATFORMS])
def test_the_sums_cover_exactly_what_tilt_deploys(contract, cluster, skip):
    r = contract.result(cluster, ["--skip-observability"] if skip else [])
    assert r.rc == 0, "\n".join(r.log[-20:])
    deployed = {f"{o['metadata'].get('namespace', 'default')}/{o['metadata']['name']}"
                for m in r.manifests.values() for o in tc.k8s_objects(m)
                if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")}
    running, jobs = footprint.platform(cluster, skip)
    ours = {f"{p.namespace}/{p.name}" for p in running + jobs
            if p.source not in {a[0] for a in footprint.MINIKUBE_ADDONS}}
    assert ours == deployed
