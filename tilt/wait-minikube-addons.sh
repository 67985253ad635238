#!/usr/bin/env bash
# Waits until minikube's `ingress` and `metrics-server` addons are ready, for the
# Tiltfile's minikube-addons resource (the Ingress-bearing workloads wait for it):
#
#   tilt/wait-minikube-addons.sh CONTEXT
#
# Ready means: the ingress-nginx controller rolled out, its admission webhook
# has a CA (until then the API server rejects every Ingress), and metrics-server
# rolled out. A missing addon fails at once with the command that enables it.
# Timeout per step: $KINDLING_ADDON_TIMEOUT seconds (default 300).
set -euo pipefail

CONTEXT="${1:?usage: wait-minikube-addons.sh CONTEXT}"
TIMEOUT="${KINDLING_ADDON_TIMEOUT:-300}"
k() { kubectl --context "$CONTEXT" "$@"; }

rolled_out() {
  local namespace="$1" deployment="$2" addon="$3"
  if ! k -n "$namespace" get deployment "$deployment" >/dev/null; then
    echo "deployment $namespace/$deployment not found: minikube's $addon addon is not enabled." \
         "Run: minikube -p $CONTEXT addons enable $addon (scripts/dev-up.sh --cluster minikube does)" >&2
    exit 1
  fi
  echo "waiting for $namespace/$deployment (addon $addon)"
  k -n "$namespace" rollout status deployment "$deployment" --timeout "${TIMEOUT}s"
}

rolled_out ingress-nginx ingress-nginx-controller ingress

# The admission-patch Job writes the webhook's caBundle shortly after the
# controller starts; an Ingress applied before that is rejected.
webhook=ingress-nginx-admission
if k get validatingwebhookconfiguration "$webhook" >/dev/null 2>&1; then
  end=$((SECONDS + TIMEOUT))
  until [[ -n "$(k get validatingwebhookconfiguration "$webhook" -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ]]; do
    if ((SECONDS >= end)); then
      echo "the webhook $webhook has no CA after ${TIMEOUT}s: see kubectl -n ingress-nginx get jobs,pods" >&2
      exit 1
    fi
    sleep 2
  done
  echo "webhook $webhook has its CA"
else
  echo "no ValidatingWebhookConfiguration $webhook in this addon version: nothing to wait for"
fi

rolled_out kube-system metrics-server metrics-server
echo "minikube addons ready: ingress, metrics-server"
