#!/usr/bin/env bash
# The one command for local development: check the machine, create the cluster
# if it does not exist yet (kind from kind-config.yaml, or the minikube profile
# kindling), select its kubectl context, then run `tilt up`. Safe to run again
# at any time; other arguments go to the Tiltfile's flags, e.g.
#   scripts/dev-up.sh --skip-observability --build=docker
#
#   scripts/dev-up.sh --check [FLAGS]        only the checks below, then exit
#   scripts/dev-up.sh --no-tilt [FLAGS]      checks, cluster and context, no tilt up
#                                            (scripts/e2e.sh runs tilt ci itself)
#   --cluster kind|minikube                  kind (default) or minikube
#   --debug                                  (a Tiltfile flag) the API under gdbserver,
#                                            forwarded to 127.0.0.1:2345 (README, "Debugging")
#   --cpus N --memory MiB --driver NAME      minikube only: the profile's size
#                                            (default 4 CPUs, 6144 MiB) and driver
#                                            (default docker)
#
# Checks, each failure naming its fix: the cluster tool (kind or minikube, new
# enough for the pinned Kubernetes), docker, kubectl and tilt installed; cargo
# when the API is compiled on this host (Linux, unless --build=docker); Docker
# running with enough memory; the ports the platform binds free (80/443 for
# kind's ingress, Tilt's UI and its port forwards); on minikube, an existing
# profile kindling started with the same settings (minikube cannot change them
# on an existing profile).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG="$ROOT/kind-config.yaml"
CLUSTER="$(sed -n 's/^name:[[:space:]]*//p' "$CONFIG")"
# kind only supports the node images built for its own release; the image in
# kind-config.yaml was built for v0.33.0.
KIND_MIN=0.33.0
# minikube: the profile is named like the kind cluster, so its kubectl context
# is "kindling" (the Tiltfile accepts exactly that and kind-kindling).
PROFILE="$CLUSTER"
# v1.38.1 is the first minikube release that supports Kubernetes 1.35 at a
# patch (v1.35.1, its newest) and kind-config.yaml's node image is 1.35 too:
# same minor on both clusters. minikube does not support patches newer than
# its release knows, so this is v1.35.1 and not kind's v1.35.8.
MINIKUBE_MIN=1.38.1
MINIKUBE_K8S=v1.35.1
# calico enforces NetworkPolicy (minikube's default CNI does not, by design) and
# is the CNI minikube's own network-policy guide starts with; docs/dev-loop.md
# says why not cilium.
MINIKUBE_CNI=calico
# docker: Tilt builds images in minikube's Docker (docker-env), which needs the
# docker container runtime.
MINIKUBE_RUNTIME=docker
MINIKUBE_ADDONS=(ingress metrics-server)
# The whole stack needs ~4 GiB on kind; minikube adds calico, its addons and
# its own system pods: 6 GiB leaves room, 5 GiB is the least that fits.
MINIKUBE_CPUS=4
MINIKUBE_MEMORY=6144
# The dev image's glibc (Debian 13 trixie); the Tiltfile compiles in docker mode
# on a newer host glibc, so cargo is needed only at or below it.
DEV_IMAGE_GLIBC=2.41
TILT_UI_PORT=10350

log() { printf '==> %s\n' "$*"; }
problems=0
problem() { problems=$((problems + 1)); printf 'dev-up: %s\n' "$*" >&2; }
usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
# version_lt A B: A sorts before B as a version.
version_lt() { [[ "$1" != "$2" && "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$1" ]]; }
# positive_int FLAG VALUE: exit with usage unless VALUE is a positive integer.
positive_int() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "dev-up: $1 needs a positive number, not '$2'" >&2; exit 2; }; }

check_only=false no_tilt=false
cluster=kind
cpus="$MINIKUBE_CPUS" memory="$MINIKUBE_MEMORY" driver=docker minikube_flags=false
tilt_args=()
while (($#)); do
  case "$1" in
    --check) check_only=true ;;
    --no-tilt) no_tilt=true ;;
    --cluster | --cpus | --memory | --driver)
      (($# >= 2)) || { echo "dev-up: $1 needs a value" >&2; usage; }
      set -- "$1=$2" "${@:3}"
      continue ;;
    --cluster=*) cluster="${1#--cluster=}" ;;
    --cpus=*) cpus="${1#--cpus=}"; positive_int --cpus "$cpus"; minikube_flags=true ;;
    --memory=*) memory="${1#--memory=}"; positive_int --memory "$memory"; minikube_flags=true ;;
    --driver=*) driver="${1#--driver=}"; minikube_flags=true ;;
    -h | --help) usage ;;
    *) tilt_args+=("$1") ;;
  esac
  shift
done
case "$cluster" in
  kind) CONTEXT="kind-$CLUSTER" ;;
  minikube) CONTEXT="$PROFILE" ;;
  *) echo "dev-up: --cluster must be kind or minikube, not '$cluster'" >&2; exit 2 ;;
esac
if $minikube_flags && [[ "$cluster" != minikube ]]; then
  echo "dev-up: --cpus, --memory and --driver size the minikube profile; add --cluster minikube" >&2
  exit 2
fi

build_flag="" observability=true debug=false
for arg in ${tilt_args[@]+"${tilt_args[@]}"}; do
  case "$arg" in
    --build=*) build_flag="${arg#--build=}" ;;
    --skip-observability | --skip-observability=true) observability=false ;;
    --debug | --debug=true) debug=true ;;
  esac
done

# ---- tools ---------------------------------------------------------------------
tools=(docker kubectl tilt)
if [[ "$cluster" == kind ]]; then
  tools+=(kind)
else
  # python3 reads `minikube profile list -o json`.
  tools+=(minikube python3)
fi
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || problem "$tool is not installed (docs/dev-loop.md, Prerequisites)"
done
if [[ "$cluster" == kind ]] && command -v kind >/dev/null; then
  kind_version="$(kind version | awk '{print $2}')"
  kind_version="${kind_version#v}"
  if version_lt "$kind_version" "$KIND_MIN"; then
    problem "kind $kind_version is older than $KIND_MIN, which built the node image in kind-config.yaml:" \
            "install kind v$KIND_MIN or newer (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
  fi
fi
if [[ "$cluster" == minikube ]] && command -v minikube >/dev/null; then
  minikube_version="$(minikube version --short)"
  minikube_version="${minikube_version#v}"
  if version_lt "$minikube_version" "$MINIKUBE_MIN"; then
    problem "minikube $minikube_version is older than $MINIKUBE_MIN, the first release that runs Kubernetes" \
            "$MINIKUBE_K8S: install minikube v$MINIKUBE_MIN or newer (https://minikube.sigs.k8s.io/docs/start/)"
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
# The whole stack needs ~4 GiB; without observability ~2.5 GiB.
need_mib=4096
$observability || need_mib=2560
if [[ "$cluster" == minikube ]]; then
  # calico, minikube's addons and system pods on top.
  need_mib=$((need_mib + 1024))
  if ((memory < need_mib)); then
    problem "--memory $memory MiB is too little for the platform on minikube (about $need_mib MiB):" \
            "pass --memory $MINIKUBE_MEMORY$($observability && echo ', or run with --skip-observability')"
  fi
fi
if command -v docker >/dev/null; then
  if ! mem="$(docker info --format '{{.MemTotal}}' 2>/dev/null)"; then
    problem "Docker is not running: start Docker Desktop, or the docker service (sudo systemctl start docker)"
  elif [[ "$cluster" == kind ]]; then
    if ((mem / 1048576 < need_mib - 256)); then
      problem "Docker has $((mem / 1048576)) MiB of memory, the platform needs about $need_mib MiB:" \
              "raise it (Docker Desktop: Settings > Resources > Memory)" \
              "$($observability && echo 'or run with --skip-observability')"
    fi
  elif [[ "$driver" == docker ]] && ((mem / 1048576 < memory)); then
    # The docker driver runs the node in a container inside Docker's memory.
    problem "Docker has $((mem / 1048576)) MiB of memory, the minikube profile is to get --memory $memory MiB:" \
            "raise Docker's memory (Docker Desktop: Settings > Resources > Memory) or pass a smaller" \
            "--memory (at least $need_mib)"
  fi
fi

# ---- minikube profile -------------------------------------------------------------------
# profile_settings JSON: "Status|Driver|CPUs|Memory|KubernetesVersion|CNI|ContainerRuntime"
# of the profile, or nothing when it does not exist. "|", not spaces: read
# collapses runs of whitespace, so an empty CNI (minikube's default) would
# shift the fields after it.
profile_settings() {
  PROFILE="$PROFILE" python3 -c '
import json, os, sys
body = json.loads(sys.argv[1])
for p in body.get("valid") or []:
    if p.get("Name") == os.environ["PROFILE"]:
        c = p.get("Config") or {}
        k = c.get("KubernetesConfig") or {}
        print(p.get("Status", ""), c.get("Driver", ""), c.get("CPUs", ""), c.get("Memory", ""),
              k.get("KubernetesVersion", ""), k.get("CNI", ""), k.get("ContainerRuntime", ""), sep="|")' "$1"
}
profile_exists=false profile_running=false
if [[ "$cluster" == minikube ]] && command -v minikube >/dev/null && command -v python3 >/dev/null; then
  # With no profiles at all it prints {"valid": [], ...} and exits 0.
  if ! profiles="$(minikube profile list -o json 2>&1)"; then
    problem "minikube profile list failed: $profiles"
    profiles='{}'
  fi
  IFS='|' read -r p_status p_driver p_cpus p_memory p_k8s p_cni p_runtime <<<"$(profile_settings "$profiles")"
  if [[ -n "${p_status:-}" ]]; then
    profile_exists=true
    [[ "$p_status" == Running ]] && profile_running=true
    differ=()
    [[ "$p_driver" == "$driver" ]] || differ+=("driver $p_driver (want $driver)")
    [[ "$p_cpus" == "$cpus" ]] || differ+=("$p_cpus CPUs (want $cpus)")
    [[ "$p_memory" == "$memory" ]] || differ+=("$p_memory MiB (want $memory)")
    [[ "$p_k8s" == "$MINIKUBE_K8S" ]] || differ+=("Kubernetes $p_k8s (want $MINIKUBE_K8S)")
    [[ "$p_cni" == "$MINIKUBE_CNI" ]] || differ+=("CNI ${p_cni:-default} (want $MINIKUBE_CNI)")
    [[ "$p_runtime" == "$MINIKUBE_RUNTIME" ]] || differ+=("runtime $p_runtime (want $MINIKUBE_RUNTIME)")
    if ((${#differ[@]})); then
      joined="$(printf '%s, ' "${differ[@]}")"
      problem "minikube profile $PROFILE exists ($p_status) with other settings: ${joined%, }." \
              "minikube cannot change them on an existing profile: delete it (minikube delete -p $PROFILE)" \
              "and run again, or pass the --cpus/--memory/--driver it was made with"
    fi
  fi
fi

# ---- ports ---------------------------------------------------------------------------
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
cluster_exists=false
if [[ "$cluster" == kind ]] && command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  cluster_exists=true
fi
tilt_running=false
if listening "$TILT_UI_PORT" && command -v tilt >/dev/null && tilt get session >/dev/null 2>&1; then
  tilt_running=true
  problem "Tilt is already running (http://localhost:$TILT_UI_PORT): use that one, or stop it first (Ctrl-C in its terminal)"
fi
ports=()
# kind's node container holds 80/443 once it exists. minikube binds nothing on
# 80/443 (its ingress is reached through `minikube tunnel` or the node IP).
if [[ "$cluster" == kind ]] && ! $cluster_exists; then ports+=(80 443); fi
$tilt_running || ports+=(5432 8000 "$TILT_UI_PORT")
if $observability && ! $tilt_running; then ports+=(3000 9090); fi
if $debug && ! $tilt_running; then ports+=(2345); fi  # gdbserver's forward
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
if [[ "$cluster" == kind ]]; then
  log "checks passed: tools, kind >= $KIND_MIN, $compile, Docker memory, ports"
else
  log "checks passed: tools, minikube >= $MINIKUBE_MIN, $compile, memory for $memory MiB, profile $PROFILE, ports"
fi
$check_only && exit 0

# ---- cluster, context, tilt up --------------------------------------------------------------
if [[ "$cluster" == kind ]]; then
  if $cluster_exists; then
    log "kind cluster $CLUSTER exists"
  else
    log "creating kind cluster $CLUSTER from kind-config.yaml (about a minute)"
    kind create cluster --config "$CONFIG" --wait 120s
  fi
  # kind writes the context on create; after a restart of Docker or a lost
  # kubeconfig entry, export it again.
  kubectl config get-contexts "$CONTEXT" >/dev/null 2>&1 || kind export kubeconfig --name "$CLUSTER"
else
  addon_flags=()
  for addon in "${MINIKUBE_ADDONS[@]}"; do addon_flags+=(--addons "$addon"); done
  if $profile_running; then
    log "minikube profile $PROFILE is running"
    # Idempotent: an addon already enabled stays as it is.
    for addon in "${MINIKUBE_ADDONS[@]}"; do minikube -p "$PROFILE" addons enable "$addon"; done
    # Rewrites the kubeconfig entry if it was lost or the node's address changed.
    minikube -p "$PROFILE" update-context
  else
    if $profile_exists; then
      log "starting the stopped minikube profile $PROFILE"
    else
      log "creating minikube profile $PROFILE: Kubernetes $MINIKUBE_K8S, $MINIKUBE_CNI, $cpus CPUs, $memory MiB (a few minutes)"
    fi
    # Every setting is passed on a restart too, so a start never drifts from
    # what the checks above compared.
    minikube start -p "$PROFILE" --driver "$driver" --kubernetes-version "$MINIKUBE_K8S" \
      --container-runtime "$MINIKUBE_RUNTIME" --cni "$MINIKUBE_CNI" --cpus "$cpus" --memory "$memory" \
      "${addon_flags[@]}" --wait all
  fi
fi
kubectl config use-context "$CONTEXT" >/dev/null
log "kubectl context $CONTEXT"
$no_tilt && exit 0

cd "$ROOT"
log "tilt up (UI: http://localhost:$TILT_UI_PORT; Ctrl-C leaves everything running, \`tilt down\` removes it)"
if ((${#tilt_args[@]})); then
  exec tilt up -- "${tilt_args[@]}"
fi
exec tilt up
