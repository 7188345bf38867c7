from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from countersign.db import Base, JSONType
from countersign.models._mixins import IdMixin

if TYPE_CHECKING:
    from countersign.models.policy import Policy
    from countersign.models.policy_rule import PolicyRule


class PolicyStage(IdMixin, Base):
    __tablename__ = "policy_stages"
    __table_args__ = (UniqueConstraint("policy_id", "stage_order"),)

    policy_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("policies.id", ondelete="CASCADE"), index=True
    )
    # Position in the submitted list, so a policy reads back exactly as it was written.
    position: Mapped[int]
    stage_order: Mapped[int]
    name: Mapped[str] = mapped_column(String(500))
    mode: Mapped[str] = mapped_column(String(16))
    mode_value: Mapped[int | None]
    veto: Mapped[bool | None]
    parallel_group: Mapped[int | None] = mapped_column(Integer)
    skip_if: Mapped[Any | None] = mapped_column(JSONType)
    on_empty: Mapped[str] = mapped_column(String(16), default="block")
    sla_hours: Mapped[float | None]
    on_breach: Mapped[str | None] = mapped_column(String(16))
    escalation_rules: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType, default=list
    )
    reminder_hours: Mapped[float | None]

    policy: Mapped[Policy] = relationship(back_populates="stages", lazy="raise")
    rules: Mapped[list[PolicyRule]] = relationship(
        back_populates="stage",
        lazy="raise",
        order_by="PolicyRule.position",
        cascade="all, delete-orphan",
    )
