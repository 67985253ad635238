"""Cross-reference checks over rendered Kubernetes manifests.

kubernetes-validate checks each object on its own and checkov checks hardening;
neither notices that a Service selects no pod, that a probe names a port the
container lacks, or that a NetworkPolicy lets one pod too many reach Postgres.
This script reads the output of `kubectl kustomize k8s/overlays/<name>` and checks
how the objects fit together:

  service-selector   every Service selector matches a pod template
  service-port       every Service targetPort exists on the pods it selects
  probe-port         every httpGet/tcpSocket/grpc probe port exists on its container
  ref                every ConfigMap, Secret (and key), PVC, ServiceAccount, Service,
                     HPA target and StatefulSet serviceName referenced exists
  selector           workload and PodDisruptionBudget selectors match pod templates
  netpol-selects     every NetworkPolicy (and each in-namespace peer) selects real pods
  flow-missing       a flow the platform needs is not permitted
  flow-unexpected    a flow the platform does not need is permitted
  restricted         every container meets Pod Security "restricted" (plus a
                     read-only root filesystem and numeric runAsUser/runAsGroup)
  image              images are Tilt-built (BUILT_IMAGES, dev only) or pinned upstream
  checkov-skip       every checkov.io/skipN annotation names a check and gives a reason
  hpa-replicas       a workload scaled by an HPA does not set spec.replicas

With --with-observability FILE (the rendered k8s/observability), the NetworkPolicy
checks take both namespaces together: the observability pods and policies come from
that render instead of standing outside, so a wrong Prometheus egress or Loki ingress
rule is a missing or unexpected flow. The other checks still cover the overlay only.

With --platform, the files are kind-config.yaml and the rendered
k8s/observability instead, checked for what a laptop must not expose:
  kind-listen        every kind extraPortMapping listens on 127.0.0.1 only
                     (kind binds 0.0.0.0 when listenAddress is unset)
  grafana-offline    Grafana neither preinstalls plugins nor calls home for
                     updates, news or analytics (the NetworkPolicy blocks it)

Tests: verify/kindling_verify/manifests/test_xref.py (and, for both namespaces together,
observability/test_manifests.py), each with a broken fixture in testdata/ that must give
exactly the violations its .expected file lists. By hand (verify/install.sh installs the
package into .venv-checks):
  kubectl kustomize k8s/overlays/dev | .venv-checks/bin/python -m kindling_verify.manifests.xref --overlay dev -
  python -m kindling_verify.manifests.xref --overlay dev --with-observability OBSERVABILITY_RENDER DEV_RENDER
  python -m kindling_verify.manifests.xref --overlay dev --expect-violations EXPECTED FILE   (self-test)
  python -m kindling_verify.manifests.xref --platform kind-config.yaml OBSERVABILITY_RENDER
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

# Images the Tiltfile builds with docker_build(). A Tiltfile contract test can
# import this (kindling_verify.manifests.xref) and compare it with the Tiltfile's refs.
BUILT_IMAGES = frozenset({"kindling-api"})

NAMESPACE = "kindling"
OBS_NAMESPACE = "kindling-observability"

# Pods outside the kindling namespace that the NetworkPolicies are written for,
# labelled as the platform deploys them: ingress-nginx's kind provider manifest
# (v1.15.1), k8s/observability, and kind's CoreDNS. `stranger` stands for any
# other pod in the cluster.
EXTERNAL_PODS = {
    "ingress-nginx-controller": ("ingress-nginx", {
        "app.kubernetes.io/name": "ingress-nginx",
        "app.kubernetes.io/component": "controller"}, [(80, "TCP"), (443, "TCP")]),
    "prometheus": ("kindling-observability", {"app.kubernetes.io/name": "prometheus"}, [(9090, "TCP")]),
    "loki": ("kindling-observability", {"app.kubernetes.io/name": "loki"}, [(3100, "TCP")]),
    "grafana": ("kindling-observability", {"app.kubernetes.io/name": "grafana"}, [(3000, "TCP")]),
    "kube-dns": ("kube-system", {"k8s-app": "kube-dns"}, [(53, "UDP"), (53, "TCP")]),
    "stranger": ("default", {"run": "stranger"}, [(8080, "TCP")]),
}
# A pod someone starts by hand in the kindling namespace (`kubectl run debug`).
# Only checked as a source: it must reach none of the workloads.
STRAY_POD = ("stray-pod", {"run": "debug"})

APP_FLOWS = {
    ("ingress-nginx-controller", "kindling-api", 8000, "TCP"),
    ("prometheus", "kindling-api", 8000, "TCP"),
}
for _client in ("kindling-api", "kindling-migrate"):
    APP_FLOWS |= {
        (_client, "postgres", 5432, "TCP"),
        (_client, "kube-dns", 53, "UDP"),
        (_client, "kube-dns", 53, "TCP"),
        (_client, "loki", 3100, "TCP"),
    }
# Flows inside the observability namespace and into it, checked when its render is given.
OBS_FLOWS = {
    ("grafana", "prometheus", 9090, "TCP"),
    ("grafana", "loki", 3100, "TCP"),
    ("prometheus", "kube-state-metrics", 8080, "TCP"),
    ("ingress-nginx-controller", "grafana", 3000, "TCP"),
    # Prometheus (kubelets, API server) and kube-state-metrics (API server) reach node
    # addresses, which no selector matches: their rules name ports only, and so also
    # reach the one pod that listens on 443, the ingress controller.
    ("prometheus", "ingress-nginx-controller", 443, "TCP"),
    ("kube-state-metrics", "ingress-nginx-controller", 443, "TCP"),
}
for _client in ("prometheus", "loki", "grafana", "kube-state-metrics"):
    OBS_FLOWS |= {(_client, "kube-dns", 53, "UDP"), (_client, "kube-dns", 53, "TCP")}
BACKUP_FLOWS = {
    ("postgres-backup", "postgres", 5432, "TCP"),
    ("postgres-backup", "kube-dns", 53, "UDP"),
    ("postgres-backup", "kube-dns", 53, "TCP"),
}


@dataclass(frozen=True)
class Profile:
    expected_flows: frozenset
    # Secrets the overlay refers to but that are created out of band.
    external_secrets: frozenset = frozenset()
    # May a workload run an image built by Tilt (unqualified BUILT_IMAGES name)?
    allow_built_images: bool = False


PROFILES = {
    "dev": Profile(frozenset(APP_FLOWS), allow_built_images=True),
    "prod": Profile(frozenset(APP_FLOWS | BACKUP_FLOWS), frozenset({"kindling-db", "kindling-tls"})),
}

POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                           "persistentVolumeClaim", "projected", "secret"}


@dataclass
class Workload:
    kind: str
    name: str
    namespace: str
    obj: dict
    template: dict

    @property
    def labels(self) -> dict:
        return (self.template.get("metadata") or {}).get("labels") or {}

    @property
    def spec(self) -> dict:
        return self.template.get("spec") or {}

    def containers(self, include_init: bool = True) -> list[dict]:
        keys = ("initContainers", "containers", "ephemeralContainers") if include_init else ("containers",)
        return [c for k in keys for c in self.spec.get(k) or []]

    def ports(self) -> list[tuple[int, str, str | None]]:
        """(containerPort, protocol, name) of every regular container."""
        return [(p["containerPort"], p.get("protocol", "TCP"), p.get("name"))
                for c in self.containers(include_init=False) for p in c.get("ports") or []]

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class Report:
    violations: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, check: str, obj: str, message: str) -> None:
        self.violations.append((check, obj, message))


def load_documents(paths: list[str]) -> list[dict]:
    docs = []
    for path in paths:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def dig(obj: dict, *path):
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """Label selector semantics; an empty selector matches everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def parse_image(image: str) -> tuple[str, str | None, str | None]:
    """'reg/name:tag@sha256:x' -> ('reg/name', 'tag', 'sha256:x')."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    name, tag = image, None
    if ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    return name, tag, digest


class Manifests:
    def __init__(self, docs: list[dict]):
        self.docs = docs
        self.by_kind: dict[str, dict[tuple[str, str], dict]] = {}
        for d in docs:
            ns = dig(d, "metadata", "namespace") or ("" if d.get("kind") == "Namespace" else "default")
            self.by_kind.setdefault(d.get("kind"), {})[(ns, dig(d, "metadata", "name"))] = d
        self.workloads = []
        for d in docs:
            path = POD_TEMPLATE_PATHS.get(d.get("kind"))
            template = dig(d, *path) if path else (d if d.get("kind") == "Pod" else None)
            if template is not None:
                self.workloads.append(Workload(d["kind"], d["metadata"]["name"],
                                               d["metadata"].get("namespace", "default"), d, template))

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.by_kind.get(kind, {}).get((namespace, name))

    def objects(self, kind: str) -> Iterable[dict]:
        return self.by_kind.get(kind, {}).values()

    def pods_selected(self, namespace: str, selector: dict | None) -> list[Workload]:
        return [w for w in self.workloads if w.namespace == namespace and selector_matches(selector, w.labels)]


def name_of(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def port_on_container(port, container: dict) -> bool:
    ports = container.get("ports") or []
    if isinstance(port, str) and not port.isdigit():
        return any(p.get("name") == port for p in ports)
    return any(p["containerPort"] == int(port) for p in ports)


# --- checks -----------------------------------------------------------------

def check_services(m: Manifests, r: Report) -> None:
    for svc in m.objects("Service"):
        ns, selector = svc["metadata"].get("namespace", "default"), dig(svc, "spec", "selector")
        if not selector:
            continue
        pods = m.pods_selected(ns, {"matchLabels": selector})
        if not pods:
            r.add("service-selector", name_of(svc), f"selector {selector} matches no pod template")
            continue
        for port in dig(svc, "spec", "ports") or []:
            target = port.get("targetPort", port["port"])
            for w in pods:
                if not any(port_on_container(target, c) for c in w.containers(include_init=False)):
                    r.add("service-port", name_of(svc), f"targetPort {target!r} is not a container port of {w}")


def check_probes(m: Manifests, r: Report) -> None:
    for w in m.workloads:
        for c in w.containers():
            for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = c.get(probe_name) or {}
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    if handler in probe and not port_on_container(probe[handler]["port"], c):
                        r.add("probe-port", str(w), f"{c['name']}.{probe_name} targets port "
                              f"{probe[handler]['port']!r}, which the container does not expose")


def check_references(m: Manifests, r: Report, profile: Profile) -> None:
    def secret_exists(ns: str, name: str) -> bool:
        return m.get("Secret", ns, name) is not None or name in profile.external_secrets

    def need(kind: str, w: Workload, name: str, key: str | None = None, optional: bool = False) -> None:
        if optional:
            return
        if kind == "Secret" and name in profile.external_secrets and m.get("Secret", w.namespace, name) is None:
            return
        obj = m.get(kind, w.namespace, name)
        if obj is None:
            r.add("ref", str(w), f"{kind} {name!r} does not exist")
        elif key is not None:
            keys = set(obj.get("data") or {}) | set(obj.get("stringData") or {}) | set(obj.get("binaryData") or {})
            if key not in keys:
                r.add("ref", str(w), f"{kind} {name!r} has no key {key!r}")

    for w in m.workloads:
        spec = w.spec
        sa = spec.get("serviceAccountName")
        if not sa:
            r.add("ref", str(w), "runs as the namespace's default ServiceAccount; name its own")
        elif m.get("ServiceAccount", w.namespace, sa) is None:
            r.add("ref", str(w), f"ServiceAccount {sa!r} does not exist")
        volume_names = {v["name"] for v in spec.get("volumes") or []}
        if w.kind == "StatefulSet":
            volume_names |= {t["metadata"]["name"] for t in dig(w.obj, "spec", "volumeClaimTemplates") or []}
        for c in w.containers():
            for src in c.get("envFrom") or []:
                if "configMapRef" in src:
                    need("ConfigMap", w, src["configMapRef"]["name"], optional=src["configMapRef"].get("optional"))
                if "secretRef" in src:
                    need("Secret", w, src["secretRef"]["name"], optional=src["secretRef"].get("optional"))
            for env in c.get("env") or []:
                for ref_kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    ref = dig(env, "valueFrom", key)
                    if ref:
                        need(ref_kind, w, ref["name"], ref["key"], optional=ref.get("optional"))
            for mount in c.get("volumeMounts") or []:
                if mount["name"] not in volume_names:
                    r.add("ref", str(w), f"{c['name']} mounts volume {mount['name']!r}, which is not defined")
        for vol in spec.get("volumes") or []:
            sources = [vol] + [s for s in dig(vol, "projected", "sources") or []]
            for s in sources:
                if "configMap" in s:
                    for item in s["configMap"].get("items") or [None]:
                        need("ConfigMap", w, s["configMap"]["name"], item and item["key"],
                             optional=s["configMap"].get("optional"))
                if "secret" in s:
                    secret = s["secret"]
                    secret_name = secret.get("secretName") or secret.get("name")
                    for item in secret.get("items") or [None]:
                        need("Secret", w, secret_name, item and item["key"], optional=secret.get("optional"))
            if "persistentVolumeClaim" in vol:
                need("PersistentVolumeClaim", w, vol["persistentVolumeClaim"]["claimName"])

    for ing in m.objects("Ingress"):
        ns = ing["metadata"].get("namespace", "default")
        for rule in dig(ing, "spec", "rules") or []:
            for path in dig(rule, "http", "paths") or []:
                backend = dig(path, "backend", "service") or {}
                svc = m.get("Service", ns, backend.get("name"))
                if svc is None:
                    r.add("ref", name_of(ing), f"backend Service {backend.get('name')!r} does not exist")
                    continue
                want = backend.get("port") or {}
                if not any(p.get("name") == want.get("name") if "name" in want else p["port"] == want.get("number")
                           for p in dig(svc, "spec", "ports") or []):
                    r.add("ref", name_of(ing), f"Service {backend['name']!r} has no port {want}")
        for tls in dig(ing, "spec", "tls") or []:
            if not secret_exists(ns, tls.get("secretName")):
                r.add("ref", name_of(ing), f"TLS Secret {tls.get('secretName')!r} does not exist")

    for hpa in m.objects("HorizontalPodAutoscaler"):
        target = dig(hpa, "spec", "scaleTargetRef") or {}
        scaled = m.get(target.get("kind"), hpa["metadata"].get("namespace", "default"), target.get("name"))
        if scaled is None:
            r.add("ref", name_of(hpa), f"scale target {target.get('kind')}/{target.get('name')} does not exist")
        elif "replicas" in (scaled.get("spec") or {}):
            # Every apply (each Tilt update, each `kubectl apply -k`) would reset
            # the count the autoscaler chose.
            r.add("hpa-replicas", name_of(scaled),
                  f"sets spec.replicas although {name_of(hpa)} owns the replica count")

    for sts in m.objects("StatefulSet"):
        ns, svc_name = sts["metadata"].get("namespace", "default"), dig(sts, "spec", "serviceName")
        svc = m.get("Service", ns, svc_name)
        if svc is None:
            r.add("ref", name_of(sts), f"serviceName {svc_name!r} is not a Service")
        elif dig(svc, "spec", "clusterIP") != "None":
            r.add("ref", name_of(sts), f"serviceName {svc_name!r} is not a headless Service")


def check_selectors(m: Manifests, r: Report) -> None:
    for w in m.workloads:
        selector = dig(w.obj, "spec", "selector")
        if w.kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet") and \
                not selector_matches(selector, w.labels):
            r.add("selector", str(w), f"selector {selector} does not match its own pod template labels")
    for pdb in m.objects("PodDisruptionBudget"):
        if not m.pods_selected(pdb["metadata"].get("namespace", "default"), dig(pdb, "spec", "selector")):
            r.add("selector", name_of(pdb), "selector matches no pod template")


def check_restricted(m: Manifests, r: Report) -> None:
    for ns_obj in m.objects("Namespace"):
        labels = dig(ns_obj, "metadata", "labels") or {}
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            r.add("restricted", name_of(ns_obj), "does not enforce Pod Security Standard 'restricted'")
    for w in m.workloads:
        spec, pod_sc = w.spec, w.spec.get("securityContext") or {}
        if m.get("Namespace", "", w.namespace) is None:
            r.add("restricted", str(w), f"namespace {w.namespace!r} (and its Pod Security labels) is not rendered")
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(flag):
                r.add("restricted", str(w), f"sets {flag}")
        for vol in spec.get("volumes") or []:
            kinds = set(vol) - {"name"}
            if not kinds <= RESTRICTED_VOLUME_TYPES:
                r.add("restricted", str(w), f"volume {vol['name']!r} has a disallowed type {sorted(kinds)}")
        for c in w.containers():
            sc, where = c.get("securityContext") or {}, f"{w}: container {c['name']}"

            def effective(key: str, sc=sc, pod_sc=pod_sc):  # the container's setting, else the pod's
                return sc.get(key, pod_sc.get(key))

            if effective("runAsNonRoot") is not True:
                r.add("restricted", where, "runAsNonRoot is not true")
            for key in ("runAsUser", "runAsGroup"):
                value = effective(key)
                if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                    r.add("restricted", where, f"{key} is not a numeric non-root id ({value!r})")
            if (effective("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
                r.add("restricted", where, "seccompProfile is not RuntimeDefault")
            if sc.get("allowPrivilegeEscalation") is not False:
                r.add("restricted", where, "allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                r.add("restricted", where, "is privileged")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                r.add("restricted", where, "does not drop ALL capabilities")
            if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
                r.add("restricted", where, f"adds capabilities {caps['add']}")
            if sc.get("readOnlyRootFilesystem") is not True:
                r.add("restricted", where, "root filesystem is writable (readOnlyRootFilesystem)")
            for p in c.get("ports") or []:
                if p.get("hostPort"):
                    r.add("restricted", where, f"uses hostPort {p['hostPort']}")


def check_images(m: Manifests, r: Report, profile: Profile) -> None:
    used_built = set()
    for w in m.workloads:
        for c in w.containers():
            name, tag, digest = parse_image(c.get("image", ""))
            where = f"{w}: container {c['name']}"
            if name in BUILT_IMAGES:
                used_built.add(name)
                if not profile.allow_built_images:
                    r.add("image", where, f"runs the Tilt-built image {c['image']!r}; retag it for a registry")
                continue
            if tag in (None, "latest") and digest is None:
                r.add("image", where, f"image {c.get('image')!r} is not pinned to an explicit tag")
            elif tag == "latest":
                r.add("image", where, f"image {c['image']!r} uses the floating tag 'latest'")
    if profile.allow_built_images:
        for missing in sorted(BUILT_IMAGES - used_built):
            r.add("image", "overlay", f"Tilt builds {missing!r} but no workload runs it")


def check_checkov_skips(m: Manifests, r: Report) -> None:
    for d in m.docs:
        for key, value in (dig(d, "metadata", "annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = str(value).partition("=")
                if not re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", check.strip()) or len(reason.strip()) < 20:
                    r.add("checkov-skip", name_of(d), f"{key} must read 'CKV_..._N=<reason>' ({value!r})")


# --- network policies ---------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    name: str
    namespace: str
    labels: tuple
    ports: tuple          # ((port, protocol, name|None), ...)
    internal: bool        # a workload of the rendered overlay
    source_only: bool = False

    @property
    def label_dict(self) -> dict:
        return dict(self.labels)


def internal_namespaces(m: Manifests) -> set[str]:
    """The overlay's namespace, and the observability namespace when its render is given."""
    return {NAMESPACE} | ({OBS_NAMESPACE} & {w.namespace for w in m.workloads})


def endpoints(m: Manifests) -> list[Endpoint]:
    internal = internal_namespaces(m)
    eps = [Endpoint(w.name, w.namespace, tuple(sorted(w.labels.items())), tuple(w.ports()), True)
           for w in m.workloads if w.namespace in internal]
    for name, (ns, labels, ports) in EXTERNAL_PODS.items():
        if ns in internal:
            continue  # rendered: the real pods (above) and their policies stand in
        eps.append(Endpoint(name, ns, tuple(sorted(labels.items())), tuple((p, proto, None) for p, proto in ports),
                            False))
    eps.append(Endpoint(STRAY_POD[0], NAMESPACE, tuple(sorted(STRAY_POD[1].items())), (), False, source_only=True))
    return eps


def peer_matches(peer: dict, policy_ns: str, ep: Endpoint) -> bool:
    if "ipBlock" in peer:
        return True  # conservatively: an ipBlock may cover any pod
    if "namespaceSelector" in peer:
        ns_labels = {"kubernetes.io/metadata.name": ep.namespace}
        if not selector_matches(peer["namespaceSelector"], ns_labels):
            return False
    elif ep.namespace != policy_ns:
        return False
    return selector_matches(peer.get("podSelector"), ep.label_dict)


def port_matches(rule_ports: list | None, port: int, proto: str, named: str | None) -> bool:
    if not rule_ports:
        return True
    for rp in rule_ports:
        if rp.get("protocol", "TCP") != proto:
            continue
        want = rp.get("port")
        if want is None or want == port or (isinstance(want, str) and want == named) or \
                (isinstance(want, int) and rp.get("endPort") and want <= port <= rp["endPort"]):
            return True
    return False


def policy_types(policy: dict) -> list[str]:
    spec = policy.get("spec") or {}
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))


def allowed(policies: list[dict], direction: str, subject: Endpoint, peer: Endpoint,
            port: int, proto: str, named: str | None) -> bool:
    """Is traffic allowed on `subject`'s side (its ingress or egress) to/from `peer`?"""
    if not subject.internal or subject.source_only:
        return True  # outside the overlay: its own policies are not ours to judge
    selecting = [p for p in policies if p["metadata"].get("namespace", "default") == subject.namespace
                 and direction in policy_types(p) and selector_matches(p["spec"].get("podSelector"), subject.label_dict)]
    if not selecting:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for p in selecting:
        for rule in p["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if (not peers or any(peer_matches(x, p["metadata"].get("namespace", "default"), peer) for x in peers)) \
                    and port_matches(rule.get("ports"), port, proto, named):
                return True
    return False


def check_network_policies(m: Manifests, r: Report, profile: Profile) -> int:
    policies = list(m.objects("NetworkPolicy"))
    eps = endpoints(m)
    real = [e for e in eps if not e.source_only]
    for p in policies:
        ns = p["metadata"].get("namespace", "default")
        if not m.pods_selected(ns, p["spec"].get("podSelector")):
            r.add("netpol-selects", name_of(p), "podSelector selects no pod template")
        for key, peers_key in (("ingress", "from"), ("egress", "to")):
            for rule in p["spec"].get(key) or []:
                for peer in rule.get(peers_key) or []:
                    if not any(peer_matches(peer, ns, e) for e in real):
                        r.add("netpol-selects", name_of(p), f"{key} peer {peer} matches no known pod")

    actual = set()
    for src in eps:
        for dst in real:
            if src is dst or (not src.internal and not dst.internal):
                continue
            for port, proto, named in dst.ports:
                if allowed(policies, "Egress", src, dst, port, proto, named) and \
                        allowed(policies, "Ingress", dst, src, port, proto, named):
                    actual.add((src.name, dst.name, port, proto))
    # The stray pod tests the kindling workloads' ingress rules only: its own egress
    # (denied by the namespace's default policy) is not modelled, so its flows to
    # pods in other namespaces say nothing.
    in_overlay = {e.name for e in real if e.namespace == NAMESPACE}
    actual = {f for f in actual if not (f[0] == STRAY_POD[0] and f[1] not in in_overlay)}
    expected = set(profile.expected_flows)
    if OBS_NAMESPACE in internal_namespaces(m):
        expected |= OBS_FLOWS
    for flow in sorted(expected - actual):
        r.add("flow-missing", "NetworkPolicy", "{} -> {} {}/{} is not permitted".format(*flow))
    for flow in sorted(actual - expected):
        r.add("flow-unexpected", "NetworkPolicy", "{} -> {} {}/{} is permitted".format(*flow))
    return len(actual)


def run_checks(docs: list[dict], profile: Profile,
               observability: list[dict] | None = None) -> tuple[Report, Manifests, int]:
    m, r = Manifests(docs), Report()
    check_services(m, r)
    check_probes(m, r)
    check_references(m, r, profile)
    check_selectors(m, r)
    check_restricted(m, r)
    check_images(m, r, profile)
    check_checkov_skips(m, r)
    # NetworkPolicies: both namespaces together when the observability render is given.
    flows = check_network_policies(Manifests(docs + (observability or [])), r, profile)
    return r, m, flows


# Grafana's own settings (grafana.ini keys as GF_<SECTION>_<KEY>) that keep it
# from reaching the internet at start-up and afterwards.
GRAFANA_OFFLINE_ENV = {
    "GF_PLUGINS_PREINSTALL_DISABLED": "true",         # Drilldown apps etc. from grafana.com
    "GF_ANALYTICS_REPORTING_ENABLED": "false",        # usage stats
    "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",        # version check
    "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
    "GF_NEWS_NEWS_FEED_ENABLED": "false",             # the news panel's RSS feed
}


def check_platform(docs: list[dict]) -> tuple[Report, int]:
    """kind-config (kind: Cluster) and the observability render, together."""
    r, mappings = Report(), 0
    for cluster in (d for d in docs if d.get("kind") == "Cluster"):
        for i, node in enumerate(cluster.get("nodes") or []):
            for pm in node.get("extraPortMappings") or []:
                mappings += 1
                if pm.get("listenAddress") != "127.0.0.1":
                    r.add("kind-listen", f"Cluster/{cluster.get('name')}: node {i}",
                          f"hostPort {pm.get('hostPort')} listens on {pm.get('listenAddress', '0.0.0.0 (unset)')}, "
                          "not 127.0.0.1: reachable from the local network")
    m = Manifests([d for d in docs if d.get("kind") != "Cluster"])
    grafanas = 0
    for w in m.workloads:
        for c in w.containers():
            if not c.get("image", "").split("@")[0].startswith("grafana/grafana:"):
                continue
            grafanas += 1
            env = {e["name"]: e.get("value") for e in c.get("env") or []}
            for key, want in GRAFANA_OFFLINE_ENV.items():
                if env.get(key) != want:
                    r.add("grafana-offline", f"{w}: container {c['name']}", f"{key} is {env.get(key)!r}, want {want!r}")
    if not mappings:
        r.add("kind-listen", "Cluster", "no kind Cluster with extraPortMappings among the files")
    if not grafanas:
        r.add("grafana-offline", "Deployment", "no grafana/grafana container among the files")
    return r, mappings


def unmatched(report: Report, expected_path) -> tuple[int, list[str]]:
    """Each line of the file is `check | object | message substring`. Returns the number of
    expected patterns and what does not match: every line must match at least one reported
    violation and every violation must be matched by a line (the checks fire, and only where
    they should)."""
    with open(expected_path, encoding="utf-8") as f:
        expected = [tuple(part.strip() for part in line.split("|", 2)) for line in f
                    if line.strip() and not line.lstrip().startswith("#")]

    def matches(line, violation) -> bool:
        return line[0] == violation[0] and line[1] == violation[1] and line[2] in violation[2]

    missed = [line for line in expected if not any(matches(line, v) for v in report.violations)]
    unexpected = [v for v in report.violations if not any(matches(line, v) for line in expected)]
    return len(expected), ([f"no violation reported for: {' | '.join(line)}" for line in missed]
                           + [f"unexpected violation [{v[0]}] {v[1]}: {v[2]}" for v in unexpected])


def self_test(report: Report, expected_path: str, label: str) -> int:
    n_expected, problems = unmatched(report, expected_path)
    for problem in problems:
        print(f"SELF-TEST FAIL: {problem}", file=sys.stderr)
    print(f"{label} self-test: {len(report.violations)} violations reported for {n_expected} expected patterns")
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--overlay", choices=sorted(PROFILES),
                      help="which overlay's expectations apply (flows, external Secrets, images)")
    mode.add_argument("--platform", action="store_true",
                      help="check kind-config.yaml and the rendered k8s/observability (kind-listen, grafana-offline)")
    parser.add_argument("--with-observability", metavar="FILE",
                        help="the rendered k8s/observability: check both namespaces' NetworkPolicies together")
    parser.add_argument("--expect-violations", metavar="FILE",
                        help="self-test: succeed only if the violations reported are exactly those FILE describes")
    parser.add_argument("files", nargs="+", help="rendered YAML files, or - for stdin")
    args = parser.parse_args(argv)

    if args.platform:
        report, mappings = check_platform(load_documents(args.files))
        label = "manifest-xref (platform)"
        if args.expect_violations:
            return self_test(report, args.expect_violations, label)
        for check, obj, msg in report.violations:
            print(f"XREF FAIL [{check}] {obj}: {msg}", file=sys.stderr)
        print(f"{label}: {len(report.violations)} violations; {mappings} kind port mappings, "
              f"{len(GRAFANA_OFFLINE_ENV)} Grafana settings")
        return 1 if report.violations else 0

    observability = load_documents([args.with_observability]) if args.with_observability else None
    report, m, flows = run_checks(load_documents(args.files), PROFILES[args.overlay], observability)
    label = f"manifest-xref ({args.overlay})"

    if args.expect_violations:
        return self_test(report, args.expect_violations, label)

    for check, obj, msg in report.violations:
        print(f"XREF FAIL [{check}] {obj}: {msg}", file=sys.stderr)
    print(f"{label}: {len(report.violations)} violations; {len(m.docs)} objects, {len(m.workloads)} pod templates, "
          f"{len(list(m.objects('Service')))} Services, {len(list(m.objects('NetworkPolicy')))} NetworkPolicies, "
          f"{flows} permitted flows")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
