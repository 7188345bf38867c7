"""arq worker for production: webhook deliveries, plus a cron sweep over PostgreSQL.

Redis only carries doorbells. The sweep re-enqueues every due delivery from the database every few
seconds, so a lost enqueue, a Redis restart or a killed worker delays work but never loses it. arq
drops jobs that wait too long, which is why timers never live only in Redis.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from arq.connections import RedisSettings
from arq.cron import cron
from arq.worker import func

from countersign.config import get_settings
from countersign.webhooks import delivery as delivery_service
from countersign.worker import jobs
from countersign.worker.queue import ArqQueue
from countersign.worker.runtime import Runtime

SWEEP_SECONDS = set(range(0, 60, 3))


async def startup(ctx: dict[str, Any]) -> None:
    ctx["runtime"] = Runtime.create(get_settings(), ArqQueue(ctx["redis"]))


async def shutdown(ctx: dict[str, Any]) -> None:
    runtime: Runtime | None = ctx.get("runtime")
    if runtime is not None:
        await runtime.close()


async def deliver(ctx: dict[str, Any], delivery_id: str) -> str:
    return await jobs.deliver_webhook(ctx["runtime"], uuid.UUID(delivery_id))


async def sweep(ctx: dict[str, Any]) -> int:
    """Enqueue every due delivery; job ids make a delivery already queued a no-op."""
    runtime: Runtime = ctx["runtime"]
    ids = await jobs.due_deliveries(runtime)
    async with runtime.transaction() as session:
        from countersign.models import WebhookDelivery

        for delivery_id in ids:
            delivery = await session.get(WebhookDelivery, delivery_id)
            if delivery is not None:
                delivery_service.notify(delivery)
    return len(ids)


def _redis_settings() -> RedisSettings:
    url = get_settings().redis_url or "redis://127.0.0.1:6379"
    settings = RedisSettings.from_dsn(url)
    # Keep retrying while Redis restarts instead of exiting.
    settings.conn_retries = 60
    settings.conn_retry_delay = 1
    return settings


class WorkerSettings:
    functions = [
        func(deliver, name=delivery_service.JOB_NAME, keep_result=0, max_tries=5)
    ]
    cron_jobs = [
        cron(
            sweep,
            name="webhooks.sweep",
            second=SWEEP_SECONDS,
            run_at_startup=True,
            unique=True,
        )
    ]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = _redis_settings()
    max_jobs = int(os.environ.get("COUNTERSIGN_WORKER_MAX_JOBS", "100"))
    job_completion_wait = int(
        os.environ.get("COUNTERSIGN_WORKER_JOB_COMPLETION_WAIT", "30")
    )
    health_check_interval = int(
        os.environ.get("COUNTERSIGN_WORKER_HEALTH_CHECK_INTERVAL", "30")
    )
    keep_result = 0
