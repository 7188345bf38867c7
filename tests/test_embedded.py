"""The embedded default, end to end: `countersign serve` with no configuration at all.

A newcomer runs `countersign serve` in an empty directory and gets a working service: a SQLite
database next to them, dev-mode auth with tokens from `countersign token`, and a sample policy.
These tests run the installed console script in subprocesses, exactly like that.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.fixtures.server import wait_until_healthy

pytestmark = pytest.mark.slow

COUNTERSIGN = Path(sys.executable).with_name("countersign")
START_DEADLINE_SECONDS = 60.0
STOP_DEADLINE_SECONDS = 30.0
POLL_INTERVAL_SECONDS = 0.1
SAMPLE_POLICY_KEY = "sample.change_request"
SAMPLE_CREATED_LOG = "created and activated the sample policy"


def child_env() -> dict[str, str]:
    """The test process's environment with every COUNTERSIGN_* variable removed."""
    return {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def mint_token(cwd: Path, sub: str, *roles: str) -> str:
    args = [str(COUNTERSIGN), "token", "--sub", sub]
    for role in roles:
        args += ["--role", role]
    result = subprocess.run(
        args,
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    log_file: IO[bytes]

    def log(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """SIGTERM and wait; kill if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        return self.process.returncode


def start_server(cwd: Path, log_name: str) -> Server:
    """Start `countersign serve` in `cwd` and wait (with a deadline) until /v1/health answers UP."""
    port = free_port()
    log_path = cwd.parent / f"{cwd.name}-{log_name}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [str(COUNTERSIGN), "serve", "--port", str(port)],
        cwd=cwd,
        env=child_env(),
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = Server(process, f"http://127.0.0.1:{port}", log_path, log_file)
    try:
        wait_until_healthy(server)
    except BaseException:
        server.stop()
        raise
    return server


def policy_body(key: str) -> dict[str, Any]:
    return {
        "policy_key": key,
        "name": "Embedded smoke test",
        "artifact_type": key,
        "stages": [
            {
                "stage_order": 1,
                "name": "Supervisors",
                "mode": "any-n",
                "mode_value": 1,
                "rules": [
                    {"rule_type": "user", "rule_value": {"user_id": "supervisor-sam"}}
                ],
            }
        ],
    }


@dataclass
class Embedded:
    cwd: Path
    server: Server
    admin: dict[str, str]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.base_url, timeout=10.0)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    """One first start of the embedded default in an empty working directory."""
    cwd = tmp_path_factory.mktemp("embedded")
    server = start_server(cwd, "first")
    try:
        admin = bearer(mint_token(cwd, "admin", "AWE_ADMIN"))
        yield Embedded(cwd, server, admin)
    finally:
        server.stop()


def test_first_start_creates_a_sqlite_database_in_the_working_directory(
    embedded: Embedded,
) -> None:
    database = embedded.cwd / "countersign.db"

    assert database.is_file()
    assert database.read_bytes()[:16] == b"SQLite format 3\x00"
    assert (embedded.cwd / "countersign-data").is_dir()


def test_first_start_logs_the_sample_policy_it_created(embedded: Embedded) -> None:
    log = embedded.server.log()

    assert SAMPLE_CREATED_LOG in log
    assert SAMPLE_POLICY_KEY in log


def test_health_is_up_with_sqlite_and_no_redis(embedded: Embedded) -> None:
    with embedded.client() as client:
        response = client.get("/v1/health")

    assert response.status_code == 200
    assert response.json()["response"] == {
        "status": "UP",
        "checks": {"database": "UP", "redis": "DISABLED"},
    }


def test_openapi_and_docs_are_served(embedded: Embedded) -> None:
    with embedded.client() as client:
        openapi = client.get("/v1/openapi.json")
        docs = client.get("/v1/docs")

    assert openapi.status_code == 200
    document = openapi.json()
    assert document["openapi"].startswith("3.1")
    assert "/v1/policies" in document["paths"]
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")


def test_jwks_publishes_the_dev_rsa_key(embedded: Embedded) -> None:
    with embedded.client() as client:
        response = client.get("/v1/.well-known/jwks.json")

    assert response.status_code == 200
    keys = response.json()["keys"]
    assert any(key["kty"] == "RSA" and key["n"] and key["e"] for key in keys)


def test_the_sample_policy_is_active(embedded: Embedded) -> None:
    with embedded.client() as client:
        response = client.get(
            f"/v1/policies/{SAMPLE_POLICY_KEY}/versions", headers=embedded.admin
        )

    assert response.status_code == 200, response.text
    versions = response.json()
    assert [(v["version"], v["status"]) for v in versions] == [(1, "active")]


def test_a_token_from_countersign_token_drives_the_policy_lifecycle(
    embedded: Embedded,
) -> None:
    key = "embedded.smoke"
    with embedded.client() as client:
        created = client.post(
            "/v1/policies", json=policy_body(key), headers=embedded.admin
        )
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "draft"
        assert created.json()["created_by"] == "admin"

        activated = client.post(
            f"/v1/policies/{key}/versions/1/activate", headers=embedded.admin
        )
        assert activated.status_code == 200, activated.text

        read = client.get(f"/v1/policies/{key}/versions/1", headers=embedded.admin)
        through_awe = client.get(
            f"/v1/awe/policies/{key}/versions/1", headers=embedded.admin
        )
        listed = client.get("/v1/policies", headers=embedded.admin)

    assert read.status_code == 200, read.text
    assert read.json()["status"] == "active"
    assert read.json()["policy_key"] == key
    assert through_awe.status_code == 200, through_awe.text
    assert through_awe.json() == read.json()
    assert listed.status_code == 200
    assert {key, SAMPLE_POLICY_KEY} <= {p["policy_key"] for p in listed.json()}


def test_a_token_minted_with_another_data_directory_is_refused(
    embedded: Embedded, tmp_path: Path
) -> None:
    foreign = mint_token(tmp_path, "admin", "AWE_ADMIN")

    with embedded.client() as client:
        response = client.get("/v1/policies", headers=bearer(foreign))
        missing = client.get("/v1/policies")

    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthenticated"
    assert missing.status_code == 401


def test_a_restart_keeps_the_data_and_does_not_create_the_sample_again(
    tmp_path: Path,
) -> None:
    cwd = tmp_path / "service"
    cwd.mkdir()
    key = "embedded.persisted"

    first = start_server(cwd, "first")
    try:
        assert SAMPLE_CREATED_LOG in first.log()
        admin = bearer(mint_token(cwd, "admin", "AWE_ADMIN"))
        with httpx.Client(base_url=first.base_url, timeout=10.0) as client:
            created = client.post("/v1/policies", json=policy_body(key), headers=admin)
            assert created.status_code == 201, created.text
            activated = client.post(
                f"/v1/policies/{key}/versions/1/activate", headers=admin
            )
            assert activated.status_code == 200, activated.text
    finally:
        returncode = first.stop()
    # SIGTERM is a graceful shutdown (uvicorn re-raises the signal once it has finished).
    assert returncode in (0, -signal.SIGTERM), first.log()
    assert "Application shutdown complete" in first.log()

    second = start_server(cwd, "second")
    try:
        with httpx.Client(base_url=second.base_url, timeout=10.0) as client:
            # The signing key persisted too: the token minted before the restart still works.
            persisted = client.get(f"/v1/policies/{key}/versions", headers=admin)
            sample = client.get(
                f"/v1/policies/{SAMPLE_POLICY_KEY}/versions", headers=admin
            )
        log = second.log()
    finally:
        second.stop()

    assert "sample policy" not in log, log
    assert persisted.status_code == 200, persisted.text
    assert [(v["version"], v["status"]) for v in persisted.json()] == [(1, "active")]
    assert sample.status_code == 200, sample.text
    assert [(v["version"], v["status"]) for v in sample.json()] == [(1, "active")]
