"""Callers' signing secrets: shown once, encrypted at rest, rotated with a grace period, revoked.

What a secret does is checked where it matters, on the deliveries a receiver gets from a real
worker: which secrets sign, and that nothing goes out unsigned.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from countersign.config import Settings
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import CALLER_CLIENT, Body, Flow, problem_code
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
)
from tests.webhooks.receiver import (
    Call,
    Receiver,
    awe_signed_by,
    standard_signed_by,
    verify_standard,
)

pytestmark = pytest.mark.slow


async def rotate(admin: WebhookAdmin, secret_id: str, grace_hours: float) -> Body:
    response = await admin.client.post(
        f"/v1/admin/secrets/{secret_id}/rotate",
        json={"grace_hours": grace_hours},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    rotated: Body = response.json()
    return rotated


async def revoke(admin: WebhookAdmin, secret_id: str) -> httpx.Response:
    return await admin.client.post(
        f"/v1/admin/secrets/{secret_id}/revoke", headers=admin.headers
    )


async def listed(admin: WebhookAdmin, caller: str = CALLER_CLIENT) -> httpx.Response:
    return await admin.client.get(
        f"/v1/admin/callers/{caller}/secrets", headers=admin.headers
    )


def signatures(call: Call) -> list[str]:
    return (call.header("webhook-signature") or "").split(" ")


class TestCreateAndList:
    async def test_a_generated_secret_is_whsec_and_32_random_bytes_shown_once(
        self, admin: WebhookAdmin
    ) -> None:
        created = await admin.create_secret()

        assert set(created) >= {"id", "caller", "secret", "status", "created_at"}
        assert created["caller"] == CALLER_CLIENT
        assert created["status"] == "active"
        assert created["secret"].startswith("whsec_")
        assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 32
        assert (await admin.create_secret())["secret"] != created["secret"]

    async def test_listing_never_shows_a_value(self, admin: WebhookAdmin) -> None:
        first = await admin.create_secret()
        second = await admin.create_secret(secret="imported-from-awe-0123456789")

        response = await listed(admin)

        assert response.status_code == 200, response.text
        rows = response.json()
        assert [r["id"] for r in rows] == [second["id"], first["id"]]  # newest first
        for row in rows:
            assert "secret" not in row
            assert set(row) >= {
                "id",
                "caller",
                "status",
                "created_at",
                "rotated_at",
                "expires_at",
            }
        assert first["secret"] not in response.text
        assert second["secret"] not in response.text

    async def test_secrets_belong_to_one_caller(self, admin: WebhookAdmin) -> None:
        await admin.create_secret(caller="payments")

        assert (await listed(admin)).json() == []
        assert len((await listed(admin, "payments")).json()) == 1

    async def test_only_admins_manage_secrets(
        self, admin: WebhookAdmin, viewer_headers: dict[str, str], token: TokenFactory
    ) -> None:
        caller = bearer(token("registry-svc", azp=CALLER_CLIENT))
        for headers in (viewer_headers, caller):
            created = await admin.client.post(
                f"/v1/admin/callers/{CALLER_CLIENT}/secrets", json={}, headers=headers
            )
            listing = await admin.client.get(
                f"/v1/admin/callers/{CALLER_CLIENT}/secrets", headers=headers
            )
            assert created.status_code == listing.status_code == 403

    async def test_an_imported_whsec_secret_must_be_base64(
        self, admin: WebhookAdmin
    ) -> None:
        response = await admin.client.post(
            f"/v1/admin/callers/{CALLER_CLIENT}/secrets",
            json={"secret": "whsec_this is not base64 at all!"},
            headers=admin.headers,
        )

        assert response.status_code == 422, response.text
        assert problem_code(response) == "validation_failed"


class TestAtRest:
    async def test_values_are_stored_fernet_encrypted_with_the_secret_key(
        self,
        admin: WebhookAdmin,
        hooks_settings: Settings,
        hooks_sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        created = await admin.create_secret()

        async with hooks_sessionmaker() as session:
            stored = (
                await session.execute(
                    text("SELECT secret_encrypted FROM caller_secrets WHERE id = :id"),
                    {"id": uuid.UUID(created["id"])},
                )
            ).scalar_one()

        assert created["secret"] not in stored
        assert created["secret"].removeprefix("whsec_") not in stored
        key = hooks_settings.secret_key.get_secret_value()
        assert (
            Fernet(key.encode()).decrypt(stored.encode()).decode()
            == (created["secret"])
        )
        with pytest.raises(InvalidToken):
            Fernet(Fernet.generate_key()).decrypt(stored.encode())

    async def test_every_secret_operation_is_audited_without_the_value(
        self, admin: WebhookAdmin
    ) -> None:
        first = await admin.create_secret()
        second = await rotate(admin, first["id"], grace_hours=1)
        assert (await revoke(admin, second["id"])).status_code == 200

        response = await admin.client.get(
            "/v1/admin/audit",
            params={"resource_type": "caller_secret"},
            headers=admin.headers,
        )

        assert response.status_code == 200, response.text
        actions = sorted((e["action"], e["resource_id"]) for e in response.json())
        assert actions == sorted(
            [
                ("secret.create", first["id"]),
                ("secret.create", second["id"]),
                ("secret.rotate", first["id"]),
                ("secret.revoke", second["id"]),
            ]
        )
        assert first["secret"] not in response.text
        assert second["secret"] not in response.text
        assert {e["actor"] for e in response.json()} == {"admin-ann"}


class TestRequestsNamingASecret:
    async def test_unknown_revoked_or_foreign_secret_ids_are_refused(
        self, flow: Flow, admin: WebhookAdmin, receiver: Receiver
    ) -> None:
        revoked = await admin.create_secret()
        await revoke(admin, revoked["id"])
        foreign = await admin.create_secret(caller="payments")

        for n, secret_id in enumerate(
            [str(uuid.uuid4()), revoked["id"], foreign["id"]]
        ):
            response = await flow.create(
                artifact_id=f"a-{n}",
                callback_url=receiver.url,
                callback_secret_id=secret_id,
            )
            assert response.status_code == 422, response.text
            assert problem_code(response) == "callback_secret_invalid"
            assert response.json()["errors"][0]["pointer"] == "/callback_secret_id"

    async def test_an_active_or_rotating_secret_of_the_caller_is_accepted(
        self, flow: Flow, admin: WebhookAdmin, receiver: Receiver
    ) -> None:
        old = await admin.create_secret()
        new = await rotate(admin, old["id"], grace_hours=1)

        for n, secret_id in enumerate([new["id"], old["id"]]):
            response = await flow.create(
                artifact_id=f"a-{n}",
                callback_url=receiver.url,
                callback_secret_id=secret_id,
            )
            assert response.status_code == 201, response.text


class TestWhoSigns:
    async def test_the_named_secret_signs_and_no_other(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        named = await admin.create_secret()
        newer = await admin.create_secret()  # the caller's default from now on

        await flow.start(callback_url=receiver.url, callback_secret_id=named["id"])
        calls = await receiver.wait_for_delivered(2)

        for call in calls:
            assert len(signatures(call)) == 1
            verify_standard(call, named["secret"])
            assert awe_signed_by(call, named["secret"])
            assert not standard_signed_by(call, newer["secret"])

    async def test_without_a_named_secret_the_newest_active_one_signs(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        older = await admin.create_secret()
        newest = await admin.create_secret()

        await flow.start(callback_url=receiver.url)
        calls = await receiver.wait_for_delivered(2)

        for call in calls:
            verify_standard(call, newest["secret"])
            assert awe_signed_by(call, newest["secret"])
            assert not standard_signed_by(call, older["secret"])

    async def test_an_imported_plain_secret_signs_with_its_utf8_bytes(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        imported = "awe-shared-secret-from-before"
        await admin.create_secret(secret=imported)

        await flow.start(callback_url=receiver.url)
        call = (await receiver.wait_for_delivered(1))[0]

        # A string given to `Webhook` is read as base64; a non-whsec secret's key is its bytes.
        Webhook(imported.encode("utf-8")).verify(call.body, call.headers)
        assert awe_signed_by(call, imported)


class TestRotation:
    async def test_during_the_grace_period_both_sign_then_only_the_new_one(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
        shared_clock: SharedClock,
    ) -> None:
        old = await admin.create_secret()
        new = await rotate(admin, old["id"], grace_hours=2)
        rows = {r["id"]: r for r in (await listed(admin)).json()}
        assert rows[old["id"]]["status"] == "rotated"
        assert rows[new["id"]]["status"] == "active"
        grace = datetime.fromisoformat(
            rows[old["id"]]["expires_at"]
        ) - datetime.fromisoformat(rows[old["id"]]["rotated_at"])
        assert grace.total_seconds() == pytest.approx(2 * 3600)

        await flow.start(artifact_id="during", callback_url=receiver.url)
        during = await receiver.wait_for_delivered(2)

        for call in during:
            first, second = signatures(call)
            assert first.startswith("v1,")
            assert second.startswith("v1,")
            # Receivers may switch at their own pace: either secret verifies.
            verify_standard(call, new["secret"])
            verify_standard(call, old["secret"])
            assert standard_signed_by(call, new["secret"])
            assert Webhook(new["secret"]).sign(
                call.event_id,
                datetime.fromtimestamp(int(call.header("webhook-timestamp") or 0)),
                call.body.decode(),
            ) in (first, second)
            # The AWE header carries one signature: the newest secret's.
            assert awe_signed_by(call, new["secret"])
            assert not awe_signed_by(call, old["secret"])

        shared_clock.advance(2 * 3600 + 60)
        await flow.start(artifact_id="after", callback_url=receiver.url)
        after = (await receiver.wait_for_delivered(4))[2:]

        for call in after:
            assert len(signatures(call)) == 1
            assert standard_signed_by(call, new["secret"])
            assert not standard_signed_by(call, old["secret"])
            assert awe_signed_by(call, new["secret"])

    async def test_a_request_naming_the_rotated_secret_follows_its_replacement(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
    ) -> None:
        old = await admin.create_secret()
        request_id = (
            await flow.start(callback_url=receiver.url, callback_secret_id=old["id"])
        )["request_id"]
        await receiver.wait_for_delivered(2)
        new = await rotate(admin, old["id"], grace_hours=0)

        await flow.approve("alice", request_id)
        calls = (await receiver.wait_for_delivered(4))[2:]

        for call in calls:
            verify_standard(call, new["secret"])
            assert not standard_signed_by(call, old["secret"])
            assert awe_signed_by(call, new["secret"])

    async def test_only_an_active_secret_can_be_rotated(
        self, admin: WebhookAdmin
    ) -> None:
        old = await admin.create_secret()
        await rotate(admin, old["id"], grace_hours=1)

        again = await admin.client.post(
            f"/v1/admin/secrets/{old['id']}/rotate", json={}, headers=admin.headers
        )
        unknown = await admin.client.post(
            f"/v1/admin/secrets/{uuid.uuid4()}/rotate", json={}, headers=admin.headers
        )

        assert again.status_code == 409
        assert problem_code(again) == "invalid_state"
        assert unknown.status_code == 404
        assert problem_code(unknown) == "task_not_found"


class TestRevocation:
    async def test_a_revoked_secret_never_signs_and_nothing_goes_out_unsigned(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
        shared_clock: SharedClock,
    ) -> None:
        revoked = await admin.create_secret()
        request_id = (
            await flow.start(
                callback_url=receiver.url, callback_secret_id=revoked["id"]
            )
        )["request_id"]
        await receiver.wait_for_delivered(2)
        response = await revoke(admin, revoked["id"])
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "revoked"

        await flow.approve("alice", request_id)
        held = await admin.delivery(request_id, "stage_completed")
        attempt = (await admin.wait_for_attempts(held["id"], 1, workers=(worker,)))[0]

        assert attempt["status_code"] is None
        assert "no active signing secret" in attempt["error"]
        assert (
            len(receiver.calls) == 2
        )  # nothing unsigned, nothing signed by the revoked one

        # Once the caller has an active secret again, the retry goes out signed by it alone.
        replacement = await admin.create_secret()
        shared_clock.advance(66)
        calls = (await receiver.wait_for_delivered(4))[2:]
        for call in calls:
            verify_standard(call, replacement["secret"])
            with pytest.raises(WebhookVerificationError):
                verify_standard(call, revoked["secret"])
            assert awe_signed_by(call, replacement["secret"])

    async def test_revoking_twice_is_harmless_and_unknown_ids_are_404(
        self, admin: WebhookAdmin
    ) -> None:
        secret = await admin.create_secret()

        assert (await revoke(admin, secret["id"])).status_code == 200
        assert (await revoke(admin, secret["id"])).status_code == 200
        unknown = await revoke(admin, str(uuid.uuid4()))
        assert unknown.status_code == 404
        assert problem_code(unknown) == "task_not_found"


class TestDecisionSubscription:
    async def test_decision_recorded_is_delivered_only_to_subscribed_callers(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        receiver: Receiver,
        worker: WorkerProcess,
        token: TokenFactory,
    ) -> None:
        await admin.create_secret(subscribe_decisions=True)
        await admin.create_secret(caller="payments")
        subscribed = (await flow.start(artifact_id="sub", callback_url=receiver.url))[
            "request_id"
        ]
        other = (
            await flow.start(
                artifact_id="other",
                callback_url=receiver.url,
                headers=bearer(token("payments-svc", azp="payments")),
            )
        )["request_id"]
        for request_id in (subscribed, other):
            await flow.approve("alice", request_id, comment="fine")

        decisions = await admin.deliveries(event_type="decision_recorded")
        assert [d["request_id"] for d in decisions] == [subscribed]
        await receiver.wait_for_delivered(9)  # 5 for the subscriber, 4 for the other
        delivered = [
            c for c in receiver.delivered() if c.event_type == "decision_recorded"
        ]
        assert [c.request_id for c in delivered] == [subscribed]
        payload = delivered[0].json["data"]["payload"]
        assert delivered[0].json["actor"] == "alice"
        assert "fine" in str(payload)
