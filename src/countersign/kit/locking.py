"""Transaction-scoped locks for work that has no row to lock yet (e.g. the next policy version)."""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def advisory_xact_lock(session: AsyncSession, namespace: str, key: str) -> None:
    """Serialize transactions on `(namespace, key)` until commit or rollback.

    On PostgreSQL this is `pg_advisory_xact_lock`; SQLite transactions already hold the database
    write lock from `BEGIN IMMEDIATE` (see `db.py`), so there is nothing more to take there.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"{namespace}:{key}".encode(), digest_size=8).digest()
    lock_id = int.from_bytes(digest, "big", signed=True)
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
