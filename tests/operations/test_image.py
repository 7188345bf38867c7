"""The image's steps without Docker (ADR 0035): what the Dockerfile does, done by hand.

1. the admin UI is built (`scripts/build-ui.sh --if-stale`, as the `admin-ui` stage does);
2. the wheel is built from a fresh copy of the sources with the UI inside (the `build` stage);
3. it is installed with its dependencies into a new venv in a fresh directory (the runtime
   stage's /opt/venv), nothing from the shared development venv or this checkout on its path;
4. `countersign migrate` and the image's ENTRYPOINT + CMD run with the runtime stage's ENV and
   production settings against a fresh PostgreSQL database and Redis; `countersign worker` and
   its `--check` (the chart's liveness probe) too;
5. the Dockerfile's HEALTHCHECK command passes, `/v1/health` says both dependencies are up, and
   `/admin` serves the UI out of the installed wheel.

The dependencies' wheels are kept in a wheelhouse under the cache directory
(`COUNTERSIGN_CACHE_DIR`, default `~/.cache/countersign`), keyed by the dependency list, so only
the first run on a machine downloads them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.fixtures.database import drop_pg_database, fresh_pg_database
from tests.fixtures.worker import (  # noqa: F401  (fixtures)
    RedisServer,
    SharedRedis,
    free_port,
    redis_server_fixture,
)
from tests.operations.dockerfile import ROOT, Dockerfile, Instruction, parse

pytestmark = pytest.mark.slow

UI_BUILD_SECONDS = 600  # a fresh machine runs `npm ci` first
PIP_SECONDS = 600  # the first run downloads every dependency
STEP_SECONDS = 120
START_SECONDS = 60.0
POLL_SECONDS = 0.1
INDEX_IN_WHEEL = "countersign/static/admin/index.html"
PRODUCTION = {
    "COUNTERSIGN_AUTH_MODE": "oidc",
    "COUNTERSIGN_OIDC_ISSUERS": "https://keycloak.example.org/realms/registry",
    "COUNTERSIGN_OIDC_JWKS_URL": "https://keycloak.example.org/realms/registry/protocol/openid-connect/certs",
    "COUNTERSIGN_OIDC_AUDIENCE": "countersign",
    "COUNTERSIGN_SECRET_KEY": Fernet.generate_key().decode(),
}


def cache_dir() -> Path:
    configured = os.environ.get("COUNTERSIGN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "countersign"


def run(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = STEP_SECONDS,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-4000:]}\n"
        f"{result.stderr[-4000:]}"
    )
    return result


def clean_env(**overrides: str) -> dict[str, str]:
    """This machine's environment without anything pointing at the checkout or the dev venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COUNTERSIGN_", "PYTHON", "VIRTUAL_ENV", "PIP_REQ"))
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(overrides)
    return env


# --- the build ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    root: Path  # the fresh directory
    venv: Path
    wheel: Path
    migrations: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def site_packages(self) -> Path:
        return next((self.venv / "lib").glob("python3*/site-packages"))


def build_ui() -> Path:
    run(["scripts/build-ui.sh", "--if-stale"], cwd=ROOT, timeout=UI_BUILD_SECONDS)
    index = ROOT / "src/countersign/static/admin/index.html"
    assert index.is_file(), "scripts/build-ui.sh built no index.html"
    return index.parent


def build_wheel(root: Path) -> Path:
    """The `build` stage: a fresh copy of the sources (with the built UI), then `pip wheel`."""
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    dist = root / "dist"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--wheel-dir",
            str(dist),
            ".",
        ],
        cwd=source,
        env=clean_env(),
        timeout=PIP_SECONDS,
    )
    (wheel,) = dist.glob("countersign-*.whl")
    return wheel


def wheelhouse(wheel: Path, pip: list[str], work: Path) -> Path:
    """The dependencies' wheels, downloaded once per dependency list and kept in the cache."""
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(
            n for n in archive.namelist() if n.endswith(".dist-info/METADATA")
        )
        metadata = archive.read(metadata_name).decode()
    requirements = sorted(
        line.removeprefix("Requires-Dist: ")
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ") and "extra ==" not in line
    )
    key = hashlib.sha256(
        "\n".join([f"{sys.version_info[:2]}", *requirements]).encode()
    ).hexdigest()[:16]
    house = cache_dir() / "wheelhouse" / key
    if (house / ".complete").is_file():
        return house
    requirements_file = work / "requirements.txt"
    requirements_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    partial = house.with_name(f"{key}.{uuid.uuid4().hex}.partial")
    partial.mkdir(parents=True)
    run(
        [
            *pip,
            "download",
            "--only-binary",
            ":all:",
            "--dest",
            str(partial),
            "-r",
            str(requirements_file),
        ],
        cwd=work,
        env=clean_env(),
        timeout=PIP_SECONDS,
    )
    (partial / ".complete").write_text("ok\n", encoding="utf-8")
    try:
        partial.rename(house)
    except OSError:  # another run finished it first
        shutil.rmtree(partial, ignore_errors=True)
    return house


def install(root: Path, wheel: Path) -> Installed:
    """The runtime stage's /opt/venv: a new venv with the wheel and its dependencies.

    The venv gets no pip of its own (ensurepip is the slow part of `python -m venv`): this
    process's pip installs into it with `--python`, the same packages either way.
    """
    venv = root / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    run(
        [base_python, "-m", "venv", "--without-pip", str(venv)],
        cwd=root,
        env=clean_env(),
    )
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    house = wheelhouse(wheel, pip, root)
    run(
        [
            *pip,
            "install",
            "--no-compile",
            "--no-index",
            "--find-links",
            str(house),
            str(wheel),
        ],
        cwd=root,
        env=clean_env(),
        timeout=PIP_SECONDS,
    )
    # The image copies migrations/ to /app/migrations (they are not package data).
    migrations = root / "app" / "migrations"
    shutil.copytree(
        ROOT / "migrations", migrations, ignore=shutil.ignore_patterns("__pycache__")
    )
    return Installed(root, venv, wheel, migrations)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    build_ui()
    root = tmp_path_factory.mktemp("image")
    wheel = build_wheel(root)
    return install(root, wheel)


@pytest.fixture(scope="module")
def image_database_url() -> Iterator[str]:
    name = f"countersign_image_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = fresh_pg_database(name)
    yield url
    drop_pg_database(name)


@pytest.fixture(scope="module")
def image_env(
    dockerfile: Dockerfile,
    installed: Installed,
    image_database_url: str,
    redis_server: RedisServer | SharedRedis,
) -> dict[str, str]:
    """The runtime stage's ENV, with /opt/venv, /app and /data mapped into the fresh directory."""
    env = clean_env()
    for name, value in dockerfile.final.env().items():
        value = value.replace("/opt/venv", str(installed.venv))
        value = value.replace("/app/", f"{installed.root}/app/")
        value = value.replace("/data", str(installed.root / "data"))
        env[name] = value.replace("$PATH", os.environ["PATH"])
    (installed.root / "data").mkdir(exist_ok=True)
    env.update(PRODUCTION)
    env["COUNTERSIGN_DATABASE_URL"] = image_database_url
    env["COUNTERSIGN_REDIS_URL"] = redis_server.url
    env["COUNTERSIGN_WORKER_HEALTH_CHECK_INTERVAL"] = "1"
    return env


# --- the wheel ---------------------------------------------------------------------------------


def test_the_wheel_carries_the_built_admin_ui(installed: Installed) -> None:
    built = ROOT / "src/countersign/static/admin"
    with zipfile.ZipFile(installed.wheel) as archive:
        names = set(archive.namelist())
        assert INDEX_IN_WHEEL in names
        index = archive.read(INDEX_IN_WHEEL).decode()
    for asset in re.findall(r'(?:src|href)="/admin/(assets/[^"]+)"', index):
        assert f"countersign/static/admin/{asset}" in names, asset
    expected = {
        f"countersign/static/admin/{p.relative_to(built)}"
        for p in built.rglob("*")
        if p.is_file()
    }
    assert expected <= names, expected - names
    # Migrations, tests and the UI's sources stay out of the package.
    assert not [
        n for n in names if n.startswith(("tests/", "admin-ui/", "migrations/"))
    ]


def test_the_installed_package_is_the_wheel_not_the_checkout(
    installed: Installed, image_env: dict[str, str]
) -> None:
    result = run(
        [
            str(installed.bin / "python"),
            "-c",
            "import countersign, sys; from countersign.operations import admin_ui; "
            "print(countersign.__file__); print(admin_ui.DEFAULT_DIR); print(sys.path)",
        ],
        cwd=installed.root,
        env=image_env,
    )
    module, ui_dir, path = result.stdout.splitlines()
    assert module.startswith(str(installed.site_packages)), module
    assert ui_dir.startswith(str(installed.site_packages)), ui_dir
    assert (Path(ui_dir) / "index.html").is_file()
    assert str(ROOT) not in path
    assert not (installed.bin / "pytest").exists()  # dev extras are not installed


# --- the running image -------------------------------------------------------------------------


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(command: list[str], env: dict[str, str], cwd: Path, name: str) -> Process:
    log_path = cwd / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return Process(process, log_path)


@pytest.fixture(scope="module")
def migrated(installed: Installed, image_env: dict[str, str]) -> None:
    """The chart's pre-install hook: `countersign migrate` from the installed wheel."""
    run(
        [str(installed.bin / "countersign"), "migrate"],
        cwd=installed.root,
        env=image_env,
    )


@pytest.fixture(scope="module")
def served(
    dockerfile: Dockerfile,
    installed: Installed,
    image_env: dict[str, str],
    migrated: None,
) -> Iterator[str]:
    """The image's ENTRYPOINT + CMD, on a free loopback port instead of 0.0.0.0:8000."""
    port = free_port()
    entrypoint = dockerfile.final.last("ENTRYPOINT")
    command = dockerfile.final.last("CMD")
    assert entrypoint is not None
    assert command is not None
    argv = [*entrypoint.exec_form(), *command.exec_form()]
    argv = [{"8000": str(port), "0.0.0.0": "127.0.0.1"}.get(a, a) for a in argv]
    argv[0] = str(installed.bin / argv[0])  # on the image's PATH: /opt/venv/bin
    server = start(argv, image_env, installed.root, "serve")
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_SECONDS
    try:
        while True:
            assert server.process.poll() is None, f"serve exited:\n{server.log()}"
            try:
                if (
                    httpx.get(f"{base_url}/v1/health/live", timeout=2).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve did not start:\n{server.log()}"
            time.sleep(POLL_SECONDS)
        yield base_url
    finally:
        server.stop()


def test_the_healthcheck_passes(
    dockerfile: Dockerfile, installed: Installed, image_env: dict[str, str], served: str
) -> None:
    healthcheck = dockerfile.final.last("HEALTHCHECK")
    assert healthcheck is not None
    command = healthcheck.arguments.partition("CMD ")[2]
    port = served.rsplit(":", 1)[1]
    argv = [a.replace(":8000/", f":{port}/") for a in parse_exec(command)]
    argv[0] = str(installed.bin / argv[0])  # `python` on the image's PATH
    run(argv, cwd=installed.root, env=image_env, timeout=10)


def parse_exec(text: str) -> list[str]:
    return Instruction("CMD", text).exec_form()


def test_health_with_postgresql_and_redis_in_production(served: str) -> None:
    health = httpx.get(f"{served}/v1/health", timeout=5)
    assert health.status_code == 200, health.text
    assert health.json()["response"]["checks"] == {"database": "UP", "redis": "UP"}
    config = httpx.get(f"{served}/v1/config", timeout=5).json()
    assert (config["env"], config["auth_mode"], config["dev_tokens"]) == (
        "production",
        "oidc",
        False,
    )


def test_the_admin_ui_is_served_from_the_installed_wheel(
    installed: Installed, served: str
) -> None:
    shipped = installed.site_packages / "countersign/static/admin"
    page = httpx.get(f"{served}/admin/requests", timeout=5)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text == (shipped / "index.html").read_text(encoding="utf-8")
    (script,) = re.findall(r'src="/admin/(assets/[^"]+\.js)"', page.text)
    bundle = httpx.get(f"{served}/admin/{script}", timeout=5)
    assert bundle.status_code == 200
    assert bundle.content == (shipped / script).read_bytes()
    assert "immutable" in bundle.headers["cache-control"]


def test_the_worker_runs_and_its_liveness_check_passes(
    installed: Installed, image_env: dict[str, str], migrated: None
) -> None:
    countersign = str(installed.bin / "countersign")
    worker = start([countersign, "worker"], image_env, installed.root, "worker")
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert worker.process.poll() is None, f"worker exited:\n{worker.log()}"
            check = subprocess.run(
                [countersign, "worker", "--check"],
                cwd=installed.root,
                env=image_env,
                capture_output=True,
                text=True,
                timeout=STEP_SECONDS,
                check=False,
            )
            if check.returncode == 0:
                break
            assert time.monotonic() < deadline, (
                f"--check never passed:\n{check.stderr}\n{worker.log()}"
            )
            time.sleep(0.5)
    finally:
        worker.stop()
    assert worker.process.returncode == 0, worker.log()
