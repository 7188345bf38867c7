"""With the database down, every endpoint answers 503 `dependency_unavailable`, never a 500, and
the service recovers by itself when the database is back (issue 10, item 9).

The shared PostgreSQL of the suite must keep running, so this test starts its own server: initdb
and pg_ctl (PostgreSQL 15) into a temporary directory, on a spare port, as the `postgres` user when
the suite runs as root (PostgreSQL refuses to run as root). The app under test runs in-process
against it, with the same code path as in production (pooled asyncpg engine with pre-ping).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from countersign import migrate
from countersign.app import create_app
from countersign.config import Settings
from tests.fixtures.client import FIXTURES, bearer
from tests.fixtures.server import free_port

PG_BIN = Path(os.environ.get("COUNTERSIGN_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
Headers = dict[str, str]


@pytest.fixture(autouse=True)
def _postgres_binaries() -> None:
    # scripts/ensure-services.sh installs the server; missing binaries are a broken setup, and
    # a skip here would let the outage guarantee go untested without anyone noticing.
    if not (PG_BIN / "pg_ctl").exists():
        pytest.fail(f"no PostgreSQL binaries in {PG_BIN} (set COUNTERSIGN_TEST_PG_BIN)")


@dataclass
class OwnPostgres:
    """A throwaway PostgreSQL server this test may stop and start at will."""

    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            pytest.fail(f"{args[0]} failed: {done.stderr.decode(errors='replace')}")

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "root",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=20"
        )
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
        )

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://root@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    # Not under pytest's temporary root: that is private to the user running the suite, and the
    # server runs as `postgres` when that user is root.
    directory = Path(tempfile.mkdtemp(prefix="countersign-outage-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = OwnPostgres(directory, free_port())
    server.init()
    server.start()
    try:
        subprocess.run(
            [
                str(PG_BIN / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(server.port),
                "-U",
                "root",
                "countersign",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        migrate.upgrade(server.url("countersign"))
        yield server
    finally:
        try:
            server.stop()
        except pytest.fail.Exception:
            pass  # already stopped by a failed test
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
async def outage_app(
    own_postgres: OwnPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    settings = Settings(
        env="testing",
        database_url=own_postgres.url("countersign"),
        auth_mode="dev",
        data_dir=tmp_path_factory.mktemp("outage-data"),
        directory_file=FIXTURES / "directory.yaml",
    )
    app = create_app(settings, in_process_worker=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="module")
def admin(outage_app: FastAPI) -> Headers:
    return bearer(
        outage_app.state.verifier.dev_issuer.mint("ops-olga", roles=["AWE_ADMIN"])
    )


@pytest.fixture
async def outage_client(outage_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=outage_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://countersign.test"
    ) as client:
        yield client


POLICY = {
    "policy_key": "outage.flow",
    "name": "outage",
    "artifact_type": "outage.flow",
    "stages": [
        {
            "stage_order": 1,
            "name": "one",
            "mode": "any-n",
            "rules": [{"rule_type": "user", "rule_value": {"user_id": "alice"}}],
        }
    ],
}
REQUEST = {"artifact_type": "outage.flow", "artifact_id": "a-1", "context": {}}

# Calls that reach the database with valid input: each must be a 503 while it is down.
DATABASE_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/policies", None),
    ("POST", "/v1/policies", POLICY),
    ("GET", "/v1/policies/outage.flow/versions/1", None),
    ("POST", "/v1/policies/outage.flow/versions/1/activate", None),
    ("GET", "/v1/requests", None),
    ("POST", "/v1/requests", REQUEST),
    ("GET", f"/v1/requests/{uuid.uuid4()}", None),
    ("GET", "/v1/tasks", None),
    ("GET", "/v1/tasks/stats", None),
    ("GET", "/v1/awe/tasks/stats", None),
    ("GET", "/v1/delegations", None),
    ("GET", "/v1/admin/audit", None),
    ("GET", "/v1/admin/deliveries", None),
    ("GET", "/v1/admin/callers/registry/secrets", None),
]


def fill(path: str) -> str:
    """A concrete URL for a templated path: ids are UUIDs, versions 1, names plain words."""
    values = {
        "version": "1",
        "a": "1",
        "b": "2",
        "policy_key": "outage.flow",
        "caller": "registry",
    }
    parts = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            part = values.get(name, str(uuid.uuid4()))
        parts.append(part)
    return "/".join(parts)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "dependency_unavailable"
    assert problem["errorCode"] == "AWE-006"


async def test_every_endpoint_is_a_503_while_the_database_is_down_and_recovers(
    outage_client: httpx.AsyncClient, own_postgres: OwnPostgres, admin: Headers
) -> None:
    # Up: the pool holds live connections, which the outage then kills.
    assert (await outage_client.get("/v1/policies", headers=admin)).status_code == 200
    document = (await outage_client.get("/v1/openapi.json")).json()

    own_postgres.stop()
    try:
        for method, path, body in DATABASE_CALLS:
            response = await outage_client.request(
                method, path, json=body, headers=admin
            )
            assert_unavailable(response)

        health = await outage_client.get("/v1/health")
        assert_unavailable(health)
        assert health.json()["response"]["checks"]["database"] == "DOWN"

        # Every operation of the document, each method, on both base paths: never a 500.
        answered: dict[str, int] = {}
        for template, item in document["paths"].items():
            for method in item:
                for prefix in ("/v1", "/v1/awe"):
                    path = fill(template).replace("/v1", prefix, 1)
                    json_body: dict[str, Any] | None = (
                        {} if method in {"post", "put", "patch"} else None
                    )
                    response = await outage_client.request(
                        method.upper(), path, json=json_body, headers=admin
                    )
                    answered[f"{method.upper()} {path}"] = response.status_code
                    if response.status_code >= 500:
                        assert_unavailable(response)
        assert answered
        assert 500 not in answered.values(), answered
    finally:
        own_postgres.start()

    # Back: the pool replaces its dead connections by itself; no restart.
    deadline = time.monotonic() + 30
    while True:
        response = await outage_client.get("/v1/policies", headers=admin)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
    assert response.status_code == 200, response.text
    created = await outage_client.post("/v1/policies", json=POLICY, headers=admin)
    assert created.status_code == 201, created.text
    assert (await outage_client.get("/v1/health")).status_code == 200

    # The pool gauge survived the dead connections: it never counts below zero (a connection
    # that fails at checkout is checked in without a checkout event).
    scraped = (await outage_client.get("/metrics")).text
    in_use = re.search(
        r"^countersign_db_pool_connections_in_use (\S+)$", scraped, re.MULTILINE
    )
    assert in_use is not None, scraped[-2000:]
    assert float(in_use.group(1)) >= 0, in_use.group(0)


@pytest.fixture
def silent_database() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word, as a hung database host does."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


async def test_a_database_that_never_answers_is_a_503_within_the_connect_bound(
    silent_database: int, tmp_path: Path
) -> None:
    settings = Settings(
        env="testing",
        database_url=f"postgresql+asyncpg://root@127.0.0.1:{silent_database}/countersign",
        auth_mode="dev",
        data_dir=tmp_path,
        directory_file=FIXTURES / "directory.yaml",
    )
    app = create_app(settings, in_process_worker=False)
    async with app.router.lifespan_context(app):
        headers = bearer(
            app.state.verifier.dev_issuer.mint("ops-olga", roles=["AWE_ADMIN"])
        )
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://countersign.test"
        ) as client:
            started = time.monotonic()
            response = await client.get("/v1/policies", headers=headers)
            waited = time.monotonic() - started

    assert_unavailable(response)
    # The bound is the connect timeout (5 s), not asyncpg's default of 60 s.
    assert waited < 30, waited
