"""Policy bodies of the HTTP contract ("Policies" in API.md), field names exactly as AWE spells them.

Pydantic only checks types and simple ranges here; everything that needs to look at more than one
field (unique `stage_order`, `mode_value` per mode, rule_value shapes, JSONLogic safety...) is in
`policies/domain.py:validate_policy`, so that all semantic problems are reported together.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from countersign.kit.validation import Int32, PositiveHours

RuleType = Literal["user", "role", "group", "expression", "http"]
RuleKind = Literal["approver", "observer"]
StageMode = Literal["all", "any-n", "quorum", "percentage"]
OnEmpty = Literal["block", "skip"]
OnBreach = Literal["notify", "escalate", "auto_approve", "auto_reject"]
PolicyStatus = Literal["draft", "active", "archived"]
SimulationOutcome = Literal["approved", "rejected", "pending"]

# 150, not the column's 200: audit entries name a version as `<key>@<version>` in a VARCHAR(200).
PolicyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=150, pattern=r"^[A-Za-z0-9._:\-]+$")
]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# Bounded like their columns (VARCHAR(500)) or, for free text, well above any real use.
Name = Annotated[str, StringConstraints(max_length=500)]
Description = Annotated[str, StringConstraints(max_length=10_000)]

MAX_STAGES = 100
# Per stage, for approver rules and escalation rules each: a policy is read on every resolution.
MAX_RULES = 100


class _In(BaseModel):
    # AWE clients send fields Countersign does not know (the contract: "Countersign only adds
    # fields", never the other way round), so unknown fields are dropped rather than refused.
    model_config = ConfigDict(extra="ignore")


class _Out(BaseModel):
    # Services build responses straight from ORM rows.
    model_config = ConfigDict(extra="ignore", from_attributes=True)


class RuleIn(_In):
    rule_type: RuleType
    rule_value: dict[str, Any]
    kind: RuleKind = "approver"
    required: bool = False


class EscalationRuleIn(_In):
    rule_type: RuleType
    rule_value: dict[str, Any]


class StageIn(_In):
    stage_order: Int32
    name: Name
    mode: StageMode
    mode_value: Int32 | None = None
    veto: bool | None = None
    # An integer, as in AWE: adjacent stages with the same number run together.
    parallel_group: Int32 | None = None
    skip_if: Any | None = None
    on_empty: OnEmpty = "block"
    sla_hours: PositiveHours | None = None
    on_breach: OnBreach | None = None
    escalation_rules: list[EscalationRuleIn] = Field(
        default_factory=list, max_length=MAX_RULES
    )
    reminder_hours: PositiveHours | None = None
    # Defaults to empty: a stage without approver rules is legal (it resolves nobody and
    # `on_empty` decides), so an omitted list means the same thing as an empty one.
    rules: list[RuleIn] = Field(default_factory=list, max_length=MAX_RULES)


class PolicyIn(_In):
    policy_key: PolicyKey
    name: Name
    description: Description | None = None
    artifact_type: NonEmptyStr
    forbid_self_approval: bool = True
    forbid_repeat_approvers: bool = False
    allow_request_changes: bool = True
    request_ttl_hours: PositiveHours | None = None
    applies_if: Any | None = None
    priority: Int32 = 0
    stages: list[StageIn] = Field(default_factory=list, max_length=MAX_STAGES)


class StageOut(StageIn):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: uuid.UUID


class PolicyOut(PolicyIn):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    # Narrowing a list field is not a Liskov-safe override for mypy (lists are invariant), but a
    # PolicyOut is only ever read where a PolicyIn is expected (e.g. `validate_policy` at
    # activation), and a StageOut is a StageIn, so the narrowing is sound in practice.
    stages: list[StageOut] = Field(default_factory=list, max_length=MAX_STAGES)  # type: ignore[assignment]
    id: uuid.UUID
    version: int
    status: PolicyStatus
    created_by: str
    created_at: datetime


class PolicyVersionOut(_Out):
    id: uuid.UUID
    policy_key: str
    version: int
    status: PolicyStatus
    created_at: datetime
    created_by: str


class SimulateIn(_In):
    context: dict[str, Any] = Field(default_factory=dict)
    # Both default to the calling principal; `creator` lets an author try "created by X for Y".
    requester: Annotated[str, StringConstraints(max_length=200)] | None = None
    creator: Annotated[str, StringConstraints(max_length=200)] | None = None


SodReason = Literal[
    "requester",
    "creator",
    "earlier_approver",
    "delegate_of_requester",
    "delegate_of_creator",
    "delegate_of_earlier_approver",
]


class TracedRule(_Out):
    """One rule of a simulated stage and whom it resolved to (`error`: why it resolved nobody)."""

    index: int
    rule_type: RuleType
    rule_value: dict[str, Any]
    kind: RuleKind
    required: bool
    resolved: list[str]
    error: str | None


class TracedRemoval(_Out):
    user_id: str
    reason: SodReason
    detail: str


class TracedDelegation(_Out):
    user_id: str
    delegate_to: str
    delegation_id: uuid.UUID


class ResolutionTrace(_Out):
    """How a simulated stage got its people: rules, separation of duties, delegations, skip_if."""

    rules: list[TracedRule]
    removed: list[TracedRemoval]
    delegations: list[TracedDelegation]
    skip_condition: Any | None
    skip_result: bool | None


class SimulatedStage(_Out):
    stage_order: int
    name: str
    mode: StageMode
    mode_value: int | None
    resolved_approvers: list[str]
    observers: list[str]
    required_approvers: list[str]
    removed_by_sod: list[str]
    skipped: bool
    skip_reason: str | None
    trace: ResolutionTrace


class SimulateOut(_Out):
    policy_key: str
    policy_version: int
    outcome: SimulationOutcome
    stages: list[SimulatedStage]


class DiffChange(_Out):
    pointer: str
    before: Any
    after: Any


class DiffOut(_Out):
    changes: list[DiffChange]


class PolicyPatch(_In):
    """PATCH body: a PolicyIn whose fields are all optional. Absent fields keep their value;
    `stages`, when present, replaces every stage (stages have no stable identity across edits)."""

    policy_key: PolicyKey | None = None
    name: Name | None = None
    description: Description | None = None
    artifact_type: NonEmptyStr | None = None
    forbid_self_approval: bool | None = None
    forbid_repeat_approvers: bool | None = None
    allow_request_changes: bool | None = None
    request_ttl_hours: PositiveHours | None = None
    applies_if: Any | None = None
    priority: Int32 | None = None
    stages: list[StageIn] | None = Field(default=None, max_length=MAX_STAGES)
