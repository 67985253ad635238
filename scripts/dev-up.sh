#!/usr/bin/env bash
# The one command for local development: create the kind cluster from
# kind-config.yaml if it does not exist yet, select its kubectl context, then
# run `tilt up`. Safe to run again at any time; arguments go to Tilt's
# Tiltfile flags, e.g.  scripts/dev-up.sh --skip-observability --build=docker
#
# Needs Docker, kind (v0.33+ for the pinned node image), kubectl and Tilt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG="$ROOT/kind-config.yaml"
CLUSTER="$(sed -n 's/^name:[[:space:]]*//p' "$CONFIG")"
CONTEXT="kind-$CLUSTER"

log() { printf '==> %s\n' "$*"; }

missing=()
for tool in docker kind kubectl tilt; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "missing: ${missing[*]} (see docs/dev-loop.md, Prerequisites)" >&2
  exit 1
fi
docker info >/dev/null 2>&1 || { echo "Docker is not running" >&2; exit 1; }

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "kind cluster $CLUSTER exists"
else
  log "creating kind cluster $CLUSTER from kind-config.yaml (about a minute)"
  kind create cluster --config "$CONFIG" --wait 120s
fi
# kind writes the context on create; after a restart of Docker or a lost
# kubeconfig entry, export it again.
kubectl config get-contexts "$CONTEXT" >/dev/null 2>&1 || kind export kubeconfig --name "$CLUSTER"
kubectl config use-context "$CONTEXT" >/dev/null
log "kubectl context $CONTEXT"

cd "$ROOT"
log "tilt up (UI: http://localhost:10350; Ctrl-C leaves everything running, \`tilt down\` removes it)"
if (($#)); then
  exec tilt up -- "$@"
fi
exec tilt up
