"""Request and event bodies of the contract (AWE's field names; Countersign adds fields); the task
and decision bodies are `tasks/schemas.py`'s."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from countersign.kit.schemas import CommandIn as _In
from countersign.kit.schemas import RowOut as _Out
from countersign.kit.schemas import Text200, Text500

# The status vocabulary is `requests/domain.py`'s: these are its enums, not copies of their values.
from countersign.requests.domain import (
    DecisionAction,
    RequestStatus,
    StageStatus,
    TaskKind,
    TaskStatus,
)
from countersign.tasks.schemas import TaskOut

__all__ = [
    "DecisionAction",
    "RequestStatus",
    "StageStatus",
    "TaskKind",
    "TaskOut",
    "TaskStatus",
]


class RequestCreate(_In):
    policy_key: Text200 | None = None
    artifact_type: Text200
    artifact_id: Text500
    context: dict[str, Any] = Field(default_factory=dict)
    callback_url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    callback_secret_id: uuid.UUID | None = None
    requester: Text200 | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class CancelIn(_In):
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


class ResubmitIn(_In):
    context: dict[str, Any] | None = None
    comment: Annotated[str, StringConstraints(max_length=4000)] | None = None


class RequestCreated(BaseModel):
    request_id: uuid.UUID
    status: RequestStatus
    current_stage_order: int | None
    tasks: list[TaskOut]


class StageCounts(BaseModel):
    approve: int
    reject: int
    abstain: int
    open: int


class RequestStageOut(BaseModel):
    stage_order: int
    name: str
    parallel_group: int | None
    status: StageStatus
    mode: str
    mode_value: int | None
    due_at: datetime | None
    counts: StageCounts
    # While `resolving`: why the last approver resolution failed and when it is retried (the
    # "error in the row" of the admin UI's stuck view). Null otherwise.
    resolution_error: str | None
    next_resolution_at: datetime | None


class RequestOut(BaseModel):
    id: uuid.UUID
    policy_id: uuid.UUID
    policy_key: str
    policy_version: int
    artifact_type: str
    artifact_id: str
    source_service: str
    source_client: str
    requester: str
    context: dict[str, Any]
    metadata: dict[str, Any]
    status: RequestStatus
    outcome_reason: str | None
    current_stage_order: int | None
    callback_url: str | None
    callback_secret_id: uuid.UUID | None
    cycle: int
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    stages: list[RequestStageOut]
    # Webhook deliveries of this request that gave up (`exhausted`): with a resolving stage, what
    # makes a request "stuck" (`GET /v1/requests?stuck=true`).
    exhausted_deliveries: int


class EventOut(_Out):
    id: uuid.UUID
    request_id: uuid.UUID
    sequence: int
    event_type: str
    actor: str
    payload: dict[str, Any]
    created_at: str
    prev_hash: str
    hash: str


class DiagramLinkOut(BaseModel):
    url: str
    expires_at: datetime


class ChainVerification(BaseModel):
    valid: bool
    count: int
    broken_at_sequence: int | None = None


class StageAdminOut(BaseModel):
    """A stage as operators see it (e.g. waiting for an approver resolution retry)."""

    model_config = ConfigDict(from_attributes=True)

    request_id: uuid.UUID
    stage_order: int
    name: str
    status: StageStatus
    cycle: int
    resolution_attempts: int
    next_resolution_at: datetime | None
    last_resolution_error: str | None
    updated_at: datetime


class EvidenceDecision(_Out):
    """A decision as recorded (the task it was made on, who made it and for whom)."""

    id: uuid.UUID
    request_id: uuid.UUID
    task_id: uuid.UUID
    stage_order: int
    actor: str
    on_behalf_of: str | None
    action: DecisionAction
    comment: str | None
    attachments_ref: Any | None
    created_at: datetime
