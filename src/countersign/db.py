"""Engine, sessions and the declarative base.

Only `get_session` (API) and the worker's job session commit; services flush (ADR 0002).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool

from countersign.worker.queue import JobQueue, flush, start_buffer

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact), plain JSON on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both dialects.

    SQLite has no timezone type and hands back naive values; this keeps every datetime the service
    sees aware and in UTC, so comparisons and RFC 3339 rendering behave the same everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                "naive datetimes are not stored; use countersign.kit.clock.now()"
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSONType}


def new_id() -> uuid.UUID:
    return uuid.uuid4()


# Seconds one PostgreSQL connection attempt may take (TCP, TLS and the startup exchange).
CONNECT_TIMEOUT_SECONDS = 5.0


def create_engine(
    url: str, *, pool: bool = True, pool_size: int = 10, max_overflow: int = 20
) -> AsyncEngine:
    """One engine per process. SQLite gets WAL, foreign keys and `BEGIN IMMEDIATE` writes."""
    # hide_parameters: a database error (and SQLAlchemy's statement log, when an operator turns
    # it on) never writes the statement's parameters, which carry contexts, comments and ids.
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, hide_parameters=True
        )
        _configure_sqlite(engine)
        return engine
    # A server that accepts the connection but never answers (a hung host, a full backlog behind
    # a proxy) must surface as an outage within seconds, not asyncpg's default minute per attempt.
    kwargs: dict[str, Any] = {
        "pool_pre_ping": True,
        "hide_parameters": True,
        "connect_args": {"timeout": CONNECT_TIMEOUT_SECONDS},
    }
    if not pool:
        kwargs = {
            "poolclass": NullPool,
            "hide_parameters": True,
            "connect_args": {"timeout": CONNECT_TIMEOUT_SECONDS},
        }
    else:
        kwargs.update(pool_size=pool_size, max_overflow=max_overflow)
    return create_async_engine(url, **kwargs)


# The exceptions a database outage surfaces as: SQLAlchemy's wrappers, and the OS-level errors
# asyncpg raises unwrapped while connecting (refused, reset, timed out). `is_unreachable` decides.
OUTAGE_CANDIDATES: tuple[type[Exception], ...] = (
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    OSError,
)

# SQLSTATE classes that mean "no usable connection": 08 connection exception, 57P01-57P03
# admin/crash shutdown and "cannot connect now" (the server is starting or stopping).
_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def is_unreachable(exc: BaseException) -> bool:
    """True when `exc` says the database could not be reached, as opposed to a failed statement.

    Those become 503 `dependency_unavailable`; the pool's pre-ping replaces dead connections, so
    the service recovers by itself when the database is back.
    """
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, OSError):
        # Refused/reset/timed out, a failed DNS lookup, or asyncio's bare OSError that sums up
        # every address it tried ("Multiple exceptions: Connect call failed..."). Not file errors.
        return type(exc) is OSError or isinstance(
            exc, ConnectionError | TimeoutError | socket.gaierror
        )
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError):
            return True
        orig = exc.orig
        sqlstate = getattr(orig, "sqlstate", None) or getattr(
            getattr(orig, "__cause__", None), "sqlstate", None
        )
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNREACHABLE_SQLSTATES):
            return True
        cause = getattr(orig, "__cause__", None)
        return isinstance(cause, OSError)
    return False


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below) instead of pysqlite's implicit, deferred one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Every transaction takes the write lock up front: SQLite's equivalent of locking the
        # request row, and it avoids the deadlock of two readers upgrading to writers at once.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession], queue: JobQueue
) -> AsyncIterator[AsyncSession]:
    """The one transaction edge (an HTTP request or a job step): commit or roll back here only.

    Jobs the work asked for (`worker.queue.enqueue`) are sent only after the commit, and dropped on
    rollback, so no worker ever hears of rows that were not committed (ADR 0002).
    """
    jobs = start_buffer()
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            jobs.clear()
            raise
        else:
            await session.commit()
    await flush(queue, jobs)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The API's one transaction per HTTP request.

    Injected with `scope="function"` so the commit runs before the response is sent: a failed
    commit becomes a 500, never a 201 (ADR 0002).
    """
    async with transaction(
        request.app.state.sessionmaker, request.app.state.job_queue
    ) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
