"""Shutdown budget of the API pod, summed from the rendered manifests.

After SIGTERM the pod must be gone within terminationGracePeriodSeconds, or
the kubelet kills it mid-flush. What the process can spend, in order:

  preStop sleep                     the Deployment (lifecycle.preStop)
  SHUTDOWN_GRACE_SECS               the container's env / ConfigMap
  then the terms of `shutdown_bound` in core/src/cli.rs, read from its constants:
  Rocket's mercy                    ROCKET_MERCY
  Rocket's last wait                ROCKET_LAST_WAIT (Rocket 0.5 gives up at grace + mercy + 1 s)
  Loki flush bound                  LOKI_FLUSH_TIMEOUT
  stdout drain                      STDOUT_DRAIN_TIMEOUT (tracing-appender's guard)
  runtime shutdown                  RUNTIME_SHUTDOWN_TIMEOUT

The code's figures are read from the source, so changing them without the
manifests (or the reverse) fails here.

Tests: test_shutdown_budget.py. By hand:
  .venv-checks/bin/python -m kindling_verify.manifests.shutdown_budget k8s/overlays/dev k8s/overlays/prod
  .venv-checks/bin/python -m kindling_verify.manifests.shutdown_budget --self-test
"""

from __future__ import annotations

import copy
import re
import sys

from kindling_verify.helpers import ROOT, kustomize, yaml_documents

API_NAME = "kindling-api"
# The constants `shutdown_bound` (core/src/cli.rs) adds after the grace period.
SHUTDOWN_CONSTANTS = (
    "ROCKET_MERCY",
    "ROCKET_LAST_WAIT",
    "LOKI_FLUSH_TIMEOUT",
    "STDOUT_DRAIN_TIMEOUT",
    "RUNTIME_SHUTDOWN_TIMEOUT",
)


def source_seconds(path: str, pattern: str) -> int:
    text = (ROOT / path).read_text()
    match = re.search(pattern, text)
    if not match:
        raise SystemExit(f"{path}: no match for {pattern!r}; update {__file__}")
    return int(match.group(1))


def duration_constant(path: str, name: str) -> float:
    """Seconds of `pub const NAME: Duration = Duration::from_secs(N)` (or `from_millis`)."""
    text = (ROOT / path).read_text()
    match = re.search(rf"const {name}: Duration = Duration::from_(secs|millis)\((\d+)\)", text)
    if not match:
        raise SystemExit(f"{path}: no Duration constant {name}; update {__file__}")
    value = int(match.group(2))
    return value if match.group(1) == "secs" else value / 1000


def code_terms() -> dict[str, float]:
    cli = "core/src/cli.rs"
    if "mercy: cli::ROCKET_MERCY" not in (ROOT / "src/startup.rs").read_text():
        raise SystemExit(f"src/startup.rs no longer takes Rocket's mercy from {cli}; update {__file__}")
    return {f"{name} ({cli})": duration_constant(cli, name) for name in SHUTDOWN_CONSTANTS}


def default_grace() -> int:
    return source_seconds("core/src/config.rs", r'"SHUTDOWN_GRACE_SECS",\s*(\d+)')


def render(overlay: str) -> list[dict]:
    return yaml_documents(kustomize(overlay))


def env_value(container: dict, docs: list[dict], name: str) -> str | None:
    """The value the container sees: `env` beats `envFrom`, later envFrom beats earlier."""
    for item in container.get("env") or []:
        if item["name"] == name:
            return item.get("value")
    value = None
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if not ref:
            continue
        for doc in docs:
            if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == ref["name"]:
                value = (doc.get("data") or {}).get(name, value)
    return value


def budget(docs: list[dict]) -> tuple[int, list[tuple[str, float]]]:
    """terminationGracePeriodSeconds and the terms that must fit in it."""
    deployments = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == API_NAME
    ]
    if len(deployments) != 1:
        raise ValueError(f"expected one Deployment {API_NAME}, found {len(deployments)}")
    pod = deployments[0]["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "api"]
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre_stop:
        pause = int(pre_stop["sleep"]["seconds"])
    elif "exec" in pre_stop and pre_stop["exec"]["command"][:1] == ["sleep"]:
        pause = int(pre_stop["exec"]["command"][1])
    else:
        pause = 0
    raw = env_value(container, docs, "SHUTDOWN_GRACE_SECS")
    grace = int(raw) if raw and raw.strip() else default_grace()
    terms = [("preStop sleep", pause), ("SHUTDOWN_GRACE_SECS", grace)]
    terms += list(code_terms().items())
    return int(pod.get("terminationGracePeriodSeconds", 30)), terms


def check(name: str, docs: list[dict]) -> bool:
    limit, terms = budget(docs)
    total = round(sum(s for _, s in terms), 3)
    detail = " + ".join(f"{label} {s:g}" for label, s in terms)
    verdict = "fits" if total <= limit else "DOES NOT FIT"
    print(f"{name}: {detail} = {total:g} s {verdict} terminationGracePeriodSeconds {limit} s")
    return total <= limit


def broken_variants(docs: list[dict]) -> dict[str, list[dict]]:
    """The render with either side moved the wrong way by one second."""
    shorter = copy.deepcopy(docs)
    for d in shorter:
        if d["kind"] == "Deployment" and d["metadata"]["name"] == API_NAME:
            d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] -= 1
    longer = copy.deepcopy(docs)
    for d in longer:
        if d["kind"] == "ConfigMap" and "SHUTDOWN_GRACE_SECS" in (d.get("data") or {}):
            d["data"]["SHUTDOWN_GRACE_SECS"] = str(int(d["data"]["SHUTDOWN_GRACE_SECS"]) + 1)
    return {"grace period 1 s shorter": shorter, "drain 1 s longer": longer}


def self_test() -> bool:
    """The check must fail when either side moves the wrong way."""
    docs = render("k8s/overlays/dev")
    ok = check("dev (as committed)", docs)
    for label, broken in broken_variants(docs).items():
        if check(f"self-test, {label}", broken):
            print(f"FAIL: the budget check accepted a {label}")
            ok = False
    return ok


def main(argv: list[str]) -> int:
    if argv == ["--self-test"]:
        return 0 if self_test() else 1
    results = [check(overlay, render(overlay)) for overlay in argv]
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
