"""Slots per destination: wait for a destination that frees them quickly, not for a slow one.

`HostSlots` is the worker's own bookkeeping (no I/O), driven here with short thresholds; the
end-to-end behaviour with real receivers and a real worker is in `test_fairness.py`.
"""

from __future__ import annotations

import asyncio
import time

from countersign.webhooks.slots import HostSlots, destination

KEY = "https://hooks.example.org:443"


def slots(limit: int = 2) -> HostSlots:
    return HostSlots(limit, fast_seconds=0.2, patience_seconds=2.0)


def test_a_destination_is_the_urls_origin_without_path_or_query() -> None:
    assert destination("https://Hooks.Example.org/cb?api_key=s3cret") == KEY
    assert destination("http://10.0.0.1:8080/x") == "http://10.0.0.1:8080"
    assert destination("https://hooks.example.org:443/other") == KEY


async def test_slots_up_to_the_limit_are_given_at_once() -> None:
    pool = slots()
    first, second = await pool.acquire(KEY), await pool.acquire(KEY)
    assert first is not None
    assert second is not None
    assert pool.in_flight(KEY) == 2
    assert await slots().acquire("https://other.example:443") is not None


async def test_a_full_destination_with_old_attempts_is_not_waited_for() -> None:
    pool = slots()
    held = [await pool.acquire(KEY) for _ in range(2)]
    await asyncio.sleep(0.25)  # the attempts in flight are no longer young
    started = time.monotonic()
    assert await pool.acquire(KEY) is None
    assert time.monotonic() - started < 0.1
    assert all(h is not None for h in held)


async def test_a_full_destination_with_young_attempts_is_waited_for_briefly() -> None:
    pool = slots()
    [await pool.acquire(KEY) for _ in range(2)]
    started = time.monotonic()
    assert await pool.acquire(KEY) is None  # nothing was freed while they were young
    assert 0.15 < time.monotonic() - started < 1.0


async def test_a_burst_to_a_fast_destination_waits_for_slots_and_all_go() -> None:
    pool = slots()
    sent: list[float] = []

    async def attempt() -> bool:
        slot = await pool.acquire(KEY)
        if slot is None:
            return False
        await asyncio.sleep(0.02)  # a receiver answering in 20 ms
        sent.append(time.monotonic())
        await slot.release(sent=True)
        return True

    started = time.monotonic()
    results = await asyncio.gather(*(attempt() for _ in range(30)))
    assert all(results)
    # 30 attempts of 20 ms, 2 at a time: about 0.3 s, far below the patience.
    assert max(sent) - started < 1.5
    assert pool.in_flight(KEY) == 0


async def test_a_slow_destination_gets_no_waiters_once_an_attempt_was_slow() -> None:
    pool = slots(limit=1)
    slot = await pool.acquire(KEY)
    assert slot is not None
    await asyncio.sleep(0.25)
    await slot.release(sent=True)  # took longer than fast_seconds
    again = await pool.acquire(KEY)
    assert again is not None
    started = time.monotonic()
    assert await pool.acquire(KEY) is None
    assert time.monotonic() - started < 0.1
