"""Every query on delegations (out-of-office windows) made through `/v1/delegations`.

The windows that act on approver resolution and separation of duties are read by
`requests.repository.DelegationRepository.active_windows`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.kit.pagination import Page, encode_keyset, scalars_page
from countersign.models import Delegation


def _cursor(delegation: Delegation) -> str:
    return encode_keyset(delegation.starts_at, delegation.id)


class DelegationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_by_id(self, delegation_id: uuid.UUID) -> Delegation | None:
        return await self.session.get(Delegation, delegation_id)

    async def list_page(
        self,
        *,
        involving: str | None,
        user_id: str | None,
        open_at: datetime | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Page[Delegation]:
        """Newest window first (`starts_at`, then id, both descending).

        `involving`: only delegations this user made or received; `user_id`: only this delegator's;
        `open_at`: only windows open at that time; `after`: the keyset position of the last row of
        the previous page.
        """
        statement = select(Delegation).order_by(
            Delegation.starts_at.desc(), Delegation.id.desc()
        )
        if involving is not None:
            statement = statement.where(
                or_(
                    Delegation.user_id == involving,
                    Delegation.delegate_to == involving,
                )
            )
        if user_id is not None:
            statement = statement.where(Delegation.user_id == user_id)
        if open_at is not None:
            statement = statement.where(
                Delegation.starts_at <= open_at, Delegation.ends_at > open_at
            )
        if after is not None:
            starts_at, last_id = after
            statement = statement.where(
                or_(
                    Delegation.starts_at < starts_at,
                    and_(Delegation.starts_at == starts_at, Delegation.id < last_id),
                )
            )
        return await scalars_page(
            self.session, statement, limit=limit, cursor_of=_cursor
        )
