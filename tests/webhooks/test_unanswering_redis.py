"""A Redis that accepts connections but never answers does not hang the API or the worker.

The stand-in is a real TCP server on 127.0.0.1 that accepts every connection and never writes a
byte (a hung Redis, a black-holed proxy), used as `COUNTERSIGN_REDIS_URL`. Redis is only the
doorbell: creates still answer 201 promptly (the work is in PostgreSQL for the sweep), health
says Redis is DOWN (503 `dependency_unavailable`, API.md), and the worker gives up on it and
starts over instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Iterator
from typing import TypeVar

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from countersign.app import create_app
from countersign.config import Settings
from countersign.models import WebhookDelivery
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import Flow, stage
from tests.fixtures.worker import (  # noqa: F401  (fixtures)
    COUNTERSIGN,
    Workers,
    asgi_client,
    clean_hooks_database_fixture,
    clock_file_fixture,
    hooks_database_url_fixture,
    hooks_engine_fixture,
    hooks_sessionmaker_fixture,
    hooks_settings_fixture,
    redis_server_fixture,
    shared_clock_fixture,
    webhook_settings_fixture,
    worker_env,
    workers_fixture,
)

pytestmark = pytest.mark.slow

# Far above a prompt answer, far below "forever": what a hang would run into first.
GUARD_SECONDS = 20
T = TypeVar("T")


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers; keeps them open until stopped."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._accepted)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._accepted.append(connection)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join()
        self._listener.close()
        with self._lock:
            for connection in self._accepted:
                connection.close()


async def promptly(work: Awaitable[T], within: float = GUARD_SECONDS) -> T:
    """`work`'s result, or a failure after `within` s (without waiting on a cancellation that
    a hung call may swallow)."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=within)
    if not done:
        task.cancel()
        pytest.fail(f"no answer within {within} s")
    return task.result()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


async def test_creates_and_health_answer_promptly(
    hooks_settings: Settings,
    clean_hooks_database: None,
    hooks_sessionmaker: async_sessionmaker[AsyncSession],
    app: FastAPI,  # the dev signing key the `token` fixture uses
    admin_headers: dict[str, str],
    token: TokenFactory,
    silent: SilentServer,
) -> None:
    hung = create_app(
        hooks_settings.model_copy(update={"redis_url": silent.url}),
        in_process_worker=False,
    )
    async with hung.router.lifespan_context(hung), asgi_client(hung) as client:
        flow = Flow(client, admin_headers, token)
        await flow.publish([stage(1, ["alice"])])
        durations = []
        for number in range(3):
            started = time.monotonic()
            created = await promptly(
                flow.create(
                    artifact_id=f"a-{number}", callback_url="http://127.0.0.1:9/hook"
                )
            )
            durations.append(time.monotonic() - started)
            assert created.status_code == 201, created.text

        started = time.monotonic()
        health = await promptly(client.get("/v1/health"))
        health_seconds = time.monotonic() - started

    # The doorbell was tried (the server saw a connection) and given up quickly; after that
    # failure doorbells pause, so the next creates do not wait at all.
    assert silent.accepted >= 1
    assert durations[0] < 3, durations
    assert max(durations[1:]) < 1, durations
    assert health_seconds < 5
    assert health.status_code == 503
    body = health.json()
    assert body["code"] == "dependency_unavailable"
    assert body["response"]["checks"] == {"database": "UP", "redis": "DOWN"}
    # Nothing is lost: the deliveries wait in PostgreSQL for the sweep.
    async with hooks_sessionmaker() as session:
        pending = await session.scalar(
            select(func.count()).where(WebhookDelivery.status == "pending")
        )
    assert pending is not None
    assert pending >= 3


def test_the_worker_health_check_fails_instead_of_hanging(
    hooks_settings: Settings, tmp_path: object, silent: SilentServer
) -> None:
    env = worker_env(hooks_settings, tmp_path / "clock")  # type: ignore[operator]
    env["COUNTERSIGN_REDIS_URL"] = silent.url
    # A hang runs into the subprocess timeout (GUARD_SECONDS) and fails the test.
    result = subprocess.run(
        [str(COUNTERSIGN), "worker", "--check"],
        env=env,
        capture_output=True,
        timeout=GUARD_SECONDS,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert silent.accepted >= 1


async def test_the_worker_gives_up_on_it_and_starts_over(
    workers: Workers, silent: SilentServer
) -> None:
    worker = workers.start(env={"COUNTERSIGN_REDIS_URL": silent.url})
    deadline = time.monotonic() + GUARD_SECONDS
    while "lost Redis" not in worker.log():
        assert worker.alive, worker.log()
        assert time.monotonic() < deadline, f"the worker hangs:\n{worker.log()}"
        await asyncio.sleep(0.1)
    assert worker.alive  # starting over, not exiting
