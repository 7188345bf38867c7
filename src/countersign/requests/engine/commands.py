"""The engine's commands: every change of a request's, a stage's or a task's status starts here.

Services load and authorize (who may act), then call one of these with the request locked; the
state rules (what may happen now) and the separation-of-duties checks are the engine's.
"""

from __future__ import annotations

import uuid
from typing import Any

from countersign.errors import Forbidden, InvalidState
from countersign.kit.clock import now, rfc3339
from countersign.models import ApprovalRequest, Decision, RequestStage, Task
from countersign.requests import domain
from countersign.requests.domain import (
    DecisionAction,
    RequestStatus,
    StageStatus,
    TaskKind,
    TaskStatus,
)
from countersign.requests.engine.context import (
    Context,
    append_event,
    create_stage_rows,
    new_task,
)
from countersign.requests.engine.flow import advance, close, settle
from countersign.requests.engine.resolution import ResolutionNeeded
from countersign.requests.engine.stages import (
    SLA_ACTOR,
    handle_breach,
    send_reminders,
    sod_facts,
    start_stage,
    work_to_start,
)

TTL_ACTOR = "system:ttl"
RESOLVER_ACTOR = "system:resolver"


# --- request ---------------------------------------------------------------------------------


async def open_request(ctx: Context, actor: str) -> list[Task]:
    """A new request (built by the service, not yet stored): its stages, `request_created`, and
    the first stage group started. Returns the tasks created."""
    request, policy = ctx.request, ctx.policy
    stages = create_stage_rows(request, policy)
    ctx.session.add(request)
    ctx.session.add_all(stages)
    await append_event(
        ctx.session,
        request,
        "request_created",
        actor,
        {
            "policy_key": policy.policy_key,
            "policy_version": policy.version,
            "artifact_type": request.artifact_type,
            "artifact_id": request.artifact_id,
            "requester": request.requester,
            "source_service": request.source_service,
            "source_client": request.source_client,
            "expires_at": rfc3339(request.expires_at) if request.expires_at else None,
        },
    )
    return await advance(ctx, actor, stages)


async def restart_cycle(
    ctx: Context, *, context: dict[str, object] | None, comment: str | None, actor: str
) -> list[Task]:
    """Resubmit a request sent back for changes: a new cycle with fresh stages; history stays."""
    request = ctx.request
    if not domain.can_resubmit(request.status):
        raise InvalidState(
            f"request {request.id} is {request.status}; only changes_requested can be resubmitted"
        )
    if context is not None:
        request.context = dict(context)
    request.cycle += 1
    request.status = RequestStatus.IN_REVIEW
    request.outcome_reason = None
    stages = create_stage_rows(request, ctx.policy)
    ctx.session.add_all(stages)
    await append_event(
        ctx.session,
        request,
        "request_resubmitted",
        actor,
        {
            "cycle": request.cycle,
            "comment": comment,
            "context_changed": context is not None,
        },
    )
    return await advance(ctx, actor, stages)


async def cancel(ctx: Context, *, reason: str | None, actor: str) -> None:
    if not domain.can_cancel(ctx.request.status):
        raise InvalidState(f"request {ctx.request.id} is {ctx.request.status}")
    await close(
        ctx, RequestStatus.CANCELLED, reason, actor, event_type="request_cancelled"
    )


# --- tasks -----------------------------------------------------------------------------------


def _undecided(task: Task) -> bool:
    return task.status in domain.UNDECIDED_TASK_STATUSES


async def decision_bar(
    ctx: Context, stage: RequestStage, *, actor: str, on_behalf_of: str | None
) -> domain.Barred | None:
    """Why separation of duties bars `actor` (acting for `on_behalf_of`) from deciding in `stage`.

    The decision-time twin of resolution: the same facts and the same rule
    (`domain.barred_users`), read again now, so delegations and approvals that came after the
    stage started count too.
    """
    facts, _ = await sod_facts(ctx, stage.stage_order)
    return domain.decision_bar(facts, actor=actor, on_behalf_of=on_behalf_of)


async def record_decision(
    ctx: Context,
    task: Task,
    stage: RequestStage,
    *,
    action: str,
    comment: str | None,
    attachments_ref: Any,
    actor: str,
    on_behalf_of: str | None,
) -> Decision:
    """Record a decision on an undecided task; settle the stage and move the request on."""
    request, policy = ctx.request, ctx.policy
    if not domain.can_decide(request.status):
        raise InvalidState(f"request {request.id} is {request.status}")
    if not _undecided(task):
        raise InvalidState(f"task {task.id} is {task.status}")
    if task.kind == TaskKind.APPROVER:
        bar = await decision_bar(ctx, stage, actor=actor, on_behalf_of=on_behalf_of)
        if bar is not None:
            raise Forbidden(
                f"separation of duties forbids this decision ({bar.reason}: {bar.detail})"
            )
    if action == DecisionAction.REQUEST_CHANGES:
        if task.kind != TaskKind.APPROVER:
            raise InvalidState("observers cannot request changes")
        if not policy.allow_request_changes:
            raise InvalidState(
                f"policy {policy.policy_key!r} does not allow request_changes"
            )
    at = now()
    row = Decision(
        id=uuid.uuid4(),
        task_id=task.id,
        request_id=request.id,
        stage_order=task.stage_order,
        actor=actor,
        on_behalf_of=on_behalf_of,
        action=action,
        comment=comment,
        attachments_ref=attachments_ref,
        created_at=at,
    )
    ctx.session.add(row)
    task.status = TaskStatus.COMPLETED
    task.completed_at = at
    task.decision_action = action
    task.decision_comment = comment
    # Written with the rest of the command in its last flush; the unique index on
    # decisions.task_id still turns any race that slipped past the lock into an error there.
    await append_event(
        ctx.session,
        request,
        "decision_recorded",
        actor,
        {
            "task_id": str(task.id),
            "decision_id": str(row.id),
            "stage_order": task.stage_order,
            "kind": task.kind,
            "assignee": task.assignee,
            "action": action,
            "comment": comment,
            "on_behalf_of": on_behalf_of,
        },
    )
    if action == DecisionAction.REQUEST_CHANGES:
        await close(
            ctx,
            RequestStatus.CHANGES_REQUESTED,
            "changes_requested",
            actor,
            event_type="request_changes_requested",
            payload={
                "task_id": str(task.id),
                "stage_order": task.stage_order,
                "comment": comment,
            },
        )
    elif task.kind == TaskKind.APPROVER:
        await settle(ctx, stage, actor)
    await ctx.session.flush()
    return row


def claim_task(task: Task, request: ApprovalRequest) -> None:
    """An open task is being worked on by its assignee (or their active delegate)."""
    if task.status != TaskStatus.OPEN or not domain.can_decide(request.status):
        raise InvalidState(
            f"task {task.id} is {task.status}; only open tasks can be claimed"
        )
    task.status = TaskStatus.CLAIMED
    task.claimed_at = now()


async def reassign_task(
    ctx: Context,
    old: Task,
    stage: RequestStage,
    *,
    new_assignee: str,
    reason: str | None,
    actor: str,
) -> Task:
    """Move an undecided task to someone else. The old task becomes `reassigned` and stops
    counting; the new one inherits whether it is required."""
    request = ctx.request
    if not domain.can_decide(request.status) or not _undecided(old):
        raise InvalidState(
            f"task {old.id} is {old.status}; only open or claimed tasks can be reassigned"
        )
    if new_assignee == old.assignee:
        raise InvalidState(f"task {old.id} is already assigned to {new_assignee!r}")
    if old.kind == TaskKind.APPROVER:
        # The new assignee must be someone who may decide: a task nobody can decide hangs the stage.
        bar = await decision_bar(ctx, stage, actor=new_assignee, on_behalf_of=None)
        if bar is not None:
            raise Forbidden(
                f"separation of duties forbids {new_assignee!r} this task "
                f"({bar.reason}: {bar.detail})"
            )
    siblings = await ctx.repository.list_tasks(request.id, stage_ids=[stage.id])
    if any(
        t.assignee == new_assignee and t.status in domain.LIVE_TASK_STATUSES
        for t in siblings
    ):
        raise InvalidState(f"{new_assignee!r} already holds a task in this stage")
    at = now()
    new = new_task(
        request,
        stage,
        kind=old.kind,
        assignee=new_assignee,
        at=at,
        reassigned_from=old.assignee,
        required=old.required,
        due_at=old.due_at,
        remind_at=old.remind_at,
    )
    old.status = TaskStatus.REASSIGNED
    old.completed_at = at
    ctx.session.add(new)
    await append_event(
        ctx.session,
        request,
        "task_reassigned",
        actor,
        {
            "task_id": str(old.id),
            "new_task_id": str(new.id),
            "stage_order": old.stage_order,
            "from": old.assignee,
            "to": new_assignee,
            "reason": reason,
        },
    )
    return new


# --- time ------------------------------------------------------------------------------------


async def run_due(ctx: Context) -> dict[str, int]:
    """Everything due on one request, in the order that keeps the predecessor's bug away: expiry
    first (it ends everything), then resolution retries, then SLA breaches (before any task could
    be treated as expired), then reminders for what is still open. Returns counts by kind."""
    request = ctx.request
    ran = {"resolutions": 0, "sla_breaches": 0, "reminders": 0, "expirations": 0}
    at = now()
    if request.expires_at is not None and request.expires_at <= at:
        await close(
            ctx,
            RequestStatus.EXPIRED,
            "request_ttl",
            TTL_ACTOR,
            event_type="request_expired",
        )
        ran["expirations"] += 1
        return ran
    if request.status != RequestStatus.IN_REVIEW:
        return ran
    stages = await ctx.repository.list_stages(request.id, request.cycle)
    retrying = [
        s
        for s in stages
        if s.status == StageStatus.RESOLVING
        and s.next_resolution_at is not None
        and s.next_resolution_at <= at
    ]
    work = [w for s in retrying if (w := await work_to_start(ctx, s)) is not None]
    if work:
        raise ResolutionNeeded(work)
    for stage in retrying:
        if request.status != RequestStatus.IN_REVIEW:
            return ran
        if stage.status != StageStatus.RESOLVING:
            continue  # a retry before it already moved the request on past this stage
        await start_stage(ctx, stage, stages, RESOLVER_ACTOR)
        await advance(ctx, RESOLVER_ACTOR)
        ran["resolutions"] += 1
    for stage in await ctx.repository.list_stages(request.id, request.cycle):
        if request.status != RequestStatus.IN_REVIEW:
            return ran
        if (
            stage.status == StageStatus.ACTIVE
            and stage.due_at is not None
            and stage.due_at <= at
            and stage.breach_handled_at is None
        ):
            if await handle_breach(ctx, stage):
                await advance(ctx, SLA_ACTOR)
            ran["sla_breaches"] += 1
    if request.status == RequestStatus.IN_REVIEW:
        stages = await ctx.repository.list_stages(request.id, request.cycle)
        ran["reminders"] += await send_reminders(ctx, stages)
    return ran
