"""Sending one outbox row: claim (short transaction) → POST (no transaction) → record (short transaction).

No database lock or transaction is held during the HTTP call, so a slow receiver never blocks the
API (on SQLite a transaction holds the whole database). A worker killed mid-send leaves a lease
that runs out; the sweep then sends again with the same `webhook-id` (at-least-once).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from countersign import __version__
from countersign.errors import AppError
from countersign.kit.clock import now
from countersign.kit.outbound import bounded_request
from countersign.models import WebhookAttempt, WebhookDelivery
from countersign.webhooks.repository import DeliveryRepository
from countersign.webhooks.secrets import SecretBox, signing_secrets
from countersign.webhooks.signing import sign_headers
from countersign.webhooks.slots import destination
from countersign.worker.queue import enqueue

log = logging.getLogger("countersign.webhooks")

# After attempt n fails, the next one waits RETRY_SCHEDULE[n-1] (±10 %): about 25 h in all.
RETRY_SCHEDULE = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(hours=6),
    timedelta(hours=6),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
# One attempt's one deadline: DNS, connect, sending and the whole answer (not per read).
TIMEOUT_SECONDS = 10.0
# What is read of a receiver's answer; the start of a failure's body goes in the attempt log.
MAX_ANSWER_BYTES = 64 * 1024
ERROR_EXCERPT_CHARS = 300
# The worker's bound on one delivery job (claim, send, record), enforced by arq, which cancels
# the job then. The lease outlives it, so a job still running never sees its delivery claimed
# and sent again in parallel: only a job that is gone (cancelled, killed) lets its lease run out.
JOB_TIMEOUT = timedelta(seconds=30)
LEASE = timedelta(seconds=60)
assert LEASE > JOB_TIMEOUT > timedelta(seconds=TIMEOUT_SECONDS)
MAX_RETRY_AFTER = timedelta(hours=24)
JOB_NAME = "webhooks.deliver"
# The sweep rings again for a delivery still due after this long, with a fresh job id: a doorbell
# taken by a worker that was killed before it claimed the delivery stays "in progress" in Redis
# for arq's job timeout (minutes), and a new job with the same id would be refused meanwhile.
SWEEP_DOORBELL_WINDOW = timedelta(seconds=30)
# A delivery that became due got a doorbell then; the sweep rings for it only once it has been
# due this long (a lost doorbell), so a busy worker is not handed a duplicate of every job.
SWEEP_GRACE = timedelta(seconds=5)


def job_id(delivery_id: uuid.UUID, attempt: int, reason: str = "") -> str:
    """One arq job per delivery attempt and reason: duplicates of the same doorbell collapse in Redis.

    Doorbells for different reasons (created, released by the previous delivery of its request,
    the sweep) get different ids, so one still queued or in flight never swallows the other.
    Extra doorbells are harmless: `claim` sends a delivery once per lease whatever rings.
    """
    suffix = f":{reason}" if reason else ""
    return f"{JOB_NAME}:{delivery_id}:{attempt}{suffix}"


def notify(delivery: WebhookDelivery, reason: str = "") -> None:
    """Ask a worker to send this delivery once the current transaction commits."""
    name, job, arguments = doorbell(
        delivery.id, delivery.attempt, destination(delivery.url), reason
    )
    enqueue(name, job, **arguments)


def doorbell(
    delivery_id: uuid.UUID, attempt: int, to: str, reason: str
) -> tuple[str, str, dict[str, str]]:
    """(job name, job id, arguments) of the job that sends this delivery."""
    return (
        JOB_NAME,
        job_id(delivery_id, attempt, reason),
        {"delivery_id": str(delivery_id), "destination": to},
    )


def sweep_reason() -> str:
    """The sweep's doorbell id part: stable within a window, so repeated sweeps collapse."""
    window = int(now().timestamp() // SWEEP_DOORBELL_WINDOW.total_seconds())
    return f"sweep-{window}"


@dataclass(frozen=True)
class Prepared:
    """Everything the send needs, read under the claim so the HTTP call needs no session."""

    delivery_id: uuid.UUID
    attempt: int
    url: str
    body: bytes
    headers: dict[str, str]
    trigger: str
    started_at: datetime
    # Set when the attempt cannot be signed: it is recorded as failed and nothing is sent.
    error: str | None = None


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after: timedelta | None = None
    abort: bool = False

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def url_of(session: AsyncSession, delivery_id: uuid.UUID) -> str | None:
    """The delivery's callback URL (it never changes), without locking anything."""
    return await DeliveryRepository(session).get_url(delivery_id)


async def claim(
    session: AsyncSession, box: SecretBox, delivery_id: uuid.UUID
) -> Prepared | None:
    """Take the lease on a due delivery and sign it; None when there is nothing to send now."""
    locked = await DeliveryRepository(session).lock_for_claim(delivery_id)
    at = now()
    if locked is None:
        return None
    delivery, waiting = locked
    if delivery.status != "pending":
        return None
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > at:
        return None
    if delivery.lease_until is not None and delivery.lease_until > at:
        return None
    if waiting:
        # Per-request order: this one goes when the earlier one is delivered or exhausted.
        return None
    if delivery.attempt >= MAX_ATTEMPTS:
        # Every attempt of the schedule was claimed, and the last ones never recorded a result
        # (their jobs were cancelled or killed mid-send). Giving up here, not only in `record`,
        # is what stops a job that always dies from being sent again forever.
        delivery.last_error = (
            "retries used up; the last attempt never recorded a result "
            "(its job was cancelled or killed)"
        )
        await _exhaust(
            session, delivery, delivery.last_error, attempts=delivery.attempt
        )
        return None
    delivery.lease_until = at + LEASE
    delivery.attempt += 1
    body = delivery.body.encode("utf-8")
    headers: dict[str, str] = {}
    error: str | None = None
    try:
        secrets = await signing_secrets(
            session, box, caller=delivery.caller, secret_id=delivery.secret_id
        )
        if secrets:
            headers = sign_headers(
                event_id=str(delivery.event_id),
                timestamp=int(at.timestamp()),
                body=body,
                secrets=secrets,
                user_agent=f"Countersign/{__version__}",
            )
        else:
            error = "no active signing secret for this caller; not sent unsigned"
    except (AppError, ValueError) as exc:
        # An undecryptable or unusable secret must show up as a failed attempt, not as a job
        # that fails before anything is recorded and is swept again forever.
        message = exc.message if isinstance(exc, AppError) else str(exc)
        error = f"cannot sign: {message}; not sent unsigned"
    return Prepared(
        delivery.id,
        delivery.attempt,
        delivery.url,
        body,
        headers,
        delivery.trigger,
        at,
        error,
    )


def _retry_after(headers: httpx.Headers) -> timedelta | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        delay = timedelta(seconds=max(int(value), 0))
    except ValueError:
        try:
            delay = parsedate_to_datetime(value) - now()
        except (TypeError, ValueError):
            return None
    return min(max(delay, timedelta(seconds=1)), MAX_RETRY_AFTER)


async def send(client: httpx.AsyncClient, prepared: Prepared) -> Outcome:
    """POST the frozen body. Anything but a 2xx within the timeout is a failure; redirects too."""
    if prepared.error is not None or not prepared.headers:
        return Outcome(None, prepared.error or "not signed; not sent unsigned", 0)
    started = time.perf_counter()
    try:
        answer = await bounded_request(
            client,
            "POST",
            prepared.url,
            deadline=TIMEOUT_SECONDS,
            max_bytes=MAX_ANSWER_BYTES,
            content=prepared.body,
            headers=prepared.headers,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        elapsed = int((time.perf_counter() - started) * 1000)
        return Outcome(
            None, f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__, elapsed
        )
    elapsed = int((time.perf_counter() - started) * 1000)
    abort = (
        answer.headers.get("webhook-delivery", "").strip().lower() == "abort-message"
    )
    error = None
    if not 200 <= answer.status_code < 300:
        error = f"HTTP {answer.status_code}"
        if 300 <= answer.status_code < 400:
            error += " (redirects are not followed)"
        excerpt = answer.excerpt(ERROR_EXCERPT_CHARS)
        if excerpt:
            error += f": {excerpt}"
    return Outcome(
        answer.status_code, error, elapsed, _retry_after(answer.headers), abort
    )


def next_delay(
    attempt: int, retry_after: timedelta | None, *, rng: random.Random | None = None
) -> timedelta:
    """Wait after failed attempt `attempt` (1-based): the schedule ±10 %, or the receiver's Retry-After."""
    if retry_after is not None:
        return retry_after
    base = RETRY_SCHEDULE[min(attempt, len(RETRY_SCHEDULE)) - 1]
    jitter = (rng or random).uniform(-0.1, 0.1)
    return base * (1 + jitter)


@dataclass(frozen=True)
class Released:
    """The next delivery of a request, due now because the one before it was settled."""

    delivery_id: uuid.UUID
    attempt: int
    destination: str
    # The doorbell's job id part (`job_id`): "after-<sequence of the one before>".
    reason: str


@dataclass(frozen=True)
class Recorded:
    """What recording an attempt did: the delivery, and the next one of its request that it
    released (now due), for the worker to send straight away."""

    delivery: WebhookDelivery | None
    released: Released | None = None


async def record(
    session: AsyncSession,
    prepared: Prepared,
    outcome: Outcome,
    *,
    ring_released: bool = True,
) -> Recorded:
    """Store the attempt and move the delivery on: delivered, retry later, or exhausted.

    `ring_released=False`: the caller sends the delivery this one releases itself (a chain,
    `worker.jobs.deliver_chain`) and rings for it only if it stops before; a doorbell here would
    only start a second job that finds the delivery already taken.
    """
    delivery = await DeliveryRepository(session).lock(
        prepared.delivery_id, skip_locked=False
    )
    if delivery is None:
        return Recorded(None)
    at = now()
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempt=prepared.attempt,
            started_at=prepared.started_at,
            duration_ms=outcome.duration_ms,
            status_code=outcome.status_code,
            error=outcome.error,
            trigger=prepared.trigger,
        )
    )
    delivery.last_attempt_at = prepared.started_at
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    delivery.lease_until = None
    if delivery.status != "pending":
        # Changed meanwhile (e.g. an admin action); keep its state.
        return Recorded(delivery)
    if outcome.delivered:
        delivery.status = "delivered"
        delivery.next_attempt_at = None
    elif (
        outcome.status_code == 410 or outcome.abort or prepared.attempt >= MAX_ATTEMPTS
    ):
        reason = (
            "410 Gone"
            if outcome.status_code == 410
            else "abort-message"
            if outcome.abort
            else "retries used up"
        )
        released = await _exhaust(
            session,
            delivery,
            f"{reason}: {outcome.error}",
            attempts=prepared.attempt,
            ring=ring_released,
        )
        return Recorded(delivery, released)
    else:
        delivery.next_attempt_at = at + next_delay(
            prepared.attempt, outcome.retry_after
        )
        return Recorded(delivery)
    return Recorded(
        delivery, await _release_next(session, delivery, ring=ring_released)
    )


async def _exhaust(
    session: AsyncSession,
    delivery: WebhookDelivery,
    reason: str,
    *,
    attempts: int,
    ring: bool = True,
) -> Released | None:
    """Give up on a delivery (counted, logged) and let the next one of its request go."""
    delivery.status = "exhausted"
    delivery.next_attempt_at = None
    delivery.lease_until = None
    log.error(
        "webhook delivery %s exhausted after %d attempts: %s",
        delivery.id,
        attempts,
        reason,
    )
    return await _release_next(session, delivery, ring=ring)


async def _release_next(
    session: AsyncSession, delivery: WebhookDelivery, *, ring: bool = True
) -> Released | None:
    """The next delivery of the same request was waiting on this one: send it now.

    Returns it: a worker that just sent this one sends it next, in the same job
    (`worker.jobs.deliver_chain`). `ring`: also ring its doorbell after the commit, for when no
    chain follows. A chain that is killed before it sends the next one loses nothing: the
    delivery is due from now on, and the sweep rings for it after `SWEEP_GRACE`.
    """
    following = await DeliveryRepository(session).get_next_pending(delivery)
    if following is None:
        return None
    # Due from now on (the sweep counts its grace period from here).
    following.next_attempt_at = now()
    released = Released(
        following.id,
        following.attempt,
        destination(following.url),
        f"after-{delivery.sequence}",
    )
    if ring:
        notify(following, released.reason)
    return released


async def _due(
    session: AsyncSession, limit: int, *, grace: timedelta = timedelta(0)
) -> list[tuple[uuid.UUID, int, str]]:
    """(id, attempt, url) of deliveries to send now (`DeliveryRepository.list_due`)."""
    return await DeliveryRepository(session).list_due(now(), limit, grace=grace)


async def due_ids(session: AsyncSession, *, limit: int = 500) -> list[uuid.UUID]:
    """Deliveries to send now (embedded loop and test hooks)."""
    return [delivery_id for delivery_id, _, _ in await _due(session, limit)]


async def ring_due(session: AsyncSession, *, limit: int = 500) -> int:
    """The sweep: a doorbell for every delivery that is due (and lost its own), after the commit."""
    due = await _due(session, limit, grace=SWEEP_GRACE)
    reason = sweep_reason()
    for delivery_id, attempt, url in due:
        enqueue(
            JOB_NAME,
            job_id(delivery_id, attempt, reason),
            delivery_id=str(delivery_id),
            destination=destination(url),
        )
    return len(due)


def reset_for_retry(delivery: WebhookDelivery) -> None:
    """Admin retry: attempts start over and are recorded as manual."""
    delivery.status = "pending"
    delivery.attempt = 0
    delivery.trigger = "manual"
    delivery.next_attempt_at = now()
    delivery.lease_until = None
    notify(delivery, "manual")
