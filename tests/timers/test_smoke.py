from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from countersign.kit import clock
from countersign.worker.jobs import run_due_locally
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import create_request, publish, stage


async def test_auto_approve_on_breach(
    client: httpx.AsyncClient,
    app: FastAPI,
    admin_headers: dict[str, str],
    token: TokenFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COUNTERSIGN_CLOCK_FILE", str(tmp_path / "clock"))
    await publish(
        client,
        admin_headers,
        [
            stage(
                1, ["alice"], sla_hours=2, on_breach="auto_approve", reminder_hours=1
            ),
            stage(2, ["bob"]),
        ],
    )
    caller = bearer(token("svc", azp="registry"))
    created = (await create_request(client, caller)).json()
    clock.advance(3600 + 5)
    ran = await run_due_locally(app.state.runtime)
    assert ran["reminders"] == 1, ran
    clock.advance(3600)
    ran = await run_due_locally(app.state.runtime)
    assert ran["sla_breaches"] == 1, ran
    events = (
        await client.get(f"/v1/requests/{created['request_id']}/events", headers=caller)
    ).json()
    print([(e["event_type"], e["actor"]) for e in events])
    got = (
        await client.get(f"/v1/requests/{created['request_id']}", headers=caller)
    ).json()
    assert got["current_stage_order"] == 2
    assert got["stages"][0]["status"] == "approved"
