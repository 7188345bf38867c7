"""Every query on requests, their stages, tasks, decisions and events."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    false,
    func,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from countersign.identity.principal import Principal
from countersign.kit.pagination import Page, created_keyset, scalars_page
from countersign.models import (
    LIVE_STATUSES,
    ApprovalRequest,
    Decision,
    Delegation,
    Event,
    RequestStage,
    Task,
    WebhookDelivery,
)
from countersign.requests import domain


def stuck() -> ColumnElement[bool]:
    """A request an operator has to look at: a stage of its current cycle waits in `resolving`
    (the directory or an http rule keeps failing), or one of its deliveries is `exhausted`."""
    return or_(
        exists().where(
            RequestStage.request_id == ApprovalRequest.id,
            RequestStage.cycle == ApprovalRequest.cycle,
            RequestStage.status == "resolving",
        ),
        exists().where(
            WebhookDelivery.request_id == ApprovalRequest.id,
            WebhookDelivery.status == "exhausted",
        ),
    )


def visible_to(principal: Principal) -> ColumnElement[bool]:
    """SQL form of the visibility rule: admins, viewers, the creator, its client, the requester, task holders."""
    if principal.can_read_everything:
        return true()
    conditions: list[ColumnElement[bool]] = [
        ApprovalRequest.source_service == principal.id,
        ApprovalRequest.requester == principal.id,
        exists().where(
            Task.request_id == ApprovalRequest.id, Task.assignee == principal.id
        ),
    ]
    if principal.client:
        conditions.append(ApprovalRequest.source_client == principal.client)
    return or_(*conditions) if conditions else false()


T = TypeVar("T")


class RequestRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, request_id: uuid.UUID) -> ApprovalRequest | None:
        return await self.session.get(ApprovalRequest, request_id)

    async def lock(self, request_id: uuid.UUID) -> ApprovalRequest | None:
        """Read the request row and hold its lock until commit: every command on one request is serial."""
        statement = (
            select(ApprovalRequest)
            .where(ApprovalRequest.id == request_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_visible(
        self, request_id: uuid.UUID, principal: Principal
    ) -> ApprovalRequest | None:
        statement = select(ApprovalRequest).where(
            ApprovalRequest.id == request_id, visible_to(principal)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def is_visible(self, request_id: uuid.UUID, principal: Principal) -> bool:
        return await self.get_visible(request_id, principal) is not None

    async def get_live_for_artifact(
        self, source_client: str, artifact_type: str, artifact_id: str
    ) -> ApprovalRequest | None:
        statement = select(ApprovalRequest).where(
            ApprovalRequest.source_client == source_client,
            ApprovalRequest.artifact_type == artifact_type,
            ApprovalRequest.artifact_id == artifact_id,
            ApprovalRequest.status.in_(LIVE_STATUSES),
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_stages(
        self, request_id: uuid.UUID, cycle: int
    ) -> Sequence[RequestStage]:
        """The cycle's stages in order, as this command sees them (`_without_flush`)."""
        statement = (
            select(RequestStage)
            .where(RequestStage.request_id == request_id, RequestStage.cycle == cycle)
            .order_by(RequestStage.stage_order)
        )
        found = await self._without_flush(statement)
        pending = [
            row
            for row in self.session.new
            if isinstance(row, RequestStage)
            and row.request_id == request_id
            and row.cycle == cycle
        ]
        if not pending:
            return found
        return sorted([*found, *pending], key=lambda s: s.stage_order)

    async def list_tasks(
        self, request_id: uuid.UUID, *, stage_ids: Sequence[uuid.UUID] | None = None
    ) -> Sequence[Task]:
        """The request's tasks (of these stages), as this command sees them (`_without_flush`)."""
        statement = (
            select(Task)
            .where(Task.request_id == request_id)
            .order_by(Task.created_at, Task.id)
        )
        if stage_ids is not None:
            statement = statement.where(Task.request_stage_id.in_(stage_ids))
        found = await self._without_flush(statement)
        wanted = None if stage_ids is None else set(stage_ids)
        pending = [
            row
            for row in self.session.new
            if isinstance(row, Task)
            and row.request_id == request_id
            and (wanted is None or row.request_stage_id in wanted)
        ]
        if not pending:
            return found
        return sorted([*found, *pending], key=lambda t: (t.created_at, str(t.id)))

    async def mark_tasks(self, tasks: Sequence[Task], **values: Any) -> None:
        """Set the same columns on many tasks in one UPDATE (a stage that settles skips all its
        other undecided tasks at once). Through the unit of work each row would be its own
        parameter set, and the decided task, whose columns differ, would split them into
        several statements depending on where it sorts."""
        pending = self.session.new
        stored = [t for t in tasks if t not in pending]
        for task in tasks:
            # A stored row gets these values from the UPDATE below, so its object must not write
            # them again; a pending one is inserted with them.
            assign = setattr if task in pending else set_committed_value
            for name, value in values.items():
                assign(task, name, value)
        if stored:
            statement = (
                update(Task)
                .where(Task.id.in_([t.id for t in stored]))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            with self.session.no_autoflush:
                await self.session.execute(statement)

    async def _without_flush(self, statement: Select[T]) -> list[T]:
        """Rows of a command's own request, read without flushing what the command has pending.

        A command changes stages and tasks as it goes (status, counts); with autoflush, every
        read in between would first write those changes, so one decision cost an UPDATE of the
        request and an INSERT of events per read. Without it the rows the session already holds
        keep their in-memory state (no `populate_existing`), and the callers add the rows the
        command has created but not yet written. Safe because the command holds the request
        lock: nobody else changes these rows meanwhile, and the filters are on columns that never
        change (request, cycle, stage). Everything is written in one flush at the end (ADR 0047).
        """
        with self.session.no_autoflush:
            return list((await self.session.execute(statement)).scalars().all())

    async def current_stages_of(
        self, requests: Sequence[ApprovalRequest]
    ) -> Sequence[RequestStage]:
        """The current cycle's stages of several requests, in stage order."""
        if not requests:
            return []
        cycles = {r.id: r.cycle for r in requests}
        statement = (
            select(RequestStage)
            .where(RequestStage.request_id.in_(list(cycles)))
            .order_by(RequestStage.request_id, RequestStage.stage_order)
        )
        rows = (await self.session.execute(statement)).scalars().all()
        return [s for s in rows if s.cycle == cycles[s.request_id]]

    async def list_tasks_of_stages(
        self, stage_ids: Sequence[uuid.UUID]
    ) -> Sequence[Task]:
        if not stage_ids:
            return []
        statement = (
            select(Task)
            .where(Task.request_stage_id.in_(stage_ids))
            .order_by(Task.created_at, Task.id)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def approvers_of_stages(self, stage_ids: Sequence[uuid.UUID]) -> set[str]:
        """Everyone who approved one of these stages, and everyone they approved for (decisions
        this command has recorded but not yet written included, see `_without_flush`)."""
        if not stage_ids:
            return set()
        statement = (
            select(Decision.actor, Decision.on_behalf_of)
            .join(Task, Task.id == Decision.task_id)
            .where(
                Task.request_stage_id.in_(stage_ids),
                Decision.action == "approve",
                Task.kind == "approver",
            )
        )
        with self.session.no_autoflush:
            rows: list[tuple[str, str | None]] = [
                (row[0], row[1])
                for row in (await self.session.execute(statement)).all()
            ]
        wanted = set(stage_ids)
        for row in self.session.new:
            if not isinstance(row, Decision) or row.action != "approve":
                continue
            task = self.session.identity_map.get(identity_key(Task, row.task_id))
            if (
                isinstance(task, Task)
                and task.kind == "approver"
                and task.request_stage_id in wanted
            ):
                rows.append((row.actor, row.on_behalf_of))
        people: set[str] = set()
        for actor, on_behalf_of in rows:
            people.add(actor)
            if on_behalf_of:
                people.add(on_behalf_of)
        return people

    async def exhausted_deliveries_of(
        self, request_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, int]:
        """request id → how many of its deliveries are `exhausted` (absent: none)."""
        if not request_ids:
            return {}
        statement = (
            select(WebhookDelivery.request_id, func.count())
            .where(
                WebhookDelivery.request_id.in_(list(request_ids)),
                WebhookDelivery.status == "exhausted",
            )
            .group_by(WebhookDelivery.request_id)
        )
        return {
            request_id: int(count)
            for request_id, count in (await self.session.execute(statement)).all()
        }

    async def list_stages_by_status(
        self, status: str, *, limit: int
    ) -> Sequence[RequestStage]:
        statement = (
            select(RequestStage)
            .where(RequestStage.status == status)
            .order_by(RequestStage.updated_at, RequestStage.id)
            .limit(limit)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def list_decisions(self, request_id: uuid.UUID) -> Sequence[Decision]:
        statement = (
            select(Decision)
            .where(Decision.request_id == request_id)
            .order_by(Decision.created_at, Decision.id)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def list_events(self, request_id: uuid.UUID) -> Sequence[Event]:
        statement = (
            select(Event).where(Event.request_id == request_id).order_by(Event.sequence)
        )
        return (await self.session.execute(statement)).scalars().all()

    def list_statement(
        self,
        principal: Principal,
        *,
        artifact_type: str | None,
        artifact_id: str | None,
        status: str | None,
        policy_key: str | None,
        requester: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        before: tuple[datetime, uuid.UUID] | None,
        is_stuck: bool | None = None,
    ) -> Select[ApprovalRequest]:
        statement = (
            select(ApprovalRequest)
            .where(visible_to(principal))
            .order_by(ApprovalRequest.created_at.desc(), ApprovalRequest.id.desc())
        )
        equal = {
            ApprovalRequest.artifact_type: artifact_type,
            ApprovalRequest.artifact_id: artifact_id,
            ApprovalRequest.status: status,
            ApprovalRequest.policy_key: policy_key,
            ApprovalRequest.requester: requester,
        }
        for column, value in equal.items():
            if value is not None:
                statement = statement.where(column == value)
        if created_after is not None:
            statement = statement.where(ApprovalRequest.created_at >= created_after)
        if created_before is not None:
            statement = statement.where(ApprovalRequest.created_at < created_before)
        if before is not None:
            statement = statement.where(
                tuple_(ApprovalRequest.created_at, ApprovalRequest.id) < before
            )
        if is_stuck is not None:
            statement = statement.where(stuck() if is_stuck else ~stuck())
        return statement

    async def list_requests(
        self, statement: Select[ApprovalRequest], *, limit: int
    ) -> Page[ApprovalRequest]:
        return await scalars_page(
            self.session, statement, limit=limit, cursor_of=created_keyset
        )


class DelegationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def active_windows(
        self, user_ids: Collection[str], at: datetime
    ) -> list[ActiveWindow]:
        """Every delegation window open at `at` for these users, oldest first."""
        if not user_ids:
            return []
        statement = (
            select(Delegation.id, Delegation.user_id, Delegation.delegate_to)
            .where(
                Delegation.user_id.in_(list(user_ids)),
                Delegation.starts_at <= at,
                Delegation.ends_at > at,
            )
            .order_by(Delegation.created_at, Delegation.id)
        )
        # No autoflush: commands never write delegations, so the rows a command has pending
        # (request, stages, events) need not be sent first; they go in one flush later.
        with self.session.no_autoflush:
            rows = (await self.session.execute(statement)).all()
        return [
            ActiveWindow(id=row[0], user_id=row[1], delegate_to=row[2]) for row in rows
        ]

    async def active_delegates(
        self, user_ids: Sequence[str], at: datetime
    ) -> dict[str, ActiveWindow]:
        """user → the window their new tasks go through at `at` (the newest window wins)."""
        return {w.user_id: w for w in await self.active_windows(user_ids, at)}

    async def is_active_delegate(
        self, *, user_id: str, delegate: str, at: datetime
    ) -> bool:
        statement = select(
            exists().where(
                and_(
                    Delegation.user_id == user_id,
                    Delegation.delegate_to == delegate,
                    Delegation.starts_at <= at,
                    Delegation.ends_at > at,
                )
            )
        )
        return bool((await self.session.execute(statement)).scalar())


@dataclass(frozen=True)
class ActiveWindow:
    id: uuid.UUID
    user_id: str
    delegate_to: str


async def load_sod_facts(
    session: AsyncSession,
    *,
    requester: str,
    creator: str | None,
    forbid_self_approval: bool,
    forbid_repeat_approvers: bool,
    earlier_stage_ids: Sequence[uuid.UUID],
    at: datetime,
    windows_also_for: Collection[str] = (),
) -> tuple[domain.SodFacts, dict[str, ActiveWindow]]:
    """The one loader of separation-of-duties facts (`domain.barred_users` decides from them).

    Reads who approved the earlier stages (only when `forbid_repeat_approvers` is on) and every
    delegation window open at `at` for the people the flags name. Returns the facts and, for the
    people in `windows_also_for` (a stage's resolved approvers), the window their new task goes
    through (the newest wins), read in the same query.
    """
    earlier: set[str] = set()
    if forbid_repeat_approvers:
        earlier = await RequestRepository(session).approvers_of_stages(
            earlier_stage_ids
        )
    subjects: set[str] = set(earlier)
    if forbid_self_approval:
        subjects.add(requester)
        if creator:
            subjects.add(creator)
    delegates: dict[str, set[str]] = {}
    newest: dict[str, ActiveWindow] = {}
    wanted = set(windows_also_for)
    windows = await DelegationRepository(session).active_windows(subjects | wanted, at)
    for window in windows:  # oldest first
        if window.user_id in wanted:
            newest[window.user_id] = window
        if window.user_id in subjects and window.delegate_to != window.user_id:
            delegates.setdefault(window.user_id, set()).add(window.delegate_to)
    facts = domain.SodFacts(
        requester=requester,
        creator=creator,
        forbid_self_approval=forbid_self_approval,
        forbid_repeat_approvers=forbid_repeat_approvers,
        earlier_approvers=frozenset(earlier),
        delegates={user: frozenset(people) for user, people in delegates.items()},
    )
    return facts, newest
