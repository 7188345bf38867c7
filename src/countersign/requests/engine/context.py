"""What every engine step works with: the locked request, its pinned policy, the timeline.

Callers hold the request row lock (`RequestRepository.lock`) for the whole command. Every function
of the engine only flushes; the command's one transaction commits the state change, its events and
its outbox rows together (ADR 0002).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from countersign.directory.resolver import ApproverResolver
from countersign.errors import AppError
from countersign.kit.clock import now, rfc3339
from countersign.models import (
    ApprovalRequest,
    Event,
    Policy,
    PolicyStage,
    RequestStage,
    Task,
)
from countersign.policies.repository import PolicyRepository
from countersign.policies.rules import rule_data
from countersign.requests import domain
from countersign.requests.engine.resolution import Resolutions
from countersign.requests.repository import RequestRepository
from countersign.requests.timeline import event_hash
from countersign.webhooks import outbox

SYSTEM_ACTOR = "system"


@dataclass
class Context:
    """One command on one locked request: the request, its pinned policy version, the resolver
    and the approvers already resolved outside the transaction (`resolution.run`)."""

    session: AsyncSession
    request: ApprovalRequest
    policy: Policy
    resolver: ApproverResolver
    # A JSONLogic rule (skip_if, expression) that fails on the context: "raise" when the person
    # sending that context is waiting for the answer (create, resubmit: a 422, nothing written);
    # "reject" otherwise (a decision or a timer started the stage: the decision stands, and the
    # request is rejected with reason rule_evaluation_failed, since a pinned policy version and a
    # fixed context would fail the same way on every retry).
    rule_errors: str = "reject"
    resolutions: Resolutions = field(default_factory=Resolutions)

    @property
    def repository(self) -> RequestRepository:
        return RequestRepository(self.session)


async def load_policy(session: AsyncSession, request: ApprovalRequest) -> Policy:
    """The request's pinned version (content only: cached per process, see `get_published`)."""
    policy = await PolicyRepository(session).get_published(request.policy_id)
    if (
        policy is None
    ):  # the foreign key makes this impossible; say so loudly if it happens
        raise AppError(
            f"policy version {request.policy_id} of request {request.id} is missing"
        )
    return policy


async def context_for(
    session: AsyncSession,
    request: ApprovalRequest,
    resolver: ApproverResolver,
    resolutions: Resolutions | None = None,
    *,
    rule_errors: str = "reject",
) -> Context:
    """The context of a command on `request` (already locked by the caller)."""
    return Context(
        session,
        request,
        await load_policy(session, request),
        resolver,
        rule_errors=rule_errors,
        resolutions=resolutions if resolutions is not None else Resolutions(),
    )


# --- timeline --------------------------------------------------------------------------------


async def append_event(
    session: AsyncSession,
    request: ApprovalRequest,
    event_type: str,
    actor: str,
    payload: dict[str, Any],
) -> Event:
    """Append to the request's hash-chained timeline and write the outbox row, in this transaction."""
    sequence = request.last_sequence + 1
    created_at = rfc3339(now())
    digest = event_hash(
        request.last_hash,
        sequence=sequence,
        event_type=event_type,
        actor=actor,
        payload=payload,
        created_at=created_at,
    )
    event = Event(
        id=uuid.uuid4(),
        request_id=request.id,
        sequence=sequence,
        event_type=event_type,
        actor=actor,
        payload=payload,
        created_at=created_at,
        prev_hash=request.last_hash,
        hash=digest,
    )
    request.last_sequence = sequence
    request.last_hash = digest
    session.add(event)
    await outbox.add_delivery(session, request, event)
    return event


# --- rows ------------------------------------------------------------------------------------


def request_facts(request: ApprovalRequest) -> dict[str, Any]:
    """The data JSONLogic rules see: the context plus the request's own fields under `_request`."""
    return rule_data(
        request.context,
        {
            "requester": request.requester,
            "artifact_type": request.artifact_type,
            "artifact_id": request.artifact_id,
            "policy_key": request.policy_key,
        },
    )


def policy_stage_of(policy: Policy, stage: RequestStage) -> PolicyStage:
    for candidate in policy.stages:
        if candidate.id == stage.policy_stage_id:
            return candidate
    raise AppError(
        f"stage {stage.stage_order} of request {stage.request_id} has no policy stage"
    )


def create_stage_rows(request: ApprovalRequest, policy: Policy) -> list[RequestStage]:
    """Copy the pinned policy's stages for the request's current cycle."""
    return [
        RequestStage(
            id=uuid.uuid4(),
            request_id=request.id,
            policy_stage_id=stage.id,
            cycle=request.cycle,
            stage_order=stage.stage_order,
            name=stage.name,
            parallel_group=stage.parallel_group,
            status=domain.StageStatus.PENDING,
            mode=stage.mode,
            mode_value=stage.mode_value,
            veto=stage.veto,
            on_empty=stage.on_empty,
            sla_hours=stage.sla_hours,
            on_breach=stage.on_breach,
            reminder_hours=stage.reminder_hours,
            # Column defaults apply only at INSERT, and the engine works on these rows before
            # the command's one flush (ADR 0047): every value it reads is set here.
            resolution_attempts=0,
            required_approvers=[],
        )
        for stage in sorted(policy.stages, key=lambda s: s.stage_order)
    ]


def new_task(
    request: ApprovalRequest,
    stage: RequestStage,
    *,
    kind: str,
    assignee: str,
    at: datetime,
    **fields: Any,
) -> Task:
    """An open task of `stage`, with the request fields the inbox reads copied onto it."""
    fields.setdefault(
        "required", False
    )  # read before the flush (see create_stage_rows)
    return Task(
        id=uuid.uuid4(),
        request_id=request.id,
        request_stage_id=stage.id,
        stage_order=stage.stage_order,
        kind=kind,
        assignee=assignee,
        status=domain.TaskStatus.OPEN,
        artifact_type=request.artifact_type,
        artifact_id=request.artifact_id,
        policy_key=request.policy_key,
        created_at=at,
        updated_at=at,
        **fields,
    )


def expiry_of(policy: Policy, at: datetime) -> datetime | None:
    if not policy.request_ttl_hours:
        return None
    return at + timedelta(seconds=math.ceil(policy.request_ttl_hours * 3600))


def votes_of(tasks: Sequence[Task]) -> list[domain.TaskVote]:
    """Votes in the order they were decided: the evaluator replays decisions in that order."""
    ordered = sorted(
        tasks,
        key=lambda t: (
            t.completed_at is None,
            t.completed_at or t.created_at,
            t.created_at,
        ),
    )
    return [domain.TaskVote.from_task(t) for t in ordered]
