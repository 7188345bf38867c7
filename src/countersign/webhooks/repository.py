"""Every query on webhook deliveries, their attempts and callers' signing secrets."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, exists, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from countersign.kit.pagination import Page, created_keyset, scalars_page
from countersign.models import CallerSecret, WebhookAttempt, WebhookDelivery


@dataclass(frozen=True)
class DeliveryFilter:
    """The admin list's filters, shared by the list and by recover ("retry all matching")."""

    request_id: uuid.UUID | None = None
    event_type: str | None = None
    url: str | None = None

    def apply(self, statement: Select[WebhookDelivery]) -> Select[WebhookDelivery]:
        if self.request_id is not None:
            statement = statement.where(WebhookDelivery.request_id == self.request_id)
        if self.event_type is not None:
            statement = statement.where(WebhookDelivery.event_type == self.event_type)
        if self.url is not None:
            statement = statement.where(WebhookDelivery.url == self.url)
        return statement


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_by_id(self, delivery_id: uuid.UUID) -> WebhookDelivery | None:
        return await self.session.get(WebhookDelivery, delivery_id)

    async def lock(
        self, delivery_id: uuid.UUID, *, skip_locked: bool
    ) -> WebhookDelivery | None:
        """The delivery, locked until the transaction ends and read fresh."""
        statement = (
            select(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .with_for_update(skip_locked=skip_locked)
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def lock_for_claim(
        self, delivery_id: uuid.UUID
    ) -> tuple[WebhookDelivery, bool] | None:
        """The delivery, locked (skipping it when another worker holds it) and read fresh, and
        whether an earlier delivery of its request is still pending: one round trip for what a
        claim needs to decide."""
        earlier = aliased(WebhookDelivery)
        waiting = (
            exists()
            .where(
                earlier.request_id == WebhookDelivery.request_id,
                earlier.sequence < WebhookDelivery.sequence,
                earlier.status == "pending",
            )
            .label("waiting")
        )
        statement = (
            select(WebhookDelivery, waiting)
            .where(WebhookDelivery.id == delivery_id)
            .with_for_update(skip_locked=True, of=WebhookDelivery)
            .execution_options(populate_existing=True)
        )
        row = (await self.session.execute(statement)).first()
        if row is None:
            return None
        return row[0], bool(row[1])

    async def get_url(self, delivery_id: uuid.UUID) -> str | None:
        """The delivery's callback URL (it never changes), without locking anything."""
        statement = select(WebhookDelivery.url).where(WebhookDelivery.id == delivery_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_next_pending(
        self, delivery: WebhookDelivery
    ) -> WebhookDelivery | None:
        """The next pending delivery of the same request, in sequence order."""
        statement = (
            select(WebhookDelivery)
            .where(
                WebhookDelivery.request_id == delivery.request_id,
                WebhookDelivery.sequence > delivery.sequence,
                WebhookDelivery.status == "pending",
            )
            .order_by(WebhookDelivery.sequence)
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_due(
        self, at: datetime, limit: int, *, grace: timedelta
    ) -> list[tuple[uuid.UUID, int, str]]:
        """(id, attempt, url) of pending deliveries due at `at`, not leased, first in line per
        request; locked (skipping rows others hold) until the transaction ends.

        Deliveries waiting behind an earlier pending one of their request are left out: they cannot
        be sent yet, and a long queue of them must not fill the batch while other requests wait.
        `grace` applies to deliveries not attempted yet (attempt 0): they got a doorbell when they
        became due, so only one still due after the grace period lost it. Retries get no doorbell
        when they fall due; they count from their `next_attempt_at`.
        """
        earlier = aliased(WebhookDelivery)
        statement = (
            select(WebhookDelivery.id, WebhookDelivery.attempt, WebhookDelivery.url)
            .where(
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= at,
                (WebhookDelivery.attempt > 0)
                | (WebhookDelivery.next_attempt_at <= at - grace),
                (WebhookDelivery.lease_until.is_(None))
                | (WebhookDelivery.lease_until <= at),
                ~exists().where(
                    earlier.request_id == WebhookDelivery.request_id,
                    earlier.sequence < WebhookDelivery.sequence,
                    earlier.status == "pending",
                ),
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [
            (row.id, row.attempt, row.url)
            for row in await self.session.execute(statement)
        ]

    async def list_page(
        self,
        f: DeliveryFilter,
        *,
        status: str | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Page[WebhookDelivery]:
        """Newest first, keyset-paged on (created_at, id)."""
        statement = select(WebhookDelivery).order_by(
            WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()
        )
        if status is not None:
            statement = statement.where(WebhookDelivery.status == status)
        statement = f.apply(statement)
        if before is not None:
            statement = statement.where(
                tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < before
            )
        return await scalars_page(
            self.session, statement, limit=limit, cursor_of=created_keyset
        )

    async def lock_exhausted(
        self, f: DeliveryFilter, *, since: datetime, until: datetime
    ) -> Sequence[WebhookDelivery]:
        """Exhausted deliveries created in [since, until) that match `f`, locked."""
        statement = f.apply(
            select(WebhookDelivery).where(
                WebhookDelivery.status == "exhausted",
                WebhookDelivery.created_at >= since,
                WebhookDelivery.created_at < until,
            )
        )
        return (await self.session.execute(statement.with_for_update())).scalars().all()

    async def list_attempts(self, delivery_id: uuid.UUID) -> Sequence[WebhookAttempt]:
        """Every attempt of one delivery, oldest first."""
        statement = (
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.started_at, WebhookAttempt.attempt)
        )
        return (await self.session.execute(statement)).scalars().all()


class CallerSecretRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list_by_caller(self, caller: str) -> Sequence[CallerSecret]:
        """A caller's secrets, newest first."""
        statement = (
            select(CallerSecret)
            .where(CallerSecret.caller == caller)
            .order_by(CallerSecret.created_at.desc())
        )
        return (await self.session.execute(statement)).scalars().all()

    async def list_all_of_caller(self, caller: str) -> Sequence[CallerSecret]:
        """A caller's secrets in no particular order (the signing chain sorts them itself)."""
        statement = select(CallerSecret).where(CallerSecret.caller == caller)
        return (await self.session.execute(statement)).scalars().all()

    async def lock(self, secret_id: uuid.UUID) -> CallerSecret | None:
        statement = (
            select(CallerSecret).where(CallerSecret.id == secret_id).with_for_update()
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def subscribes_to_decisions(
        self, *, caller: str, secret_id: uuid.UUID | None
    ) -> bool:
        """Whether the named secret (else any active secret of the caller) asks for
        `decision_recorded` deliveries."""
        statement = select(CallerSecret.subscribe_decisions).where(
            CallerSecret.caller == caller, CallerSecret.status == "active"
        )
        if secret_id is not None:
            statement = select(CallerSecret.subscribe_decisions).where(
                CallerSecret.id == secret_id
            )
        return any((await self.session.execute(statement)).scalars().all())
