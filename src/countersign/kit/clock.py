"""The one clock of the service.

Everything that reads the time (timestamps, SLAs, reminders, expiry, retries) calls `now()`, so the
test hook `POST /v1/_test/clock` can move the whole service forward consistently. The offset only
grows: time never runs backwards for timers that were already computed.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

_lock = threading.Lock()
_offset = timedelta(0)


def now() -> datetime:
    return datetime.now(UTC) + _offset


def advance(seconds: float) -> datetime:
    """Move the clock forward by `seconds` (test hooks only)."""
    global _offset
    if seconds < 0:
        raise ValueError("the clock only moves forward")
    with _lock:
        _offset += timedelta(seconds=seconds)
    return now()


def offset_seconds() -> float:
    return _offset.total_seconds()


def rfc3339(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, microseconds kept (event hashes depend on the exact string)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
