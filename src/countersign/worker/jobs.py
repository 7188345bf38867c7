"""The background work itself, shared by arq workers and the embedded in-process loop."""

from __future__ import annotations

import asyncio
import logging
import uuid

from countersign.webhooks import delivery as delivery_service
from countersign.worker.runtime import Runtime

log = logging.getLogger("countersign.worker")

SWEEP_BATCH = 500
# A bound on one run of `run_due_locally`, in case a receiver keeps every pass busy.
MAX_PASSES = 1000


async def deliver_webhook(runtime: Runtime, delivery_id: uuid.UUID) -> str:
    """Send one delivery if it is due: claim, POST outside any transaction, record."""
    async with runtime.transaction() as session:
        prepared = await delivery_service.claim(session, runtime.box, delivery_id)
    if prepared is None:
        return "skipped"
    outcome = await delivery_service.send(runtime.http_client, prepared)
    async with runtime.transaction() as session:
        await delivery_service.record(session, prepared, outcome)
    return "delivered" if outcome.delivered else "failed"


async def due_deliveries(runtime: Runtime) -> list[uuid.UUID]:
    async with runtime.transaction() as session:
        return await delivery_service.due_ids(session, limit=SWEEP_BATCH)


async def run_due_locally(runtime: Runtime, *, concurrency: int = 20) -> dict[str, int]:
    """Embedded mode and test hooks: do every due piece of work in this process, until none is left.

    One pass sends the first due delivery of each request; the next one of a request becomes due
    when the earlier one is delivered or exhausted, so passes repeat until one sends nothing.
    Failed attempts are scheduled at least a second later, so this ends.
    """
    semaphore = asyncio.Semaphore(concurrency)
    results: dict[str, int] = {"webhooks": 0}

    async def one(delivery_id: uuid.UUID) -> bool:
        async with semaphore:
            try:
                return await deliver_webhook(runtime, delivery_id) != "skipped"
            except Exception:
                log.exception(
                    "delivery %s failed unexpectedly; it stays due", delivery_id
                )
                return False

    for _ in range(MAX_PASSES):
        ids = await due_deliveries(runtime)
        sent = sum(await asyncio.gather(*(one(i) for i in ids)))
        results["webhooks"] += sent
        if not sent:
            break
    return results
