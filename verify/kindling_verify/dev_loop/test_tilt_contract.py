"""The Tiltfile contract with the real Tilt (tilt_contract.py): the ingress-nginx cache,
every documented flag combination on both clusters, the automatic build mode, the context
guard, and the negative cases that show each check can fail."""

from __future__ import annotations

import json
import os

import pytest

from kindling_verify.dev_loop import tilt_contract as tc
from kindling_verify.helpers import ROOT, required_test_tool, run


@pytest.fixture(scope="module")
def tilt_binary() -> str:
    binary = required_test_tool("tilt")
    run([binary, "version"])
    return binary


@pytest.fixture(scope="module")
def contract(tilt_binary, tmp_path_factory) -> tc.Contract:
    return tc.Contract(tilt_binary, tmp_path_factory.mktemp("tilt-contract"))


# ---- the ingress-nginx cache, on a cache of its own that starts empty ----------------

@pytest.fixture(scope="module")
def cache_steps(tilt_binary, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("tilt-cache")
    (work / "home").mkdir()
    return tc.cache_steps(tc.Tilt(tilt_binary, work))


@pytest.mark.parametrize("step", ["tampered-download", "first-load", "offline", "tampered-cache", "shasum"])
def test_ingress_nginx_cache(cache_steps, step):
    if step == "tampered-download" and step not in cache_steps:
        pytest.skip(f"{tc.UPSTREAM_INGRESS} is missing: no upstream manifest to tamper with")
    passed, what, detail = cache_steps.get(step, (False, f"{step}: did not run (an earlier step failed)", ""))
    print(what)
    assert passed, f"{what}\n{detail}"


# ---- every documented flag combination, on both clusters ----------------------------

@pytest.mark.parametrize("skip_obs", [False, True], ids=["all", "skip-observability"])
@pytest.mark.parametrize("build", ["host", "docker", None], ids=["build-host", "build-docker", "build-auto"])
@pytest.mark.parametrize("cluster", sorted(tc.CLUSTERS))
def test_flag_combination(contract, cluster, build, skip_obs):
    v = tc.combination_violations(contract, cluster, build, skip_obs)
    r = contract.result(cluster, tc.flag_args(build, skip_obs))
    print(f"{len(r.manifests)} resources: " + " ".join(sorted(r.manifests)))
    assert not v, "\n".join(v)


def test_minikube_checks_report_kinds_resources(contract):
    """The minikube checks must be able to fail: the kind result read as if it were
    minikube's has every difference the Tiltfile makes."""
    kind_full = contract.result("kind")
    assert kind_full.rc == 0
    got = tc.check_minikube(kind_full) + tc.compare_clusters(kind_full, kind_full)
    assert any("resource ingress-nginx-controller exists" in g for g in got), got
    assert any("resource metrics-server exists" in g for g in got), got
    assert any("no minikube-addons resource" in g for g in got), got
    assert any("resources differ from kind's" in g for g in got), got


@pytest.mark.parametrize("cluster", sorted(tc.CLUSTERS))
def test_db_buttons_on_both_clusters(contract, cluster):
    r = contract.result(cluster)
    found = sorted(n for n in r.manifests if n.startswith("db-"))
    print(f"{cluster}: {' '.join(found)}")
    assert found == sorted(f"db-{verb}" for verb in tc.DB_VERBS)
    assert not tc.check_db_actions(r), tc.check_db_actions(r)


@pytest.mark.parametrize("cluster", sorted(tc.CLUSTERS))
def test_debug_flag_on_both_clusters(contract, cluster):
    """--debug: the whole contract still holds, with the debugger's parts added."""
    r = contract.result(cluster, ["--debug"])
    assert r.rc == 0, r.log[-5:]
    v = tc.check(r, cluster=cluster) + tc.check_header_map(r, ROOT / "Tiltfile", tc.CLUSTERS[cluster][1])
    v += tc.check_debug(r, debug=True)
    if cluster == "minikube":
        v += tc.compare_clusters(contract.result("kind", ["--debug"]), r)
    assert not v, "\n".join(v)


def test_debug_checks_report_what_is_missing(contract):
    """The kind result without --debug, read as if it were --debug's: all four parts missing."""
    got = tc.check_debug(contract.result("kind"), debug=True)
    assert len(got) == 4 and all(g.startswith("[debug] --debug lacks") for g in got), got


def test_db_checks_report_a_missing_or_automatic_button(contract):
    r = contract.result("kind")
    data = json.loads(json.dumps(r.data))
    data["Manifests"] = [m for m in data["Manifests"] if m["Name"] != "db-seed"]
    for m in data["Manifests"]:
        if m["Name"] == "db-reset":
            m["TriggerMode"] = 0
            m["DeployTarget"]["UpdateCmdSpec"]["args"] = ["scripts/db.sh", "drop"]
    objects = data["ObjectSet"]
    objects["tilt.dev/v1alpha1, Resource=uibuttons"]["db-restore-with-input"]["spec"]["requiresConfirmation"] = False
    del objects["tilt.dev/v1alpha1, Resource=cmds"]["db-snapshot-with-input"]
    got = tc.check_db_actions(tc.Result(0, data, []))
    assert "[db] no db-seed resource" in got, got
    assert any("db-reset has trigger mode 0" in g for g in got), got
    assert any("db-reset runs ['scripts/db.sh', 'drop']" in g for g in got), got
    assert any("db-restore-with-input: requiresConfirmation False" in g for g in got), got
    assert any("db-snapshot-with-input: 0 commands start on it" in g for g in got) and len(got) == 5, got


def test_header_map_reports_a_missing_and_a_phantom_edge(contract, tmp_path):
    text = (ROOT / "Tiltfile").read_text()
    wrong = tmp_path / "Tiltfile.wrong-map"
    wrong.write_text(text.replace("#   postgres, api-compile ─► kindling-migrate",
                                  "#   postgres ─► kindling-migrate\n#   redis ─► kindling-worker", 1))
    assert wrong.read_text() != text, "map line not found in the Tiltfile"
    got = tc.check_header_map(contract.result("kind"), wrong, frozenset(tc.MINIKUBE_ONLY))
    assert any("kindling-migrate: Tilt has resource_deps ['api-compile', 'postgres']" in g for g in got), got
    assert any("draws redis" in g for g in got) and len(got) == 3, got


@pytest.mark.parametrize("fake, script, want, say", [
    ("getconf", "echo 'glibc 2.42'", "docker", "host glibc 2.42 is newer"),
    ("getconf", f"echo 'glibc {tc.DEV_IMAGE_GLIBC}'", "host", None),
    ("uname", "echo Darwin", "docker", "Darwin host"),
], ids=["newer-glibc", "same-glibc", "macos"])
def test_automatic_build_mode(contract, fake, script, want, say):
    """Without --build, the host's libc and OS choose the mode, and Tilt's log says why."""
    bindir = tc.fake_bin(contract.tilt.work, fake, script)
    r = contract.tilt.run(["--skip-observability"], env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    mode = tc.compile_mode(r) if r.rc == 0 else f"error {r.rc}"
    assert mode == want, r.log
    assert say is None or any(say in line for line in r.log), r.log
    assert not r.warnings(), r.warnings()


def test_guard_accepts_kind_kindling_and_the_minikube_profile(contract):
    for cluster in ("kind", "minikube"):
        r = contract.result(cluster)
        assert r.rc == 0, f"{cluster}: {r.log[-3:]}"


GUARD_REFUSALS = {
    "other-context": lambda t: (t.write_kubeconfig("gke_prod_europe-west1_main"), "only targets kind-kindling"),
    "minikube-default-profile": lambda t: (t.write_minikube_kubeconfig(profile="minikube"),
                                           "only targets kind-kindling"),
    "kindling-without-cluster-info": lambda t: (t.write_kubeconfig(tc.MINIKUBE_PROFILE),
                                                "no cluster_info extension with provider"),
    "kindling-embedded-ca": lambda t: (t.write_minikube_kubeconfig(ca="embedded", tag="-embedded"),
                                       "certificate authority is embedded"),
    "kindling-ca-outside-minikube-home": lambda t: (
        t.write_minikube_kubeconfig(ca=str(t.work / "elsewhere" / "ca.crt"), tag="-elsewhere"),
        f"certificate authority is {t.work / 'elsewhere' / 'ca.crt'},"),
}


@pytest.mark.parametrize("case", list(GUARD_REFUSALS))
def test_guard_refuses_with_its_reason(contract, case):
    """Another context, minikube's default profile, and a `kindling` context without
    minikube's provenance (a remote cluster) are refused, each saying why."""
    kubeconfig, reason = GUARD_REFUSALS[case](contract.tilt)
    r = contract.tilt.run(kubeconfig=kubeconfig)
    assert r.rc != 0 and any("refusing to deploy" in line and reason in line for line in r.log), \
        f"rc={r.rc}; {r.log[-3:]}"


def test_broken_tiltfile_reports_exactly_the_expected_mistakes(contract):
    expected = [line.strip() for line in (tc.TESTDATA / "Tiltfile.broken.expected").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    r = contract.tilt.run(tiltfile=tc.TESTDATA / "Tiltfile.broken")
    got = tc.check(r, full=False) if r.rc == 0 else [f"[error] Tilt failed: {r.log[-3:]}"]
    missed = [e for e in expected if not any(e in g for g in got)]
    extra = [g for g in got if not any(e in g for e in expected)]
    print(f"Tiltfile.broken: {len(expected) - len(missed)}/{len(expected)} expected reports, {len(extra)} unexpected")
    assert not missed and not extra, "\n".join([f"missed: {m}" for m in missed] + [f"unexpected: {x}" for x in extra])
