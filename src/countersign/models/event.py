from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from countersign.db import Base, JSONType
from countersign.models._mixins import IdMixin

if TYPE_CHECKING:
    from countersign.models.webhook_delivery import WebhookDelivery


class Event(IdMixin, Base):
    """Append-only timeline entry, hash-chained per request."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("request_id", "sequence"),)

    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("approval_requests.id", ondelete="CASCADE")
    )
    sequence: Mapped[int]
    event_type: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Kept as the exact RFC 3339 string that was hashed, so verification never depends on how a
    # database round-trips timestamps.
    created_at: Mapped[str] = mapped_column(String(40))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    # Declared so that one flush inserts event rows before their outbox rows (the unit of work orders
    # INSERTs by relationship, not by foreign key); never loaded or assigned (ADR 0047).
    _delivery_rows: Mapped[list[WebhookDelivery]] = relationship(
        lazy="raise", passive_deletes=True
    )
