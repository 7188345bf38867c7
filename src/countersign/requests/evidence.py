"""The evidence bundle of one request (`GET /v1/requests/{id}/evidence`): one JSON document an
auditor can keep and check on their own.

It holds the request, every task and decision of every cycle, every event with its hashes, the
result of recomputing the hash chain when the bundle was made, the pinned policy version (the full
PolicyOut) with its diagram, and the request's diagram. The events carry everything needed to
verify the chain again offline (docs/concepts.md shows the ten lines of Python).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from countersign import __version__
from countersign.identity.principal import Principal
from countersign.kit.clock import now
from countersign.models import ApprovalRequest
from countersign.policies import service as policy_service
from countersign.policies.diagram import render_policy_svg
from countersign.policies.repository import PolicyRepository
from countersign.policies.schemas import PolicyOut
from countersign.requests import engine
from countersign.requests import service as request_service
from countersign.requests.repository import RequestRepository
from countersign.requests.schemas import (
    ChainVerification,
    EventOut,
    EvidenceDecision,
    RequestOut,
    TaskOut,
)
from countersign.requests.timeline import verify_chain


class EvidenceOut(BaseModel):
    format: Literal["countersign.evidence/v1"] = Field(
        "countersign.evidence/v1", description="version of this document's shape"
    )
    generated_at: datetime
    generated_by: str = Field(description="the principal id that downloaded it")
    service_version: str
    request: RequestOut
    tasks: list[TaskOut] = Field(description="every task of every cycle, oldest first")
    decisions: list[EvidenceDecision] = Field(description="oldest first")
    events: list[EventOut] = Field(description="the timeline, ascending by sequence")
    verification: ChainVerification = Field(
        description="the hash chain recomputed over `events` when the bundle was made"
    )
    policy: PolicyOut = Field(description="the policy version the request is pinned to")
    policy_diagram_svg: str = Field(description="that version's diagram (SVG)")
    request_diagram_svg: str = Field(
        description="the request's diagram (SVG) when the bundle was made"
    )


async def build(
    session: AsyncSession, request: ApprovalRequest, *, principal: Principal
) -> EvidenceOut:
    """The bundle as `principal` (who can see the request) may have it. Its tasks follow the
    rule of `GET /v1/tasks?assignee=*&request_id=`: admins, viewers and the creating principal
    get every task, anyone else the completed ones plus their own."""
    repository = RequestRepository(session)
    events = await repository.list_events(request.id)
    check = verify_chain(events)
    # The version as it is now (its current status), not the engine's cached content.
    pinned = await PolicyRepository(session).get_by_id(request.policy_id)
    if pinned is None:  # a foreign key; load_policy says so loudly
        pinned = await engine.load_policy(session, request)
    policy = policy_service.to_policy_out(pinned)
    tasks = await repository.list_tasks(request.id)
    if not (principal.can_read_everything or principal.id == request.source_service):
        tasks = [
            t for t in tasks if t.status == "completed" or t.assignee == principal.id
        ]
    return EvidenceOut(
        generated_at=now(),
        generated_by=principal.id,
        service_version=__version__,
        request=await request_service.request_out(session, request),
        tasks=[request_service.task_out(t, request) for t in tasks],
        decisions=[
            EvidenceDecision.model_validate(d)
            for d in await repository.list_decisions(request.id)
        ],
        events=[EventOut.model_validate(e) for e in events],
        verification=ChainVerification(
            valid=check.valid, count=check.count, broken_at_sequence=check.broken_at
        ),
        policy=policy,
        policy_diagram_svg=render_policy_svg(policy),
        request_diagram_svg=await request_service.request_diagram_svg(session, request),
    )
