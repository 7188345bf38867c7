"""The `http` approver rule: ask the caller's own service who should approve.

POST `{"request_id", "policy_key", "stage_order", "artifact_type", "artifact_id", "context"}`,
signed like a webhook (both header sets, with the request caller's secret), through the shared
outbound-guarded client; expects `{"user_ids": [...]}`. Anything else is a resolution failure
with a reason, so the stage waits in `resolving` and is retried instead of being decided wrongly.

`timeout_seconds` bounds the whole call (DNS, connect, sending, the complete answer), not each
read: the call runs while the request row is locked, so a resolver that answers slowly, byte by
byte, must not hold it for longer than the rule says. At most 64 KiB of the answer are read (a few
thousand user ids); a longer answer is a resolution failure, never read whole.

Failure reasons end up in `stage_resolution_failed` events, which everyone who can see the request
reads (requester, approvers), so they show the URL without its query string or fragment: those
are where API keys tend to be put.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from countersign import __version__
from countersign.kit.clock import now
from countersign.kit.outbound import MAX_ANSWER_BYTES, bounded_request
from countersign.webhooks.signing import sign_headers

DEFAULT_TIMEOUT_SECONDS = 5.0
# Principal ids live in 200-character columns (task assignee, decision actor), the bound the
# contract's own inputs naming a principal (`requester`, `new_assignee`) have.
MAX_USER_ID_LENGTH = 200


class HttpRuleFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class HttpRuleCall:
    """What an http rule sends, and the caller's secrets to sign it with (newest first)."""

    request_id: str
    policy_key: str
    stage_order: int | None
    artifact_type: str
    artifact_id: str
    context: dict[str, Any]
    secrets: Sequence[str]

    def body(self) -> bytes:
        payload = {
            "request_id": self.request_id,
            "policy_key": self.policy_key,
            "stage_order": self.stage_order,
            "artifact_type": self.artifact_type,
            "artifact_id": self.artifact_id,
            "context": self.context,
        }
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )


async def call(
    client: httpx.AsyncClient, rule_value: dict[str, Any], request: HttpRuleCall
) -> list[str]:
    url = str(rule_value.get("url", ""))
    shown = shown_url(url)
    timeout = float(rule_value.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS)
    if not request.secrets:
        raise HttpRuleFailed(
            f"http rule {shown}: the caller has no active signing secret; not sent unsigned"
        )
    body = request.body()
    headers = sign_headers(
        event_id=f"resolve_{uuid.uuid4().hex}",
        timestamp=int(now().timestamp()),
        body=body,
        secrets=list(request.secrets),
        user_agent=f"Countersign/{__version__}",
    )
    try:
        # One deadline for the whole call and at most 64 KiB read (kit.outbound).
        answer = await bounded_request(
            client,
            "POST",
            url,
            deadline=timeout,
            max_bytes=MAX_ANSWER_BYTES,
            content=body,
            headers=headers,
            follow_redirects=False,
        )
    except httpx.TimeoutException as exc:
        raise HttpRuleFailed(
            f"http rule {shown}: no answer within {timeout:g} s"
        ) from exc
    except httpx.HTTPError as exc:
        raise HttpRuleFailed(f"http rule {shown}: {type(exc).__name__}: {exc}") from exc
    if not 200 <= answer.status_code < 300:
        raise HttpRuleFailed(f"http rule {shown}: answered HTTP {answer.status_code}")
    if not answer.complete:
        raise HttpRuleFailed(
            f"http rule {shown}: the answer is larger than {MAX_ANSWER_BYTES // 1024} KiB"
        )
    try:
        data = answer.json()
    except ValueError as exc:
        raise HttpRuleFailed(f"http rule {shown}: the answer is not JSON") from exc
    user_ids = data.get("user_ids") if isinstance(data, dict) else None
    if not isinstance(user_ids, list) or not all(isinstance(u, str) for u in user_ids):
        raise HttpRuleFailed(f'http rule {shown}: expected {{"user_ids": [strings]}}')
    for user_id in user_ids:
        if len(user_id) > MAX_USER_ID_LENGTH:
            # Such an id could never hold a task; storing it would fail the whole command.
            raise HttpRuleFailed(
                f"http rule {shown}: user id {user_id[:40]!r}... is longer than "
                f"{MAX_USER_ID_LENGTH} characters"
            )
    return [u for u in user_ids if u]


def shown_url(url: str) -> str:
    """`url` as failure reasons show it: no credentials, query string or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid URL)"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
