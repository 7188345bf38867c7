"""What the worker survives: SIGKILL mid-batch, a Redis outage, a second worker, hostile URLs.

Every scenario runs real `countersign worker` processes against real Redis and PostgreSQL, and a
loopback receiver. Delivery is at-least-once: a repeat is allowed only where a crash explains it,
and a repeat is always the same message (same `webhook-id`, same bytes).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from countersign.app import create_app
from countersign.config import AuthMode, Settings
from countersign.models import ApprovalRequest, WebhookAttempt, WebhookDelivery
from countersign.requests import engine
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import (
    CALLER_CLIENT,
    CALLER_ID,
    Flow,
    create_request,
    problem_code,
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
    clean_hooks_database_fixture,
    clock_file_fixture,
    eventually,
    free_port,
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
from tests.identity.jwks_server import JwksServer
from tests.webhooks.receiver import Call, Receiver, Reply, verify_standard

pytestmark = pytest.mark.slow

LEASE_SECONDS = 60
NOT_DELIVERED = {"decision_recorded", "stage_quorum_skipped"}

ISSUER = "https://idp.test/realms/registry"
AUDIENCE = "countersign"
# A worker outside dev mode that may reach 127.0.0.1 and nothing else non-public.
STRICT_WORKER_ENV = {
    "COUNTERSIGN_AUTH_MODE": "oidc",
    "COUNTERSIGN_OIDC_JWKS_URL": "http://127.0.0.1:9/unused-by-workers",
    "COUNTERSIGN_OIDC_ISSUERS": ISSUER,
    "COUNTERSIGN_OIDC_AUDIENCE": AUDIENCE,
    "COUNTERSIGN_OUTBOUND_ALLOW": "127.0.0.1/32",
}


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
    hooks_sessionmaker: async_sessionmaker[AsyncSession],
    request_ids: list[str],
    count: int,
) -> None:
    """Append events to each request's timeline the way the engine does, outbox rows included."""
    async with hooks_sessionmaker() as session:
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


async def outbox_event_ids(
    hooks_sessionmaker: async_sessionmaker[AsyncSession],
) -> set[str]:
    async with hooks_sessionmaker() as session:
        rows = await session.execute(select(WebhookDelivery.event_id))
        return {str(event_id) for event_id in rows.scalars()}


async def outbox_statuses(
    hooks_sessionmaker: async_sessionmaker[AsyncSession],
) -> dict[str, int]:
    async with hooks_sessionmaker() as session:
        statuses = (await session.execute(select(WebhookDelivery.status))).scalars()
        counts: dict[str, int] = defaultdict(int)
        for status in statuses:
            counts[status] += 1
        return dict(counts)


async def wait_until_all_delivered(
    receiver: Receiver,
    expected: set[str],
    hooks_sessionmaker: async_sessionmaker[AsyncSession],
    *,
    workers: tuple[WorkerProcess, ...],
    within: float = 60,
) -> None:
    async def received() -> bool:
        return delivered_ids(receiver) >= expected

    async def recorded() -> bool:
        return await outbox_statuses(hooks_sessionmaker) == {"delivered": len(expected)}

    await eventually(
        received, within=within, what="every delivery received", workers=workers
    )
    await eventually(
        recorded, within=within, what="every outbox row delivered", workers=workers
    )


def async_predicate(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return predicate()

    return check


async def attempts_per_delivery(
    hooks_sessionmaker: async_sessionmaker[AsyncSession],
) -> set[int]:
    async with hooks_sessionmaker() as session:
        statement = (
            select(func.count())
            .select_from(WebhookAttempt)
            .group_by(WebhookAttempt.delivery_id)
        )
        return set((await session.execute(statement)).scalars())


async def repoint_callback(
    hooks_sessionmaker: async_sessionmaker[AsyncSession], request_id: str, url: str
) -> str:
    """Change a request's stored callback URL directly, then append an event; its event id."""
    async with hooks_sessionmaker() as session:
        request = await session.get(
            ApprovalRequest, uuid.UUID(request_id), with_for_update=True
        )
        assert request is not None
        request.callback_url = url
        event = await engine.append_event(
            session, request, "task_reminder", "system", {"stage_order": 1}
        )
        await session.commit()
        return str(event.id)


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    jwk = dict(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
    jwk.update({"use": "sig", "alg": "RS256", "kid": "strict-1"})
    return jwk


def oidc_token(key: rsa.RSAPrivateKey, username: str, *, azp: str) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "preferred_username": username,
        "azp": azp,
        "iat": now,
        "exp": now + 300,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "strict-1"})


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
        hooks_sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        secret = (await admin.create_secret())["secret"]
        request_ids = await start_requests(flow, self.REQUESTS, receiver.url)
        await add_reminder_events(hooks_sessionmaker, request_ids, self.EXTRA_EVENTS)
        expected = await outbox_event_ids(hooks_sessionmaker)
        assert len(expected) == self.TOTAL

        doomed = workers.start()
        await receiver.wait_for(lambda calls: len(calls) >= self.TOTAL // 10, within=60)
        doomed.kill()
        assert len(delivered_ids(receiver)) < self.TOTAL, "finished before the kill"
        # What the dead worker had claimed stays leased until the lease runs out.
        shared_clock.advance(LEASE_SECONDS + 1)
        survivor = workers.start()

        await wait_until_all_delivered(
            receiver, expected, hooks_sessionmaker, workers=(survivor,), within=90
        )

        calls = receiver.calls
        assert delivered_ids(receiver) == expected
        assert_repeats_are_the_same_message(calls)
        assert_first_arrivals_in_sequence_order(calls)
        for call in calls:
            verify_standard(call, secret)


class TestRedisOutage:
    async def test_work_committed_while_redis_is_down_is_delivered_once_it_is_back(
        self,
        hooks_settings: Settings,
        admin_headers: dict[str, str],
        token: TokenFactory,
        receiver: Receiver,
        workers: Workers,
        tmp_path: Path,
    ) -> None:
        redis = RedisServer(free_port(), tmp_path / "redis.log").start()
        settings = hooks_settings.model_copy(update={"redis_url": redis.url})
        service = create_app(settings, in_process_worker=False)
        try:
            async with (
                service.router.lifespan_context(service),
                asgi_client(service) as client,
            ):
                flow = Flow(client, admin_headers, token)
                await flow.publish([stage(1, ["alice"])])
                await WebhookAdmin(client, admin_headers).create_secret()
                worker = workers.start(settings=settings)
                before = await flow.start(
                    artifact_id="before", callback_url=receiver.url
                )
                await receiver.wait_for_delivered(2)

                redis.stop()
                during = []
                for number in range(3):
                    created = await flow.create(
                        artifact_id=f"during-{number}", callback_url=receiver.url
                    )
                    assert created.status_code == 201, created.text
                    during.append(created.json()["request_id"])
                    await flow.approve("alice", during[-1])
                redis.start()

                expected = await deliverable_event_ids(
                    flow, [before["request_id"], *during]
                )
                await eventually(
                    async_predicate(lambda: delivered_ids(receiver) >= expected),
                    what="every delivery after Redis came back",
                    workers=(worker,),
                )
        finally:
            redis.stop()
        assert worker.alive, "the worker must ride out a Redis restart"
        assert "lost Redis" in worker.log()
        assert_repeats_are_the_same_message(receiver.calls)
        assert_first_arrivals_in_sequence_order(receiver.calls)


class TestTwoWorkers:
    REQUESTS = 20

    async def test_they_share_the_load_and_send_each_message_once(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        workers: Workers,
        hooks_sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        secret = (await admin.create_secret())["secret"]
        pair = (workers.start(), workers.start())
        for worker in pair:
            await asyncio.to_thread(worker.wait_ready)

        request_ids = await start_requests(flow, self.REQUESTS, receiver.url)
        for request_id in request_ids:
            await flow.approve("alice", request_id)
        expected = await deliverable_event_ids(flow, request_ids)
        await wait_until_all_delivered(
            receiver, expected, hooks_sessionmaker, workers=pair
        )

        calls = receiver.calls
        event_ids = [c.event_id for c in calls]
        assert len(event_ids) == len(set(event_ids)) == len(expected)
        assert await attempts_per_delivery(hooks_sessionmaker) == {1}
        assert_first_arrivals_in_sequence_order(calls)
        for call in calls:
            verify_standard(call, secret)
        for number, worker in enumerate(pair, start=1):
            assert "● 'delivered'" in worker.log(), f"worker {number} sent nothing"


class TestOutboundPolicy:
    """`COUNTERSIGN_OUTBOUND_ALLOW=127.0.0.1/32` outside dev mode: other loopback addresses
    (127.0.0.2 stands in for an internal service) are refused when a request is created and
    again when a worker connects."""

    async def test_a_callback_outside_the_allow_list_is_refused_at_creation(
        self,
        flow: Flow,
        hooks_settings: Settings,
        receiver: Receiver,
    ) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with (
            JwksServer({"keys": [public_jwk(key)]}) as jwks,
            Receiver(host="127.0.0.2") as internal,
        ):
            settings = hooks_settings.model_copy(
                update={
                    "auth_mode": AuthMode.oidc,
                    "oidc_jwks_url": jwks.url,
                    "oidc_issuers": [ISSUER],
                    "oidc_audience": AUDIENCE,
                    "outbound_allow": ["127.0.0.1/32"],
                    "redis_url": "",
                }
            )
            strict = create_app(settings, in_process_worker=False)
            async with (
                strict.router.lifespan_context(strict),
                asgi_client(strict) as client,
            ):
                caller = bearer(oidc_token(key, CALLER_ID, azp=CALLER_CLIENT))
                refused = {
                    url: await create_request(
                        client, caller, artifact_id=f"a-{n}", callback_url=url
                    )
                    for n, url in enumerate(
                        [internal.url, "https://10.1.2.3/hooks", "http://[::1]:9/h"]
                    )
                }
                allowed = await create_request(
                    client, caller, artifact_id="allowed", callback_url=receiver.url
                )

        for url, response in refused.items():
            assert response.status_code == 422, (url, response.text)
            assert problem_code(response) == "callback_not_allowed"
            assert response.json()["errors"][0]["pointer"] == "/callback_url"
        assert allowed.status_code == 201, allowed.text
        assert internal.calls == []

    async def test_a_stored_url_outside_the_allow_list_is_refused_at_connect_time(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        workers: Workers,
        hooks_sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await admin.create_secret()
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        with Receiver(host="127.0.0.2") as internal:
            # As if stored while a looser policy allowed it (or by someone with database access).
            event_id = await repoint_callback(
                hooks_sessionmaker, request_id, internal.url
            )
            worker = workers.start(env=STRICT_WORKER_ENV)
            refused_id = next(
                d["id"] for d in await admin.deliveries() if d["event_id"] == event_id
            )

            attempt = (await admin.wait_for_attempts(refused_id, 1, workers=(worker,)))[
                0
            ]

            assert attempt["status_code"] is None
            assert "OutboundRefused" in attempt["error"]
            assert "127.0.0.2" in attempt["error"]
            assert internal.calls == []
        # The same worker reaches the allowed receiver.
        assert [c.event_type for c in receiver.delivered()] == [
            "request_created",
            "stage_started",
        ]


class TestWithoutRedis:
    async def test_the_embedded_worker_delivers_a_decision_without_any_worker_process(
        self,
        hooks_settings: Settings,
        admin_headers: dict[str, str],
        token: TokenFactory,
        receiver: Receiver,
        shared_clock: SharedClock,
        clean_hooks_database: None,
    ) -> None:
        embedded = create_app(
            hooks_settings.model_copy(update={"redis_url": ""}),
            in_process_worker=True,
        )
        async with (
            embedded.router.lifespan_context(embedded),
            asgi_client(embedded) as client,
        ):
            secret = (await WebhookAdmin(client, admin_headers).create_secret())[
                "secret"
            ]
            flow = Flow(client, admin_headers, token)
            await flow.publish([stage(1, ["alice"])])
            request_id = (await flow.start(callback_url=receiver.url))["request_id"]
            await flow.approve("alice", request_id)

            calls = await receiver.wait_for_delivered(4, within=10)

        assert [c.event_type for c in calls] == [
            "request_created",
            "stage_started",
            "stage_completed",
            "request_approved",
        ]
        for call in calls:
            verify_standard(call, secret)

    async def test_the_tick_hook_sends_what_is_due_before_it_answers(
        self,
        hooks_settings: Settings,
        admin_headers: dict[str, str],
        token: TokenFactory,
        receiver: Receiver,
        shared_clock: SharedClock,
        clean_hooks_database: None,
    ) -> None:
        hooks = create_app(
            hooks_settings.model_copy(update={"redis_url": "", "test_hooks": True}),
            in_process_worker=False,
        )
        receiver.reply(Reply(503), event_type="request_created")
        async with hooks.router.lifespan_context(hooks), asgi_client(hooks) as client:
            await WebhookAdmin(client, admin_headers).create_secret()
            flow = Flow(client, admin_headers, token)
            await flow.publish([stage(1, ["alice"])])
            request_id = (await flow.start(callback_url=receiver.url))["request_id"]
            await flow.approve("alice", request_id)

            async def tick() -> int:
                response = await client.post("/v1/_test/tick", headers=admin_headers)
                assert response.status_code == 200, response.text
                sent: int = response.json()["ran"]["webhooks"]
                return sent

            assert receiver.calls == []  # nothing runs on its own here
            assert await tick() == 1  # request_created fails; the rest wait behind it
            assert await tick() == 0  # its retry is not due yet
            moved = await client.post(
                "/v1/_test/clock", json={"advance_seconds": 70}, headers=admin_headers
            )
            assert moved.status_code == 200, moved.text
            assert await tick() == 4

        assert [(c.event_type, c.answered) for c in receiver.calls] == [
            ("request_created", 503),
            ("request_created", 204),
            ("stage_started", 204),
            ("stage_completed", 204),
            ("request_approved", 204),
        ]
