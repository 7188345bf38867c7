"""Callers' webhook signing secrets: created, rotated with a grace period, revoked; encrypted at rest."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.audit import service as audit_service
from countersign.errors import AppError, InvalidState, TaskNotFound
from countersign.kit.clock import now
from countersign.models import CallerSecret
from countersign.webhooks.signing import generate_secret


class SecretBox:
    """Fernet encryption with COUNTERSIGN_SECRET_KEY; the only place secret values are decrypted."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            # Wrong COUNTERSIGN_SECRET_KEY: an operator error worth a loud 500, never unsigned sends.
            raise AppError(
                "a webhook secret cannot be decrypted with COUNTERSIGN_SECRET_KEY"
            ) from exc


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
    statement = (
        select(CallerSecret)
        .where(CallerSecret.caller == caller)
        .order_by(CallerSecret.created_at.desc())
    )
    return (await session.execute(statement)).scalars().all()


async def _get(session: AsyncSession, secret_id: uuid.UUID) -> CallerSecret:
    statement = (
        select(CallerSecret).where(CallerSecret.id == secret_id).with_for_update()
    )
    secret = (await session.execute(statement)).scalar_one_or_none()
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


def _signs_now(secret: CallerSecret) -> bool:
    if secret.status == "active":
        return True
    return (
        secret.status == "rotated"
        and secret.expires_at is not None
        and secret.expires_at > now()
    )


async def signing_secrets(
    session: AsyncSession, box: SecretBox, *, caller: str, secret_id: uuid.UUID | None
) -> list[str]:
    """The secret values that sign a delivery now, newest first (two during a rotation's grace).

    A request that named a secret follows that secret's rotations; one that named none (or whose
    secret was revoked) uses the caller's default: the newest active secret. Empty when nothing may
    sign; the delivery then fails and retries rather than going out unsigned.
    """
    rows = (
        (
            await session.execute(
                select(CallerSecret).where(CallerSecret.caller == caller)
            )
        )
        .scalars()
        .all()
    )
    by_id = {s.id: s for s in rows}
    head: CallerSecret | None = by_id.get(secret_id) if secret_id is not None else None
    seen: set[uuid.UUID] = set()
    while (
        head is not None
        and head.status == "rotated"
        and head.replaced_by_id in by_id
        and head.id not in seen
    ):
        seen.add(head.id)
        head = by_id[head.replaced_by_id]
    if head is None or head.status != "active":
        actives = sorted(
            (s for s in rows if s.status == "active"),
            key=lambda s: s.created_at,
            reverse=True,
        )
        head = actives[0] if actives else None
    if head is None:
        return []
    # Predecessors still in their grace period sign too, so receivers can switch at their pace;
    # after two quick rotations that is the whole line back, newest first.
    chain = [head]
    for candidate in sorted(rows, key=lambda s: s.created_at, reverse=True):
        if candidate is not head and _signs_now(candidate):
            if _replaced_into(candidate, head, by_id):
                chain.append(candidate)
    return [box.open(s.secret_encrypted) for s in chain if _signs_now(s)]


def _replaced_into(
    secret: CallerSecret, head: CallerSecret, by_id: dict[uuid.UUID, CallerSecret]
) -> bool:
    """Whether rotating `secret` led, one rotation or several, to `head`."""
    current: CallerSecret | None = secret
    for _ in range(len(by_id)):
        if current is None or current.replaced_by_id is None:
            return False
        if current.replaced_by_id == head.id:
            return True
        current = by_id.get(current.replaced_by_id)
    return False
