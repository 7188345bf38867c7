from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from countersign.db import Base, JSONType
from countersign.models._mixins import CreatedAtMixin, IdMixin


class IdempotencyKey(IdMixin, CreatedAtMixin, Base):
    """A stored response for (caller, Idempotency-Key), replayed byte for byte."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("caller", "key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    caller: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    fingerprint: Mapped[str] = mapped_column(String(64))
    # in_flight | completed
    status: Mapped[str] = mapped_column(String(16), default="in_flight")
    response_status: Mapped[int | None]
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime]
