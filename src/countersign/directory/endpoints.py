"""Directory pickers of the policy editor: `GET /v1/admin/directory/{users,roles,groups,clients}`.

Admins and viewers only. They read the configured directory (Keycloak or the directory file) live
and answer 503 `directory_unavailable` when it cannot be reached. AWE's paths
`/v1/awe/admin/keycloak/{users,roles,groups,clients}` are served by the same handlers (hidden from
the OpenAPI document).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from countersign.directory.dependencies import DirectoryDep
from countersign.identity.dependencies import ReaderDep
from countersign.kit.problem import problem_responses

router = APIRouter(prefix="/admin", tags=["directory"])

SearchQuery = Annotated[
    str | None,
    Query(max_length=200, description="Only entries containing this text"),
]
PICKER_PROBLEMS = problem_responses(403, 503)


class DirectoryUserOut(BaseModel):
    user_id: str
    username: str
    email: str | None = None
    name: str | None = None


class DirectoryRoleOut(BaseModel):
    name: str
    description: str | None = None
    client: str | None = None


class DirectoryGroupOut(BaseModel):
    path: str
    name: str


class DirectoryClientOut(BaseModel):
    client_id: str


@router.get(
    "/directory/users",
    response_model=list[DirectoryUserOut],
    responses=PICKER_PROBLEMS,
)
@router.get(
    "/keycloak/users", response_model=list[DirectoryUserOut], include_in_schema=False
)
async def list_directory_users(
    directory: DirectoryDep, principal: ReaderDep, q: SearchQuery = None
) -> list[DirectoryUserOut]:
    """Enabled users whose username, email or name contains `q`; `user_id` is the username."""
    users = await directory.search_users(q or None)
    return [
        DirectoryUserOut(
            user_id=u.user_id, username=u.username, email=u.email, name=u.name
        )
        for u in users
    ]


@router.get(
    "/directory/roles",
    response_model=list[DirectoryRoleOut],
    responses=PICKER_PROBLEMS,
)
@router.get(
    "/keycloak/roles", response_model=list[DirectoryRoleOut], include_in_schema=False
)
async def list_directory_roles(
    directory: DirectoryDep,
    principal: ReaderDep,
    client: Annotated[
        str | None,
        Query(
            max_length=255,
            description="A client id: its client roles instead of realm roles",
        ),
    ] = None,
    q: SearchQuery = None,
) -> list[DirectoryRoleOut]:
    """Realm roles, or the roles of one client, whose name contains `q`."""
    roles = await directory.list_roles(client or None, q or None)
    return [
        DirectoryRoleOut(name=r.name, description=r.description, client=r.client)
        for r in roles
    ]


@router.get(
    "/directory/groups",
    response_model=list[DirectoryGroupOut],
    responses=PICKER_PROBLEMS,
)
@router.get(
    "/keycloak/groups", response_model=list[DirectoryGroupOut], include_in_schema=False
)
async def list_directory_groups(
    directory: DirectoryDep, principal: ReaderDep, q: SearchQuery = None
) -> list[DirectoryGroupOut]:
    """Groups (subgroups included, as paths) whose path contains `q`."""
    groups = await directory.list_groups(q or None)
    return [DirectoryGroupOut(path=g.path, name=g.name) for g in groups]


@router.get(
    "/directory/clients",
    response_model=list[DirectoryClientOut],
    responses=PICKER_PROBLEMS,
)
@router.get(
    "/keycloak/clients",
    response_model=list[DirectoryClientOut],
    include_in_schema=False,
)
async def list_directory_clients(
    directory: DirectoryDep, principal: ReaderDep
) -> list[DirectoryClientOut]:
    """Client ids, for client-role rules."""
    return [DirectoryClientOut(client_id=c) for c in await directory.list_clients()]
