"""Out-of-office delegations: who may act for whom, and when (rules; queries in the repository)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from countersign.audit import service as audit_service
from countersign.delegations.repository import DelegationRepository
from countersign.delegations.schemas import DelegationCreate, DelegationOut
from countersign.errors import FieldProblem, Forbidden, TaskNotFound, ValidationFailed
from countersign.identity.principal import Principal
from countersign.kit.clock import now
from countersign.kit.pagination import Page
from countersign.models import Delegation


def _snapshot(delegation: Delegation) -> dict[str, object]:
    return DelegationOut.model_validate(delegation).model_dump(mode="json")


async def create_delegation(
    session: AsyncSession, *, principal: Principal, data: DelegationCreate
) -> Delegation:
    user_id = data.user_id or principal.id
    if user_id != principal.id and not principal.is_admin:
        raise Forbidden("only admins manage other users' delegations")
    problems = []
    if data.ends_at <= data.starts_at:
        problems.append(FieldProblem("/ends_at", "must be after starts_at"))
    if data.delegate_to == user_id:
        problems.append(FieldProblem("/delegate_to", "must differ from user_id"))
    if problems:
        raise ValidationFailed(
            "invalid delegation: " + "; ".join(p.detail for p in problems), problems
        )
    delegation = Delegation(
        id=uuid.uuid4(),
        user_id=user_id,
        delegate_to=data.delegate_to,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        reason=data.reason,
        created_by=principal.id,
        created_at=now(),
    )
    session.add(delegation)
    await session.flush()
    await audit_service.record(
        session,
        actor=principal.id,
        action="delegation.create",
        resource_type="delegation",
        resource_id=str(delegation.id),
        after=_snapshot(delegation),
    )
    return delegation


async def list_delegations(
    session: AsyncSession,
    *,
    principal: Principal,
    user_id: str | None,
    active_only: bool,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Page[Delegation]:
    """Admins and viewers see all (or one user's); everyone else their own and those made to them.

    Newest window first (`starts_at`, then id, both descending); `after` is the keyset position of
    the last row of the previous page.
    """
    return await DelegationRepository(session).list_page(
        involving=None if principal.can_read_everything else principal.id,
        user_id=user_id,
        open_at=now() if active_only else None,
        after=after,
        limit=limit,
    )


async def delete_delegation(
    session: AsyncSession, *, principal: Principal, delegation_id: uuid.UUID
) -> None:
    delegation = await DelegationRepository(session).get_by_id(delegation_id)
    if delegation is None:
        raise TaskNotFound(f"delegation {delegation_id} not found")
    # API.md: deleting another user's delegation without admin is 403, whoever asks (the delegate
    # included: a window is its owner's to end).
    if delegation.user_id != principal.id and not principal.is_admin:
        raise Forbidden("only admins delete other users' delegations")
    await audit_service.record(
        session,
        actor=principal.id,
        action="delegation.delete",
        resource_type="delegation",
        resource_id=str(delegation.id),
        before=_snapshot(delegation),
    )
    await session.delete(delegation)
