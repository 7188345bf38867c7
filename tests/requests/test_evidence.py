"""`GET /v1/requests/{id}/evidence`: the auditor's bundle, on PostgreSQL over HTTP.

The bundle must stand on its own: its events are checked here with the contract's hash formula
(not the service's `timeline` module), and it must agree with what the individual routes show.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from countersign import __version__
from countersign.kit import clock
from countersign.models import Event
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import CALLER_ID, Body, Flow, problem_code, stage

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def flow(
    client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    return Flow(client, admin_headers, token)


def chain_is_valid(events: list[Body]) -> bool:
    """The contract's formula (API.md, EventOut), as an auditor would run it offline."""
    prev = "0" * 64
    for n, event in enumerate(events, start=1):
        fields = {
            k: event[k]
            for k in ("sequence", "event_type", "actor", "payload", "created_at")
        }
        body = json.dumps(
            fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        if event["sequence"] != n or event["prev_hash"] != prev:
            return False
        if hashlib.sha256((prev + body).encode()).hexdigest() != event["hash"]:
            return False
        prev = event["hash"]
    return True


async def evidence(
    flow: Flow, request_id: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await flow.client.get(
        f"/v1/requests/{request_id}/evidence",
        headers=flow.caller if headers is None else headers,
    )


async def approved_request(flow: Flow) -> str:
    await flow.publish([stage(1, ["alice"]), stage(2, ["carol"], sla_hours=24)])
    request_id = str((await flow.start(artifact_id="cr-7"))["request_id"])
    await flow.approve("alice", request_id, comment="fine – ✓")
    await flow.approve("carol", request_id)
    return request_id


class TestEvidence:
    async def test_is_a_download_holding_everything_an_auditor_needs(
        self, flow: Flow
    ) -> None:
        request_id = await approved_request(flow)

        response = await evidence(flow, request_id)

        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert (
            response.headers["content-disposition"]
            == f'attachment; filename="evidence-{request_id}.json"'
        )
        body = response.json()
        assert set(body) == {
            "format",
            "generated_at",
            "generated_by",
            "service_version",
            "request",
            "tasks",
            "decisions",
            "events",
            "verification",
            "policy",
            "policy_diagram_svg",
            "request_diagram_svg",
        }
        assert body["format"] == "countersign.evidence/v1"
        assert body["generated_by"] == CALLER_ID
        assert body["service_version"] == __version__
        generated = datetime.fromisoformat(body["generated_at"])
        assert abs((generated - clock.now()).total_seconds()) < 60
        assert body["request"] == await flow.request(request_id)
        assert body["request"]["status"] == "approved"

    async def test_agrees_with_the_individual_routes(self, flow: Flow) -> None:
        request_id = await approved_request(flow)

        body = (await evidence(flow, request_id)).json()

        assert body["events"] == await flow.events(request_id)
        verify = await flow.client.get(
            f"/v1/requests/{request_id}/events/verify", headers=flow.caller
        )
        assert body["verification"] == verify.json()
        assert body["verification"]["valid"] is True
        assert body["verification"]["count"] == len(body["events"])
        assert body["tasks"] == await flow.tasks(request_id)
        policy = await flow.client.get(
            "/v1/policies/test.flow/versions/1", headers=flow.admin
        )
        assert body["policy"] == policy.json()
        assert [
            (d["stage_order"], d["actor"], d["action"]) for d in body["decisions"]
        ] == [
            (1, "alice", "approve"),
            (2, "carol", "approve"),
        ]
        assert body["decisions"][0]["comment"] == "fine – ✓"
        task_ids = {t["id"] for t in body["tasks"]}
        assert {d["task_id"] for d in body["decisions"]} <= task_ids

    async def test_its_events_verify_offline(self, flow: Flow) -> None:
        request_id = await approved_request(flow)

        body = (await evidence(flow, request_id)).json()

        assert chain_is_valid(body["events"])

    async def test_carries_the_policy_and_request_diagrams(self, flow: Flow) -> None:
        request_id = await approved_request(flow)

        body = (await evidence(flow, request_id)).json()

        policy_svg = ET.fromstring(body["policy_diagram_svg"])
        request_svg = ET.fromstring(body["request_diagram_svg"])
        assert policy_svg.tag == request_svg.tag == f"{SVG}svg"
        assert "SLA 24 h → notify" in "".join(policy_svg.itertext())
        statuses = {
            g.attrib["data-stage-order"]: g.attrib["data-status"]
            for g in request_svg.iter(f"{SVG}g")
            if "data-stage-order" in g.attrib
        }
        assert statuses == {"1": "approved", "2": "approved"}

    async def test_a_tampered_timeline_shows_in_the_bundle(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        request_id = await approved_request(flow)
        [decision, _] = await flow.events_of(request_id, "decision_recorded")
        await session.execute(
            update(Event)
            .where(Event.id == uuid.UUID(decision["id"]))
            .values(payload={**decision["payload"], "action": "reject"})
        )
        await session.commit()

        body = (await evidence(flow, request_id)).json()

        assert body["verification"]["valid"] is False
        assert body["verification"]["broken_at_sequence"] == decision["sequence"]
        assert not chain_is_valid(body["events"])

    async def test_holds_every_cycle_of_a_resubmitted_request(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]
        await flow.act("alice", request_id, "request_changes", comment="fix it")
        resubmitted = await flow.resubmit(request_id, context={"fixed": True})
        assert resubmitted.status_code == 200, resubmitted.text

        body = (await evidence(flow, request_id)).json()

        assert [(t["status"], t["decision_action"]) for t in body["tasks"]] == [
            ("completed", "request_changes"),
            ("open", None),
        ]
        assert body["request"]["cycle"] == 2
        assert chain_is_valid(body["events"])

    async def test_an_approver_gets_the_completed_tasks_and_their_own(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice", "bob", "dan"], mode="all")])
        request_id = (await flow.start())["request_id"]
        await flow.approve("alice", request_id)

        as_bob = (await evidence(flow, request_id, flow.user("bob"))).json()
        as_caller = (await evidence(flow, request_id)).json()

        # The same rule as GET /v1/tasks?assignee=*&request_id= (who else is pending stays private).
        assert sorted(t["assignee"] for t in as_bob["tasks"]) == ["alice", "bob"]
        assert sorted(t["assignee"] for t in as_caller["tasks"]) == [
            "alice",
            "bob",
            "dan",
        ]

    async def test_is_404_for_someone_who_may_not_see_the_request(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]

        hidden = await evidence(flow, request_id, flow.user("mallory"))
        unknown = await evidence(flow, str(uuid.uuid4()))
        approver = await evidence(flow, request_id, flow.user("alice"))

        for response in (hidden, unknown):
            assert (response.status_code, problem_code(response)) == (
                404,
                "request_not_found",
            )
        assert approver.status_code == 200

    async def test_the_openapi_document_declares_its_schema(self, flow: Flow) -> None:
        schema: dict[str, Any] = (await flow.client.get("/v1/openapi.json")).json()

        route = schema["paths"]["/v1/requests/{request_id}/evidence"]["get"]
        ok = route["responses"]["200"]
        assert ok["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/EvidenceOut"
        }
        assert "Content-Disposition" in ok["headers"]
        evidence_schema = schema["components"]["schemas"]["EvidenceOut"]
        assert {"request", "events", "verification", "policy"} <= set(
            evidence_schema["required"]
        )
        assert "404" in route["responses"]
