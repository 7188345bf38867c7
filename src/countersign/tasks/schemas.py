"""Task, inbox and decision bodies of the contract (`/v1/tasks`; AWE's field names)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from countersign.kit.schemas import CommandIn as _In
from countersign.kit.schemas import RowOut as _Out
from countersign.kit.schemas import Text200
from countersign.kit.validation import AttachmentsRef
from countersign.requests.domain import (
    DecisionAction,
    RequestStatus,
    StageStatus,
    TaskKind,
    TaskStatus,
)


class TaskOut(_Out):
    id: uuid.UUID
    request_id: uuid.UUID
    stage_order: int
    kind: TaskKind
    assignee: str
    delegated_from: str | None
    reassigned_from: str | None
    status: TaskStatus
    due_at: datetime | None
    claimed_at: datetime | None
    completed_at: datetime | None
    decision_action: DecisionAction | None
    decision_comment: str | None
    created_at: datetime
    artifact_type: str
    artifact_id: str
    policy_key: str
    context: dict[str, Any]


class DecisionIn(_In):
    action: DecisionAction
    comment: Annotated[str, StringConstraints(max_length=4000)] | None = None
    attachments_ref: AttachmentsRef | None = None


class DecisionOut(BaseModel):
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
    request_status: RequestStatus
    stage_status: StageStatus


class BulkDecisionItem(DecisionIn):
    task_id: uuid.UUID


class BulkDecisionsIn(_In):
    decisions: list[BulkDecisionItem] = Field(min_length=1, max_length=100)


class BulkDecisionResult(BaseModel):
    task_id: uuid.UUID
    status: int
    decision: DecisionOut | None = None
    problem: dict[str, Any] | None = None


class BulkDecisionsOut(BaseModel):
    results: list[BulkDecisionResult]


class ReassignIn(_In):
    new_assignee: Text200
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


class TaskPage(BaseModel):
    items: list[TaskOut]
    total: int | None
    page: int | None
    page_size: int
    pages: int | None
    next_cursor: str | None


class TaskStats(BaseModel):
    model_config = ConfigDict(extra="allow")

    total: int
    by_artifact_type: dict[str, int]
    by_status: dict[str, int]
