"""The dev loop's files and images, without kind, a cluster or a registry: hadolint on the
Dockerfiles and ShellCheck on the shell scripts; a real build of both images on Debian 13
trixie stand-ins (local base images through the build arguments), each checked for glibc
2.41; the production image against the test Postgres (migrate, serve, /api/v1/health/ready
= 200, non-root uid, no shell, Docker HEALTHCHECK); the dev image the way the pod runs it,
and one live update the way Tilt does it (tar -x of the new binary into /app/live,
kindling-dev --restart).

Expects verify/docker-setup.sh to have run (CI does); runs its --builder step. Repeated
runs reuse Docker's layer cache (dependency layer) and the named volumes of
tilt/build-binary.sh's docker mode. The containers come from scripts/dev-loop-lib.sh, which
scripts/bench-dev-loop.sh uses too: a test Postgres and the API on a private Docker network,
as the pod runs them (uid 10001, read-only root filesystem, tmpfs /tmp).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from kindling_verify.helpers import ROOT, run, venv_tool, wait_for, wait_http

PROD_TAG = "kindling-api:check"
DEV_TAG = "kindling-api:dev-check"
# Tagged with the Debian release so a stand-in built on an older base is rebuilt.
RUNTIME_LOCAL = "local/distroless-cc:debian13"
DEV_BASE_LOCAL = "local/debian:trixie"
# glibc of Debian 13 trixie: every image must carry it (the Tiltfile's DEV_IMAGE_GLIBC
# relies on it for choosing the build mode).
WANT_GLIBC = "2.41"
API = "kindling-check-api"
DEV = "kindling-check-dev"


def lib(*command: str) -> str:
    """A function of scripts/dev-loop-lib.sh, run with its arguments; its standard output."""
    script = f'source "{ROOT}/scripts/dev-loop-lib.sh"; "$@"'
    return run(["bash", "-c", script, "dev-loop-lib", *command]).stdout.strip()


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["docker", *args], check=check)


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


# ---- files -----------------------------------------------------------------------------

def test_hadolint_dockerfiles():
    """Every ignore is inline, next to its reason."""
    dockerfiles = [ROOT / "Dockerfile", ROOT / "Dockerfile.dev", *sorted((ROOT / "verify" / "images").glob("*/Dockerfile"))]
    run([venv_tool("hadolint"), *dockerfiles])


def test_shellcheck_scripts():
    """At warning level and above (its info notes flag trap handlers as unused)."""
    scripts = [*sorted((ROOT / "scripts").glob("*.sh")), *sorted((ROOT / "tilt").glob("*.sh")),
               *sorted((ROOT / "verify").glob("*.sh")), *sorted((ROOT / "verify" / "images").glob("*/*.sh")),
               ROOT / "verify" / "run"]
    run([venv_tool("shellcheck"), "-S", "warning", "-x", *scripts])


# ---- images (legacy builder: no BuildKit on these machines) -------------------------------

@pytest.fixture(scope="module")
def base_images():
    run([ROOT / "verify" / "docker-setup.sh", "--builder"])
    if not image_exists(RUNTIME_LOCAL):
        # Stand-in for gcr.io/distroless/cc-debian13.
        docker("build", "-q", "-t", RUNTIME_LOCAL, str(ROOT / "verify" / "images" / "runtime"))
    return lib("eval", 'echo "$RUST_IMAGE_LOCAL"')


@pytest.fixture(scope="module")
def prod_image(base_images) -> str:
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "unknown"
    docker("build", "-q", "-t", PROD_TAG, "--build-arg", f"RUST_IMAGE={base_images}",
           "--build-arg", f"RUNTIME_IMAGE={RUNTIME_LOCAL}", "--build-arg", f"GIT_SHA={sha}", str(ROOT))
    return PROD_TAG


@pytest.fixture(scope="module")
def dev_image(base_images) -> str:
    """The dev binary compiled in a Rust container (tilt/build-binary.sh docker), then the image."""
    run([ROOT / "tilt" / "build-binary.sh", "docker"], env=dict(os.environ, RUST_IMAGE=base_images))
    docker("build", "-q", "-f", str(ROOT / "Dockerfile.dev"), "-t", DEV_TAG,
           "--build-arg", f"RUNTIME_IMAGE={DEV_BASE_LOCAL}", str(ROOT))
    return DEV_TAG


def test_production_image_builds(prod_image):
    print(f"{prod_image}: {lib('image_mb', prod_image)}")


def test_dev_image_builds(dev_image):
    print(f"{dev_image}: {lib('image_mb', dev_image)}")


@pytest.mark.parametrize("image", ["prod_image", "dev_image"])
def test_image_carries_trixie_glibc(request, image):
    """The version the dynamic loader reports. Works without a shell (distroless): the
    loader itself is the entrypoint."""
    tag = request.getfixturevalue(image)
    out = docker("run", "--rm", "--entrypoint", "/lib64/ld-linux-x86-64.so.2", tag, "--version").stdout
    first = out.splitlines()[0] if out else ""
    assert f" version {WANT_GLIBC}." in first, f"{tag}: {first!r}, want glibc {WANT_GLIBC} (Debian 13 trixie)"


# ---- the production image against the test Postgres --------------------------------------

@pytest.fixture(scope="module")
def postgres():
    lib("start_postgres")
    yield lib("eval", 'echo "$DB_URL"'), lib("eval", 'echo "$NET"')
    lib("cleanup_containers", API, DEV)


@pytest.fixture(scope="module")
def migrated(prod_image, postgres) -> str:
    """`kindling migrate` from the production image, read-only like the Job."""
    db_url, net = postgres
    return docker("run", "--rm", "--network", net, "--read-only", "-e", f"DATABASE_URL={db_url}", prod_image,
                  "migrate").stdout


@pytest.fixture(scope="module")
def prod_api(prod_image, migrated) -> str:
    port = lib("run_api", API, prod_image)
    if not wait_http(f"http://127.0.0.1:{port}/api/v1/health/ready", 60):
        docker("logs", "--tail", "20", API, check=False)
        pytest.fail("production image: /api/v1/health/ready never answered 200", pytrace=False)
    return port


def test_production_image_migrates(migrated):
    print(migrated)


def test_production_image_serves_ready(prod_api):
    assert wait_http(f"http://127.0.0.1:{prod_api}/api/v1/health/ready", 5)


def test_production_image_runs_as_uid_10001(prod_image, prod_api):
    user = docker("image", "inspect", "--format", "{{.Config.User}}", prod_image).stdout.strip()
    uids = {line.split()[1] for line in docker("top", API, "-o", "pid,uid").stdout.splitlines()[1:]}
    assert user == "10001:10001" and uids == {"10001"}, f"USER {user!r}, process uids {uids} (want 10001)"


def test_production_image_has_no_shell(prod_image):
    p = docker("run", "--rm", "--entrypoint", "/bin/sh", prod_image, "-c", "true", check=False)
    assert p.returncode != 0, "the production image has a shell"


def test_production_image_healthcheck(prod_api):
    """Docker's HEALTHCHECK (kindling healthcheck) turns healthy."""
    def health() -> str:
        return docker("inspect", "--format", "{{.State.Health.Status}}", API).stdout.strip()
    assert wait_for(lambda: health() == "healthy", 30, 1), f"HEALTHCHECK status {health()!r}"


# ---- the dev image as the pod runs it, then one live update as Tilt performs it ----------

@pytest.fixture(scope="module")
def dev_api(dev_image, postgres) -> str:
    port = lib("run_api", DEV, dev_image, "--tmpfs", "/app/live:rw,exec,size=128m,uid=10001,gid=10001",
               "-e", "MIGRATE_ON_START=true")
    if not wait_http(f"http://127.0.0.1:{port}/api/v1/health/ready", 60):
        docker("logs", "--tail", "20", DEV, check=False)
        pytest.fail("dev image: /api/v1/health/ready never answered 200", pytrace=False)
    return port


def test_dev_image_serves_ready_read_only_as_uid_10001(dev_api):
    assert wait_http(f"http://127.0.0.1:{dev_api}/api/v1/health/ready", 5)


def test_dev_image_live_update_serves_the_synced_binary(dev_api):
    """tar -x into /app/live (live_update's sync) + kindling-dev --restart (its run step)."""
    before = docker("exec", DEV, "cat", "/tmp/kindling-dev.pid").stdout.strip()
    tar = subprocess.run(["tar", "-C", str(ROOT / ".dev-bin"), "-cf", "-", "--transform",
                          "s|^kindling$|app/live/kindling|", "kindling"], capture_output=True, check=True).stdout
    subprocess.run(["docker", "exec", "-i", DEV, "tar", "-C", "/", "-xf", "-"], input=tar, check=True)
    docker("exec", DEV, "/usr/local/bin/kindling-dev", "--restart")
    assert wait_http(f"http://127.0.0.1:{dev_api}/api/v1/health/ready", 30), "not ready after the restart"
    after = docker("exec", DEV, "cat", "/tmp/kindling-dev.pid").stdout.strip()
    assert after != before, f"kindling-dev --restart kept pid {before}"
    exe = docker("exec", DEV, "sh", "-c", f"readlink /proc/{after}/exe").stdout.strip()
    assert exe == "/app/live/kindling", f"pid {after} runs {exe}"


def test_dev_image_runs_the_dependencies_from_app_lib(dev_api):
    """tilt/build-binary.sh links the dev binary against one shared library of dependencies
    and libstd (dylib/, staged in .dev-bin/lib/, copied to /app/lib): the running process has
    both mapped from there, and nothing else of kindling's."""
    pid = docker("exec", DEV, "cat", "/tmp/kindling-dev.pid").stdout.strip()
    maps = docker("exec", DEV, "cat", f"/proc/{pid}/maps").stdout
    mapped = {line.split()[-1] for line in maps.splitlines() if line.split()[-1].startswith("/app/")}
    assert "/app/lib/libkindling_dylib.so" in mapped, sorted(mapped)
    assert any(p.startswith("/app/lib/libstd-") for p in mapped), sorted(mapped)
    staged = {p.name for p in (ROOT / ".dev-bin" / "lib").iterdir()}
    assert {p.removeprefix("/app/lib/") for p in mapped if p.startswith("/app/lib/")} == staged
