"""The hash chain of a request's timeline (pure).

hash = sha256(prev_hash + canonical JSON of {sequence, event_type, actor, payload, created_at}), hex;
canonical JSON = sorted keys, no whitespace, UTF-8 (not ASCII-escaped); the first prev_hash is 64
zeros. Anyone holding the events can recompute it, so tampering with a stored event shows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(
    prev_hash: str,
    *,
    sequence: int,
    event_type: str,
    actor: str,
    payload: Any,
    created_at: str,
) -> str:
    body = canonical_json(
        {
            "sequence": sequence,
            "event_type": event_type,
            "actor": actor,
            "payload": payload,
            "created_at": created_at,
        }
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


class ChainedEvent(Protocol):
    @property
    def sequence(self) -> int: ...
    @property
    def event_type(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def payload(self) -> Any: ...
    @property
    def created_at(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


@dataclass(frozen=True)
class ChainCheck:
    valid: bool
    count: int
    # The first sequence whose link or hash does not match, when invalid.
    broken_at: int | None = None


def verify_chain(events: Iterable[ChainedEvent]) -> ChainCheck:
    """Recompute every link: sequences 1..n without gaps, each prev_hash the previous hash."""
    prev = GENESIS_HASH
    count = 0
    for expected_sequence, event in enumerate(events, start=1):
        count += 1
        recomputed = event_hash(
            prev,
            sequence=event.sequence,
            event_type=event.event_type,
            actor=event.actor,
            payload=event.payload,
            created_at=event.created_at,
        )
        if (
            event.sequence != expected_sequence
            or event.prev_hash != prev
            or event.hash != recomputed
        ):
            return ChainCheck(False, count, event.sequence)
        prev = event.hash
    return ChainCheck(True, count)
