"""What background work needs in one process: database, HTTP client, secret box, job queue."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from countersign.config import Settings
from countersign.db import create_sessionmaker, transaction
from countersign.directory.cache import close_directory
from countersign.directory.resolver import ApproverResolver
from countersign.kit.outbound import GuardedTransport, OutboundPolicy
from countersign.webhooks.secrets import SecretBox
from countersign.webhooks.slots import HostSlots
from countersign.worker.queue import JobQueue


def outbound_client(settings: Settings) -> httpx.AsyncClient:
    """The one shared client for webhooks and resolvers: outbound policy checked at connect time."""
    transport = GuardedTransport(OutboundPolicy.from_settings(settings))
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        timeout=httpx.Timeout(10.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )


def default_resolver(settings: Settings) -> ApproverResolver:
    from countersign.app import build_directory
    from countersign.policies.rules import RuleEvaluator

    return ApproverResolver(build_directory(settings), RuleEvaluator())


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http_client: httpx.AsyncClient
    box: SecretBox
    queue: JobQueue
    resolver: ApproverResolver
    host_slots: HostSlots
    owns_engine: bool = True

    @classmethod
    def create(
        cls,
        settings: Settings,
        queue: JobQueue,
        *,
        engine: AsyncEngine | None = None,
        resolver: ApproverResolver | None = None,
    ) -> Runtime:
        owns = engine is None
        engine = engine or settings.engine()
        runtime = cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            http_client=outbound_client(settings),
            box=SecretBox(settings.secret_key.get_secret_value()),
            queue=queue,
            resolver=resolver or default_resolver(settings),
            host_slots=HostSlots(settings.webhook_max_per_host),
            owns_engine=owns,
        )
        # Http rules go out through the same guarded client and sign with the same secrets.
        runtime.resolver.http_client = runtime.http_client
        runtime.resolver.secret_box = runtime.box
        return runtime

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """One job step = one transaction; jobs it asks for are sent after the commit."""
        return transaction(self.sessionmaker, self.queue)

    async def close(self) -> None:
        await self.http_client.aclose()
        await close_directory(self.resolver.directory)
        if self.owns_engine:
            await self.engine.dispose()
