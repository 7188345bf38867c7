"""The test hooks (API.md, "Operations"): `POST /v1/_test/clock` and `POST /v1/_test/tick`.

Mounted only when `COUNTERSIGN_TEST_HOOKS=true` (404 otherwise, never in production), admin token
required. The clock is an offset that only moves forward; tick runs every due timer synchronously
and returns `{"ran": {...counts}}`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from countersign.kit import clock
from tests.fixtures.flows import Flow, problem_code, stage
from tests.fixtures.worker import SharedClock

HOOKS = ("/v1/_test/clock", "/v1/_test/tick")
HOUR = 3600


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class TestMounting:
    @pytest.mark.parametrize("path", HOOKS)
    async def test_absent_without_test_hooks(
        self,
        client: httpx.AsyncClient,
        admin_headers: dict[str, str],
        path: str,
    ) -> None:
        """The ordinary app (COUNTERSIGN_TEST_HOOKS unset) has no such routes, for anyone."""
        response = await client.post(
            path, json={"advance_seconds": 60}, headers=admin_headers
        )
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 404

    async def test_absent_from_openapi_without_test_hooks(
        self, client: httpx.AsyncClient
    ) -> None:
        paths = (await client.get("/v1/openapi.json")).json()["paths"]
        assert not [p for p in paths if "_test" in p]

    @pytest.mark.parametrize("path", HOOKS)
    async def test_admins_only(
        self,
        hooks_client: httpx.AsyncClient,
        user_headers: dict[str, str],
        viewer_headers: dict[str, str],
        path: str,
    ) -> None:
        for headers in (user_headers, viewer_headers):
            response = await hooks_client.post(
                path, json={"advance_seconds": 60}, headers=headers
            )
            assert response.status_code == 403, response.text
            assert problem_code(response) == "forbidden"
        anonymous = await hooks_client.post(path, json={"advance_seconds": 60})
        assert anonymous.status_code == 401
        assert clock.offset_seconds() == 0, "nothing moved"


class TestClock:
    async def test_moves_forward_by_an_offset_and_keeps_running(
        self,
        hooks_client: httpx.AsyncClient,
        admin_headers: dict[str, str],
        service_clock: SharedClock,
    ) -> None:
        before = datetime.now(UTC)
        first = await hooks_client.post(
            "/v1/_test/clock", json={"advance_seconds": HOUR}, headers=admin_headers
        )
        assert first.status_code == 200, first.text
        assert first.json()["offset_seconds"] == HOUR
        moved = parse(first.json()["now"])
        assert moved - before >= timedelta(seconds=HOUR)
        assert moved - before < timedelta(seconds=HOUR + 60)

        second = await hooks_client.post(
            "/v1/_test/clock", json={"advance_seconds": 30}, headers=admin_headers
        )
        assert second.json()["offset_seconds"] == HOUR + 30
        assert parse(second.json()["now"]) > moved
        # The service itself reads the moved clock (here: a request's timestamps).
        assert clock.now() - datetime.now(UTC) >= timedelta(seconds=HOUR + 29)

    @pytest.mark.parametrize(
        "body", [{"advance_seconds": -1}, {}, {"advance_seconds": "soon"}]
    )
    async def test_only_forward(
        self,
        hooks_client: httpx.AsyncClient,
        admin_headers: dict[str, str],
        body: dict[str, object],
    ) -> None:
        response = await hooks_client.post(
            "/v1/_test/clock", json=body, headers=admin_headers
        )
        assert response.status_code == 422, response.text
        assert problem_code(response) == "validation_failed"
        assert clock.offset_seconds() == 0

    async def test_moved_clock_stamps_new_requests(
        self, flow: Flow, hooks_client: httpx.AsyncClient
    ) -> None:
        await flow.publish([stage(1, ["alice"], sla_hours=1)])
        moved = await hooks_client.post(
            "/v1/_test/clock",
            json={"advance_seconds": 10 * 24 * HOUR},
            headers=flow.admin,
        )
        request = await flow.request((await flow.start())["request_id"])
        created_at = parse(request["created_at"])
        assert created_at >= parse(moved.json()["now"])
        due_at = parse(request["stages"][0]["due_at"])
        assert abs(due_at - created_at - timedelta(hours=1)) < timedelta(seconds=1)


class TestTick:
    async def test_reports_what_ran(self, flow: Flow) -> None:
        await flow.publish(
            [
                stage(
                    1,
                    ["alice", "bob"],
                    sla_hours=2,
                    on_breach="notify",
                    reminder_hours=1,
                )
            ]
        )
        await flow.publish([stage(1, ["carol"])], key="test.ttl", request_ttl_hours=1)
        await flow.start(artifact_id="r-1")
        await flow.start(artifact_id="r-2")
        await flow.start(key="test.ttl", artifact_id="r-3")

        async def tick() -> dict[str, int]:
            response = await flow.client.post("/v1/_test/tick", headers=flow.admin)
            assert response.status_code == 200, response.text
            ran: dict[str, int] = response.json()["ran"]
            return ran

        async def advance(seconds: float) -> None:
            response = await flow.client.post(
                "/v1/_test/clock",
                json={"advance_seconds": seconds},
                headers=flow.admin,
            )
            assert response.status_code == 200, response.text

        idle = await tick()
        assert {k: idle[k] for k in ("sla_breaches", "reminders", "expirations")} == {
            "sla_breaches": 0,
            "reminders": 0,
            "expirations": 0,
        }
        assert {"resolutions", "webhooks"} <= idle.keys()

        await advance(HOUR + 5)
        ran = await tick()
        # Two requests x two approvers reminded; the ttl request expired.
        assert (ran["reminders"], ran["sla_breaches"], ran["expirations"]) == (4, 0, 1)
        assert (await tick())["reminders"] == 0, "a second tick finds nothing due"

        await advance(HOUR)
        ran = await tick()
        assert (ran["reminders"], ran["sla_breaches"], ran["expirations"]) == (4, 2, 0)
