from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from countersign.db import Base, JSONType
from countersign.models._mixins import CreatedAtMixin, IdMixin


class Decision(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "decisions"

    # Unique: a task is decided once, whatever the concurrency.
    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), unique=True
    )
    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("approval_requests.id", ondelete="CASCADE"), index=True
    )
    stage_order: Mapped[int]
    actor: Mapped[str] = mapped_column(String(200))
    on_behalf_of: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    attachments_ref: Mapped[Any | None] = mapped_column(JSONType)
