from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from countersign.db import Base, JSONType
from countersign.models._mixins import IdMixin, TimestampsMixin

if TYPE_CHECKING:
    from countersign.models.event import Event
    from countersign.models.request_stage import RequestStage

LIVE_STATUSES = ("in_review", "changes_requested")


class ApprovalRequest(IdMixin, TimestampsMixin, Base):
    """An artifact under review, pinned to the policy version active when it was created."""

    __tablename__ = "approval_requests"
    __table_args__ = (
        # One live request per caller and artifact, guaranteed by the database under concurrency.
        Index(
            "uq_approval_requests_live_artifact",
            "source_client",
            "artifact_type",
            "artifact_id",
            unique=True,
            postgresql_where=text("status IN ('in_review', 'changes_requested')"),
            sqlite_where=text("status IN ('in_review', 'changes_requested')"),
        ),
        Index("ix_approval_requests_created_at_id", "created_at", "id"),
        Index("ix_approval_requests_artifact", "artifact_type", "artifact_id"),
        Index("ix_approval_requests_status_created_at", "status", "created_at"),
        Index("ix_approval_requests_expires_at", "expires_at"),
    )

    policy_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("policies.id"), index=True)
    policy_key: Mapped[str] = mapped_column(String(200))
    policy_version: Mapped[int]
    artifact_type: Mapped[str] = mapped_column(String(200))
    artifact_id: Mapped[str] = mapped_column(String(500))
    # The principal that created it, and the OAuth client (azp) of the creating token.
    source_service: Mapped[str] = mapped_column(String(200))
    source_client: Mapped[str] = mapped_column(String(200))
    requester: Mapped[str] = mapped_column(String(200), index=True)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONType, default=dict
    )
    status: Mapped[str] = mapped_column(String(32), default="in_review")
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    current_stage_order: Mapped[int | None]
    # Resubmission restarts the stages; `cycle` tells the rounds apart while history stays.
    cycle: Mapped[int] = mapped_column(default=1)
    callback_url: Mapped[str | None] = mapped_column(Text)
    callback_secret_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    completed_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    # Head of the event hash chain, kept here so appending an event needs no extra read.
    last_sequence: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default="0" * 64)
    # A request whose timers keep failing (a corrupt row, a bug) is backed off, so the sweep,
    # which takes the most overdue first, is never monopolised by a few broken requests.
    # Nullable (NULL = no failure) so the previous release keeps inserting rows (ADR 0005).
    timer_failures: Mapped[int | None]
    timers_retry_at: Mapped[datetime | None]

    # Declared so that one flush inserts request rows before their stages and events (the unit of
    # work orders INSERTs by relationship, not by foreign key); never loaded or assigned (ADR 0047).
    _stage_rows: Mapped[list[RequestStage]] = relationship(
        lazy="raise", passive_deletes=True
    )
    _event_rows: Mapped[list[Event]] = relationship(lazy="raise", passive_deletes=True)
