#!/usr/bin/env bash
# Tests of scripts/dev-up.sh, without kind, minikube, Tilt or a cluster: each
# case runs it with stand-in docker/kind/minikube/kubectl/tilt/cargo commands on
# PATH, inside an empty network namespace (unshare) so the ports
# 80/443/3000/5432/8000/9090/10350 are free or taken exactly as the case says.
# Most cases run the machine checks (`dev-up.sh --check`); the full runs let it
# go on to create the cluster and start Tilt, and the stand-ins record every
# call (kind create, minikube start with its profile, Kubernetes version,
# addons and CNI, kubectl use-context, tilt up) for the case to assert.
# Prints one PASS/FAIL per case and "N passed, N failed".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0

if ! unshare -rn true 2>/dev/null || ! command -v ip >/dev/null; then
  # Without a private network namespace the machine's own listeners decide the
  # port checks, so the cases cannot be made exact.
  if [[ "${KINDLING_REQUIRE_UNSHARE:-0}" == 1 ]]; then
    echo "FAIL check-dev-up: needs unshare -rn and ip (util-linux, iproute2)"
    exit 1
  fi
  echo "SKIPPED check-dev-up: no unshare -rn / ip on this machine"
  exit 0
fi

# Stand-ins: behaviour set through FAKE_* variables.
fake="$WORK/bin"
mkdir -p "$fake"
cat >"$fake/docker" <<'EOF'
#!/bin/sh
# docker info --format '{{.MemTotal}}' -> FAKE_DOCKER_MEM bytes; "down" fails like a stopped daemon.
[ "$FAKE_DOCKER_MEM" = down ] && exit 1
[ "$1" = info ] && echo "$FAKE_DOCKER_MEM"
exit 0
EOF
# Every stand-in below appends its command line to $FAKE_CALLS.
cat >"$fake/kind" <<'EOF'
#!/bin/sh
echo "kind $*" >>"$FAKE_CALLS"
case "$1" in
  version) echo "kind v$FAKE_KIND_VERSION go1.24.0 linux/amd64" ;;
  get) [ -n "${FAKE_KIND_CLUSTERS:-}" ] && echo "$FAKE_KIND_CLUSTERS" ;;
esac
exit 0
EOF
# minikube: FAKE_MINIKUBE_VERSION; FAKE_MINIKUBE_PROFILES is what
# `minikube profile list -o json` prints (default: no profiles, as minikube
# prints it).
cat >"$fake/minikube" <<'EOF'
#!/bin/sh
echo "minikube $*" >>"$FAKE_CALLS"
case "$*" in
  "version --short") echo "v$FAKE_MINIKUBE_VERSION" ;;
  "profile list -o json") echo "${FAKE_MINIKUBE_PROFILES:-{\"invalid\":[],\"valid\":[]\}}" ;;
esac
exit 0
EOF
printf '#!/bin/sh\necho "kubectl $*" >>"$FAKE_CALLS"\nexit 0\n' >"$fake/kubectl"
# `tilt get session` fails: no Tilt is running; `tilt up` returns at once.
cat >"$fake/tilt" <<'EOF'
#!/bin/sh
echo "tilt $*" >>"$FAKE_CALLS"
[ "$1" = up ]
EOF
mkdir -p "$WORK/cargo-bin"
printf '#!/bin/sh\nexit 0\n' >"$WORK/cargo-bin/cargo"
chmod +x "$fake"/* "$WORK/cargo-bin/cargo"
# A PATH with the system tools but none of the developer's (cargo lives in ~/.cargo/bin).
SYSTEM_PATH="/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"
for tool in cargo minikube; do
  if PATH="$SYSTEM_PATH" command -v "$tool" >/dev/null; then
    echo "FAIL check-dev-up: $tool is in a system directory; the case without it cannot be made"
    exit 1
  fi
done
# The same stand-ins less minikube, for the case where it is not installed.
mkdir -p "$WORK/bin-no-minikube"
for f in "$fake"/*; do [[ "$f" == */minikube ]] || ln -s "$f" "$WORK/bin-no-minikube/"; done
BIN="$fake"

# run_case NAME EXPECT_RC "PORTS TO TAKE" "EXTRA PATH" ENV... -- DEV_UP_ARGS...
# The output must contain every line of $WANT; the stand-ins' calls every line
# of $CALLS and none of $NO_CALLS (a line each, matched as substrings).
# `dev-up.sh --check ARGS` unless ENV has FULL=1: `dev-up.sh ARGS`.
CALLS="" NO_CALLS=""
run_case() {
  local name="$1" want_rc="$2" listen="$3" extra_path="$4"
  shift 4
  local calls="$WORK/calls.log"
  : >"$calls"
  local envs=(FAKE_CALLS="$calls")
  while (($#)) && [[ "$1" != -- ]]; do envs+=("$1"); shift; done
  shift
  local out rc=0
  # The inner script is single-quoted on purpose: it expands inside the namespace.
  # shellcheck disable=SC2016
  out="$(env "${envs[@]}" PATH="${extra_path:+$extra_path:}$BIN:$SYSTEM_PATH" LISTEN="$listen" \
           unshare -rn bash -c '
             ip link set lo up
             pids=()
             for p in $LISTEN; do
               python3 -c "import socket, time; s = socket.socket(); s.bind((\"127.0.0.1\", $p)); s.listen(); time.sleep(60)" \
                 </dev/null >/dev/null 2>&1 &
               pids+=($!)
             done
             for p in $LISTEN; do
               for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
             done
             rc=0
             if [[ "${FULL:-0}" == 1 ]]; then "$0" "$@" || rc=$?; else "$0" --check "$@" || rc=$?; fi
             ((${#pids[@]} == 0)) || kill "${pids[@]}"
             exit "$rc"' "$ROOT/scripts/dev-up.sh" "$@" 2>&1)" || rc=$?
  local missing=()
  while IFS= read -r line; do
    [[ -z "$line" || "$out" == *"$line"* ]] || missing+=("$line")
  done <<<"$WANT"
  local recorded
  recorded="$(cat "$calls")"
  while IFS= read -r line; do
    [[ -z "$line" || "$recorded" == *"$line"* ]] || missing+=("call: $line")
  done <<<"$CALLS"
  while IFS= read -r line; do
    [[ -z "$line" || "$recorded" != *"$line"* ]] || missing+=("(unwanted) call: $line")
  done <<<"$NO_CALLS"
  CALLS="" NO_CALLS=""
  if [[ "$rc" == "$want_rc" && ${#missing[@]} -eq 0 ]]; then
    passed=$((passed + 1))
    echo "PASS dev-up: $name"
  else
    failed=$((failed + 1))
    echo "FAIL dev-up: $name (exit $rc, want $want_rc)"
    printf '    missing: %s\n' ${missing[@]+"${missing[@]}"}
    printf '%s\n' "$out" | sed 's/^/    | /'
    printf '%s\n' "$recorded" | sed 's/^/    calls| /'
  fi
}

WANT="checks passed"
run_case "a ready machine passes" 0 "" "$WORK/cargo-bin" FAKE_KIND_VERSION=0.33.0 FAKE_DOCKER_MEM=8589934592 --

WANT="kind 0.29.0 is older than 0.33.0
install kind v0.33.0 or newer
cargo not found
scripts/dev-up.sh --build=docker
Docker has 2048 MiB of memory, the platform needs about 4096 MiB
Settings > Resources > Memory
port 80 on 127.0.0.1 is in use
port 8000 on 127.0.0.1 is in use
5 problem(s)"
run_case "old kind, no cargo, too little memory, ports 80/8000 taken: each named with its fix" 1 "80 8000" "" \
  FAKE_KIND_VERSION=0.29.0 FAKE_DOCKER_MEM=2147483648 --
WANT="checks passed"
run_case "--build=docker needs no cargo; --skip-observability needs less memory and no 3000/9090" 0 "3000 9090" "" \
  FAKE_KIND_VERSION=0.33.1 FAKE_DOCKER_MEM=3221225472 -- --build=docker --skip-observability
WANT="Docker is not running"
run_case "Docker not running" 1 "" "$WORK/cargo-bin" FAKE_KIND_VERSION=0.33.0 FAKE_DOCKER_MEM=down --
WANT="port 443 on 127.0.0.1 is in use"
run_case "port 443 taken" 1 "443" "$WORK/cargo-bin" FAKE_KIND_VERSION=0.33.0 FAKE_DOCKER_MEM=8589934592 --

# ---- full runs: what dev-up.sh asks kind, minikube, kubectl and tilt to do -----
MEM_8G=8589934592
WANT="creating kind cluster kindling"
CALLS="kind create cluster --config $ROOT/kind-config.yaml --wait 120s
kubectl config use-context kind-kindling
tilt up -- --build=docker"
NO_CALLS="minikube"
run_case "kind (the default): creates the cluster from kind-config.yaml, selects kind-kindling, tilt up with the flags" \
  0 "" "" FULL=1 FAKE_KIND_VERSION=0.33.0 FAKE_DOCKER_MEM=$MEM_8G -- --build=docker

WANT="kind cluster kindling exists"
CALLS="kubectl config use-context kind-kindling
tilt up"
NO_CALLS="kind create"
run_case "kind: an existing cluster is reused" 0 "80 443" "" FULL=1 FAKE_KIND_CLUSTERS=kindling \
  FAKE_KIND_VERSION=0.33.0 FAKE_DOCKER_MEM=$MEM_8G -- --build=docker

MINIKUBE_START="minikube start -p kindling --driver docker --kubernetes-version v1.35.1 --container-runtime docker --cni calico"
WANT="creating minikube profile kindling: Kubernetes v1.35.1, calico, 4 CPUs, 6144 MiB"
CALLS="$MINIKUBE_START --cpus 4 --memory 6144 --addons ingress --addons metrics-server --wait all
kubectl config use-context kindling
tilt up -- --build=docker --skip-observability"
NO_CALLS="kind "
run_case "minikube: profile kindling, Kubernetes v1.35.1, calico, docker runtime, ingress + metrics-server addons; 80/443 not needed" \
  0 "80 443" "" FULL=1 FAKE_MINIKUBE_VERSION=1.38.1 FAKE_DOCKER_MEM=$MEM_8G -- \
  --cluster minikube --build=docker --skip-observability

WANT="checks passed: tools, minikube >= 1.38.1"
CALLS="$MINIKUBE_START --cpus 6 --memory 10240 --addons ingress --addons metrics-server --wait all"
run_case "minikube: --cpus/--memory (both spellings) size the profile" 0 "" "" FULL=1 FAKE_MINIKUBE_VERSION=1.39.0 \
  FAKE_DOCKER_MEM=17179869184 -- --cluster=minikube --cpus 6 --memory=10240 --build=docker

WANT="kubectl context kindling"
CALLS="$MINIKUBE_START --cpus 4 --memory 6144 --addons ingress --addons metrics-server --wait all
kubectl config use-context kindling"
NO_CALLS="tilt up"
run_case "minikube --no-tilt (scripts/e2e.sh): the profile and its context, no tilt up" 0 "" "" FULL=1 \
  FAKE_MINIKUBE_VERSION=1.38.1 FAKE_DOCKER_MEM=$MEM_8G -- --no-tilt --cluster minikube --build=docker

running_profile() {  # STATUS MEMORY K8S CNI: the JSON `minikube profile list -o json` prints
  printf '{"invalid":[],"valid":[{"Name":"kindling","Status":"%s","Config":{"Name":"kindling","Driver":"docker","CPUs":4,"Memory":%s,"KubernetesConfig":{"KubernetesVersion":"%s","ContainerRuntime":"docker","CNI":"%s"}}}]}' "$@"
}
WANT="minikube profile kindling is running"
CALLS="minikube -p kindling addons enable ingress
minikube -p kindling addons enable metrics-server
minikube -p kindling update-context
kubectl config use-context kindling
tilt up"
NO_CALLS="minikube start"
run_case "minikube: a running profile with the same settings is reused; the addons are enabled (idempotent)" 0 "" "" \
  FULL=1 FAKE_MINIKUBE_VERSION=1.38.1 FAKE_DOCKER_MEM=$MEM_8G \
  "FAKE_MINIKUBE_PROFILES=$(running_profile Running 6144 v1.35.1 calico)" -- --cluster minikube --build=docker

WANT="starting the stopped minikube profile kindling"
CALLS="$MINIKUBE_START --cpus 4 --memory 6144 --addons ingress --addons metrics-server --wait all"
run_case "minikube: a stopped profile is started with the same settings" 0 "" "" FULL=1 FAKE_MINIKUBE_VERSION=1.38.1 \
  FAKE_DOCKER_MEM=$MEM_8G "FAKE_MINIKUBE_PROFILES=$(running_profile Stopped 6144 v1.35.1 calico)" -- \
  --cluster minikube --build=docker

WANT="minikube profile kindling exists (Running) with other settings: 4096 MiB (want 6144), Kubernetes v1.34.0 (want v1.35.1), CNI default (want calico)
minikube delete -p kindling
1 problem(s)"
NO_CALLS="minikube start
tilt up"
run_case "minikube: a profile running with other settings (memory, Kubernetes, no CNI) is refused, naming the fix" 1 "" "" \
  FULL=1 FAKE_MINIKUBE_VERSION=1.38.1 FAKE_DOCKER_MEM=$MEM_8G \
  "FAKE_MINIKUBE_PROFILES=$(running_profile Running 4096 v1.34.0 '')" -- --cluster minikube --build=docker

WANT="minikube 1.37.0 is older than 1.38.1
install minikube v1.38.1 or newer
Docker has 4096 MiB of memory, the minikube profile is to get --memory 6144 MiB
3 problem(s)"
run_case "minikube: too old, Docker's memory below the profile's, port 5432 taken" 1 "5432" "" \
  FAKE_MINIKUBE_VERSION=1.37.0 FAKE_DOCKER_MEM=4294967296 -- --cluster minikube --build=docker

WANT="--memory 4096 MiB is too little for the platform on minikube (about 5120 MiB)
or run with --skip-observability"
run_case "minikube: --memory too small for the whole stack" 1 "" "" FAKE_MINIKUBE_VERSION=1.38.1 \
  FAKE_DOCKER_MEM=$MEM_8G -- --cluster minikube --memory 4096 --build=docker
WANT="checks passed"
run_case "minikube: --memory 4096 is enough with --skip-observability" 0 "" "" FAKE_MINIKUBE_VERSION=1.38.1 \
  FAKE_DOCKER_MEM=$MEM_8G -- --cluster minikube --memory 4096 --build=docker --skip-observability

WANT="minikube is not installed"
BIN="$WORK/bin-no-minikube"
run_case "minikube: not installed" 1 "" "" FAKE_DOCKER_MEM=$MEM_8G -- --cluster minikube --build=docker
BIN="$fake"

WANT="--cpus, --memory and --driver size the minikube profile; add --cluster minikube"
run_case "--memory without --cluster minikube is a usage error" 2 "" "" FAKE_KIND_VERSION=0.33.0 \
  FAKE_DOCKER_MEM=$MEM_8G -- --memory 8192
WANT="--cluster must be kind or minikube, not 'k3d'"
run_case "an unknown --cluster is a usage error" 2 "" "" FAKE_DOCKER_MEM=$MEM_8G -- --cluster k3d

echo "check-dev-up: $passed passed, $failed failed"
((failed == 0))
