"""A request's deliveries go out one after another in one job (issue 11: decision → callback).

Deliveries of one request are sent in sequence order: each waits for the one before it. The job
that delivered one sends the next it released straight away, instead of handing it to Redis and
the next worker poll, so the final callback of a decision follows the earlier ones within
milliseconds. Shown here with no doorbell at all: the test app's queue rings no worker, so only
the chain can deliver anything after the first.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from countersign.webhooks.delivery import job_id
from countersign.worker import jobs
from countersign.worker.queue import ArqQueue
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import Flow, stage
from tests.fixtures.worker import (  # noqa: F401  (fixtures used by name)
    RedisServer,
    SharedRedis,
    WebhookAdmin,
    redis_server_fixture,
)
from tests.webhooks.receiver import Receiver


@pytest.fixture
def direct(
    client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    return Flow(client, admin_headers, token)


async def test_one_job_delivers_the_whole_chain_of_a_request_in_order(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    direct: Flow,
    receiver: Receiver,
) -> None:
    admin = WebhookAdmin(client, admin_headers)
    await admin.create_secret()
    await direct.publish([stage(1, ["alice"])])
    created = await direct.start(callback_url=receiver.url)
    request_id = str(created["request_id"])
    await direct.approve("alice", request_id)
    pending = sorted(
        await admin.deliveries(request_id=request_id), key=lambda d: d["sequence"]
    )
    assert [d["status"] for d in pending] == ["pending"] * len(pending)
    assert len(pending) >= 3  # created, stage started, stage completed, approved

    result = await jobs.deliver_webhook(app.state.runtime, pending[0]["id"])

    assert result == "delivered"
    delivered = sorted(
        await admin.deliveries(request_id=request_id), key=lambda d: d["sequence"]
    )
    assert [d["status"] for d in delivered] == ["delivered"] * len(pending)
    assert [c.sequence for c in receiver.delivered()] == [
        d["sequence"] for d in pending
    ]
    assert receiver.delivered()[-1].event_type == "request_approved"


async def test_a_chain_that_stops_early_rings_for_what_it_released(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    direct: Flow,
    receiver: Receiver,
    redis_server: RedisServer | SharedRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside a chain no doorbell is rung for the next delivery (the job sends it itself); when the
    chain stops at its bound, the one it released and did not send gets its doorbell in Redis."""
    admin = WebhookAdmin(client, admin_headers)
    await admin.create_secret()
    await direct.publish([stage(1, ["alice"])])
    created = await direct.start(callback_url=receiver.url)
    request_id = str(created["request_id"])
    await direct.approve("alice", request_id)
    pending = sorted(
        await admin.deliveries(request_id=request_id), key=lambda d: d["sequence"]
    )
    assert len(pending) >= 3
    runtime = app.state.runtime
    queue = ArqQueue(url=redis_server.url)
    monkeypatch.setattr(runtime, "queue", queue)
    monkeypatch.setattr(jobs, "MAX_CHAIN", 2)
    redis_server.flush()
    try:
        results = await jobs.deliver_chain(runtime, pending[0]["id"])
        assert results == ["delivered", "delivered"]
        rung = sorted(
            key.decode()
            for key in await queue._pool().keys("arq:job:*")  # arq's job keys
        )
    finally:
        await queue.close()

    # Exactly one doorbell: for the third delivery, released by the second.
    third, second = pending[2], pending[1]
    assert rung == [
        "arq:job:" + job_id(uuid.UUID(third["id"]), 0, f"after-{second['sequence']}")
    ]
    statuses = sorted(
        await admin.deliveries(request_id=request_id), key=lambda d: d["sequence"]
    )
    assert [d["status"] for d in statuses[:3]] == ["delivered", "delivered", "pending"]
