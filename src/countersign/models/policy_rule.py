from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from countersign.db import Base, JSONType
from countersign.models._mixins import IdMixin

if TYPE_CHECKING:
    from countersign.models.policy_stage import PolicyStage


class PolicyRule(IdMixin, Base):
    """An approver/observer rule of a stage (`user`, `role`, `group`, `expression`, `http`)."""

    __tablename__ = "policy_rules"

    stage_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("policy_stages.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    rule_type: Mapped[str] = mapped_column(String(16))
    rule_value: Mapped[dict[str, Any]] = mapped_column(JSONType)
    kind: Mapped[str] = mapped_column(String(16), default="approver")
    required: Mapped[bool] = mapped_column(default=False)

    stage: Mapped[PolicyStage] = relationship(back_populates="rules", lazy="raise")
