#!/usr/bin/env bash
# The one command for local development: check the machine, create the kind
# cluster from kind-config.yaml if it does not exist yet, select its kubectl
# context, then run `tilt up`. Safe to run again at any time; arguments go to
# the Tiltfile's flags, e.g.  scripts/dev-up.sh --skip-observability --build=docker
#
#   scripts/dev-up.sh --check [FLAGS]   only the checks below, then exit
#
# Checks, each failure naming its fix: docker, kind, kubectl and tilt installed;
# kind new enough for the pinned node image; cargo when the API is compiled on
# this host (Linux, unless --build=docker); Docker running with enough memory;
# the ports the platform binds free (80/443 for the ingress, Tilt's UI and its
# port forwards).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG="$ROOT/kind-config.yaml"
CLUSTER="$(sed -n 's/^name:[[:space:]]*//p' "$CONFIG")"
CONTEXT="kind-$CLUSTER"
# kind only supports the node images built for its own release; the image in
# kind-config.yaml was built for v0.33.0.
KIND_MIN=0.33.0
# The dev image's glibc (Debian 13 trixie); the Tiltfile compiles in docker mode
# on a newer host glibc, so cargo is needed only at or below it.
DEV_IMAGE_GLIBC=2.41
TILT_UI_PORT=10350

log() { printf '==> %s\n' "$*"; }
problems=0
problem() { problems=$((problems + 1)); printf 'dev-up: %s\n' "$*" >&2; }
# version_lt A B: A sorts before B as a version.
version_lt() { [[ "$1" != "$2" && "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$1" ]]; }

check_only=false
if [[ "${1:-}" == --check ]]; then
  check_only=true
  shift
fi
build_flag="" observability=true
for arg in "$@"; do
  case "$arg" in
    --build=*) build_flag="${arg#--build=}" ;;
    --skip-observability | --skip-observability=true) observability=false ;;
  esac
done

# ---- tools ---------------------------------------------------------------------
for tool in docker kind kubectl tilt; do
  command -v "$tool" >/dev/null || problem "$tool is not installed (docs/dev-loop.md, Prerequisites)"
done
if command -v kind >/dev/null; then
  kind_version="$(kind version | awk '{print $2}')"
  kind_version="${kind_version#v}"
  if version_lt "$kind_version" "$KIND_MIN"; then
    problem "kind $kind_version is older than $KIND_MIN, which built the node image in kind-config.yaml:" \
            "install kind v$KIND_MIN or newer (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
  fi
fi
host_build=false
if [[ "$build_flag" == host ]]; then
  host_build=true
elif [[ -z "$build_flag" && "$(uname -s)" == Linux ]]; then
  glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')" || glibc=""
  if [[ -n "$glibc" ]] && ! version_lt "$DEV_IMAGE_GLIBC" "$glibc"; then
    host_build=true
  fi
fi
if $host_build && ! command -v cargo >/dev/null; then
  problem "cargo not found: on Linux the API is compiled on the host. Install Rust with rustup" \
          "(https://rustup.rs), or compile in a container: scripts/dev-up.sh --build=docker"
fi

# ---- Docker ----------------------------------------------------------------------
if command -v docker >/dev/null; then
  if ! mem="$(docker info --format '{{.MemTotal}}' 2>/dev/null)"; then
    problem "Docker is not running: start Docker Desktop, or the docker service (sudo systemctl start docker)"
  else
    # The whole stack needs ~4 GiB; without observability ~2.5 GiB.
    need_mib=4096
    $observability || need_mib=2560
    if ((mem / 1048576 < need_mib - 256)); then
      problem "Docker has $((mem / 1048576)) MiB of memory, the platform needs about $need_mib MiB:" \
              "raise it (Docker Desktop: Settings > Resources > Memory)" \
              "$($observability && echo 'or run with --skip-observability')"
    fi
  fi
fi

# ---- ports ---------------------------------------------------------------------------
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
cluster_exists=false
if command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  cluster_exists=true
fi
tilt_running=false
if listening "$TILT_UI_PORT" && command -v tilt >/dev/null && tilt get session >/dev/null 2>&1; then
  tilt_running=true
  problem "Tilt is already running (http://localhost:$TILT_UI_PORT): use that one, or stop it first (Ctrl-C in its terminal)"
fi
ports=()
# The cluster's own node container holds 80/443 once it exists.
$cluster_exists || ports+=(80 443)
$tilt_running || ports+=(5432 8000 "$TILT_UI_PORT")
if $observability && ! $tilt_running; then ports+=(3000 9090); fi
for port in ${ports[@]+"${ports[@]}"}; do
  if listening "$port"; then
    problem "port $port on 127.0.0.1 is in use; stop what listens there (lsof -nP -iTCP:$port -sTCP:LISTEN shows it)"
  fi
done

if ((problems)); then
  echo "dev-up: $problems problem(s); fix them and run scripts/dev-up.sh again" >&2
  exit 1
fi
compile="API compiled in a container"
$host_build && compile="cargo for the host build"
log "checks passed: tools, kind >= $KIND_MIN, $compile, Docker memory, ports"
$check_only && exit 0

# ---- cluster, context, tilt up --------------------------------------------------------------
if $cluster_exists; then
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
log "tilt up (UI: http://localhost:$TILT_UI_PORT; Ctrl-C leaves everything running, \`tilt down\` removes it)"
if (($#)); then
  exec tilt up -- "$@"
fi
exec tilt up
