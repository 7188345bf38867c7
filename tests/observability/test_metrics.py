"""Domain metrics of the API process: counted when the transaction commits, labels bounded."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx

from countersign.operations.metrics import SNAPSHOT_TTL_SECONDS
from tests.directory.test_http_rule import (
    Answer,
    ResolverServer,
    create_secret,
    http_stage,
    users,
)
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import Flow, stage


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.partition(" ")[0]))
        if found == labels or (not labels and "{" not in line.split(" ")[0]):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_a_flow_counts_requests_decisions_stages_and_time_to_decision(
    client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> None:
    key = f"metrics.{uuid.uuid4().hex[:8]}"
    flow = Flow(client, admin_headers, token)
    await flow.publish([stage(1, ["alice"]), stage(2, ["bob"])], key=key)
    before = await scrape(client)

    approved = await flow.start(policy_key=key, artifact_type=key)
    await flow.approve("alice", approved["request_id"])
    await flow.approve("bob", approved["request_id"])
    rejected = await flow.start(policy_key=key, artifact_type=key, artifact_id="a-2")
    await flow.reject("alice", rejected["request_id"])
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("countersign_requests_created_total", policy=key) == 2
    assert (
        delta("countersign_requests_finished_total", policy=key, outcome="approved")
        == 1
    )
    assert (
        delta("countersign_requests_finished_total", policy=key, outcome="rejected")
        == 1
    )
    assert delta("countersign_decisions_total", action="approve") == 2
    assert delta("countersign_decisions_total", action="reject") == 1
    assert delta("countersign_stage_outcomes_total", outcome="approved") == 2
    assert delta("countersign_stage_outcomes_total", outcome="rejected") == 1
    # The rejected request's second stage never started: cancelled with the request.
    assert delta("countersign_stage_outcomes_total", outcome="cancelled") == 1
    assert (
        delta(
            "countersign_stage_decision_seconds_count", policy=key, outcome="approved"
        )
        == 2
    )
    assert (
        delta(
            "countersign_stage_decision_seconds_count", policy=key, outcome="rejected"
        )
        == 1
    )
    # No id of any kind becomes a label.
    for request in (approved, rejected):
        assert request["request_id"] not in after


async def test_rows_of_a_rolled_back_attempt_are_not_counted_and_failures_are(
    client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> None:
    """A create whose first stage calls a resolver runs twice (resolve, then lock: the first
    attempt flushes the request and rolls back); it counts once. A failing resolver counts as a
    resolution failure, and its stage shows in the `resolving` gauge."""
    key = f"metrics.{uuid.uuid4().hex[:8]}"
    flow = Flow(client, admin_headers, token)
    await create_secret(flow)
    with ResolverServer() as resolver:
        await flow.publish([http_stage(1, resolver.url)], key=key)
        resolver.answer(users("alice"), Answer(status=500))
        before = await scrape(client)

        await flow.start(policy_key=key, artifact_type=key)
        await flow.start(policy_key=key, artifact_type=key, artifact_id="a-2")

    # Past the scrape-time cache of the gauges.
    await asyncio.sleep(SNAPSHOT_TTL_SECONDS)
    after = await scrape(client)
    assert sample(after, "countersign_requests_created_total", policy=key) == 2
    assert (
        sample(after, "countersign_resolution_failures_total", when="start")
        - sample(before, "countersign_resolution_failures_total", when="start")
        == 1
    )
    assert sample(after, "countersign_stages_resolving") >= 1


async def test_an_idempotent_replay_is_counted(
    client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> None:
    key = f"metrics.{uuid.uuid4().hex[:8]}"
    flow = Flow(client, admin_headers, token)
    await flow.publish([stage(1, ["alice"])], key=key)
    headers = {**flow.caller, "Idempotency-Key": uuid.uuid4().hex}
    before = await scrape(client)

    for _ in range(2):
        response = await flow.create(headers=headers, policy_key=key, artifact_type=key)
        assert response.status_code == 201

    after = await scrape(client)
    assert (
        sample(after, "countersign_idempotency_replays_total")
        - sample(before, "countersign_idempotency_replays_total")
        == 1
    )
    assert sample(after, "countersign_requests_created_total", policy=key) == 1


async def test_scrape_time_gauges_come_from_the_database(
    client: httpx.AsyncClient,
) -> None:
    text = await scrape(client)

    assert sample(text, "countersign_metrics_database_up") == 1
    for name in (
        "countersign_outbox_pending",
        "countersign_outbox_due",
        "countersign_outbox_oldest_pending_age_seconds",
        "countersign_outbox_exhausted",
        "countersign_stages_resolving",
        "countersign_timers_due",
        "countersign_timers_overdue",
        "countersign_db_pool_connections_in_use",
    ):
        assert re.search(rf"^{name} \d", text, re.MULTILINE), name
