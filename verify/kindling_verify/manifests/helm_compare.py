"""The Helm chart (k8s/helm/kindling) with its default values against the prod overlay.

The overlay is the source of truth; the chart must render the same objects with the same
fields and values. What Helm adds is set aside before comparing, and nothing else:

  labels       helm.sh/chart, app.kubernetes.io/instance, app.kubernetes.io/version, and
               app.kubernetes.io/managed-by (Helm for the chart, kustomize for the overlay),
               in the metadata of objects, pod templates and volume claim templates only,
               never in selectors
  annotations  helm.sh/hook, helm.sh/hook-weight, helm.sh/hook-delete-policy
  objects      the Namespace, which the overlay creates and Helm expects to exist
               (OVERLAY_ONLY says why)

Tests: test_helm.py, including one where a changed value must be reported. By hand:
  .venv-checks/bin/python -m kindling_verify.manifests.helm_compare CHART_RENDER OVERLAY_RENDER
"""

from __future__ import annotations

import copy
import sys

import yaml

HELM_LABELS = frozenset({"helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                         "app.kubernetes.io/managed-by"})
HOOK_ANNOTATIONS = frozenset({"helm.sh/hook", "helm.sh/hook-weight", "helm.sh/hook-delete-policy"})
# (kind, name) of objects only the overlay renders, with the reason.
OVERLAY_ONLY = {
    ("Namespace", "kindling"): "Helm installs into a namespace that exists before its hooks run; "
                               "the README creates it from k8s/base/namespace.yaml",
}
# Where labels are metadata in a rendered object (not selectors).
METADATA_PATHS = {
    "object": ("metadata",),
    "pod template": ("spec", "template", "metadata"),
    "job's pod template": ("spec", "jobTemplate", "spec", "template", "metadata"),
}


def key(obj: dict) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def metadatas(obj: dict) -> list[tuple[str, dict]]:
    """(where, metadata) of `obj`, of its pod template and of its volume claim templates."""
    found = []
    for where, path in METADATA_PATHS.items():
        node = obj
        for step in path:
            node = node.get(step) if isinstance(node, dict) else None
        if isinstance(node, dict):
            found.append((where, node))
    return found + [("volume claim template", t.get("metadata") or {})
                    for t in (obj.get("spec") or {}).get("volumeClaimTemplates") or []]


def without_helm_additions(obj: dict) -> dict:
    """A copy of `obj` without the labels and annotations Helm adds (the module's docstring)."""
    obj = copy.deepcopy(obj)
    for _, meta in metadatas(obj):
        for field, drop in (("labels", HELM_LABELS), ("annotations", HOOK_ANNOTATIONS)):
            kept = {k: v for k, v in (meta.get(field) or {}).items() if k not in drop}
            if kept:
                meta[field] = kept
            else:
                meta.pop(field, None)
    return obj


def value_differences(chart, overlay, path: str = "") -> list[str]:
    """Every place where two parsed YAML values differ, as `path: chart ... overlay ...`."""
    if isinstance(chart, dict) and isinstance(overlay, dict):
        out = []
        for k in sorted(set(chart) | set(overlay)):
            sub = f"{path}.{k}" if path else k
            if k not in overlay:
                out.append(f"{sub}: only in the chart ({chart[k]!r})")
            elif k not in chart:
                out.append(f"{sub}: only in the overlay ({overlay[k]!r})")
            else:
                out += value_differences(chart[k], overlay[k], sub)
        return out
    if isinstance(chart, list) and isinstance(overlay, list):
        if len(chart) != len(overlay):
            return [f"{path}: {len(chart)} items in the chart, {len(overlay)} in the overlay"]
        return [d for i, (c, o) in enumerate(zip(chart, overlay, strict=True)) for d in value_differences(c, o, f"{path}[{i}]")]
    # type() as well: the string "8000" and the number 8000 are different manifests.
    if type(chart) is not type(overlay) or chart != overlay:
        return [f"{path}: chart {chart!r}, overlay {overlay!r}"]
    return []


def compare(chart_docs: list[dict], overlay_docs: list[dict]) -> tuple[list[str], int]:
    """(differences, number of objects compared field by field)."""
    chart = {key(d): without_helm_additions(d) for d in chart_docs}
    overlay = {key(d): without_helm_additions(d) for d in overlay_docs}
    problems = [f"{kind}/{name}: only in the chart" for kind, name in sorted(chart.keys() - overlay.keys())]
    problems += [f"{kind}/{name}: only in the overlay" for kind, name in sorted(overlay.keys() - chart.keys())
                 if (kind, name) not in OVERLAY_ONLY]
    common = sorted(chart.keys() & overlay.keys())
    for kind, name in common:
        problems += [f"{kind}/{name}: {d}" for d in value_differences(chart[kind, name], overlay[kind, name])]
    return problems, len(common)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    chart, overlay = ([d for d in yaml.safe_load_all(open(path)) if d] for path in argv)
    problems, compared = compare(chart, overlay)
    for line in problems:
        print(line)
    print(f"{compared} objects compared; {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
