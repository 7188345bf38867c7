"""The embedded mode's worker: a task inside `countersign serve` running the same job functions."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from countersign.wiring import Runtime
from countersign.worker.jobs import run_due_locally
from countersign.worker.queue import LocalQueue

log = logging.getLogger("countersign.worker")


class InProcessWorker:
    def __init__(
        self, runtime: Runtime, queue: LocalQueue, *, interval: float = 2.0
    ) -> None:
        self.runtime = runtime
        self.queue = queue
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(
            self._run(), name="countersign-in-process-worker"
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            # Woken right after a commit that created work, or every `interval` for timers/retries.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.wakeup.wait(), timeout=self.interval)
            self.queue.wakeup.clear()
            try:
                await run_due_locally(self.runtime)
            except Exception:
                log.exception(
                    "in-process worker pass failed; retrying on the next tick"
                )
