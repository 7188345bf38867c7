"""Resolve, then lock (issue 11, item 3): a slow resolver never holds a lock or a connection.

Approvers that an outside system names (an `http` rule here; Keycloak works the same way) are
resolved before the command opens its transaction. So 30 creates whose resolver takes 5 s each,
fired at once at the real two-process server, leave everything else answering as usual: the
server's pools (12 connections per process in the suite) would otherwise be held by creates
waiting on the resolver, and unrelated reads and decisions would queue behind them for seconds.

The assertions on time are bounds of behaviour, not of speed: a call that waits for a pooled
connection held by a 5 s resolution takes seconds; one that does not takes milliseconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.directory.test_http_rule import Answer, ResolverServer, http_rule, users
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import CALLER_CLIENT, create_request, publish, stage
from tests.fixtures.server import live_server_fixture, server_fixture  # noqa: F401

Body = dict[str, Any]
Headers = dict[str, str]

RESOLVER_DELAY_SECONDS = 5.0
PARALLEL_CREATES = 30
# Far above a read's or a decision's usual milliseconds, far below the resolver's 5 s that a
# call queued behind a held connection would wait.
UNHURRIED_SECONDS = 2.0


@pytest.fixture
def slow_resolver() -> Iterator[ResolverServer]:
    with ResolverServer() as server:
        server.default = Answer(
            status=200,
            body=users("slow-sam", "slow-sue").body,
            delay=RESOLVER_DELAY_SECONDS,
        )
        yield server


async def until(condition: Callable[[], bool]) -> None:
    """Poll `condition` for at most the resolver's delay (the calls arrive within it)."""
    for _ in range(int(RESOLVER_DELAY_SECONDS / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)


async def timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await call
    return response, time.monotonic() - started


async def test_a_slow_resolver_leaves_reads_and_decisions_at_their_usual_speed(
    server: httpx.AsyncClient,
    token: TokenFactory,
    admin_headers: Headers,
    slow_resolver: ResolverServer,
) -> None:
    caller = bearer(token("registry-svc", azp=CALLER_CLIENT))
    secret = await server.post(
        f"/v1/admin/callers/{CALLER_CLIENT}/secrets", json={}, headers=admin_headers
    )
    assert secret.status_code == 201, secret.text
    slow_key = f"slow.{uuid.uuid4().hex[:8]}"
    await publish(
        server,
        admin_headers,
        [
            stage(
                1,
                [],
                rules=[http_rule(slow_resolver.url, timeout=8)],
            )
        ],
        key=slow_key,
    )
    quick_key = f"quick.{uuid.uuid4().hex[:8]}"
    await publish(server, admin_headers, [stage(1, ["quick-quinn"])], key=quick_key)
    quick = await create_request(server, caller, key=quick_key, artifact_id="q-1")
    assert quick.status_code == 201, quick.text
    quick_request = quick.json()["request_id"]
    quick_task = quick.json()["tasks"][0]["id"]

    creates = [
        asyncio.ensure_future(
            create_request(server, caller, key=slow_key, artifact_id=f"s-{n}")
        )
        for n in range(PARALLEL_CREATES)
    ]
    # Every create is now waiting on the resolver (it answers after 5 s).
    await until(lambda: len(slow_resolver.calls) >= PARALLEL_CREATES)
    assert len(slow_resolver.calls) == PARALLEL_CREATES, [
        c.result().text for c in creates if c.done()
    ][:3]

    reads = [
        await timed(server.get(f"/v1/requests/{quick_request}", headers=caller))
        for _ in range(5)
    ]
    listed = await timed(server.get("/v1/policies", headers=admin_headers))
    decided = await timed(
        server.post(
            f"/v1/tasks/{quick_task}/decision",
            json={"action": "approve"},
            headers=bearer(token("quick-quinn")),
        )
    )
    assert not all(c.done() for c in creates), "the resolver answered too early"

    for response, seconds in [*reads, listed]:
        assert response.status_code == 200, response.text
        assert seconds < UNHURRIED_SECONDS, seconds
    assert decided[0].status_code == 201, decided[0].text
    assert decided[0].json()["request_status"] == "approved"
    assert decided[1] < UNHURRIED_SECONDS, decided[1]

    # The pool never ran dry: every create answered 201 with the resolver's approvers.
    created = await asyncio.gather(*creates)
    for response in created:
        assert response.status_code == 201, response.text
        assert sorted(t["assignee"] for t in response.json()["tasks"]) == [
            "slow-sam",
            "slow-sue",
        ]
    # One resolution per create: nothing was asked twice.
    assert len(slow_resolver.calls) == PARALLEL_CREATES


async def test_a_decision_that_starts_a_slow_stage_holds_no_lock_while_it_resolves(
    server: httpx.AsyncClient,
    token: TokenFactory,
    admin_headers: Headers,
    slow_resolver: ResolverServer,
) -> None:
    """While the decision that ends stage 1 waits on stage 2's resolver, the request is not
    locked: another read of it (which takes no lock) and a cancel (which does) do not wait 5 s.
    The cancel wins; the decision, retried under the lock, finds the request cancelled."""
    caller = bearer(token("registry-svc", azp=CALLER_CLIENT))
    secret = await server.post(
        f"/v1/admin/callers/{CALLER_CLIENT}/secrets", json={}, headers=admin_headers
    )
    assert secret.status_code == 201, secret.text
    key = f"two.{uuid.uuid4().hex[:8]}"
    await publish(
        server,
        admin_headers,
        [
            stage(1, ["first-fay"]),
            stage(
                2,
                [],
                rules=[http_rule(slow_resolver.url, timeout=8)],
            ),
        ],
        key=key,
    )
    created = await create_request(server, caller, key=key, artifact_id="t-1")
    assert created.status_code == 201, created.text
    request_id = created.json()["request_id"]
    task_id = created.json()["tasks"][0]["id"]

    decision = asyncio.ensure_future(
        server.post(
            f"/v1/tasks/{task_id}/decision",
            json={"action": "approve"},
            headers=bearer(token("first-fay")),
        )
    )
    await until(lambda: bool(slow_resolver.calls))
    assert slow_resolver.calls, "the decision never asked the resolver"

    cancelled, seconds = await timed(
        server.post(
            f"/v1/requests/{request_id}/cancel",
            json={"reason": "withdrawn"},
            headers=caller,
        )
    )
    assert cancelled.status_code == 200, cancelled.text
    assert seconds < UNHURRIED_SECONDS, seconds

    decided = await decision
    assert decided.status_code == 409, decided.text
    assert decided.json()["code"] == "invalid_state"
    final = await server.get(f"/v1/requests/{request_id}", headers=caller)
    assert final.json()["status"] == "cancelled"
    events = await server.get(f"/v1/requests/{request_id}/events", headers=caller)
    types = [e["event_type"] for e in events.json()]
    assert "decision_recorded" not in types
    assert types[-1] == "request_cancelled"
