"""Webhook signatures: AWE's `X-Approval-Signature` and Standard Webhooks' `webhook-signature`.

Pure functions, no I/O: the delivery job passes the event id, the attempt's timestamp, the frozen
body bytes and the caller's secrets (newest first), and sends the headers returned here.

Both schemes sign the exact body bytes that are sent (API.md "Webhooks"):

- AWE: `X-Approval-Signature: sha256=<hex HMAC-SHA256(key=secret UTF-8, msg="<ts>." + body)>`.
  The key is the whole secret string, `whsec_` prefix included, and only the newest secret signs.
- Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<ts>." + body)>` where
  key is the base64-decoded part after `whsec_` (or the UTF-8 bytes of a secret without that
  prefix). During rotation every secret signs, newest first: `v1,<new> v1,<old>`.

The `standardwebhooks` package is not used to produce signatures: its `Webhook` base64-decodes
every string secret, while the contract keys un-prefixed secrets by their UTF-8 bytes. The tests
cross-check our headers against it instead.

Receivers: `verify_standard` and `verify_awe` are the reference verifiers (constant-time compare,
5-minute tolerance, several `v1` signatures accepted so rotation is seamless).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from secrets import token_bytes
from typing import Final

from countersign import __version__

SECRET_PREFIX: Final = "whsec_"
USER_AGENT: Final = f"Countersign/{__version__}"
DEFAULT_TOLERANCE_SECONDS: Final = 300

# Header names exactly as the contract spells them.
AWE_EVENT_ID: Final = "X-Approval-Event-Id"
AWE_TIMESTAMP: Final = "X-Approval-Timestamp"
AWE_SIGNATURE: Final = "X-Approval-Signature"
STANDARD_ID: Final = "webhook-id"
STANDARD_TIMESTAMP: Final = "webhook-timestamp"
STANDARD_SIGNATURE: Final = "webhook-signature"


def generate_secret() -> str:
    """A new caller secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(32)).decode("ascii")


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key of `secret`.

    Args:
        secret: a `whsec_<base64>` secret, or any other non-empty string (then its UTF-8 bytes).

    Raises:
        ValueError: empty secret, or a `whsec_` secret whose rest is not base64 of a non-empty key.
            Validate imported secrets with this before storing them, so signing never fails later.
    """
    if not secret:
        raise ValueError("webhook secret is empty")
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode("utf-8")
    encoded = secret[len(SECRET_PREFIX) :]
    # Imported secrets sometimes drop the padding; receivers' libraries accept that too.
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("webhook secret after 'whsec_' is not valid base64") from exc
    if not key:
        raise ValueError("webhook secret after 'whsec_' is empty")
    return key


def awe_signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(key=secret UTF-8, msg=b"<ts>." + body)>` (AWE's scheme)."""
    if not secret:
        raise ValueError("webhook secret is empty")
    message = f"{timestamp}.".encode("ascii") + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def standard_signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256(standard_key(secret), b"<event_id>.<ts>." + body)>`."""
    return "v1," + base64.b64encode(
        _standard_digest(standard_key(secret), event_id, timestamp, body)
    ).decode("ascii")


def sign_headers(
    *,
    event_id: str,
    timestamp: int,
    body: bytes,
    secrets: Sequence[str],
    user_agent: str,
) -> dict[str, str]:
    """Every header of one delivery attempt.

    Args:
        event_id: the event id (`X-Approval-Event-Id` and `webhook-id`; receivers dedupe on it).
        timestamp: unix seconds of this attempt (a retry signs again with a fresh timestamp).
        body: the exact bytes that are sent.
        secrets: the caller's signing secrets, newest first (two during a rotation's grace).
        user_agent: `Countersign/<version>` (`USER_AGENT`).

    Raises:
        ValueError: no secret (a delivery is never sent unsigned), or an unusable secret.
    """
    if not secrets:
        raise ValueError("a webhook delivery needs at least one signing secret")
    return {
        AWE_EVENT_ID: event_id,
        AWE_TIMESTAMP: str(timestamp),
        AWE_SIGNATURE: awe_signature(secrets[0], timestamp, body),
        STANDARD_ID: event_id,
        STANDARD_TIMESTAMP: str(timestamp),
        STANDARD_SIGNATURE: " ".join(
            standard_signature(secret, event_id, timestamp, body) for secret in secrets
        ),
        "User-Agent": user_agent,
        "Content-Type": "application/json",
    }


def verify_standard(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Whether `headers` carry a valid Standard Webhooks signature of `body` by `secret`.

    Header names are matched case-insensitively; any one `v1` signature of the space-separated
    list may match (rotation); the timestamp must be within `tolerance` seconds of `now`.
    """
    lowered = _lower_keys(headers)
    event_id = lowered.get(STANDARD_ID)
    signatures = lowered.get(STANDARD_SIGNATURE)
    timestamp = _fresh_timestamp(lowered.get(STANDARD_TIMESTAMP), now, tolerance)
    if not event_id or not signatures or timestamp is None:
        return False
    expected = _standard_digest(standard_key(secret), event_id, timestamp, body)
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue
        try:
            provided = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, provided):
            return True
    return False


def verify_awe(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Whether `headers` carry a valid AWE `X-Approval-Signature` of `body` by `secret`.

    Header names are matched case-insensitively, the hex digest too; several space-separated
    `sha256=` values are accepted; the timestamp must be within `tolerance` seconds of `now`.
    """
    lowered = _lower_keys(headers)
    signatures = lowered.get(AWE_SIGNATURE.lower())
    timestamp = _fresh_timestamp(lowered.get(AWE_TIMESTAMP.lower()), now, tolerance)
    if not signatures or timestamp is None:
        return False
    message = f"{timestamp}.".encode("ascii") + body
    expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    for candidate in signatures.split():
        scheme, _, hex_digest = candidate.partition("=")
        if scheme.lower() != "sha256":
            continue
        try:
            provided = bytes.fromhex(hex_digest)
        except ValueError:
            continue
        if hmac.compare_digest(expected, provided):
            return True
    return False


def _standard_digest(key: bytes, event_id: str, timestamp: int, body: bytes) -> bytes:
    message = f"{event_id}.{timestamp}.".encode() + body
    return hmac.new(key, message, hashlib.sha256).digest()


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _fresh_timestamp(raw: str | None, now: int, tolerance: int) -> int | None:
    """The header's unix seconds if well-formed (ASCII digits only) and within tolerance."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw or len(raw) > 15 or not (raw.isascii() and raw.isdigit()):
        return None
    timestamp = int(raw)
    if abs(now - timestamp) > tolerance:
        return None
    return timestamp
