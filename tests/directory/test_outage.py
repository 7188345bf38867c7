"""Outages of Keycloak delay approvals but never lose them (API.md "Requests", resolver outage).

The service here is configured like a deployment with `COUNTERSIGN_KEYCLOAK_*` pointing at the
loopback Keycloak of `keycloak_server.py`, whose switch takes it down and brings it back. The
policy's stages are `role` rules, resolved through Keycloak when a stage starts. While Keycloak
cannot answer, creating a request and deciding the task that starts the next stage still succeed
(201): the stage waits in `resolving`, `stage_resolution_failed` records why, and the worker
(`run_due_locally`, the embedded worker's and the test hook's pass) retries with backoff until
Keycloak answers, then starts the stage as if nothing had happened. Nothing is ever a 500.

The rule cache is off (`COUNTERSIGN_DIRECTORY_CACHE_SECONDS=0`), so every resolution asks Keycloak.
Time is the service clock of this test (`COUNTERSIGN_CLOCK_FILE`), moved by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from countersign.app import create_app
from countersign.kit import clock
from countersign.worker.jobs import run_due_locally
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import Body, Flow, role_rule

from .keycloak_server import (
    DIRECTORS,
    DISTRICT_OFFICERS,
    KeycloakServer,
    Outage,
    seeded_realm,
)

# The first retry waits 30 s, then 60, 120... (engine.resolution_backoff).
FIRST_BACKOFF_SECONDS = 30
RESOLVER_ACTOR = "system:resolver"


def role_stage(order: int, role: str) -> Body:
    return {
        "stage_order": order,
        "name": f"Stage {order}",
        "mode": "any-n",
        "mode_value": 1,
        "rules": [role_rule(role)],
    }


STAGES = [role_stage(1, "district_officer"), role_stage(2, "director")]


@pytest.fixture(scope="module")
def keycloak() -> Iterator[KeycloakServer]:
    with KeycloakServer(seeded_realm()) as server:
        yield server


@pytest.fixture(scope="module")
async def keycloak_app(
    keycloak: KeycloakServer,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[FastAPI]:
    settings = keycloak.settings(
        database_url=database_url,
        auth_mode="dev",
        data_dir=tmp_path_factory.mktemp("outage-app"),
        directory_cache_seconds=0,
        # A hanging Keycloak fails a resolution in 2 s, not the default 5 s; shorter bounds made
        # answers of the healthy fake Keycloak time out on a loaded CI machine.
        keycloak_timeout_seconds=2.0,
    )
    app = create_app(settings, in_process_worker=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def service_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's own service clock, starting at offset zero."""
    monkeypatch.setenv("COUNTERSIGN_CLOCK_FILE", str(tmp_path / "clock"))


@pytest.fixture
async def flow(
    keycloak_app: FastAPI,
    keycloak: KeycloakServer,
    clean_database: None,
    service_clock: None,
) -> AsyncIterator[Flow]:
    issuer = keycloak_app.state.verifier.dev_issuer

    def mint(
        sub: str,
        *,
        roles: list[str] | None = None,
        azp: str | None = None,
        ttl_seconds: int = 3600,
    ) -> str:
        token: str = issuer.mint(
            sub, roles=roles or [], azp=azp, ttl_seconds=ttl_seconds
        )
        return token

    token: TokenFactory = mint
    transport = httpx.ASGITransport(app=keycloak_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://countersign.test"
    ) as client:
        flow = Flow(client, bearer(mint("admin-ann", roles=["AWE_ADMIN"])), token)
        await flow.publish(STAGES)
        try:
            yield flow
        finally:
            keycloak.come_back()  # whatever the test did to it


async def run_worker(app: FastAPI) -> dict[str, int]:
    return await run_due_locally(app.state.runtime)


async def resolving_stages(flow: Flow) -> list[Body]:
    response = await flow.client.get("/v1/admin/stages", headers=flow.admin)
    assert response.status_code == 200, response.text
    stages: list[Body] = response.json()
    return stages


async def open_assignees(flow: Flow, request_id: str, stage_order: int) -> list[str]:
    return sorted(
        t["assignee"]
        for t in await flow.tasks(request_id)
        if t["stage_order"] == stage_order and t["status"] == "open"
    )


def seconds_until(payload: Body, event: Body) -> float:
    """How long after `event` was written its retry is scheduled."""
    scheduled = datetime.fromisoformat(payload["next_attempt_at"])
    return (scheduled - datetime.fromisoformat(event["created_at"])).total_seconds()


def advance_past(payload: Body) -> None:
    """Move the service clock just past the retry a `stage_resolution_failed` event scheduled."""
    due = datetime.fromisoformat(payload["next_attempt_at"])
    clock.advance(max((due - clock.now()).total_seconds(), 0) + 1)


class TestCreationDuringAnOutage:
    @pytest.mark.parametrize("how", ["refuse", "503", "garbage", "slow"])
    async def test_the_request_is_created_and_its_stage_waits_in_resolving(
        self, flow: Flow, keycloak: KeycloakServer, how: Outage
    ) -> None:
        keycloak.go_down(how)

        created = await flow.create()

        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["status"], body["current_stage_order"], body["tasks"]) == (
            "in_review",
            1,
            [],
        )
        request_id = body["request_id"]
        assert await flow.stage_status(request_id) == {1: "resolving", 2: "pending"}
        assert await flow.event_types(request_id) == [
            "request_created",
            "stage_resolution_failed",
        ]
        [failed] = await flow.events_of(request_id, "stage_resolution_failed")
        payload = failed["payload"]
        assert "Keycloak" in payload["reason"]
        assert (payload["stage_order"], payload["attempt"]) == (1, 1)
        assert seconds_until(payload, failed) == pytest.approx(
            FIRST_BACKOFF_SECONDS, abs=1
        )
        [listed] = await resolving_stages(flow)
        assert (listed["request_id"], listed["stage_order"], listed["status"]) == (
            request_id,
            1,
            "resolving",
        )
        assert listed["resolution_attempts"] == 1
        assert listed["last_resolution_error"] == payload["reason"]
        assert datetime.fromisoformat(
            listed["next_resolution_at"]
        ) == datetime.fromisoformat(payload["next_attempt_at"])

    async def test_once_keycloak_is_back_the_worker_starts_the_stage_and_the_request_completes(
        self, flow: Flow, keycloak: KeycloakServer, keycloak_app: FastAPI
    ) -> None:
        keycloak.go_down("refuse")
        request_id = (await flow.start())["request_id"]
        keycloak.come_back()

        # Not due yet: the worker leaves it alone until the backoff has passed.
        early = await run_worker(keycloak_app)
        assert early["resolutions"] == 0
        assert await flow.stage_status(request_id) == {1: "resolving", 2: "pending"}

        clock.advance(FIRST_BACKOFF_SECONDS + 1)
        ran = await run_worker(keycloak_app)

        assert ran["resolutions"] == 1
        assert await flow.stage_status(request_id) == {1: "active", 2: "pending"}
        assert await open_assignees(flow, request_id, 1) == DISTRICT_OFFICERS
        [started] = await flow.events_of(request_id, "stage_started")
        assert started["actor"] == RESOLVER_ACTOR
        assert sorted(started["payload"]["approvers"]) == DISTRICT_OFFICERS
        assert await resolving_stages(flow) == []
        # Approvers find the task in their inbox as if the stage had started at once.
        await flow.approve("gina", request_id)
        assert await open_assignees(flow, request_id, 2) == DIRECTORS
        await flow.approve("dave", request_id)
        request = await flow.request(request_id)
        assert request["status"] == "approved"
        assert await flow.event_types(request_id) == [
            "request_created",
            "stage_resolution_failed",
            "stage_started",
            "decision_recorded",
            "stage_quorum_skipped",
            "stage_completed",
            "stage_started",
            "decision_recorded",
            "stage_quorum_skipped",
            "stage_completed",
            "request_approved",
        ]

    async def test_an_idempotent_retry_of_the_creation_replays_the_201(
        self, flow: Flow, keycloak: KeycloakServer
    ) -> None:
        keycloak.go_down("503")
        body = {
            "policy_key": "test.flow",
            "artifact_type": "test.flow",
            "artifact_id": "a-1",
            "context": {},
        }
        headers = {**flow.caller, "Idempotency-Key": '"outage-1"'}

        first = await flow.client.post("/v1/requests", json=body, headers=headers)
        again = await flow.client.post("/v1/requests", json=body, headers=headers)

        assert (first.status_code, again.status_code) == (201, 201)
        assert again.content == first.content
        listed = await flow.client.get("/v1/requests", headers=flow.admin)
        assert [r["id"] for r in listed.json()] == [first.json()["request_id"]]


class TestDecisionDuringAnOutage:
    async def test_the_decision_is_kept_and_the_next_stage_starts_once_keycloak_is_back(
        self, flow: Flow, keycloak: KeycloakServer, keycloak_app: FastAPI
    ) -> None:
        request_id = (await flow.start())["request_id"]
        assert await open_assignees(flow, request_id, 1) == DISTRICT_OFFICERS
        keycloak.go_down("refuse")

        decided = await flow.decide("alice", request_id)

        assert decided.status_code == 201, decided.text
        assert (decided.json()["stage_status"], decided.json()["request_status"]) == (
            "approved",
            "in_review",
        )
        assert await flow.stage_status(request_id) == {1: "approved", 2: "resolving"}
        assert (await flow.request(request_id))["current_stage_order"] == 2
        [failed] = await flow.events_of(request_id, "stage_resolution_failed")
        assert failed["actor"] == "alice"
        assert failed["payload"]["stage_order"] == 2
        assert "Keycloak" in failed["payload"]["reason"]
        [decision] = await flow.events_of(request_id, "decision_recorded")
        assert (decision["actor"], decision["payload"]["action"]) == (
            "alice",
            "approve",
        )
        assert [s["stage_order"] for s in await resolving_stages(flow)] == [2]

        keycloak.come_back()
        advance_past(failed["payload"])
        await run_worker(keycloak_app)

        assert await flow.stage_status(request_id) == {1: "approved", 2: "active"}
        assert await open_assignees(flow, request_id, 2) == DIRECTORS
        await flow.approve("carol", request_id)
        assert (await flow.request(request_id))["status"] == "approved"

    async def test_a_rejection_during_an_outage_needs_no_directory_at_all(
        self, flow: Flow, keycloak: KeycloakServer
    ) -> None:
        request_id = (await flow.start())["request_id"]
        keycloak.go_down("refuse")

        decided = await flow.decide("bob", request_id, "reject")

        assert decided.status_code == 201, decided.text
        assert (await flow.request(request_id))["status"] == "rejected"
        assert await flow.events_of(request_id, "stage_resolution_failed") == []


class TestRetries:
    async def test_every_failed_retry_is_recorded_and_the_retries_back_off(
        self, flow: Flow, keycloak: KeycloakServer, keycloak_app: FastAPI
    ) -> None:
        keycloak.go_down("503")
        request_id = (await flow.start())["request_id"]

        for _ in range(3):
            [*_, last] = await flow.events_of(request_id, "stage_resolution_failed")
            # Just before it is due, nothing happens.
            clock.advance(seconds_until(last["payload"], last) - 5)
            assert (await run_worker(keycloak_app))["resolutions"] == 0
            advance_past(last["payload"])
            assert (await run_worker(keycloak_app))["resolutions"] == 1

        failures = await flow.events_of(request_id, "stage_resolution_failed")
        assert [f["payload"]["attempt"] for f in failures] == [1, 2, 3, 4]
        assert [f["actor"] for f in failures] == ["registry-svc", *[RESOLVER_ACTOR] * 3]
        assert [round(seconds_until(f["payload"], f)) for f in failures] == [
            30,
            60,
            120,
            240,
        ]
        assert all("HTTP 503" in f["payload"]["reason"] for f in failures)
        [listed] = await resolving_stages(flow)
        assert listed["resolution_attempts"] == 4

        keycloak.come_back()
        advance_past(failures[-1]["payload"])
        await run_worker(keycloak_app)

        assert await flow.stage_status(request_id) == {1: "active", 2: "pending"}
        assert len(await flow.events_of(request_id, "stage_started")) == 1
        assert await resolving_stages(flow) == []

    async def test_the_backoff_is_capped_at_15_minutes(
        self, flow: Flow, keycloak: KeycloakServer, keycloak_app: FastAPI
    ) -> None:
        keycloak.go_down("refuse")
        request_id = (await flow.start())["request_id"]

        for _ in range(7):
            [*_, last] = await flow.events_of(request_id, "stage_resolution_failed")
            advance_past(last["payload"])
            await run_worker(keycloak_app)

        failures = await flow.events_of(request_id, "stage_resolution_failed")
        gaps = [round(seconds_until(f["payload"], f)) for f in failures]
        assert gaps == [30, 60, 120, 240, 480, 900, 900, 900]

    async def test_a_request_cancelled_while_resolving_is_never_retried(
        self, flow: Flow, keycloak: KeycloakServer, keycloak_app: FastAPI
    ) -> None:
        keycloak.go_down("refuse")
        request_id = (await flow.start())["request_id"]

        cancelled = await flow.cancel(request_id, reason="withdrawn")

        assert cancelled.status_code == 200, cancelled.text
        assert await flow.stage_status(request_id) == {1: "cancelled", 2: "cancelled"}
        assert await resolving_stages(flow) == []
        keycloak.come_back()
        clock.advance(3600)
        ran = await run_worker(keycloak_app)
        assert ran["resolutions"] == 0
        assert (await flow.event_types(request_id))[-1] == "request_cancelled"
        assert await flow.tasks(request_id) == []


class TestDirectoryData:
    async def test_a_user_whose_id_cannot_hold_a_task_keeps_the_stage_resolving_until_fixed(
        self, flow: Flow, keycloak: KeycloakServer, keycloak_app: FastAPI
    ) -> None:
        # Keycloak allows 255-character usernames; a task's assignee holds 200. Storing the task
        # would fail the whole command (a 500, the request lost), so the stage waits instead,
        # with a reason that says what to fix.
        realm = keycloak.realm
        overlong = "night-" + "x" * 200
        realm.role("night_shift")
        realm.user("nina", roles=["night_shift"])
        user = realm.user(overlong, roles=["night_shift"])
        try:
            await flow.publish([role_stage(1, "night_shift")], key="night.shift")

            created = await flow.create(key="night.shift")

            assert created.status_code == 201, created.text
            request_id = created.json()["request_id"]
            assert await flow.stage_status(request_id) == {1: "resolving"}
            [failed] = await flow.events_of(request_id, "stage_resolution_failed")
            assert "role 'night_shift'" in failed["payload"]["reason"]
            assert "longer than 200 characters" in failed["payload"]["reason"]

            user.enabled = False  # what the realm admin does about it
            advance_past(failed["payload"])
            await run_worker(keycloak_app)

            assert await open_assignees(flow, request_id, 1) == ["nina"]
        finally:
            del realm.users[overlong]
            del realm.users["nina"]


class TestDecisionsAreNeverLost:
    @pytest.mark.parametrize("where", ["expression rule", "skip_if"])
    async def test_a_rule_of_the_next_stage_that_fails_on_the_context_does_not_refuse_the_decision(
        self, flow: Flow, where: str
    ) -> None:
        share = {
            "/": [100, {"var": "approvers"}]
        }  # division by zero when approvers is 0
        second = role_stage(2, "director")
        if where == "skip_if":
            second["skip_if"] = {">": [share, 10]}
        else:
            second["rules"] = [
                {
                    "rule_type": "expression",
                    "rule_value": {"logic": {"if": [share, "carol", "dave"]}},
                }
            ]
        await flow.publish([role_stage(1, "district_officer"), second], key="fragile")
        request_id = (await flow.start(key="fragile", context={"approvers": 0}))[
            "request_id"
        ]

        decided = await flow.decide("alice", request_id)

        assert decided.status_code == 201, decided.text
        # The decision stands; the pinned policy can never evaluate on this context, so the
        # request ends visibly instead of waiting forever.
        assert decided.json()["request_status"] == "rejected"
        got = await flow.request(request_id)
        assert got["outcome_reason"] == "rule_evaluation_failed"


class TestStuckFilter:
    """`GET /v1/requests?stuck=true`: the admin UI's "stuck" view (docs/operations.md)."""

    async def listed(self, flow: Flow, stuck: str) -> list[str]:
        response = await flow.client.get(
            "/v1/requests", params={"stuck": stuck}, headers=flow.admin
        )
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()]

    async def test_a_request_waiting_in_resolving_is_stuck_until_it_resolves(
        self, flow: Flow, keycloak: KeycloakServer, keycloak_app: FastAPI
    ) -> None:
        fine = (await flow.start(artifact_id="fine"))["request_id"]
        keycloak.go_down("refuse")
        waiting = (await flow.start(artifact_id="waiting"))["request_id"]
        keycloak.come_back()

        assert await self.listed(flow, "true") == [waiting]
        assert await self.listed(flow, "false") == [fine]
        # The row says why: the stage's last resolution error and its next retry.
        first = (await flow.request(waiting))["stages"][0]
        assert "Keycloak" in first["resolution_error"]
        assert first["next_resolution_at"] is not None
        assert (await flow.request(fine))["stages"][0]["resolution_error"] is None

        clock.advance(FIRST_BACKOFF_SECONDS + 1)
        await run_worker(keycloak_app)

        assert await self.listed(flow, "true") == []
        assert await self.listed(flow, "false") == [waiting, fine]
        resolved = (await flow.request(waiting))["stages"][0]
        assert (resolved["resolution_error"], resolved["next_resolution_at"]) == (
            None,
            None,
        )

    async def test_a_rule_over_its_evaluation_budget_rejects_like_any_failing_rule(
        self, flow: Flow
    ) -> None:
        # 1 KB of context and a 202-node rule: 200 copies concatenated would be 200 KB.
        bomb = {"cat": [{"var": "note"}] * 200}
        second = role_stage(2, "director")
        second["skip_if"] = {"==": [bomb, ""]}
        await flow.publish([role_stage(1, "district_officer"), second], key="bomb")
        request_id = (await flow.start(key="bomb", context={"note": "n" * 1000}))[
            "request_id"
        ]

        decided = await flow.decide("alice", request_id)

        assert decided.status_code == 201, decided.text
        assert decided.json()["request_status"] == "rejected"
        got = await flow.request(request_id)
        assert got["outcome_reason"] == "rule_evaluation_failed"
        [completed] = [
            e
            for e in await flow.events_of(request_id, "stage_completed")
            if e["payload"]["stage_order"] == 2
        ]
        assert "would build a value" in completed["payload"]["detail"]
