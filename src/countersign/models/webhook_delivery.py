from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from countersign.db import Base
from countersign.models._mixins import IdMixin, TimestampsMixin


class WebhookDelivery(IdMixin, TimestampsMixin, Base):
    """Outbox row: one event to one callback URL, written in the state change's transaction."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index(
            "ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"
        ),
        Index("ix_webhook_deliveries_request_id_sequence", "request_id", "sequence"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), unique=True
    )
    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("approval_requests.id", ondelete="CASCADE")
    )
    sequence: Mapped[int]
    event_type: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    caller: Mapped[str] = mapped_column(String(200))
    secret_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The exact bytes that are signed and sent, frozen at creation.
    body: Mapped[str] = mapped_column(Text)
    # pending | delivered | exhausted
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempt: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # scheduled | manual (an admin retry: its attempts are recorded as manual)
    trigger: Mapped[str] = mapped_column(String(16), default="scheduled")
    # A worker sending this delivery holds it until then; a crashed worker's lease just runs out.
    lease_until: Mapped[datetime | None]
