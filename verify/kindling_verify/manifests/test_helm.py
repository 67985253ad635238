"""The Helm chart k8s/helm/kindling, checked by the real helm (KINDLING_HELM, else helm on
PATH; skipped without one, failed instead with KINDLING_REQUIRE_HELM=1):

- its versions are the crate's; `helm lint --strict` passes with every values file, and the
  packaged chart too;
- with the default values it renders the prod overlay (helm_compare.py), and the comparison
  itself reports a changed value, a Helm label in a selector and a missing object;
- Helm's standard labels are everywhere, except where a new chart version must change
  nothing; the migration hook runs after everything it reads;
- its renders (default values, and ci/external-database-values.yaml: an external database,
  another host, a Secret the chart creates) pass the checks every kustomization passes:
  kubernetes-validate, checkov, yamllint, the cross-references and the shutdown budget;
- bad values (testdata/helm-bad-values/, each naming the message it must give) fail both
  `helm lint` and `helm template`.
"""

from __future__ import annotations

import copy
import functools
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from kindling_verify.helpers import ROOT, kustomize, required_test_tool, run, venv_tool, yaml_documents
from kindling_verify.manifests import helm_compare, shutdown_budget, xref

# The same kubernetes-validate and checkov tests as every kustomization, collected here too:
# pytest gives them this module's `rendered` fixture, the chart's renders.
from kindling_verify.manifests.test_validators import test_checkov_passes, test_kubernetes_validate_strict  # noqa: F401

CHART = ROOT / "k8s" / "helm" / "kindling"
RELEASE, NAMESPACE = "kindling", "kindling"
BAD_VALUES = Path(__file__).parent / "testdata" / "helm-bad-values"
# Values files the chart must accept, by name: the defaults, and each file in ci/.
VALUES = {"default": None} | {p.stem: p for p in sorted((CHART / "ci").glob("*.yaml"))}
# The cross-reference profile of each render: the default one is the prod overlay's; with an
# external database there is no Postgres pod to reach and no backup, and the chart creates
# the database Secret (only the TLS Secret comes from outside).
PROFILES = {
    "default": xref.PROFILES["prod"],
    "external-database-values": xref.Profile(
        frozenset(f for f in xref.APP_FLOWS if f[1] != "postgres"), frozenset({"api-shop-example-org-tls"})),
}


@functools.cache
def helm() -> str:
    return required_test_tool("helm")


@functools.cache
def render_text(values_name: str) -> str:
    """`helm template` with one of VALUES, as YAML text; rendered once per run."""
    values = VALUES[values_name]
    return run([helm(), "template", RELEASE, CHART, "--namespace", NAMESPACE,
                *(["--values", values] if values else [])]).stdout


def render(values_name: str) -> list[dict]:
    return yaml_documents(render_text(values_name))


def crate_version() -> str:
    """The workspace's version in Cargo.toml, which every crate of the workspace takes."""
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]


def test_chart_and_app_version_are_the_crate_version():
    crate = crate_version()
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    print(f"Cargo.toml {crate}; Chart.yaml version {chart['version']}, appVersion {chart['appVersion']}")
    assert chart["version"] == chart["appVersion"] == crate


@pytest.mark.parametrize("values_name", sorted(VALUES))
def test_helm_lint_strict_passes(values_name):
    values = VALUES[values_name]
    p = run([helm(), "lint", "--strict", CHART, "--namespace", NAMESPACE, *(["--values", values] if values else [])])
    assert "1 chart(s) linted, 0 chart(s) failed" in p.stdout


def test_chart_packages_under_the_crate_version(tmp_path):
    """What a chart repository or an OCI registry would receive, linted as packaged."""
    crate = crate_version()
    run([helm(), "package", CHART, "--destination", tmp_path])
    package = tmp_path / f"kindling-{crate}.tgz"
    assert package.exists(), f"no {package.name} in {sorted(p.name for p in tmp_path.iterdir())}"
    run([helm(), "lint", "--strict", package, "--namespace", NAMESPACE])


def test_default_values_render_the_prod_overlay(summary):
    overlay = yaml_documents(kustomize("k8s/overlays/prod"))
    chart = render("default")
    problems, compared = helm_compare.compare(chart, overlay)
    line = (f"helm template (default values) {len(chart)} objects, kubectl kustomize k8s/overlays/prod "
            f"{len(overlay)} objects: {compared} compared field by field, {len(problems)} differences; "
            f"only in the overlay by design: {', '.join('/'.join(k) for k in helm_compare.OVERLAY_ONLY)}")
    print(line)
    summary(line)
    assert not problems, "\n".join(problems)


def changed_copy(docs: list[dict], kind: str, name: str, change) -> list[dict]:
    docs = copy.deepcopy(docs)
    change(next(d for d in docs if helm_compare.key(d) == (kind, name)))
    return docs


# The comparison must fail when it should: the overlay, with one change, against itself.
# (kind of the kindling-api object changed, the change, what must be reported.) No helm needed.
COMPARISON_SELF_TESTS = {
    "one value": (
        "HorizontalPodAutoscaler", lambda d: d["spec"].update(maxReplicas=11),
        ["HorizontalPodAutoscaler/kindling-api: spec.maxReplicas: chart 11, overlay 10"]),
    "a number written as a string": (
        "Service", lambda d: d["spec"]["ports"][0].update(port="80"),
        ["Service/kindling-api: spec.ports[0].port: chart '80', overlay 80"]),
    "a Helm label in a selector": (
        "PodDisruptionBudget", lambda d: d["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/instance": "kindling"}),
        ["PodDisruptionBudget/kindling-api: spec.selector.matchLabels.app.kubernetes.io/instance: "
         "only in the chart ('kindling')"]),
}


@pytest.mark.parametrize("case", sorted(COMPARISON_SELF_TESTS))
def test_comparison_reports_the_difference(case):
    overlay = yaml_documents(kustomize("k8s/overlays/prod"))
    kind, change, expected = COMPARISON_SELF_TESTS[case]
    problems, _ = helm_compare.compare(changed_copy(overlay, kind, "kindling-api", change), overlay)
    assert problems == expected


def test_comparison_reports_a_missing_object_and_ignores_only_helm_additions():
    overlay = yaml_documents(kustomize("k8s/overlays/prod"))
    chart = [d for d in copy.deepcopy(overlay) if helm_compare.key(d) != ("Service", "postgres-headless")]
    job = next(d for d in chart if d["kind"] == "Job")
    job["metadata"]["annotations"]["helm.sh/hook"] = "pre-install,pre-upgrade"
    job["metadata"]["labels"]["helm.sh/chart"] = "kindling-0.1.0"
    job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "Helm"
    problems, _ = helm_compare.compare(chart, overlay)
    assert problems == ["Service/postgres-headless: only in the overlay"]


@pytest.mark.parametrize("values_name", sorted(VALUES))
def test_every_object_carries_helms_standard_labels(values_name):
    """On objects and pod templates. Volume claim templates, which Kubernetes never lets
    change, and the Postgres pod, which a chart upgrade alone must not restart, carry only
    those that stay the same from one chart version to the next."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    stable = {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": RELEASE}
    per_version = {"helm.sh/chart": f"{chart['name']}-{chart['version']}",
                   "app.kubernetes.io/version": chart["appVersion"]}
    wrong = []
    for doc in render(values_name):
        for where, meta in helm_compare.metadatas(doc):
            labels = meta.get("labels") or {}
            unchanging = where == "volume claim template" or (doc["kind"], where) == ("StatefulSet", "pod template")
            want = stable | ({k: None for k in per_version} if unchanging else per_version)
            if {k: labels.get(k) for k in want} != want:
                wrong.append(f"{doc['kind']}/{doc['metadata']['name']} {where}: {labels}")
    assert not wrong, "\n".join(wrong)


def hook(obj: dict) -> tuple[set[str], int] | None:
    """(events, weight) of a Helm hook; None for an object of the release itself."""
    annotations = obj["metadata"].get("annotations") or {}
    if "helm.sh/hook" not in annotations:
        return None
    return set(annotations["helm.sh/hook"].split(",")), int(annotations.get("helm.sh/hook-weight", "0"))


@pytest.mark.parametrize("values_name", sorted(VALUES))
def test_migration_hook_runs_after_what_it_needs(values_name):
    """Helm runs pre-install/pre-upgrade hooks before it creates or updates the release's
    objects: what the migration Job reads then must be a hook of a lower weight, and a
    pre-install migration cannot wait for the bundled Postgres, which the release creates."""
    docs = {helm_compare.key(d): d for d in render(values_name)}
    job = docs["Job", "kindling-migrate"]
    events, weight = hook(job)
    pod = job["spec"]["template"]["spec"]
    containers = pod["initContainers"] + pod["containers"]
    needs = {("ServiceAccount", pod["serviceAccountName"])}
    needs |= {("ConfigMap", src["configMapRef"]["name"]) for c in containers for src in c.get("envFrom") or []}
    needs |= {("Secret", env["valueFrom"]["secretKeyRef"]["name"]) for c in containers for env in c.get("env") or []
              if "secretKeyRef" in (env.get("valueFrom") or {})}
    early = {e for e in events if e.startswith("pre-")}
    problems = []
    for need in sorted(needs & docs.keys()):
        dependency = hook(docs[need])
        if early and (dependency is None or not early <= dependency[0] or dependency[1] >= weight):
            problems.append(f"{'/'.join(need)} is not a hook on {sorted(early)} of a weight below {weight}: {dependency}")
    if "pre-install" in events and ("StatefulSet", "postgres") in docs:
        problems.append("a pre-install migration waits for Postgres, which the release creates only after it")
    print(f"{values_name}: kindling-migrate on {sorted(events)}, weight {weight}; needs {sorted(needs)}")
    assert not problems, "\n".join(problems)


@pytest.fixture(params=sorted(VALUES))
def rendered(request, tmp_path) -> Path:
    """One render of the chart, alone in a folder (checkov reads a folder)."""
    path = tmp_path / "render" / "rendered.yaml"
    path.parent.mkdir()
    path.write_text(render_text(request.param))
    return path


@pytest.mark.parametrize("values_name", sorted(VALUES))
def test_render_passes_yamllint(values_name, tmp_path):
    path = tmp_path / f"{values_name}.yaml"
    path.write_text(render_text(values_name))
    run([venv_tool("yamllint"), "-s", "-c", ROOT / ".yamllint", path])


@pytest.mark.parametrize("values_name", sorted(VALUES))
def test_render_objects_fit_together(values_name):
    # With the namespace as the README creates it (Pod Security labels included).
    namespace = yaml_documents((ROOT / "k8s" / "base" / "namespace.yaml").read_text())
    report, m, flows = xref.run_checks(namespace + render(values_name), PROFILES[values_name])
    print(f"manifest-xref (chart, {values_name}): {len(report.violations)} violations; {len(m.docs)} objects, "
          f"{len(m.workloads)} pod templates, {flows} permitted flows")
    assert not report.violations, "\n".join(f"[{c}] {o}: {msg}" for c, o, msg in report.violations)


@pytest.mark.parametrize("values_name", sorted(VALUES))
def test_render_shutdown_fits_the_grace_period(values_name):
    assert shutdown_budget.check(f"chart ({values_name})", render(values_name))


def expected_message(values: Path) -> str:
    match = re.match(r"# expect: (.+)\n", values.read_text())
    assert match, f"{values} starts with no '# expect: MESSAGE' line"
    return match.group(1)


@pytest.mark.parametrize("values", sorted(BAD_VALUES.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_values_fail_lint_and_template_with_the_reason(values):
    want = expected_message(values)
    for command in (["lint", "--strict", CHART], ["template", RELEASE, CHART]):
        p = run([helm(), *command, "--namespace", NAMESPACE, "--values", values], check=False)
        output = p.stdout + p.stderr
        assert p.returncode != 0, f"helm {command[0]} accepted {values.name}"
        assert want in output, f"helm {command[0]} did not say {want!r}:\n{output}"
