"""Domain metrics, counted where transactions commit, and the gauges read at scrape time.

Counters: one pair of SQLAlchemy session hooks sees every row the engine writes. After each
flush, `_collect` notes what the flushed rows mean (a new request, a decision, a stage that
ended, a breach handled, a webhook attempt, a delivery delivered or exhausted); after the
commit, `_emit` counts them. A rollback (of the transaction, or of the savepoint they were
flushed in) drops them, so a command that resolve-then-lock runs twice counts once. Nothing here
runs a statement: it reads the objects already in the session. The engine itself is unaware of
metrics.

Gauges (`GET /metrics` of the API): a few cheap aggregate queries per scrape (outbox backlog and
its oldest row, exhausted deliveries, stages in `resolving`, timers due and overdue), cached for
a few seconds and bounded by a timeout, so a slow database cannot hang the scrape: it then
answers without them and says so (`countersign_metrics_database_up 0`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import case, event, func, literal, select, text, union_all
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.util import identity_key

from countersign.kit import metrics
from countersign.kit.clock import now
from countersign.models import (
    ApprovalRequest,
    Decision,
    Event,
    RequestStage,
    Task,
    WebhookAttempt,
    WebhookDelivery,
)
from countersign.requests import domain
from countersign.requests.domain import RequestStatus, StageStatus

# --- counters: noted after each flush, counted after the commit --------------------------------

_PENDING = "countersign_metrics"
FINISHED_STATUSES = frozenset(
    {
        RequestStatus.APPROVED,
        RequestStatus.REJECTED,
        RequestStatus.CANCELLED,
        RequestStatus.EXPIRED,
        RequestStatus.CHANGES_REQUESTED,
    }
)
ENDED_STAGE_STATUSES = frozenset(
    {
        StageStatus.APPROVED,
        StageStatus.REJECTED,
        StageStatus.SKIPPED,
        StageStatus.CANCELLED,
    }
)
DECIDED_STAGE_STATUSES = frozenset({StageStatus.APPROVED, StageStatus.REJECTED})


@dataclass
class _Noted:
    """What one flush wrote, in the transaction (or savepoint) it was written in."""

    transaction: SessionTransaction
    observations: list[tuple[Any, tuple[str, ...], float | None]] = field(
        default_factory=list
    )

    def inc(self, metric: Any, *labels: str) -> None:
        self.observations.append((metric, labels, None))

    def observe(self, metric: Any, value: float, *labels: str) -> None:
        self.observations.append((metric, labels, value))


def _changed_to(obj: Any, attribute: str) -> Any:
    """The attribute's new value when this flush changed it, else None (never loads anything)."""
    history = sa_inspect(obj).attrs[attribute].history
    return history.added[0] if history.added else None


def _value(obj: Any, attribute: str) -> Any:
    """The attribute as the session holds it; None when not loaded (a hook must not load)."""
    return sa_inspect(obj).dict.get(attribute)


def _policy(request: ApprovalRequest | None) -> str:
    return metrics.policy_label(
        _value(request, "policy_key") if request is not None else None
    )


def _policy_of(session: Session, request_id: uuid.UUID | None) -> str:
    if request_id is None:
        return metrics.policy_label(None)
    request = session.identity_map.get(identity_key(ApprovalRequest, request_id))
    return _policy(request if isinstance(request, ApprovalRequest) else None)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def _owning_transaction(session: Session) -> SessionTransaction | None:
    """The savepoint or root transaction the flush ran in (not the flush's own subtransaction)."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    return transaction


def _collect(session: Session, _flush_context: Any) -> None:
    transaction = _owning_transaction(session)
    if transaction is None:
        return
    noted = _Noted(transaction)
    for obj in session.new:
        if isinstance(obj, ApprovalRequest):
            noted.inc(metrics.REQUESTS_CREATED, _policy(obj))
            _note_request(noted, obj)
        elif isinstance(obj, Decision):
            noted.inc(metrics.DECISIONS, str(_value(obj, "action")))
        elif isinstance(obj, WebhookAttempt):
            code = _value(obj, "status_code")
            delivered = code is not None and 200 <= code < 300
            noted.inc(
                metrics.WEBHOOK_ATTEMPTS,
                "delivered" if delivered else "failed",
                metrics.status_class(code),
            )
        elif (
            isinstance(obj, Event)
            and _value(obj, "event_type") == "stage_resolution_failed"
        ):
            escalation = bool((_value(obj, "payload") or {}).get("escalation"))
            noted.inc(
                metrics.RESOLUTION_FAILURES, "escalation" if escalation else "start"
            )
        elif isinstance(obj, RequestStage):
            _note_stage(session, noted, obj)
    for obj in session.dirty:
        if isinstance(obj, RequestStage):
            _note_stage(session, noted, obj)
        elif isinstance(obj, ApprovalRequest):
            _note_request(noted, obj)
        elif isinstance(obj, WebhookDelivery):
            status = _changed_to(obj, "status")
            if status == "delivered":
                lag = _seconds(_value(obj, "created_at"), now())
                if lag is not None:
                    noted.observe(metrics.WEBHOOK_LAG, lag)
            elif status == "exhausted":
                noted.inc(metrics.WEBHOOK_EXHAUSTED)
    if noted.observations:
        session.info.setdefault(_PENDING, []).append(noted)


def _note_request(noted: _Noted, request: ApprovalRequest) -> None:
    status = _changed_to(request, "status")
    if status in FINISHED_STATUSES:
        noted.inc(metrics.REQUESTS_FINISHED, _policy(request), str(status))


def _note_stage(session: Session, noted: _Noted, stage: RequestStage) -> None:
    status = _changed_to(stage, "status")
    if status in ENDED_STAGE_STATUSES:
        noted.inc(metrics.STAGE_OUTCOMES, str(status))
        if status in DECIDED_STAGE_STATUSES:
            seconds = _seconds(
                _value(stage, "started_at"), _value(stage, "completed_at")
            )
            if seconds is not None:
                noted.observe(
                    metrics.TIME_TO_DECISION,
                    seconds,
                    _policy_of(session, _value(stage, "request_id")),
                    str(status),
                )
    if _changed_to(stage, "breach_handled_at") is not None:
        noted.inc(metrics.SLA_BREACHES, str(_value(stage, "on_breach") or "notify"))


def _emit(session: Session) -> None:
    pending: list[_Noted] = session.info.pop(_PENDING, [])
    for noted in pending:
        for metric, labels, value in noted.observations:
            target = metric.labels(*labels) if labels else metric
            if value is None:
                target.inc()
            else:
                target.observe(value)


def _drop(session: Session, previous: SessionTransaction) -> None:
    """A rollback: forget what was flushed in the transaction (or savepoint) that rolled back."""
    pending: list[_Noted] | None = session.info.get(_PENDING)
    if not pending:
        return
    kept = [n for n in pending if not _within(n.transaction, previous)]
    if kept:
        session.info[_PENDING] = kept
    else:
        session.info.pop(_PENDING, None)


def _ended(session: Session, transaction: SessionTransaction) -> None:
    """The root transaction ended (after its commit was counted, or closed without one)."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def _within(
    transaction: SessionTransaction | None, ancestor: SessionTransaction
) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


_installed = False


def install() -> None:
    """Listen on every session of the process (idempotent)."""
    global _installed
    if _installed:
        return
    event.listen(Session, "after_flush", _collect)
    event.listen(Session, "after_commit", _emit)
    event.listen(Session, "after_soft_rollback", _drop)
    event.listen(Session, "after_transaction_end", _ended)
    _installed = True


def watch_pool(engine: AsyncEngine) -> None:
    """`countersign_db_pool_connections_in_use` follows the pools' checkouts.

    Set from the pools' own count (`Pool.checkedout`) on every checkout and checkin rather than
    counted up and down: a connection that fails while being checked out (a database outage) is
    checked in without a matching checkout event, and a running count drifts below zero.
    """
    sync: Engine = engine.sync_engine
    _watched.add(sync)

    def in_use() -> int:
        return sum(_checked_out(e) for e in list(_watched))

    def checkout(*_: Any) -> None:
        metrics.DB_POOL_IN_USE.set(in_use())

    def checkin(*_: Any) -> None:
        # Fired before the connection goes back to the pool, which still counts it.
        metrics.DB_POOL_IN_USE.set(max(in_use() - 1, 0))

    event.listen(sync, "checkout", checkout)
    event.listen(sync, "checkin", checkin)


_watched: weakref.WeakSet[Engine] = weakref.WeakSet()


def _checked_out(engine: Engine) -> int:
    count = getattr(
        engine.pool, "checkedout", None
    )  # NullPool and StaticPool have none
    return int(count()) if callable(count) else 0


# --- gauges read at scrape time -----------------------------------------------------------------

# A scrape waits at most this long for the database; Prometheus' own scrape timeout is 10 s.
SNAPSHOT_TIMEOUT_SECONDS = 2.0
# Scrapes within this long of the last query reuse its answer (several Prometheus replicas).
SNAPSHOT_TTL_SECONDS = 5.0
# A timer due for longer than this is overdue: no worker has handled it in several sweeps.
OVERDUE_AFTER = timedelta(minutes=1)


@dataclass(frozen=True)
class Snapshot:
    outbox_pending: int
    outbox_due: int
    outbox_oldest_pending_seconds: float
    deliveries_exhausted: int
    stages_resolving: int
    timers_due: int
    timers_overdue: int


async def read_snapshot(session: AsyncSession) -> Snapshot:
    """Four aggregate queries over indexed status columns; no row is locked."""
    at = now()
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL statement_timeout = 2000"))
    pending = WebhookDelivery.status == "pending"
    outbox = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(
                    func.sum(case((WebhookDelivery.next_attempt_at <= at, 1), else_=0)),
                    0,
                ),
                func.min(WebhookDelivery.created_at),
            ).where(pending)
        )
    ).one()
    exhausted = await session.scalar(
        select(func.count()).where(WebhookDelivery.status == "exhausted")
    )
    resolving = await session.scalar(
        select(func.count()).where(RequestStage.status == StageStatus.RESOLVING)
    )
    timers = (await session.execute(_timers_query(at))).one()
    oldest: datetime | None = outbox[2]
    if oldest is not None and oldest.tzinfo is None:  # SQLite aggregates lose the type
        oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=at.tzinfo)
    return Snapshot(
        outbox_pending=int(outbox[0]),
        outbox_due=int(outbox[1]),
        outbox_oldest_pending_seconds=_seconds(oldest, at) or 0.0,
        deliveries_exhausted=int(exhausted or 0),
        stages_resolving=int(resolving or 0),
        timers_due=int(timers[0] or 0),
        timers_overdue=int(timers[1] or 0),
    )


def _timers_query(at: datetime) -> Any:
    """Due timers of every kind the timer sweep handles (`timers.service.due_request_ids`)."""
    due = union_all(
        select(RequestStage.next_resolution_at.label("due")).where(
            RequestStage.status == StageStatus.RESOLVING,
            RequestStage.next_resolution_at <= at,
        ),
        select(RequestStage.due_at).where(
            RequestStage.status == StageStatus.ACTIVE,
            RequestStage.due_at <= at,
            RequestStage.breach_handled_at.is_(None),
        ),
        select(Task.remind_at).where(
            Task.status.in_(domain.UNDECIDED_TASK_STATUSES),
            Task.kind == "approver",
            Task.remind_at <= at,
        ),
        select(ApprovalRequest.expires_at).where(
            ApprovalRequest.status.in_(
                (RequestStatus.IN_REVIEW, RequestStatus.CHANGES_REQUESTED)
            ),
            ApprovalRequest.expires_at <= at,
        ),
    ).subquery()
    overdue_before = at - OVERDUE_AFTER
    return select(
        func.count(),
        func.coalesce(
            func.sum(case((due.c.due <= overdue_before, 1), else_=literal(0))), 0
        ),
    ).select_from(due)


class SnapshotCollector:
    """The scrape-time gauges, from one `Snapshot` (or none: the database did not answer)."""

    def __init__(self, snapshot: Snapshot | None) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "countersign_metrics_database_up",
            "1 when the scrape-time database gauges below were read, 0 when the database "
            "did not answer within the scrape's bound",
        )
        up.add_metric([], 1.0 if self.snapshot is not None else 0.0)
        yield up
        if self.snapshot is None:
            return
        s = self.snapshot
        for name, doc, value in (
            (
                "countersign_outbox_pending",
                "Webhook deliveries not yet delivered or exhausted",
                s.outbox_pending,
            ),
            (
                "countersign_outbox_due",
                "Pending webhook deliveries whose next attempt is due now",
                s.outbox_due,
            ),
            (
                "countersign_outbox_oldest_pending_age_seconds",
                "Age of the oldest pending webhook delivery (0 when none)",
                s.outbox_oldest_pending_seconds,
            ),
            (
                "countersign_outbox_exhausted",
                "Webhook deliveries given up and not retried since (an operator's to retry)",
                s.deliveries_exhausted,
            ),
            (
                "countersign_stages_resolving",
                "Stages waiting in `resolving` for their approvers (a directory or resolver outage)",
                s.stages_resolving,
            ),
            (
                "countersign_timers_due",
                "Timers (resolution retries, SLA breaches, reminders, expiries) due now",
                s.timers_due,
            ),
            (
                "countersign_timers_overdue",
                "Timers due for more than a minute (no worker handled them)",
                s.timers_overdue,
            ),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], float(value))
            yield gauge


@dataclass
class SnapshotCache:
    sessionmaker: async_sessionmaker[AsyncSession]
    value: Snapshot | None = None
    taken: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self) -> Snapshot | None:
        async with self.lock:
            if time.monotonic() - self.taken < SNAPSHOT_TTL_SECONDS:
                return self.value
            try:
                async with asyncio.timeout(SNAPSHOT_TIMEOUT_SECONDS):
                    async with self.sessionmaker() as session, session.begin():
                        self.value = await read_snapshot(session)
            except Exception:
                # Counted as `countersign_metrics_database_up 0`; /v1/health says why.
                self.value = None
            self.taken = time.monotonic()
            return self.value


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def get_metrics(request: Request) -> Response:
    cache: SnapshotCache | None = getattr(request.app.state, "metrics_snapshot", None)
    if cache is None:
        cache = SnapshotCache(request.app.state.sessionmaker)
        request.app.state.metrics_snapshot = cache
    snapshot = await cache.get()
    body = metrics.render([SnapshotCollector(snapshot)])
    return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)
