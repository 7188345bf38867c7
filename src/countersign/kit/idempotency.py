"""Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) for POSTs that create things.

The key row is inserted in the command's own transaction. A concurrent duplicate's insert waits on
the unique index until the first transaction ends: if it committed, the duplicate reads the stored
response and replays it byte for byte; if it rolled back, the duplicate runs as the first. A crash
mid-command rolls the row back with everything else, so no key is ever stuck "in flight" and no
replay can return an id that was never committed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.db import new_id
from countersign.errors import (
    FieldProblem,
    IdempotencyInFlight,
    IdempotencyKeyReused,
    ValidationFailed,
)
from countersign.kit import metrics
from countersign.kit.clock import now
from countersign.models import IdempotencyKey

RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def parse_key(header: str) -> str:
    """Accept both `"abc"` (the draft's structured-field string) and bare `abc`."""
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(
            "Idempotency-Key must be 1–255 characters",
            [FieldProblem("/headers/Idempotency-Key", "must be 1–255 characters")],
        )
    return key


def fingerprint(body: bytes) -> str:
    """Fingerprint of the request body; JSON is canonicalised so whitespace and key order don't matter."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":")
        ).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


async def begin(
    session: AsyncSession,
    *,
    caller: str,
    key: str,
    method: str,
    path: str,
    body_fingerprint: str,
) -> StoredResponse | None:
    """Claim (caller, key) for this transaction, or return the stored response to replay."""
    at = now()
    values = {
        "id": new_id(),
        "caller": caller,
        "key": key,
        "method": method,
        "path": path,
        "fingerprint": body_fingerprint,
        "status": "in_flight",
        "expires_at": at + RETENTION,
        "created_at": at,
    }
    for _ in range(2):
        if await _insert(session, values):
            return None
        existing = (
            await session.execute(
                select(IdempotencyKey)
                .where(IdempotencyKey.caller == caller, IdempotencyKey.key == key)
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if existing is None:
            continue  # the first call rolled back between our insert and read: claim it now
        if existing.expires_at <= at:
            await session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.id == existing.id)
            )
            continue
        if existing.fingerprint != body_fingerprint or existing.path != path:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {key!r} was used with a different request body"
            )
        if existing.status != "completed" or existing.response_status is None:
            raise IdempotencyInFlight(
                f"a request with Idempotency-Key {key!r} is still being processed"
            )
        metrics.IDEMPOTENCY_REPLAYS.inc()
        return StoredResponse(
            existing.response_status,
            dict(existing.response_headers or {}),
            existing.response_body or b"",
        )
    raise IdempotencyInFlight(
        f"a request with Idempotency-Key {key!r} is still being processed"
    )


async def _insert(session: AsyncSession, values: dict[str, object]) -> bool:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(IdempotencyKey)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["caller", "key"])
        .returning(IdempotencyKey.id)
    )
    return (await session.execute(statement)).first() is not None


async def complete(
    session: AsyncSession,
    *,
    caller: str,
    key: str,
    status: int,
    headers: dict[str, str],
    body: bytes,
) -> None:
    """Store the response in the same transaction as the work it describes."""
    row = (
        await session.execute(
            select(IdempotencyKey).where(
                IdempotencyKey.caller == caller, IdempotencyKey.key == key
            )
        )
    ).scalar_one()
    row.status = "completed"
    row.response_status = status
    row.response_headers = headers
    row.response_body = body


async def purge_expired(session: AsyncSession) -> int:
    """Delete keys past their retention (run periodically by the worker)."""
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now())
    )
    return int(getattr(result, "rowcount", 0) or 0)
