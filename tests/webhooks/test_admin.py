"""Delivery admin: list and filter the outbox, read attempts, retry one, recover a window.

No worker runs in these tests unless one says so: the outbox rows stay as the API wrote them, so
what the endpoints show is not racing a delivery.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from countersign.kit import clock
from countersign.models import WebhookDelivery
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import Body, Flow, problem_code
from tests.fixtures.worker import (  # noqa: F401  (fixtures)
    WebhookAdmin,
    Workers,
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
    workers_fixture,
)
from tests.webhooks.receiver import Receiver

DELIVERY_FIELDS = {
    "id",
    "event_id",
    "request_id",
    "event_type",
    "url",
    "status",
    "attempt",
    "next_attempt_at",
    "last_attempt_at",
    "last_status_code",
    "last_error",
    "created_at",
    "updated_at",
}


async def exhaust(
    hooks_sessionmaker: async_sessionmaker[AsyncSession], *delivery_ids: str
) -> None:
    """Mark deliveries as given up, as nine failed attempts would have."""
    async with hooks_sessionmaker() as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([uuid.UUID(i) for i in delivery_ids]))
            .values(status="exhausted", attempt=9, next_attempt_at=None)
        )
        await session.commit()


async def post(
    admin: WebhookAdmin,
    path: str,
    body: Body | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await admin.client.post(path, json=body, headers=headers or admin.headers)


class TestListing:
    async def test_every_outbox_row_is_listed_with_its_delivery_state(
        self, flow: Flow, admin: WebhookAdmin, receiver: Receiver
    ) -> None:
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]

        rows = await admin.deliveries()

        assert {r["event_type"] for r in rows} == {"request_created", "stage_started"}
        for row in rows:
            assert set(row) >= DELIVERY_FIELDS
            assert row["request_id"] == request_id
            assert row["url"] == receiver.url
            assert (row["status"], row["attempt"]) == ("pending", 0)
            assert row["last_attempt_at"] is None

    async def test_filters_by_status_request_and_event_type(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        hooks_sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        first = (await flow.start(artifact_id="a", callback_url=receiver.url))[
            "request_id"
        ]
        second = (await flow.start(artifact_id="b", callback_url=receiver.url))[
            "request_id"
        ]
        gone = await admin.delivery(first, "request_created")
        await exhaust(hooks_sessionmaker, gone["id"])

        by_status = await admin.deliveries(status="exhausted")
        by_request = await admin.deliveries(request_id=second)
        by_type = await admin.deliveries(event_type="stage_started")

        assert [r["id"] for r in by_status] == [gone["id"]]
        assert {r["request_id"] for r in by_request} == {second}
        assert len(by_request) == 2
        assert {r["event_type"] for r in by_type} == {"stage_started"}
        assert {r["request_id"] for r in by_type} == {first, second}

    async def test_pages_follow_the_next_cursor(
        self, flow: Flow, admin: WebhookAdmin, receiver: Receiver
    ) -> None:
        for n in range(3):
            await flow.start(artifact_id=f"a-{n}", callback_url=receiver.url)

        seen: list[str] = []
        params: dict[str, str | int] = {"limit": 4}
        while True:
            page = await admin.client.get(
                "/v1/admin/deliveries", params=params, headers=admin.headers
            )
            assert page.status_code == 200, page.text
            seen += [r["id"] for r in page.json()]
            cursor = page.headers.get("X-Next-Cursor")
            if cursor is None:
                assert "Link" not in page.headers
                break
            assert 'rel="next"' in page.headers["Link"]
            params = {"limit": 4, "cursor": cursor}

        assert len(seen) == len(set(seen)) == 6

    async def test_viewers_read_and_other_principals_do_not(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        viewer_headers: dict[str, str],
        token: TokenFactory,
    ) -> None:
        await flow.start(callback_url=receiver.url)
        delivery_id = (await admin.deliveries())[0]["id"]
        caller = bearer(token("registry-svc", azp="registry"))

        for path in (
            "/v1/admin/deliveries",
            f"/v1/admin/deliveries/{delivery_id}/attempts",
        ):
            viewer = await admin.client.get(path, headers=viewer_headers)
            other = await admin.client.get(path, headers=caller)
            assert viewer.status_code == 200, viewer.text
            assert other.status_code == 403
            assert problem_code(other) == "forbidden"

    async def test_attempts_of_an_unknown_delivery_are_404(
        self, admin: WebhookAdmin
    ) -> None:
        response = await admin.client.get(
            f"/v1/admin/deliveries/{uuid.uuid4()}/attempts", headers=admin.headers
        )

        assert response.status_code == 404
        assert problem_code(response) == "task_not_found"


class TestRetry:
    async def test_retry_resets_the_attempt_count_and_is_audited(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        hooks_sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        delivery = await admin.delivery(request_id, "request_created")
        await exhaust(hooks_sessionmaker, delivery["id"])

        response = await post(admin, f"/v1/admin/deliveries/{delivery['id']}/retry")

        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) >= DELIVERY_FIELDS
        assert (body["status"], body["attempt"]) == ("pending", 0)
        assert body["next_attempt_at"] is not None
        audit = await admin.client.get(
            "/v1/admin/audit",
            params={"action": "delivery.retry", "resource_id": delivery["id"]},
            headers=admin.headers,
        )
        assert [(e["before"], e["after"]) for e in audit.json()] == [
            ({"status": "exhausted"}, {"status": "pending"})
        ]

    async def test_retry_needs_an_admin_and_a_known_undelivered_delivery(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        viewer_headers: dict[str, str],
        hooks_sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        delivery = await admin.delivery(request_id, "request_created")
        async with hooks_sessionmaker() as session:
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == uuid.UUID(delivery["id"]))
                .values(status="delivered")
            )
            await session.commit()

        delivered = await post(admin, f"/v1/admin/deliveries/{delivery['id']}/retry")
        unknown = await post(admin, f"/v1/admin/deliveries/{uuid.uuid4()}/retry")
        viewer = await post(
            admin,
            f"/v1/admin/deliveries/{delivery['id']}/retry",
            headers=viewer_headers,
        )

        assert delivered.status_code == 409
        assert problem_code(delivered) == "invalid_state"
        assert unknown.status_code == 404
        assert problem_code(unknown) == "task_not_found"
        assert viewer.status_code == 403


class TestRecover:
    async def test_requeues_the_exhausted_deliveries_created_in_the_window(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        workers: Workers,
        hooks_sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await admin.create_secret()
        request_id = (await flow.start(callback_url=receiver.url))["request_id"]
        rows = await admin.deliveries(request_id=request_id)
        await exhaust(hooks_sessionmaker, *(r["id"] for r in rows))
        now = clock.now()

        outside = await post(
            admin,
            "/v1/admin/deliveries/recover",
            {
                "since": (now - timedelta(days=2)).isoformat(),
                "until": (now - timedelta(days=1)).isoformat(),
            },
        )
        inside = await post(
            admin,
            "/v1/admin/deliveries/recover",
            {
                "since": (now - timedelta(hours=1)).isoformat(),
                "until": (now + timedelta(hours=1)).isoformat(),
            },
        )

        assert outside.status_code == 200, outside.text
        assert outside.json() == {"requeued": 0}
        assert inside.json() == {"requeued": 2}
        assert {r["status"] for r in await admin.deliveries()} == {"pending"}

        worker = workers.start()
        for row in sorted(rows, key=lambda r: r["sequence"]):
            await admin.wait_for_status(row["id"], "delivered", workers=(worker,))
            attempts = await admin.attempts(row["id"])
            assert [(a["attempt"], a["trigger"]) for a in attempts] == [(1, "manual")]
        assert [c.event_type for c in receiver.delivered()] == [
            "request_created",
            "stage_started",
        ]

    async def test_the_window_must_be_ordered(self, admin: WebhookAdmin) -> None:
        now = clock.now()

        response = await post(
            admin,
            "/v1/admin/deliveries/recover",
            {"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()},
        )

        assert response.status_code == 422
        assert problem_code(response) == "validation_failed"


class TestRecoverMatching:
    """`recover` takes the list filters too: the admin UI's "Retry all matching"."""

    async def test_only_the_exhausted_deliveries_matching_every_filter_are_requeued(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        hooks_sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        with Receiver() as other:
            first = (await flow.start(artifact_id="a", callback_url=receiver.url))[
                "request_id"
            ]
            second = (await flow.start(artifact_id="b", callback_url=receiver.url))[
                "request_id"
            ]
            third = (await flow.start(artifact_id="c", callback_url=other.url))[
                "request_id"
            ]
            rows = await admin.deliveries()
            await exhaust(hooks_sessionmaker, *(r["id"] for r in rows))
            now = clock.now()
            window = {
                "since": (now - timedelta(hours=1)).isoformat(),
                "until": (now + timedelta(hours=1)).isoformat(),
            }

            def pending() -> set[tuple[str, str]]:
                return {
                    (r["request_id"], r["event_type"])
                    for r in rows_now
                    if r["status"] == "pending"
                }

            by_request = await post(
                admin,
                "/v1/admin/deliveries/recover",
                {**window, "request_id": first},
            )
            rows_now = await admin.deliveries()
            after_request = pending()
            by_type_and_url = await post(
                admin,
                "/v1/admin/deliveries/recover",
                {**window, "event_type": "stage_started", "url": receiver.url},
            )
            rows_now = await admin.deliveries()
            after_type = pending()
            by_url = await post(
                admin, "/v1/admin/deliveries/recover", {**window, "url": other.url}
            )
            rows_now = await admin.deliveries()

            assert by_request.json() == {"requeued": 2}
            assert after_request == {
                (first, "request_created"),
                (first, "stage_started"),
            }
            # first's stage_started is pending already: not exhausted, not counted again.
            assert by_type_and_url.json() == {"requeued": 1}
            assert after_type == after_request | {(second, "stage_started")}
            assert by_url.json() == {"requeued": 2}
            assert pending() == after_type | {
                (third, "request_created"),
                (third, "stage_started"),
            }

    async def test_the_list_filters_by_url(
        self, flow: Flow, admin: WebhookAdmin, receiver: Receiver
    ) -> None:
        with Receiver() as other:
            await flow.start(artifact_id="a", callback_url=receiver.url)
            theirs = (await flow.start(artifact_id="b", callback_url=other.url))[
                "request_id"
            ]

            rows = await admin.deliveries(url=other.url)

        assert {r["request_id"] for r in rows} == {theirs}
        assert len(rows) == 2

    async def test_a_malformed_filter_is_422(self, admin: WebhookAdmin) -> None:
        now = clock.now()

        response = await post(
            admin,
            "/v1/admin/deliveries/recover",
            {
                "since": now.isoformat(),
                "until": (now + timedelta(hours=1)).isoformat(),
                "request_id": "not-a-uuid",
            },
        )

        assert response.status_code == 422
        assert problem_code(response) == "validation_failed"


class TestStuckRequests:
    async def test_a_request_with_an_exhausted_delivery_is_stuck(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        hooks_sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        fine = (await flow.start(artifact_id="a", callback_url=receiver.url))[
            "request_id"
        ]
        failing = (await flow.start(artifact_id="b", callback_url=receiver.url))[
            "request_id"
        ]
        gone = await admin.delivery(failing, "stage_started")
        await exhaust(hooks_sessionmaker, gone["id"])

        async def listed(**params: str) -> list[str]:
            response = await admin.client.get(
                "/v1/requests", params=params, headers=admin.headers
            )
            assert response.status_code == 200, response.text
            return [r["id"] for r in response.json()]

        assert await listed(stuck="true") == [failing]
        assert await listed(stuck="false") == [fine]
        rows = await admin.client.get("/v1/requests", headers=admin.headers)
        assert {r["id"]: r["exhausted_deliveries"] for r in rows.json()} == {
            failing: 1,
            fine: 0,
        }
        assert await listed() == [failing, fine]
        assert await listed(stuck="true", artifact_id="a") == []

        await post(admin, f"/v1/admin/deliveries/{gone['id']}/retry")

        assert await listed(stuck="true") == []

    async def test_stuck_must_be_a_boolean(self, admin: WebhookAdmin) -> None:
        response = await admin.client.get(
            "/v1/requests", params={"stuck": "maybe"}, headers=admin.headers
        )

        assert response.status_code == 422
        assert problem_code(response) == "validation_failed"
