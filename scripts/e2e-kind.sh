#!/usr/bin/env bash
# The end-to-end check on kind, under its first name: scripts/e2e.sh --cluster kind
# (scripts/e2e.sh takes --cluster minikube as well).
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/e2e.sh" --cluster kind "$@"
