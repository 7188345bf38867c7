"""Receivers that drip, flood or keep killing their attempts: one attempt stays bounded.

A real `countersign worker` sends to loopback receivers that misbehave the way a broken or
hostile caller's endpoint does (issue 10, items 2 to 4):

- one deadline of 10 s covers connect, send and the whole answer, so a receiver that drips one
  byte every half second is cut off at 10 s;
- at most 64 KiB of an answer is read (its beginning is the attempt's error text), the rest is
  never received;
- a delivery whose attempts were all claimed but never recorded (jobs cancelled or killed) is
  exhausted when it is claimed again, and the lease outlives the job's own timeout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from countersign.kit import clock
from countersign.models import WebhookDelivery
from countersign.webhooks import delivery
from tests.fixtures.flows import Flow
from tests.fixtures.worker import (  # noqa: F401  (fixtures)
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
from tests.webhooks.receiver import Receiver, Reply

pytestmark = pytest.mark.slow

# API.md: a 2xx within the timeout (10 s) is success.
DEADLINE_MS = 10_000
# Far longer than the deadline if nothing cut it: 0.5 s per byte of a 100-byte body.
DRIP_BODY = b"x" * 100


class TestOneDeadlinePerAttempt:
    async def test_a_dripping_receiver_is_cut_off_at_10_seconds(
        self, flow: Flow, admin: WebhookAdmin, worker: WorkerProcess
    ) -> None:
        await admin.create_secret()
        # One drips from the status line on, the other sends its headers and drips the body:
        # each byte comes well within any per-read timeout, the whole never within 10 s.
        with (
            Receiver(default=Reply(200, body=DRIP_BODY, drip=0.5)) as status_drip,
            Receiver(
                default=Reply(200, body=DRIP_BODY, drip=0.5, drip_after_headers=True)
            ) as body_drip,
        ):
            ids = []
            for number, receiver in enumerate((status_drip, body_drip)):
                created = await flow.start(
                    artifact_id=f"a-{number}", callback_url=receiver.url
                )
                found = await admin.delivery(created["request_id"], "request_created")
                ids.append(found["id"])

            attempts = await asyncio.gather(
                *(
                    admin.wait_for_attempts(i, 1, workers=(worker,), within=20)
                    for i in ids
                )
            )

        for [attempt] in attempts:
            assert attempt["status_code"] is None
            assert "Timeout" in attempt["error"]
            assert "within 10 s" in attempt["error"]
            assert DEADLINE_MS - 500 <= attempt["duration_ms"] < DEADLINE_MS + 2_000
        for delivery_id in ids:
            rows = [d for d in await admin.deliveries() if d["id"] == delivery_id]
            assert rows[0]["status"] == "pending"  # retried on the schedule


class TestBoundedAnswer:
    async def test_only_the_first_64_kib_of_an_answer_is_read(
        self, flow: Flow, admin: WebhookAdmin, worker: WorkerProcess
    ) -> None:
        await admin.create_secret()
        text = b"receiver says: database is down\n"
        flood = 64 * 1024 * 1024
        with Receiver(default=Reply(500, body=text, padding=flood)) as receiver:
            created = await flow.start(callback_url=receiver.url)
            found = await admin.delivery(created["request_id"], "request_created")
            started = time.monotonic()

            [attempt] = await admin.wait_for_attempts(
                found["id"], 1, workers=(worker,), within=20
            )
            elapsed = time.monotonic() - started
            # Let the receiver notice the closed connection before counting what it wrote.
            await asyncio.sleep(0.5)
            sent = receiver.bytes_sent

        assert attempt["status_code"] == 500
        assert attempt["error"].startswith("HTTP 500: receiver says: database is down")
        assert len(attempt["error"]) < 1_000
        assert elapsed < 8
        # What the kernel's socket buffers took before the connection was closed, not 64 MiB.
        assert sent < 32 * 1024 * 1024, sent


class TestAttemptsThatNeverReturn:
    def test_the_lease_outlives_the_jobs_own_timeout(self) -> None:
        from countersign.worker.settings import WorkerSettings

        [deliver] = [f for f in WorkerSettings.functions if f.name == delivery.JOB_NAME]
        # arq's own default job timeout is 300 s.
        job_timeout = deliver.timeout_s or getattr(WorkerSettings, "job_timeout", 300)
        assert job_timeout is not None
        assert delivery.LEASE > timedelta(seconds=job_timeout)
        assert job_timeout > delivery.TIMEOUT_SECONDS

    async def test_a_delivery_whose_attempts_were_all_claimed_is_exhausted_at_the_claim(
        self,
        flow: Flow,
        admin: WebhookAdmin,
        worker: WorkerProcess,
        hooks_sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await admin.create_secret()
        with Receiver() as receiver:
            receiver.reply(Reply(500), event_type="request_created")
            request_id = (await flow.start(callback_url=receiver.url))["request_id"]
            first = await admin.delivery(request_id, "request_created")
            await admin.wait_for_attempts(first["id"], 1, workers=(worker,))

            # What jobs that were killed mid-send leave behind: every attempt of the schedule
            # counted at its claim, none recorded, the last lease run out, due again.
            at = clock.now()
            async with hooks_sessionmaker() as session:
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == uuid.UUID(first["id"]))
                    .values(
                        attempt=delivery.MAX_ATTEMPTS,
                        lease_until=at - timedelta(seconds=1),
                        next_attempt_at=at - timedelta(seconds=10),
                    )
                )
                await session.commit()

            exhausted = await admin.wait_for_status(
                first["id"], "exhausted", workers=(worker,)
            )
            # The next delivery of the request was waiting on this one and now goes.
            calls = await receiver.wait_for(
                lambda calls: any(c.event_type == "stage_started" for c in calls)
            )

        assert [c.event_type for c in calls].count("request_created") == 1
        assert "never recorded a result" in exhausted["last_error"]
        assert exhausted["attempt"] == delivery.MAX_ATTEMPTS
        assert len(await admin.attempts(first["id"])) == 1
