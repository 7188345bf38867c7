"""Enqueue-after-commit: jobs a command asks for are sent only once its transaction has committed.

Services call `enqueue(...)`; the transaction edge (`db.get_session`, the worker's job session)
collects the buffer and, after a successful commit, hands it to the process's `JobQueue`: arq on
Redis in production, the in-process loop in the embedded mode. A rollback drops the buffer, so no
job ever points at rows that were never committed. A lost enqueue (Redis down, process killed right
after the commit) loses nothing either: the due work is in PostgreSQL and the sweep finds it.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("countersign.worker")


@dataclass(frozen=True)
class Job:
    name: str
    job_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)


_buffer: ContextVar[list[Job] | None] = ContextVar(
    "countersign_job_buffer", default=None
)


def start_buffer() -> list[Job]:
    """Begin collecting jobs for the current transaction; returns the list that will fill up."""
    jobs: list[Job] = []
    _buffer.set(jobs)
    return jobs


def enqueue(name: str, job_id: str, **kwargs: Any) -> None:
    """Ask for a job after the current transaction commits (dropped if it rolls back)."""
    jobs = _buffer.get()
    if jobs is None:
        # Outside any transaction edge (scripts, tests calling services directly): the sweep will
        # find the due work; nothing is lost by not notifying.
        return
    jobs.append(Job(name, job_id, kwargs))


class JobQueue(Protocol):
    async def send(self, jobs: list[Job]) -> None: ...


class NullQueue:
    """No worker attached to this process (e.g. one-off CLI commands)."""

    async def send(self, jobs: list[Job]) -> None:
        return None


class LocalQueue:
    """The embedded mode's queue: wakes the in-process loop, which runs due work from the database."""

    def __init__(self) -> None:
        self.wakeup = asyncio.Event()

    async def send(self, jobs: list[Job]) -> None:
        if jobs:
            self.wakeup.set()


class ArqQueue:
    """Production: one arq job per piece of work, with a stable job id so duplicates collapse.

    Connects lazily, so the API starts (and keeps committing work) while Redis is down.
    """

    def __init__(self, redis: Any = None, *, url: str | None = None) -> None:
        self.redis = redis
        self.url = url
        # Concurrent first sends must share one pool, not each open one (and leak the rest).
        self._connecting = asyncio.Lock()

    async def _pool(self) -> Any:
        async with self._connecting:
            if self.redis is None:
                from arq import create_pool
                from arq.connections import RedisSettings

                settings = RedisSettings.from_dsn(self.url or "redis://127.0.0.1:6379")
                settings.conn_retries = 0
                settings.conn_timeout = 2
                self.redis = await create_pool(settings)
            return self.redis

    async def send(self, jobs: list[Job]) -> None:
        try:
            redis = await self._pool()
            for job in jobs:
                await redis.enqueue_job(job.name, _job_id=job.job_id, **job.kwargs)
        except Exception:
            # Redis is only a doorbell: the sweep re-enqueues anything due from PostgreSQL.
            log.warning(
                "could not enqueue %d job(s); the sweep will pick them up",
                len(jobs),
                exc_info=True,
            )

    async def close(self) -> None:
        if self.redis is not None and self.url is not None:
            await self.redis.aclose()


async def flush(queue: JobQueue, jobs: list[Job]) -> None:
    if not jobs:
        return
    try:
        await queue.send(list(jobs))
    finally:
        jobs.clear()
