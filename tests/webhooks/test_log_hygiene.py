"""No token, secret or context value in a log line, through a whole flow (API.md, item 11 of the
hardening review): create with a context, decide, webhook delivery by a real worker process.

The API runs in this process (its records are captured with the filter `countersign` installs on
its handlers); the worker is the real `countersign worker`, whose own output is read. SQLAlchemy's
statement log is switched on for the API, as an operator chasing a problem would: the engines'
`hide_parameters` keeps the contexts out of it.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from countersign.config import Settings
from countersign.kit import logsafe
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
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.slow


async def test_a_whole_flow_logs_no_token_secret_or_context_value(
    flow: Flow,
    admin: WebhookAdmin,
    receiver: Receiver,
    worker: WorkerProcess,
    hooks_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    logsafe.install(caplog.handler)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    secret = (await admin.create_secret())["secret"]
    national_id = f"NID-{uuid.uuid4().hex}"
    comment = f"comment-{uuid.uuid4().hex}"
    alice = flow.token("alice")

    created = await flow.start(
        callback_url=receiver.url,
        context={"national_id": national_id, "household": {"head": national_id}},
    )
    await flow.approve("alice", created["request_id"], comment=comment)
    await receiver.wait_for_delivered(4)
    # A refused token and an idempotent replay go through the error paths too.
    await flow.client.get("/v1/requests", headers={"Authorization": "Bearer x.y.z"})

    logs = caplog.text + worker.log()
    assert "INSERT INTO" in caplog.text, "the statement log was on"
    leaks = {
        "webhook secret": secret,
        "context value": national_id,
        "decision comment": comment,
        "approver token": alice,
        "caller token": flow.caller["Authorization"].removeprefix("Bearer "),
        "admin token": flow.admin["Authorization"].removeprefix("Bearer "),
        "secret key": hooks_settings.secret_key.get_secret_value(),
    }
    found = [name for name, value in leaks.items() if value in logs]
    assert found == [], f"these reached a log line: {found}"
