"""Inbox queries: one indexed keyset query per page (assignee, status, created_at, id)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Select,
    exists,
    func,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.models import ApprovalRequest, Policy, Task


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks a listing may return, after authorization decided the scope."""

    # None = any assignee.
    assignee: str | None
    # When set (with assignee None): only these people's tasks, plus completed tasks of anyone.
    own_plus_completed: str | None = None
    request_id: uuid.UUID | None = None
    statuses: tuple[str, ...] = ()
    artifact_type: str | None = None
    policy_key: str | None = None
    search_text: str | None = None


def _context_matches(dialect: str, needle: str) -> ColumnElement[bool]:
    """Case-insensitive match on the request's artifact id or any top-level context value."""
    pattern = f"%{needle.lower()}%"
    if dialect == "postgresql":
        each = (
            func.jsonb_each_text(ApprovalRequest.context)
            .table_valued("key", "value")
            .alias("ctx")
        )
        in_context = exists(
            select(literal_column("1"))
            .select_from(each)
            .where(func.lower(each.c.value).like(pattern))
        )
    else:
        each = (
            func.json_each(ApprovalRequest.context)
            .table_valued("key", "value")
            .alias("ctx")
        )
        in_context = exists(
            select(literal_column("1"))
            .select_from(each)
            .where(func.lower(each.c.value).like(pattern))
        )
    return or_(func.lower(Task.artifact_id).like(pattern), in_context)


class TaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def _filtered(
        self, statement: Select[Task, dict[str, object]], f: TaskFilter
    ) -> Select[Task, dict[str, object]]:
        if f.assignee is not None:
            statement = statement.where(Task.assignee == f.assignee)
        if f.own_plus_completed is not None:
            statement = statement.where(
                or_(Task.assignee == f.own_plus_completed, Task.status == "completed")
            )
        if f.request_id is not None:
            statement = statement.where(Task.request_id == f.request_id)
        if f.statuses:
            statement = statement.where(Task.status.in_(f.statuses))
        if f.artifact_type is not None:
            statement = statement.where(Task.artifact_type == f.artifact_type)
        if f.policy_key is not None:
            statement = statement.where(Task.policy_key == f.policy_key)
        if f.search_text:
            statement = statement.where(_context_matches(self._dialect, f.search_text))
        return statement

    async def page(
        self,
        f: TaskFilter,
        *,
        offset: int | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[tuple[Task, dict[str, object]]]:
        """Newest first. Each row is the task and its request's context (one join, no N+1)."""
        statement: Select[Task, dict[str, object]] = (
            select(Task, ApprovalRequest.context)
            .join(ApprovalRequest, ApprovalRequest.id == Task.request_id)
            .order_by(Task.created_at.desc(), Task.id.desc())
            .limit(limit)
        )
        statement = self._filtered(statement, f)
        if after is not None:
            statement = statement.where(tuple_(Task.created_at, Task.id) < after)
        if offset:
            statement = statement.offset(offset)
        return (await self.session.execute(statement)).all()

    async def count(self, f: TaskFilter) -> int:
        inner = self._filtered(
            select(Task, ApprovalRequest.context).join(
                ApprovalRequest, ApprovalRequest.id == Task.request_id
            ),
            f,
        )
        return int(
            (
                await self.session.execute(
                    select(func.count()).select_from(inner.subquery())
                )
            ).scalar_one()
        )

    async def stats(
        self, assignee: str, statuses: Sequence[str]
    ) -> list[tuple[str, str, int]]:
        """(artifact_type, status, count) for one assignee's tasks."""
        statement = (
            select(Task.artifact_type, Task.status, func.count())
            .where(Task.assignee == assignee)
            .group_by(Task.artifact_type, Task.status)
        )
        if statuses:
            statement = statement.where(Task.status.in_(statuses))
        return [
            (a, s, int(n))
            for a, s, n in (await self.session.execute(statement)).all()
        ]

    async def lock_requests_of(self, task_ids: Sequence[uuid.UUID]) -> None:
        """Lock the requests of these tasks, in id order, until the transaction ends.

        A bulk decision holds every request it touched until its one commit. Taking all of those
        locks up front in one global order means two batches over the same requests can never
        wait on each other in a cycle (a deadlock PostgreSQL would break with a 500).
        """
        if not task_ids:
            return
        statement = (
            select(ApprovalRequest.id)
            .where(
                ApprovalRequest.id.in_(
                    select(Task.request_id).where(Task.id.in_(task_ids))
                )
            )
            .order_by(ApprovalRequest.id)
            .with_for_update()
        )
        await self.session.execute(statement)

    async def active_artifact_types(self) -> list[str]:
        statement = (
            select(Policy.artifact_type).where(Policy.status == "active").distinct()
        )
        return sorted((await self.session.execute(statement)).scalars().all())
