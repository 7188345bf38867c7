from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from countersign.db import Base
from countersign.models._mixins import CreatedAtMixin, IdMixin


class Delegation(IdMixin, CreatedAtMixin, Base):
    """Out-of-office window: `user_id`'s tasks go to (and may be decided by) `delegate_to`."""

    __tablename__ = "delegations"
    __table_args__ = (
        Index(
            "ix_delegations_user_id_starts_at_ends_at",
            "user_id",
            "starts_at",
            "ends_at",
        ),
        Index("ix_delegations_delegate_to", "delegate_to"),
    )

    user_id: Mapped[str] = mapped_column(String(200))
    delegate_to: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
