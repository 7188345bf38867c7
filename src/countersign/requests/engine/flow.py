"""The request's course through its stages: what starts next, and how a request ends.

`advance` is the only place that starts stage groups and the only writer of
`current_stage_order` (`_point_at`); `close` is the only way a request or a cycle ends.
"""

from __future__ import annotations

from collections.abc import Sequence

from countersign.kit.clock import now
from countersign.models import RequestStage, Task
from countersign.requests import domain
from countersign.requests.domain import RequestStatus, StageStatus
from countersign.requests.engine.context import Context, append_event
from countersign.requests.engine.resolution import ResolutionNeeded
from countersign.requests.engine.stages import (
    conclude_stage,
    skip_open_tasks,
    start_stage,
    work_to_start,
)

# Stages that have not reached an outcome: a closed request or cycle cancels them.
UNFINISHED_STAGE_STATUSES = (
    StageStatus.PENDING,
    StageStatus.ACTIVE,
    StageStatus.RESOLVING,
)


def _point_at(ctx: Context, stage_order: int | None) -> None:
    """`current_stage_order`, the stage the request waits on (AWE's field): set here only."""
    ctx.request.current_stage_order = stage_order


def stage_states(stages: Sequence[RequestStage]) -> list[domain.StageState]:
    return [
        domain.StageState(s.stage_order, s.parallel_group, s.status) for s in stages
    ]


async def advance(
    ctx: Context, actor: str, stages: Sequence[RequestStage] | None = None
) -> list[Task]:
    """Start whatever can start next, or finish the request. Returns the tasks created.

    Before a group starts, every stage of it that needs an outside system is named at once
    (`ResolutionNeeded`), so one round of resolution outside the transaction serves the group.
    `stages`: the cycle's stage rows in order, when the caller has them (they are read once; the
    engine, holding the lock, is the only writer of their status).
    """
    created: list[Task] = []
    request = ctx.request
    if stages is None:
        stages = await ctx.repository.list_stages(request.id, request.cycle)
    while request.status == RequestStatus.IN_REVIEW:
        step = domain.next_step(stage_states(stages))
        if isinstance(step, domain.Finish):
            reason = step.reason
            if step.outcome == "rejected":
                reason = _rejection_reason(stages) or reason
            await close(ctx, step.outcome, reason, actor, stages=stages)
            break
        if isinstance(step, domain.Wait):
            running = [
                s.stage_order
                for s in stages
                if s.status in (StageStatus.ACTIVE, StageStatus.RESOLVING)
            ]
            _point_at(ctx, min(running) if running else None)
            break
        by_order = {s.stage_order: s for s in stages}
        group = [by_order[order] for order in step.stage_orders]
        work = [
            item
            for stage in group
            if stage.status == StageStatus.PENDING
            and (item := await work_to_start(ctx, stage)) is not None
        ]
        if work:
            raise ResolutionNeeded(work)
        # Set before the group's events are written, so their webhook bodies name this stage.
        _point_at(ctx, step.stage_orders[0])
        for stage in group:
            if stage.status == StageStatus.PENDING:
                created.extend(await start_stage(ctx, stage, stages, actor))
            if stage.status == StageStatus.REJECTED:
                # The stage rejected as it started (`on_empty: block`, or too few approvers for
                # its N): starting its parallel siblings would only hand out tasks skipped at once.
                break
    return created


def _rejection_reason(stages: Sequence[RequestStage]) -> str | None:
    for stage in stages:
        if stage.status == StageStatus.REJECTED:
            return stage.skip_reason or domain.REASON_STAGE_REJECTED
    return None


async def settle(ctx: Context, stage: RequestStage, actor: str) -> domain.StageOutcome:
    """Evaluate an active stage; when decided, close it and move the request on."""
    outcome = await conclude_stage(ctx, stage, actor)
    if outcome is not domain.StageOutcome.PENDING:
        await advance(ctx, actor)
    return outcome


async def close(
    ctx: Context,
    status: str,
    reason: str | None,
    actor: str,
    *,
    event_type: str | None = None,
    stages: Sequence[RequestStage] | None = None,
    payload: dict[str, object] | None = None,
) -> list[Task]:
    """End the request (approved, rejected, cancelled, expired) or its cycle (changes_requested):
    undecided tasks skipped, unfinished stages cancelled, one closing event. Returns the skipped
    tasks."""
    request = ctx.request
    at = now()
    skipped = await skip_open_tasks(ctx, stage_ids=None)
    if stages is None:
        stages = await ctx.repository.list_stages(request.id, request.cycle)
    # The stage the request ended at (AWE's `stage_order` on the final webhook): the stage that
    # rejected, else the one it was waiting on; None when no stage ever ran.
    rejected = [s.stage_order for s in stages if s.status == StageStatus.REJECTED]
    final_stage_order = rejected[0] if rejected else request.current_stage_order
    for stage in stages:
        if stage.status in UNFINISHED_STAGE_STATUSES:
            stage.status = StageStatus.CANCELLED
            stage.completed_at = at
            stage.next_resolution_at = None
    request.status = status
    request.outcome_reason = reason
    if status != RequestStatus.CHANGES_REQUESTED:
        request.completed_at = at
    _point_at(ctx, None)
    body: dict[str, object] = (
        dict(payload)
        if payload is not None
        else {"reason": reason, "stage_order": final_stage_order}
    )
    body["skipped_task_ids"] = [str(t.id) for t in skipped]
    await append_event(
        ctx.session,
        request,
        event_type or f"request_{status}",
        actor,
        body,
    )
    return skipped
