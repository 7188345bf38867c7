from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from countersign.db import Base
from countersign.models._mixins import IdMixin, TimestampsMixin

if TYPE_CHECKING:
    from countersign.models.decision import Decision


class Task(IdMixin, TimestampsMixin, Base):
    """One person's part in a stage: an approver task (counts) or an observer task (never counts)."""

    __tablename__ = "tasks"
    __table_args__ = (
        # The inbox query: one approver's tasks by status, newest first, keyset-paged.
        Index(
            "ix_tasks_assignee_status_created_at_id",
            "assignee",
            "status",
            "created_at",
            "id",
        ),
        Index("ix_tasks_request_id_stage_order", "request_id", "stage_order"),
        Index("ix_tasks_status_due_at", "status", "due_at"),
        Index("ix_tasks_status_remind_at", "status", "remind_at"),
    )

    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("approval_requests.id", ondelete="CASCADE")
    )
    request_stage_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("request_stages.id", ondelete="CASCADE"), index=True
    )
    stage_order: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16), default="approver")
    assignee: Mapped[str] = mapped_column(String(200))
    delegated_from: Mapped[str | None] = mapped_column(String(200))
    reassigned_from: Mapped[str | None] = mapped_column(String(200))
    # Set when a required approver rule resolved this assignee.
    required: Mapped[bool] = mapped_column(default=False)
    # open | claimed | completed | skipped | expired | reassigned
    status: Mapped[str] = mapped_column(String(16), default="open")
    due_at: Mapped[datetime | None]
    remind_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    decision_action: Mapped[str | None] = mapped_column(String(32))
    decision_comment: Mapped[str | None] = mapped_column(Text)
    # Copied from the request so an inbox page is one indexed query with no join.
    artifact_type: Mapped[str] = mapped_column(String(200))
    artifact_id: Mapped[str] = mapped_column(String(500))
    policy_key: Mapped[str] = mapped_column(String(200))

    # Declared so that one flush inserts task rows before their decisions (the unit of work orders
    # INSERTs by relationship, not by foreign key); never loaded or assigned (ADR 0047).
    _decision_rows: Mapped[list[Decision]] = relationship(
        lazy="raise", passive_deletes=True
    )
