"""Signed diagram links: a short-lived URL that serves one request's SVG without a token.

An `<img>` cannot send a bearer token, so a caller UI asks `POST /v1/requests/{id}/diagram-link`
(with its token, as someone who can see the request) for a URL that carries its own proof:
`exp` (unix seconds, service clock) and `sig` = base64url(HMAC-SHA256(link key,
"diagram.svg\\n<request id>\\n<exp>")). The link key is derived from COUNTERSIGN_SECRET_KEY with
HKDF (its own `info`, so it is never the key that encrypts caller secrets), so every API process
checks every other's links, and changing the secret key invalidates every link. ADR 0018.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import datetime
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from countersign.errors import Forbidden, Unauthenticated

_INFO = b"countersign diagram-link v1"
# A signature is 32 bytes: 43 base64url characters without padding.
SIG_LENGTH = 43


@lru_cache(maxsize=4)
def link_key(secret_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode("utf-8")
    )


def _message(request_id: uuid.UUID, exp: int) -> bytes:
    return f"diagram.svg\n{request_id}\n{exp}".encode()


def sign(key: bytes, request_id: uuid.UUID, exp: int) -> str:
    digest = hmac.new(key, _message(request_id, exp), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check(key: bytes, request_id: uuid.UUID, exp: int, sig: str, now: datetime) -> None:
    """Raise 403 `forbidden` for a signature that is not ours for this request and expiry,
    401 `unauthenticated` for one of ours that has expired. The signature is checked first
    (in constant time), so an expired forgery says "forbidden", not "expired"."""
    expected = sign(key, request_id, exp)
    if not hmac.compare_digest(
        expected.encode("ascii"), sig.encode("ascii", "replace")
    ):
        raise Forbidden("the diagram link's signature is not valid for this request")
    if exp <= int(now.timestamp()):
        raise Unauthenticated("the diagram link has expired; ask for a new one")
