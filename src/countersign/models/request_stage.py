from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from countersign.db import Base, JSONType
from countersign.models._mixins import IdMixin, TimestampsMixin

if TYPE_CHECKING:
    from countersign.models.task import Task


class RequestStage(IdMixin, TimestampsMixin, Base):
    """A stage of one request in one cycle, with the policy stage's settings copied at creation."""

    __tablename__ = "request_stages"
    __table_args__ = (
        UniqueConstraint("request_id", "cycle", "stage_order"),
        Index(
            "ix_request_stages_status_next_resolution_at",
            "status",
            "next_resolution_at",
        ),
        Index("ix_request_stages_status_due_at", "status", "due_at"),
    )

    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("approval_requests.id", ondelete="CASCADE"), index=True
    )
    policy_stage_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("policy_stages.id")
    )
    cycle: Mapped[int] = mapped_column(default=1)
    stage_order: Mapped[int]
    name: Mapped[str] = mapped_column(String(500))
    parallel_group: Mapped[int | None] = mapped_column(Integer)
    # pending | resolving | active | approved | rejected | skipped | cancelled
    status: Mapped[str] = mapped_column(String(16), default="pending")
    mode: Mapped[str] = mapped_column(String(16))
    mode_value: Mapped[int | None]
    veto: Mapped[bool | None]
    on_empty: Mapped[str] = mapped_column(String(16), default="block")
    sla_hours: Mapped[float | None]
    on_breach: Mapped[str | None] = mapped_column(String(16))
    reminder_hours: Mapped[float | None]
    due_at: Mapped[datetime | None]
    breach_handled_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    skip_reason: Mapped[str | None] = mapped_column(String(64))
    # Approver resolution retries after a directory or http-resolver outage.
    resolution_attempts: Mapped[int] = mapped_column(default=0)
    next_resolution_at: Mapped[datetime | None]
    last_resolution_error: Mapped[str | None] = mapped_column(Text)
    # Deprecated, no longer read: a stage's required approvers are the assignees of its tasks
    # marked `required` (the requirement moves with a reassigned task). Still written as `[]` by
    # the column default so the previous release, reading it during a rollout, sees no names;
    # dropped by a later migration (ADR 0005).
    required_approvers: Mapped[list[Any]] = mapped_column(JSONType, default=list)

    # Declared so that one flush inserts stage rows before their tasks (the unit of work orders
    # INSERTs by relationship, not by foreign key); never loaded or assigned (ADR 0047).
    _task_rows: Mapped[list[Task]] = relationship(lazy="raise", passive_deletes=True)
