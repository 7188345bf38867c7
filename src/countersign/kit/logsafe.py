"""Keeping values out of log lines.

Log lines end up in shared log stores that far more people read than the database, so they must
never carry what requests carry (contexts, comments, tokens) or what the service keeps secret.
The service's own messages are written that way; this filter covers what it does not write
itself:

- a database error's text: drivers quote the offending value ("invalid input for query argument
  $1: '<context value>'", PostgreSQL's "Key (...)=(<value>) already exists"). The logged
  exception keeps its type, SQLSTATE, statement (placeholders only, `hide_parameters` on every
  engine) and traceback frames, and loses the message and its chained causes.
- URLs in log arguments: any credential in them is redacted (`config.redact_url`).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import DBAPIError, StatementError

from countersign.config import redact_url


class DatabaseError(Exception):
    """What a logged database error becomes: where it happened, never what was in it."""


def _database_error(exc: BaseException) -> StatementError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StatementError):
            return current
        current = current.__cause__ or current.__context__
    return None


def describe(error: StatementError) -> str:
    orig = error.orig
    kind = type(orig).__name__ if orig is not None else type(error).__name__
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    statement = " ".join((error.statement or "").split())[:500]
    where = f" (SQLSTATE {state})" if state else ""
    shape = "DBAPIError" if isinstance(error, DBAPIError) else type(error).__name__
    return f"{shape}: {kind}{where} in: {statement}"


def _safe_argument(value: Any) -> Any:
    if isinstance(value, BaseException):
        database = _database_error(value)
        if database is not None:
            return describe(database)
        return redact_url(str(value)) if "://" in str(value) else value
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


class RedactingFilter(logging.Filter):
    """Installed on the service's log handlers (`install`); rewrites records, drops none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            database = _database_error(record.exc_info[1])
            if database is not None:
                safe = DatabaseError(describe(database))
                safe.__suppress_context__ = True
                record.exc_info = (DatabaseError, safe, record.exc_info[2])
                record.exc_text = None
        if isinstance(record.args, tuple):
            record.args = tuple(_safe_argument(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _safe_argument(v) for k, v in record.args.items()}
        return True


def install(handler: logging.Handler | None = None) -> None:
    """Add the filter to `handler`, or to every handler of the root logger."""
    handlers = [handler] if handler is not None else logging.getLogger().handlers
    for target in handlers:
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())
