"""scripts/db.sh against the test Postgres (KINDLING_DB_TARGET=env): the same script the
Tiltfile's db-* buttons run, with its cluster layer swapped for `docker exec` into a
Postgres container (the client tools next to the server, as `kubectl exec` runs them in
the pod), `kindling migrate` for the migration Job, and `kindling serve` on this host as
the API that seed writes through.

snapshot -> change rows -> restore gives back exactly the snapshot's rows, and the API
serves them without a restart; reset leaves no rows at the current schema; seed twice
gives the same N rows; a missing snapshot, a snapshot from a newer schema and every verb
with Postgres stopped exit non-zero, say why, and leave the database as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from kindling_verify.helpers import ROOT, built_kindling, free_port, http, start_api, stop_process, wait_for

DB_SH = ROOT / "scripts" / "db.sh"
IMAGE = os.environ.get("KINDLING_TEST_POSTGRES_IMAGE", "local/postgres:test")
PASSWORD = "kindling-test"
MIGRATIONS = sorted(p.name.split("_")[0] for p in (ROOT / "migrations").glob("*.sql"))
VERBS = [["snapshot"], ["restore"], ["reset"], ["seed", "3"], ["psql"]]


class Database:
    """A Postgres container set up like the pod (user and database kindling), and db.sh's
    environment for it."""

    def __init__(self, work: Path):
        self.port = free_port()
        self.container = subprocess.run(
            ["docker", "run", "-d", "-e", "POSTGRES_USER=kindling", "-e", f"POSTGRES_PASSWORD={PASSWORD}",
             "-e", "POSTGRES_DB=kindling", "-p", f"127.0.0.1:{self.port}:5432", IMAGE],
            capture_output=True, text=True, check=True).stdout.strip()
        self.url = f"postgres://kindling:{PASSWORD}@127.0.0.1:{self.port}/kindling"
        self.snapshots = work / "snapshots"
        self.wait_ready()

    def wait_ready(self) -> None:
        # Over TCP: during initdb the image's temporary server listens on the socket only.
        ok = wait_for(lambda: subprocess.run(["docker", "exec", self.container, "pg_isready", "-h", "127.0.0.1",
                                              "-U", "kindling", "-d", "kindling"],
                                             capture_output=True).returncode == 0, 90, 0.3)
        assert ok, f"Postgres ({IMAGE}) not ready in 90 s (verify/docker-setup.sh builds it)"

    def env(self, binary: Path, api_port: int) -> dict:
        return dict(os.environ, KINDLING_DB_TARGET="env", PGHOST="127.0.0.1", PGPORT="5432", PGUSER="kindling",
                    PGPASSWORD=PASSWORD, PGDATABASE="kindling", KINDLING_DB_EXEC=f"docker exec -i {self.container}",
                    KINDLING_DB_MIGRATE=f"DATABASE_URL={self.url} {binary} migrate",
                    KINDLING_API_URL=f"http://127.0.0.1:{api_port}", KINDLING_SNAPSHOT_DIR=str(self.snapshots),
                    KINDLING_DB_OPEN_TERMINAL="0")

    def sql(self, statement: str, db: str = "kindling") -> str:
        return subprocess.run(["docker", "exec", self.container, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-At",
                               "-U", "kindling", "-d", db, "-c", statement],
                              capture_output=True, text=True, check=True).stdout.strip()

    def state(self) -> dict:
        """Every row of both tables and the applied migrations, in id order."""
        return json.loads(self.sql(
            "SELECT jsonb_build_object("
            "'items', (SELECT coalesce(jsonb_agg(i ORDER BY id), '[]') FROM items i), "
            "'users', (SELECT coalesce(jsonb_agg(u ORDER BY id), '[]') FROM users u), "
            "'migrations', (SELECT jsonb_agg(version ORDER BY version) FROM _sqlx_migrations))"))

    def databases(self) -> list[str]:
        return self.sql("SELECT datname FROM pg_database ORDER BY 1", db="postgres").splitlines()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("db-script")
    # KINDLING_TEST_BINARY: a kindling binary built elsewhere (while the tree does not
    # compile, say); by default target/debug/kindling, brought up to date.
    binary = Path(os.environ["KINDLING_TEST_BINARY"]) if os.environ.get("KINDLING_TEST_BINARY") else built_kindling()
    db = Database(work)
    api_port = free_port()
    subprocess.run([str(binary), "migrate"], env=dict(os.environ, DATABASE_URL=db.url), check=True,
                   capture_output=True)
    api = start_api(binary, dict(os.environ, DATABASE_URL=db.url, ROCKET_PORT=str(api_port), RUST_LOG="warn"),
                    work / "api.log", api_port)
    yield db, db.env(binary, api_port), api_port
    stop_process(api)
    subprocess.run(["docker", "rm", "-f", "-v", db.container], capture_output=True)


def db_sh(env: dict, *args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([str(DB_SH), *args], env=env, capture_output=True, text=True, timeout=120)
    print(f"$ scripts/db.sh {' '.join(args)}  (exit {p.returncode})\n{p.stdout}{p.stderr}")
    return p


def ok(env: dict, *args: str) -> str:
    p = db_sh(env, *args)
    assert p.returncode == 0, f"db.sh {' '.join(args)} exited {p.returncode}: {p.stderr[-1500:]}"
    return p.stdout


def api_items(api_port: int) -> list[dict]:
    """GET /api/items until it answers 200: the first request after a swap may meet a
    connection the swap ended (503, Retry-After) while the pool replaces it."""
    answers = []
    def fetch() -> bool:
        status, body, _ = http("GET", f"http://127.0.0.1:{api_port}/api/items?limit=200")
        answers.append(status)
        return status == 200
    assert wait_for(fetch, 15, 0.2), f"the API never answered 200 after the swap: {answers[-5:]}"
    print(f"API after the swap: {answers}")
    return json.loads(http("GET", f"http://127.0.0.1:{api_port}/api/items?limit=200")[1])["items"]


def test_snapshot_change_restore_gives_back_the_snapshots_rows(setup, summary):
    db, env, api_port = setup
    ok(env, "reset")
    ok(env, "seed", "12")
    before = db.state()
    out = ok(env, "snapshot", "round-trip")
    files = sorted(db.snapshots.glob("round-trip-*Z.dump"))
    assert len(files) == 1 and f"wrote {files[0]}" in out, out
    assert any(unit in out for unit in ("K)", "M)")), f"no size printed: {out}"
    db.sql("DELETE FROM items WHERE id % 2 = 0; UPDATE users SET email = 'changed@example.com' WHERE id = 1;"
           "INSERT INTO items (name) VALUES ('added after the snapshot')")
    changed = db.state()
    assert changed != before
    ok(env, "restore", "round-trip")
    after = db.state()
    assert after == before, "the restored rows differ from the snapshot's"
    counts = db.sql("SELECT (SELECT count(*) FROM items) || ' items, ' || (SELECT count(*) FROM users) || ' users'")
    summary(f"db.sh round trip: snapshot 12 items, 12 users; after the change "
            f"{len(changed['items'])} items; restored {counts}")
    assert [i["name"] for i in api_items(api_port)] == [i["name"] for i in before["items"]]
    assert not [d for d in db.databases() if "_scratch_" in d or "_replaced_" in d], db.databases()


def test_restore_without_a_name_takes_the_latest_snapshot(setup):
    db, env, _ = setup
    ok(env, "reset")
    ok(env, "seed", "2")
    ok(env, "snapshot", "older")
    ok(env, "seed", "4")
    ok(env, "snapshot", "newer")
    want = db.state()
    ok(env, "reset")
    out = ok(env, "restore")
    assert "newer-" in out and db.state() == want, out


def test_reset_leaves_no_rows_at_the_current_schema(setup):
    db, env, _ = setup
    ok(env, "seed", "5")
    out = ok(env, "reset")
    assert db.sql("SELECT count(*) FROM items") == "0" and db.sql("SELECT count(*) FROM users") == "0"
    applied = db.sql("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version").splitlines()
    assert applied == MIGRATIONS, f"applied {applied}, migrations/ has {MIGRATIONS}"
    assert f"schema {MIGRATIONS[-1]}" in out, out


def test_seed_twice_gives_the_same_rows(setup):
    db, env, _ = setup
    ok(env, "reset")
    first = ok(env, "seed", "7")
    rows = db.sql("SELECT name, description FROM items ORDER BY id; SELECT username, email FROM users ORDER BY id")
    second = ok(env, "seed", "7")
    assert "added 7 items and 7 users" in first and "added 0 items and 0 users" in second, first + second
    assert db.sql("SELECT name, description FROM items ORDER BY id; "
                  "SELECT username, email FROM users ORDER BY id") == rows
    assert rows.count("\n") + 1 == 14
    # Deterministic: after a reset the same count gives the same rows again.
    ok(env, "reset")
    ok(env, "seed", "7")
    assert db.sql("SELECT name, description FROM items ORDER BY id; "
                  "SELECT username, email FROM users ORDER BY id") == rows


def test_seed_without_the_api_writes_nothing(setup):
    """seed writes through the API only: without it, it stops before the first row."""
    db, env, _ = setup
    ok(env, "reset")
    p = db_sh(dict(env, KINDLING_API_URL="http://127.0.0.1:9"), "seed", "2")
    assert p.returncode != 0 and "API" in p.stderr, p.stderr
    assert db.sql("SELECT count(*) FROM items") == "0"


def test_restore_of_a_missing_snapshot_changes_nothing(setup):
    db, env, _ = setup
    ok(env, "reset")
    ok(env, "seed", "3")
    before = db.state()
    for name in ("no-such-snapshot", "no-such-file.dump"):
        p = db_sh(env, "restore", name)
        assert p.returncode != 0 and "no snapshot" in p.stderr and "Nothing was changed" in p.stderr, p.stderr
    assert db.state() == before


def test_restore_of_a_newer_schema_changes_nothing(setup):
    db, env, _ = setup
    ok(env, "reset")
    ok(env, "seed", "3")
    # A snapshot taken by a checkout with one more migration than this one.
    future = str(int(MIGRATIONS[-1]) + 1)
    db.sql(f"INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) "
           f"VALUES ({future}, 'from the future', true, '\\x00', 0)")
    ok(env, "snapshot", "from-the-future")
    db.sql(f"DELETE FROM _sqlx_migrations WHERE version = {future}")
    before = db.state()
    p = db_sh(env, "restore", "from-the-future")
    assert p.returncode != 0, p.stdout
    assert f"schema {future}, newer than this checkout's migrations/ ({MIGRATIONS[-1]})" in p.stderr, p.stderr
    assert "Nothing was changed" in p.stderr
    assert db.state() == before
    assert not [d for d in db.databases() if "_scratch_" in d], db.databases()


def test_psql_prints_the_command(setup):
    db, env, _ = setup
    out = ok(env, "psql")
    assert f"PGPASSWORD={PASSWORD} psql -h 127.0.0.1 -p 5432 -U kindling kindling" in out, out


def test_bad_arguments_are_refused_before_anything_runs(setup):
    _, env, _ = setup
    for args in (["seed", "zero"], ["snapshot", "../escape"], ["frobnicate"], ["seed", "1", "2"]):
        p = db_sh(env, *args)
        assert p.returncode != 0, args


def test_every_verb_with_postgres_stopped_fails_and_says_why(setup):
    """Last: stops the container, then starts it again to show the data survived."""
    db, env, _ = setup
    ok(env, "reset")
    ok(env, "seed", "2")
    ok(env, "snapshot", "before-stop")
    before = db.state()
    subprocess.run(["docker", "stop", "-t", "10", db.container], check=True, capture_output=True)
    for verb in VERBS:
        p = db_sh(env, *verb)
        assert p.returncode != 0, f"{verb}: exit 0"
        assert "Postgres is down" in p.stderr and "Nothing was changed" in p.stderr, f"{verb}: {p.stderr}"
    subprocess.run(["docker", "start", db.container], check=True, capture_output=True)
    db.wait_ready()
    assert db.state() == before
