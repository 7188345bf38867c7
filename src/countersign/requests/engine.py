"""The machinery every request-changing command shares: timeline, stage start, settle, finish.

Callers hold the request row lock (`RequestRepository.lock`) for the whole command. Every function
here only flushes; the command's one transaction commits the state change, its events and its
outbox rows together (ADR 0002).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from countersign.directory.http_rule import HttpRuleCall
from countersign.directory.resolver import ApproverResolver, ResolutionFailed
from countersign.errors import AppError, RuleEvaluationError, RuleUnsafe
from countersign.kit.clock import now, rfc3339
from countersign.models import (
    ApprovalRequest,
    Event,
    Policy,
    PolicyStage,
    RequestStage,
    Task,
)
from countersign.policies import domain as policy_domain
from countersign.policies.repository import PolicyRepository
from countersign.policies.rules import rule_data
from countersign.requests import domain
from countersign.requests.repository import (
    DelegationRepository,
    RequestRepository,
    load_sod_facts,
)
from countersign.requests.timeline import event_hash
from countersign.webhooks import outbox
from countersign.webhooks.secrets import signing_secrets

SYSTEM_ACTOR = "system"
# Resolution retries after an outage: 30 s, 1 min, 2 min, ... capped at 15 min.
RESOLUTION_BACKOFF_BASE_SECONDS = 30
RESOLUTION_BACKOFF_MAX_SECONDS = 900

LIVE_TASK_STATUSES = ("open", "claimed")


@dataclass
class Context:
    """What one command works with: the locked request, its pinned policy version, and the resolver."""

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

    @property
    def repository(self) -> RequestRepository:
        return RequestRepository(self.session)


async def load_policy(session: AsyncSession, request: ApprovalRequest) -> Policy:
    policy = await PolicyRepository(session).get_by_id(request.policy_id)
    if (
        policy is None
    ):  # the foreign key makes this impossible; say so loudly if it happens
        raise AppError(
            f"policy version {request.policy_id} of request {request.id} is missing"
        )
    return policy


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


# --- helpers ---------------------------------------------------------------------------------


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


def stage_states(stages: Sequence[RequestStage]) -> list[domain.StageState]:
    return [
        domain.StageState(s.stage_order, s.parallel_group, s.status) for s in stages
    ]


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
    return [
        domain.TaskVote(
            task_id=t.id,
            assignee=t.assignee,
            kind=t.kind,
            status=t.status,
            action=t.decision_action,
            required=t.required,
        )
        for t in ordered
    ]


def _policy_stage(policy: Policy, stage: RequestStage) -> PolicyStage:
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
            status="pending",
            mode=stage.mode,
            mode_value=stage.mode_value,
            veto=stage.veto,
            on_empty=stage.on_empty,
            sla_hours=stage.sla_hours,
            on_breach=stage.on_breach,
            reminder_hours=stage.reminder_hours,
            required_approvers=[],
        )
        for stage in sorted(policy.stages, key=lambda s: s.stage_order)
    ]


def resolution_backoff(attempt: int) -> timedelta:
    seconds = min(
        RESOLUTION_BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0),
        RESOLUTION_BACKOFF_MAX_SECONDS,
    )
    return timedelta(seconds=seconds)


# --- stage start -----------------------------------------------------------------------------


async def http_rule_call(
    ctx: Context, stage_order: int | None, rules: Sequence[Any]
) -> HttpRuleCall | None:
    """The details an `http` rule posts, signed with the request caller's secrets (None when the
    stage has no http rule, so stages without one never read secrets)."""
    if not any(rule_type_of(r) == "http" for r in rules):
        return None
    request = ctx.request
    box = ctx.resolver.secret_box
    secrets = (
        await signing_secrets(
            ctx.session,
            box,
            caller=request.source_client,
            secret_id=request.callback_secret_id,
        )
        if box is not None
        else []
    )
    return HttpRuleCall(
        request_id=str(request.id),
        policy_key=request.policy_key,
        stage_order=stage_order,
        artifact_type=request.artifact_type,
        artifact_id=request.artifact_id,
        context=request.context,
        secrets=secrets,
    )


def rule_type_of(rule: Any) -> str:
    """Rules come as ORM rows (stage rules) or dicts (escalation rules)."""
    return str(rule["rule_type"] if isinstance(rule, dict) else rule.rule_type)


async def sod_facts(
    ctx: Context, stage_order: int, stages: Sequence[RequestStage] | None = None
) -> domain.SodFacts:
    """Separation-of-duties facts for one stage of the locked request, as of now (`stages`: the
    cycle's stages when the caller has them already)."""
    request, policy = ctx.request, ctx.policy
    earlier: list[uuid.UUID] = []
    if policy.forbid_repeat_approvers:
        if stages is None:
            stages = await ctx.repository.list_stages(request.id, request.cycle)
        earlier = [s.id for s in stages if s.stage_order < stage_order]
    return await load_sod_facts(
        ctx.session,
        requester=request.requester,
        creator=request.source_service,
        forbid_self_approval=policy.forbid_self_approval,
        forbid_repeat_approvers=policy.forbid_repeat_approvers,
        earlier_stage_ids=earlier,
        at=now(),
    )


async def delegate_map(
    session: AsyncSession, people: Sequence[str], at: datetime
) -> dict[str, str]:
    """person → the delegate their new task goes to (newest active window)."""
    windows = await DelegationRepository(session).active_delegates(people, at)
    return {user: window.delegate_to for user, window in windows.items()}


async def start_stage(
    ctx: Context, stage: RequestStage, stages: Sequence[RequestStage], actor: str
) -> list[Task]:
    """Resolve a pending (or resolving) stage and create its tasks.

    Leaves the stage `active`, `skipped`, `resolving` (an outside system failed: retried later) or
    `rejected` (`on_empty: block` with nobody resolved, or fewer approvers than the mode needs).
    Returns the tasks it created. The caller moves the request on (`advance`).
    """
    request, policy = ctx.request, ctx.policy
    policy_stage = _policy_stage(policy, stage)
    facts = request_facts(request)
    at = now()
    try:
        skipped, reason = policy_domain.should_skip(
            policy_stage, facts, ctx.resolver.evaluator
        )
        if skipped:
            return await _skip_stage(
                ctx, stage, reason or policy_domain.SKIP_REASON_SKIP_IF, actor
            )
        resolved: list[tuple[Any, list[str]]] = []
        call = await http_rule_call(ctx, stage.stage_order, policy_stage.rules)
        for rule in policy_stage.rules:
            users = await ctx.resolver.resolve(
                rule.rule_type, rule.rule_value, facts, http_call=call
            )
            resolved.append((rule, users))
    except ResolutionFailed as failure:
        await _resolution_failed(ctx, stage, failure.reason, actor)
        return []
    except (RuleEvaluationError, RuleUnsafe) as error:
        if ctx.rule_errors == "raise":
            raise
        await _reject_stage(
            ctx, stage, "rule_evaluation_failed", actor, detail=error.message
        )
        return []

    barred = domain.barred_users(await sod_facts(ctx, stage.stage_order, stages))
    plan = policy_domain.plan_stage(policy_stage, resolved=resolved, barred=barred)
    if not plan.approvers:
        if stage.on_empty == "skip":
            return await _skip_stage(
                ctx, stage, policy_domain.SKIP_REASON_NO_APPROVERS, actor
            )
        stage.status = "rejected"
        stage.completed_at = at
        stage.skip_reason = policy_domain.SKIP_REASON_NO_APPROVERS
        await append_event(
            ctx.session,
            request,
            "stage_completed",
            actor,
            {
                "stage_order": stage.stage_order,
                "name": stage.name,
                "outcome": "rejected",
                "reason": "no_approvers_resolved",
                "removed_by_sod": list(plan.removed_by_sod),
            },
        )
        return []

    delegates = await delegate_map(ctx.session, [*plan.approvers, *plan.observers], at)
    due_at = at + timedelta(hours=stage.sla_hours) if stage.sla_hours else None
    remind_at = (
        at + timedelta(hours=stage.reminder_hours) if stage.reminder_hours else None
    )
    approver_set = set(plan.approvers)
    tasks: list[Task] = []
    for kind, people in (("approver", plan.approvers), ("observer", plan.observers)):
        for person in people:
            assignee, delegated_from = domain.apply_delegation(
                person, delegates, barred, approver_set
            )
            tasks.append(
                new_task(
                    request,
                    stage,
                    kind=kind,
                    assignee=assignee,
                    at=at,
                    delegated_from=delegated_from,
                    required=kind == "approver" and person in plan.required_approvers,
                    due_at=due_at if kind == "approver" else None,
                    remind_at=remind_at if kind == "approver" else None,
                )
            )
    ctx.session.add_all(tasks)
    stage.status = "active"
    stage.started_at = at
    stage.due_at = due_at
    # Required approvers are tracked by who holds their task (a delegate holds it during a window).
    stage.required_approvers = [t.assignee for t in tasks if t.required]
    stage.next_resolution_at = None
    await append_event(
        ctx.session,
        request,
        "stage_started",
        actor,
        {
            "stage_order": stage.stage_order,
            "name": stage.name,
            "mode": stage.mode,
            "mode_value": stage.mode_value,
            "approvers": [t.assignee for t in tasks if t.kind == "approver"],
            "observers": [t.assignee for t in tasks if t.kind == "observer"],
            "required_approvers": list(plan.required_approvers),
            "removed_by_sod": list(plan.removed_by_sod),
            "due_at": rfc3339(due_at) if due_at else None,
            "tasks": [
                {
                    "task_id": str(t.id),
                    "assignee": t.assignee,
                    "kind": t.kind,
                    "delegated_from": t.delegated_from,
                }
                for t in tasks
            ],
        },
    )
    # A stage can be decided as it starts: a role that resolved fewer people than its N can never
    # approve it, and nobody should be asked to vote for nothing. The caller moves the request on.
    await _conclude_stage(ctx, stage, actor)
    return tasks


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
    return Task(
        id=uuid.uuid4(),
        request_id=request.id,
        request_stage_id=stage.id,
        stage_order=stage.stage_order,
        kind=kind,
        assignee=assignee,
        status="open",
        artifact_type=request.artifact_type,
        artifact_id=request.artifact_id,
        policy_key=request.policy_key,
        created_at=at,
        updated_at=at,
        **fields,
    )


async def _reject_stage(
    ctx: Context, stage: RequestStage, reason: str, actor: str, *, detail: str
) -> None:
    stage.status = "rejected"
    stage.completed_at = now()
    stage.skip_reason = reason
    await append_event(
        ctx.session,
        ctx.request,
        "stage_completed",
        actor,
        {
            "stage_order": stage.stage_order,
            "name": stage.name,
            "outcome": "rejected",
            "reason": reason,
            "detail": detail,
        },
    )


async def _skip_stage(
    ctx: Context, stage: RequestStage, reason: str, actor: str
) -> list[Task]:
    stage.status = "skipped"
    stage.skip_reason = reason
    stage.completed_at = now()
    await append_event(
        ctx.session,
        ctx.request,
        "stage_skipped",
        actor,
        {"stage_order": stage.stage_order, "name": stage.name, "reason": reason},
    )
    return []


async def _resolution_failed(
    ctx: Context, stage: RequestStage, reason: str, actor: str
) -> None:
    stage.status = "resolving"
    stage.resolution_attempts += 1
    stage.last_resolution_error = reason
    stage.next_resolution_at = now() + resolution_backoff(stage.resolution_attempts)
    await append_event(
        ctx.session,
        ctx.request,
        "stage_resolution_failed",
        actor,
        {
            "stage_order": stage.stage_order,
            "name": stage.name,
            "reason": reason,
            "attempt": stage.resolution_attempts,
            "next_attempt_at": rfc3339(stage.next_resolution_at),
        },
    )


# --- flow ------------------------------------------------------------------------------------


async def advance(ctx: Context, actor: str) -> list[Task]:
    """Start whatever can start next, or finish the request. Returns the tasks created."""
    created: list[Task] = []
    request = ctx.request
    while request.status == "in_review":
        stages = await ctx.repository.list_stages(request.id, request.cycle)
        step = domain.next_step(stage_states(stages))
        if isinstance(step, domain.Finish):
            reason = step.reason
            if step.outcome == "rejected":
                reason = _rejection_reason(stages) or reason
            await finish(ctx, step.outcome, reason, actor)
            break
        if isinstance(step, domain.Wait):
            request.current_stage_order = _current_stage_order(stages)
            break
        by_order = {s.stage_order: s for s in stages}
        # Set before the group's events are written, so their webhook bodies name this stage.
        request.current_stage_order = step.stage_orders[0]
        for stage_order in step.stage_orders:
            stage = by_order[stage_order]
            if stage.status == "pending":
                created.extend(await start_stage(ctx, stage, stages, actor))
            if stage.status == "rejected":
                # The stage rejected as it started (`on_empty: block`, or too few approvers for
                # its N): starting its parallel siblings would only hand out tasks skipped at once.
                break
        await ctx.session.flush()
    return created


def _current_stage_order(stages: Sequence[RequestStage]) -> int | None:
    running = [s.stage_order for s in stages if s.status in ("active", "resolving")]
    return min(running) if running else None


def _rejection_reason(stages: Sequence[RequestStage]) -> str | None:
    for stage in stages:
        if stage.status == "rejected":
            return stage.skip_reason or "stage_rejected"
    return None


async def finish(ctx: Context, outcome: str, reason: str | None, actor: str) -> None:
    """Close the request as approved or rejected: open tasks skipped, unstarted stages cancelled."""
    await close_request(ctx, outcome, reason, actor, event_type=f"request_{outcome}")


async def close_request(
    ctx: Context, status: str, reason: str | None, actor: str, *, event_type: str
) -> None:
    request = ctx.request
    at = now()
    skipped = await skip_open_tasks(ctx, stage_ids=None)
    stages = await ctx.repository.list_stages(request.id, request.cycle)
    # The stage the request ended at (AWE's `stage_order` on the final webhook): the stage that
    # rejected, else the one it was waiting on; None when no stage ever ran.
    rejected = [s.stage_order for s in stages if s.status == "rejected"]
    final_stage_order = rejected[0] if rejected else request.current_stage_order
    for stage in stages:
        if stage.status in ("pending", "active", "resolving"):
            stage.status = "cancelled"
            stage.completed_at = at
            stage.next_resolution_at = None
    request.status = status
    request.outcome_reason = reason
    request.completed_at = at
    request.current_stage_order = None
    await append_event(
        ctx.session,
        request,
        event_type,
        actor,
        {
            "reason": reason,
            "stage_order": final_stage_order,
            "skipped_task_ids": [str(t.id) for t in skipped],
        },
    )


async def skip_open_tasks(
    ctx: Context, *, stage_ids: Sequence[uuid.UUID] | None
) -> list[Task]:
    tasks = await ctx.repository.list_tasks(ctx.request.id, stage_ids=stage_ids)
    at = now()
    skipped = [t for t in tasks if t.status in LIVE_TASK_STATUSES]
    for task in skipped:
        task.status = "skipped"
        task.completed_at = at
    return skipped


async def settle_stage(
    ctx: Context, stage: RequestStage, actor: str
) -> domain.StageOutcome:
    """Evaluate an active stage; when decided, close it and move the request on."""
    outcome = await _conclude_stage(ctx, stage, actor)
    if outcome is not domain.StageOutcome.PENDING:
        await advance(ctx, actor)
    return outcome


async def _conclude_stage(
    ctx: Context, stage: RequestStage, actor: str
) -> domain.StageOutcome:
    """Evaluate an active stage and, when decided, close it (tasks skipped, events written).

    Does not move the request on: `settle_stage` does, and `advance` loops by itself.
    """
    if stage.status != "active":
        return domain.StageOutcome.PENDING
    tasks = await ctx.repository.list_tasks(ctx.request.id, stage_ids=[stage.id])
    outcome = domain.evaluate_stage(
        stage.mode,
        stage.mode_value,
        stage.veto,
        votes_of(tasks),
        stage.required_approvers,
    )
    if outcome is domain.StageOutcome.PENDING:
        return outcome
    # The tally the stage settled on: `open` counts the tasks that are now skipped (listed by the
    # stage_quorum_skipped event); RequestOut, read later, counts them no more.
    counts = stage_counts(tasks)
    stage.status = "approved" if outcome is domain.StageOutcome.APPROVED else "rejected"
    stage.completed_at = now()
    if outcome is domain.StageOutcome.REJECTED:
        stage.skip_reason = "stage_rejected"
    skipped = await skip_open_tasks(ctx, stage_ids=[stage.id])
    if skipped:
        await append_event(
            ctx.session,
            ctx.request,
            "stage_quorum_skipped",
            actor,
            {
                "stage_order": stage.stage_order,
                "task_ids": [str(t.id) for t in skipped],
            },
        )
    await append_event(
        ctx.session,
        ctx.request,
        "stage_completed",
        actor,
        {
            "stage_order": stage.stage_order,
            "name": stage.name,
            "outcome": stage.status,
            "counts": counts,
        },
    )
    return outcome


def stage_counts(tasks: Sequence[Task]) -> dict[str, int]:
    """approve / reject / abstain / open over the stage's live approver tasks (observers excluded)."""
    counts = {"approve": 0, "reject": 0, "abstain": 0, "open": 0}
    for task in tasks:
        if task.kind != "approver":
            continue
        if task.status in LIVE_TASK_STATUSES:
            counts["open"] += 1
        elif task.status == "completed" and task.decision_action in counts:
            counts[task.decision_action] += 1
    return counts


def expiry_of(policy: Policy, at: datetime) -> datetime | None:
    if not policy.request_ttl_hours:
        return None
    return at + timedelta(seconds=math.ceil(policy.request_ttl_hours * 3600))
