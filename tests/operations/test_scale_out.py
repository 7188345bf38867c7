"""Scale-out: two API processes and two workers on one PostgreSQL database and one Redis.

The shape of a deployment with `api.replicas: 2` and `worker.replicas: 2` (docs/scaling.md), in
real processes (tests/operations/stack.py). Flows run concurrently and cross the processes on
purpose: each request is created on one API (and its create retried with the same
Idempotency-Key on the other), its first stage decided on the other API, its second on the first
again. A real receiver on 127.0.0.1 checks every webhook with the `standardwebhooks` library and
AWE's HMAC. Then:

- every deliverable event of every request arrived exactly once (one call per event id), signed,
  in `sequence` order per request, whichever worker sent it;
- both APIs show the same final state, every timeline's hash chain verifies, no delivery is left
  pending, and no process died.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.operations.stack import Stack
from tests.webhooks.receiver import Call, Receiver, awe_signed_by, verify_standard

pytestmark = pytest.mark.slow

CALLER = "registry"
FLOWS = 8
# Events that are never delivered (API.md "Webhooks"; the caller does not subscribe to decisions).
NOT_DELIVERED = {"stage_quorum_skipped", "decision_recorded"}
DELIVERY_DEADLINE_SECONDS = 40.0

POLICY = {
    "policy_key": "registry.change_request",
    "name": "Change request approval",
    "artifact_type": "registry.change_request",
    "forbid_self_approval": True,
    "stages": [
        {
            "stage_order": 1,
            "name": "District officers",
            "mode": "any-n",
            "mode_value": 1,
            "rules": [
                {"rule_type": "role", "rule_value": {"role": "district_officer"}}
            ],
        },
        {
            "stage_order": 2,
            "name": "Director",
            "mode": "all",
            "rules": [{"rule_type": "user", "rule_value": {"user_id": "carol"}}],
        },
    ],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory: Path = tmp_path_factory.mktemp("scale-out")
    with Stack.start(directory, apis=2, workers=2) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def open_task(
    client: httpx.AsyncClient, token: str, request_id: str, stage_order: int
) -> dict[str, Any]:
    """The approver's open task of that stage, from their own inbox."""
    response = await client.get(
        "/v1/tasks",
        params={"status": "open", "request_id": request_id},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    tasks = [t for t in response.json()["items"] if t["stage_order"] == stage_order]
    assert len(tasks) == 1, response.json()
    task: dict[str, Any] = tasks[0]
    return task


async def test_two_apis_and_two_workers_deliver_every_webhook_once(
    stack: Stack,
) -> None:
    issuer = stack.issuer
    admin = issuer.token("ops", roles=["AWE_ADMIN"])
    caller = issuer.token("registry-svc", azp=CALLER)
    approvers = {name: issuer.token(name) for name in ("alice", "bob", "carol")}
    a, b = (
        httpx.AsyncClient(base_url=api.base_url, timeout=30.0) for api in stack.apis
    )
    with Receiver() as receiver:
        async with a, b:
            secret_response = await a.post(
                f"/v1/admin/callers/{CALLER}/secrets", json={}, headers=bearer(admin)
            )
            assert secret_response.status_code == 201, secret_response.text
            secret = secret_response.json()["secret"]
            created = await a.post("/v1/policies", json=POLICY, headers=bearer(admin))
            assert created.status_code == 201, created.text
            activated = await b.post(
                f"/v1/policies/{POLICY['policy_key']}/versions/1/activate",
                headers=bearer(admin),
            )
            assert activated.status_code == 200, activated.text

            async def flow(number: int) -> tuple[str, str]:
                first, second = (a, b) if number % 2 == 0 else (b, a)
                body = {
                    "policy_key": POLICY["policy_key"],
                    "artifact_type": POLICY["artifact_type"],
                    "artifact_id": f"cr-{number}",
                    "context": {"district": "D1", "amount": 100 * number},
                    "requester": "frank",
                    "callback_url": receiver.url,
                }
                key = {"Idempotency-Key": f"cr-{number}-v1"}
                response = await first.post(
                    "/v1/requests", json=body, headers={**bearer(caller), **key}
                )
                assert response.status_code == 201, response.text
                # The same create retried on the other process: the stored answer, no new request.
                replay = await second.post(
                    "/v1/requests", json=body, headers={**bearer(caller), **key}
                )
                assert (replay.status_code, replay.content) == (201, response.content)
                request_id: str = response.json()["request_id"]

                officer = "alice" if number % 3 else "bob"
                task = await open_task(second, approvers[officer], request_id, 1)
                decided = await second.post(
                    f"/v1/tasks/{task['id']}/decision",
                    json={"action": "approve", "comment": f"flow {number}"},
                    headers=bearer(approvers[officer]),
                )
                assert decided.status_code == 201, decided.text

                task = await open_task(first, approvers["carol"], request_id, 2)
                action = "reject" if number % 4 == 3 else "approve"
                decided = await first.post(
                    f"/v1/tasks/{task['id']}/decision",
                    json={"action": action, "comment": None},
                    headers=bearer(approvers["carol"]),
                )
                assert decided.status_code == 201, decided.text
                final = decided.json()["request_status"]
                assert final == ("rejected" if action == "reject" else "approved")
                return request_id, final

            outcomes = dict(await asyncio.gather(*(flow(n) for n in range(FLOWS))))

            # What must arrive: every deliverable event of every request, by event id.
            expected: dict[str, tuple[str, int]] = {}
            for request_id, status in outcomes.items():
                views = [
                    await client.get(
                        f"/v1/requests/{request_id}", headers=bearer(admin)
                    )
                    for client in (a, b)
                ]
                assert [v.status_code for v in views] == [200, 200]
                assert views[0].json() == views[1].json()
                assert views[0].json()["status"] == status
                for client in (a, b):
                    verified = await client.get(
                        f"/v1/requests/{request_id}/events/verify",
                        headers=bearer(admin),
                    )
                    assert verified.json()["valid"] is True, verified.text
                events = await a.get(
                    f"/v1/requests/{request_id}/events", headers=bearer(admin)
                )
                for event in events.json():
                    if event["event_type"] not in NOT_DELIVERED:
                        expected[event["id"]] = (request_id, event["sequence"])
            assert len(expected) >= FLOWS * 5

            def all_arrived(calls: list[Call]) -> bool:
                return {c.event_id for c in calls if c.delivered} >= set(expected)

            try:
                await receiver.wait_for(all_arrived, within=DELIVERY_DEADLINE_SECONDS)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{stack.logs()}") from None
            # A little longer, so that a duplicate sent late would be seen.
            await asyncio.sleep(2.0)

            calls = receiver.calls
            per_event = Counter(call.event_id for call in calls)
            assert set(per_event) == set(expected), set(per_event) ^ set(expected)
            duplicates = {event: n for event, n in per_event.items() if n != 1}
            assert not duplicates, duplicates
            for call in calls:
                verify_standard(call, secret)  # raises when no signature matches
                assert awe_signed_by(call, secret)
                assert call.request_id == expected[call.event_id][0]
                assert call.sequence == expected[call.event_id][1]
            for request_id in outcomes:
                arrived = [c.sequence for c in calls if c.request_id == request_id]
                assert arrived == sorted(arrived), (request_id, arrived)

            pending = await b.get(
                "/v1/admin/deliveries",
                params={"status": "pending", "limit": 500},
                headers=bearer(admin),
            )
            assert pending.status_code == 200, pending.text
            assert pending.json() == []
    assert not stack.dead(), stack.logs()
