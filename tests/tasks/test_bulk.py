"""`POST /v1/tasks/decisions`: up to 100 decisions, each atomic on its own, answered with 207.

Every item gets the HTTP status it would have got alone (201, 403, 404, 409) with the decision or
the problem. A failing item writes nothing and undoes nothing of the others, and every request
touched ends in a consistent state: its decisions, counts and hash-chained timeline agree.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.models import Decision
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import create_request, decide, publish, stage
from tests.fixtures.server import live_server_fixture, server_fixture  # noqa: F401

Body = dict[str, Any]
Headers = dict[str, str]

CREATOR = "registry-svc"


async def start(
    client: httpx.AsyncClient,
    token: TokenFactory,
    key: str,
    artifact_id: str,
    **fields: Any,
) -> tuple[str, dict[str, str]]:
    """Create a request; returns its id and assignee → task id of its first stage."""
    created = await create_request(
        client,
        bearer(token(CREATOR, azp="registry")),
        key=key,
        artifact_id=artifact_id,
        **fields,
    )
    assert created.status_code == 201, created.text
    body: Body = created.json()
    return str(body["request_id"]), {t["assignee"]: t["id"] for t in body["tasks"]}


async def bulk(
    client: httpx.AsyncClient, headers: Headers, items: list[Body]
) -> httpx.Response:
    return await client.post(
        "/v1/tasks/decisions", json={"decisions": items}, headers=headers
    )


def item(task_id: str, action: str = "approve", comment: str | None = None) -> Body:
    return {"task_id": task_id, "action": action, "comment": comment}


async def decided_task_ids(session: AsyncSession) -> set[str]:
    rows = (await session.execute(select(Decision.task_id))).scalars().all()
    await session.commit()  # end the read: later reads see later commits
    return {str(r) for r in rows}


async def assert_consistent(
    client: httpx.AsyncClient, admin: Headers, request_id: str
) -> Body:
    """The timeline verifies and the stage counts agree with the decisions it records."""
    verify = await client.get(f"/v1/requests/{request_id}/events/verify", headers=admin)
    assert verify.status_code == 200, verify.text
    assert verify.json()["valid"] is True, verify.json()
    timeline = (
        await client.get(f"/v1/requests/{request_id}/events", headers=admin)
    ).json()
    assert [e["sequence"] for e in timeline] == list(range(1, len(timeline) + 1))
    recorded = [
        e["payload"]["action"]
        for e in timeline
        if e["event_type"] == "decision_recorded"
    ]
    request: Body = (
        await client.get(f"/v1/requests/{request_id}", headers=admin)
    ).json()
    counts = {"approve": 0, "reject": 0, "abstain": 0}
    for stage_out in request["stages"]:
        for action in counts:
            counts[action] += stage_out["counts"][action]
    assert counts == {a: recorded.count(a) for a in counts}
    return request


def assert_each_item_atomic(
    results: list[Body],
    items: list[Body],
    decided_before: set[str],
    decided_after: set[str],
) -> None:
    """201 items wrote exactly their decision; every other item wrote nothing."""
    assert [r["task_id"] for r in results] == [i["task_id"] for i in items]
    succeeded = set()
    for result in results:
        if result["status"] == 201:
            assert result["problem"] is None
            assert result["decision"]["task_id"] == result["task_id"]
            succeeded.add(result["task_id"])
        else:
            assert 400 <= result["status"] < 500, result
            assert result["decision"] is None
            assert result["problem"]["status"] == result["status"]
    assert decided_after - decided_before == succeeded


class TestMixedBatch:
    async def test_each_item_gets_its_own_status_and_body(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(
            client,
            admin_headers,
            [stage(1, ["alice", "bob"], mode="all")],
            key="bulk.all",
        )
        await publish(
            client,
            admin_headers,
            [stage(1, ["alice", "bob"], mode="all")],
            key="bulk.sod",
            forbid_self_approval=False,
            forbid_repeat_approvers=True,
        )
        request_a, tasks_a = await start(client, token, "bulk.all", "A")
        request_b, tasks_b = await start(client, token, "bulk.all", "B")
        assert (
            await decide(client, token("alice"), tasks_b["alice"])
        ).status_code == 201
        unknown = str(uuid.uuid4())
        items = [
            item(tasks_a["alice"], comment="fine"),
            item(unknown),
            item(
                tasks_a["bob"]
            ),  # bob's task: alice may see the request but not act on it
            item(tasks_b["alice"]),  # already decided
            item(tasks_a["alice"], "reject"),  # decided by the first item of this batch
        ]
        before = await decided_task_ids(session)

        response = await bulk(client, bearer(token("alice")), items)

        assert response.status_code == 207, response.text
        results: list[Body] = response.json()["results"]
        assert [r["status"] for r in results] == [201, 404, 403, 409, 409]
        assert_each_item_atomic(results, items, before, await decided_task_ids(session))
        first = results[0]["decision"]
        assert (first["actor"], first["action"], first["comment"]) == (
            "alice",
            "approve",
            "fine",
        )
        assert (first["request_id"], first["stage_order"]) == (request_a, 1)
        assert (first["request_status"], first["stage_status"]) == (
            "in_review",
            "active",
        )
        assert [r["problem"]["code"] for r in results[1:]] == [
            "task_not_found",
            "forbidden",
            "invalid_state",
            "invalid_state",
        ]
        for result in results[1:]:
            assert result["problem"]["errorCode"].startswith("AWE-")
        request = await assert_consistent(client, admin_headers, request_a)
        assert request["stages"][0]["counts"] == {
            "approve": 1,
            "reject": 0,
            "abstain": 0,
            "open": 1,
        }
        await assert_consistent(client, admin_headers, request_b)

    async def test_separation_of_duties_refuses_an_item_with_403(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(
            client,
            admin_headers,
            [stage(1, ["alice", "bob"], mode="all")],
            key="bulk.sod",
            forbid_self_approval=True,
        )
        # alice is the requester of the first request: SoD removes her there; she decides the other.
        mine, mine_tasks = await start(
            client, token, "bulk.sod", "S-1", requester="bob"
        )
        theirs, theirs_tasks = await start(
            client, token, "bulk.sod", "S-2", requester="carol"
        )
        assert "bob" not in mine_tasks
        items = [item(mine_tasks["alice"]), item(theirs_tasks["bob"])]

        response = await bulk(client, bearer(token("bob")), items)

        assert response.status_code == 207, response.text
        results = response.json()["results"]
        assert [r["status"] for r in results] == [403, 201]
        assert results[0]["problem"]["code"] == "forbidden"
        await assert_consistent(client, admin_headers, mine)
        await assert_consistent(client, admin_headers, theirs)


class TestAtomicity:
    async def test_later_items_see_what_earlier_items_did(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        # Approving F-1's stage 1 starts stage 2, whose `skip_if` cannot be evaluated on this
        # context (division by zero): the request is rejected then and there, and the decision
        # is kept. The next item, on the very same task, finds it decided; an item on another
        # request is untouched by either. Every request ends consistent.
        await publish(
            client,
            admin_headers,
            [
                stage(1, ["alice", "bob"]),
                stage(2, ["carol"], skip_if={"/": [1, {"var": "zero"}]}),
            ],
            key="bulk.broken",
        )
        first, first_tasks = await start(
            client, token, "bulk.broken", "F-1", context={"zero": 0}
        )
        second, second_tasks = await start(
            client, token, "bulk.broken", "F-2", context={"zero": 0}
        )
        items = [
            item(first_tasks["alice"], "approve"),
            item(first_tasks["alice"], "reject", comment="second thoughts"),
            item(second_tasks["alice"], "reject"),
        ]
        before = await decided_task_ids(session)

        response = await bulk(client, bearer(token("alice")), items)

        assert response.status_code == 207, response.text
        results: list[Body] = response.json()["results"]
        assert_each_item_atomic(results, items, before, await decided_task_ids(session))
        assert [r["status"] for r in results] == [201, 409, 201]
        assert results[0]["decision"]["request_status"] == "rejected"
        assert results[1]["problem"]["code"] == "invalid_state"
        for request_id in (first, second):
            request = await assert_consistent(client, admin_headers, request_id)
            assert request["status"] == "rejected"


class TestLimits:
    async def test_more_than_100_items_is_422(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        items = [item(str(uuid.uuid4())) for _ in range(101)]

        response = await bulk(client, bearer(token("alice")), items)

        assert response.status_code == 422
        assert response.json()["code"] == "validation_failed"

    async def test_100_items_are_accepted(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        items = [item(str(uuid.uuid4())) for _ in range(100)]

        response = await bulk(client, bearer(token("alice")), items)

        assert response.status_code == 207, response.text
        assert {r["status"] for r in response.json()["results"]} == {404}

    async def test_an_empty_batch_is_422(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        response = await bulk(client, bearer(token("alice")), [])

        assert response.status_code == 422


class TestConcurrentBatches:
    async def test_two_approvers_deciding_the_same_requests_in_opposite_orders(
        self,
        server: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        # Each item locks its request until the batch commits. Two batches over the same requests
        # in opposite orders must not deadlock each other into a 500.
        key = f"bulk.race.{uuid.uuid4().hex[:8]}"
        await publish(
            server, admin_headers, [stage(1, ["alice", "bob"], mode="all")], key=key
        )
        started = [await start(server, token, key, f"R-{n}") for n in range(20)]
        alice_items = [item(tasks["alice"]) for _, tasks in started]
        bob_items = [item(tasks["bob"]) for _, tasks in reversed(started)]

        alice, bob = await asyncio.gather(
            bulk(server, bearer(token("alice")), alice_items),
            bulk(server, bearer(token("bob")), bob_items),
        )

        assert alice.status_code == 207, alice.text
        assert bob.status_code == 207, bob.text
        assert {r["status"] for r in alice.json()["results"]} == {201}
        assert {r["status"] for r in bob.json()["results"]} == {201}
        for request_id, _ in started:
            request = await assert_consistent(server, admin_headers, request_id)
            assert request["status"] == "approved"
