"""The approval engine in the embedded default: `countersign serve` on SQLite, end to end.

A newcomer runs `countersign serve` in an empty directory (no `COUNTERSIGN_*` variables): SQLite,
dev-mode auth, the sample directory and the sample policy `sample.change_request` (stage 1: any
one of group /districts; stage 2: the director, skipped when `amount < 1000`). These tests drive a
request through it with tokens from `countersign token`, and check that SQLite's one-writer-at-a-time
transactions (`BEGIN IMMEDIATE`) settle racing decisions exactly once, without "database is locked".
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.server import LiveServer, free_port, spawn

pytestmark = pytest.mark.slow

COUNTERSIGN = Path(sys.executable).with_name("countersign")
SAMPLE = "sample.change_request"
OFFICERS = [f"officer-{n}" for n in range(1, 6)]

Body = dict[str, Any]
Headers = dict[str, str]


def child_env() -> dict[str, str]:
    """The test process's environment with every COUNTERSIGN_* variable removed."""
    return {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}


def mint_tokens(cwd: Path, wanted: dict[str, list[str]]) -> dict[str, Headers]:
    """`countersign token` for each name (extra arguments as given), all at once."""
    running = {
        name: subprocess.Popen(
            [str(COUNTERSIGN), "token", *args],
            cwd=cwd,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in wanted.items()
    }
    headers: dict[str, Headers] = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        headers[name] = {"Authorization": f"Bearer {out.strip()}"}
    return headers


@dataclass
class Embedded:
    server: LiveServer
    tokens: dict[str, Headers]

    def client(self) -> httpx.AsyncClient:
        return self.server.client()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    cwd = tmp_path_factory.mktemp("embedded-engine")
    port = free_port()
    server = spawn(
        [str(COUNTERSIGN), "serve", "--port", str(port)],
        env=child_env(),
        cwd=cwd,
        log_path=cwd.parent / f"{cwd.name}.log",
        port=port,
    )
    try:
        tokens = mint_tokens(
            cwd,
            {
                "admin": ["--sub", "admin", "--role", "AWE_ADMIN"],
                "registry": ["--sub", "registry-svc", "--azp", "registry"],
                **{user: ["--sub", user] for user in ("alice", "bob", "carol", "dave")},
                **{officer: ["--sub", officer] for officer in OFFICERS},
            },
        )
        yield Embedded(server, tokens)
    finally:
        server.stop()
    assert "database is locked" not in server.log()


async def create(
    client: httpx.AsyncClient, caller: Headers, artifact_id: str, **context: Any
) -> Body:
    response = await client.post(
        "/v1/requests",
        json={
            "policy_key": SAMPLE,
            "artifact_type": SAMPLE,
            "artifact_id": artifact_id,
            "context": context,
        },
        headers=caller,
    )
    assert response.status_code == 201, response.text
    body: Body = response.json()
    return body


async def my_open_task(
    client: httpx.AsyncClient, user: Headers, request_id: str
) -> Body:
    response = await client.get(
        "/v1/tasks", params={"request_id": request_id, "status": "open"}, headers=user
    )
    assert response.status_code == 200, response.text
    [task] = response.json()["items"]
    result: Body = task
    return result


async def approve(client: httpx.AsyncClient, user: Headers, task_id: str) -> Body:
    response = await client.post(
        f"/v1/tasks/{task_id}/decision", json={"action": "approve"}, headers=user
    )
    assert response.status_code == 201, response.text
    body: Body = response.json()
    return body


async def timeline(
    client: httpx.AsyncClient, caller: Headers, request_id: str
) -> list[str]:
    response = await client.get(f"/v1/requests/{request_id}/events", headers=caller)
    assert response.status_code == 200, response.text
    verify = await client.get(
        f"/v1/requests/{request_id}/events/verify", headers=caller
    )
    assert verify.status_code == 200, verify.text
    assert verify.json()["valid"] is True, verify.json()
    assert verify.json()["count"] == len(response.json())
    return [e["event_type"] for e in response.json()]


class TestSamplePolicy:
    async def test_a_large_amount_goes_through_the_district_officer_and_the_director(
        self, embedded: Embedded
    ) -> None:
        t = embedded.tokens
        async with embedded.client() as client:
            created = await create(
                client, t["registry"], "CR-large", district="D1", amount=5000
            )
            assert created["status"] == "in_review"
            assert created["current_stage_order"] == 1
            # Group /districts and its subgroups, enabled members only (erin is disabled).
            assert sorted(task["assignee"] for task in created["tasks"]) == [
                "alice",
                "bob",
            ]
            request_id = created["request_id"]

            officer = await approve(
                client,
                t["alice"],
                (await my_open_task(client, t["alice"], request_id))["id"],
            )
            assert (officer["stage_status"], officer["request_status"]) == (
                "approved",
                "in_review",
            )

            director_task = await my_open_task(client, t["carol"], request_id)
            assert director_task["stage_order"] == 2
            observer_task = await my_open_task(client, t["dave"], request_id)
            assert observer_task["kind"] == "observer"
            director = await approve(client, t["carol"], director_task["id"])
            assert director["request_status"] == "approved"

            # alice's inbox over every status (merged per status on SQLite too).
            inbox = await client.get(
                "/v1/tasks", params={"request_id": request_id}, headers=t["alice"]
            )
            assert inbox.status_code == 200, inbox.text
            assert [
                (x["status"], x["decision_action"]) for x in inbox.json()["items"]
            ] == [("completed", "approve")]
            request = await client.get(
                f"/v1/requests/{request_id}", headers=t["registry"]
            )
            events = await timeline(client, t["registry"], request_id)

        assert request.status_code == 200, request.text
        assert request.json()["status"] == "approved"
        assert [s["status"] for s in request.json()["stages"]] == [
            "approved",
            "approved",
        ]
        assert events.count("stage_started") == 2
        assert events.count("stage_completed") == 2
        assert events[0] == "request_created"
        assert events[-1] == "request_approved"

    async def test_a_small_amount_skips_the_director(self, embedded: Embedded) -> None:
        t = embedded.tokens
        async with embedded.client() as client:
            created = await create(
                client, t["registry"], "CR-small", district="D2", amount=20
            )
            request_id = created["request_id"]

            decided = await approve(
                client,
                t["bob"],
                (await my_open_task(client, t["bob"], request_id))["id"],
            )
            events = await timeline(client, t["registry"], request_id)

        assert decided["request_status"] == "approved"
        assert "stage_skipped" in events
        assert events.count("stage_started") == 1
        assert events[-1] == "request_approved"


class TestRacingDecisionsOnSqlite:
    async def test_five_parallel_decisions_complete_an_any_n_stage_once(
        self, embedded: Embedded
    ) -> None:
        t = embedded.tokens
        key = "embedded.race"
        async with embedded.client() as client:
            policy = {
                "policy_key": key,
                "name": "Race",
                "artifact_type": key,
                "stages": [
                    {
                        "stage_order": 1,
                        "name": "Officers",
                        "mode": "any-n",
                        "mode_value": 1,
                        "rules": [
                            {"rule_type": "user", "rule_value": {"user_id": o}}
                            for o in OFFICERS
                        ],
                    },
                    {
                        "stage_order": 2,
                        "name": "Director",
                        "mode": "all",
                        "rules": [
                            {"rule_type": "user", "rule_value": {"user_id": "carol"}}
                        ],
                    },
                ],
            }
            assert (
                await client.post("/v1/policies", json=policy, headers=t["admin"])
            ).status_code == 201
            activated = await client.post(
                f"/v1/policies/{key}/versions/1/activate", headers=t["admin"]
            )
            assert activated.status_code == 200, activated.text
            created = await client.post(
                "/v1/requests",
                json={
                    "policy_key": key,
                    "artifact_type": key,
                    "artifact_id": "R-1",
                    "context": {},
                },
                headers=t["registry"],
            )
            assert created.status_code == 201, created.text
            request_id = created.json()["request_id"]
            tasks = created.json()["tasks"]

            responses = await asyncio.gather(
                *(
                    client.post(
                        f"/v1/tasks/{task['id']}/decision",
                        json={"action": "approve"},
                        headers=t[task["assignee"]],
                    )
                    for task in tasks
                )
            )
            events = await timeline(client, t["registry"], request_id)
            stage_two = await client.get(
                "/v1/tasks",
                params={"assignee": "*", "request_id": request_id, "status": "open"},
                headers=t["admin"],
            )

        assert Counter(r.status_code for r in responses) == Counter({201: 1, 409: 4}), [
            r.text for r in responses
        ]
        assert {r.json()["code"] for r in responses if r.status_code == 409} == {
            "invalid_state"
        }
        assert events.count("decision_recorded") == 1
        assert events.count("stage_completed") == 1
        assert events.count("stage_started") == 2
        assert [
            (task["assignee"], task["stage_order"])
            for task in stage_two.json()["items"]
        ] == [("carol", 2)]
