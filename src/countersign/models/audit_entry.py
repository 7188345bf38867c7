from __future__ import annotations

from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from countersign.db import Base, JSONType
from countersign.models._mixins import CreatedAtMixin, IdMixin


class AuditEntry(IdMixin, CreatedAtMixin, Base):
    """Every admin write, with full before/after snapshots. Append-only."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_created_at_id", "created_at", "id"),
        Index(
            "ix_audit_entries_resource_type_resource_id", "resource_type", "resource_id"
        ),
        Index("ix_audit_entries_actor", "actor"),
    )

    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(200))
    before: Mapped[Any | None] = mapped_column(JSONType)
    after: Mapped[Any | None] = mapped_column(JSONType)
    trace_id: Mapped[str | None] = mapped_column(String(64))
