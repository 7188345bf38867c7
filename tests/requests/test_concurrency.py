"""Decisions racing each other over real HTTP: every stage settles once, no vote counts twice.

The predecessor had no row locking: double-submitted decisions counted twice and stages activated
twice. These tests fire real parallel calls (`asyncio.gather`) at a real uvicorn server with two
worker processes on PostgreSQL, so the transactions truly interleave, and then check the outcome
against the database and the hash-chained timeline.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.models import Decision
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import create_request, publish, stage
from tests.fixtures.server import live_server_fixture, server_fixture  # noqa: F401

Body = dict[str, Any]
Headers = dict[str, str]
CALLER = "registry-svc"


def unique_key(prefix: str) -> str:
    # A fresh policy key per test: nothing a server process may remember can leak between tests.
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


async def start(
    client: httpx.AsyncClient, token: TokenFactory, key: str
) -> tuple[str, list[Body]]:
    created = await create_request(
        client, bearer(token(CALLER, azp="registry")), key=key
    )
    assert created.status_code == 201, created.text
    body: Body = created.json()
    return str(body["request_id"]), list(body["tasks"])


async def decide_all_at_once(
    client: httpx.AsyncClient,
    token: TokenFactory,
    calls: list[tuple[str, str, str]],
) -> list[httpx.Response]:
    """POST every (user, task_id, action) decision at the same time."""
    return list(
        await asyncio.gather(
            *(
                client.post(
                    f"/v1/tasks/{task_id}/decision",
                    json={"action": action},
                    headers=bearer(token(user)),
                )
                for user, task_id, action in calls
            )
        )
    )


async def events(
    client: httpx.AsyncClient, admin: Headers, request_id: str
) -> list[Body]:
    response = await client.get(f"/v1/requests/{request_id}/events", headers=admin)
    assert response.status_code == 200, response.text
    result: list[Body] = response.json()
    return result


async def assert_chain_verifies(
    client: httpx.AsyncClient, admin: Headers, request_id: str
) -> None:
    timeline = await events(client, admin, request_id)
    response = await client.get(
        f"/v1/requests/{request_id}/events/verify", headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["valid"] is True, response.json()
    assert response.json()["count"] == len(timeline)
    assert [e["sequence"] for e in timeline] == list(range(1, len(timeline) + 1))


async def all_tasks(
    client: httpx.AsyncClient, admin: Headers, request_id: str
) -> list[Body]:
    response = await client.get(
        "/v1/tasks",
        params={"assignee": "*", "request_id": request_id, "page_size": 100},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    items: list[Body] = response.json()["items"]
    return items


async def decisions_of(session: AsyncSession, request_id: str) -> list[Decision]:
    rows = (
        (
            await session.execute(
                select(Decision).where(Decision.request_id == uuid.UUID(request_id))
            )
        )
        .scalars()
        .all()
    )
    await session.commit()  # end the read: later reads see later commits
    return list(rows)


async def decision_count(session: AsyncSession, request_id: str) -> int:
    count = (
        await session.execute(
            select(func.count())
            .select_from(Decision)
            .where(Decision.request_id == uuid.UUID(request_id))
        )
    ).scalar_one()
    await session.commit()
    return int(count)


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def assert_losers_are_invalid_state(responses: list[httpx.Response]) -> None:
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"].startswith(
                "application/problem+json"
            )
            assert response.json()["code"] == "invalid_state", response.text


def of_type(timeline: list[Body], event_type: str) -> list[Body]:
    return [e for e in timeline if e["event_type"] == event_type]


APPROVERS = [f"approver-{n:02d}" for n in range(10)]


class TestAnyNStageRace:
    async def test_ten_approvers_at_once_complete_the_stage_and_start_the_next_once(
        self,
        server: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        key = unique_key("race.any_n")
        await publish(
            server,
            admin_headers,
            [
                stage(1, APPROVERS, mode="any-n", mode_value=1),
                stage(2, ["dir-1", "dir-2"]),
            ],
            key=key,
        )
        request_id, tasks = await start(server, token, key)
        assert sorted(t["assignee"] for t in tasks) == APPROVERS

        responses = await decide_all_at_once(
            server, token, [(t["assignee"], t["id"], "approve") for t in tasks]
        )

        assert set(statuses(responses)) <= {201, 409}, [r.text for r in responses]
        assert statuses(responses)[201] == 1
        assert_losers_are_invalid_state(responses)
        assert await decision_count(session, request_id) == statuses(responses)[201]
        timeline = await events(server, admin_headers, request_id)
        completed = of_type(timeline, "stage_completed")
        assert [e["payload"]["stage_order"] for e in completed] == [1]
        started = of_type(timeline, "stage_started")
        assert [e["payload"]["stage_order"] for e in started] == [1, 2]
        assert len(of_type(timeline, "decision_recorded")) == 1
        stage_two = [
            t
            for t in await all_tasks(server, admin_headers, request_id)
            if t["stage_order"] == 2
        ]
        assert sorted(t["assignee"] for t in stage_two) == ["dir-1", "dir-2"]
        assert {t["status"] for t in stage_two} == {"open"}
        await assert_chain_verifies(server, admin_headers, request_id)


class TestSameDecisionPostedTenTimes:
    async def test_one_decision_is_recorded_and_the_others_conflict(
        self,
        server: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        key = unique_key("race.double_submit")
        # `all` with two approvers: alice's decision leaves the stage active, so every 409 below
        # comes from the task already being decided, not from the request being finished.
        await publish(
            server, admin_headers, [stage(1, ["alice", "bob"], mode="all")], key=key
        )
        request_id, tasks = await start(server, token, key)
        alice_task = next(t["id"] for t in tasks if t["assignee"] == "alice")

        responses = await decide_all_at_once(
            server, token, [("alice", alice_task, "approve")] * 10
        )

        assert statuses(responses) == Counter({201: 1, 409: 9}), [
            r.text for r in responses
        ]
        assert_losers_are_invalid_state(responses)
        decisions = await decisions_of(session, request_id)
        assert [(d.actor, str(d.task_id)) for d in decisions] == [("alice", alice_task)]
        timeline = await events(server, admin_headers, request_id)
        assert len(of_type(timeline, "decision_recorded")) == 1
        assert of_type(timeline, "stage_completed") == []
        request = (
            await server.get(f"/v1/requests/{request_id}", headers=admin_headers)
        ).json()
        assert request["status"] == "in_review"
        assert request["stages"][0]["counts"] == {
            "approve": 1,
            "reject": 0,
            "abstain": 0,
            "open": 1,
        }
        await assert_chain_verifies(server, admin_headers, request_id)


class TestAllModeRace:
    async def test_five_approvals_at_once_approve_the_request_exactly_once(
        self,
        server: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        key = unique_key("race.all")
        approvers = APPROVERS[:5]
        await publish(server, admin_headers, [stage(1, approvers, mode="all")], key=key)
        request_id, tasks = await start(server, token, key)

        responses = await decide_all_at_once(
            server, token, [(t["assignee"], t["id"], "approve") for t in tasks]
        )

        assert statuses(responses) == Counter({201: 5}), [r.text for r in responses]
        # Exactly one of them saw the request finish: the one that was serialized last.
        assert sorted(r.json()["request_status"] for r in responses) == [
            "approved",
            *["in_review"] * 4,
        ]
        assert await decision_count(session, request_id) == 5
        timeline = await events(server, admin_headers, request_id)
        assert len(of_type(timeline, "request_approved")) == 1
        assert len(of_type(timeline, "stage_completed")) == 1
        assert len(of_type(timeline, "decision_recorded")) == 5
        assert timeline[-1]["event_type"] == "request_approved"
        request = (
            await server.get(f"/v1/requests/{request_id}", headers=admin_headers)
        ).json()
        assert request["status"] == "approved"
        assert request["stages"][0]["counts"] == {
            "approve": 5,
            "reject": 0,
            "abstain": 0,
            "open": 0,
        }
        await assert_chain_verifies(server, admin_headers, request_id)


class TestQuorumRace:
    @pytest.mark.parametrize(
        ("approvals", "rejections", "outcome"),
        [(4, 2, "approved"), (3, 3, "approved"), (2, 4, "rejected")],
    )
    async def test_mixed_votes_at_once_count_each_approver_once(
        self,
        server: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
        approvals: int,
        rejections: int,
        outcome: str,
    ) -> None:
        # Quorum 3 of 6, rejections do not veto. With 3+ approvals the third one to land approves
        # the stage (three rejections still leave A + O >= 3); with 2 approvals the fourth
        # rejection makes 3 unreachable. Which later votes still land depends on the race; the
        # outcome does not.
        key = unique_key("race.quorum")
        approvers = APPROVERS[:6]
        await publish(
            server,
            admin_headers,
            [stage(1, approvers, mode="quorum", mode_value=3)],
            key=key,
        )
        request_id, tasks = await start(server, token, key)
        action_of = {
            person: "approve" if n < approvals else "reject"
            for n, person in enumerate(approvers)
        }
        assert list(action_of.values()).count("reject") == rejections

        responses = await decide_all_at_once(
            server,
            token,
            [(t["assignee"], t["id"], action_of[t["assignee"]]) for t in tasks],
        )

        assert set(statuses(responses)) <= {201, 409}, [r.text for r in responses]
        assert_losers_are_invalid_state(responses)
        landed = Counter(r.json()["action"] for r in responses if r.status_code == 201)
        if outcome == "approved":
            assert landed["approve"] == 3
            assert landed["reject"] <= rejections
        else:
            assert landed["reject"] == 4
            assert landed["approve"] <= approvals
        decisions = await decisions_of(session, request_id)
        assert len(decisions) == sum(landed.values())
        actors = [d.actor for d in decisions]
        assert len(actors) == len(set(actors)), "an approver was counted twice"
        assert Counter(d.action for d in decisions) == landed
        timeline = await events(server, admin_headers, request_id)
        completed = of_type(timeline, "stage_completed")
        assert len(completed) == 1
        assert completed[0]["payload"]["outcome"] == outcome
        expected_counts = {
            "approve": landed["approve"],
            "reject": landed["reject"],
            "abstain": 0,
            "open": 0,
        }
        assert completed[0]["payload"]["counts"] == {
            **expected_counts,
            # Counted when the stage settled: the votes that lost the race were still open then.
            "open": 6 - sum(landed.values()),
        }
        assert len(of_type(timeline, f"request_{outcome}")) == 1
        request = (
            await server.get(f"/v1/requests/{request_id}", headers=admin_headers)
        ).json()
        assert request["status"] == outcome
        assert request["stages"][0]["status"] == outcome
        assert request["stages"][0]["counts"] == expected_counts
        await assert_chain_verifies(server, admin_headers, request_id)
