"""Inbox queries: one indexed keyset query per page (assignee, status, created_at, id).

An inbox page is the hottest read of the service, so its statements are built once per shape
(which filters are present, how many statuses) with bound parameters, and reused: building a
SQLAlchemy statement with its subqueries costs far more Python time than PostgreSQL spends
running it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Uuid,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import BindParameter

from countersign.db import UtcDateTime
from countersign.kit.pagination import Page, created_keyset, keyset_page
from countersign.models import ApprovalRequest, Policy, Task
from countersign.requests.domain import TaskStatus

TASK_STATUSES: tuple[str, ...] = tuple(status.value for status in TaskStatus)


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks a listing may return, after authorization decided the scope."""

    # None = any assignee.
    assignee: str | None
    # When set (with assignee None): this person's tasks, plus completed tasks of the requests
    # they may see (their `azp` is `own_azp`); who else is still pending stays private.
    own_plus_completed: str | None = None
    own_azp: str | None = None
    request_id: uuid.UUID | None = None
    statuses: tuple[str, ...] = ()
    artifact_type: str | None = None
    policy_key: str | None = None
    search_text: str | None = None


def _like_pattern(needle: str) -> str:
    """`%needle%`, lower-cased, with LIKE's own wildcards in the needle taken literally."""
    escaped = (
        needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    )
    return f"%{escaped}%"


def _context_matches(dialect: str) -> ColumnElement[bool]:
    """Case-insensitive match (`:inbox_search`) on the artifact id or any top-level context value."""
    pattern = bindparam("inbox_search", type_=String())
    function = func.jsonb_each_text if dialect == "postgresql" else func.json_each
    each = function(ApprovalRequest.context).table_valued("key", "value").alias("ctx")
    in_context = exists(
        select(literal_column("1"))
        .select_from(each)
        .where(func.lower(each.c.value).like(pattern, escape="\\"))
    )
    return or_(func.lower(Task.artifact_id).like(pattern, escape="\\"), in_context)


@dataclass(frozen=True)
class _Shape:
    """What a listing's statement looks like, apart from the values bound into it (`inbox_*`)."""

    dialect: str
    assignee: bool
    own_plus_completed: bool
    request_id: bool
    statuses: int
    artifact_type: bool
    policy_key: bool
    search: bool
    after: bool
    offset: bool

    @classmethod
    def of(
        cls,
        dialect: str,
        f: TaskFilter,
        after: tuple[datetime, uuid.UUID] | None,
        offset: int | None,
    ) -> _Shape:
        return cls(
            dialect=dialect,
            assignee=f.assignee is not None,
            own_plus_completed=f.own_plus_completed is not None,
            request_id=f.request_id is not None,
            statuses=len(f.statuses),
            artifact_type=f.artifact_type is not None,
            policy_key=f.policy_key is not None,
            search=bool(f.search_text),
            after=after is not None,
            offset=bool(offset),
        )

    @property
    def merges_statuses(self) -> bool:
        """One person's inbox over several statuses (or all): merge one branch per status."""
        return self.assignee and self.statuses != 1


def _conditions(shape: _Shape, *, status: str | None) -> list[ColumnElement[bool]]:
    """The WHERE clause of a listing; `status` names the one status parameter of a branch."""
    where: list[ColumnElement[bool]] = []
    if shape.assignee:
        where.append(Task.assignee == bindparam("inbox_assignee"))
    if shape.own_plus_completed:
        own: BindParameter[str] = bindparam("inbox_own", type_=String())
        holder = aliased(Task)
        # The visibility rule of requests (requests/repository.visible_to) with bound values, so
        # one cached statement serves every principal.
        visible = or_(
            ApprovalRequest.source_service == own,
            ApprovalRequest.requester == own,
            ApprovalRequest.source_client == bindparam("inbox_azp"),
            exists().where(
                holder.request_id == ApprovalRequest.id, holder.assignee == own
            ),
        )
        where.append(
            or_(Task.assignee == own, and_(Task.status == "completed", visible))
        )
    if shape.request_id:
        where.append(Task.request_id == bindparam("inbox_request_id", type_=Uuid()))
    if status is not None:
        where.append(Task.status == bindparam(status))
    elif shape.statuses:
        where.append(Task.status.in_(bindparam("inbox_statuses", expanding=True)))
    if shape.artifact_type:
        where.append(Task.artifact_type == bindparam("inbox_artifact_type"))
    if shape.policy_key:
        where.append(Task.policy_key == bindparam("inbox_policy_key"))
    if shape.search:
        where.append(_context_matches(shape.dialect))
    if shape.after:
        where.append(
            tuple_(Task.created_at, Task.id)
            < tuple_(
                bindparam("inbox_after_created_at", type_=UtcDateTime()),
                bindparam("inbox_after_id", type_=Uuid()),
            )
        )
    return where


def _branch(shape: _Shape, *, status: str | None, limit: str) -> Select[Any]:
    return (
        select(Task, ApprovalRequest.context)
        .join(ApprovalRequest, ApprovalRequest.id == Task.request_id)
        .where(*_conditions(shape, status=status))
        .order_by(Task.created_at.desc(), Task.id.desc())
        .limit(bindparam(limit, type_=Integer()))
    )


def _build_page(shape: _Shape) -> Select[Any]:
    """The one SQL statement of an inbox page of this shape.

    For one person's inbox, (assignee, status, created_at, id) is the index, and a backward scan of
    it reads exactly one page, however many tasks the person has, when the status is fixed. With
    several statuses (or none, i.e. all of them) the index is no longer in `created_at` order,
    and a plain query reads and sorts every task of the person, joining each to its request
    first. So each status gets its own index-ordered, limited branch, and the page is the merge of
    the branches (PostgreSQL: Merge Append), which reads at most one page per status.
    """
    if not shape.merges_statuses:
        statement = _branch(shape, status=None, limit="inbox_limit")
        if shape.offset:
            statement = statement.offset(bindparam("inbox_offset", type_=Integer()))
        return statement
    branches: list[Select[Any]] = []
    for n in range(shape.statuses or len(TASK_STATUSES)):
        # Wrapped in a subquery so that ORDER BY/LIMIT inside UNION ALL is valid on SQLite too.
        branch = _branch(
            shape, status=f"inbox_status_{n}", limit="inbox_branch_limit"
        ).subquery()
        branches.append(select(*branch.c))
    merged = union_all(*branches).subquery("inbox_page")
    task = aliased(Task, merged)
    statement = (
        select(task, merged.c.context)
        .order_by(merged.c.created_at.desc(), merged.c.id.desc())
        .limit(bindparam("inbox_limit", type_=Integer()))
    )
    if shape.offset:
        statement = statement.offset(bindparam("inbox_offset", type_=Integer()))
    return statement


def _build_count(shape: _Shape) -> Select[Any]:
    # Only a text search or the visibility rule needs the request; every task has one (foreign key).
    inner = select(Task.id)
    if shape.search or shape.own_plus_completed:
        inner = inner.join(ApprovalRequest, ApprovalRequest.id == Task.request_id)
    inner = inner.where(*_conditions(shape, status=None))
    return select(func.count()).select_from(inner.subquery())


_PAGES: dict[_Shape, Select[Any]] = {}
_COUNTS: dict[_Shape, Select[Any]] = {}


def _parameters(
    f: TaskFilter,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    offset: int | None,
    limit: int,
) -> dict[str, Any]:
    """Every value a statement of any shape may bind (a statement ignores those it lacks).

    The `inbox_` prefix keeps these apart from the anonymous parameters SQLAlchemy names after
    columns (`status_1`...): a value passed under such a name would replace a literal.
    """
    values: dict[str, Any] = {
        "inbox_assignee": f.assignee,
        "inbox_own": f.own_plus_completed,
        "inbox_azp": f.own_azp,
        "inbox_request_id": f.request_id,
        "inbox_artifact_type": f.artifact_type,
        "inbox_policy_key": f.policy_key,
        "inbox_limit": limit,
        "inbox_offset": offset or 0,
        "inbox_branch_limit": (offset or 0) + limit,
        "inbox_statuses": list(f.statuses),
    }
    if f.search_text:
        values["inbox_search"] = _like_pattern(f.search_text)
    if after is not None:
        values["inbox_after_created_at"], values["inbox_after_id"] = after
    for n, status in enumerate(f.statuses or TASK_STATUSES):
        values[f"inbox_status_{n}"] = status
    return values


class TaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def page_statement(
        self,
        f: TaskFilter,
        *,
        offset: int | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> tuple[Select[Any], dict[str, Any]]:
        """The statement of an inbox page and the values to execute it with."""
        shape = _Shape.of(self._dialect, f, after, offset)
        statement = _PAGES.get(shape)
        if statement is None:
            statement = _PAGES.setdefault(shape, _build_page(shape))
        return statement, _parameters(f, after=after, offset=offset, limit=limit)

    async def page(
        self,
        f: TaskFilter,
        *,
        offset: int | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[tuple[Task, dict[str, object]]]:
        """Newest first. Each row is the task and its request's context (one join, no N+1)."""
        statement, parameters = self.page_statement(
            f, offset=offset, after=after, limit=limit
        )
        rows: Sequence[tuple[Task, dict[str, object]]] = (
            await self.session.execute(statement, parameters)
        ).all()
        return rows

    async def list_page(
        self,
        f: TaskFilter,
        *,
        offset: int | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Page[tuple[Task, dict[str, object]]]:
        """One inbox page (`page`) and the keyset cursor of the next, whichever way it was paged."""
        return await keyset_page(
            lambda n: self.page(f, offset=offset, after=after, limit=n),
            limit=limit,
            cursor_of=lambda row: created_keyset(row[0]),
        )

    async def count(self, f: TaskFilter) -> int:
        shape = _Shape.of(self._dialect, f, None, None)
        statement = _COUNTS.get(shape)
        if statement is None:
            statement = _COUNTS.setdefault(shape, _build_count(shape))
        parameters = _parameters(f, after=None, offset=None, limit=0)
        return int((await self.session.execute(statement, parameters)).scalar_one())

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
            (a, s, int(n)) for a, s, n in (await self.session.execute(statement)).all()
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
