"""What the worker survives: SIGKILL mid-batch, a Redis outage, a second worker, hostile URLs.

Every scenario runs real `countersign worker` processes against real Redis and PostgreSQL, and a
loopback receiver. Delivery is at-least-once: a repeat is allowed only where a crash explains it,
and a repeat is always the same message (same `webhook-id`, same bytes).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from collections import defaultdict
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from countersign.models import ApprovalRequest, WebhookDelivery
from countersign.requests import engine
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import (
    Flow,
    stage,
)
from tests.fixtures.worker import (  # noqa: F401  (fixtures)
    RedisServer,
    SharedClock,
    WebhookAdmin,
    WorkerProcess,
    Workers,
    api_fixture,
    asgi_client,
    eventually,
    free_port,
    queued_app_fixture,
    redis_server_fixture,
    shared_clock_fixture,
    webhook_settings_fixture,
    workers_fixture,
)
from tests.webhooks.receiver import Call, Receiver, verify_standard

pytestmark = pytest.mark.slow

LEASE_SECONDS = 60
NOT_DELIVERED = {"decision_recorded", "stage_quorum_skipped"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def admin(api: httpx.AsyncClient, admin_headers: dict[str, str]) -> WebhookAdmin:
    return WebhookAdmin(api, admin_headers)


@pytest.fixture
async def flow(
    api: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    flow = Flow(api, admin_headers, token)
    await flow.publish([stage(1, ["alice"])])
    return flow


async def deliverable_event_ids(flow: Flow, request_ids: list[str]) -> set[str]:
    ids: set[str] = set()
    for request_id in request_ids:
        ids |= {
            e["id"]
            for e in await flow.events(request_id)
            if e["event_type"] not in NOT_DELIVERED
        }
    return ids


def delivered_ids(receiver: Receiver) -> set[str]:
    return {c.event_id for c in receiver.delivered()}


def assert_repeats_are_the_same_message(calls: list[Call]) -> None:
    """At-least-once: an event may arrive again, but only as the very same message."""
    by_event: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        assert call.header("webhook-id") == call.event_id
        assert call.header("X-Approval-Event-Id") == call.event_id
        by_event[call.event_id].append(call)
    for repeats in by_event.values():
        assert {c.body for c in repeats} == {repeats[0].body}


def assert_first_arrivals_in_sequence_order(calls: list[Call]) -> None:
    seen: set[str] = set()
    per_request: dict[str, list[int]] = defaultdict(list)
    for call in calls:
        if call.event_id not in seen:
            seen.add(call.event_id)
            per_request[call.request_id].append(call.sequence)
    for request_id, sequences in per_request.items():
        assert sequences == sorted(sequences), request_id


async def start_requests(flow: Flow, count: int, callback_url: str) -> list[str]:
    """Create `count` requests with a callback, a few at a time."""
    semaphore = asyncio.Semaphore(8)

    async def one(number: int) -> str:
        async with semaphore:
            created = await flow.start(
                artifact_id=f"a-{number}", callback_url=callback_url
            )
            return str(created["request_id"])

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def add_reminder_events(
    sessionmaker: async_sessionmaker[AsyncSession],
    request_ids: list[str],
    count: int,
) -> None:
    """Append events to each request's timeline the way the engine does, outbox rows included."""
    async with sessionmaker() as session:
        for request_id in request_ids:
            request = await session.get(
                ApprovalRequest, uuid.UUID(request_id), with_for_update=True
            )
            assert request is not None
            for number in range(1, count + 1):
                await engine.append_event(
                    session,
                    request,
                    "task_reminder",
                    "system",
                    {"stage_order": 1, "reminder": number},
                )
        await session.commit()


async def outbox_event_ids(sessionmaker: async_sessionmaker[AsyncSession]) -> set[str]:
    async with sessionmaker() as session:
        rows = await session.execute(select(WebhookDelivery.event_id))
        return {str(event_id) for event_id in rows.scalars()}


async def outbox_statuses(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> dict[str, int]:
    async with sessionmaker() as session:
        statuses = (await session.execute(select(WebhookDelivery.status))).scalars()
        counts: dict[str, int] = defaultdict(int)
        for status in statuses:
            counts[status] += 1
        return dict(counts)


async def wait_until_all_delivered(
    receiver: Receiver,
    expected: set[str],
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    workers: tuple[WorkerProcess, ...],
    within: float = 60,
) -> None:
    async def received() -> bool:
        return delivered_ids(receiver) >= expected

    async def recorded() -> bool:
        return await outbox_statuses(sessionmaker) == {"delivered": len(expected)}

    await eventually(
        received, within=within, what="every delivery received", workers=workers
    )
    await eventually(
        recorded, within=within, what="every outbox row delivered", workers=workers
    )


class TestWorkerKilledMidBatch:
    REQUESTS = 50
    EXTRA_EVENTS = 18  # + request_created and stage_started: 20 deliveries per request
    TOTAL = REQUESTS * (2 + EXTRA_EVENTS)

    async def test_every_delivery_arrives_at_least_once_with_the_same_webhook_id(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        workers: Workers,
        shared_clock: SharedClock,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        import time as _t; _t0 = _t.monotonic()
        secret = (await admin.create_secret())["secret"]
        request_ids = await start_requests(flow, self.REQUESTS, receiver.url)
        print("created", _t.monotonic() - _t0)
        await add_reminder_events(sessionmaker, request_ids, self.EXTRA_EVENTS)
        print("events", _t.monotonic() - _t0)
        expected = await outbox_event_ids(sessionmaker)
        assert len(expected) == self.TOTAL

        doomed = workers.start()
        await receiver.wait_for(lambda calls: len(calls) >= self.TOTAL // 10, within=60)
        doomed.kill()
        print("killed", _t.monotonic() - _t0, len(receiver.calls))
        assert len(delivered_ids(receiver)) < self.TOTAL, "finished before the kill"
        # What the dead worker had claimed stays leased until the lease runs out.
        shared_clock.advance(LEASE_SECONDS + 1)
        survivor = workers.start()

        await wait_until_all_delivered(
            receiver, expected, sessionmaker, workers=(survivor,), within=90
        )

        print("all", _t.monotonic() - _t0, len(receiver.calls))
        _st = Path(f"/proc/{survivor.process.pid}/stat").read_text().split()
        print("survivor cpu s", (int(_st[13]) + int(_st[14])) / os.sysconf("SC_CLK_TCK"))
        calls = receiver.calls
        assert delivered_ids(receiver) == expected
        assert_repeats_are_the_same_message(calls)
        assert_first_arrivals_in_sequence_order(calls)
        for call in calls:
            verify_standard(call, secret)
