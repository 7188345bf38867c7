"""Request commands and queries: create, cancel, resubmit, read, timeline."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from countersign.directory.resolver import ApproverResolver
from countersign.errors import (
    CallbackNotAllowed,
    CallbackSecretInvalid,
    FieldProblem,
    Forbidden,
    PolicyNotFound,
    RequestAlreadyOpen,
    RequestNotFound,
    ValidationFailed,
)
from countersign.identity.principal import Principal
from countersign.kit import idempotency
from countersign.kit.clock import now
from countersign.kit.locking import advisory_xact_lock
from countersign.kit.outbound import OutboundPolicy, check_url_async
from countersign.kit.pagination import Page
from countersign.models import ApprovalRequest, CallerSecret, Policy, Task
from countersign.policies.diagram import DiagramStage, policy_stage, render_diagram
from countersign.policies.repository import PolicyRepository
from countersign.policies.rules import rule_data
from countersign.policies.schemas import StageIn
from countersign.requests import domain, engine
from countersign.requests.repository import RequestRepository
from countersign.requests.schemas import (
    ChainVerification,
    RequestCreate,
    RequestCreated,
    RequestOut,
    RequestStageOut,
    StageCounts,
    TaskOut,
)
from countersign.requests.timeline import GENESIS_HASH, verify_chain


def task_out(task: Task, request: ApprovalRequest) -> TaskOut:
    return TaskOut.model_validate(
        {
            **{
                name: getattr(task, name)
                for name in TaskOut.model_fields
                if name != "context"
            },
            "context": request.context,
        }
    )


async def _choose_policy(
    session: AsyncSession,
    resolver: ApproverResolver,
    data: RequestCreate,
    requester: str,
) -> Policy:
    repository = PolicyRepository(session)
    if data.policy_key is not None:
        policy = await repository.get_active_published(data.policy_key)
        if policy is None:
            raise PolicyNotFound(f"policy {data.policy_key!r} has no active version")
        if policy.artifact_type != data.artifact_type:
            raise ValidationFailed(
                f"artifact_type {data.artifact_type!r} does not match policy {policy.policy_key!r} "
                f"({policy.artifact_type!r})",
                [
                    FieldProblem(
                        "/artifact_type",
                        f"policy {policy.policy_key!r} expects {policy.artifact_type!r}",
                    )
                ],
            )
        return policy
    # Routing: highest priority first, then lowest key (the repository's order), first truthy applies_if.
    for candidate in await repository.active_published_for_artifact_type(
        data.artifact_type
    ):
        if candidate.applies_if is None:
            return candidate
        facts = rule_data(
            data.context,
            {
                "requester": requester,
                "artifact_type": data.artifact_type,
                "artifact_id": data.artifact_id,
                "policy_key": candidate.policy_key,
            },
        )
        value = resolver.evaluator.evaluate(
            candidate.applies_if, facts, pointer="/applies_if"
        )
        if resolver.evaluator.is_truthy(value):
            return candidate
    raise PolicyNotFound(
        f"no active policy for artifact_type {data.artifact_type!r} applies to this request"
    )


async def _check_callback_url(url: str, outbound: OutboundPolicy) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed(
            "callback_url must be an absolute http(s) URL",
            [FieldProblem("/callback_url", "must be an absolute http(s) URL")],
        )
    try:
        await check_url_async(url, outbound)
    except CallbackNotAllowed as refused:
        raise CallbackNotAllowed(
            refused.message, [FieldProblem("/callback_url", refused.message)]
        ) from refused


async def _check_callback_secret(
    session: AsyncSession, secret_id: uuid.UUID, caller: str
) -> None:
    secret = await session.get(CallerSecret, secret_id)
    usable = (
        secret is not None
        and secret.caller == caller
        and secret.status in ("active", "rotated")
    )
    if (
        secret is not None
        and secret.status == "rotated"
        and secret.expires_at is not None
    ):
        usable = usable and secret.expires_at > now()
    if not usable:
        raise CallbackSecretInvalid(
            "callback_secret_id is not an active secret of this caller",
            [
                FieldProblem(
                    "/callback_secret_id",
                    "unknown, revoked or belongs to another caller",
                )
            ],
        )


async def create_request(
    session: AsyncSession,
    *,
    principal: Principal,
    data: RequestCreate,
    resolver: ApproverResolver,
    outbound: OutboundPolicy,
    resolutions: engine.Resolutions,
) -> tuple[ApprovalRequest, list[Task]]:
    """Pin the policy, resolve the first stage group and create its tasks, in one transaction
    (one attempt of `engine.run`: approvers from outside systems are in `resolutions`)."""
    requester = data.requester or principal.id
    source_client = principal.caller
    if data.callback_url is not None:
        await _check_callback_url(data.callback_url, outbound)
    if data.callback_secret_id is not None:
        await _check_callback_secret(session, data.callback_secret_id, source_client)
    policy = await _choose_policy(session, resolver, data, requester)

    # Serialize creations for one artifact of one caller; the partial unique index backs this up.
    await advisory_xact_lock(
        session,
        "live_artifact",
        f"{source_client}\x00{data.artifact_type}\x00{data.artifact_id}",
    )
    repository = RequestRepository(session)
    existing = await repository.get_live_for_artifact(
        source_client, data.artifact_type, data.artifact_id
    )
    if existing is not None:
        raise RequestAlreadyOpen(
            f"request {existing.id} for {data.artifact_type}/{data.artifact_id} is still {existing.status}",
            extra={"request_id": str(existing.id)},
        )

    at = now()
    request = ApprovalRequest(
        id=resolutions.new_request_id,
        policy_id=policy.id,
        policy_key=policy.policy_key,
        policy_version=policy.version,
        artifact_type=data.artifact_type,
        artifact_id=data.artifact_id,
        source_service=principal.id,
        source_client=source_client,
        requester=requester,
        context=data.context,
        metadata_=data.metadata,
        status=domain.RequestStatus.IN_REVIEW,
        cycle=1,
        callback_url=data.callback_url,
        callback_secret_id=data.callback_secret_id,
        expires_at=engine.expiry_of(policy, at),
        created_at=at,
        updated_at=at,
        # Set here, not left to the column defaults (applied only when the row is inserted):
        # the engine appends the first events before anything is flushed.
        last_sequence=0,
        last_hash=GENESIS_HASH,
    )
    ctx = engine.Context(
        session, request, policy, resolver, rule_errors="raise", resolutions=resolutions
    )
    tasks = await engine.open_request(ctx, principal.id)
    await session.flush()
    return request, tasks


JSON = "application/json"


async def create_idempotent(
    session: AsyncSession,
    *,
    principal: Principal,
    data: RequestCreate,
    resolver: ApproverResolver,
    outbound: OutboundPolicy,
    key: str | None,
    fingerprint: str,
) -> idempotency.StoredResponse:
    """`POST /v1/requests`: create, or with an Idempotency-Key already used, the first answer
    again (marked `Idempotent-Replayed`). The body is serialised once, and stored as sent."""

    async def attempt(resolutions: engine.Resolutions) -> idempotency.StoredResponse:
        # The whole command, key claim included: an attempt rolled back to resolve approvers
        # outside the transaction (engine.run) leaves no claimed key behind.
        if key is not None:
            stored = await idempotency.begin(
                session,
                caller=principal.caller,
                key=key,
                method="POST",
                path="/requests",
                body_fingerprint=fingerprint,
            )
            if stored is not None:
                return idempotency.StoredResponse(
                    stored.status,
                    {**stored.headers, "Idempotent-Replayed": "true"},
                    stored.body,
                )
        created, tasks = await create_request(
            session,
            principal=principal,
            data=data,
            resolver=resolver,
            outbound=outbound,
            resolutions=resolutions,
        )
        content = (
            RequestCreated(
                request_id=created.id,
                status=created.status,
                current_stage_order=created.current_stage_order,
                tasks=[task_out(t, created) for t in tasks],
            )
            .model_dump_json()
            .encode()
        )
        headers = {"Content-Type": JSON, "Location": f"/v1/requests/{created.id}"}
        if key is not None:
            await idempotency.complete(
                session,
                caller=principal.caller,
                key=key,
                status=201,
                headers=headers,
                body=content,
            )
        return idempotency.StoredResponse(201, headers, content)

    return await engine.run(session, resolver, attempt)


async def _visible_request(
    session: AsyncSession, request_id: uuid.UUID, principal: Principal
) -> ApprovalRequest:
    request = await RequestRepository(session).get_visible(request_id, principal)
    if request is None:
        raise RequestNotFound(f"request {request_id} not found")
    return request


async def _lock_visible(
    session: AsyncSession, request_id: uuid.UUID, principal: Principal
) -> ApprovalRequest:
    await _visible_request(session, request_id, principal)
    request = await RequestRepository(session).lock(request_id)
    if request is None:
        raise RequestNotFound(f"request {request_id} not found")
    return request


def _is_creating_caller(principal: Principal, request: ApprovalRequest) -> bool:
    return principal.id == request.source_service or (
        principal.client is not None and principal.client == request.source_client
    )


async def cancel_request(
    session: AsyncSession,
    *,
    principal: Principal,
    request_id: uuid.UUID,
    reason: str | None,
    resolver: ApproverResolver,
) -> ApprovalRequest:
    """Cancel a live request: admin, the creating caller or the requester."""
    request = await _lock_visible(session, request_id, principal)
    if not (
        principal.is_admin
        or _is_creating_caller(principal, request)
        or principal.id == request.requester
    ):
        raise Forbidden(
            "only an admin, the creating caller or the requester may cancel a request"
        )
    ctx = await engine.context_for(session, request, resolver)
    await engine.cancel(ctx, reason=reason, actor=principal.id)
    await session.flush()
    return request


async def resubmit_request(
    session: AsyncSession,
    *,
    principal: Principal,
    request_id: uuid.UUID,
    context: dict[str, object] | None,
    comment: str | None,
    resolver: ApproverResolver,
) -> tuple[ApprovalRequest, list[Task]]:
    """Restart a request sent back for changes: fresh stages and tasks; history stays."""

    async def attempt(
        resolutions: engine.Resolutions,
    ) -> tuple[ApprovalRequest, list[Task]]:
        request = await _lock_visible(session, request_id, principal)
        if not (
            _is_creating_caller(principal, request) or principal.id == request.requester
        ):
            raise Forbidden(
                "only the creating caller or the requester may resubmit a request"
            )
        ctx = await engine.context_for(
            session, request, resolver, resolutions, rule_errors="raise"
        )
        tasks = await engine.restart_cycle(
            ctx, context=context, comment=comment, actor=principal.id
        )
        await session.flush()
        return request, tasks

    return await engine.run(session, resolver, attempt)


async def get_request(
    session: AsyncSession, *, principal: Principal, request_id: uuid.UUID
) -> RequestOut:
    request = await _visible_request(session, request_id, principal)
    return await request_out(session, request)


async def request_out(session: AsyncSession, request: ApprovalRequest) -> RequestOut:
    return (await request_outs(session, [request]))[0]


async def request_outs(
    session: AsyncSession, requests: Sequence[ApprovalRequest]
) -> list[RequestOut]:
    """RequestOut for a page of requests in two queries (stages, then tasks), never one per request."""
    repository = RequestRepository(session)
    stages = await repository.current_stages_of(requests)
    tasks = await repository.list_tasks_of_stages([s.id for s in stages])
    tasks_by_stage: dict[uuid.UUID, list[Task]] = {}
    for task in tasks:
        tasks_by_stage.setdefault(task.request_stage_id, []).append(task)
    stages_by_request: dict[uuid.UUID, list[RequestStageOut]] = {}
    for s in stages:
        stages_by_request.setdefault(s.request_id, []).append(
            RequestStageOut(
                stage_order=s.stage_order,
                name=s.name,
                parallel_group=s.parallel_group,
                status=s.status,
                mode=s.mode,
                mode_value=s.mode_value,
                due_at=s.due_at,
                counts=StageCounts(**domain.stage_counts(tasks_by_stage.get(s.id, []))),
                resolution_error=s.last_resolution_error
                if s.status == "resolving"
                else None,
                next_resolution_at=s.next_resolution_at
                if s.status == "resolving"
                else None,
            )
        )
    exhausted = await repository.exhausted_deliveries_of([r.id for r in requests])
    return [
        RequestOut(
            id=request.id,
            policy_id=request.policy_id,
            policy_key=request.policy_key,
            policy_version=request.policy_version,
            artifact_type=request.artifact_type,
            artifact_id=request.artifact_id,
            source_service=request.source_service,
            source_client=request.source_client,
            requester=request.requester,
            context=request.context,
            metadata=request.metadata_,
            status=request.status,
            outcome_reason=request.outcome_reason,
            current_stage_order=request.current_stage_order,
            callback_url=request.callback_url,
            callback_secret_id=request.callback_secret_id,
            cycle=request.cycle,
            completed_at=request.completed_at,
            created_at=request.created_at,
            updated_at=request.updated_at,
            stages=stages_by_request.get(request.id, []),
            exhausted_deliveries=exhausted.get(request.id, 0),
        )
        for request in requests
    ]


async def list_requests(
    session: AsyncSession,
    *,
    principal: Principal,
    artifact_type: str | None,
    artifact_id: str | None,
    status: str | None,
    policy_key: str | None,
    requester: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
    stuck: bool | None = None,
) -> Page[ApprovalRequest]:
    repository = RequestRepository(session)
    statement = repository.list_statement(
        principal,
        artifact_type=artifact_type,
        artifact_id=artifact_id,
        status=status,
        policy_key=policy_key,
        requester=requester,
        created_after=created_after,
        created_before=created_before,
        before=before,
        is_stuck=stuck,
    )
    return await repository.list_requests(statement, limit=limit)


async def list_events(
    session: AsyncSession, *, principal: Principal, request_id: uuid.UUID
) -> list[object]:
    await _visible_request(session, request_id, principal)
    return list(await RequestRepository(session).list_events(request_id))


async def verify_events(
    session: AsyncSession, *, principal: Principal, request_id: uuid.UUID
) -> ChainVerification:
    await _visible_request(session, request_id, principal)
    check = verify_chain(await RequestRepository(session).list_events(request_id))
    return ChainVerification(
        valid=check.valid, count=check.count, broken_at_sequence=check.broken_at
    )


def _people(tasks: Sequence[Task]) -> dict[str, list[str]]:
    """Who approved, rejected, abstained or is still pending among a stage's approver tasks
    (observers never count; reassigned, expired and skipped tasks are nobody's turn)."""
    people: dict[str, list[str]] = {
        "approved_by": [],
        "rejected_by": [],
        "abstained": [],
        "pending": [],
    }
    for task in tasks:
        if task.kind != "approver":
            continue
        if task.status in domain.UNDECIDED_TASK_STATUSES:
            people["pending"].append(task.assignee)
        elif task.status == "completed" and task.decision_action == "approve":
            people["approved_by"].append(task.assignee)
        elif task.status == "completed" and task.decision_action == "reject":
            people["rejected_by"].append(task.assignee)
        elif task.status == "completed" and task.decision_action == "request_changes":
            people["rejected_by"].append(f"{task.assignee} (changes requested)")
        elif task.status == "completed" and task.decision_action == "abstain":
            people["abstained"].append(task.assignee)
    return {key: list(dict.fromkeys(names)) for key, names in people.items()}


async def request_diagram_svg(session: AsyncSession, request: ApprovalRequest) -> str:
    """The request's current cycle drawn over its pinned policy version (policies/diagram.py)."""
    repository = RequestRepository(session)
    policy = await engine.load_policy(session, request)
    policy_stages = {
        s.id: StageIn.model_validate(s, from_attributes=True) for s in policy.stages
    }
    stages = await repository.list_stages(request.id, request.cycle)
    tasks = await repository.list_tasks_of_stages([s.id for s in stages])
    by_stage: dict[uuid.UUID, list[Task]] = {}
    for task in tasks:
        by_stage.setdefault(task.request_stage_id, []).append(task)
    drawn: list[DiagramStage] = []
    for stage in stages:
        source = (
            policy_stages.get(stage.policy_stage_id) if stage.policy_stage_id else None
        )
        base = (
            policy_stage(source)
            if source is not None
            else DiagramStage(stage.stage_order, stage.name, stage.mode)
        )
        # The request's own copy of the stage is what ran; the people replace the rules.
        base.name, base.mode, base.mode_value = stage.name, stage.mode, stage.mode_value
        base.parallel_group = stage.parallel_group
        base.approver_rules, base.observer_rules = [], []
        base.status = stage.status
        base.current = request.status == "in_review" and stage.status in (
            "active",
            "resolving",
        )
        base.due_at = stage.due_at
        base.skip_reason = stage.skip_reason
        people = _people(by_stage.get(stage.id, []))
        base.approved_by = people["approved_by"]
        base.rejected_by = people["rejected_by"]
        base.abstained = people["abstained"]
        base.pending = people["pending"]
        drawn.append(base)
    subtitle = f"{request.policy_key} v{request.policy_version}, requested by {request.requester}"
    if request.outcome_reason:
        subtitle += f"; {request.outcome_reason}"
    return render_diagram(
        f"{request.artifact_type} {request.artifact_id}: {request.status}",
        drawn,
        subtitle=subtitle,
        now=now(),
    )


async def visible_request(
    session: AsyncSession, *, principal: Principal, request_id: uuid.UUID
) -> ApprovalRequest:
    """The request, if `principal` may see it; 404 `request_not_found` otherwise."""
    return await _visible_request(session, request_id, principal)


async def existing_request(
    session: AsyncSession, request_id: uuid.UUID
) -> ApprovalRequest:
    """The request whatever the principal (signed diagram links prove access themselves)."""
    request = await RequestRepository(session).get(request_id)
    if request is None:
        raise RequestNotFound(f"request {request_id} not found")
    return request
