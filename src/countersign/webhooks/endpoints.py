"""`/v1/admin/deliveries` and `/v1/admin/callers/{caller}/secrets`: delivery admin and signing secrets."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status

from countersign.db import SessionDep
from countersign.identity.dependencies import AdminDep, ReaderDep
from countersign.kit.pagination import (
    CursorQuery,
    LimitQuery,
    decode_keyset,
    set_next_page_headers,
)
from countersign.kit.problem import problem_responses
from countersign.webhooks import service as webhook_service
from countersign.webhooks.dependencies import SecretBoxDep
from countersign.webhooks.repository import DeliveryFilter
from countersign.webhooks.schemas import (
    AttemptOut,
    DeliveryOut,
    DeliveryStatus,
    RecoverIn,
    RecoverOut,
    RevokedOut,
    RotateIn,
    SecretCreate,
    SecretCreated,
    SecretOut,
)

router = APIRouter(prefix="/admin", tags=["webhooks"])


@router.get(
    "/deliveries",
    response_model=list[DeliveryOut],
    responses=problem_responses(403, 422),
)
async def list_deliveries(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: ReaderDep,
    status: DeliveryStatus | None = None,
    request_id: uuid.UUID | None = None,
    event_type: str | None = None,
    url: Annotated[str | None, Query(max_length=2000)] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> list[DeliveryOut]:
    """List webhook deliveries, newest first. `url` matches the delivery URL exactly."""
    page = await webhook_service.list_deliveries(
        session,
        f=DeliveryFilter(request_id=request_id, event_type=event_type, url=url),
        status=status,
        before=decode_keyset(cursor) if cursor else None,
        limit=limit,
    )
    set_next_page_headers(request, response, page.next_cursor)
    return [DeliveryOut.model_validate(d) for d in page.items]


@router.get(
    "/deliveries/{delivery_id}/attempts",
    response_model=list[AttemptOut],
    responses=problem_responses(403, 404),
)
async def list_delivery_attempts(
    delivery_id: uuid.UUID, session: SessionDep, principal: ReaderDep
) -> list[AttemptOut]:
    """Every attempt of one delivery, oldest first."""
    attempts = await webhook_service.list_delivery_attempts(
        session, delivery_id=delivery_id
    )
    return [AttemptOut.model_validate(a) for a in attempts]


@router.post(
    "/deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    responses=problem_responses(403, 404, 409),
)
async def retry_delivery(
    delivery_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> DeliveryOut:
    """Send a delivery again from attempt 0 (recorded as manual). 409 if already delivered."""
    delivery = await webhook_service.retry_delivery(
        session, delivery_id=delivery_id, actor=principal.id
    )
    return DeliveryOut.model_validate(delivery)


@router.post(
    "/deliveries/recover",
    response_model=RecoverOut,
    responses=problem_responses(403, 422),
)
async def recover_deliveries(
    body: RecoverIn, session: SessionDep, principal: AdminDep
) -> RecoverOut:
    """Re-queue every exhausted delivery created in [since, until) that matches the optional list
    filters (`request_id`, `event_type`, `url`): the admin UI's "Retry all matching"."""
    requeued = await webhook_service.recover_deliveries(
        session,
        f=DeliveryFilter(
            request_id=body.request_id, event_type=body.event_type, url=body.url
        ),
        since=body.since,
        until=body.until,
        actor=principal.id,
    )
    return RecoverOut(requeued=requeued)


@router.post(
    "/callers/{caller}/secrets",
    status_code=status.HTTP_201_CREATED,
    response_model=SecretCreated,
    responses=problem_responses(403, 422),
)
async def create_caller_secret(
    caller: str,
    session: SessionDep,
    principal: AdminDep,
    box: SecretBoxDep,
    body: Annotated[SecretCreate | None, Body()] = None,
) -> SecretCreated:
    """Create (generate or import) a signing secret for a caller. The value is shown only here."""
    data = body or SecretCreate()
    secret, plain = await webhook_service.create_secret(
        session,
        box,
        caller=caller,
        value=data.secret,
        subscribe_decisions=data.subscribe_decisions,
        actor=principal.id,
    )
    return SecretCreated(
        id=secret.id,
        caller=caller,
        secret=plain,
        status="active",
        created_at=secret.created_at,
    )


@router.get(
    "/callers/{caller}/secrets",
    response_model=list[SecretOut],
    responses=problem_responses(403),
)
async def list_caller_secrets(
    caller: str, session: SessionDep, principal: AdminDep
) -> list[SecretOut]:
    """A caller's secrets, newest first, never their values."""
    return [
        SecretOut.model_validate(s)
        for s in await webhook_service.list_secrets(session, caller=caller)
    ]


@router.post(
    "/secrets/{secret_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    response_model=SecretCreated,
    responses=problem_responses(403, 404, 409),
)
async def rotate_secret(
    secret_id: uuid.UUID,
    session: SessionDep,
    principal: AdminDep,
    box: SecretBoxDep,
    body: Annotated[RotateIn | None, Body()] = None,
) -> SecretCreated:
    """Replace a secret; the old one keeps signing alongside the new one until the grace period ends."""
    new, plain = await webhook_service.rotate_secret(
        session,
        box,
        secret_id=secret_id,
        grace_hours=(body or RotateIn()).grace_hours,
        actor=principal.id,
    )
    return SecretCreated(
        id=new.id,
        caller=new.caller,
        secret=plain,
        status="active",
        created_at=new.created_at,
    )


@router.post(
    "/secrets/{secret_id}/revoke",
    response_model=RevokedOut,
    responses=problem_responses(403, 404),
)
async def revoke_secret(
    secret_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> RevokedOut:
    """Revoke a secret: it never signs again."""
    secret = await webhook_service.revoke_secret(
        session, secret_id=secret_id, actor=principal.id
    )
    return RevokedOut(
        id=secret.id,
        caller=secret.caller,
        status="revoked",
        revoked_at=secret.revoked_at,
    )
