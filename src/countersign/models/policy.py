from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from countersign.db import Base, JSONType
from countersign.models._mixins import IdMixin, TimestampsMixin

if TYPE_CHECKING:
    from countersign.models.policy_stage import PolicyStage


class Policy(IdMixin, TimestampsMixin, Base):
    """One version of a policy. The key groups versions; `status` moves draft → active → archived."""

    __tablename__ = "policies"
    __table_args__ = (
        UniqueConstraint("policy_key", "version"),
        # The database itself guarantees at most one active version per key.
        Index(
            "uq_policies_one_active_per_key",
            "policy_key",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
        Index("ix_policies_artifact_type_status", "artifact_type", "status"),
    )

    policy_key: Mapped[str] = mapped_column(String(200))
    version: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default="draft")
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    artifact_type: Mapped[str] = mapped_column(String(200))
    forbid_self_approval: Mapped[bool] = mapped_column(default=True)
    forbid_repeat_approvers: Mapped[bool] = mapped_column(default=False)
    allow_request_changes: Mapped[bool] = mapped_column(default=True)
    request_ttl_hours: Mapped[float | None]
    applies_if: Mapped[Any | None] = mapped_column(JSONType)
    priority: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str] = mapped_column(String(200))
    activated_at: Mapped[datetime | None]

    stages: Mapped[list[PolicyStage]] = relationship(
        back_populates="policy",
        lazy="raise",
        order_by="PolicyStage.position",
        cascade="all, delete-orphan",
    )

    @property
    def policy_id(self) -> uuid.UUID:
        return self.id
