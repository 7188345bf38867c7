"""Replay a policy version on history (`POST /v1/policies/{key}/versions/{v}/replay`).

The contexts of the key's most recent requests run twice through the simulate code path
(`service.simulate`, with the real resolver: directory rules and http rules included), once
through version `v` and once through the version each request was pinned to, and the requests
whose routing, stages, skips, resolved approvers or outcome would change are listed. Nothing is
written. See docs/policies.md ("Replay") and ADR-0019.

- **before** is the pinned version simulated today (same directory, same time), not the
  request's recorded history: both sides see the same world, so the differences come from the
  versions alone.
- **after** is where routing would send the request if `v` were the key's active version: among
  the active policies of the request's `artifact_type` (with `v` in place of the key's active
  version), the first by priority and key whose `applies_if` holds. That is usually `v`; it may
  be another key, or none. Requests that named their `policy_key` at creation never went through
  routing; for them a `routing` difference means "would no longer be chosen by routing".
- **time**: http rules call the callers' resolvers; the whole replay stops starting new requests
  after `COUNTERSIGN_REPLAY_BUDGET_SECONDS` (default 20) and says so (`truncated`). Each http
  call is bounded by its own `timeout_seconds`; one rule answer is reused for both sides.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.directory.http_rule import HttpRuleCall
from countersign.directory.resolver import ApproverResolver, ResolutionFailed
from countersign.errors import AppError, PolicyNotFound
from countersign.models import ApprovalRequest, Policy
from countersign.policies import service as policy_service
from countersign.policies.repository import PolicyRepository
from countersign.policies.rules import rule_data
from countersign.policies.schemas import SimulatedStage, SimulateIn, SimulateOut
from countersign.webhooks.secrets import signing_secrets

DifferenceKind = Literal[
    "routing",
    "stages",
    "skipped",
    "approvers",
    "required_approvers",
    "observers",
    "outcome",
]
ReplayOutcome = Literal["approved", "rejected", "pending", "not_routed", "error"]


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(100, ge=1, le=1000, description="how many recent requests")


class ReplayStage(BaseModel):
    stage_order: int
    name: str
    skipped: bool
    skip_reason: str | None
    resolved_approvers: list[str]
    required_approvers: list[str]
    observers: list[str]
    removed_by_sod: list[str]


class ReplaySide(BaseModel):
    """One simulation of a request: which policy version it routes to, and what that does."""

    policy_key: str | None
    version: int | None
    outcome: ReplayOutcome
    stages: list[ReplayStage]
    # Why the simulation could not run (a JSONLogic rule failing on this context).
    error: str | None = None


class ReplayDifference(BaseModel):
    kind: DifferenceKind
    stage_order: int | None
    before: Any
    after: Any
    detail: str = Field(description="the difference in words")


class ReplayChange(BaseModel):
    request_id: uuid.UUID
    artifact_type: str
    artifact_id: str
    created_at: datetime
    before: ReplaySide
    after: ReplaySide
    differences: list[ReplayDifference]


class ReplayOut(BaseModel):
    policy_key: str
    version: int
    compared_with: int | None = Field(
        description="the key's active version (null when none is active). Each request is "
        "compared with the version it was pinned to (`before.version`), which is the active "
        "one for recent requests and an older one for requests created before a publish."
    )
    replayed: int = Field(description="how many requests were replayed")
    truncated: bool = Field(
        description="the time budget ran out: fewer requests than asked were replayed"
    )
    changed: list[ReplayChange]


# --- comparison (pure) -------------------------------------------------------------------------


def _stage(stage: SimulatedStage) -> ReplayStage:
    return ReplayStage(
        stage_order=stage.stage_order,
        name=stage.name,
        skipped=stage.skipped,
        skip_reason=stage.skip_reason,
        resolved_approvers=sorted(stage.resolved_approvers),
        required_approvers=sorted(stage.required_approvers),
        observers=sorted(stage.observers),
        removed_by_sod=sorted(stage.removed_by_sod),
    )


def _people_detail(what: str, before: list[str], after: list[str]) -> str:
    added = [p for p in after if p not in before]
    removed = [p for p in before if p not in after]
    parts = [f"+{p}" for p in added] + [f"-{p}" for p in removed]
    return f"{what}: {' '.join(parts)}"


def compare(before: ReplaySide, after: ReplaySide) -> list[ReplayDifference]:
    """What changes from `before` to `after`, routing first, outcome last."""
    differences: list[ReplayDifference] = []
    if before.policy_key != after.policy_key:
        differences.append(
            ReplayDifference(
                kind="routing",
                stage_order=None,
                before=before.policy_key,
                after=after.policy_key,
                detail=(
                    f"routed to {after.policy_key} instead of {before.policy_key}"
                    if after.policy_key
                    else f"no active policy applies any more (was {before.policy_key})"
                ),
            )
        )
    elif before.error is None and after.error is None:
        differences += _stage_differences(before, after)
    if before.outcome != after.outcome:
        differences.append(
            ReplayDifference(
                kind="outcome",
                stage_order=None,
                before=before.outcome,
                after=after.outcome,
                detail=f"outcome {before.outcome} → {after.outcome}"
                + (f" ({after.error})" if after.error else ""),
            )
        )
    return differences


def _stage_differences(before: ReplaySide, after: ReplaySide) -> list[ReplayDifference]:
    differences: list[ReplayDifference] = []
    old = {s.stage_order: s for s in before.stages}
    new = {s.stage_order: s for s in after.stages}
    if list(old) != list(new):
        added = [o for o in new if o not in old]
        removed = [o for o in old if o not in new]
        words = [f"stage {o} added" for o in added] + [
            f"stage {o} removed" for o in removed
        ]
        differences.append(
            ReplayDifference(
                kind="stages",
                stage_order=None,
                before=list(old),
                after=list(new),
                detail="; ".join(words) or "stages reordered",
            )
        )
    for order in [o for o in new if o in old]:
        a, b = old[order], new[order]
        if a.skipped != b.skipped:
            differences.append(
                ReplayDifference(
                    kind="skipped",
                    stage_order=order,
                    before=a.skip_reason if a.skipped else None,
                    after=b.skip_reason if b.skipped else None,
                    detail=(
                        f"stage {order} skipped ({b.skip_reason})"
                        if b.skipped
                        else f"stage {order} no longer skipped"
                    ),
                )
            )
            continue
        if a.skipped:
            continue
        for kind, label in (
            ("approvers", "approvers"),
            ("required_approvers", "required approvers"),
            ("observers", "observers"),
        ):
            field = "resolved_approvers" if kind == "approvers" else kind
            people_a, people_b = getattr(a, field), getattr(b, field)
            if people_a != people_b:
                differences.append(
                    ReplayDifference(
                        kind=kind,
                        stage_order=order,
                        before=people_a,
                        after=people_b,
                        detail=_people_detail(
                            f"stage {order} {label}", people_a, people_b
                        ),
                    )
                )
    return differences


# --- running -----------------------------------------------------------------------------------


class _RememberingResolver(ApproverResolver):
    """The real resolver, asked once per distinct rule, data and http call during one replay:
    both sides of a request see the same answer, and an http resolver is not called twice."""

    def __init__(self, inner: ApproverResolver) -> None:
        super().__init__(inner.directory, inner.evaluator, inner.http_client)
        self.secret_box = inner.secret_box
        self._inner = inner
        self._answers: dict[str, list[str] | ResolutionFailed] = {}

    async def resolve(
        self,
        rule_type: str,
        rule_value: dict[str, Any],
        data: dict[str, Any],
        *,
        http_call: HttpRuleCall | None = None,
    ) -> list[str]:
        key = json.dumps(
            [
                rule_type,
                rule_value,
                data if rule_type in ("expression", "http") else None,
                http_call.body().decode()
                if http_call and rule_type == "http"
                else None,
            ],
            sort_keys=True,
            default=str,
        )
        if key not in self._answers:
            try:
                self._answers[key] = await self._inner.resolve(
                    rule_type, rule_value, data, http_call=http_call
                )
            except ResolutionFailed as failure:
                self._answers[key] = failure
        answer = self._answers[key]
        if isinstance(answer, ResolutionFailed):
            raise answer
        return list(answer)


def _route(
    candidates: Sequence[Policy],
    request: ApprovalRequest,
    resolver: ApproverResolver,
) -> Policy | None:
    """The routing rule of request creation (`requests.service._choose_policy`), over `candidates`."""
    for candidate in candidates:
        if candidate.applies_if is None:
            return candidate
        facts = rule_data(
            request.context,
            {
                "requester": request.requester,
                "artifact_type": request.artifact_type,
                "artifact_id": request.artifact_id,
                "policy_key": candidate.policy_key,
            },
        )
        try:
            value = resolver.evaluator.evaluate(
                candidate.applies_if, facts, pointer="/applies_if"
            )
        except AppError:
            continue  # creation would have refused this context for this candidate
        if resolver.evaluator.is_truthy(value):
            return candidate
    return None


async def _side(
    session: AsyncSession,
    policy: Policy | None,
    request: ApprovalRequest,
    resolver: ApproverResolver,
    http_call: HttpRuleCall | None,
) -> ReplaySide:
    if policy is None:
        return ReplaySide(
            policy_key=None, version=None, outcome="not_routed", stages=[]
        )
    try:
        simulated: SimulateOut = await policy_service.simulate(
            session,
            policy_key=policy.policy_key,
            version=policy.version,
            body=SimulateIn(context=request.context, requester=request.requester),
            resolver=resolver,
            principal_id=request.source_service,
            policy=policy,
            artifact_id=request.artifact_id,
            http_call=http_call,
        )
    except AppError as failure:  # a JSONLogic rule fails on this context
        return ReplaySide(
            policy_key=policy.policy_key,
            version=policy.version,
            outcome="error",
            stages=[],
            error=failure.message,
        )
    return ReplaySide(
        policy_key=policy.policy_key,
        version=policy.version,
        outcome=simulated.outcome,
        stages=[_stage(s) for s in simulated.stages],
    )


async def replay(
    session: AsyncSession,
    *,
    policy_key: str,
    version: int,
    limit: int,
    resolver: ApproverResolver,
    budget_seconds: float,
) -> ReplayOut:
    repository = PolicyRepository(session)
    target = await repository.get_version(policy_key, version)
    if target is None:
        raise PolicyNotFound(f"policy {policy_key!r} has no version {version}")
    active = await repository.get_active(policy_key)
    statement = (
        select(ApprovalRequest)
        .where(ApprovalRequest.policy_key == policy_key)
        .order_by(ApprovalRequest.created_at.desc(), ApprovalRequest.id.desc())
        .limit(limit)
    )
    requests = (await session.execute(statement)).scalars().all()

    remembering = _RememberingResolver(resolver)
    pinned: dict[uuid.UUID, Policy | None] = {}
    routes: dict[str, list[Policy]] = {}
    deadline = time.monotonic() + budget_seconds
    changed: list[ReplayChange] = []
    replayed = 0
    truncated = False
    for request in requests:
        if time.monotonic() >= deadline:
            truncated = True
            break
        if request.policy_id not in pinned:
            pinned[request.policy_id] = await repository.get_by_id(request.policy_id)
        if request.artifact_type not in routes:
            others = [
                p
                for p in await repository.list_active_for_artifact_type(
                    request.artifact_type
                )
                if p.policy_key != policy_key
            ]
            if target.artifact_type == request.artifact_type:
                others.append(target)
            routes[request.artifact_type] = sorted(
                others, key=lambda p: (-p.priority, p.policy_key)
            )
        http_call = None
        box = resolver.secret_box
        if box is not None and _has_http_rules(pinned[request.policy_id], target):
            http_call = HttpRuleCall(
                request_id=str(request.id),
                policy_key=policy_key,
                stage_order=None,
                artifact_type=request.artifact_type,
                artifact_id=request.artifact_id,
                context=request.context,
                secrets=await signing_secrets(
                    session,
                    box,
                    caller=request.source_client,
                    secret_id=request.callback_secret_id,
                ),
            )
        before = await _side(
            session, pinned[request.policy_id], request, remembering, http_call
        )
        routed = _route(routes[request.artifact_type], request, remembering)
        after_call = (
            replace(http_call, policy_key=routed.policy_key)
            if http_call and routed
            else http_call
        )
        after = await _side(session, routed, request, remembering, after_call)
        replayed += 1
        differences = compare(before, after)
        if differences:
            changed.append(
                ReplayChange(
                    request_id=request.id,
                    artifact_type=request.artifact_type,
                    artifact_id=request.artifact_id,
                    created_at=request.created_at,
                    before=before,
                    after=after,
                    differences=differences,
                )
            )
    return ReplayOut(
        policy_key=policy_key,
        version=version,
        compared_with=active.version if active is not None else None,
        replayed=replayed,
        truncated=truncated,
        changed=changed,
    )


def _has_http_rules(*policies: Policy | None) -> bool:
    return any(
        rule.rule_type == "http"
        for policy in policies
        if policy is not None
        for stage in policy.stages
        for rule in stage.rules
    )
