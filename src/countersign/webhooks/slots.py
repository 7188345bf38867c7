"""How many attempts one destination gets at once: one slow receiver cannot starve the others.

Every worker process sends at most `COUNTERSIGN_WEBHOOK_MAX_PER_HOST` attempts at once to one
destination (the callback URL's scheme, host and port). A delivery job whose destination is
full either waits for a slot or gives its worker slot back at once ("busy"; the delivery stays
due in PostgreSQL and the sweep rings for it again):

- it waits (at most `PATIENCE_SECONDS`) while the destination turns its slots over quickly: its
  last attempt took less than `FAST_SECONDS`, or (none has finished yet) its attempts in flight
  are that young. A burst
  of deliveries to one healthy receiver (a registry's single callback URL) goes out at full speed;
- it does not wait for a destination whose attempts are slow (a receiver dripping its answer
  holds a slot for the full 10 s deadline): waiting would hold a worker slot too, and enough slow
  receivers would hold them all, which is the starvation this bound exists to prevent.

One event loop per process, so plain counters and conditions suffice (ADR 0011).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

import httpx

# An attempt quicker than this shows a destination that frees its slots quickly.
FAST_SECONDS: Final = 1.0
# The longest a job waits for a slot of a fast destination (well inside the job's timeout).
PATIENCE_SECONDS: Final = 5.0
# How many idle destinations' last attempt durations are remembered (least recently used go).
REMEMBERED: Final = 10_000


def destination(url: str) -> str:
    """`https://hooks.example.org:443`: what one slot limit counts (the URL's origin).

    No path or query: this goes into the doorbell on Redis, and queries may carry API keys.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "(invalid URL)"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.scheme}://{parsed.host.lower()}:{port}"


@dataclass
class _Destination:
    busy: int = 0
    waiting: int = 0
    # Start times (time.monotonic) of the attempts in flight, by slot token.
    started: dict[int, float] = field(default_factory=dict)
    last_duration: float | None = None
    freed: asyncio.Condition = field(default_factory=asyncio.Condition)


class Slot:
    """One attempt's place at a destination; `release` it when the attempt is over."""

    def __init__(
        self, owner: HostSlots, key: str, state: _Destination, token: int
    ) -> None:
        self._owner = owner
        self.key = key
        self._state = state
        self._token = token
        self._released = False

    async def release(self, *, sent: bool) -> None:
        """Give the slot back; `sent` when an attempt was made (its duration then counts)."""
        if self._released:
            return
        self._released = True
        state = self._state
        async with state.freed:
            started = state.started.pop(self._token)
            state.busy -= 1
            if sent:
                state.last_duration = time.monotonic() - started
            state.freed.notify()
            self._owner._forget_if_idle(self.key, state)


class HostSlots:
    """At most `limit` attempts in flight per destination in this process (see the module)."""

    def __init__(
        self,
        limit: int,
        *,
        fast_seconds: float = FAST_SECONDS,
        patience_seconds: float = PATIENCE_SECONDS,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.fast_seconds = fast_seconds
        self.patience_seconds = patience_seconds
        self._destinations: dict[str, _Destination] = {}
        # The last attempt's duration of destinations with nothing in flight.
        self._durations: OrderedDict[str, float] = OrderedDict()
        self._tokens = 0

    def in_flight(self, key: str) -> int:
        found = self._destinations.get(key)
        return found.busy if found is not None else 0

    async def acquire(self, key: str) -> Slot | None:
        """A slot at destination `key`, or None when it is full and not worth waiting for."""
        state = self._destinations.get(key)
        if state is None:
            state = _Destination(last_duration=self._durations.pop(key, None))
            self._destinations[key] = state
        give_up_at = time.monotonic() + self.patience_seconds
        async with state.freed:
            state.waiting += 1
            try:
                while state.busy >= self.limit:
                    wait = min(give_up_at, self._worth_waiting_until(state))
                    wait -= time.monotonic()
                    if wait <= 0:
                        return None
                    try:
                        await asyncio.wait_for(state.freed.wait(), wait)
                    except TimeoutError:
                        continue
            finally:
                state.waiting -= 1
            self._tokens += 1
            state.busy += 1
            state.started[self._tokens] = time.monotonic()
            return Slot(self, key, state, self._tokens)

    def _worth_waiting_until(self, state: _Destination) -> float:
        """Until when waiting for this destination is worth it (monotonic time)."""
        if state.last_duration is not None:
            # Its last attempt says how quickly it frees slots.
            fast = state.last_duration < self.fast_seconds
            return float("inf") if fast else float("-inf")
        # No attempt finished yet: wait only while the attempts in flight are young.
        oldest = min(state.started.values(), default=time.monotonic())
        return oldest + self.fast_seconds

    def _forget_if_idle(self, key: str, state: _Destination) -> None:
        # Destinations come and go with callers: an idle one keeps only its last duration.
        if state.busy == 0 and state.waiting == 0:
            if self._destinations.get(key) is state:
                del self._destinations[key]
                if state.last_duration is not None:
                    self._durations[key] = state.last_duration
                    self._durations.move_to_end(key)
                    while len(self._durations) > REMEMBERED:
                        self._durations.popitem(last=False)
