#!/usr/bin/env bash
# The platform's footprint as numbers: for kind and minikube, with everything and with
# --skip-observability, the sums of the memory and CPU requests and limits of what the
# Tiltfile deploys, and the images' sizes where this machine has them. README.md's table
# comes from here, and the command exits 1 when the table no longer matches.
#   scripts/footprint.sh [--measure SECONDS] [--json FILE]
# --measure also runs the end-to-end workload (verify/kindling_verify/observability/e2e.py:
# the API, Postgres in Docker, Loki and Prometheus on this machine) and reports each one's
# peak resident memory; it needs what the checks need (verify/install.sh, and
# eval "$(verify/unpack-test-tools.sh)" for Loki).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv-checks/bin/python"
if [[ ! -x "$PY" ]]; then
  echo "no $ROOT/.venv-checks: run verify/install.sh first" >&2
  exit 2
fi
cd "$ROOT/verify"
exec "$PY" -m kindling_verify.observability.footprint "$@"
