"""Bearer token verification against a JWKS (the IdP's, or the dev issuer's own).

Decisions (see the contract, "Identity"):
- Only RS256 and ES256. The header `alg` is checked before any key is looked at, so `none`, HS*
  (the RSA-public-key-as-HMAC-secret confusion) and anything else never reach PyJWT's key handling.
- The JWKS is cached. An unknown `kid` triggers a refetch at most once per
  `jwks_refetch_interval_seconds`, so rotated keys work without a restart while a stream of tokens
  with made-up kids cannot turn the service into a load generator against the IdP. One fetch is
  in flight at a time: concurrent requests with the same new kid share it.
- Known keys are refetched after `jwks_max_age_seconds`, so a key the IdP withdrew stops being
  accepted; the refresh runs in the background while requests with known kids carry on with the
  keys they have (a slow IdP never stalls them), and if it fails the cached keys keep working (an
  IdP blip must not lock everyone out).
- A token that cannot be checked because the JWKS is unreachable and its key is not cached is
  503 `dependency_unavailable`, not 401: the token may be perfectly valid, and a 401 would tell
  the client to throw it away and re-authenticate, which does not help.
- `jku`/`x5u`/`jwk` headers are ignored: keys only ever come from the configured JWKS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from countersign.config import Settings
from countersign.errors import DependencyUnavailable, Unauthenticated
from countersign.identity.dev import DevIssuer
from countersign.identity.principal import Principal, principal_from_claims

logger = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = ("RS256", "ES256")
# Which JWK can verify which algorithm: (kty, crv or None).
_KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
}
JWKS_FETCH_TIMEOUT_SECONDS = 5.0
DEFAULT_JWKS_MAX_AGE_SECONDS = 600.0
# Verified tokens kept per process (see `TokenVerifier.verify`), and for how long at most.
VERIFIED_TOKENS_MAX = 4096
VERIFIED_TOKEN_MAX_SECONDS = 300.0


class JwksUnavailable(Exception):
    """The JWKS endpoint could not be read (network error, bad status, not a JWKS)."""


@dataclass(frozen=True)
class _Key:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    jwk: PyJWK

    def can_verify(self, alg: str) -> bool:
        kty, crv = _KEY_TYPES[alg]
        # A JWK that names its algorithm is only used for that one (RFC 7517 §4.4).
        return (
            self.kty == kty
            and (crv is None or self.crv == crv)
            and self.alg in (None, alg)
        )


class TokenVerifier:
    """Verifies bearer tokens and turns them into principals.

    In dev mode pass `dev_issuer`: its JWKS is used directly, no HTTP. Otherwise pass the shared
    `http_client`; keys are fetched from `settings.oidc_jwks_url`.
    `clock` is a monotonic clock, injectable so tests can step over the refetch interval.
    """

    def __init__(
        self,
        settings: Settings,
        http_client: httpx.AsyncClient | None = None,
        *,
        dev_issuer: DevIssuer | None = None,
        clock: Callable[[], float] = time.monotonic,
        jwks_max_age_seconds: float = DEFAULT_JWKS_MAX_AGE_SECONDS,
    ) -> None:
        if dev_issuer is None and (http_client is None or not settings.oidc_jwks_url):
            raise ValueError(
                "TokenVerifier needs a DevIssuer, or an http client and COUNTERSIGN_OIDC_JWKS_URL"
            )
        self.settings = settings
        self.dev_issuer = dev_issuer
        self._http = http_client
        self._clock = clock
        self._max_age = jwks_max_age_seconds
        # The one JWKS fetch in flight, shared by every request that needs it.
        self._refresh: asyncio.Task[None] | None = None
        self._keys: list[_Key] = []
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, successful or not
        self._last_error: str | None = None
        if dev_issuer is not None:
            self._keys = _parse_jwks(dev_issuer.jwks())
        # Tokens verified already: token -> (principal, valid until (epoch seconds), the key that
        # verified it). A caller or an approver's UI sends the same token on every call until it
        # expires, and parsing and checking it (RS256) cost about a tenth of a small call.
        self._verified: dict[str, tuple[Principal, float, _Key]] = {}

    async def verify(self, token: str) -> Principal:
        """Verify `token` and return its principal.

        Raises `Unauthenticated` for every token problem and `DependencyUnavailable` when the
        IdP's JWKS is needed but unreachable.
        """
        cached = self._verified.get(token)
        if cached is not None:
            principal, valid_until, key = cached
            # Still unexpired, and its key still in the JWKS: a refresh that withdraws the key
            # replaces `_keys`, so the token is checked afresh (and refused) from then on.
            if time.time() < valid_until and any(k is key for k in self._keys):
                if not self._is_fresh() and self._may_fetch():
                    self._start_refresh()
                return principal
            del self._verified[token]
        alg, kid = _checked_header(token)
        key = await self._key_for(kid, alg)
        claims = self._decode(token, key, alg)
        principal = principal_from_claims(
            claims,
            client_id=self.settings.oidc_client_id,
            role_admin=self.settings.role_admin,
            role_viewer=self.settings.role_viewer,
            caller_clients=self.settings.caller_clients,
        )
        self._remember(token, principal, claims, key)
        return principal

    def _remember(
        self, token: str, principal: Principal, claims: dict[str, Any], key: _Key
    ) -> None:
        # `exp` is required and checked by `_decode`; the entry lives as long as PyJWT would
        # accept the token (exp + leeway), and at most VERIFIED_TOKEN_MAX_SECONDS.
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            return
        valid_until = min(
            float(exp) + self.settings.jwt_leeway_seconds,
            time.time() + VERIFIED_TOKEN_MAX_SECONDS,
        )
        if len(self._verified) >= VERIFIED_TOKENS_MAX:
            # Oldest first: dicts keep insertion order.
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (principal, valid_until, key)

    def _decode(self, token: str, key: _Key, alg: str) -> dict[str, Any]:
        settings = self.settings
        try:
            return jwt.decode(
                token,
                key.jwk.key,
                algorithms=[alg],
                audience=settings.audience,
                issuer=settings.issuers,
                leeway=settings.jwt_leeway_seconds,
                options={"require": ["exp"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthenticated(
                "token is not valid yet (nbf or iat in the future)"
            ) from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated(
                f"token audience is not {settings.audience!r}"
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated(
                "token issuer is not one of the accepted issuers"
            ) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token has no {exc.claim!r} claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthenticated("token signature is invalid") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise Unauthenticated(
                "token algorithm is not allowed; use RS256 or ES256"
            ) from exc
        except jwt.DecodeError as exc:
            raise Unauthenticated("token is malformed") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"token is invalid: {exc}") from exc

    async def _key_for(self, kid: str | None, alg: str) -> _Key:
        key = self._lookup(kid, alg)
        if key is not None:
            # A known key never waits for the IdP: past its max age it is used while one refresh
            # runs in the background (a slow or stalled JWKS endpoint must not stall every
            # request); once that refresh lands, a withdrawn key stops verifying.
            if not self._is_fresh() and self._may_fetch():
                self._start_refresh()
            return key
        # Unknown kid: wait for the one refresh in flight, or start it (at most one per interval).
        refresh = self._refresh_in_flight()
        if refresh is None and self._may_fetch():
            refresh = self._start_refresh()
        if refresh is not None:
            try:
                await asyncio.shield(refresh)
            except JwksUnavailable:
                raise DependencyUnavailable(
                    "the identity provider's signing keys (JWKS) are unreachable"
                ) from None
            key = self._lookup(kid, alg)
            if key is not None:
                return key
        elif self._last_error is not None:
            raise DependencyUnavailable(
                "the identity provider's signing keys (JWKS) are unreachable"
            )
        raise Unauthenticated(_unknown_key_message(kid, alg))

    def _refresh_in_flight(self) -> asyncio.Task[None] | None:
        task = self._refresh
        if task is None or task.done():
            return None
        if task.get_loop() is not asyncio.get_running_loop():
            return None  # left behind by another event loop (tests); never awaited from here
        return task

    def _start_refresh(self) -> asyncio.Task[None]:
        """The one JWKS fetch in flight (started now unless one already runs)."""
        running = self._refresh_in_flight()
        if running is not None:
            return running
        task = asyncio.get_running_loop().create_task(self._fetch())
        # A background refresh nobody awaits still has its failure logged by `_fetch`.
        task.add_done_callback(_consume_failure)
        self._refresh = task
        return task

    def _lookup(self, kid: str | None, alg: str) -> _Key | None:
        candidates = [key for key in self._keys if key.can_verify(alg)]
        if kid is None:
            # Without a kid the key is unambiguous only when the JWKS offers exactly one.
            return candidates[0] if len(candidates) == 1 else None
        for key in candidates:
            if key.kid == kid:
                return key
        return None

    def _is_fresh(self) -> bool:
        if self.dev_issuer is not None:
            return True
        return (
            self._fetched_at is not None
            and self._clock() - self._fetched_at < self._max_age
        )

    def _may_fetch(self) -> bool:
        if self.dev_issuer is not None:
            return False
        return (
            self._attempted_at is None
            or self._clock() - self._attempted_at
            >= self.settings.jwks_refetch_interval_seconds
        )

    async def _fetch(self) -> None:
        # __init__ guarantees a client whenever there is no dev issuer.
        assert self._http is not None
        url = self.settings.oidc_jwks_url
        self._attempted_at = self._clock()
        try:
            response = await self._http.get(url, timeout=JWKS_FETCH_TIMEOUT_SECONDS)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            self._last_error = f"{type(exc).__name__}: {exc}"
            logger.error("JWKS fetch from %s failed: %s", url, self._last_error)
            raise JwksUnavailable(self._last_error) from exc
        if not isinstance(document, Mapping) or not isinstance(
            document.get("keys"), list
        ):
            self._last_error = "response is not a JWKS (no keys list)"
            logger.error("JWKS fetch from %s failed: %s", url, self._last_error)
            raise JwksUnavailable(self._last_error)
        self._keys = _parse_jwks(document)
        self._fetched_at = self._attempted_at
        self._last_error = None
        if not self._keys:
            logger.warning("JWKS at %s holds no RS256/ES256 signing keys", url)
        else:
            logger.info(
                "fetched JWKS from %s: kids %s", url, [key.kid for key in self._keys]
            )


def _consume_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _checked_header(token: str) -> tuple[str, str | None]:
    """The `alg` and `kid` of the unverified header, refusing what we never accept."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise Unauthenticated("token is malformed") from exc
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"token header is invalid: {exc}") from exc
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        shown = alg[:20] if isinstance(alg, str) else alg
        raise Unauthenticated(
            f"token algorithm {shown!r} is not allowed; use RS256 or ES256"
        )
    # RFC 7515 §4.1.11: refuse critical extensions. PyJWT implements `b64` (unencoded payloads);
    # we have no use for it, and every feature not accepted is one less to get wrong.
    if "crit" in header:
        raise Unauthenticated(
            "token uses critical header extensions that are not supported"
        )
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise Unauthenticated("token is malformed (kid is not a string)")
    return alg, kid


def _unknown_key_message(kid: str | None, alg: str) -> str:
    if kid is None:
        return f"token has no kid and the JWKS does not hold exactly one {alg} key"
    return f"token signing key {kid[:64]!r} is unknown"


def _parse_jwks(document: Mapping[str, Any]) -> list[_Key]:
    keys: list[_Key] = []
    for entry in document.get("keys", []):
        if not isinstance(entry, dict):
            continue
        # Keycloak publishes an RSA-OAEP encryption key next to its signing key; `oct` (HMAC)
        # keys are never acceptable for us.
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC"):
            continue
        alg = entry.get("alg")
        if alg is not None and alg not in ALLOWED_ALGORITHMS:
            continue
        try:
            jwk = PyJWK(entry)
        except jwt.PyJWTError as exc:
            logger.warning("ignoring unusable JWK %r: %s", entry.get("kid"), exc)
            continue
        kid = entry.get("kid")
        crv = entry.get("crv")
        keys.append(
            _Key(
                kid=kid if isinstance(kid, str) else None,
                kty=entry["kty"],
                crv=crv if isinstance(crv, str) else None,
                alg=alg,
                jwk=jwk,
            )
        )
    return keys
