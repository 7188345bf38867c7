"""The background work itself, shared by arq workers and the embedded in-process loop."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from countersign.kit import idempotency
from countersign.timers import service as timer_service
from countersign.webhooks import delivery as delivery_service
from countersign.webhooks import slots
from countersign.wiring import Runtime
from countersign.worker.queue import Job

log = logging.getLogger("countersign.worker")

SWEEP_BATCH = 500
# A bound on one run of `run_due_locally`, in case a receiver keeps every pass busy.
MAX_PASSES = 1000


# A job that delivered one of a request's webhooks sends the next one the delivery released, and
# so on (no doorbell round trip through Redis between the steps of a chain), for at most this
# many deliveries or this long; whatever is left has its doorbell.
MAX_CHAIN = 20
MAX_CHAIN_SECONDS = 5.0


async def deliver_webhook(
    runtime: Runtime, delivery_id: uuid.UUID, destination: str | None = None
) -> str:
    """Send one delivery if it is due: claim, POST outside any transaction, record; then the
    next deliveries of its request that it released (`deliver_chain`). Answers for the first.

    "busy" when its destination has no free slot (`webhooks.slots`): nothing changed, the
    delivery stays due and the sweep rings for it again. `destination` comes with the doorbell,
    so a busy job ends before it reads the database.
    """
    return (await deliver_chain(runtime, delivery_id, destination))[0]


async def deliver_chain(
    runtime: Runtime, delivery_id: uuid.UUID, destination: str | None = None
) -> list[str]:
    """`deliver_webhook`'s work: what happened to each delivery it handled, in order."""
    started = time.monotonic()
    results: list[str] = []
    following: delivery_service.Released | None = None
    current: tuple[uuid.UUID, str | None] = (delivery_id, destination)
    while True:
        result, following = await _deliver_one(runtime, *current)
        results.append(result)
        if following is None:
            return results
        if len(results) >= MAX_CHAIN or time.monotonic() - started > MAX_CHAIN_SECONDS:
            break
        current = (following.delivery_id, following.destination)
    # The chain stops here: what it released and did not send gets its doorbell.
    await runtime.queue.send(
        [
            Job(
                *delivery_service.doorbell(
                    following.delivery_id,
                    following.attempt,
                    following.destination,
                    following.reason,
                )
            )
        ]
    )
    return results


async def _deliver_one(
    runtime: Runtime, delivery_id: uuid.UUID, destination: str | None
) -> tuple[str, delivery_service.Released | None]:
    if destination is None:
        async with runtime.transaction() as session:
            url = await delivery_service.url_of(session, delivery_id)
        if url is None:
            return "skipped", None
        destination = slots.destination(url)
    slot = await runtime.host_slots.acquire(destination)
    if slot is None:
        return "busy", None
    sent = False
    try:
        async with runtime.transaction() as session:
            prepared = await delivery_service.claim(session, runtime.box, delivery_id)
        if prepared is None:
            return "skipped", None
        sent = True
        outcome = await delivery_service.send(runtime.http_client, prepared)
    finally:
        await slot.release(sent=sent)
    async with runtime.transaction() as session:
        recorded = await delivery_service.record(
            session, prepared, outcome, ring_released=False
        )
    return ("delivered" if outcome.delivered else "failed"), recorded.released


async def due_deliveries(runtime: Runtime) -> list[uuid.UUID]:
    async with runtime.transaction() as session:
        return await delivery_service.due_ids(session, limit=SWEEP_BATCH)


async def run_timers(runtime: Runtime, *, limit: int = 200) -> dict[str, int]:
    """Due timers (resolution retries, SLA, reminders, expiry) of up to `limit` requests, the most
    overdue first, one request per transaction."""
    ran = timer_service.Ran()
    async with runtime.transaction() as session:
        request_ids = await timer_service.due_request_ids(session, limit=limit)
    for request_id in request_ids:
        try:
            async with runtime.transaction() as session:
                await timer_service.run_request_timers(
                    session, request_id=request_id, resolver=runtime.resolver, ran=ran
                )
        except Exception:
            log.exception(
                "timers of request %s failed; backed off, they stay due", request_id
            )
            try:
                async with runtime.transaction() as session:
                    await timer_service.record_timer_failure(session, request_id)
            except Exception:
                log.exception("could not back off the timers of request %s", request_id)
    async with runtime.transaction() as session:
        ran.add("idempotency_keys_purged", await idempotency.purge_expired(session))
    return ran.counts


async def run_due_locally(runtime: Runtime, *, concurrency: int = 20) -> dict[str, int]:
    """Embedded mode and test hooks: do every due piece of work in this process, until none is left.

    One pass sends the first due delivery of each request; the next one of a request becomes due
    when the earlier one is delivered or exhausted, so passes repeat until one sends nothing.
    Failed attempts are scheduled at least a second later, so this ends.
    """
    # Timers first: they write the outbox rows that the deliveries below then send.
    results: dict[str, int] = {**await run_timers(runtime), "webhooks": 0}
    semaphore = asyncio.Semaphore(concurrency)

    async def one(delivery_id: uuid.UUID) -> int:
        async with semaphore:
            try:
                results = await deliver_chain(runtime, delivery_id)
                return sum(r not in ("skipped", "busy") for r in results)
            except Exception:
                log.exception(
                    "delivery %s failed unexpectedly; it stays due", delivery_id
                )
                return 0

    for _ in range(MAX_PASSES):
        ids = await due_deliveries(runtime)
        sent = sum(await asyncio.gather(*(one(i) for i in ids)))
        results["webhooks"] += sent
        if not sent:
            break
    return results
