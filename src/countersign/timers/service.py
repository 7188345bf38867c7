"""Time-driven work: approver-resolution retries, SLA breaches, reminders and request expiry.

Every timer is a column in PostgreSQL (`next_resolution_at`, `due_at`, `remind_at`, `expires_at`).
A sweep finds requests with something due; each request is then handled in its own transaction
under the request row lock, and every condition is checked again under that lock. So any number
of workers may sweep the same rows: the first to get the lock does the work and moves the timer,
the others find nothing due. Exactly once per due moment.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.directory.resolver import ApproverResolver
from countersign.kit.clock import now
from countersign.models import ApprovalRequest, RequestStage, Task
from countersign.requests import domain, engine
from countersign.requests.domain import RequestStatus, StageStatus
from countersign.requests.repository import RequestRepository


@dataclass
class Ran:
    """Counts of what one sweep did, by kind (the `ran` of `POST /v1/_test/tick`)."""

    counts: dict[str, int] = field(
        default_factory=lambda: {
            "resolutions": 0,
            "sla_breaches": 0,
            "reminders": 0,
            "expirations": 0,
        }
    )

    def add(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n


# A request whose timers failed is retried after 30 s, 1, 2, 4... minutes, at most 15.
FAILURE_BACKOFF_BASE_SECONDS = 30
FAILURE_BACKOFF_MAX_SECONDS = 900


async def due_request_ids(
    session: AsyncSession, *, limit: int = 200
) -> list[uuid.UUID]:
    """Requests with at least one due timer, the most overdue first (a hint: each is checked
    again under its lock). Requests backed off after failures wait for their `timers_retry_at`."""
    at = now()
    live = ApprovalRequest.status == RequestStatus.IN_REVIEW
    resolving = select(
        RequestStage.request_id.label("request_id"),
        RequestStage.next_resolution_at.label("due"),
    ).where(
        RequestStage.status == StageStatus.RESOLVING,
        RequestStage.next_resolution_at <= at,
    )
    breached = select(RequestStage.request_id, RequestStage.due_at).where(
        RequestStage.status == StageStatus.ACTIVE,
        RequestStage.due_at <= at,
        RequestStage.breach_handled_at.is_(None),
    )
    reminders = select(Task.request_id, Task.remind_at).where(
        Task.status.in_(domain.UNDECIDED_TASK_STATUSES),
        Task.kind == "approver",
        Task.remind_at <= at,
    )
    expired = select(ApprovalRequest.id, ApprovalRequest.expires_at).where(
        ApprovalRequest.status.in_(
            (RequestStatus.IN_REVIEW, RequestStatus.CHANGES_REQUESTED)
        ),
        ApprovalRequest.expires_at <= at,
    )
    candidates = union_all(resolving, breached, reminders, expired).subquery()
    due = (
        select(
            candidates.c.request_id, func.min(candidates.c.due).label("overdue_since")
        )
        .group_by(candidates.c.request_id)
        .subquery()
    )
    statement = (
        select(ApprovalRequest.id)
        .join(due, due.c.request_id == ApprovalRequest.id)
        .where(live | (ApprovalRequest.status == RequestStatus.CHANGES_REQUESTED))
        .where(
            ApprovalRequest.timers_retry_at.is_(None)
            | (ApprovalRequest.timers_retry_at <= at)
        )
        # Most overdue first: SLAs are kept in the order they were promised.
        .order_by(due.c.overdue_since, ApprovalRequest.id)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars().all())


async def record_timer_failure(session: AsyncSession, request_id: uuid.UUID) -> None:
    """The timers of a request failed (their transaction rolled back): back it off, so the next
    sweeps serve the other requests first. Reset by the next run that succeeds."""
    request = await session.get(ApprovalRequest, request_id, with_for_update=True)
    if request is None:
        return
    failures = (request.timer_failures or 0) + 1
    seconds = min(
        FAILURE_BACKOFF_BASE_SECONDS * 2 ** (failures - 1), FAILURE_BACKOFF_MAX_SECONDS
    )
    request.timer_failures = failures
    request.timers_retry_at = now() + timedelta(seconds=seconds)


async def run_request_timers(
    session: AsyncSession,
    *,
    request_id: uuid.UUID,
    resolver: ApproverResolver,
    ran: Ran,
) -> None:
    """Handle everything due on one request (`engine.run_due`), under its lock; approvers an
    outside system must name are resolved before the lock is taken (`engine.run`)."""

    async def attempt(resolutions: engine.Resolutions) -> dict[str, int]:
        request = await RequestRepository(session).lock(request_id)
        if request is None or request.status not in (
            RequestStatus.IN_REVIEW,
            RequestStatus.CHANGES_REQUESTED,
        ):
            return {}
        if request.timer_failures:
            # Committed only if this run succeeds: then the request is healthy again.
            request.timer_failures = None
            request.timers_retry_at = None
        ctx = await engine.context_for(session, request, resolver, resolutions)
        return await engine.run_due(ctx)

    for kind, count in (await engine.run(session, resolver, attempt)).items():
        ran.add(kind, count)
