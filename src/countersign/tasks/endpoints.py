"""`/v1/tasks`: the approver's inbox, claims, decisions (single and bulk), reassignment."""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse

from countersign.db import SessionDep
from countersign.directory.dependencies import ResolverDep
from countersign.errors import AppError, FieldProblem, Forbidden, ValidationFailed
from countersign.identity.dependencies import AdminDep, PrincipalDep
from countersign.identity.principal import Principal
from countersign.kit.pagination import decode_keyset
from countersign.kit.problem import problem_body, problem_responses
from countersign.kit.validation import PageQuery
from countersign.requests.repository import RequestRepository
from countersign.tasks import service as task_service
from countersign.tasks.repository import TASK_STATUSES, TaskFilter, TaskRepository
from countersign.tasks.schemas import (
    BulkDecisionResult,
    BulkDecisionsIn,
    BulkDecisionsOut,
    DecisionIn,
    DecisionOut,
    ReassignIn,
    TaskOut,
    TaskPage,
    TaskStats,
)

router = APIRouter(prefix="/tasks", tags=["tasks"])


def _is_awe_alias(request: Request) -> bool:
    return request.url.path.startswith("/v1/awe/")


def _statuses(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    statuses = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in statuses if s not in TASK_STATUSES]
    if unknown:
        raise ValidationFailed(
            f"unknown task status {unknown[0]!r}",
            [FieldProblem("/status", f"must be one of {', '.join(TASK_STATUSES)}")],
        )
    return statuses


async def _scope(
    request: Request,
    session: SessionDep,
    principal: Principal,
    assignee: str,
    request_id: uuid.UUID | None,
    statuses: tuple[str, ...],
) -> TaskFilter:
    """Who may list whose tasks (see "Tasks" in the contract)."""
    if assignee == "me" or assignee == principal.id:
        return TaskFilter(assignee=principal.id)
    if principal.can_read_everything:
        return TaskFilter(assignee=None if assignee == "*" else assignee)
    if assignee == "*" and request_id is not None:
        visible = await RequestRepository(session).get_visible(request_id, principal)
        if visible is None:
            return TaskFilter(assignee=principal.id, request_id=request_id)
        if visible.source_service == principal.id:
            return TaskFilter(assignee=None)
        # Who else is still pending stays private: completed tasks plus the principal's own.
        return TaskFilter(
            assignee=None, own_plus_completed=principal.id, own_azp=principal.client
        )
    if assignee == "*" and _is_awe_alias(request) and not statuses:
        # AWE clients read "everyone's" inbox this way; AWE answered with completed tasks + own.
        return TaskFilter(
            assignee=None, own_plus_completed=principal.id, own_azp=principal.client
        )
    raise Forbidden("listing other users' tasks needs the admin or viewer role")


@router.get("", response_model=TaskPage, responses=problem_responses(403, 422))
async def list_tasks(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    assignee: str = "me",
    request_id: uuid.UUID | None = None,
    status: Annotated[
        str | None, Query(description="One status or a comma-separated list.")
    ] = None,
    artifact_type: str | None = None,
    policy_key: str | None = None,
    search_text: Annotated[str | None, Query(max_length=200)] = None,
    page: PageQuery = None,
    page_size: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: str | None = None,
) -> TaskPage:
    """The inbox: AWE's paged envelope (`page`), or keyset paging with `cursor`."""
    statuses = _statuses(status)
    scope = await _scope(request, session, principal, assignee, request_id, statuses)
    f = TaskFilter(
        assignee=scope.assignee,
        own_plus_completed=scope.own_plus_completed,
        own_azp=scope.own_azp,
        request_id=request_id if request_id is not None else scope.request_id,
        statuses=statuses,
        artifact_type=artifact_type,
        policy_key=policy_key,
        search_text=search_text,
    )
    repository = TaskRepository(session)
    if cursor is not None:
        after = decode_keyset(cursor)
        rows = await repository.list_page(f, offset=None, after=after, limit=page_size)
        total = None
        current_page = None
    else:
        current_page = page or 1
        rows = await repository.list_page(
            f, offset=(current_page - 1) * page_size, after=None, limit=page_size
        )
        total = await repository.count(f)
    items = [_task_out(task, context) for task, context in rows.items]
    return TaskPage(
        items=items,
        total=total,
        page=current_page,
        page_size=page_size,
        pages=math.ceil(total / page_size) if total is not None else None,
        next_cursor=rows.next_cursor,
    )


def _task_out(task: Any, context: dict[str, Any]) -> TaskOut:
    fields = {
        name: getattr(task, name) for name in TaskOut.model_fields if name != "context"
    }
    return TaskOut.model_validate({**fields, "context": context})


@router.get("/stats", response_model=TaskStats, responses=problem_responses(422))
async def get_task_stats(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    status: Annotated[
        str | None, Query(description="One status or a comma-separated list.")
    ] = None,
) -> TaskStats:
    """Counts of the caller's own tasks, by artifact type and by status."""
    repository = TaskRepository(session)
    rows = await repository.stats(principal.id, _statuses(status))
    by_type: dict[str, int] = {}
    by_status: dict[str, int] = {}
    for artifact_type, task_status, n in rows:
        by_type[artifact_type] = by_type.get(artifact_type, 0) + n
        by_status[task_status] = by_status.get(task_status, 0) + n
    stats = TaskStats(
        total=sum(by_status.values()), by_artifact_type=by_type, by_status=by_status
    )
    if _is_awe_alias(request):
        # AWE's registry UI reads `<name>_count`, name = the part after the last "." of the type,
        # for every active policy's type, and AWE's own two fields whatever policies exist.
        names = set(AWE_FIXED_COUNTS) | {
            _count_name(t) for t in await repository.active_artifact_types()
        }
        for name in sorted(names):
            count = sum(n for t, n in by_type.items() if _count_name(t) == name)
            setattr(stats, f"{name}_count", count)
    return stats


# The counts AWE's stats always carry (the OpenG2P registry UI reads both unconditionally).
AWE_FIXED_COUNTS = ("change_request", "intake_form")


def _count_name(artifact_type: str) -> str:
    return artifact_type.rsplit(".", 1)[-1]


@router.post(
    "/{task_id}/claim",
    response_model=TaskOut,
    responses=problem_responses(403, 404, 409),
)
async def claim_task(
    task_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> TaskOut:
    """Claim an open task."""
    task, approval_request = await task_service.claim(
        session, principal=principal, task_id=task_id
    )
    return _task_out(task, approval_request.context)


@router.post(
    "/decisions",
    status_code=207,
    response_model=BulkDecisionsOut,
    responses=problem_responses(422),
)
async def decide_tasks(
    request: Request,
    body: BulkDecisionsIn,
    session: SessionDep,
    principal: PrincipalDep,
    resolver: ResolverDep,
) -> JSONResponse:
    """Decide up to 100 tasks; each item succeeds or fails on its own (207 Multi-Status)."""
    outcomes = await task_service.decide_many(
        session,
        principal=principal,
        items=[
            task_service.BulkItem(
                item.task_id,
                DecisionIn(
                    action=item.action,
                    comment=item.comment,
                    attachments_ref=item.attachments_ref,
                ),
            )
            for item in body.decisions
        ],
        resolver=resolver,
    )
    results: list[BulkDecisionResult] = []
    for item, outcome in zip(body.decisions, outcomes, strict=True):
        if isinstance(outcome, AppError):
            problem = problem_body(
                outcome, instance=f"{request.url.path}#{item.task_id}"
            )
            results.append(
                BulkDecisionResult(
                    task_id=item.task_id, status=outcome.status_code, problem=problem
                )
            )
        else:
            results.append(
                BulkDecisionResult(task_id=item.task_id, status=201, decision=outcome)
            )
    content = BulkDecisionsOut(results=results).model_dump(mode="json")
    return JSONResponse(content, status_code=207)


@router.post(
    "/{task_id}/decision",
    status_code=status.HTTP_201_CREATED,
    response_model=DecisionOut,
    responses=problem_responses(403, 404, 409),
)
async def decide_task(
    task_id: uuid.UUID,
    body: DecisionIn,
    session: SessionDep,
    principal: PrincipalDep,
    resolver: ResolverDep,
) -> DecisionOut:
    """Approve, reject, abstain or request changes."""
    return await task_service.decide(
        session, principal=principal, task_id=task_id, data=body, resolver=resolver
    )


@router.post(
    "/{task_id}/reassign",
    response_model=TaskOut,
    responses=problem_responses(403, 404, 409),
)
async def reassign_task(
    task_id: uuid.UUID,
    body: ReassignIn,
    session: SessionDep,
    principal: AdminDep,
    resolver: ResolverDep,
) -> TaskOut:
    """Admin: hand an open task to someone else; the old task stops counting."""
    task, approval_request = await task_service.reassign(
        session,
        principal=principal,
        task_id=task_id,
        new_assignee=body.new_assignee,
        reason=body.reason,
        resolver=resolver,
    )
    return _task_out(task, approval_request.context)
