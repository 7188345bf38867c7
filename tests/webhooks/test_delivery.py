"""Webhook delivery end to end: the API enqueues to real Redis, a real `countersign worker` sends.

A loopback receiver records what a caller would get. Every delivery is checked the way receivers
check it: with the `standardwebhooks` package and with AWE's `X-Approval-Signature`. Time-based
retries are driven by the shared clock (`shared_clock.advance`), never by sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from countersign import __version__
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import Body, Flow, problem_code, stage
from tests.fixtures.worker import (  # noqa: F401  (fixtures)
    SharedClock,
    WebhookAdmin,
    WorkerProcess,
    api,
    queued_app,
    redis_server,
    shared_clock,
    webhook_settings,
    worker,
    workers,
)
from tests.webhooks.receiver import (
    Call,
    Receiver,
    Reply,
    abort,
    awe_signed_by,
    retry_after,
    verify_standard,
)

pytestmark = pytest.mark.slow

# API.md "Webhooks": after a failed attempt n, the next waits SCHEDULE[n-1] seconds, ±10 %.
SCHEDULE = [60, 300, 900, 3600, 21600, 21600, 21600, 21600]
MAX_ATTEMPTS = len(SCHEDULE) + 1
NOT_DELIVERED = {"decision_recorded", "stage_quorum_skipped"}


def beyond(seconds: float) -> float:
    """Far enough past a scheduled delay, whatever its jitter."""
    return seconds * 1.1 + 1


def seconds_between(later: str, earlier: str) -> float:
    return (
        datetime.fromisoformat(later) - datetime.fromisoformat(earlier)
    ).total_seconds()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def admin(api: httpx.AsyncClient, admin_headers: dict[str, str]) -> WebhookAdmin:
    return WebhookAdmin(api, admin_headers)


@pytest.fixture
async def flow(
    api: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    """One stage, alice approves; the caller is the `registry` client."""
    flow = Flow(api, admin_headers, token)
    await flow.publish([stage(1, ["alice"])])
    return flow


async def deliverable_events(flow: Flow, request_id: str) -> list[Body]:
    return [
        e for e in await flow.events(request_id) if e["event_type"] not in NOT_DELIVERED
    ]


class TestDeliveryAfterADecision:
    async def test_every_event_arrives_in_sequence_order_verified_by_both_schemes(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        secret = (await admin.create_secret())["secret"]
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        await flow.approve("alice", request_id)

        events = await deliverable_events(flow, request_id)
        calls = await receiver.wait_for_delivered(len(events))

        assert [c.event_type for c in calls] == [
            "request_created",
            "stage_started",
            "stage_completed",
            "request_approved",
        ]
        assert [c.event_type for c in calls] == [e["event_type"] for e in events]
        assert [c.sequence for c in calls] == [e["sequence"] for e in events]
        assert [c.event_id for c in calls] == [e["id"] for e in events]
        for call in calls:
            assert verify_standard(call, secret) == call.json
            assert awe_signed_by(call, secret)

    async def test_headers_carry_both_schemes_for_the_same_event_and_timestamp(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        await admin.create_secret()
        await flow.start(callback_url=receiver.url)

        call = (await receiver.wait_for_delivered(1))[0]

        assert call.method == "POST"
        assert call.header("X-Approval-Event-Id") == call.event_id
        assert call.header("webhook-id") == call.event_id
        assert call.header("X-Approval-Timestamp") == call.header("webhook-timestamp")
        assert (call.header("X-Approval-Signature") or "").startswith("sha256=")
        assert (call.header("webhook-signature") or "").startswith("v1,")
        assert call.header("User-Agent") == f"Countersign/{__version__}"
        assert call.header("Content-Type") == "application/json"

    async def test_body_has_the_flat_awe_fields_and_the_standard_envelope(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        await admin.create_secret()
        request_id = (
            await flow.start(callback_url=receiver.url, artifact_id="cr-42")
        )["request_id"]
        await flow.approve("alice", request_id, comment="looks right")
        approved_event = (await flow.events_of(request_id, "request_approved"))[0]

        calls = await receiver.wait_for(
            lambda calls: any(c.event_type == "request_approved" for c in calls)
        )
        call = next(c for c in calls if c.event_type == "request_approved")
        body = call.json

        # The exact bytes signed are compact JSON.
        assert call.body == json.dumps(
            body, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        assert body["event_id"] == approved_event["id"]
        assert body["event_type"] == "request_approved"
        assert body["request_id"] == request_id
        assert body["artifact_type"] == "test.flow"
        assert body["artifact_id"] == "cr-42"
        assert body["status"] == "approved"
        assert body["stage_order"] == 1
        assert body["actor"] == approved_event["actor"]
        assert body["occurred_at"] == approved_event["created_at"]
        assert body["type"] == "approval_request.approved"
        assert body["timestamp"] == approved_event["created_at"]
        assert body["sequence"] == approved_event["sequence"]
        assert body["data"]["payload"] == approved_event["payload"]
        assert body["data"]["request"]["status"] == "approved"
        assert "outcome_reason" in body["data"]["request"]
        assert "current_stage_order" in body["data"]["request"]
