"""Keyset pages: opaque cursors, the one page loop, and the `X-Next-Cursor` / `Link` headers.

Every list of the service pages the same way: the repository asks for one row more than the page
(`keyset_page`), that row only says whether another page follows, and the cursor of the next page
is the sort key of the page's last row. Endpoints decode the cursor they were given and set the
headers of the one they got back; nothing else counts rows.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import Query, Request, Response
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.errors import FieldProblem, ValidationFailed
from countersign.kit.validation import unstorable_text

LimitQuery = Annotated[int, Query(ge=1, le=500, description="Page size (1–500).")]
CursorQuery = Annotated[
    str | None, Query(description="Opaque cursor from `X-Next-Cursor`.")
]


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _invalid_cursor() -> ValidationFailed:
    return ValidationFailed(
        "invalid cursor", [FieldProblem("/cursor", "not a cursor this service issued")]
    )


def decode_cursor(cursor: str, *, size: int) -> list[Any]:
    """The values of a cursor; anything forged (bad base64, JSON, shape or text) is a 422."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (
        ValueError
    ) as exc:  # binascii.Error, JSONDecodeError and UnicodeDecodeError are
        raise _invalid_cursor() from exc
    if (
        not isinstance(values, list)
        or len(values) != size
        or any(isinstance(v, dict | list) for v in values)
        or next(unstorable_text(values), None) is not None
    ):
        raise _invalid_cursor()
    return values


def set_next_page_headers(
    request: Request, response: Response, next_cursor: str | None
) -> None:
    if next_cursor is None:
        return
    url = request.url.include_query_params(cursor=next_cursor)
    response.headers["X-Next-Cursor"] = next_cursor
    response.headers["Link"] = f'<{url}>; rel="next"'


def encode_keyset(created_at: datetime, row_id: uuid.UUID) -> str:
    """The cursor of lists ordered by (created_at, id) descending."""
    return encode_cursor([created_at.isoformat(), str(row_id)])


def decode_keyset(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Inverse of `encode_keyset`; a cursor this service did not issue is a 422, never a 500."""
    created_at, row_id = decode_cursor(cursor, size=2)
    try:
        when = datetime.fromisoformat(str(created_at))
        # Issued cursors are aware; a naive one is forged. Converting checks the range too.
        if when.tzinfo is None:
            raise ValueError("naive cursor time")
        return when.astimezone(UTC), uuid.UUID(str(row_id))
    except (ValueError, OverflowError) as exc:
        raise _invalid_cursor() from exc


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-ordered list and the cursor of the next one (None on the last)."""

    items: list[T]
    next_cursor: str | None


async def keyset_page(
    fetch: Callable[[int], Awaitable[Sequence[T]]],
    *,
    limit: int,
    cursor_of: Callable[[T], str],
) -> Page[T]:
    """Fetch one row more than `limit`: it only tells whether a next page exists.

    `fetch(n)` returns at most `n` rows in the list's order; `cursor_of(row)` encodes a row's sort
    key, from which the next page continues.
    """
    rows = await fetch(limit + 1)
    items = list(rows[:limit])
    next_cursor = cursor_of(items[-1]) if len(rows) > limit and items else None
    return Page(items, next_cursor)


async def scalars_page(
    session: AsyncSession,
    statement: Select[T],
    *,
    limit: int,
    cursor_of: Callable[[T], str],
) -> Page[T]:
    """`keyset_page` for an ordered, filtered ORM select without a LIMIT of its own."""

    async def fetch(n: int) -> Sequence[T]:
        return (await session.execute(statement.limit(n))).scalars().all()

    return await keyset_page(fetch, limit=limit, cursor_of=cursor_of)


class _Created(Protocol):
    @property
    def created_at(self) -> datetime: ...
    @property
    def id(self) -> uuid.UUID: ...


def created_keyset(row: _Created) -> str:
    """The cursor of a row in a list ordered by (created_at, id) descending."""
    return encode_keyset(row.created_at, row.id)
