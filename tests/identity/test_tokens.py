"""Token verification, principals and the dev issuer, against a real loopback JWKS endpoint."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from countersign.config import Settings
from countersign.errors import AppError, DependencyUnavailable, Unauthenticated
from countersign.identity import (
    AdminDep,
    DevIssuer,
    PrincipalDep,
    ReaderDep,
    TokenVerifier,
    build_verifier,
    principal_from_claims,
)
from countersign.identity.dev import KEY_FILE_NAME, jwk_thumbprint

from .jwks_server import JwksServer

ISSUER = "https://idp.test/realms/registry"
OTHER_ISSUER = "https://idp.test/realms/payments"
AUDIENCE = "countersign"
CLIENT_ID = "countersign-api"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# Key generation is slow enough to do once per module.
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str | None) -> dict[str, Any]:
    jwk = dict(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
    jwk.update({"use": "sig", "alg": "RS256"})
    if kid is not None:
        jwk["kid"] = kid
    return jwk


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk = dict(ECAlgorithm.to_jwk(key.public_key(), as_dict=True))
    jwk.update({"use": "sig", "alg": "ES256", "kid": kid})
    return jwk


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "f3b1c2d4-0000-4000-8000-000000000001",
        "preferred_username": "alice",
        "iat": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(
    payload: dict[str, Any],
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = RSA_KEY,
    *,
    kid: str | None = "rsa-1",
    alg: str = "RS256",
) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made_token(
    header: dict[str, Any], payload: dict[str, Any], secret: bytes | None
) -> str:
    """A token built without PyJWT, which refuses to produce the attacks we test for."""
    signing_input = (
        f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    )
    if secret is None:
        return signing_input + "."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def oidc_settings(jwks_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_mode": "oidc",
        "oidc_jwks_url": jwks_url,
        "oidc_issuers": [ISSUER],
        "oidc_audience": AUDIENCE,
        "oidc_client_id": CLIENT_ID,
        "secret_key": Fernet.generate_key().decode(),
    }
    values.update(overrides)
    return Settings(**values)


def dev_settings(data_dir: Path) -> Settings:
    return Settings(auth_mode="dev", data_dir=data_dir)


async def background_refresh(verifier: TokenVerifier) -> None:
    """Wait for the JWKS refresh a verification started in the background."""
    refresh = verifier._refresh  # the one fetch in flight
    if refresh is not None:
        with contextlib.suppress(Exception):
            await refresh


@pytest.fixture
def server() -> Iterator[JwksServer]:
    jwks = {"keys": [rsa_jwk(RSA_KEY, "rsa-1"), ec_jwk(EC_KEY, "ec-1")]}
    with JwksServer(jwks) as running:
        yield running


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(
    server: JwksServer, http_client: httpx.AsyncClient, clock: FakeClock
) -> TokenVerifier:
    return TokenVerifier(oidc_settings(server.url), http_client, clock=clock)


class TestAlgorithms:
    async def test_rs256_token_is_accepted(self, verifier: TokenVerifier) -> None:
        principal = await verifier.verify(sign(claims()))

        assert principal.id == "alice"
        assert principal.sub == "f3b1c2d4-0000-4000-8000-000000000001"

    async def test_es256_token_is_accepted(self, verifier: TokenVerifier) -> None:
        token = sign(claims(preferred_username="bob"), EC_KEY, kid="ec-1", alg="ES256")

        assert (await verifier.verify(token)).id == "bob"

    async def test_alg_none_is_refused_before_any_key_is_fetched(
        self, verifier: TokenVerifier, server: JwksServer
    ) -> None:
        token = hand_made_token(
            {"alg": "none", "typ": "JWT", "kid": "rsa-1"}, claims(), None
        )

        with pytest.raises(Unauthenticated, match="algorithm 'none' is not allowed"):
            await verifier.verify(token)
        assert server.request_count == 0

    async def test_hs256_signed_with_the_rsa_public_key_is_refused(
        self, verifier: TokenVerifier, server: JwksServer
    ) -> None:
        # The classic confusion attack: a verifier that lets the token pick the algorithm uses
        # the (public) RSA key PEM as an HMAC secret, and anyone can sign.
        public_pem = RSA_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        token = hand_made_token(
            {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(), public_pem
        )

        with pytest.raises(Unauthenticated, match="algorithm 'HS256' is not allowed"):
            await verifier.verify(token)
        assert server.request_count == 0

    @pytest.mark.parametrize("alg", ["RS512", "PS256"])
    async def test_other_asymmetric_algorithms_are_refused(
        self, verifier: TokenVerifier, alg: str
    ) -> None:
        with pytest.raises(Unauthenticated, match="not allowed"):
            await verifier.verify(sign(claims(), alg=alg))

    async def test_rs256_header_over_an_ec_key_id_is_refused(
        self, verifier: TokenVerifier
    ) -> None:
        token = sign(claims(), RSA_KEY, kid="ec-1")

        with pytest.raises(Unauthenticated, match="unknown"):
            await verifier.verify(token)

    @pytest.mark.parametrize(
        "extra_headers", [{"crit": ["exp"]}, {"crit": ["b64"], "b64": True}]
    )
    async def test_critical_header_extensions_are_refused(
        self, verifier: TokenVerifier, extra_headers: dict[str, Any]
    ) -> None:
        token = jwt.encode(
            claims(),
            RSA_KEY,
            algorithm="RS256",
            headers={"kid": "rsa-1", **extra_headers},
        )

        with pytest.raises(Unauthenticated, match="(?i)critical"):
            await verifier.verify(token)


class TestTimeClaims:
    async def test_expired_beyond_the_leeway_is_refused(
        self, verifier: TokenVerifier
    ) -> None:
        now = int(time.time())

        with pytest.raises(Unauthenticated, match="expired"):
            await verifier.verify(sign(claims(iat=now - 600, exp=now - 60)))

    async def test_expired_within_the_30_second_leeway_is_accepted(
        self, verifier: TokenVerifier
    ) -> None:
        now = int(time.time())

        assert (
            await verifier.verify(sign(claims(iat=now - 600, exp=now - 20)))
        ).id == "alice"

    async def test_missing_exp_is_refused(self, verifier: TokenVerifier) -> None:
        with pytest.raises(Unauthenticated, match="no 'exp' claim"):
            await verifier.verify(sign(claims(exp=None)))

    async def test_missing_iat_is_accepted(self, verifier: TokenVerifier) -> None:
        assert (await verifier.verify(sign(claims(iat=None)))).id == "alice"

    async def test_not_yet_valid_is_refused(self, verifier: TokenVerifier) -> None:
        with pytest.raises(Unauthenticated, match="not valid yet"):
            await verifier.verify(sign(claims(nbf=int(time.time()) + 120)))


class TestVerifiedTokens:
    """A token is checked once and then remembered until it expires (issue 11: a caller sends the
    same token on every call). Remembering must never accept what a fresh check would refuse."""

    async def test_a_remembered_token_still_expires(
        self, verifier: TokenVerifier
    ) -> None:
        # Past its exp by 28 s: accepted within the 30 s leeway, for one or two more seconds
        # (exp is whole seconds).
        now = int(time.time())
        token = sign(claims(iat=now - 600, exp=now - 28))
        assert (await verifier.verify(token)).id == "alice"
        assert (await verifier.verify(token)).id == "alice"

        await asyncio.sleep(2.5)
        with pytest.raises(Unauthenticated, match="expired"):
            await verifier.verify(token)

    async def test_a_remembered_token_is_refused_once_its_key_is_withdrawn(
        self, server: JwksServer, http_client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        verifier = TokenVerifier(
            oidc_settings(server.url), http_client, clock=clock, jwks_max_age_seconds=60
        )
        token = sign(claims())
        assert (await verifier.verify(token)).id == "alice"
        server.set_jwks({"keys": [rsa_jwk(RSA_KEY_2, "rsa-2")]})
        clock.advance(61)

        # Past the max age the remembered token starts the background refresh like any other.
        assert (await verifier.verify(token)).id == "alice"
        await background_refresh(verifier)
        with pytest.raises(Unauthenticated, match="'rsa-1' is unknown"):
            await verifier.verify(token)

    async def test_a_refused_token_is_not_remembered(
        self, verifier: TokenVerifier
    ) -> None:
        token = sign(claims(aud="someone-else"))
        for _ in range(2):
            with pytest.raises(Unauthenticated, match="audience"):
                await verifier.verify(token)


class TestIssuerAndAudience:
    async def test_wrong_audience_is_refused(self, verifier: TokenVerifier) -> None:
        with pytest.raises(Unauthenticated, match="audience"):
            await verifier.verify(sign(claims(aud="account")))

    async def test_missing_audience_is_refused(self, verifier: TokenVerifier) -> None:
        with pytest.raises(Unauthenticated, match="no 'aud' claim"):
            await verifier.verify(sign(claims(aud=None)))

    async def test_audience_list_containing_ours_is_accepted(
        self, verifier: TokenVerifier
    ) -> None:
        # Keycloak puts every audience of the token in a list.
        assert (
            await verifier.verify(sign(claims(aud=["account", AUDIENCE])))
        ).id == "alice"

    async def test_wrong_issuer_is_refused(self, verifier: TokenVerifier) -> None:
        with pytest.raises(Unauthenticated, match="issuer"):
            await verifier.verify(sign(claims(iss=OTHER_ISSUER)))

    async def test_missing_issuer_is_refused(self, verifier: TokenVerifier) -> None:
        with pytest.raises(Unauthenticated, match="no 'iss' claim"):
            await verifier.verify(sign(claims(iss=None)))

    async def test_any_of_several_configured_issuers_is_accepted(
        self, server: JwksServer, http_client: httpx.AsyncClient
    ) -> None:
        settings = oidc_settings(server.url, oidc_issuers=[ISSUER, OTHER_ISSUER])
        verifier = TokenVerifier(settings, http_client)

        assert (await verifier.verify(sign(claims(iss=OTHER_ISSUER)))).id == "alice"
        assert (await verifier.verify(sign(claims(iss=ISSUER)))).id == "alice"


class TestKeyRotation:
    async def test_unknown_kid_refetches_and_accepts_the_rotated_key(
        self, verifier: TokenVerifier, server: JwksServer, clock: FakeClock
    ) -> None:
        await verifier.verify(sign(claims()))
        server.set_jwks({"keys": [rsa_jwk(RSA_KEY_2, "rsa-2")]})
        clock.advance(31)

        principal = await verifier.verify(sign(claims(), RSA_KEY_2, kid="rsa-2"))
        await verifier.verify(sign(claims(), RSA_KEY_2, kid="rsa-2"))

        assert principal.id == "alice"
        assert server.request_count == 2

    async def test_unknown_kid_twice_within_the_interval_refetches_once(
        self, verifier: TokenVerifier, server: JwksServer, clock: FakeClock
    ) -> None:
        await verifier.verify(sign(claims()))
        clock.advance(31)
        token = sign(claims(), RSA_KEY_2, kid="rsa-2")

        with pytest.raises(Unauthenticated, match="'rsa-2' is unknown"):
            await verifier.verify(token)
        clock.advance(10)
        with pytest.raises(Unauthenticated, match="'rsa-2' is unknown"):
            await verifier.verify(token)

        assert server.request_count == 2

    async def test_after_the_interval_a_refetch_is_allowed_again(
        self, verifier: TokenVerifier, server: JwksServer, clock: FakeClock
    ) -> None:
        token = sign(claims(), RSA_KEY_2, kid="rsa-2")
        with pytest.raises(Unauthenticated, match="unknown"):
            await verifier.verify(token)
        server.set_jwks({"keys": [rsa_jwk(RSA_KEY_2, "rsa-2")]})

        clock.advance(29)
        with pytest.raises(Unauthenticated, match="unknown"):
            await verifier.verify(token)
        assert server.request_count == 1

        clock.advance(1)
        assert (await verifier.verify(token)).id == "alice"
        assert server.request_count == 2

    async def test_concurrent_tokens_with_the_same_new_kid_fetch_once(
        self, verifier: TokenVerifier, server: JwksServer
    ) -> None:
        server.set_jwks({"keys": [rsa_jwk(RSA_KEY_2, "rsa-2")]})
        token = sign(claims(), RSA_KEY_2, kid="rsa-2")

        principals = await asyncio.gather(*(verifier.verify(token) for _ in range(20)))

        assert {principal.id for principal in principals} == {"alice"}
        assert server.request_count == 1

    async def test_known_keys_are_refreshed_after_the_max_age(
        self, server: JwksServer, http_client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        verifier = TokenVerifier(
            oidc_settings(server.url),
            http_client,
            clock=clock,
            jwks_max_age_seconds=600,
        )
        await verifier.verify(sign(claims()))
        server.set_jwks({"keys": [rsa_jwk(RSA_KEY_2, "rsa-2")]})

        clock.advance(599)
        await verifier.verify(sign(claims()))
        clock.advance(1)
        # Past the max age the known key still verifies at once, while one refresh runs in the
        # background; once it has landed, the withdrawn key is refused.
        assert (await verifier.verify(sign(claims()))).id == "alice"
        await background_refresh(verifier)
        with pytest.raises(Unauthenticated, match="'rsa-1' is unknown"):
            await verifier.verify(sign(claims()))
        assert server.request_count == 2

    async def test_cached_keys_outlive_a_failed_refresh(
        self, server: JwksServer, http_client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        verifier = TokenVerifier(
            oidc_settings(server.url),
            http_client,
            clock=clock,
            jwks_max_age_seconds=600,
        )
        await verifier.verify(sign(claims()))
        server.fail_with(503)
        clock.advance(601)

        assert (await verifier.verify(sign(claims()))).id == "alice"
        await background_refresh(verifier)
        assert (await verifier.verify(sign(claims()))).id == "alice"
        assert server.request_count == 2

    async def test_a_stalled_refresh_never_blocks_tokens_with_a_known_kid(
        self, server: JwksServer, http_client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        """One refresh in flight; everyone whose kid is known carries on with the cached keys."""
        verifier = TokenVerifier(
            oidc_settings(server.url),
            http_client,
            clock=clock,
            jwks_max_age_seconds=600,
        )
        await verifier.verify(sign(claims()))
        server.set_jwks(
            {"keys": [rsa_jwk(RSA_KEY, "rsa-1"), rsa_jwk(RSA_KEY_2, "rsa-2")]}
        )
        server.hold()  # the IdP stops answering
        clock.advance(601)  # the cached keys are past their max age: a refresh is due
        try:
            new_kid = asyncio.create_task(
                verifier.verify(sign(claims(), key=RSA_KEY_2, kid="rsa-2"))
            )
            # Known kids, while the refresh (and the unknown kid waiting for it) hangs. On the
            # old code they queued behind the fetch; a generous bound turns a hang into a failure.
            known = await asyncio.wait_for(
                asyncio.gather(*(verifier.verify(sign(claims())) for _ in range(20))),
                timeout=30,
            )
            assert {principal.id for principal in known} == {"alice"}
            assert not new_kid.done(), "the unknown kid waits for the refresh"
        finally:
            server.release()
        assert (await new_kid).id == "alice"
        assert server.request_count == 2, "one refresh for everyone"

    async def test_token_without_kid_uses_the_only_key(
        self, server: JwksServer, http_client: httpx.AsyncClient
    ) -> None:
        server.set_jwks({"keys": [rsa_jwk(RSA_KEY, None)]})
        verifier = TokenVerifier(oidc_settings(server.url), http_client)

        assert (await verifier.verify(sign(claims(), kid=None))).id == "alice"

    async def test_token_without_kid_is_refused_when_several_keys_fit(
        self, server: JwksServer, http_client: httpx.AsyncClient
    ) -> None:
        server.set_jwks(
            {"keys": [rsa_jwk(RSA_KEY, "rsa-1"), rsa_jwk(RSA_KEY_2, "rsa-2")]}
        )
        verifier = TokenVerifier(oidc_settings(server.url), http_client)

        with pytest.raises(Unauthenticated, match="no kid"):
            await verifier.verify(sign(claims(), kid=None))

    async def test_encryption_and_hmac_keys_in_the_jwks_are_ignored(
        self, server: JwksServer, http_client: httpx.AsyncClient
    ) -> None:
        encryption_key = {
            **rsa_jwk(RSA_KEY_2, "enc-1"),
            "use": "enc",
            "alg": "RSA-OAEP",
        }
        hmac_key = {"kty": "oct", "kid": "hs-1", "k": b64url(b"secret"), "alg": "HS256"}
        server.set_jwks({"keys": [encryption_key, hmac_key, rsa_jwk(RSA_KEY, None)]})
        verifier = TokenVerifier(oidc_settings(server.url), http_client)

        assert (await verifier.verify(sign(claims(), kid=None))).id == "alice"
        with pytest.raises(Unauthenticated, match="'enc-1' is unknown"):
            await verifier.verify(sign(claims(), RSA_KEY_2, kid="enc-1"))


class TestJwksUnavailable:
    async def test_server_down_is_dependency_unavailable(
        self, server: JwksServer, http_client: httpx.AsyncClient
    ) -> None:
        server.stop()
        verifier = TokenVerifier(oidc_settings(server.url), http_client)

        with pytest.raises(DependencyUnavailable, match="unreachable"):
            await verifier.verify(sign(claims()))

    async def test_server_error_is_dependency_unavailable_until_the_next_attempt(
        self, verifier: TokenVerifier, server: JwksServer, clock: FakeClock
    ) -> None:
        server.fail_with(500)
        with pytest.raises(DependencyUnavailable):
            await verifier.verify(sign(claims()))
        server.fail_with(200)
        with pytest.raises(DependencyUnavailable):
            await verifier.verify(sign(claims()))
        assert server.request_count == 1

        clock.advance(30)
        assert (await verifier.verify(sign(claims()))).id == "alice"

    async def test_a_document_without_keys_is_dependency_unavailable(
        self, verifier: TokenVerifier, server: JwksServer
    ) -> None:
        server.set_jwks({"issuer": ISSUER})

        with pytest.raises(DependencyUnavailable):
            await verifier.verify(sign(claims()))


class TestMalformedTokens:
    async def test_tampered_payload_is_refused(self, verifier: TokenVerifier) -> None:
        header, _, signature = sign(claims()).split(".")
        forged = claims(realm_access={"roles": ["AWE_ADMIN"]})
        token = f"{header}.{b64url(json.dumps(forged).encode())}.{signature}"

        with pytest.raises(Unauthenticated, match="signature is invalid"):
            await verifier.verify(token)

    async def test_signature_of_another_key_is_refused(
        self, verifier: TokenVerifier
    ) -> None:
        with pytest.raises(Unauthenticated, match="signature is invalid"):
            await verifier.verify(sign(claims(), RSA_KEY_2, kid="rsa-1"))

    @pytest.mark.parametrize(
        "token",
        ["", "garbage", "a.b.c", "a.b", "eyJhbGciOiJSUzI1NiJ9.!!!.###", "Bearer x.y.z"],
    )
    async def test_garbage_is_refused(
        self, verifier: TokenVerifier, token: str
    ) -> None:
        with pytest.raises(Unauthenticated, match="malformed"):
            await verifier.verify(token)

    async def test_a_token_that_names_nobody_is_refused(
        self, verifier: TokenVerifier
    ) -> None:
        with pytest.raises(Unauthenticated, match="names no principal"):
            await verifier.verify(sign(claims(sub=None, preferred_username=None)))


class TestPrincipalFromClaims:
    @staticmethod
    def principal(**token_claims: Any) -> Any:
        return principal_from_claims(
            token_claims,
            client_id=CLIENT_ID,
            role_admin="AWE_ADMIN",
            role_viewer="AWE_VIEWER",
        )

    @pytest.mark.parametrize(
        ("token_claims", "expected"),
        [
            ({"preferred_username": "alice", "username": "al", "sub": "s-1"}, "alice"),
            ({"username": "al", "sub": "s-1"}, "al"),
            ({"sub": "s-1"}, "s-1"),
            ({"preferred_username": "", "username": "al", "sub": "s-1"}, "al"),
            ({"preferred_username": 7, "sub": "s-1"}, "s-1"),
        ],
    )
    def test_principal_id_is_preferred_username_then_username_then_sub(
        self, token_claims: dict[str, Any], expected: str
    ) -> None:
        assert self.principal(**token_claims).id == expected

    def test_caller_is_the_authorized_party(self) -> None:
        principal = self.principal(
            preferred_username="alice", sub="s-1", azp="registry"
        )

        assert (principal.caller, principal.azp) == ("registry", "registry")

    def test_caller_without_azp_is_the_principal_id(self) -> None:
        principal = self.principal(preferred_username="alice", sub="s-1")

        assert (principal.caller, principal.azp) == ("alice", None)

    def test_roles_of_another_client_are_ignored(self) -> None:
        principal = self.principal(
            sub="s-1",
            realm_access={"roles": ["offline_access"]},
            resource_access={
                "registry-ui": {"roles": ["AWE_ADMIN"]},
                CLIENT_ID: {"roles": ["AWE_VIEWER"]},
            },
        )

        assert principal.roles == frozenset({"offline_access", "AWE_VIEWER"})
        assert not principal.is_admin
        assert principal.is_viewer
        assert principal.can_read_everything

    def test_realm_admin_role_makes_an_admin(self) -> None:
        principal = self.principal(sub="s-1", realm_access={"roles": ["AWE_ADMIN"]})

        assert principal.is_admin
        assert principal.can_read_everything

    def test_without_a_client_id_only_realm_roles_count(self) -> None:
        principal = principal_from_claims(
            {
                "sub": "s-1",
                "realm_access": {"roles": ["r"]},
                "resource_access": {"": {"roles": ["x"]}},
            },
            client_id="",
            role_admin="AWE_ADMIN",
            role_viewer="AWE_VIEWER",
        )

        assert principal.roles == frozenset({"r"})

    def test_top_level_roles_claim_is_not_read(self) -> None:
        principal = self.principal(sub="s-1", roles=["AWE_ADMIN"])

        assert principal.roles == frozenset()
        assert not principal.can_read_everything

    def test_malformed_role_structures_grant_nothing(self) -> None:
        principal = self.principal(
            sub="s-1",
            realm_access=["AWE_ADMIN"],
            resource_access={CLIENT_ID: {"roles": "AWE_ADMIN"}},
        )

        assert principal.roles == frozenset()

    def test_role_names_are_configurable(self) -> None:
        principal = principal_from_claims(
            {"sub": "s-1", "realm_access": {"roles": ["approvals-admin"]}},
            client_id=CLIENT_ID,
            role_admin="approvals-admin",
            role_viewer="approvals-viewer",
        )

        assert principal.is_admin

    def test_principals_are_hashable_and_keep_claims_out_of_repr(self) -> None:
        principal = self.principal(sub="s-1", email="alice@example.org")

        assert hash(principal) == hash(
            self.principal(sub="s-1", email="bob@example.org")
        )
        assert "example.org" not in repr(principal)
        assert principal.claims["email"] == "alice@example.org"

    async def test_verified_tokens_count_only_the_configured_clients_roles(
        self, verifier: TokenVerifier
    ) -> None:
        token = sign(
            claims(
                azp="registry",
                resource_access={
                    "registry": {"roles": ["AWE_ADMIN"]},
                    CLIENT_ID: {"roles": ["AWE_VIEWER"]},
                },
            )
        )

        principal = await verifier.verify(token)

        assert (principal.is_admin, principal.is_viewer, principal.caller) == (
            False,
            True,
            "registry",
        )


class TestDevIssuer:
    def test_key_is_persisted_with_mode_0600_and_reused(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "nested" / "data"

        first = DevIssuer(dev_settings(data_dir))
        second = DevIssuer(dev_settings(data_dir))

        key_file = data_dir / KEY_FILE_NAME
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert first.kid == second.kid
        assert first.jwks() == second.jwks()
        assert [name for name in os.listdir(data_dir) if name != KEY_FILE_NAME] == []

    def test_concurrent_first_starts_agree_on_one_key(self, tmp_path: Path) -> None:
        barrier = threading.Barrier(4)
        kids: list[str] = []

        def start() -> None:
            barrier.wait()
            kids.append(DevIssuer(dev_settings(tmp_path)).kid)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(kids) == 4
        assert len(set(kids)) == 1
        assert kids[0] == DevIssuer(dev_settings(tmp_path)).kid

    def test_kid_is_the_rfc_7638_thumbprint(self) -> None:
        # The example of RFC 7638 §3.1.
        jwk = {
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29",
        }

        assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

    def test_jwks_publishes_only_the_public_key(self, tmp_path: Path) -> None:
        issuer = DevIssuer(dev_settings(tmp_path))

        (key,) = issuer.jwks()["keys"]

        assert (key["kty"], key["kid"], key["alg"], key["use"]) == (
            "RSA",
            issuer.kid,
            "RS256",
            "sig",
        )
        assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()

    async def test_minted_token_verifies_without_http(self, tmp_path: Path) -> None:
        verifier = build_verifier(dev_settings(tmp_path), None)
        assert verifier.dev_issuer is not None

        token = verifier.dev_issuer.mint("alice", roles=["AWE_ADMIN"], azp="registry")
        principal = await verifier.verify(token)

        assert (principal.id, principal.caller, principal.is_admin) == (
            "alice",
            "registry",
            True,
        )
        header = jwt.get_unverified_header(token)
        assert (header["alg"], header["kid"]) == ("RS256", verifier.dev_issuer.kid)

    async def test_mint_sets_the_standard_claims(self, tmp_path: Path) -> None:
        settings = dev_settings(tmp_path)
        token = DevIssuer(settings).mint("bob", ttl_seconds=60)

        payload = jwt.decode(token, options={"verify_signature": False})

        assert payload["iss"] == settings.dev_issuer
        assert payload["aud"] == settings.audience
        assert (payload["sub"], payload["preferred_username"]) == ("bob", "bob")
        assert payload["realm_access"] == {"roles": []}
        assert payload["exp"] - payload["iat"] == 60
        assert "azp" not in payload
        assert payload["jti"]

    async def test_token_of_another_dev_issuer_is_refused(self, tmp_path: Path) -> None:
        verifier = build_verifier(dev_settings(tmp_path / "ours"), None)
        stranger = DevIssuer(dev_settings(tmp_path / "theirs"))

        with pytest.raises(Unauthenticated, match="unknown"):
            await verifier.verify(stranger.mint("mallory", roles=["AWE_ADMIN"]))

    async def test_expired_dev_token_is_refused(self, tmp_path: Path) -> None:
        verifier = build_verifier(dev_settings(tmp_path), None)
        assert verifier.dev_issuer is not None

        with pytest.raises(Unauthenticated, match="expired"):
            await verifier.verify(verifier.dev_issuer.mint("alice", ttl_seconds=-60))

    def test_oidc_mode_has_no_dev_issuer(
        self, server: JwksServer, http_client: httpx.AsyncClient
    ) -> None:
        assert build_verifier(oidc_settings(server.url), http_client).dev_issuer is None

    def test_a_corrupt_key_file_is_not_silently_replaced(self, tmp_path: Path) -> None:
        (tmp_path / KEY_FILE_NAME).write_text("not a key")

        with pytest.raises(RuntimeError, match="not a PEM private key"):
            DevIssuer(dev_settings(tmp_path))


class TestDependencies:
    @pytest.fixture
    async def api(
        self, tmp_path: Path
    ) -> AsyncIterator[tuple[httpx.AsyncClient, DevIssuer]]:
        app = FastAPI()
        app.state.verifier = build_verifier(dev_settings(tmp_path), None)

        @app.exception_handler(AppError)
        async def render(request: Request, exc: AppError) -> JSONResponse:
            return JSONResponse(
                {"code": exc.code, "detail": exc.message}, status_code=exc.status_code
            )

        @app.get("/me")
        async def me(principal: PrincipalDep, request: Request) -> dict[str, Any]:
            return {"id": principal.id, "cached": request.state.principal is principal}

        @app.get("/admin")
        async def admin(principal: AdminDep) -> dict[str, str]:
            return {"id": principal.id}

        @app.get("/read")
        async def read(principal: ReaderDep) -> dict[str, str]:
            return {"id": principal.id}

        issuer = app.state.verifier.dev_issuer
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test"
        ) as client:
            yield client, issuer

    @staticmethod
    def bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
        return {"Authorization": f"{scheme} {token}"}

    async def test_missing_token_is_401(
        self, api: tuple[httpx.AsyncClient, DevIssuer]
    ) -> None:
        client, _ = api

        response = await client.get("/me")

        assert response.status_code == 401
        assert response.json() == {
            "code": "unauthenticated",
            "detail": "missing bearer token",
        }

    async def test_other_schemes_are_401(
        self, api: tuple[httpx.AsyncClient, DevIssuer]
    ) -> None:
        client, issuer = api

        response = await client.get(
            "/me", headers=self.bearer(issuer.mint("alice"), "Basic")
        )

        assert response.status_code == 401

    @pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
    async def test_scheme_is_case_insensitive_and_principal_is_cached(
        self, api: tuple[httpx.AsyncClient, DevIssuer], scheme: str
    ) -> None:
        client, issuer = api

        response = await client.get(
            "/me", headers=self.bearer(issuer.mint("alice"), scheme)
        )

        assert response.json() == {"id": "alice", "cached": True}

    async def test_invalid_token_is_401(
        self, api: tuple[httpx.AsyncClient, DevIssuer]
    ) -> None:
        client, _ = api

        response = await client.get("/me", headers=self.bearer("garbage"))

        assert (response.status_code, response.json()["code"]) == (
            401,
            "unauthenticated",
        )

    @pytest.mark.parametrize(
        ("roles", "path", "status"),
        [
            ([], "/admin", 403),
            (["AWE_VIEWER"], "/admin", 403),
            (["AWE_ADMIN"], "/admin", 200),
            ([], "/read", 403),
            (["AWE_VIEWER"], "/read", 200),
            (["AWE_ADMIN"], "/read", 200),
        ],
    )
    async def test_role_gates(
        self,
        api: tuple[httpx.AsyncClient, DevIssuer],
        roles: list[str],
        path: str,
        status: int,
    ) -> None:
        client, issuer = api

        response = await client.get(
            path, headers=self.bearer(issuer.mint("alice", roles=roles))
        )

        assert response.status_code == status
        if status == 403:
            assert response.json()["code"] == "forbidden"

    async def test_openapi_declares_the_bearer_scheme(
        self, api: tuple[httpx.AsyncClient, DevIssuer]
    ) -> None:
        client, _ = api

        schemes = (await client.get("/openapi.json")).json()["components"][
            "securitySchemes"
        ]

        assert schemes["HTTPBearer"]["scheme"] == "bearer"
