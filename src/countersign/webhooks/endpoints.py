"""`/v1/admin/deliveries` and `/v1/admin/callers/{caller}/secrets`: delivery admin and signing secrets."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status
from sqlalchemy import Select, select, tuple_

from countersign.audit import service as audit_service
from countersign.db import SessionDep
from countersign.errors import InvalidState, TaskNotFound
from countersign.identity.dependencies import AdminDep, ReaderDep
from countersign.kit.pagination import (
    CursorQuery,
    LimitQuery,
    created_keyset,
    decode_keyset,
    scalars_page,
    set_next_page_headers,
)
from countersign.kit.problem import problem_responses
from countersign.models import WebhookAttempt, WebhookDelivery
from countersign.webhooks import delivery as delivery_service
from countersign.webhooks import secrets as secret_service
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
from countersign.worker.runtime import Runtime

router = APIRouter(prefix="/admin", tags=["webhooks"])


def _box(request: Request) -> secret_service.SecretBox:
    runtime: Runtime = request.app.state.runtime
    return runtime.box


def _matching(
    statement: Select[WebhookDelivery],
    *,
    request_id: uuid.UUID | None,
    event_type: str | None,
    url: str | None,
) -> Select[WebhookDelivery]:
    """The list filters, shared by the list and by recover ("retry all matching")."""
    if request_id is not None:
        statement = statement.where(WebhookDelivery.request_id == request_id)
    if event_type is not None:
        statement = statement.where(WebhookDelivery.event_type == event_type)
    if url is not None:
        statement = statement.where(WebhookDelivery.url == url)
    return statement


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
    statement = select(WebhookDelivery).order_by(
        WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()
    )
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    statement = _matching(
        statement, request_id=request_id, event_type=event_type, url=url
    )
    if cursor:
        statement = statement.where(
            tuple_(WebhookDelivery.created_at, WebhookDelivery.id)
            < decode_keyset(cursor)
        )
    page = await scalars_page(session, statement, limit=limit, cursor_of=created_keyset)
    set_next_page_headers(request, response, page.next_cursor)
    return [DeliveryOut.model_validate(d) for d in page.items]


async def _delivery(session: SessionDep, delivery_id: uuid.UUID) -> WebhookDelivery:
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise TaskNotFound(f"delivery {delivery_id} not found")
    return delivery


@router.get(
    "/deliveries/{delivery_id}/attempts",
    response_model=list[AttemptOut],
    responses=problem_responses(403, 404),
)
async def list_delivery_attempts(
    delivery_id: uuid.UUID, session: SessionDep, principal: ReaderDep
) -> list[AttemptOut]:
    """Every attempt of one delivery, oldest first."""
    await _delivery(session, delivery_id)
    statement = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.started_at, WebhookAttempt.attempt)
    )
    return [
        AttemptOut.model_validate(a)
        for a in (await session.execute(statement)).scalars().all()
    ]


@router.post(
    "/deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    responses=problem_responses(403, 404, 409),
)
async def retry_delivery(
    delivery_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> DeliveryOut:
    """Send a delivery again from attempt 0 (recorded as manual). 409 if already delivered."""
    delivery = await _delivery(session, delivery_id)
    if delivery.status == "delivered":
        raise InvalidState(f"delivery {delivery_id} was delivered")
    before = delivery.status
    delivery_service.reset_for_retry(delivery)
    await session.flush()
    await audit_service.record(
        session,
        actor=principal.id,
        action="delivery.retry",
        resource_type="webhook_delivery",
        resource_id=str(delivery.id),
        before={"status": before},
        after={"status": delivery.status},
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
    statement = _matching(
        select(WebhookDelivery).where(
            WebhookDelivery.status == "exhausted",
            WebhookDelivery.created_at >= body.since,
            WebhookDelivery.created_at < body.until,
        ),
        request_id=body.request_id,
        event_type=body.event_type,
        url=body.url,
    )
    deliveries = (await session.execute(statement.with_for_update())).scalars().all()
    for delivery in deliveries:
        delivery_service.reset_for_retry(delivery)
    await audit_service.record(
        session,
        actor=principal.id,
        action="delivery.recover",
        resource_type="webhook_delivery",
        resource_id=f"{body.since.isoformat()}..{body.until.isoformat()}",
        after={
            "requeued": len(deliveries),
            "ids": [str(d.id) for d in deliveries],
            "filters": body.model_dump(
                mode="json", include={"request_id", "event_type", "url"}
            ),
        },
    )
    return RecoverOut(requeued=len(deliveries))


@router.post(
    "/callers/{caller}/secrets",
    status_code=status.HTTP_201_CREATED,
    response_model=SecretCreated,
    responses=problem_responses(403, 422),
)
async def create_caller_secret(
    caller: str,
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    body: Annotated[SecretCreate | None, Body()] = None,
) -> SecretCreated:
    """Create (generate or import) a signing secret for a caller. The value is shown only here."""
    data = body or SecretCreate()
    secret, plain = await secret_service.create_secret(
        session,
        _box(request),
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
        for s in await secret_service.list_secrets(session, caller=caller)
    ]


@router.post(
    "/secrets/{secret_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    response_model=SecretCreated,
    responses=problem_responses(403, 404, 409),
)
async def rotate_secret(
    secret_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: AdminDep,
    body: Annotated[RotateIn | None, Body()] = None,
) -> SecretCreated:
    """Replace a secret; the old one keeps signing alongside the new one until the grace period ends."""
    new, plain = await secret_service.rotate_secret(
        session,
        _box(request),
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
    secret = await secret_service.revoke_secret(
        session, secret_id=secret_id, actor=principal.id
    )
    return RevokedOut(
        id=secret.id,
        caller=secret.caller,
        status="revoked",
        revoked_at=secret.revoked_at,
    )
