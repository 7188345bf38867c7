"""Webhook admin commands and queries: deliveries (list, attempts, retry, recover) and callers'
signing secrets (create, list, rotate, revoke). Load (repository) → decide → persist (flush) → audit.

Sending is `webhooks.delivery`; writing outbox rows is `webhooks.outbox`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from countersign.audit import service as audit_service
from countersign.errors import InvalidState, TaskNotFound
from countersign.kit.clock import now
from countersign.kit.pagination import Page
from countersign.models import CallerSecret, WebhookAttempt, WebhookDelivery
from countersign.webhooks import delivery as delivery_service
from countersign.webhooks.repository import (
    CallerSecretRepository,
    DeliveryFilter,
    DeliveryRepository,
)
from countersign.webhooks.secrets import SecretBox
from countersign.webhooks.signing import generate_secret


async def list_deliveries(
    session: AsyncSession,
    *,
    f: DeliveryFilter,
    status: str | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Page[WebhookDelivery]:
    """Webhook deliveries, newest first."""
    return await DeliveryRepository(session).list_page(
        f, status=status, before=before, limit=limit
    )


async def _delivery(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery:
    delivery = await DeliveryRepository(session).get_by_id(delivery_id)
    if delivery is None:
        raise TaskNotFound(f"delivery {delivery_id} not found")
    return delivery


async def list_delivery_attempts(
    session: AsyncSession, *, delivery_id: uuid.UUID
) -> Sequence[WebhookAttempt]:
    """Every attempt of one delivery, oldest first; 404 for an unknown delivery."""
    await _delivery(session, delivery_id)
    return await DeliveryRepository(session).list_attempts(delivery_id)


async def retry_delivery(
    session: AsyncSession, *, delivery_id: uuid.UUID, actor: str
) -> WebhookDelivery:
    """Send a delivery again from attempt 0 (recorded as manual). 409 if already delivered."""
    delivery = await _delivery(session, delivery_id)
    if delivery.status == "delivered":
        raise InvalidState(f"delivery {delivery_id} was delivered")
    before = delivery.status
    delivery_service.reset_for_retry(delivery)
    await session.flush()
    await audit_service.record(
        session,
        actor=actor,
        action="delivery.retry",
        resource_type="webhook_delivery",
        resource_id=str(delivery.id),
        before={"status": before},
        after={"status": delivery.status},
    )
    return delivery


async def recover_deliveries(
    session: AsyncSession,
    *,
    f: DeliveryFilter,
    since: datetime,
    until: datetime,
    actor: str,
) -> int:
    """Re-queue every exhausted delivery created in [since, until) that matches `f`; how many."""
    deliveries = await DeliveryRepository(session).lock_exhausted(
        f, since=since, until=until
    )
    for delivery in deliveries:
        delivery_service.reset_for_retry(delivery)
    await audit_service.record(
        session,
        actor=actor,
        action="delivery.recover",
        resource_type="webhook_delivery",
        resource_id=f"{since.isoformat()}..{until.isoformat()}",
        after={
            "requeued": len(deliveries),
            "ids": [str(d.id) for d in deliveries],
            "filters": {
                "request_id": str(f.request_id) if f.request_id is not None else None,
                "event_type": f.event_type,
                "url": f.url,
            },
        },
    )
    return len(deliveries)


def _view(secret: CallerSecret) -> dict[str, object]:
    """Audit snapshot: everything but the value."""
    return {
        "id": str(secret.id),
        "caller": secret.caller,
        "status": secret.status,
        "subscribe_decisions": secret.subscribe_decisions,
        "expires_at": secret.expires_at.isoformat() if secret.expires_at else None,
    }


async def create_secret(
    session: AsyncSession,
    box: SecretBox,
    *,
    caller: str,
    value: str | None,
    subscribe_decisions: bool,
    actor: str,
) -> tuple[CallerSecret, str]:
    """Create (generate or import) an active secret; the value is returned once and never again."""
    plain = value or generate_secret()
    secret = CallerSecret(
        id=uuid.uuid4(),
        caller=caller,
        secret_encrypted=box.seal(plain),
        status="active",
        subscribe_decisions=subscribe_decisions,
        created_at=now(),
    )
    session.add(secret)
    await session.flush()
    await audit_service.record(
        session,
        actor=actor,
        action="secret.create",
        resource_type="caller_secret",
        resource_id=str(secret.id),
        after=_view(secret),
    )
    return secret, plain


async def list_secrets(session: AsyncSession, *, caller: str) -> Sequence[CallerSecret]:
    """A caller's secrets, newest first."""
    return await CallerSecretRepository(session).list_by_caller(caller)


async def _get(session: AsyncSession, secret_id: uuid.UUID) -> CallerSecret:
    secret = await CallerSecretRepository(session).lock(secret_id)
    if secret is None:
        raise TaskNotFound(f"secret {secret_id} not found")
    return secret


async def rotate_secret(
    session: AsyncSession,
    box: SecretBox,
    *,
    secret_id: uuid.UUID,
    grace_hours: float,
    actor: str,
) -> tuple[CallerSecret, str]:
    """Replace an active secret; the old one keeps signing (alongside the new) until the grace ends."""
    old = await _get(session, secret_id)
    if old.status != "active":
        raise InvalidState(
            f"secret {secret_id} is {old.status}; only active secrets can be rotated"
        )
    before = _view(old)
    new, plain = await create_secret(
        session,
        box,
        caller=old.caller,
        value=None,
        subscribe_decisions=old.subscribe_decisions,
        actor=actor,
    )
    at = now()
    old.status = "rotated"
    old.rotated_at = at
    old.expires_at = at + timedelta(hours=grace_hours)
    old.replaced_by_id = new.id
    await audit_service.record(
        session,
        actor=actor,
        action="secret.rotate",
        resource_type="caller_secret",
        resource_id=str(old.id),
        before=before,
        after=_view(old),
    )
    return new, plain


async def revoke_secret(
    session: AsyncSession, *, secret_id: uuid.UUID, actor: str
) -> CallerSecret:
    secret = await _get(session, secret_id)
    if secret.status == "revoked":
        return secret
    before = _view(secret)
    secret.status = "revoked"
    secret.revoked_at = now()
    await audit_service.record(
        session,
        actor=actor,
        action="secret.revoke",
        resource_type="caller_secret",
        resource_id=str(secret.id),
        before=before,
        after=_view(secret),
    )
    return secret
