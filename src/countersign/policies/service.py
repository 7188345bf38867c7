"""Policy commands and queries: load (repository) → decide (domain) → persist (flush) → audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import anyio
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.audit import service as audit_service
from countersign.directory.http_rule import HttpRuleCall
from countersign.directory.resolver import ApproverResolver, ResolutionFailed
from countersign.errors import (
    InvalidState,
    PolicyExists,
    PolicyKeyMismatch,
    PolicyNotFound,
)
from countersign.kit.clock import now
from countersign.kit.locking import advisory_xact_lock
from countersign.kit.outbound import OutboundPolicy, decide, default_resolve
from countersign.kit.pagination import Page
from countersign.kit.problem import validation_failed
from countersign.models import Policy, PolicyRule, PolicyStage
from countersign.policies import domain
from countersign.policies.repository import PolicyRepository
from countersign.policies.rules import rule_data
from countersign.policies.schemas import (
    DiffChange,
    PolicyIn,
    PolicyOut,
    ResolutionTrace,
    SimulatedStage,
    SimulateIn,
    SimulateOut,
    StageIn,
    TracedDelegation,
    TracedRemoval,
    TracedRule,
)
from countersign.requests import domain as request_domain
from countersign.requests.repository import DelegationRepository, load_sod_facts

_LOCK_NAMESPACE = "policy_key"


def to_policy_out(policy: Policy) -> PolicyOut:
    return PolicyOut.model_validate(policy, from_attributes=True)


def _snapshot(policy: Policy) -> dict[str, Any]:
    return to_policy_out(policy).model_dump(mode="json")


def policy_body(policy: Policy) -> dict[str, Any]:
    """The version as a PolicyIn-shaped dict (what an author wrote), for PATCH merges and diffs."""
    return PolicyIn.model_validate(to_policy_out(policy).model_dump()).model_dump(
        mode="json"
    )


def _build_stages(stages: Sequence[StageIn]) -> list[PolicyStage]:
    built = []
    for position, stage in enumerate(stages):
        built.append(
            PolicyStage(
                position=position,
                stage_order=stage.stage_order,
                name=stage.name,
                mode=stage.mode,
                mode_value=stage.mode_value,
                veto=stage.veto,
                parallel_group=stage.parallel_group,
                skip_if=stage.skip_if,
                on_empty=stage.on_empty,
                sla_hours=stage.sla_hours,
                on_breach=stage.on_breach,
                escalation_rules=[
                    r.model_dump(mode="json") for r in stage.escalation_rules
                ],
                reminder_hours=stage.reminder_hours,
                rules=[
                    PolicyRule(
                        position=i,
                        rule_type=rule.rule_type,
                        rule_value=rule.rule_value,
                        kind=rule.kind,
                        required=rule.required,
                    )
                    for i, rule in enumerate(stage.rules)
                ],
            )
        )
    return built


def _apply_fields(policy: Policy, data: PolicyIn) -> None:
    policy.name = data.name
    policy.description = data.description
    policy.artifact_type = data.artifact_type
    policy.forbid_self_approval = data.forbid_self_approval
    policy.forbid_repeat_approvers = data.forbid_repeat_approvers
    policy.allow_request_changes = data.allow_request_changes
    policy.request_ttl_hours = data.request_ttl_hours
    policy.applies_if = data.applies_if
    policy.priority = data.priority
    policy.stages = _build_stages(data.stages)


async def validate(data: PolicyIn, outbound: OutboundPolicy | None) -> None:
    """Semantic validation; http-rule URLs are checked against the outbound policy (DNS off-loop)."""
    urls: list[object] = []
    for stage in data.stages:
        for rule in stage.rules:
            if rule.rule_type == "http":
                urls.append(rule.rule_value.get("url"))
        for escalation in stage.escalation_rules:
            if escalation.rule_type == "http":
                urls.append(escalation.rule_value.get("url"))
    if outbound is None or not urls:
        domain.validate_policy(data)
        return
    policy = outbound

    def allowed(url: str) -> str | None:
        return decide(url, policy, default_resolve)

    await anyio.to_thread.run_sync(
        partial(domain.validate_policy, data, url_allowed=allowed)
    )


async def _require_version(
    repository: PolicyRepository, policy_key: str, version: int
) -> Policy:
    policy = await repository.get_version(policy_key, version)
    if policy is None:
        raise PolicyNotFound(f"policy {policy_key!r} has no version {version}")
    return policy


async def _reload(session: AsyncSession, policy: Policy) -> Policy:
    """Flush, then read the version back with stages and rules loaded (ids included)."""
    await session.flush()
    session.expunge(policy)
    return await _require_version(
        PolicyRepository(session), policy.policy_key, policy.version
    )


async def _insert_draft(
    session: AsyncSession, data: PolicyIn, *, version: int, actor: str, action: str
) -> Policy:
    """Store a new draft version (the caller holds the key's lock) and audit it."""
    policy = Policy(
        policy_key=data.policy_key, version=version, status="draft", created_by=actor
    )
    _apply_fields(policy, data)
    session.add(policy)
    policy = await _reload(session, policy)
    await audit_service.record(
        session,
        actor=actor,
        action=action,
        resource_type="policy",
        resource_id=f"{policy.policy_key}@{policy.version}",
        after=_snapshot(policy),
    )
    return policy


async def create_policy(
    session: AsyncSession,
    *,
    data: PolicyIn,
    actor: str,
    outbound: OutboundPolicy | None = None,
) -> Policy:
    """Create version 1 of a new policy key as a draft."""
    await validate(data, outbound)
    await advisory_xact_lock(session, _LOCK_NAMESPACE, data.policy_key)
    repository = PolicyRepository(session)
    if await repository.latest_version_number(data.policy_key) is not None:
        raise PolicyExists(
            f"policy {data.policy_key!r} already exists; PUT /v1/policies/{data.policy_key} adds a version"
        )
    return await _insert_draft(
        session, data, version=1, actor=actor, action="policy.create"
    )


async def add_version(
    session: AsyncSession,
    *,
    policy_key: str,
    data: PolicyIn,
    actor: str,
    outbound: OutboundPolicy | None = None,
) -> Policy:
    """Add a new draft version (latest + 1) to an existing key."""
    if data.policy_key != policy_key:
        raise PolicyKeyMismatch(
            f"body policy_key {data.policy_key!r} differs from the URL's {policy_key!r}"
        )
    await validate(data, outbound)
    await advisory_xact_lock(session, _LOCK_NAMESPACE, policy_key)
    latest = await PolicyRepository(session).latest_version_number(policy_key)
    if latest is None:
        raise PolicyNotFound(
            f"policy {policy_key!r} does not exist; POST /v1/policies creates it"
        )
    return await _insert_draft(
        session, data, version=latest + 1, actor=actor, action="policy.add_version"
    )


async def patch_version(
    session: AsyncSession,
    *,
    policy_key: str,
    version: int,
    changes: dict[str, Any],
    actor: str,
    outbound: OutboundPolicy | None = None,
) -> Policy:
    """Change a draft in place. Fields absent from `changes` keep their value; `stages` is replaced whole."""
    if "policy_key" in changes and changes["policy_key"] != policy_key:
        raise PolicyKeyMismatch(
            f"body policy_key {changes['policy_key']!r} differs from the URL's {policy_key!r}"
        )
    await advisory_xact_lock(session, _LOCK_NAMESPACE, policy_key)
    policy = await _require_version(PolicyRepository(session), policy_key, version)
    if policy.status != "draft":
        raise InvalidState(
            f"version {version} of {policy_key!r} is {policy.status}; only drafts can be edited"
        )
    before = _snapshot(policy)
    merged = {**policy_body(policy), **changes, "policy_key": policy_key}
    try:
        data = PolicyIn.model_validate(merged)
    except ValidationError as exc:
        # The patch is valid on its own but not merged into the draft (e.g. `"name": null`):
        # the client's mistake, reported like any other body problem.
        raise validation_failed(exc.errors(), "the patched policy is invalid") from exc
    await validate(data, outbound)
    # Delete the old stages first: the unit of work inserts before it deletes orphans, so the
    # replacement stages would otherwise collide with them on unique (policy_id, stage_order).
    policy.stages = []
    await session.flush()
    _apply_fields(policy, data)
    policy = await _reload(session, policy)
    await audit_service.record(
        session,
        actor=actor,
        action="policy.patch",
        resource_type="policy",
        resource_id=f"{policy_key}@{version}",
        before=before,
        after=_snapshot(policy),
    )
    return policy


async def activate(
    session: AsyncSession,
    *,
    policy_key: str,
    version: int,
    actor: str,
    outbound: OutboundPolicy | None = None,
) -> Policy:
    """Make a version the active one; the previously active version is archived."""
    await advisory_xact_lock(session, _LOCK_NAMESPACE, policy_key)
    repository = PolicyRepository(session)
    policy = await _require_version(repository, policy_key, version)
    if policy.status == "active":
        return policy
    await validate(PolicyIn.model_validate(policy_body(policy)), outbound)
    before = _snapshot(policy)
    current = await repository.get_active(policy_key)
    if current is not None:
        current.status = "archived"
        # Archive first: the partial unique index allows one active version per key at any moment.
        await session.flush()
        await audit_service.record(
            session,
            actor=actor,
            action="policy.archive",
            resource_type="policy",
            resource_id=f"{policy_key}@{current.version}",
            before={"status": "active"},
            after={"status": "archived", "replaced_by": version},
        )
    policy.status = "active"
    policy.activated_at = now()
    await session.flush()
    policy = await _reload(session, policy)
    await audit_service.record(
        session,
        actor=actor,
        action="policy.activate",
        resource_type="policy",
        resource_id=f"{policy_key}@{version}",
        before=before,
        after=_snapshot(policy),
    )
    return policy


async def deactivate(
    session: AsyncSession, *, policy_key: str, version: int, actor: str
) -> Policy:
    """Archive the active version; the key then has no active version until one is activated."""
    await advisory_xact_lock(session, _LOCK_NAMESPACE, policy_key)
    policy = await _require_version(PolicyRepository(session), policy_key, version)
    if policy.status != "active":
        raise InvalidState(
            f"version {version} of {policy_key!r} is {policy.status}, not active"
        )
    before = _snapshot(policy)
    policy.status = "archived"
    policy = await _reload(session, policy)
    await audit_service.record(
        session,
        actor=actor,
        action="policy.deactivate",
        resource_type="policy",
        resource_id=f"{policy_key}@{version}",
        before=before,
        after=_snapshot(policy),
    )
    return policy


async def get_version(
    session: AsyncSession, *, policy_key: str, version: int
) -> Policy:
    return await _require_version(PolicyRepository(session), policy_key, version)


async def list_versions(session: AsyncSession, *, policy_key: str) -> Sequence[Policy]:
    versions = await PolicyRepository(session).list_versions(policy_key)
    if not versions:
        raise PolicyNotFound(f"policy {policy_key!r} does not exist")
    return versions


async def list_policies(
    session: AsyncSession, *, after_key: str | None, limit: int
) -> Page[Policy]:
    return await PolicyRepository(session).list_latest(after_key=after_key, limit=limit)


async def diff(
    session: AsyncSession, *, policy_key: str, a: int, b: int
) -> list[DiffChange]:
    repository = PolicyRepository(session)
    first = await _require_version(repository, policy_key, a)
    second = await _require_version(repository, policy_key, b)
    changes = domain.diff_policies(policy_body(first), policy_body(second))
    return [DiffChange.model_validate(change) for change in changes]


async def simulate(
    session: AsyncSession,
    *,
    policy_key: str,
    version: int,
    body: SimulateIn,
    resolver: ApproverResolver,
    principal_id: str,
    policy: Policy | None = None,
    artifact_id: str | None = None,
    http_call: HttpRuleCall | None = None,
) -> SimulateOut:
    """Resolve every stage against a sample context without writing anything, with a trace.

    Replay (`policies/replay.py`) passes the loaded `policy`, the request's `artifact_id`, and
    `http_call` (the request's details and its caller's secrets): http rules are then called
    for real; without it they name nobody.

    `forbid_repeat_approvers` depends on who actually approves earlier stages, so a simulation
    has no earlier approvers; `forbid_self_approval` is applied to the given (or calling)
    requester and creator, and to whoever stands in for them through a delegation open now.
    Separation of duties is the engine's own rule (`requests.domain.barred_users`), fed by the
    engine's own loader.
    """
    if policy is None:
        policy = await _require_version(PolicyRepository(session), policy_key, version)
    data = PolicyIn.model_validate(policy_body(policy))
    requester = body.requester or principal_id
    creator = body.creator or principal_id
    facts = rule_data(
        body.context,
        {
            "requester": requester,
            "artifact_type": policy.artifact_type,
            "artifact_id": artifact_id,
            "policy_key": policy_key,
        },
    )
    at = now()
    sod, _ = await load_sod_facts(
        session,
        requester=requester,
        creator=creator,
        forbid_self_approval=data.forbid_self_approval,
        forbid_repeat_approvers=data.forbid_repeat_approvers,
        earlier_stage_ids=[],
        at=at,
    )
    barred = request_domain.barred_users(sod)
    delegations = DelegationRepository(session)
    stages: list[SimulatedStage] = []
    for stage in sorted(data.stages, key=lambda s: s.stage_order):
        skip_result = (
            None
            if stage.skip_if is None
            else resolver.evaluator.is_truthy(
                resolver.evaluator.evaluate(stage.skip_if, facts, pointer="/skip_if")
            )
        )
        skipped, skip_reason = (
            (True, domain.SKIP_REASON_SKIP_IF) if skip_result else (False, None)
        )
        plan = None
        traced: list[TracedRule] = []
        removed: list[TracedRemoval] = []
        substituted: list[TracedDelegation] = []
        if not skipped:
            resolved = []
            for index, rule in enumerate(stage.rules):
                error = None
                try:
                    users = await resolver.resolve(
                        rule.rule_type,
                        rule.rule_value,
                        facts,
                        http_call=replace(http_call, stage_order=stage.stage_order)
                        if http_call is not None
                        else None,
                    )
                except ResolutionFailed as failure:
                    users, error = [], failure.reason
                if rule.rule_type == "http" and http_call is None:
                    # Calling the caller's resolver needs a real request (its id, signing
                    # secrets); a simulation has neither, so the rule names nobody. A replay
                    # has both and calls it.
                    error = "http rules are not called when simulating"
                resolved.append((rule, users))
                traced.append(
                    TracedRule(
                        index=index,
                        rule_type=rule.rule_type,
                        rule_value=rule.rule_value,
                        kind=rule.kind,
                        required=rule.required,
                        resolved=list(users),
                        error=error,
                    )
                )
            plan = domain.plan_stage(stage, resolved=resolved, barred=barred)
            removed = [
                TracedRemoval(
                    user_id=user,
                    reason=barred[user].reason.value,
                    detail=barred[user].detail,
                )
                for user in plan.removed_by_sod
            ]
            people = [*plan.approvers, *plan.observers]
            windows = await delegations.active_delegates(people, at)
            delegates = {user: window.delegate_to for user, window in windows.items()}
            for person in people:
                assignee, delegated_from = request_domain.apply_delegation(
                    person, delegates, barred, set(plan.approvers)
                )
                if delegated_from is not None:
                    substituted.append(
                        TracedDelegation(
                            user_id=person,
                            delegate_to=assignee,
                            delegation_id=windows[person].id,
                        )
                    )
            if not plan.approvers and stage.on_empty == "skip":
                skipped, skip_reason = True, domain.SKIP_REASON_NO_APPROVERS
        stages.append(
            SimulatedStage(
                stage_order=stage.stage_order,
                name=stage.name,
                mode=stage.mode,
                mode_value=stage.mode_value,
                resolved_approvers=list(plan.approvers) if plan else [],
                observers=list(plan.observers) if plan else [],
                required_approvers=list(plan.required_approvers) if plan else [],
                removed_by_sod=list(plan.removed_by_sod) if plan else [],
                skipped=skipped,
                skip_reason=skip_reason,
                trace=ResolutionTrace(
                    rules=traced,
                    removed=removed,
                    delegations=substituted,
                    skip_condition=stage.skip_if,
                    skip_result=skip_result,
                ),
            )
        )
    outcome = domain.simulate_outcome(stages)
    return SimulateOut(
        policy_key=policy_key, policy_version=version, outcome=outcome, stages=stages
    )
