"""One slow receiver cannot starve the others: attempts in flight are bounded per destination.

Twenty receivers drip their answers (each attempt takes the full 10 s deadline), with more
deliveries queued for them than a worker has slots. A healthy receiver's deliveries must still
arrive at the usual latency, far below the 10 s a slot held by a dripping receiver takes: the
worker sends at most `COUNTERSIGN_WEBHOOK_MAX_PER_HOST` attempts to one destination at once, and
a job for a full, slow destination gives its worker slot back (the sweep rings for it again).
`tests/webhooks/test_slots.py` covers the other half: a burst to one fast destination waits for
its slots instead.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack

import pytest

from tests.fixtures.flows import Flow
from tests.fixtures.worker import (  # noqa: F401  (fixtures)
    WebhookAdmin,
    Workers,
    api_fixture,
    clean_hooks_database_fixture,
    clock_file_fixture,
    hooks_database_url_fixture,
    hooks_engine_fixture,
    hooks_sessionmaker_fixture,
    hooks_settings_fixture,
    queued_app_fixture,
    redis_server_fixture,
    shared_clock_fixture,
    webhook_settings_fixture,
    workers_fixture,
)
from tests.webhooks.receiver import Receiver, Reply

pytestmark = pytest.mark.slow

DRIPPING = 20
REQUESTS_PER_DRIPPING = 3
# 20 destinations x 1 attempt each leave 5 of the worker's 25 slots for everyone else; without
# the bound, the 60 dripping deliveries would hold all 25 for 10 s at a time.
MAX_PER_HOST = 1
MAX_JOBS = 25
HEALTHY_REQUESTS = 5
# The usual latency is a fraction of a second; a slot held by a dripping receiver costs 10 s.
ON_TIME_SECONDS = 5.0
DRIP = Reply(200, body=b"x" * 100, drip=0.5, drip_after_headers=True)


async def test_dripping_receivers_leave_other_callers_deliveries_on_time(
    flow: Flow, admin: WebhookAdmin, workers: Workers
) -> None:
    await admin.create_secret()
    worker = workers.start(
        env={
            "COUNTERSIGN_WEBHOOK_MAX_PER_HOST": str(MAX_PER_HOST),
            "COUNTERSIGN_WORKER_MAX_JOBS": str(MAX_JOBS),
        }
    )
    worker.wait_ready()
    with ExitStack() as stack:
        dripping = [
            stack.enter_context(Receiver(default=DRIP)) for _ in range(DRIPPING)
        ]
        healthy = stack.enter_context(Receiver())
        semaphore = asyncio.Semaphore(8)

        async def start(artifact_id: str, url: str) -> tuple[str, float]:
            async with semaphore:
                created = await flow.start(artifact_id=artifact_id, callback_url=url)
                return str(created["request_id"]), time.monotonic()

        await asyncio.gather(
            *(
                start(f"drip-{r}-{n}", receiver.url)
                for r, receiver in enumerate(dripping)
                for n in range(REQUESTS_PER_DRIPPING)
            )
        )

        async def saturated() -> bool:
            return sum(len(r.calls) for r in dripping) >= DRIPPING * MAX_PER_HOST

        deadline = time.monotonic() + 10
        while not await saturated():
            assert time.monotonic() < deadline, "the dripping receivers were not called"
            await asyncio.sleep(0.05)

        created_at = dict(
            await asyncio.gather(
                *(start(f"healthy-{n}", healthy.url) for n in range(HEALTHY_REQUESTS))
            )
        )
        calls = await healthy.wait_for(
            lambda calls: len({c.request_id for c in calls}) >= HEALTHY_REQUESTS,
            within=20,
        )
        still_dripping = sum(len(r.calls) for r in dripping)

    first_arrival: dict[str, float] = {}
    for call in calls:
        first_arrival.setdefault(call.request_id, call.received_at)
    latencies = sorted(
        first_arrival[request_id] - at for request_id, at in created_at.items()
    )
    assert latencies[-1] < ON_TIME_SECONDS, (latencies, still_dripping)
