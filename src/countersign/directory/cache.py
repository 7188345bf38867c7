"""A short-lived cache of rule resolutions in front of a directory adapter.

A policy's `role` and `group` rules are resolved for every request that reaches their stage; the
answer changes rarely, and asking Keycloak each time costs many calls. `CachedDirectory` keeps each
rule's users for `ttl_seconds` (`COUNTERSIGN_DIRECTORY_CACHE_SECONDS`, default 60), keyed by the
rule (`("role", role, client)` or `("group", path)`), timed with the service clock. Concurrent
misses for the same rule share one fetch. Failures are never cached: the next call asks again.
The pickers of the policy editor pass straight through (an admin browsing the directory wants what
is there now).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from countersign.directory.base import (
    Directory,
    DirectoryGroup,
    DirectoryRole,
    DirectoryUser,
)
from countersign.kit import clock as service_clock

Clock = Callable[[], datetime]
RuleKey = tuple[str, ...]

# Past this many entries, expired ones are dropped when a new one is stored.
PRUNE_ABOVE = 1024


class CachedDirectory:
    """The `Directory` protocol, with `users_with_role` / `users_in_group` cached per rule."""

    def __init__(
        self,
        inner: Directory,
        ttl_seconds: float,
        *,
        clock: Clock = service_clock.now,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must not be negative")
        self.inner = inner
        self.is_local = inner.is_local
        self.ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock
        self._entries: dict[RuleKey, tuple[datetime, tuple[str, ...]]] = {}
        self._pending: dict[RuleKey, asyncio.Task[tuple[str, ...]]] = {}

    async def users_with_role(self, role: str, client: str | None = None) -> list[str]:
        return await self._cached(
            ("role", role, client or ""),
            lambda: self.inner.users_with_role(role, client),
        )

    async def users_in_group(self, path: str) -> list[str]:
        return await self._cached(
            ("group", path), lambda: self.inner.users_in_group(path)
        )

    async def search_users(self, q: str | None = None) -> list[DirectoryUser]:
        return await self.inner.search_users(q)

    async def list_roles(
        self, client: str | None = None, q: str | None = None
    ) -> list[DirectoryRole]:
        return await self.inner.list_roles(client, q)

    async def list_groups(self, q: str | None = None) -> list[DirectoryGroup]:
        return await self.inner.list_groups(q)

    async def list_clients(self) -> list[str]:
        return await self.inner.list_clients()

    def clear(self) -> None:
        """Forget every cached resolution (fetches under way still complete)."""
        self._entries.clear()

    async def aclose(self) -> None:
        await close_directory(self.inner)

    async def _cached(
        self, key: RuleKey, fetch: Callable[[], Awaitable[list[str]]]
    ) -> list[str]:
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry[0]:
            return list(entry[1])
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fill(key, fetch))
            self._pending[key] = task
            # Every waiter may have been cancelled: the outcome is still retrieved.
            task.add_done_callback(_retrieve_outcome)
        # A cancelled caller must not cancel the fetch the other callers are waiting for.
        return list(await asyncio.shield(task))

    async def _fill(
        self, key: RuleKey, fetch: Callable[[], Awaitable[list[str]]]
    ) -> tuple[str, ...]:
        try:
            users = tuple(await fetch())
            if self.ttl > timedelta(0):
                if len(self._entries) >= PRUNE_ABOVE:
                    self._prune()
                self._entries[key] = (self._clock() + self.ttl, users)
            return users
        finally:
            self._pending.pop(key, None)

    def _prune(self) -> None:
        now = self._clock()
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]


def _retrieve_outcome(task: asyncio.Task[tuple[str, ...]]) -> None:
    if not task.cancelled():
        task.exception()


async def close_directory(directory: object) -> None:
    """Release what a directory holds (the Keycloak adapter's own HTTP client); others hold nothing."""
    close = getattr(directory, "aclose", None)
    if close is not None:
        await close()
