"""Columns every table shares."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Uuid
from sqlalchemy.orm import Mapped, mapped_column

from countersign.db import new_id
from countersign.kit.clock import now


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)


class CreatedAtMixin:
    created_at: Mapped[datetime] = mapped_column(default=now)


class TimestampsMixin(CreatedAtMixin):
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)
