"""The service as deployed, for the observability tests: an API process (uvicorn) and an arq
worker on the webhook tests' PostgreSQL database and Redis, a loopback webhook receiver, and a
full flow through them (`run_full_flow`) that exercises every domain metric.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from countersign.config import Settings
from tests.directory.test_http_rule import Answer, ResolverServer
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import Flow, stage
from tests.fixtures.server import LiveServer, free_port, spawn
from tests.fixtures.worker import (
    SharedClock,
    WebhookAdmin,
    WorkerProcess,
    Workers,
    eventually,
    worker_env,
)
from tests.webhooks.receiver import Receiver, Reply

SLA_HOURS = 1


def api_env(settings: Settings, clock: SharedClock, **extra: str) -> dict[str, str]:
    """A deployment's API environment: Redis, no in-process worker, the shared clock."""
    env = worker_env(settings, clock.path)
    env.update({"COUNTERSIGN_WORKER_IN_PROCESS": "false", **extra})
    return env


def start_api(env: Mapping[str, str], log_path: Path) -> LiveServer:
    port = free_port()
    return spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "countersign.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env=dict(env),
        log_path=log_path,
        port=port,
    )


@contextmanager
def running_api(env: Mapping[str, str], log_path: Path) -> Iterator[LiveServer]:
    server = start_api(env, log_path)
    try:
        yield server
    finally:
        server.stop()


def samples(text: str) -> set[str]:
    """The metric names that have at least one sample in an exposition."""
    return {
        match.group(1)
        for match in re.finditer(r"^([a-zA-Z_:][\w:]*)(?:\{| )", text, re.MULTILINE)
    }


@dataclass
class FlowResult:
    """What the full flow produced, for the tests to look for (and not find in logs)."""

    request_ids: list[str] = field(default_factory=list)
    secret: str = ""
    context_value: str = ""
    comment: str = ""
    tokens: list[str] = field(default_factory=list)
    receiver_calls: list[object] = field(default_factory=list)


async def run_full_flow(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    token: TokenFactory,
    clock: SharedClock,
    workers: tuple[WorkerProcess, ...],
    *,
    receiver: Receiver,
    scrape: Callable[[], Awaitable[str]],
) -> FlowResult:
    """Every kind of thing the metrics count, through the API and the worker:

    a two-stage request with a callback and a caller secret, created with an Idempotency-Key
    and replayed, approved by two people (webhooks delivered, with lag); a request whose
    receiver answers 410 (a delivery exhausted); a request whose http-rule resolver fails (a
    resolution failure, a stage in `resolving`); a stage whose SLA is breached (the clock moved
    past it; the worker handles it). Admin calls list deliveries and attempts. The clock moves
    last, so tokens minted before it stay valid for every call.
    """
    result = FlowResult()
    flow = Flow(client, admin_headers, token)
    admin = WebhookAdmin(client, admin_headers)
    result.secret = (await admin.create_secret())["secret"]
    key = f"ops.{uuid.uuid4().hex[:6]}"
    await flow.publish(
        [stage(1, ["alice"], sla_hours=SLA_HOURS), stage(2, ["bob"])], key=key
    )
    result.context_value = f"NID-{uuid.uuid4().hex}"
    result.comment = f"comment-{uuid.uuid4().hex}"
    context = {"national_id": result.context_value}
    headers = {**flow.caller, "Idempotency-Key": uuid.uuid4().hex}
    body = {
        "policy_key": key,
        "artifact_type": key,
        "artifact_id": "a-1",
        "context": context,
        "callback_url": receiver.url,
    }
    for _ in range(2):  # the second is a replay
        created = await client.post("/v1/requests", json=body, headers=headers)
        assert created.status_code == 201, created.text
    approved_id = created.json()["request_id"]
    result.request_ids.append(approved_id)
    alice, bob = flow.token("alice"), flow.token("bob")
    result.tokens += [
        alice,
        bob,
        flow.caller["Authorization"].removeprefix("Bearer "),
        admin_headers["Authorization"].removeprefix("Bearer "),
    ]
    await flow.approve("alice", approved_id, comment=result.comment)
    await flow.approve("bob", approved_id)

    with Receiver(default=Reply(410)) as gone:
        exhausted = await flow.start(
            policy_key=key,
            artifact_type=key,
            artifact_id="a-2",
            context=context,
            callback_url=gone.url,
        )
        result.request_ids.append(exhausted["request_id"])
        await gone.wait_for(lambda calls: len(calls) >= 1)

    with ResolverServer() as resolver:
        resolver.answer(*[Answer(status=500)] * 3)
        await flow.publish(
            [
                stage(
                    1,
                    [],
                    rules=[{"rule_type": "http", "rule_value": {"url": resolver.url}}],
                )
            ],
            key=f"{key}.http",
        )
        resolving = await flow.start(
            policy_key=f"{key}.http", artifact_type=f"{key}.http", artifact_id="a-3"
        )
        result.request_ids.append(resolving["request_id"])
        assert resolving["status"] == "in_review"

    await receiver.wait_for(
        lambda calls: any(
            c.event_type == "request_approved" and c.delivered for c in calls
        )
    )
    await admin.wait_for_status(
        (await admin.delivery(exhausted["request_id"], "request_created"))["id"],
        "exhausted",
        workers=workers,
    )
    deliveries = await admin.deliveries(request_id=approved_id)
    await admin.attempts(deliveries[0]["id"])
    refused = await client.get("/v1/requests", headers=bearer("not.a.token"))
    assert refused.status_code == 401

    # The SLA of stage 1 of a waiting request passes; the worker's timer sweep handles it.
    breached = await flow.start(policy_key=key, artifact_type=key, artifact_id="a-4")
    result.request_ids.append(breached["request_id"])
    clock.advance(SLA_HOURS * 3600 + 60)

    async def breach_handled() -> bool:
        return "countersign_sla_breaches_total" in samples(await scrape())

    await eventually(breach_handled, what="the SLA breach counted", workers=workers)
    result.receiver_calls = list(receiver.calls)
    return result


__all__ = [
    "FlowResult",
    "Workers",
    "api_env",
    "running_api",
    "run_full_flow",
    "samples",
]
