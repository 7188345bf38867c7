"""Input bounds shared by every endpoint: what PostgreSQL can store, checked before it is asked to.

Bad input is a 422 `validation_failed` at the edge, never a database error turned into a 500:

- integers that land in an `INTEGER` column (versions, stage orders, priorities...) are `Int32`;
- datetimes are `UtcDatetime`: an offset is required and the value must still exist in UTC
  (`0001-01-01T00:00:00+01:00` does not), so no naive or overflowing value reaches a query;
- text that PostgreSQL cannot hold (a NUL character, a lone UTF-16 surrogate, which has no UTF-8
  form) is refused anywhere in a JSON body, a query or a path by `reject_unstorable_text`, a
  dependency of every route (one place, so new endpoints get it without thinking about it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request
from pydantic import AfterValidator, AwareDatetime, Field

from countersign.errors import FieldProblem, ValidationFailed

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)

# Anything stored in an INTEGER column.
Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
PositiveInt32 = Annotated[int, Field(ge=1, le=INT32_MAX)]

# A policy version in a path; versions start at 1 and are INTEGER columns.
VersionPath = Annotated[int, Path(ge=1, le=INT32_MAX, description="Policy version.")]
# AWE's `page` (1-based); bounded so that the OFFSET it becomes stays a 64-bit integer.
PageQuery = Annotated[
    int | None, Query(ge=1, le=INT32_MAX, description="Page (1-based).")
]

# SLA, reminder and TTL hours: positive and short enough that `now + hours` is still a date
# (100 years; Python's datetime ends at 9999).
MAX_HOURS = 24 * 365 * 100
PositiveHours = Annotated[float, Field(gt=0, le=MAX_HOURS, allow_inf_nan=False)]

# `attachments_ref` is the caller's pointer to documents kept elsewhere, not the documents.
MAX_ATTACHMENTS_REF_BYTES = 8192


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except (
        OverflowError
    ) as exc:  # year 1 with a positive offset, year 9999 with a negative one
        raise ValueError("datetime is out of range once converted to UTC") from exc


# A timezone-aware datetime, normalized to UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


def compact_json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON (the measure of every JSON size limit)."""
    return len(
        json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", errors="surrogatepass"
        )
    )


def _bounded_ref(value: Any) -> Any:
    if value is not None and compact_json_size(value) > MAX_ATTACHMENTS_REF_BYTES:
        raise ValueError(
            f"attachments_ref is over {MAX_ATTACHMENTS_REF_BYTES} bytes of JSON; "
            "point to the documents, do not embed them"
        )
    return value


AttachmentsRef = Annotated[Any, AfterValidator(_bounded_ref)]


# A NUL, or a surrogate code point (only lone surrogates survive JSON decoding as such).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(part: str) -> str:
    """A JSON pointer token; unstorable characters are spelled `\\uXXXX` so the answer can be sent."""
    token = part.replace("~", "~0").replace("/", "~1")
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", token)


def unstorable_text(value: Any, pointer: str = "") -> Iterator[str]:
    """JSON pointers of every string (or object key) in `value` that PostgreSQL cannot store."""
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            yield pointer or "/"
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{pointer}/{_escape(str(key))}"
            if isinstance(key, str) and _UNSTORABLE.search(key):
                yield child
            yield from unstorable_text(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unstorable_text(item, f"{pointer}/{index}")


_DETAIL = "contains a NUL character or a lone UTF-16 surrogate, which cannot be stored"


async def reject_unstorable_text(request: Request) -> None:
    """Route dependency: 422 for a NUL or lone surrogate in the path, the query or a JSON body.

    FastAPI has parsed the body before dependencies run, and `request.json()` returns that parse,
    so the walk costs no second decode.
    """
    problems = [
        FieldProblem(f"/{_escape(name)}", _DETAIL)
        for name, value in request.path_params.items()
        if isinstance(value, str) and _UNSTORABLE.search(value)
    ]
    problems += [
        FieldProblem(f"/{_escape(name)}", _DETAIL)
        for name, value in request.query_params.multi_items()
        if _UNSTORABLE.search(name) or _UNSTORABLE.search(value)
    ]
    content_type = request.headers.get("content-type", "")
    if request.method in {"POST", "PUT", "PATCH"} and "json" in content_type:
        try:
            body = await request.json()
        except ValueError:
            body = None  # FastAPI has already answered a body it could not parse
        problems += [FieldProblem(p, _DETAIL) for p in unstorable_text(body)]
    if problems:
        raise ValidationFailed(
            f"request validation failed: {problems[0].pointer}: {_DETAIL}", problems
        )
