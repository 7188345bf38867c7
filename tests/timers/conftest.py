"""Fixtures for timer tests: a clock per test, the app with test hooks, and worker processes.

- `service_clock`: `COUNTERSIGN_CLOCK_FILE` in this test's temp dir. The API in this process, the
  test hooks and every worker the test starts read the same offset, and it starts at zero for each
  test.
- `hooks_app` / `hooks_client`: the API built with `COUNTERSIGN_TEST_HOOKS=true`
  (`/v1/_test/clock`, `/v1/_test/tick`), without an in-process worker: nothing runs unless a test
  ticks or a worker process sweeps.
- `timer_workers`: `countersign worker` processes (tests/fixtures/worker.py) on this test's clock,
  each on its own Redis database so every one of them runs the `timers.sweep` cron (on a shared
  Redis, arq's unique cron jobs would let only one of them run each slot).
- `driver`: parametrized over `tick` and `worker` (see drivers.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import FastAPI

from countersign.app import create_app
from countersign.config import Settings
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import Flow
from tests.fixtures.worker import (  # noqa: F401  (fixtures)
    SharedClock,
    WorkerProcess,
    Workers,
    asgi_client,
    redis_server_fixture,
    webhook_settings_fixture,
)
from tests.timers.drivers import Driver, TickDriver, WorkerDriver

# Redis databases of the timer workers (the shared fixtures use database 0).
FIRST_WORKER_REDIS_DB = 11


@pytest.fixture
def service_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SharedClock:
    """This test's own service clock, at offset zero."""
    path = tmp_path / "clock"
    monkeypatch.setenv("COUNTERSIGN_CLOCK_FILE", str(path))
    return SharedClock(path)


@pytest.fixture(scope="session")
async def hooks_app(settings: Settings, app: FastAPI) -> AsyncIterator[FastAPI]:
    """The API with test hooks mounted. Depends on `app`: same dev signing key for tokens."""
    hooked = create_app(
        settings.model_copy(update={"test_hooks": True}), in_process_worker=False
    )
    async with hooked.router.lifespan_context(hooked):
        yield hooked


@pytest.fixture
async def hooks_client(
    hooks_app: FastAPI, clean_database: None, service_clock: SharedClock
) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(hooks_app) as client:
        yield client


@pytest.fixture
def flow(
    hooks_client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    return Flow(hooks_client, admin_headers, token)


def redis_database_url(url: str, database: int) -> str:
    """The same Redis server, another database number."""
    base, _, _ = url.rstrip("/").rpartition("/")
    if not base.startswith("redis"):  # a URL without a database part
        base = url.rstrip("/")
    return f"{base}/{database}"


class TimerWorkers:
    """Starts workers for one test, each with its own Redis database."""

    def __init__(self, pool: Workers, redis_url: str) -> None:
        self.pool = pool
        self.redis_url = redis_url
        self.databases: list[int] = []

    def start(self) -> WorkerProcess:
        database = FIRST_WORKER_REDIS_DB + len(self.databases)
        self.databases.append(database)
        return self.pool.start(
            env={"COUNTERSIGN_REDIS_URL": redis_database_url(self.redis_url, database)}
        )

    async def start_ready(self, count: int) -> tuple[WorkerProcess, ...]:
        started = [self.start() for _ in range(count)]
        for worker in started:
            await asyncio.to_thread(worker.wait_ready)
        return tuple(started)

    def stop(self) -> None:
        self.pool.stop_all()
        for database in self.databases:
            client = redis.Redis.from_url(redis_database_url(self.redis_url, database))
            try:
                client.flushdb()
            finally:
                client.close()


@pytest.fixture
def timer_workers(
    webhook_settings: Settings,
    service_clock: SharedClock,
    clean_database: None,
    tmp_path: Path,
) -> Iterator[TimerWorkers]:
    """Depends on `clean_database`: the workers stop before the tables are emptied."""
    workers = TimerWorkers(
        Workers(webhook_settings, service_clock, tmp_path), webhook_settings.redis_url
    )
    try:
        yield workers
    finally:
        workers.stop()


@pytest.fixture(params=["tick", pytest.param("worker", marks=pytest.mark.slow)])
async def driver(
    request: pytest.FixtureRequest,
    hooks_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
) -> Driver:
    if request.param == "tick":
        return TickDriver(hooks_client, admin_headers)
    workers: TimerWorkers = request.getfixturevalue("timer_workers")
    return WorkerDriver(await workers.start_ready(1))
