"""The one clock of the service.

Everything that reads the time (timestamps, SLAs, reminders, expiry, retries) calls `now()`, so the
test hook `POST /v1/_test/clock` can move the whole service forward consistently. The offset only
grows: time never runs backwards for timers that were already computed.

With `COUNTERSIGN_CLOCK_FILE` set (tests only), the offset lives in that file, so the API process
and separate worker processes share one moved clock.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

_lock = threading.Lock()
_offset = timedelta(0)


def _clock_file() -> Path | None:
    path = os.environ.get("COUNTERSIGN_CLOCK_FILE")
    return Path(path) if path else None


def _shared_offset(path: Path) -> timedelta:
    # Read on every call, never cached by modification time: two writes within one timestamp tick
    # (coarse on many filesystems) would otherwise leave a reader on the older offset for good.
    # The file is a few bytes and only exists in tests.
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return timedelta(0)
    return timedelta(seconds=float(text or 0))


def _current_offset() -> timedelta:
    path = _clock_file()
    return _shared_offset(path) if path is not None else _offset


def now() -> datetime:
    return datetime.now(UTC) + _current_offset()


def advance(seconds: float) -> datetime:
    """Move the clock forward by `seconds` (test hooks only)."""
    global _offset
    if seconds < 0:
        raise ValueError("the clock only moves forward")
    with _lock:
        path = _clock_file()
        if path is None:
            _offset += timedelta(seconds=seconds)
        else:
            total = _shared_offset(path).total_seconds() + seconds
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(repr(total), encoding="utf-8")
            os.replace(tmp, path)
    return now()


def offset_seconds() -> float:
    return _current_offset().total_seconds()


def rfc3339(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, microseconds kept (event hashes depend on the exact string)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
