"""`/v1/policies`: authoring, versioning, publishing and simulating approval policies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response, status

from countersign.config import Settings
from countersign.db import SessionDep
from countersign.directory.dependencies import ResolverDep
from countersign.identity.dependencies import AdminDep, ReaderDep
from countersign.kit.outbound import OutboundPolicy
from countersign.kit.pagination import (
    CursorQuery,
    LimitQuery,
    decode_cursor,
    set_next_page_headers,
)
from countersign.kit.problem import problem_responses
from countersign.kit.validation import VersionPath
from countersign.policies import replay
from countersign.policies import service as policy_service
from countersign.policies.diagram import (
    SVG_HEADERS,
    SVG_MEDIA_TYPE,
    render_policy_svg,
)
from countersign.policies.replay import ReplayIn, ReplayOut
from countersign.policies.schemas import (
    DiffOut,
    PolicyIn,
    PolicyOut,
    PolicyPatch,
    PolicyVersionOut,
    SimulateIn,
    SimulateOut,
)


def _outbound(request: Request) -> OutboundPolicy:
    policy: OutboundPolicy = request.app.state.outbound_policy
    return policy


OutboundDep = Annotated[OutboundPolicy, Depends(_outbound)]

router = APIRouter(prefix="/policies", tags=["policies"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PolicyOut,
    responses=problem_responses(403, 409, 422),
)
async def create_policy(
    body: PolicyIn, session: SessionDep, principal: AdminDep, outbound: OutboundDep
) -> PolicyOut:
    """Create a policy: version 1, as a draft."""
    policy = await policy_service.create_policy(
        session, data=body, actor=principal.id, outbound=outbound
    )
    return policy_service.to_policy_out(policy)


@router.get("", response_model=list[PolicyOut], responses=problem_responses(403, 422))
async def list_policies(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: ReaderDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> list[PolicyOut]:
    """List policies: the newest version of each key, ordered by key."""
    after_key = str(decode_cursor(cursor, size=1)[0]) if cursor else None
    page = await policy_service.list_policies(session, after_key=after_key, limit=limit)
    set_next_page_headers(request, response, page.next_cursor)
    return [policy_service.to_policy_out(p) for p in page.items]


@router.get(
    "/{policy_key}/versions",
    response_model=list[PolicyVersionOut],
    responses=problem_responses(403, 404),
)
async def list_policy_versions(
    policy_key: str, session: SessionDep, principal: ReaderDep
) -> list[PolicyVersionOut]:
    """List every version of a policy, newest first."""
    versions = await policy_service.list_versions(session, policy_key=policy_key)
    return [PolicyVersionOut.model_validate(v) for v in versions]


@router.get(
    "/{policy_key}/versions/{version}",
    response_model=PolicyOut,
    responses=problem_responses(403, 404),
)
async def get_policy_version(
    policy_key: str, version: VersionPath, session: SessionDep, principal: ReaderDep
) -> PolicyOut:
    """Get one version of a policy."""
    policy = await policy_service.get_version(
        session, policy_key=policy_key, version=version
    )
    return policy_service.to_policy_out(policy)


@router.put(
    "/{policy_key}",
    status_code=status.HTTP_201_CREATED,
    response_model=PolicyOut,
    responses=problem_responses(400, 403, 404, 422),
)
async def add_policy_version(
    policy_key: str,
    body: PolicyIn,
    session: SessionDep,
    principal: AdminDep,
    outbound: OutboundDep,
) -> PolicyOut:
    """Add a new draft version (latest + 1)."""
    policy = await policy_service.add_version(
        session, policy_key=policy_key, data=body, actor=principal.id, outbound=outbound
    )
    return policy_service.to_policy_out(policy)


@router.patch(
    "/{policy_key}/versions/{version}",
    response_model=PolicyOut,
    responses=problem_responses(400, 403, 404, 409, 422),
)
async def patch_policy_version(
    policy_key: str,
    version: VersionPath,
    body: PolicyPatch,
    session: SessionDep,
    principal: AdminDep,
    outbound: OutboundDep,
) -> PolicyOut:
    """Edit a draft. Fields left out keep their value; `stages`, when given, replaces all stages."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, mode="json")
    policy = await policy_service.patch_version(
        session,
        policy_key=policy_key,
        version=version,
        changes=changes,
        actor=principal.id,
        outbound=outbound,
    )
    return policy_service.to_policy_out(policy)


@router.post(
    "/{policy_key}/versions/{version}/activate",
    response_model=PolicyOut,
    responses=problem_responses(403, 404, 409, 422),
)
async def activate_policy_version(
    policy_key: str,
    version: VersionPath,
    session: SessionDep,
    principal: AdminDep,
    outbound: OutboundDep,
) -> PolicyOut:
    """Publish a version; the previously active one is archived. Archived versions can be re-activated."""
    policy = await policy_service.activate(
        session,
        policy_key=policy_key,
        version=version,
        actor=principal.id,
        outbound=outbound,
    )
    return policy_service.to_policy_out(policy)


@router.post(
    "/{policy_key}/versions/{version}/deactivate",
    response_model=PolicyOut,
    responses=problem_responses(403, 404, 409),
)
async def deactivate_policy_version(
    policy_key: str, version: VersionPath, session: SessionDep, principal: AdminDep
) -> PolicyOut:
    """Archive the active version."""
    policy = await policy_service.deactivate(
        session, policy_key=policy_key, version=version, actor=principal.id
    )
    return policy_service.to_policy_out(policy)


@router.post(
    "/{policy_key}/versions/{version}/simulate",
    response_model=SimulateOut,
    responses=problem_responses(403, 404, 422, 503),
)
async def simulate_policy_version(
    policy_key: str,
    version: VersionPath,
    session: SessionDep,
    principal: ReaderDep,
    resolver: ResolverDep,
    body: Annotated[SimulateIn | None, Body()] = None,
) -> SimulateOut:
    """Resolve every stage against a sample context. Writes nothing."""
    return await policy_service.simulate(
        session,
        policy_key=policy_key,
        version=version,
        body=body or SimulateIn(),
        resolver=resolver,
        principal_id=principal.id,
    )


@router.post(
    "/{policy_key}/versions/{version}/replay",
    response_model=ReplayOut,
    responses=problem_responses(403, 404, 422),
)
async def replay_policy_version(
    policy_key: str,
    version: VersionPath,
    request: Request,
    session: SessionDep,
    principal: ReaderDep,
    resolver: ResolverDep,
    body: Annotated[ReplayIn | None, Body()] = None,
) -> ReplayOut:
    """Run the contexts of the key's most recent requests through this version and through the
    version each was pinned to; list the requests whose routing, approvers, skips or outcome
    would change. Writes nothing. Stops early (`truncated`) when its time budget runs out."""
    settings: Settings = request.app.state.settings
    return await replay.replay(
        session,
        policy_key=policy_key,
        version=version,
        limit=(body or ReplayIn()).limit,
        resolver=resolver,
        budget_seconds=settings.replay_budget_seconds,
    )


@router.get(
    "/{policy_key}/versions/{a}/diff/{b}",
    response_model=DiffOut,
    responses=problem_responses(403, 404),
)
async def diff_policy_versions(
    policy_key: str,
    a: VersionPath,
    b: VersionPath,
    session: SessionDep,
    principal: ReaderDep,
) -> DiffOut:
    """What changed from version `a` to version `b`, as JSON pointers."""
    return DiffOut(
        changes=await policy_service.diff(session, policy_key=policy_key, a=a, b=b)
    )


@router.get(
    "/{policy_key}/versions/{version}/diagram.svg",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}},
        **problem_responses(403, 404),
    },
)
async def get_policy_diagram(
    policy_key: str, version: VersionPath, session: SessionDep, principal: ReaderDep
) -> Response:
    """The stages as an SVG picture: order, parallel groups, skip conditions, SLAs."""
    policy = await policy_service.get_version(
        session, policy_key=policy_key, version=version
    )
    svg = render_policy_svg(policy_service.to_policy_out(policy))
    return Response(svg, media_type=SVG_MEDIA_TYPE, headers=SVG_HEADERS)
