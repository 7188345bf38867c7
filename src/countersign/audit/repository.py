from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.kit.pagination import Page, created_keyset, scalars_page
from countersign.models import AuditEntry


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list_entries(
        self,
        *,
        actor: str | None,
        action: str | None,
        resource_type: str | None,
        resource_id: str | None,
        since: datetime | None,
        until: datetime | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Page[AuditEntry]:
        """Newest first, keyset-paged on (created_at, id)."""
        statement = select(AuditEntry).order_by(
            AuditEntry.created_at.desc(), AuditEntry.id.desc()
        )
        filters = {
            AuditEntry.actor: actor,
            AuditEntry.action: action,
            AuditEntry.resource_type: resource_type,
            AuditEntry.resource_id: resource_id,
        }
        for column, value in filters.items():
            if value is not None:
                statement = statement.where(column == value)
        if since is not None:
            statement = statement.where(AuditEntry.created_at >= since)
        if until is not None:
            statement = statement.where(AuditEntry.created_at < until)
        if before is not None:
            statement = statement.where(
                tuple_(AuditEntry.created_at, AuditEntry.id) < before
            )
        return await scalars_page(
            self.session, statement, limit=limit, cursor_of=created_keyset
        )
