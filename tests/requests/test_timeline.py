"""The request timeline and its webhook outbox, over HTTP on PostgreSQL.

The hash is recomputed here from the contract's own words ("Requests": EventOut), not with the
service's `timeline` module, so a change to the formula on either side shows up as a failure.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.models import Event, WebhookDelivery
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import CALLER_CLIENT, Body, Flow, stage

GENESIS = "0" * 64
# Dev mode allows loopback over plain http; nothing listens on the discard port, so a delivery
# the worker may try in the background simply stays pending for a retry.
CALLBACK_URL = "http://127.0.0.1:9/awe/callback"
UNICODE_COMMENT = "Genehmigt – ok ✓"


@pytest.fixture
def flow(
    client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    return Flow(client, admin_headers, token)


def contract_hash(prev_hash: str, event: Body) -> str:
    """sha256(prev_hash + canonical JSON of {sequence, event_type, actor, payload, created_at})."""
    fields = {
        k: event[k]
        for k in ("sequence", "event_type", "actor", "payload", "created_at")
    }
    canonical = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


async def finished_two_stage_request(flow: Flow, **create_fields: Any) -> str:
    """A two-stage request taken to approval; alice's comment is non-ASCII."""
    await flow.publish([stage(1, ["alice", "bob"]), stage(2, ["carol"])])
    request_id = str((await flow.start(**create_fields))["request_id"])
    await flow.approve("alice", request_id, comment=UNICODE_COMMENT)
    await flow.approve("carol", request_id)
    return request_id


class TestEvents:
    async def test_sequences_run_1_to_n_ascending(self, flow: Flow) -> None:
        request_id = await finished_two_stage_request(flow)

        events = await flow.events(request_id)

        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
        assert {e["request_id"] for e in events} == {request_id}
        assert len({e["id"] for e in events}) == len(events)

    async def test_created_at_is_rfc3339_utc(self, flow: Flow) -> None:
        request_id = await finished_two_stage_request(flow)

        for event in await flow.events(request_id):
            assert event["created_at"].endswith("Z")

    async def test_the_actor_is_the_principal_id(self, flow: Flow) -> None:
        request_id = await finished_two_stage_request(flow)

        actors = [(e["event_type"], e["actor"]) for e in await flow.events(request_id)]

        assert actors[0] == ("request_created", "registry-svc")
        assert ("decision_recorded", "alice") in actors
        assert actors[-1] == ("request_approved", "carol")

    async def test_stage_started_names_approvers_and_their_task_ids(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice", "bob"], observers=["dave"])])
        created = await flow.start()
        task_ids = {t["assignee"]: t["id"] for t in created["tasks"]}

        [started] = await flow.events_of(created["request_id"], "stage_started")

        payload = started["payload"]
        assert (payload["stage_order"], payload["name"], payload["mode"]) == (
            1,
            "Stage 1",
            "any-n",
        )
        assert payload["approvers"] == ["alice", "bob"]
        assert payload["observers"] == ["dave"]
        assert payload["removed_by_sod"] == []
        assert {(t["assignee"], t["task_id"], t["kind"]) for t in payload["tasks"]} == {
            ("alice", task_ids["alice"], "approver"),
            ("bob", task_ids["bob"], "approver"),
            ("dave", task_ids["dave"], "observer"),
        }

    async def test_decision_recorded_carries_the_action_and_comment(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice", "bob"], mode="all")])
        request_id = (await flow.start())["request_id"]
        task_id = await flow.open_task("alice", request_id)
        decision = await flow.abstain(
            "alice", request_id, comment="conflict of interest"
        )

        [recorded] = await flow.events_of(request_id, "decision_recorded")

        assert recorded["actor"] == "alice"
        assert recorded["payload"] == {
            "task_id": task_id,
            "decision_id": decision["id"],
            "stage_order": 1,
            "kind": "approver",
            "assignee": "alice",
            "action": "abstain",
            "comment": "conflict of interest",
            "on_behalf_of": None,
        }

    async def test_stage_completed_carries_the_outcome_and_the_tally_it_settled_on(
        self, flow: Flow
    ) -> None:
        request_id = await finished_two_stage_request(flow)

        completed = await flow.events_of(request_id, "stage_completed")
        stages = (await flow.request(request_id))["stages"]

        assert [
            (e["payload"]["stage_order"], e["payload"]["outcome"]) for e in completed
        ] == [
            (1, "approved"),
            (2, "approved"),
        ]
        # bob was still open when alice's approval settled stage 1; his task was then skipped,
        # so the request view, read afterwards, no longer counts it.
        assert completed[0]["payload"]["counts"] == {
            "approve": 1,
            "reject": 0,
            "abstain": 0,
            "open": 1,
        }
        assert stages[0]["counts"] == {
            "approve": 1,
            "reject": 0,
            "abstain": 0,
            "open": 0,
        }
        assert completed[1]["payload"]["counts"] == stages[1]["counts"]

    async def test_request_created_records_the_pinned_policy_and_the_caller(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start(requester="frank"))["request_id"]

        created = (await flow.events(request_id))[0]

        assert created["event_type"] == "request_created"
        assert created["prev_hash"] == GENESIS
        payload = created["payload"]
        assert (payload["policy_key"], payload["policy_version"]) == ("test.flow", 1)
        assert (payload["requester"], payload["source_client"]) == (
            "frank",
            CALLER_CLIENT,
        )

    async def test_a_rejection_and_a_cancellation_carry_their_reason(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        rejected_id = (await flow.start(artifact_id="r-1"))["request_id"]
        await flow.reject("alice", rejected_id)
        cancelled_id = (await flow.start(artifact_id="c-1"))["request_id"]
        await flow.cancel(cancelled_id, reason="withdrawn by the applicant")

        rejected = (await flow.events(rejected_id))[-1]
        cancelled = (await flow.events(cancelled_id))[-1]

        assert (rejected["event_type"], rejected["payload"]["reason"]) == (
            "request_rejected",
            "stage_rejected",
        )
        assert (cancelled["event_type"], cancelled["payload"]["reason"]) == (
            "request_cancelled",
            "withdrawn by the applicant",
        )

    async def test_events_of_an_unknown_or_invisible_request_are_404(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]

        unknown = await flow.client.get(
            f"/v1/requests/{uuid.uuid4()}/events", headers=flow.admin
        )
        hidden = await flow.client.get(
            f"/v1/requests/{request_id}/events", headers=flow.user("mallory")
        )

        assert (unknown.status_code, hidden.status_code) == (404, 404)
        assert hidden.json()["code"] == "request_not_found"


class TestHashChain:
    async def test_prev_hash_links_every_event_to_the_one_before(
        self, flow: Flow
    ) -> None:
        request_id = await finished_two_stage_request(flow)

        events = await flow.events(request_id)

        assert events[0]["prev_hash"] == GENESIS
        for before, after in zip(events, events[1:], strict=False):
            assert after["prev_hash"] == before["hash"]

    async def test_every_hash_is_the_contract_formula(self, flow: Flow) -> None:
        request_id = await finished_two_stage_request(flow)

        for event in await flow.events(request_id):
            assert event["hash"] == contract_hash(event["prev_hash"], event)

    async def test_non_ascii_text_is_hashed_as_utf8_not_escaped(
        self, flow: Flow
    ) -> None:
        request_id = await finished_two_stage_request(flow)
        [decision, _] = await flow.events_of(request_id, "decision_recorded")
        assert decision["payload"]["comment"] == UNICODE_COMMENT

        fields = {
            k: decision[k]
            for k in ("sequence", "event_type", "actor", "payload", "created_at")
        }
        escaped = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        escaped_hash = hashlib.sha256(
            (decision["prev_hash"] + escaped).encode()
        ).hexdigest()

        assert decision["hash"] == contract_hash(decision["prev_hash"], decision)
        assert decision["hash"] != escaped_hash

    async def test_verify_confirms_an_intact_chain(self, flow: Flow) -> None:
        request_id = await finished_two_stage_request(flow)
        count = len(await flow.events(request_id))

        response = await flow.client.get(
            f"/v1/requests/{request_id}/events/verify", headers=flow.caller
        )

        assert response.status_code == 200
        assert response.json()["valid"] is True
        assert response.json()["count"] == count

    async def test_verify_detects_a_payload_edited_in_the_database(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        request_id = await finished_two_stage_request(flow)
        [decision, _] = await flow.events_of(request_id, "decision_recorded")
        forged = {**decision["payload"], "action": "reject"}
        await session.execute(
            update(Event)
            .where(Event.id == uuid.UUID(decision["id"]))
            .values(payload=forged)
        )
        await session.commit()

        response = await flow.client.get(
            f"/v1/requests/{request_id}/events/verify", headers=flow.caller
        )

        assert response.status_code == 200
        assert response.json()["valid"] is False
        assert response.json()["broken_at_sequence"] == decision["sequence"]

    async def test_the_chain_continues_across_a_resubmission(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]
        await flow.act("alice", request_id, "request_changes", comment="ändern")
        await flow.resubmit(request_id, context={"note": "geändert ✓"})
        await flow.approve("alice", request_id)

        events = await flow.events(request_id)
        verify = await flow.client.get(
            f"/v1/requests/{request_id}/events/verify", headers=flow.admin
        )

        assert verify.json()["valid"] is True
        assert verify.json()["count"] == len(events)
        assert all(e["hash"] == contract_hash(e["prev_hash"], e) for e in events)


# --- outbox -------------------------------------------------------------------------------------

AWE_FIELDS = (
    "event_id",
    "event_type",
    "request_id",
    "artifact_type",
    "artifact_id",
    "status",
    "stage_order",
    "actor",
    "occurred_at",
)
STANDARD_FIELDS = ("type", "timestamp", "sequence", "data")
NEVER_DELIVERED = {"stage_quorum_skipped", "decision_recorded"}


async def deliveries_of(
    session: AsyncSession, request_id: str
) -> list[WebhookDelivery]:
    statement = (
        select(WebhookDelivery)
        .where(WebhookDelivery.request_id == uuid.UUID(request_id))
        .order_by(WebhookDelivery.sequence)
    )
    rows = list((await session.execute(statement)).scalars().all())
    await session.commit()
    return rows


class TestOutbox:
    async def test_every_deliverable_event_has_one_pending_delivery(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        request_id = await finished_two_stage_request(flow, callback_url=CALLBACK_URL)
        events = await flow.events(request_id)

        deliveries = await deliveries_of(session, request_id)

        deliverable = [e for e in events if e["event_type"] not in NEVER_DELIVERED]
        assert [(d.event_type, str(d.event_id), d.sequence) for d in deliveries] == [
            (e["event_type"], e["id"], e["sequence"]) for e in deliverable
        ]
        assert [d.event_type for d in deliveries] == [
            "request_created",
            "stage_started",
            "stage_completed",
            "stage_started",
            "stage_completed",
            "request_approved",
        ]
        assert {(d.status, d.url, d.caller) for d in deliveries} == {
            ("pending", CALLBACK_URL, CALLER_CLIENT)
        }

    async def test_the_body_is_compact_json_with_awe_and_standard_fields(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        request_id = await finished_two_stage_request(flow, callback_url=CALLBACK_URL)
        events = {e["id"]: e for e in await flow.events(request_id)}

        for delivery in await deliveries_of(session, request_id):
            body = json.loads(delivery.body)
            assert delivery.body == json.dumps(
                body, separators=(",", ":"), ensure_ascii=False
            )
            assert set(AWE_FIELDS + STANDARD_FIELDS) <= set(body)
            event = events[body["event_id"]]
            assert (body["event_type"], body["request_id"]) == (
                event["event_type"],
                request_id,
            )
            assert (body["artifact_type"], body["artifact_id"]) == ("test.flow", "a-1")
            assert (body["actor"], body["occurred_at"], body["timestamp"]) == (
                event["actor"],
                event["created_at"],
                event["created_at"],
            )
            assert body["sequence"] == event["sequence"]
            assert body["data"]["payload"] == event["payload"]

    async def test_the_final_delivery_says_how_the_request_ended(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        request_id = await finished_two_stage_request(flow, callback_url=CALLBACK_URL)

        last = json.loads((await deliveries_of(session, request_id))[-1].body)

        assert (last["event_type"], last["type"]) == (
            "request_approved",
            "approval_request.approved",
        )
        assert (last["status"], last["stage_order"], last["actor"]) == (
            "approved",
            2,
            "carol",
        )
        assert last["data"]["request"]["status"] == "approved"

    async def test_a_rejection_delivery_carries_the_reason(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start(callback_url=CALLBACK_URL))["request_id"]
        await flow.reject("alice", request_id, comment="incomplete")

        last = json.loads((await deliveries_of(session, request_id))[-1].body)

        assert (last["event_type"], last["status"], last["stage_order"]) == (
            "request_rejected",
            "rejected",
            1,
        )
        assert last["data"]["payload"]["reason"] == "stage_rejected"
        assert last["data"]["request"]["outcome_reason"] == "stage_rejected"

    async def test_no_callback_url_means_no_deliveries(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        request_id = await finished_two_stage_request(flow)

        assert await deliveries_of(session, request_id) == []

    async def test_a_refused_command_adds_no_delivery(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        request_id = await finished_two_stage_request(flow, callback_url=CALLBACK_URL)
        before = len(await deliveries_of(session, request_id))

        refused = await flow.cancel(request_id)

        assert refused.status_code == 409
        assert len(await deliveries_of(session, request_id)) == before

    async def test_a_caller_subscribed_to_decisions_also_gets_decision_recorded(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        secret = await flow.client.post(
            f"/v1/admin/callers/{CALLER_CLIENT}/secrets",
            json={"subscribe_decisions": True},
            headers=flow.admin,
        )
        assert secret.status_code == 201, secret.text
        request_id = await finished_two_stage_request(flow, callback_url=CALLBACK_URL)

        types = [d.event_type for d in await deliveries_of(session, request_id)]

        assert types.count("decision_recorded") == 2
        assert "stage_quorum_skipped" not in types
