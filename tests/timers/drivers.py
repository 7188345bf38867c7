"""Two ways of letting time pass in a timer test, behind one interface.

- `TickDriver`: the contract's test hooks. `POST /v1/_test/clock` moves the service clock, and
  `POST /v1/_test/tick` runs every due timer synchronously, so a check right after it is final.
- `WorkerDriver`: a deployment's path. The clock file shared with real `countersign worker`
  processes is moved, and their arq cron job `timers.sweep` (every second in tests) does the work;
  results are polled for with a deadline.

A scenario written against `Driver` runs through both, which is how each `on_breach` is shown to
work end to end in the embedded path and in production's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import httpx
import pytest

from countersign.kit import clock
from tests.fixtures.worker import WorkerProcess, eventually

T = TypeVar("T")

HOUR = 3600.0
# arq's log line for a finished run of the timer sweep.
SWEEP_DONE_LOG_LINE = "← timers.sweep ●"
SWEEP_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.05


class Driver(Protocol):
    name: str

    async def advance(self, seconds: float) -> None:
        """Move the service clock (API and workers alike) forward."""

    async def settle(self) -> None:
        """Return once every timer due at the current clock has been handled."""

    async def until(self, check: Callable[[], Awaitable[T | None]], *, what: str) -> T:
        """Let due timers run until `check()` returns something truthy, and return that."""


@dataclass
class TickDriver:
    client: httpx.AsyncClient
    admin: dict[str, str]
    name: str = "tick"
    ran: list[dict[str, int]] = field(default_factory=list)

    async def advance(self, seconds: float) -> None:
        response = await self.client.post(
            "/v1/_test/clock", json={"advance_seconds": seconds}, headers=self.admin
        )
        assert response.status_code == 200, response.text

    async def tick(self) -> dict[str, int]:
        response = await self.client.post("/v1/_test/tick", headers=self.admin)
        assert response.status_code == 200, response.text
        ran: dict[str, int] = response.json()["ran"]
        self.ran.append(ran)
        return ran

    async def settle(self) -> None:
        await self.tick()

    async def until(self, check: Callable[[], Awaitable[T | None]], *, what: str) -> T:
        # A tick is synchronous: what it did is visible as soon as it answers.
        await self.tick()
        result = await check()
        if result is None or result is False:
            pytest.fail(f"{what}: not reached after a tick")
        return result


@dataclass
class WorkerDriver:
    workers: tuple[WorkerProcess, ...]
    name: str = "worker"

    async def advance(self, seconds: float) -> None:
        clock.advance(seconds)

    def sweeps_done(self) -> list[int]:
        return [w.log().count(SWEEP_DONE_LOG_LINE) for w in self.workers]

    async def settle(self) -> None:
        """Wait for two more finished sweeps of every worker: the first may have begun before
        the clock moved, the second began after it."""
        before = self.sweeps_done()
        deadline = time.monotonic() + SWEEP_WAIT_SECONDS
        while any(
            now < then + 2 for now, then in zip(self.sweeps_done(), before, strict=True)
        ):
            for worker in self.workers:
                if not worker.alive:
                    pytest.fail(f"worker exited:\n{worker.log()}")
            if time.monotonic() > deadline:
                pytest.fail(
                    "workers did not sweep within "
                    f"{SWEEP_WAIT_SECONDS}s:\n"
                    + "\n".join(w.log()[-4000:] for w in self.workers)
                )
            await asyncio.sleep(POLL_SECONDS)

    async def until(self, check: Callable[[], Awaitable[T | None]], *, what: str) -> T:
        return await eventually(check, what=what, workers=self.workers)
