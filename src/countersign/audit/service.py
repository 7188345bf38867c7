"""Audit trail of admin writes, recorded in the same transaction as the write itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from countersign.models import AuditEntry


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    resource_type: str,
    resource_id: str,
    before: Any = None,
    after: Any = None,
    trace_id: str | None = None,
) -> AuditEntry:
    """Append one audit row. Snapshots must be JSON-ready (use `model_dump(mode="json")`)."""
    entry = AuditEntry(
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        before=before,
        after=after,
        trace_id=trace_id,
    )
    session.add(entry)
    return entry
