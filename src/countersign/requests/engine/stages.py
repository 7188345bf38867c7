"""One stage's life: resolve and start, skip, reject, settle on its votes, escalate, SLA breach.

These steps change stage and task rows and write the timeline; none of them moves the request on
by itself (`flow.advance` does, and the commands in `commands.py` call it).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from countersign.directory.http_rule import HttpRuleCall
from countersign.directory.resolver import ResolutionFailed
from countersign.errors import RuleEvaluationError, RuleUnsafe
from countersign.kit.clock import now, rfc3339
from countersign.models import RequestStage, Task
from countersign.policies import domain as policy_domain
from countersign.requests import domain
from countersign.requests.domain import StageStatus, TaskStatus
from countersign.requests.engine.context import (
    Context,
    append_event,
    new_task,
    policy_stage_of,
    request_facts,
    votes_of,
)
from countersign.requests.engine.resolution import (
    Answers,
    Key,
    ResolutionNeeded,
    Work,
    ask,
    rule_type_of,
    rule_value_of,
)
from countersign.requests.repository import load_sod_facts
from countersign.webhooks.secrets import signing_secrets

# Resolution retries after an outage: 30 s, 1 min, 2 min, ... capped at 15 min.
RESOLUTION_BACKOFF_BASE_SECONDS = 30
RESOLUTION_BACKOFF_MAX_SECONDS = 900
# An escalation whose rules cannot be resolved right now is retried after this long.
ESCALATION_RETRY = timedelta(minutes=5)

SLA_ACTOR = "system:sla"
REMINDER_ACTOR = "system:reminder"


def resolution_backoff(attempt: int) -> timedelta:
    seconds = min(
        RESOLUTION_BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0),
        RESOLUTION_BACKOFF_MAX_SECONDS,
    )
    return timedelta(seconds=seconds)


# --- resolution ------------------------------------------------------------------------------


async def http_rule_call(
    ctx: Context, stage_order: int | None, rules: Sequence[Any]
) -> HttpRuleCall | None:
    """The details an `http` rule posts, signed with the request caller's secrets (None when the
    rules have no http rule, so stages without one never read secrets)."""
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


def stage_key(ctx: Context, stage: RequestStage, purpose: str) -> Key:
    request = ctx.request
    return (request.id, request.cycle, stage.policy_stage_id, purpose)


def _calling_out(ctx: Context, rules: Sequence[Any]) -> list[tuple[int, Any]]:
    """The rules that call out, by index, as plain data: the work outlives the attempt's rows
    (a rolled-back session expires them)."""
    return [
        (index, {"rule_type": rule_type_of(rule), "rule_value": rule_value_of(rule)})
        for index, rule in enumerate(rules)
        if ctx.resolver.calls_out(rule_type_of(rule))
    ]


async def work_for(
    ctx: Context, key: Key, stage_order: int, rules: Sequence[Any]
) -> Work | None:
    """What must be asked outside before these rules can resolve in this attempt (None: nothing,
    or the answers are at hand, or this is the last attempt and they are asked in place)."""
    outside = _calling_out(ctx, rules)
    if not outside or ctx.resolutions.inline or ctx.resolutions.get(key) is not None:
        return None
    return Work(
        key=key,
        rules=outside,
        facts=request_facts(ctx.request),
        http_call=await http_rule_call(ctx, stage_order, rules),
    )


async def work_to_start(ctx: Context, stage: RequestStage) -> Work | None:
    """The outside work a pending (or resolving) stage needs before it can start."""
    policy_stage = policy_stage_of(ctx.policy, stage)
    try:
        skipped, _ = policy_domain.should_skip(
            policy_stage, request_facts(ctx.request), ctx.resolver.evaluator
        )
    except (RuleEvaluationError, RuleUnsafe):
        return None  # start_stage reports it, with no resolution needed
    if skipped:
        return None
    return await work_for(
        ctx, stage_key(ctx, stage, "stage"), stage.stage_order, policy_stage.rules
    )


async def resolve_rules(
    ctx: Context, key: Key, stage_order: int, rules: Sequence[Any]
) -> list[tuple[Any, list[str]]]:
    """Every rule's users, in order: local rules evaluated here, outside ones from the answers
    gathered before this attempt (or asked in place on the last attempt).

    Raises ResolutionNeeded (answers missing), ResolutionFailed (the outside system failed) and
    the rule errors of local rules.
    """
    facts = request_facts(ctx.request)
    answers: Answers | None = ctx.resolutions.get(key)
    if answers is None:
        outside = _calling_out(ctx, rules)
        call = await http_rule_call(ctx, stage_order, rules) if outside else None
        if outside and not ctx.resolutions.inline:
            raise ResolutionNeeded([Work(key, outside, facts, call)])
        answers = await ask(ctx.resolver, outside, facts, call)
    if isinstance(answers, ResolutionFailed):
        raise answers
    resolved: list[tuple[Any, list[str]]] = []
    for index, rule in enumerate(rules):
        if index in answers:
            resolved.append((rule, answers[index]))
        else:
            users = await ctx.resolver.resolve(
                rule_type_of(rule), rule_value_of(rule), facts
            )
            resolved.append((rule, users))
    return resolved


async def sod_facts(
    ctx: Context,
    stage_order: int,
    stages: Sequence[RequestStage] | None = None,
    *,
    delegates_for: Sequence[str] = (),
) -> tuple[domain.SodFacts, dict[str, str]]:
    """Separation-of-duties facts for one stage of the locked request, as of now (`stages`: the
    cycle's stages when the caller has them already), and person → the delegate a new task of
    theirs goes to, for the people in `delegates_for` (one query for both)."""
    request, policy = ctx.request, ctx.policy
    earlier: list[uuid.UUID] = []
    if policy.forbid_repeat_approvers:
        if stages is None:
            stages = await ctx.repository.list_stages(request.id, request.cycle)
        earlier = [s.id for s in stages if s.stage_order < stage_order]
    facts, windows = await load_sod_facts(
        ctx.session,
        requester=request.requester,
        creator=request.source_service,
        forbid_self_approval=policy.forbid_self_approval,
        forbid_repeat_approvers=policy.forbid_repeat_approvers,
        earlier_stage_ids=earlier,
        at=now(),
        windows_also_for=delegates_for,
    )
    return facts, {user: window.delegate_to for user, window in windows.items()}


# --- start -----------------------------------------------------------------------------------


async def start_stage(
    ctx: Context, stage: RequestStage, stages: Sequence[RequestStage], actor: str
) -> list[Task]:
    """Resolve a pending (or resolving) stage and create its tasks.

    Leaves the stage `active`, `skipped`, `resolving` (an outside system failed: retried later) or
    `rejected` (`on_empty: block` with nobody resolved, a rule that fails on the context, or fewer
    approvers than the mode needs). Returns the tasks it created. The caller moves the request on.
    """
    request, policy = ctx.request, ctx.policy
    policy_stage = policy_stage_of(policy, stage)
    at = now()
    try:
        skipped, reason = policy_domain.should_skip(
            policy_stage, request_facts(request), ctx.resolver.evaluator
        )
        if skipped:
            await skip_stage(
                ctx, stage, reason or policy_domain.SKIP_REASON_SKIP_IF, actor
            )
            return []
        resolved = await resolve_rules(
            ctx, stage_key(ctx, stage, "stage"), stage.stage_order, policy_stage.rules
        )
    except ResolutionFailed as failure:
        await _resolution_failed(ctx, stage, failure.reason, actor)
        return []
    except (RuleEvaluationError, RuleUnsafe) as error:
        if ctx.rule_errors == "raise":
            raise
        await reject_stage(
            ctx, stage, "rule_evaluation_failed", actor, detail=error.message
        )
        return []

    everyone = list(dict.fromkeys(user for _, users in resolved for user in users))
    facts, delegates = await sod_facts(
        ctx, stage.stage_order, stages, delegates_for=everyone
    )
    barred = domain.barred_users(facts)
    plan = policy_domain.plan_stage(policy_stage, resolved=resolved, barred=barred)
    if not plan.approvers:
        if stage.on_empty == "skip":
            await skip_stage(ctx, stage, policy_domain.SKIP_REASON_NO_APPROVERS, actor)
            return []
        await complete_stage(
            ctx,
            stage,
            StageStatus.REJECTED,
            actor,
            reason=policy_domain.SKIP_REASON_NO_APPROVERS,
            removed_by_sod=list(plan.removed_by_sod),
        )
        return []

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
                    # Required approvers are tracked on their tasks (a delegate holds the task
                    # during a window; a reassignment copies it to the new task).
                    required=kind == "approver" and person in plan.required_approvers,
                    due_at=due_at if kind == "approver" else None,
                    remind_at=remind_at if kind == "approver" else None,
                )
            )
    ctx.session.add_all(tasks)
    stage.status = StageStatus.ACTIVE
    stage.started_at = at
    stage.due_at = due_at
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
    await conclude_stage(ctx, stage, actor, tasks=tasks)
    return tasks


async def complete_stage(
    ctx: Context,
    stage: RequestStage,
    outcome: StageStatus,
    actor: str,
    *,
    reason: str | None = None,
    **details: Any,
) -> None:
    """The stage reached its outcome: `stage_completed` with the reason (kept on a rejected
    stage as its `skip_reason`, which names the request's rejection) and what led to it."""
    stage.status = outcome
    stage.completed_at = now()
    if outcome == StageStatus.REJECTED:
        stage.skip_reason = reason or domain.REASON_STAGE_REJECTED
    body: dict[str, Any] = {
        "stage_order": stage.stage_order,
        "name": stage.name,
        "outcome": outcome,
    }
    if reason is not None:
        body["reason"] = reason
    await append_event(
        ctx.session, ctx.request, "stage_completed", actor, {**body, **details}
    )


async def reject_stage(
    ctx: Context, stage: RequestStage, reason: str, actor: str, *, detail: str
) -> None:
    await complete_stage(
        ctx, stage, StageStatus.REJECTED, actor, reason=reason, detail=detail
    )


async def skip_stage(
    ctx: Context, stage: RequestStage, reason: str, actor: str
) -> None:
    stage.status = StageStatus.SKIPPED
    stage.skip_reason = reason
    stage.completed_at = now()
    await append_event(
        ctx.session,
        ctx.request,
        "stage_skipped",
        actor,
        {"stage_order": stage.stage_order, "name": stage.name, "reason": reason},
    )


async def _resolution_failed(
    ctx: Context, stage: RequestStage, reason: str, actor: str
) -> None:
    stage.status = StageStatus.RESOLVING
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


# --- votes -----------------------------------------------------------------------------------


async def skip_open_tasks(
    ctx: Context, *, stage_ids: Sequence[uuid.UUID] | None
) -> list[Task]:
    """Every undecided task of the request (or of these stages) becomes `skipped`."""
    tasks = await ctx.repository.list_tasks(ctx.request.id, stage_ids=stage_ids)
    at = now()
    skipped = [t for t in tasks if t.status in domain.UNDECIDED_TASK_STATUSES]
    await ctx.repository.mark_tasks(
        skipped, status=TaskStatus.SKIPPED, completed_at=at, updated_at=at
    )
    return skipped


async def conclude_stage(
    ctx: Context,
    stage: RequestStage,
    actor: str,
    *,
    tasks: Sequence[Task] | None = None,
) -> domain.StageOutcome:
    """Evaluate an active stage and, when decided, close it (tasks skipped, events written).

    Does not move the request on (`flow.advance` does). `tasks`: the stage's tasks, when the
    caller has every one of them in hand (a stage that just started).
    """
    if stage.status != StageStatus.ACTIVE:
        return domain.StageOutcome.PENDING
    if tasks is None:
        tasks = await ctx.repository.list_tasks(ctx.request.id, stage_ids=[stage.id])
    outcome = domain.evaluate_stage(
        stage.mode, stage.mode_value, stage.veto, votes_of(tasks)
    )
    if outcome is domain.StageOutcome.PENDING:
        return outcome
    # The tally the stage settled on: `open` counts the tasks that are now skipped (listed by the
    # stage_quorum_skipped event); RequestOut, read later, counts them no more.
    counts = domain.stage_counts(tasks)
    approved = outcome is domain.StageOutcome.APPROVED
    at = now()
    skipped = [t for t in tasks if t.status in domain.UNDECIDED_TASK_STATUSES]
    await ctx.repository.mark_tasks(
        skipped, status=TaskStatus.SKIPPED, completed_at=at, updated_at=at
    )
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
    await complete_stage(
        ctx,
        stage,
        StageStatus.APPROVED if approved else StageStatus.REJECTED,
        actor,
        counts=counts,
    )
    return outcome


# --- SLA -------------------------------------------------------------------------------------


async def handle_breach(ctx: Context, stage: RequestStage) -> bool:
    """The stage's SLA passed: notify, escalate, or decide it as `system:sla`.

    Returns True when the stage was decided (the caller moves the request on).
    """
    at = now()
    tasks = await ctx.repository.list_tasks(ctx.request.id, stage_ids=[stage.id])
    open_approvers = [
        t
        for t in tasks
        if t.kind == "approver" and t.status in domain.UNDECIDED_TASK_STATUSES
    ]
    action = stage.on_breach or "notify"
    if action == "escalate":
        if await escalate(ctx, stage, tasks):
            stage.breach_handled_at = at
        return False  # when not escalated it is retried later; the breach is not handled yet
    if action in ("auto_approve", "auto_reject"):
        await _decide_by_sla(ctx, stage, tasks, open_approvers, action)
        return True
    for task in open_approvers:
        await append_event(
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
    return False


async def _decide_by_sla(
    ctx: Context,
    stage: RequestStage,
    tasks: Sequence[Task],
    open_approvers: Sequence[Task],
    action: str,
) -> None:
    """`auto_approve` / `auto_reject`: the open approver tasks expire, observers are skipped."""
    at = now()
    approved = action == "auto_approve"
    await ctx.repository.mark_tasks(
        open_approvers, status=TaskStatus.EXPIRED, completed_at=at, updated_at=at
    )
    observers = await skip_open_tasks(ctx, stage_ids=[stage.id])
    stage.breach_handled_at = at
    await complete_stage(
        ctx,
        stage,
        StageStatus.APPROVED if approved else StageStatus.REJECTED,
        SLA_ACTOR,
        reason="sla_breach",
        on_breach=action,
        expired_task_ids=[str(t.id) for t in open_approvers],
        skipped_task_ids=[str(t.id) for t in observers],
        counts=domain.stage_counts(tasks),
    )


async def escalate(ctx: Context, stage: RequestStage, tasks: Sequence[Task]) -> bool:
    """Add approver tasks for the stage's escalation rules; the original approvers can still act.

    The new tasks follow the rules every other new task follows (`start_stage`): separation of
    duties removes whoever `domain.barred_users` bars; a person with an active delegation window
    has the task go to their delegate, unless that delegate may not decide here. False when the
    rules could not be resolved now (retried after ESCALATION_RETRY).
    """
    policy_stage = policy_stage_of(ctx.policy, stage)
    rules = list(policy_stage.escalation_rules or [])
    try:
        resolved = await resolve_rules(
            ctx, stage_key(ctx, stage, "escalation"), stage.stage_order, rules
        )
    except ResolutionFailed as failure:
        stage.due_at = now() + ESCALATION_RETRY
        await append_event(
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
    found: list[str] = []
    for _, users in resolved:
        found.extend(u for u in users if u not in found)
    at = now()
    request = ctx.request
    # Everyone already in the stage, in person or through a delegate holding their task.
    holders: set[str] = set()
    for task in tasks:
        if task.status in domain.LIVE_TASK_STATUSES:
            holders.add(task.assignee)
            if task.delegated_from:
                holders.add(task.delegated_from)
    facts, delegates = await sod_facts(ctx, stage.stage_order, delegates_for=found)
    barred = domain.barred_users(facts)
    people = [p for p in found if p not in holders and p not in barred]
    removed_by_sod = [p for p in found if p not in holders and p in barred]
    approvers = holders | set(people)
    added: list[Task] = []
    for person in people:
        assignee, delegated_from = domain.apply_delegation(
            person, delegates, barred, approvers
        )
        added.append(
            new_task(
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
    await append_event(
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


async def send_reminders(ctx: Context, stages: Sequence[RequestStage]) -> int:
    """`task_reminder` for every undecided approver task whose reminder is due; the next one is
    set N hours after this one was due (several missed ones collapse into one)."""
    at = now()
    by_id = {s.id: s for s in stages}
    sent = 0
    for task in await ctx.repository.list_tasks(ctx.request.id, stage_ids=list(by_id)):
        if task.kind != "approver" or task.status not in domain.UNDECIDED_TASK_STATUSES:
            continue
        if task.remind_at is None or task.remind_at > at:
            continue
        stage = by_id[task.request_stage_id]
        await append_event(
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
            step = timedelta(hours=hours)
            next_at = task.remind_at + step
            while next_at <= at:
                next_at += step
            task.remind_at = next_at
        else:
            task.remind_at = None
    return sent
