"""Task commands: decide (one or many), claim, reassign. Load, authorize, call the engine.

Each command locks the request row for its whole transaction; approvers a decision's next stage
needs from an outside system are resolved before that transaction (`engine.run`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from countersign.directory.resolver import ApproverResolver
from countersign.errors import AppError, Forbidden, TaskNotFound
from countersign.identity.principal import Principal
from countersign.kit.clock import now
from countersign.models import ApprovalRequest, RequestStage, Task
from countersign.requests import domain, engine
from countersign.requests.repository import DelegationRepository, RequestRepository
from countersign.tasks.repository import TaskRepository
from countersign.tasks.schemas import DecisionIn, DecisionOut


@dataclass
class Locked:
    request: ApprovalRequest
    task: Task
    stage: RequestStage


async def _lock_task(session: AsyncSession, task_id: uuid.UUID) -> Locked:
    """Find the task, lock its request, then re-read the task under the lock."""
    task = await session.get(Task, task_id)
    if task is None:
        raise TaskNotFound(f"task {task_id} not found")
    request = await RequestRepository(session).lock(task.request_id)
    if request is None:
        raise TaskNotFound(f"task {task_id} not found")
    await session.refresh(task)
    stage = await session.get(RequestStage, task.request_stage_id)
    assert stage is not None  # a foreign key
    return Locked(request, task, stage)


async def _holds_approver_task(session: AsyncSession, task: Task, person: str) -> bool:
    siblings = await RequestRepository(session).list_tasks(
        task.request_id, stage_ids=[task.request_stage_id]
    )
    return any(
        t.assignee == person
        and t.kind == domain.TaskKind.APPROVER
        and t.status in domain.LIVE_TASK_STATUSES
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
        if task.kind == domain.TaskKind.APPROVER and await _holds_approver_task(
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


async def _decide_locked(
    session: AsyncSession,
    *,
    principal: Principal,
    task_id: uuid.UUID,
    data: DecisionIn,
    resolver: ApproverResolver,
    resolutions: engine.Resolutions,
) -> DecisionOut:
    locked = await _lock_task(session, task_id)
    on_behalf_of = await _acting_for(session, principal, locked)
    request, task, stage = locked.request, locked.task, locked.stage
    ctx = await engine.context_for(session, request, resolver, resolutions)
    decision = await engine.record_decision(
        ctx,
        task,
        stage,
        action=data.action,
        comment=data.comment,
        attachments_ref=data.attachments_ref,
        actor=principal.id,
        on_behalf_of=on_behalf_of,
    )
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
        created_at=decision.created_at,
        request_status=request.status,
        stage_status=stage.status,
    )


async def decide(
    session: AsyncSession,
    *,
    principal: Principal,
    task_id: uuid.UUID,
    data: DecisionIn,
    resolver: ApproverResolver,
) -> DecisionOut:
    """Record a decision; settle the stage and move the request on in the same transaction."""

    async def attempt(resolutions: engine.Resolutions) -> DecisionOut:
        return await _decide_locked(
            session,
            principal=principal,
            task_id=task_id,
            data=data,
            resolver=resolver,
            resolutions=resolutions,
        )

    return await engine.run(session, resolver, attempt)


@dataclass(frozen=True)
class BulkItem:
    task_id: uuid.UUID
    data: DecisionIn


async def decide_many(
    session: AsyncSession,
    *,
    principal: Principal,
    items: Sequence[BulkItem],
    resolver: ApproverResolver,
) -> list[DecisionOut | AppError]:
    """Decide each item on its own (a failure is that item's answer), in one transaction.

    Every request of the batch is locked at once in a global order (no deadlock between batches);
    each item runs in a savepoint. Network resolution for any item happens before the
    transaction, for all of them (`engine.run`).
    """

    async def attempt(resolutions: engine.Resolutions) -> list[DecisionOut | AppError]:
        await TaskRepository(session).lock_requests_of([i.task_id for i in items])
        results: list[DecisionOut | AppError] = []
        for item in items:
            try:
                async with session.begin_nested():
                    results.append(
                        await _decide_locked(
                            session,
                            principal=principal,
                            task_id=item.task_id,
                            data=item.data,
                            resolver=resolver,
                            resolutions=resolutions,
                        )
                    )
            except AppError as error:
                results.append(error)
        return results

    return await engine.run(session, resolver, attempt)


async def claim(
    session: AsyncSession, *, principal: Principal, task_id: uuid.UUID
) -> tuple[Task, ApprovalRequest]:
    """Mark an open task as being worked on by its assignee (or their active delegate)."""
    locked = await _lock_task(session, task_id)
    await _acting_for(session, principal, locked)
    engine.claim_task(locked.task, locked.request)
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
    locked = await _lock_task(session, task_id)
    ctx = await engine.context_for(session, locked.request, resolver)
    new = await engine.reassign_task(
        ctx,
        locked.task,
        locked.stage,
        new_assignee=new_assignee,
        reason=reason,
        actor=principal.id,
    )
    return new, locked.request
