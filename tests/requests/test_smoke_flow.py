from __future__ import annotations

import httpx

from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import create_request, decide, publish, stage, task_for


async def test_two_stage_happy_path(client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory) -> None:
    await publish(client, admin_headers, [stage(1, ["alice", "bob"]), stage(2, ["carol"])])
    caller = bearer(token("registry-svc", azp="registry"))
    created = await create_request(client, caller)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "in_review"
    assert body["current_stage_order"] == 1
    first = await decide(client, token("alice"), task_for(body["tasks"], "alice"))
    assert first.status_code == 201, first.text
    assert first.json()["stage_status"] == "approved"
    tasks = (await client.get(f"/v1/tasks?assignee=carol", headers=bearer(token("carol")))).json()["items"]
    second = await decide(client, token("carol"), task_for(tasks, "carol"))
    assert second.json()["request_status"] == "approved", second.text
    events = (await client.get(f"/v1/requests/{body['request_id']}/events", headers=caller)).json()
    print([e["event_type"] for e in events])
    verify = (await client.get(f"/v1/requests/{body['request_id']}/events/verify", headers=caller)).json()
    assert verify == {"valid": True, "count": len(events), "broken_at_sequence": None}
