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

from countersign.directory.resolver import ApproverResolver, ResolutionFailed
from countersign.kit.clock import now, rfc3339
from countersign.models import ApprovalRequest, PolicyStage, RequestStage, Task
from countersign.requests import domain, engine
from countersign.requests.repository import RequestRepository

SLA_ACTOR = "system:sla"
TTL_ACTOR = "system:ttl"
REMINDER_ACTOR = "system:reminder"
RESOLVER_ACTOR = "system:resolver"

# An escalation whose rules cannot be resolved right now is retried after this long.
ESCALATION_RETRY = timedelta(minutes=5)


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
    live = ApprovalRequest.status == "in_review"
    resolving = select(
        RequestStage.request_id.label("request_id"),
        RequestStage.next_resolution_at.label("due"),
    ).where(RequestStage.status == "resolving", RequestStage.next_resolution_at <= at)
    breached = select(RequestStage.request_id, RequestStage.due_at).where(
        RequestStage.status == "active",
        RequestStage.due_at <= at,
        RequestStage.breach_handled_at.is_(None),
    )
    reminders = select(Task.request_id, Task.remind_at).where(
        Task.status.in_(engine.LIVE_TASK_STATUSES),
        Task.kind == "approver",
        Task.remind_at <= at,
    )
    expired = select(ApprovalRequest.id, ApprovalRequest.expires_at).where(
        ApprovalRequest.status.in_(("in_review", "changes_requested")),
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
        .where(live | (ApprovalRequest.status == "changes_requested"))
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
    """Handle everything due on one request, in the order that keeps the predecessor's bug away:
    expiry first (it ends everything), then resolution retries, then SLA breaches (before any task
    could be treated as expired), then reminders for what is still open."""
    request = await RequestRepository(session).lock(request_id)
    if request is None or request.status not in ("in_review", "changes_requested"):
        return
    if request.timer_failures:
        # Committed only if this run succeeds: then the request is healthy again.
        request.timer_failures = None
        request.timers_retry_at = None
    policy = await engine.load_policy(session, request)
    ctx = engine.Context(session, request, policy, resolver)
    at = now()
    if request.expires_at is not None and request.expires_at <= at:
        await engine.close_request(
            ctx, "expired", "request_ttl", TTL_ACTOR, event_type="request_expired"
        )
        ran.add("expirations")
        return
    if request.status != "in_review":
        return
    stages = await ctx.repository.list_stages(request.id, request.cycle)
    for stage in stages:
        if (
            stage.status == "resolving"
            and stage.next_resolution_at is not None
            and stage.next_resolution_at <= at
        ):
            await _retry_resolution(ctx, stage, stages)
            ran.add("resolutions")
    for stage in await ctx.repository.list_stages(request.id, request.cycle):
        if request.status != "in_review":
            return
        if (
            stage.status == "active"
            and stage.due_at is not None
            and stage.due_at <= at
            and stage.breach_handled_at is None
        ):
            await _handle_breach(ctx, stage)
            ran.add("sla_breaches")
    if request.status == "in_review":
        ran.add("reminders", await _send_reminders(ctx))


async def _retry_resolution(
    ctx: engine.Context, stage: RequestStage, stages: list[RequestStage] | object
) -> None:
    current = await ctx.repository.list_stages(ctx.request.id, ctx.request.cycle)
    await engine.start_stage(ctx, stage, current, RESOLVER_ACTOR)
    await engine.advance(ctx, RESOLVER_ACTOR)


def _policy_stage(ctx: engine.Context, stage: RequestStage) -> PolicyStage | None:
    return next((s for s in ctx.policy.stages if s.id == stage.policy_stage_id), None)


async def _handle_breach(ctx: engine.Context, stage: RequestStage) -> None:
    """The stage's SLA passed: notify, escalate, or decide it as `system:sla`."""
    at = now()
    tasks = await ctx.repository.list_tasks(ctx.request.id, stage_ids=[stage.id])
    open_approvers = [
        t
        for t in tasks
        if t.kind == "approver" and t.status in engine.LIVE_TASK_STATUSES
    ]
    action = stage.on_breach or "notify"
    if action == "escalate":
        if not await _escalate(ctx, stage, tasks):
            return  # retried later; breach not marked handled
    elif action in ("auto_approve", "auto_reject"):
        outcome = "approved" if action == "auto_approve" else "rejected"
        for task in open_approvers:
            task.status = "expired"
            task.completed_at = at
        observers = await engine.skip_open_tasks(ctx, stage_ids=[stage.id])
        stage.status = outcome
        stage.completed_at = at
        stage.breach_handled_at = at
        if outcome == "rejected":
            stage.skip_reason = "sla_breach"
        await engine.append_event(
            ctx.session,
            ctx.request,
            "stage_completed",
            SLA_ACTOR,
            {
                "stage_order": stage.stage_order,
                "name": stage.name,
                "outcome": outcome,
                "reason": "sla_breach",
                "on_breach": action,
                "expired_task_ids": [str(t.id) for t in open_approvers],
                "skipped_task_ids": [str(t.id) for t in observers],
                "counts": engine.stage_counts(tasks),
            },
        )
        await engine.advance(ctx, SLA_ACTOR)
        return
    else:
        for task in open_approvers:
            await engine.append_event(
                ctx.session,
                ctx.request,
                "task_expired",
                SLA_ACTOR,
                {
                    "task_id": str(task.id),
                    "stage_order": stage.stage_order,
                    "assignee": task.assignee,
                    "due_at": rfc3339(task.due_at) if task.due_at else None,
                    "on_breach": "notify",
                },
            )
    stage.breach_handled_at = at


async def _escalate(
    ctx: engine.Context, stage: RequestStage, tasks: list[Task] | object
) -> bool:
    """Add approver tasks for the stage's escalation rules; the original approvers can still act.

    The new tasks follow the rules every other new task follows (`engine.start_stage`): separation
    of duties removes whoever `domain.barred_users` bars; a person with an active delegation window
    has the task go to their delegate, unless that delegate may not decide here.
    """
    policy_stage = _policy_stage(ctx, stage)
    rules = list(policy_stage.escalation_rules) if policy_stage is not None else []
    facts = engine.request_facts(ctx.request)
    found: list[str] = []
    try:
        call = await engine.http_rule_call(ctx, stage.stage_order, rules)
        for rule in rules:
            for user in await ctx.resolver.resolve(
                rule["rule_type"], rule["rule_value"], facts, http_call=call
            ):
                if user not in found:
                    found.append(user)
    except ResolutionFailed as failure:
        stage.due_at = now() + ESCALATION_RETRY
        await engine.append_event(
            ctx.session,
            ctx.request,
            "stage_resolution_failed",
            SLA_ACTOR,
            {
                "stage_order": stage.stage_order,
                "name": stage.name,
                "reason": failure.reason,
                "escalation": True,
            },
        )
        return False
    at = now()
    request = ctx.request
    existing = await ctx.repository.list_tasks(request.id, stage_ids=[stage.id])
    # Everyone already in the stage, in person or through a delegate holding their task.
    holders: set[str] = set()
    for task in existing:
        if task.status in (*engine.LIVE_TASK_STATUSES, "completed"):
            holders.add(task.assignee)
            if task.delegated_from:
                holders.add(task.delegated_from)
    barred = domain.barred_users(await engine.sod_facts(ctx, stage.stage_order))
    people = [p for p in found if p not in holders and p not in barred]
    removed_by_sod = [p for p in found if p not in holders and p in barred]
    delegates = await engine.delegate_map(ctx.session, people, at)
    approvers = holders | set(people)
    added: list[Task] = []
    for person in people:
        assignee, delegated_from = domain.apply_delegation(
            person, delegates, barred, approvers
        )
        added.append(
            engine.new_task(
                request,
                stage,
                kind="approver",
                assignee=assignee,
                at=at,
                delegated_from=delegated_from,
                remind_at=at + timedelta(hours=stage.reminder_hours)
                if stage.reminder_hours
                else None,
            )
        )
    ctx.session.add_all(added)
    await ctx.session.flush()
    await engine.append_event(
        ctx.session,
        request,
        "stage_escalated",
        SLA_ACTOR,
        {
            "stage_order": stage.stage_order,
            "name": stage.name,
            "escalated_to": [t.assignee for t in added],
            "task_ids": [str(t.id) for t in added],
            "tasks": [
                {
                    "task_id": str(t.id),
                    "assignee": t.assignee,
                    "delegated_from": t.delegated_from,
                }
                for t in added
            ],
            "removed_by_sod": removed_by_sod,
            "due_at": rfc3339(stage.due_at) if stage.due_at else None,
        },
    )
    return True


async def _send_reminders(ctx: engine.Context) -> int:
    at = now()
    stages = {
        s.id: s
        for s in await ctx.repository.list_stages(ctx.request.id, ctx.request.cycle)
    }
    sent = 0
    for task in await ctx.repository.list_tasks(ctx.request.id, stage_ids=list(stages)):
        if task.kind != "approver" or task.status not in engine.LIVE_TASK_STATUSES:
            continue
        if task.remind_at is None or task.remind_at > at:
            continue
        stage = stages[task.request_stage_id]
        await engine.append_event(
            ctx.session,
            ctx.request,
            "task_reminder",
            REMINDER_ACTOR,
            {
                "task_id": str(task.id),
                "stage_order": task.stage_order,
                "assignee": task.assignee,
                "due_at": rfc3339(task.due_at) if task.due_at else None,
            },
        )
        sent += 1
        hours = stage.reminder_hours
        if hours:
            # Next reminder N hours after this one was due; several missed ones collapse into one.
            step = timedelta(hours=hours)
            next_at = task.remind_at + step
            while next_at <= at:
                next_at += step
            task.remind_at = next_at
        else:
            task.remind_at = None
    return sent
