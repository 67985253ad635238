#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests (run by .ci/run, and by hand):
#   1. every kustomization renders (k8s/overlays/dev, k8s/overlays/prod, and
#      k8s/observability once it has a kustomization.yaml);
#   2. kubernetes-validate --strict against the Kubernetes version kind-config.yaml pins
#      (unknown kinds count as failures: kindling uses no CRDs);
#   3. checkov (kubernetes framework, offline) with zero failures;
#   4. yamllint -s with the committed .yamllint;
#   5. scripts/manifest_xref.py on each overlay and (--platform) on kind-config.yaml
#      with the observability render, plus its negative self-tests.
# Runs every step even after a failure, prints each tool's summary line, and
# exits non-zero if anything failed. Needs kubectl and .venv-checks
# (scripts/install-checkers.sh creates it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-checks"
log() { printf '==> %s\n' "$*"; }

failures=0 passes=0
fail() { printf 'FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }
pass() { passes=$((passes + 1)); }

for tool in kubernetes-validate checkov yamllint python; do
  if [[ ! -x "$VENV/bin/$tool" ]]; then
    log "$VENV/bin/$tool missing: running scripts/install-checkers.sh"
    "$ROOT/scripts/install-checkers.sh"
    break
  fi
done
command -v kubectl >/dev/null || { echo "kubectl is required (kubectl kustomize renders the overlays)" >&2; exit 1; }

# Kubernetes version: the minor of the kind node image, e.g. kindest/node:v1.35.8 -> 1.35.0.
k8s_minor="$(sed -n 's/^ *image: *kindest\/node:v\([0-9]*\.[0-9]*\)\..*/\1/p' kind-config.yaml | head -n1)"
if [[ -z "$k8s_minor" ]]; then
  echo "could not read the kindest/node version from kind-config.yaml" >&2
  exit 1
fi
K8S_VERSION="$k8s_minor.0"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# name=directory of every kustomization to check.
targets=(dev=k8s/overlays/dev prod=k8s/overlays/prod)
if [[ -f k8s/observability/kustomization.yaml ]]; then
  targets+=(observability=k8s/observability)
fi

# 1. Render ------------------------------------------------------------------
rendered=()
for target in "${targets[@]}"; do
  name="${target%%=*}" dir="${target#*=}"
  mkdir -p "$WORK/$name"
  if ! kubectl kustomize "$dir" >"$WORK/$name/rendered.yaml" 2>"$WORK/$name.err"; then
    fail "kubectl kustomize $dir: $(cat "$WORK/$name.err")"
    continue
  fi
  rendered+=("$name")
  pass
  kinds="$("$VENV/bin/python" - "$WORK/$name/rendered.yaml" <<'PY'
import collections, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
counts = collections.Counter(d["kind"] for d in docs)
print(f"{len(docs)} objects: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
PY
)"
  log "render $dir: $kinds"
done

# 2. kubernetes-validate -----------------------------------------------------
for name in "${rendered[@]}"; do
  out="$WORK/$name.kv"
  rc=0
  "$VENV/bin/kubernetes-validate" --strict -k "$K8S_VERSION" "$WORK/$name/rendered.yaml" >"$out" 2>&1 || rc=$?
  valid="$(grep -c '^INFO .* passed' "$out" || true)"
  invalid="$(grep -c '^ERROR' "$out" || true)"
  unknown="$(grep -c '^WARN' "$out" || true)"
  echo "kubernetes-validate --strict -k $K8S_VERSION ($name): $valid valid, $invalid invalid, $unknown unknown kinds"
  if [[ "$rc" -ne 0 || "$invalid" -ne 0 || "$unknown" -ne 0 ]]; then
    grep -v '^INFO' "$out" >&2 || true
    fail "kubernetes-validate ($name)"
  else
    pass
  fi
done

# 3. checkov -----------------------------------------------------------------
for name in "${rendered[@]}"; do
  out="$WORK/$name.checkov"
  rc=0
  "$VENV/bin/checkov" -d "$WORK/$name" --framework kubernetes --skip-download --compact --quiet \
    >"$out" 2>&1 || rc=$?
  summary="$(grep -m1 'Passed checks:' "$out" || echo 'no summary line')"
  echo "checkov ($name): $summary"
  if [[ "$rc" -ne 0 ]] || ! grep -q 'Failed checks: 0,' <<<"$summary"; then
    cat "$out" >&2
    fail "checkov ($name)"
  else
    pass
  fi
done

# 4. yamllint ------------------------------------------------------------------
mapfile -t yaml_files < <(
  { printf '%s\n' kind-config.yaml .yamllint
    find k8s scripts/testdata -type f \( -name '*.yaml' -o -name '*.yml' \); } | sort -u)
if "$VENV/bin/yamllint" -s -c .yamllint "${yaml_files[@]}"; then
  echo "yamllint -s: ${#yaml_files[@]} files, 0 problems"
  pass
else
  fail "yamllint"
fi

# 5. Cross-references ----------------------------------------------------------
XREF=("$VENV/bin/python" scripts/manifest_xref.py)
for name in dev prod; do
  if [[ -f "$WORK/$name/rendered.yaml" ]]; then
    if "${XREF[@]}" --overlay "$name" "$WORK/$name/rendered.yaml"; then pass; else fail "manifest_xref ($name)"; fi
  fi
done
# The checker must also fail when it should: a deliberately broken manifest,
# and the dev render held to prod's rules (Tilt-built image, no backup flows).
if "${XREF[@]}" --overlay dev --expect-violations scripts/testdata/xref-broken.expected \
  scripts/testdata/xref-broken.yaml >"$WORK/selftest1" 2>&1; then
  pass
else
  cat "$WORK/selftest1" >&2
  fail "xref self-test (broken manifest)"
fi
tail -n1 "$WORK/selftest1"
if [[ -f "$WORK/dev/rendered.yaml" ]]; then
  if "${XREF[@]}" --overlay prod --expect-violations scripts/testdata/xref-dev-as-prod.expected \
    "$WORK/dev/rendered.yaml" >"$WORK/selftest2" 2>&1; then
    pass
  else
    cat "$WORK/selftest2" >&2
    fail "xref self-test (dev as prod)"
  fi
  tail -n1 "$WORK/selftest2"
fi

# What a laptop exposes: kind's port mappings on 127.0.0.1 only, and a Grafana
# that does not reach for the internet (with its own self-test).
if [[ -f "$WORK/observability/rendered.yaml" ]]; then
  if "${XREF[@]}" --platform kind-config.yaml "$WORK/observability/rendered.yaml"; then
    pass
  else
    fail "manifest_xref --platform (kind-config.yaml, k8s/observability)"
  fi
else
  fail "manifest_xref --platform: k8s/observability did not render"
fi
if "${XREF[@]}" --platform --expect-violations scripts/testdata/xref-platform-broken.expected \
  scripts/testdata/xref-platform-broken.yaml >"$WORK/selftest3" 2>&1; then
  pass
else
  cat "$WORK/selftest3" >&2
  fail "xref self-test (platform)"
fi
tail -n1 "$WORK/selftest3"

echo "Kubernetes $K8S_VERSION; kustomizations: ${rendered[*]}"
echo "check-manifests: $passes passed, $failures failed"
[[ "$failures" -eq 0 ]]
