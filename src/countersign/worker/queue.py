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
import time
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


def discard_buffered() -> None:
    """Forget the jobs asked for so far in this transaction: it was rolled back to be run again."""
    jobs = _buffer.get()
    if jobs is not None:
        jobs.clear()


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


# Every Redis client of the service (the API's doorbell, the health check, the worker's arq pool)
# gives up on a Redis that accepts connections but does not answer, instead of waiting forever.
REDIS_CONNECT_TIMEOUT_SECONDS = 2.0
REDIS_SOCKET_TIMEOUT_SECONDS = 5.0
# One doorbell (enqueue after commit) waits at most this long; it runs before the API answers.
DOORBELL_TIMEOUT_SECONDS = 1.0
# After a doorbell failed, the next ones are skipped this long (the sweep rings for their work),
# so an unanswering Redis costs one request a second, not every request.
DOORBELL_PAUSE_SECONDS = 5.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"


def redis_client(url: str) -> Any:
    """A redis-py client for `url` with the service's connect and socket timeouts."""
    from redis.asyncio import Redis

    return Redis.from_url(
        url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
    )


def arq_pool(url: str) -> Any:
    """An arq pool for `url` with the same timeouts; it connects at its first command.

    Not `arq.create_pool`: arq's settings have a connect timeout only, and its first `PING`
    would wait forever on a Redis that accepted the connection and says nothing.
    """
    from arq.connections import ArqRedis

    return ArqRedis.from_url(
        url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
    )


class ArqQueue:
    """Production: one arq job per piece of work, with a stable job id so duplicates collapse.

    Connects lazily, so the API starts (and keeps committing work) while Redis is down. Best
    effort, bounded: each job gets `DOORBELL_TIMEOUT_SECONDS`, the first failure skips the rest
    and pauses doorbells for `DOORBELL_PAUSE_SECONDS`; the sweep delivers what they left.
    """

    def __init__(
        self,
        redis: Any = None,
        *,
        url: str | None = None,
        timeout: float = DOORBELL_TIMEOUT_SECONDS,
        pause: float = DOORBELL_PAUSE_SECONDS,
    ) -> None:
        self.redis = redis
        self.url = url
        self.timeout = timeout
        self.pause = pause
        self._paused_until = 0.0

    def _pool(self) -> Any:
        if self.redis is None:
            self.redis = arq_pool(self.url or DEFAULT_REDIS_URL)
        return self.redis

    async def send(self, jobs: list[Job]) -> None:
        if time.monotonic() < self._paused_until:
            log.debug("doorbells paused; %d job(s) left to the sweep", len(jobs))
            return
        redis = self._pool()
        sent = 0
        try:
            for job in jobs:
                async with asyncio.timeout(self.timeout):
                    await redis.enqueue_job(job.name, _job_id=job.job_id, **job.kwargs)
                sent += 1
        except Exception:
            # Redis is only a doorbell: the sweep re-enqueues anything due from PostgreSQL.
            self._paused_until = time.monotonic() + self.pause
            log.warning(
                "could not enqueue %d job(s); the sweep will pick them up "
                "(doorbells paused for %g s)",
                len(jobs) - sent,
                self.pause,
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
