"""Dev-mode token issuer: the service's own RSA key, its public JWKS, and tokens it accepts.

Used by the embedded default (`countersign serve` without an IdP) and by `countersign token`.
The private key lives in `<data_dir>/dev-signing-key.pem` so tokens survive restarts and the CLI
mints tokens the running server accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import stat
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from countersign.config import Settings

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "dev-signing-key.pem"
ALGORITHM = "RS256"
DEFAULT_TTL_SECONDS = 3600


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_at: datetime


class DevIssuer:
    """Signs dev-mode tokens with a key kept in the data directory."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.key_path = Path(settings.data_dir) / KEY_FILE_NAME
        self._private_key = _load_or_create_key(self.key_path)
        public_jwk = _public_jwk(self._private_key.public_key())
        self.kid = jwk_thumbprint(public_jwk)
        self._public_jwk = {
            **public_jwk,
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }

    @property
    def issuer(self) -> str:
        return self._settings.dev_issuer

    def jwks(self) -> dict[str, Any]:
        """The public JWKS, as served at `/v1/.well-known/jwks.json`."""
        return {"keys": [dict(self._public_jwk)]}

    def issue(
        self,
        sub: str,
        roles: Sequence[str] = (),
        azp: str | None = None,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        extra: dict[str, Any] | None = None,
    ) -> IssuedToken:
        """Sign a token for `sub` with realm roles `roles`: the one issuing function behind
        `countersign token` and `POST /v1/dev/token`.

        `extra` claims are applied last and so override the standard ones; tests use that to
        craft tokens (an `exp` in the past, a `username` claim...).
        """
        # Wall-clock time, not kit.clock: the verifier checks `exp` against the wall clock too.
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self._settings.dev_issuer,
            "aud": self._settings.audience,
            "sub": sub,
            "preferred_username": sub,
            "realm_access": {"roles": list(roles)},
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": str(uuid.uuid4()),
        }
        if azp is not None:
            claims["azp"] = azp
        if extra:
            claims.update(extra)
        token = jwt.encode(
            claims, self._private_key, algorithm=ALGORITHM, headers={"kid": self.kid}
        )
        return IssuedToken(token, datetime.fromtimestamp(claims["exp"], UTC))

    def mint(
        self,
        sub: str,
        roles: Sequence[str] = (),
        azp: str | None = None,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """`issue`, the token string only."""
        return self.issue(
            sub, roles=roles, azp=azp, ttl_seconds=ttl_seconds, extra=extra
        ).access_token


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint: stable across restarts and processes for the same key."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    canonical = json.dumps(
        {name: jwk[name] for name in required}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, Any]:
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _b64_uint(numbers.n), "e": _b64_uint(numbers.e)}


def _b64_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if not path.exists():
        _create_key_file(path)
    return _read_key(path)


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    # Write a private temporary file, then hard-link it into place. Unlike a rename, link fails
    # when the target exists, so when two processes start at once exactly one key wins, both end
    # up using it, and no reader ever sees a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            # The umask may have taken bits away, never added any; make the mode exact.
            os.fchmod(handle.fileno(), 0o600)
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
            logger.info("generated dev signing key at %s", path)
        except FileExistsError:
            pass  # another process won the race; its key is the key
    finally:
        tmp.unlink(missing_ok=True)


def _read_key(path: Path) -> rsa.RSAPrivateKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning(
            "dev signing key %s is readable by others (mode %o); chmod 600 it",
            path,
            mode,
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise RuntimeError(
            f"{path} is not a PEM private key; delete it to generate a new one"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise RuntimeError(
            f"{path} does not hold an RSA private key; delete it to generate a new one"
        )
    return key
