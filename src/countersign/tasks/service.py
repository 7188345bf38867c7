"""Task commands: decide, claim, reassign. Each locks the request row for the whole command."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from countersign.directory.resolver import ApproverResolver
from countersign.errors import Forbidden, InvalidState, TaskNotFound
from countersign.identity.principal import Principal
from countersign.kit.clock import now
from countersign.models import ApprovalRequest, Decision, RequestStage, Task
from countersign.requests import domain, engine
from countersign.requests.repository import DelegationRepository, RequestRepository
from countersign.requests.schemas import DecisionIn, DecisionOut


@dataclass
class Locked:
    request: ApprovalRequest
    task: Task


async def _lock_task(
    session: AsyncSession, task_id: uuid.UUID, principal: Principal
) -> Locked:
    """Find the task, lock its request, then re-read the task under the lock."""
    task = await session.get(Task, task_id)
    if task is None:
        raise TaskNotFound(f"task {task_id} not found")
    repository = RequestRepository(session)
    request = await repository.lock(task.request_id)
    if request is None:
        raise TaskNotFound(f"task {task_id} not found")
    await session.refresh(task)
    return Locked(request, task)


async def _holds_approver_task(session: AsyncSession, task: Task, person: str) -> bool:
    siblings = await RequestRepository(session).list_tasks(
        task.request_id, stage_ids=[task.request_stage_id]
    )
    return any(
        t.assignee == person
        and t.kind == "approver"
        and t.status in (*engine.LIVE_TASK_STATUSES, "completed")
        for t in siblings
    )


async def _acting_for(
    session: AsyncSession, principal: Principal, locked: Locked
) -> str | None:
    """Who the principal acts for: None for the assignee themselves, else the delegator.

    Raises 404 when the principal cannot see the request at all, 403 when they can but the task is
    not theirs to act on.
    """
    task = locked.task
    if principal.id == task.assignee:
        return None
    # No chains: a task that already went to a delegate is not handed on to that delegate's own
    # delegate. And one person never votes twice in a stage: a delegate who holds an approver
    # task of their own in the stage cannot also decide the delegator's.
    if task.delegated_from is None and await DelegationRepository(
        session
    ).is_active_delegate(user_id=task.assignee, delegate=principal.id, at=now()):
        if task.kind == "approver" and await _holds_approver_task(
            session, task, principal.id
        ):
            raise Forbidden(
                f"{principal.id!r} already holds an approver task in stage {task.stage_order}; "
                "one person votes once per stage"
            )
        return task.assignee
    if not await RequestRepository(session).is_visible(locked.request.id, principal):
        raise TaskNotFound(f"task {task.id} not found")
    raise Forbidden(f"task {task.id} is assigned to {task.assignee!r}")


async def decide(
    session: AsyncSession,
    *,
    principal: Principal,
    task_id: uuid.UUID,
    data: DecisionIn,
    resolver: ApproverResolver,
) -> DecisionOut:
    """Record a decision; settle the stage and move the request on in the same transaction."""
    locked = await _lock_task(session, task_id, principal)
    request, task = locked.request, locked.task
    on_behalf_of = await _acting_for(session, principal, locked)
    if not domain.can_decide(request.status):
        raise InvalidState(f"request {request.id} is {request.status}")
    if task.status not in engine.LIVE_TASK_STATUSES:
        raise InvalidState(f"task {task.id} is {task.status}")
    stage = await session.get(RequestStage, task.request_stage_id)
    assert stage is not None
    policy = await engine.load_policy(session, request)
    ctx = engine.Context(session, request, policy, resolver)

    if task.kind == "approver":
        bar = await _sod_bar(ctx, stage, actor=principal.id, on_behalf_of=on_behalf_of)
        if bar is not None:
            raise Forbidden(
                f"separation of duties forbids this decision ({bar.reason}: {bar.detail})"
            )
    if data.action == "request_changes":
        if task.kind != "approver":
            raise InvalidState("observers cannot request changes")
        if not policy.allow_request_changes:
            raise InvalidState(
                f"policy {policy.policy_key!r} does not allow request_changes"
            )

    at = now()
    decision = Decision(
        id=uuid.uuid4(),
        task_id=task.id,
        request_id=request.id,
        stage_order=task.stage_order,
        actor=principal.id,
        on_behalf_of=on_behalf_of,
        action=data.action,
        comment=data.comment,
        attachments_ref=data.attachments_ref,
        created_at=at,
    )
    session.add(decision)
    task.status = "completed"
    task.completed_at = at
    task.decision_action = data.action
    task.decision_comment = data.comment
    # The unique index on decisions.task_id turns any race that slipped past the lock into an error.
    await session.flush()
    await engine.append_event(
        session,
        request,
        "decision_recorded",
        principal.id,
        {
            "task_id": str(task.id),
            "decision_id": str(decision.id),
            "stage_order": task.stage_order,
            "kind": task.kind,
            "assignee": task.assignee,
            "action": data.action,
            "comment": data.comment,
            "on_behalf_of": on_behalf_of,
        },
    )
    if data.action == "request_changes":
        await _request_changes(ctx, task, data.comment, principal.id)
    elif task.kind == "approver":
        await engine.settle_stage(ctx, stage, principal.id)
    await session.flush()
    return DecisionOut(
        id=decision.id,
        request_id=request.id,
        task_id=task.id,
        stage_order=task.stage_order,
        actor=decision.actor,
        on_behalf_of=on_behalf_of,
        action=data.action,
        comment=data.comment,
        attachments_ref=data.attachments_ref,
        created_at=at,
        request_status=request.status,
        stage_status=stage.status,
    )


async def _sod_bar(
    ctx: engine.Context,
    stage: RequestStage,
    *,
    actor: str,
    on_behalf_of: str | None,
) -> domain.Barred | None:
    """Why separation of duties bars `actor` (acting for `on_behalf_of`) from deciding in `stage`.

    The decision-time twin of resolution: the same facts and the same rule
    (`domain.barred_users`), read again now, so delegations and approvals that came after the
    stage started count too.
    """
    facts = await engine.sod_facts(ctx, stage.stage_order)
    return domain.decision_bar(facts, actor=actor, on_behalf_of=on_behalf_of)


async def _request_changes(
    ctx: engine.Context, task: Task, comment: str | None, actor: str
) -> None:
    request = ctx.request
    skipped = await engine.skip_open_tasks(ctx, stage_ids=None)
    for stage in await ctx.repository.list_stages(request.id, request.cycle):
        if stage.status in ("pending", "active", "resolving"):
            stage.status = "cancelled"
            stage.completed_at = now()
            stage.next_resolution_at = None
    request.status = "changes_requested"
    request.outcome_reason = "changes_requested"
    request.current_stage_order = None
    await engine.append_event(
        ctx.session,
        request,
        "request_changes_requested",
        actor,
        {
            "task_id": str(task.id),
            "stage_order": task.stage_order,
            "comment": comment,
            "skipped_task_ids": [str(t.id) for t in skipped],
        },
    )


async def claim(
    session: AsyncSession, *, principal: Principal, task_id: uuid.UUID
) -> tuple[Task, ApprovalRequest]:
    """Mark an open task as being worked on by its assignee (or their active delegate)."""
    locked = await _lock_task(session, task_id, principal)
    await _acting_for(session, principal, locked)
    if locked.task.status != "open" or not domain.can_decide(locked.request.status):
        raise InvalidState(
            f"task {task_id} is {locked.task.status}; only open tasks can be claimed"
        )
    locked.task.status = "claimed"
    locked.task.claimed_at = now()
    await session.flush()
    return locked.task, locked.request


async def reassign(
    session: AsyncSession,
    *,
    principal: Principal,
    task_id: uuid.UUID,
    new_assignee: str,
    reason: str | None,
    resolver: ApproverResolver,
) -> tuple[Task, ApprovalRequest]:
    """Admin: move an open task to someone else. The old task becomes `reassigned` and stops counting."""
    if not principal.is_admin:
        raise Forbidden("only admins reassign tasks")
    locked = await _lock_task(session, task_id, principal)
    request, old = locked.request, locked.task
    if (
        not domain.can_decide(request.status)
        or old.status not in engine.LIVE_TASK_STATUSES
    ):
        raise InvalidState(
            f"task {task_id} is {old.status}; only open or claimed tasks can be reassigned"
        )
    if new_assignee == old.assignee:
        raise InvalidState(f"task {task_id} is already assigned to {new_assignee!r}")
    policy = await engine.load_policy(session, request)
    stage = await session.get(RequestStage, old.request_stage_id)
    assert stage is not None
    if old.kind == "approver":
        # The new assignee must be someone who may decide: a task nobody can decide hangs the stage.
        ctx = engine.Context(session, request, policy, resolver)
        bar = await _sod_bar(ctx, stage, actor=new_assignee, on_behalf_of=None)
        if bar is not None:
            raise Forbidden(
                f"separation of duties forbids {new_assignee!r} this task "
                f"({bar.reason}: {bar.detail})"
            )
    siblings = await RequestRepository(session).list_tasks(
        request.id, stage_ids=[old.request_stage_id]
    )
    if any(
        t.assignee == new_assignee
        and t.status in (*engine.LIVE_TASK_STATUSES, "completed")
        for t in siblings
    ):
        raise InvalidState(f"{new_assignee!r} already holds a task in this stage")
    at = now()
    new = engine.new_task(
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
    old.status = "reassigned"
    old.completed_at = at
    session.add(new)
    if old.required and old.assignee in stage.required_approvers:
        # The new holder inherits the requirement, so a required approver's task can be handed over.
        stage.required_approvers = [
            new_assignee if p == old.assignee else p for p in stage.required_approvers
        ]
    await session.flush()
    await engine.append_event(
        session,
        request,
        "task_reassigned",
        principal.id,
        {
            "task_id": str(old.id),
            "new_task_id": str(new.id),
            "stage_order": old.stage_order,
            "from": old.assignee,
            "to": new_assignee,
            "reason": reason,
        },
    )
    return new, request
