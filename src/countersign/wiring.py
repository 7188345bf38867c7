"""The process wiring, built once: database, directory, approver resolver, outbound client, secret
box, host slots and job queue.

The API (`app.create_app`'s lifespan), the arq worker (`worker.settings.startup`), the embedded
in-process worker and the CLI all build what they share here and nowhere else, so there is one
answer to "which client do webhooks go out through" or "which directory does this process
read". This module imports domain packages and adapters; nothing below it imports it back
(`tests/test_import_cycles.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from countersign.config import Settings
from countersign.db import create_sessionmaker, transaction
from countersign.directory.base import Directory
from countersign.directory.cache import CachedDirectory, close_directory
from countersign.directory.file import EmptyDirectory, FileDirectory
from countersign.directory.keycloak import KeycloakDirectory
from countersign.directory.resolver import ApproverResolver
from countersign.kit.outbound import GuardedTransport, OutboundPolicy
from countersign.operations import metrics as domain_metrics
from countersign.policies.rules import RuleEvaluator
from countersign.webhooks.secrets import SecretBox
from countersign.webhooks.slots import HostSlots
from countersign.worker.queue import ArqQueue, JobQueue, LocalQueue


def build_directory(
    settings: Settings, http_client: httpx.AsyncClient | None = None
) -> Directory:
    """Keycloak when COUNTERSIGN_KEYCLOAK_URL is set (cached per rule), else the directory file.

    Without `http_client` the Keycloak directory opens its own; `close_directory` releases it.
    """
    if settings.keycloak_url:
        return CachedDirectory(
            KeycloakDirectory(settings, http_client),
            settings.directory_cache_seconds,
        )
    if settings.directory_file is not None:
        return FileDirectory(Path(settings.directory_file))
    return EmptyDirectory()


def build_resolver(settings: Settings) -> ApproverResolver:
    return ApproverResolver(build_directory(settings), RuleEvaluator())


def outbound_client(policy: OutboundPolicy) -> httpx.AsyncClient:
    """The one shared client for webhooks and resolvers: outbound policy checked at connect time."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy),
        follow_redirects=False,
        timeout=httpx.Timeout(10.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )


def build_queue(settings: Settings) -> JobQueue:
    """arq on Redis when COUNTERSIGN_REDIS_URL is set, else the embedded in-process queue."""
    return ArqQueue(url=settings.redis_url) if settings.redis_url else LocalQueue()


@dataclass
class Runtime:
    """What one process shares: everything a request handler or a job needs besides its input."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    outbound_policy: OutboundPolicy
    http_client: httpx.AsyncClient
    box: SecretBox
    queue: JobQueue
    resolver: ApproverResolver
    host_slots: HostSlots

    @classmethod
    def create(
        cls,
        settings: Settings,
        queue: JobQueue | None = None,
        *,
        resolver: ApproverResolver | None = None,
    ) -> Runtime:
        """Build it all; `queue` defaults to `build_queue`, `resolver` to `build_resolver`."""
        engine = settings.engine()
        # Domain counters are taken from what each committed transaction wrote (ADR 0038).
        domain_metrics.install()
        domain_metrics.watch_pool(engine)
        policy = OutboundPolicy.from_settings(settings)
        runtime = cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            outbound_policy=policy,
            http_client=outbound_client(policy),
            box=SecretBox(settings.secret_key.get_secret_value()),
            queue=queue if queue is not None else build_queue(settings),
            resolver=resolver or build_resolver(settings),
            host_slots=HostSlots(settings.webhook_max_per_host),
        )
        # Http rules go out through the same guarded client and sign with the same secrets.
        runtime.resolver.http_client = runtime.http_client
        runtime.resolver.secret_box = runtime.box
        return runtime

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """One job step = one transaction; jobs it asks for are sent after the commit."""
        return transaction(self.sessionmaker, self.queue)

    async def close(self) -> None:
        # A queue handed in (the arq worker's) belongs to arq; `ArqQueue.close` only closes the
        # connection it opened itself.
        if isinstance(self.queue, ArqQueue):
            await self.queue.close()
        await self.http_client.aclose()
        await close_directory(self.resolver.directory)
        await self.engine.dispose()


@asynccontextmanager
async def one_transaction(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A short-lived engine and one committed transaction: the CLI's and bootstrap's database."""
    engine = settings.engine()
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()
