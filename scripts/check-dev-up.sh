#!/usr/bin/env bash
# Tests of scripts/dev-up.sh's machine checks (`dev-up.sh --check`), without
# kind, Tilt or a cluster: each case runs it with stand-in docker/kind/kubectl/
# tilt/cargo commands on PATH, inside an empty network namespace (unshare) so the
# ports 80/443/3000/5432/8000/9090/10350 are free or taken exactly as the case
# says. Prints one PASS/FAIL per case and "N passed, N failed".
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
cat >"$fake/kind" <<'EOF'
#!/bin/sh
case "$1" in
  version) echo "kind v$FAKE_KIND_VERSION go1.24.0 linux/amd64" ;;
  get) exit 0 ;;
esac
EOF
printf '#!/bin/sh\nexit 0\n' >"$fake/kubectl"
# `tilt get session` fails: no Tilt is running.
printf '#!/bin/sh\nexit 1\n' >"$fake/tilt"
mkdir -p "$WORK/cargo-bin"
printf '#!/bin/sh\nexit 0\n' >"$WORK/cargo-bin/cargo"
chmod +x "$fake"/* "$WORK/cargo-bin/cargo"
# A PATH with the system tools but none of the developer's (cargo lives in ~/.cargo/bin).
BASE_PATH="$fake:/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"
if PATH="/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin" command -v cargo >/dev/null; then
  echo "FAIL check-dev-up: cargo is in a system directory; the no-cargo case cannot be made"
  exit 1
fi

# run_case NAME EXPECT_RC "PORTS TO TAKE" "EXTRA PATH" ENV... -- DEV_UP_ARGS...
# The output must contain every line of $WANT.
run_case() {
  local name="$1" want_rc="$2" listen="$3" extra_path="$4"
  shift 4
  local envs=()
  while (($#)) && [[ "$1" != -- ]]; do envs+=("$1"); shift; done
  shift
  local out rc=0
  # The inner script is single-quoted on purpose: it expands inside the namespace.
  # shellcheck disable=SC2016
  out="$(env "${envs[@]}" PATH="${extra_path:+$extra_path:}$BASE_PATH" LISTEN="$listen" \
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
             "$0" --check "$@" || rc=$?
             ((${#pids[@]} == 0)) || kill "${pids[@]}"
             exit "$rc"' "$ROOT/scripts/dev-up.sh" "$@" 2>&1)" || rc=$?
  local missing=()
  while IFS= read -r line; do
    [[ -z "$line" || "$out" == *"$line"* ]] || missing+=("$line")
  done <<<"$WANT"
  if [[ "$rc" == "$want_rc" && ${#missing[@]} -eq 0 ]]; then
    passed=$((passed + 1))
    echo "PASS dev-up --check: $name"
  else
    failed=$((failed + 1))
    echo "FAIL dev-up --check: $name (exit $rc, want $want_rc)"
    printf '    missing: %s\n' ${missing[@]+"${missing[@]}"}
    printf '%s\n' "$out" | sed 's/^/    | /'
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

echo "check-dev-up: $passed passed, $failed failed"
((failed == 0))
