"""`/v1/requests`: create (idempotent), read, cancel, resubmit, timeline, diagram."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials

from countersign.config import Settings
from countersign.db import SessionDep
from countersign.directory.dependencies import ResolverDep
from countersign.errors import Unauthenticated
from countersign.identity.dependencies import (
    PrincipalDep,
    ReaderDep,
    bearer_scheme,
    get_principal,
)
from countersign.kit import idempotency
from countersign.kit.clock import now
from countersign.kit.limits import enforce_json_limit
from countersign.kit.pagination import (
    CursorQuery,
    LimitQuery,
    decode_keyset,
    set_next_page_headers,
)
from countersign.kit.problem import problem_responses
from countersign.kit.validation import UtcDatetime
from countersign.policies.diagram import SVG_HEADERS, SVG_MEDIA_TYPE
from countersign.requests import diagram_links, evidence
from countersign.requests import service as request_service
from countersign.requests.evidence import EvidenceOut
from countersign.requests.repository import RequestRepository
from countersign.requests.schemas import (
    CancelIn,
    ChainVerification,
    DiagramLinkOut,
    EventOut,
    RequestCreate,
    RequestCreated,
    RequestOut,
    RequestStatus,
    ResubmitIn,
    StageAdminOut,
    StageStatus,
)

router = APIRouter(prefix="/requests", tags=["requests"])

JSON = "application/json"


def _bound_context(request: Request, **members: dict[str, Any]) -> None:
    """413 for a `context` or `metadata` over COUNTERSIGN_MAX_CONTEXT_BYTES, before any write."""
    limit = request.app.state.settings.max_context_bytes
    for name, value in members.items():
        enforce_json_limit(value, limit=limit, pointer=f"/{name}")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RequestCreated,
    responses=problem_responses(404, 409, 413, 422),
)
async def create_request(
    request: Request,
    body: RequestCreate,
    session: SessionDep,
    principal: PrincipalDep,
    resolver: ResolverDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Create an approval request. With `Idempotency-Key`, a retry replays the first response."""
    _bound_context(request, context=body.context, metadata=body.metadata)
    key = (
        idempotency.parse_key(idempotency_key) if idempotency_key is not None else None
    )
    answer = await request_service.create_idempotent(
        session,
        principal=principal,
        data=body,
        resolver=resolver,
        outbound=request.app.state.outbound_policy,
        key=key,
        fingerprint=idempotency.fingerprint(await request.body()),
    )
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


@router.get("", response_model=list[RequestOut], responses=problem_responses(422))
async def list_requests(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    artifact_type: str | None = None,
    artifact_id: str | None = None,
    status: RequestStatus | None = None,
    policy_key: str | None = None,
    requester: str | None = None,
    created_after: UtcDatetime | None = None,
    created_before: UtcDatetime | None = None,
    stuck: Annotated[
        bool | None,
        Query(
            description="true: only requests with a stage in `resolving` or an exhausted "
            "delivery (false: only the others)"
        ),
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> list[RequestOut]:
    """List the requests the caller may see, newest first."""
    before = None
    if cursor:
        before = decode_keyset(cursor)
    page = await request_service.list_requests(
        session,
        principal=principal,
        artifact_type=artifact_type,
        artifact_id=artifact_id,
        status=status,
        policy_key=policy_key,
        requester=requester,
        created_after=created_after,
        created_before=created_before,
        before=before,
        limit=limit,
        stuck=stuck,
    )
    set_next_page_headers(request, response, page.next_cursor)
    return await request_service.request_outs(session, page.items)


@router.get(
    "/{request_id}", response_model=RequestOut, responses=problem_responses(404)
)
async def get_request(
    request_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> RequestOut:
    """Get a request with per-stage status and counts."""
    return await request_service.get_request(
        session, principal=principal, request_id=request_id
    )


@router.post(
    "/{request_id}/cancel",
    response_model=RequestOut,
    responses=problem_responses(403, 404, 409),
)
async def cancel_request(
    request_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    resolver: ResolverDep,
    body: Annotated[CancelIn | None, Body()] = None,
) -> RequestOut:
    """Cancel a live request (admin, the creating caller or the requester)."""
    cancelled = await request_service.cancel_request(
        session,
        principal=principal,
        request_id=request_id,
        reason=(body or CancelIn()).reason,
        resolver=resolver,
    )
    return await request_service.request_out(session, cancelled)


@router.post(
    "/{request_id}/resubmit",
    response_model=RequestOut,
    responses=problem_responses(403, 404, 409, 413),
)
async def resubmit_request(
    request: Request,
    request_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    resolver: ResolverDep,
    body: Annotated[ResubmitIn | None, Body()] = None,
) -> RequestOut:
    """Restart a request sent back with `request_changes`, optionally with a new context."""
    data = body or ResubmitIn()
    if data.context is not None:
        _bound_context(request, context=data.context)
    resubmitted, _ = await request_service.resubmit_request(
        session,
        principal=principal,
        request_id=request_id,
        context=data.context,
        comment=data.comment,
        resolver=resolver,
    )
    return await request_service.request_out(session, resubmitted)


@router.get(
    "/{request_id}/events",
    response_model=list[EventOut],
    responses=problem_responses(404),
)
async def list_request_events(
    request_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> list[EventOut]:
    """The request's timeline, ascending by sequence."""
    events = await request_service.list_events(
        session, principal=principal, request_id=request_id
    )
    return [EventOut.model_validate(e) for e in events]


@router.get(
    "/{request_id}/events/verify",
    response_model=ChainVerification,
    responses=problem_responses(404),
)
async def verify_request_events(
    request_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> ChainVerification:
    """Recompute the timeline's hash chain."""
    return await request_service.verify_events(
        session, principal=principal, request_id=request_id
    )


def _link_key(request: Request) -> bytes:
    settings: Settings = request.app.state.settings
    return diagram_links.link_key(settings.secret_key.get_secret_value())


@router.get(
    "/{request_id}/evidence",
    response_model=EvidenceOut,
    responses={
        200: {
            "description": "the evidence bundle, as a download",
            "headers": {
                "Content-Disposition": {
                    "description": 'attachment; filename="evidence-<id>.json"',
                    "schema": {"type": "string"},
                }
            },
        },
        **problem_responses(404),
    },
)
async def get_request_evidence(
    request_id: uuid.UUID,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
) -> EvidenceOut:
    """One JSON document for auditors: the request, its tasks and decisions, its events with
    their hashes and the chain verification, the pinned policy version and its diagram."""
    shown = await request_service.visible_request(
        session, principal=principal, request_id=request_id
    )
    response.headers["Content-Disposition"] = (
        f'attachment; filename="evidence-{request_id}.json"'
    )
    response.headers["Cache-Control"] = "no-store"
    return await evidence.build(session, shown, principal=principal)


@router.get(
    "/{request_id}/diagram.svg",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}},
        **problem_responses(403, 404),
    },
)
async def get_request_diagram(
    request: Request,
    request_id: uuid.UUID,
    session: SessionDep,
    credentials: Annotated[
        HTTPAuthorizationCredentials | None, Depends(bearer_scheme)
    ] = None,
    exp: Annotated[
        int | None,
        Query(ge=0, le=10**11, description="signed link: expiry, unix seconds"),
    ] = None,
    sig: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="signed link: signature"),
    ] = None,
) -> Response:
    """The request's stages as SVG: coloured by status, the current stage highlighted, who
    approved, who is pending, when each stage is due. With a bearer token (someone who can see
    the request), or without one through a signed link (`exp` and `sig`, see `diagram-link`):
    401 when the link has expired, 403 when its signature is not valid."""
    if exp is not None or sig is not None:
        if exp is None or sig is None:
            raise Unauthenticated("a diagram link carries both exp and sig")
        diagram_links.check(_link_key(request), request_id, exp, sig, now())
        shown = await request_service.existing_request(session, request_id)
    else:
        principal = await get_principal(request, credentials)
        shown = await request_service.visible_request(
            session, principal=principal, request_id=request_id
        )
    svg = await request_service.request_diagram_svg(session, shown)
    return Response(svg, media_type=SVG_MEDIA_TYPE, headers=SVG_HEADERS)


@router.post(
    "/{request_id}/diagram-link",
    response_model=DiagramLinkOut,
    responses=problem_responses(404),
)
async def create_diagram_link(
    request: Request,
    request_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
) -> DiagramLinkOut:
    """A signed, short-lived URL of the request's SVG that needs no token (for an `<img>` in a
    caller UI). Anyone who can see the request may ask; the link shows that picture only."""
    await request_service.visible_request(
        session, principal=principal, request_id=request_id
    )
    settings: Settings = request.app.state.settings
    exp = int(now().timestamp()) + settings.diagram_link_seconds
    sig = diagram_links.sign(_link_key(request), request_id, exp)
    base = str(request.base_url).rstrip("/")
    return DiagramLinkOut(
        url=f"{base}/v1/requests/{request_id}/diagram.svg?exp={exp}&sig={sig}",
        expires_at=datetime.fromtimestamp(exp, UTC),
    )


admin_router = APIRouter(prefix="/admin/stages", tags=["requests"])


@admin_router.get(
    "", response_model=list[StageAdminOut], responses=problem_responses(403, 422)
)
async def list_stages(
    session: SessionDep,
    principal: ReaderDep,
    status: StageStatus = StageStatus.RESOLVING,
    limit: LimitQuery = 50,
) -> list[StageAdminOut]:
    """Stages by status, oldest change first: by default those waiting for approver resolution."""
    rows = await RequestRepository(session).list_stages_by_status(status, limit=limit)
    return [StageAdminOut.model_validate(s) for s in rows]
