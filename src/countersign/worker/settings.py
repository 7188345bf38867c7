"""arq worker for production: webhook deliveries, plus a cron sweep over PostgreSQL.

Redis only carries doorbells. The sweep re-enqueues every due delivery from the database every few
seconds, so a lost enqueue, a Redis restart or a killed worker delays work but never loses it. arq
drops jobs that wait too long, which is why timers never live only in Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import uuid
from typing import Any

from arq.connections import RedisSettings
from arq.constants import default_queue_name, health_check_key_suffix
from arq.cron import cron
from arq.worker import create_worker, func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from countersign.config import get_settings
from countersign.kit import metrics
from countersign.webhooks import delivery as delivery_service
from countersign.wiring import Runtime
from countersign.worker import jobs
from countersign.worker.queue import DEFAULT_REDIS_URL, ArqQueue, arq_pool, redis_client

log = logging.getLogger("countersign.worker")


def _sweep_seconds() -> set[int]:
    """The seconds of each minute the sweep runs at: every COUNTERSIGN_WORKER_SWEEP_SECONDS (3)."""
    raw = os.environ.get("COUNTERSIGN_WORKER_SWEEP_SECONDS", "3")
    try:
        interval = int(raw)
    except ValueError:
        raise SystemExit(
            f"countersign: COUNTERSIGN_WORKER_SWEEP_SECONDS={raw!r} is not a whole number of seconds"
        ) from None
    if not 1 <= interval <= 60:
        raise SystemExit(
            "countersign: COUNTERSIGN_WORKER_SWEEP_SECONDS must be 1 to 60"
        )
    return set(range(0, 60, interval))


SWEEP_SECONDS = _sweep_seconds()
# After losing Redis, wait this long before starting over (arq then retries the connection).
RESTART_DELAY_SECONDS = 1.0
HEALTH_CHECK_SECONDS = 5.0


def worker_health_key() -> str:
    """The Redis key this host's worker refreshes and `countersign worker --check` reads.

    One key per host name (in Kubernetes, per pod: the probe runs in the worker's container), not
    arq's one key per queue: with a shared key every replica's probe passes while any one worker
    is alive, and a worker that stops deletes the key its healthy peers' probes read.
    """
    return f"{default_queue_name}{health_check_key_suffix}:{socket.gethostname()}"


async def startup(ctx: dict[str, Any]) -> None:
    ctx["runtime"] = Runtime.create(get_settings(), ArqQueue(ctx["redis"]))


async def shutdown(ctx: dict[str, Any]) -> None:
    runtime: Runtime | None = ctx.pop("runtime", None)
    if runtime is not None:
        await runtime.close()


async def deliver(
    ctx: dict[str, Any], delivery_id: str, destination: str | None = None
) -> str:
    return await jobs.deliver_webhook(
        ctx["runtime"], uuid.UUID(delivery_id), destination
    )


async def sweep(ctx: dict[str, Any]) -> int:
    """Ring for every due delivery, with job ids that collapse repeats within a window."""
    runtime: Runtime = ctx["runtime"]
    async with runtime.transaction() as session:
        return await delivery_service.ring_due(session, limit=jobs.SWEEP_BATCH)


async def sweep_timers(ctx: dict[str, Any]) -> dict[str, int]:
    """SLA, reminders, expiry and resolution retries; safe with any number of workers."""
    return await jobs.run_timers(ctx["runtime"])


def _redis_settings() -> RedisSettings:
    """Where the queue is, for arq's bookkeeping; `run` hands arq the pool it connects with."""
    return RedisSettings.from_dsn(get_settings().redis_url or DEFAULT_REDIS_URL)


class WorkerSettings:
    functions = [
        func(
            deliver,
            name=delivery_service.JOB_NAME,
            keep_result=0,
            max_tries=5,
            # Shorter than the delivery's lease (ADR 0009): a job cancelled at this bound has
            # let go before anyone else may claim what it was sending.
            timeout=delivery_service.JOB_TIMEOUT.total_seconds(),
        )
    ]
    cron_jobs = [
        cron(
            sweep,
            name="webhooks.sweep",
            second=SWEEP_SECONDS,
            run_at_startup=True,
            unique=True,
        ),
        cron(
            sweep_timers,
            name="timers.sweep",
            second=SWEEP_SECONDS,
            run_at_startup=True,
            unique=True,
        ),
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
    health_check_key = worker_health_key()
    keep_result = 0
    # arq looks for new jobs this often; its default (0.5 s) would add up to half a second to
    # every webhook, and to each step of a request's chain of deliveries.
    poll_delay = float(os.environ.get("COUNTERSIGN_WORKER_POLL_DELAY", "0.05"))


def check_health() -> int:
    """`countersign worker --check`: 0 when this host's worker wrote its health key recently
    (arq writes it every `health_check_interval` seconds with that lifetime + 1 s), else 1.

    arq's `check_health`, with the service's Redis timeouts and an overall bound, so a probe
    against an unanswering Redis fails instead of hanging.
    """

    async def check() -> int:
        client = redis_client(get_settings().redis_url or DEFAULT_REDIS_URL)
        try:
            async with asyncio.timeout(HEALTH_CHECK_SECONDS):
                found = await client.get(worker_health_key())
        except Exception as exc:
            log.warning("health check failed: Redis did not answer (%s)", exc)
            return 1
        finally:
            await client.aclose()
        if not found:
            log.warning("health check failed: no health check sentinel value found")
            return 1
        log.info("health check successful: %s", found)
        return 0

    return asyncio.run(check())


def run() -> None:
    """Run the arq worker until SIGTERM/SIGINT, starting it over whenever Redis goes away.

    arq's worker stops with an exception when its Redis connection breaks (a Redis restart, a
    failover). Deliveries must not stop with it: a fresh worker is started, which waits for Redis
    to come back, and its first sweep re-rings everything that became due meanwhile. A stop
    signal, even one that arrives while the broken worker is winding down, ends the loop.
    """
    settings = get_settings()
    if settings.worker_metrics_port:
        metrics.serve_worker_metrics(
            settings.worker_metrics_port, settings.worker_metrics_host
        )
    try:
        _run_until_stopped()
    finally:
        metrics.process_exited()


def _run_until_stopped() -> None:
    while True:
        stopped: list[int] = []
        # Our pool, with socket timeouts: arq's own would wait forever on a Redis that accepts
        # connections and never answers. A timeout ends this worker; the loop starts another.
        worker = create_worker(
            WorkerSettings,  # type: ignore[arg-type]
            redis_pool=arq_pool(get_settings().redis_url or DEFAULT_REDIS_URL),
        )
        _watch_signals(worker, stopped)
        try:
            worker.run()
        except (RedisConnectionError, RedisTimeoutError, ConnectionError) as exc:
            if not stopped:
                log.error(
                    "lost Redis (%s); starting the worker over in %.0f s",
                    exc,
                    RESTART_DELAY_SECONDS,
                )
            _release(worker)
            if stopped:
                return
            time.sleep(RESTART_DELAY_SECONDS)
            continue
        return


def _watch_signals(worker: Any, stopped: list[int]) -> None:
    """Note stop signals before arq handles them, so a restart never swallows one."""
    arq_handler = (
        worker.handle_sig_wait_for_completion
        if worker._job_completion_wait
        else worker.handle_sig
    )
    loop: asyncio.AbstractEventLoop = worker.loop
    for signum in (signal.SIGINT, signal.SIGTERM):

        def on_signal(signum: int = signum) -> None:
            stopped.append(signum)
            arq_handler(signum)

        loop.add_signal_handler(signum, on_signal)


def _release(worker: Any) -> None:
    """Close what the broken worker's startup opened, and give signals back their defaults.

    Between two workers no event loop runs, so a SIGTERM must stop the process right away
    rather than wait in a handler of a loop that is not running.
    """
    loop: asyncio.AbstractEventLoop = worker.loop
    try:
        loop.run_until_complete(shutdown(worker.ctx))
        if worker._pool is not None:  # arq's close() stopped at its first Redis call
            loop.run_until_complete(worker._pool.close(close_connection_pool=True))
    except Exception:
        log.warning("could not close the previous worker's resources", exc_info=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(signum)
