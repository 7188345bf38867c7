from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from countersign.db import Base
from countersign.models._mixins import CreatedAtMixin, IdMixin


class CallerSecret(IdMixin, CreatedAtMixin, Base):
    """A caller's webhook signing secret, Fernet-encrypted with COUNTERSIGN_SECRET_KEY."""

    __tablename__ = "caller_secrets"
    __table_args__ = (Index("ix_caller_secrets_caller_status", "caller", "status"),)

    caller: Mapped[str] = mapped_column(String(200))
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # active | rotated | revoked
    status: Mapped[str] = mapped_column(String(16), default="active")
    subscribe_decisions: Mapped[bool] = mapped_column(default=False)
    # Set on rotation: the secret that took over. The old one keeps signing until `expires_at`.
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    rotated_at: Mapped[datetime | None]
    # End of the rotation grace period: a rotated secret signs until then.
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
