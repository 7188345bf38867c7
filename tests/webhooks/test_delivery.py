"""Webhook delivery end to end: the API enqueues to real Redis, a real `countersign worker` sends.

A loopback receiver records what a caller would get. Every delivery is checked the way receivers
check it: with the `standardwebhooks` package and with AWE's `X-Approval-Signature`. Time-based
retries are driven by the shared clock (`shared_clock.advance`), never by sleeping.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from countersign import __version__
from countersign.kit import clock
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import Body, Flow, problem_code, stage
from tests.fixtures.worker import (  # noqa: F401  (fixtures)
    SharedClock,
    WebhookAdmin,
    WorkerProcess,
    api_fixture,
    clean_hooks_database_fixture,
    clock_file_fixture,
    hooks_database_url_fixture,
    hooks_engine_fixture,
    hooks_sessionmaker_fixture,
    hooks_settings_fixture,
    queued_app_fixture,
    redis_server_fixture,
    shared_clock_fixture,
    webhook_settings_fixture,
    worker_fixture,
    workers_fixture,
)
from tests.webhooks.receiver import (
    Receiver,
    Reply,
    abort,
    awe_signed_by,
    retry_after,
    standard_signed_by,
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
        request_id = (await flow.start(callback_url=receiver.url, artifact_id="cr-42"))[
            "request_id"
        ]
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


class TestRetries:
    async def test_a_failing_receiver_is_retried_on_schedule_until_it_answers(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
        shared_clock: SharedClock,
    ) -> None:
        secret = (await admin.create_secret())["secret"]
        failures = [500, 503, 502]
        receiver.reply(*(Reply(s) for s in failures), event_type="request_created")
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        delivery_id = (await admin.delivery(request_id, "request_created"))["id"]

        for attempt, status in enumerate(failures, start=1):
            attempts = await admin.wait_for_attempts(
                delivery_id, attempt, workers=(worker,)
            )
            assert attempts[-1]["status_code"] == status
            delivery = await admin.delivery(request_id, "request_created")
            assert (delivery["status"], delivery["attempt"]) == ("pending", attempt)
            waits = seconds_between(
                delivery["next_attempt_at"], delivery["last_attempt_at"]
            )
            delay = SCHEDULE[attempt - 1]
            assert delay * 0.9 <= waits <= delay * 1.1 + 1, (attempt, waits)
            shared_clock.advance(beyond(delay))

        delivered = await admin.wait_for_status(
            delivery_id, "delivered", workers=(worker,)
        )
        assert delivered["attempt"] == 4
        attempts = await admin.attempts(delivery_id)
        assert [(a["attempt"], a["status_code"], a["trigger"]) for a in attempts] == [
            (1, 500, "scheduled"),
            (2, 503, "scheduled"),
            (3, 502, "scheduled"),
            (4, 204, "scheduled"),
        ]
        assert all(a["error"] is None for a in attempts[3:])
        assert all(a["error"] for a in attempts[:3])

        calls = [c for c in receiver.calls if c.event_type == "request_created"]
        assert len(calls) == 4
        # The same message every time: same id, same bytes; each attempt signs with its own time.
        assert {c.header("webhook-id") for c in calls} == {delivered["event_id"]}
        assert {c.body for c in calls} == {calls[0].body}
        timestamps = [int(c.header("webhook-timestamp") or 0) for c in calls]
        assert timestamps == sorted(timestamps)
        assert timestamps[-1] - timestamps[0] >= sum(SCHEDULE[:3]) * 0.9
        assert all(standard_signed_by(c, secret) for c in calls)
        assert all(awe_signed_by(c, secret) for c in calls)

    async def test_exhausted_after_the_full_schedule_then_an_admin_retry_delivers(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
        shared_clock: SharedClock,
    ) -> None:
        await admin.create_secret()
        receiver.reply(*[Reply(500)] * MAX_ATTEMPTS, event_type="request_created")
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        delivery_id = (await admin.delivery(request_id, "request_created"))["id"]

        for attempt, delay in enumerate(SCHEDULE, start=1):
            await admin.wait_for_attempts(delivery_id, attempt, workers=(worker,))
            shared_clock.advance(beyond(delay))

        exhausted = await admin.wait_for_status(
            delivery_id, "exhausted", workers=(worker,)
        )
        assert exhausted["attempt"] == MAX_ATTEMPTS
        assert exhausted["next_attempt_at"] is None
        assert exhausted["last_status_code"] == 500
        assert len(await admin.attempts(delivery_id)) == MAX_ATTEMPTS
        # The next delivery of the request was waiting behind it; it goes now.
        started_id = (await admin.delivery(request_id, "stage_started"))["id"]
        await admin.wait_for_status(started_id, "delivered", workers=(worker,))

        retried = await admin.client.post(
            f"/v1/admin/deliveries/{delivery_id}/retry", headers=admin.headers
        )

        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "pending"
        assert retried.json()["attempt"] == 0
        await admin.wait_for_status(delivery_id, "delivered", workers=(worker,))
        attempts = await admin.attempts(delivery_id)
        assert len(attempts) == MAX_ATTEMPTS + 1
        assert {a["trigger"] for a in attempts[:MAX_ATTEMPTS]} == {"scheduled"}
        assert (
            attempts[-1]["attempt"],
            attempts[-1]["status_code"],
            attempts[-1]["trigger"],
        ) == (1, 204, "manual")
        again = await admin.client.post(
            f"/v1/admin/deliveries/{delivery_id}/retry", headers=admin.headers
        )
        assert again.status_code == 409
        assert problem_code(again) == "invalid_state"

    async def test_410_gone_gives_up_at_once(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        await admin.create_secret()
        receiver.reply(Reply(410), event_type="request_created")
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        delivery_id = (await admin.delivery(request_id, "request_created"))["id"]

        gone = await admin.wait_for_status(delivery_id, "exhausted", workers=(worker,))

        assert (gone["attempt"], gone["last_status_code"]) == (1, 410)
        # Giving up on one delivery lets the next one of the request go.
        started_id = (await admin.delivery(request_id, "stage_started"))["id"]
        await admin.wait_for_status(started_id, "delivered", workers=(worker,))
        assert [c.event_type for c in receiver.calls] == [
            "request_created",
            "stage_started",
        ]

    @pytest.mark.parametrize("status", [400, 503])
    async def test_abort_message_header_stops_retries(
        self,
        status: int,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        await admin.create_secret()
        receiver.reply(abort(status), event_type="request_created")
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        delivery_id = (await admin.delivery(request_id, "request_created"))["id"]

        aborted = await admin.wait_for_status(
            delivery_id, "exhausted", workers=(worker,)
        )

        assert (aborted["attempt"], aborted["last_status_code"]) == (1, status)
        assert aborted["next_attempt_at"] is None

    @pytest.mark.parametrize("seconds", [600, 5])
    async def test_retry_after_seconds_replace_the_schedule(
        self,
        seconds: int,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
        shared_clock: SharedClock,
    ) -> None:
        await admin.create_secret()
        receiver.reply(retry_after(seconds), event_type="request_created")
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        delivery_id = (await admin.delivery(request_id, "request_created"))["id"]
        await admin.wait_for_attempts(delivery_id, 1, workers=(worker,))

        delivery = await admin.delivery(request_id, "request_created")
        waits = seconds_between(
            delivery["next_attempt_at"], delivery["last_attempt_at"]
        )
        assert waits == pytest.approx(seconds, abs=1)

        shared_clock.advance(seconds + 1)
        await admin.wait_for_status(delivery_id, "delivered", workers=(worker,))
        assert len(await admin.attempts(delivery_id)) == 2

    async def test_retry_after_http_date_is_the_time_of_the_next_attempt(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        await admin.create_secret()
        when = clock.now().replace(microsecond=0) + timedelta(minutes=2)
        receiver.reply(
            Reply(503, {"Retry-After": format_datetime(when, usegmt=True)}),
            event_type="request_created",
        )
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        delivery_id = (await admin.delivery(request_id, "request_created"))["id"]
        await admin.wait_for_attempts(delivery_id, 1, workers=(worker,))

        delivery = await admin.delivery(request_id, "request_created")

        next_attempt = datetime.fromisoformat(delivery["next_attempt_at"])
        assert abs((next_attempt - when).total_seconds()) < 1

    async def test_a_redirect_is_a_failure_and_is_not_followed(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        await admin.create_secret()
        receiver.reply(Reply(302), event_type="request_created")
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        delivery_id = (await admin.delivery(request_id, "request_created"))["id"]

        attempt = (await admin.wait_for_attempts(delivery_id, 1, workers=(worker,)))[0]

        assert attempt["status_code"] == 302
        assert "redirect" in attempt["error"]
        delivery = await admin.delivery(request_id, "request_created")
        assert delivery["status"] == "pending"
        assert seconds_between(
            delivery["next_attempt_at"], delivery["last_attempt_at"]
        ) == pytest.approx(SCHEDULE[0], rel=0.11)
        assert [c.path for c in receiver.calls] == ["/hooks/countersign"]

    async def test_no_answer_within_10_seconds_is_a_failure(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        await admin.create_secret()
        # Even a 2xx is a failure when it comes after the timeout.
        receiver.reply(Reply(204, delay=12), event_type="request_created")
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        delivery_id = (await admin.delivery(request_id, "request_created"))["id"]

        attempt = (await admin.wait_for_attempts(delivery_id, 1, workers=(worker,)))[0]

        assert attempt["status_code"] is None
        assert "Timeout" in attempt["error"]
        assert 9_500 <= attempt["duration_ms"] < 12_000
        delivery = await admin.delivery(request_id, "request_created")
        assert delivery["status"] == "pending"


class TestOrderPerRequest:
    async def test_a_later_delivery_waits_while_an_earlier_one_is_retried(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
        shared_clock: SharedClock,
    ) -> None:
        await admin.create_secret()
        receiver.reply(Reply(500), Reply(500), event_type="request_created")
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        created_id = (await admin.delivery(request_id, "request_created"))["id"]
        started_id = (await admin.delivery(request_id, "stage_started"))["id"]

        await admin.wait_for_attempts(created_id, 1, workers=(worker,))
        shared_clock.advance(beyond(SCHEDULE[0]))
        # The sweep that sent the second attempt also saw stage_started due, and held it back.
        await admin.wait_for_attempts(created_id, 2, workers=(worker,))
        assert await admin.attempts(started_id) == []
        assert {c.event_type for c in receiver.calls} == {"request_created"}

        shared_clock.advance(beyond(SCHEDULE[1]))
        await admin.wait_for_status(started_id, "delivered", workers=(worker,))

        assert [(c.event_type, c.answered) for c in receiver.calls] == [
            ("request_created", 500),
            ("request_created", 500),
            ("request_created", 204),
            ("stage_started", 204),
        ]

    async def test_deliveries_of_a_full_flow_arrive_in_sequence_order(
        self,
        api: httpx.AsyncClient,
        admin_headers: dict[str, str],
        token: TokenFactory,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        flow = Flow(api, admin_headers, token)
        await flow.publish(
            [stage(1, ["alice", "bob"], mode="all"), stage(2, ["carol"])],
            key="two.stages",
        )
        await admin.create_secret()
        request_ids = [
            (
                await flow.start(
                    key="two.stages", artifact_id=f"a-{n}", callback_url=receiver.url
                )
            )["request_id"]
            for n in range(3)
        ]
        for request_id in request_ids:
            await flow.approve("alice", request_id)
            await flow.approve("bob", request_id)
            await flow.reject("carol", request_id)

        expected = {
            r: [e["sequence"] for e in await deliverable_events(flow, r)]
            for r in request_ids
        }
        await receiver.wait_for_delivered(sum(len(s) for s in expected.values()))

        for request_id, sequences in expected.items():
            arrived = [c.sequence for c in receiver.calls if c.request_id == request_id]
            assert arrived == sequences
        assert receiver.calls[-1].json["status"] == "rejected"
