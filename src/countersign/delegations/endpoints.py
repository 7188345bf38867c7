"""`/v1/delegations`: out-of-office windows."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from countersign.db import SessionDep
from countersign.delegations import service as delegation_service
from countersign.delegations.schemas import DelegationCreate, DelegationOut
from countersign.identity.dependencies import PrincipalDep
from countersign.kit.pagination import (
    CursorQuery,
    LimitQuery,
    decode_keyset,
    set_next_page_headers,
)
from countersign.kit.problem import problem_responses

router = APIRouter(prefix="/delegations", tags=["delegations"])


@router.get("", response_model=list[DelegationOut], responses=problem_responses(422))
async def list_delegations(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    user_id: str | None = None,
    active: bool = False,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> list[DelegationOut]:
    """Delegations you made or received (admins and viewers: everyone's), newest window first.

    `active=true` keeps the windows open right now; `user_id` keeps one delegator's.
    """
    after = decode_keyset(cursor) if cursor else None
    page = await delegation_service.list_delegations(
        session,
        principal=principal,
        user_id=user_id,
        active_only=active,
        after=after,
        limit=limit,
    )
    set_next_page_headers(request, response, page.next_cursor)
    return [DelegationOut.model_validate(d) for d in page.items]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DelegationOut,
    responses=problem_responses(403, 422),
)
async def create_delegation(
    body: DelegationCreate, session: SessionDep, principal: PrincipalDep
) -> DelegationOut:
    """Delegate your tasks to someone for a window (admins: anyone's)."""
    delegation = await delegation_service.create_delegation(
        session, principal=principal, data=body
    )
    return DelegationOut.model_validate(delegation)


@router.delete(
    "/{delegation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(403, 404),
)
async def delete_delegation(
    delegation_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> Response:
    """End a delegation (your own; admins: anyone's)."""
    await delegation_service.delete_delegation(
        session, principal=principal, delegation_id=delegation_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
