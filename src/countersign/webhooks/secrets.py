"""Callers' webhook signing secrets: encrypted at rest (`SecretBox`), and which of them sign now.

Creating, rotating and revoking them are admin commands in `webhooks.service`.
"""

from __future__ import annotations

import uuid

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.errors import AppError
from countersign.kit.clock import now
from countersign.models import CallerSecret
from countersign.webhooks.repository import CallerSecretRepository


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
    rows = await CallerSecretRepository(session).list_all_of_caller(caller)
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
