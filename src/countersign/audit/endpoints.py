"""`GET /v1/admin/audit`: every admin write with before/after snapshots."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from countersign.audit.repository import AuditRepository
from countersign.audit.schemas import AuditEntryOut
from countersign.db import SessionDep
from countersign.identity.dependencies import ReaderDep
from countersign.kit.pagination import (
    CursorQuery,
    LimitQuery,
    decode_keyset,
    set_next_page_headers,
)
from countersign.kit.problem import problem_responses
from countersign.kit.validation import UtcDatetime

router = APIRouter(prefix="/admin/audit", tags=["audit"])


@router.get(
    "", response_model=list[AuditEntryOut], responses=problem_responses(403, 422)
)
async def list_audit_entries(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: ReaderDep,
    actor: str | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    since: UtcDatetime | None = None,
    until: UtcDatetime | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> list[AuditEntryOut]:
    """List audit entries, newest first."""
    before = None
    if cursor:
        before = decode_keyset(cursor)
    page = await AuditRepository(session).list_entries(
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        since=since,
        until=until,
        before=before,
        limit=limit,
    )
    set_next_page_headers(request, response, page.next_cursor)
    return [AuditEntryOut.model_validate(e) for e in page.items]
