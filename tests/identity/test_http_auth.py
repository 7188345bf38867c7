"""JWT attacks through HTTP, against the service as a deployment runs it (API.md "Identity").

`test_tokens.py` proves the verifier refuses each attack; these tests prove the refusal reaches
the caller as the contract says: a 401 `unauthenticated` problem+json with a Bearer challenge (403
`forbidden` for roles a token carries where they do not count, 503 `dependency_unavailable` when
the signing keys cannot be read), whatever route is called and whatever else the token claims.

The oidc-mode app here is the real one (`create_app`), configured like a deployment with
`COUNTERSIGN_AUTH_MODE=oidc` and a loopback JWKS endpoint; `oidc_app` is shared with
`test_visibility.py`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from countersign.app import create_app
from countersign.identity import DevIssuer, TokenVerifier
from countersign.identity.dev import KEY_FILE_NAME
from tests.fixtures.client import FIXTURES, bearer

from .jwks_server import JwksServer
from .test_tokens import (
    AUDIENCE,
    CLIENT_ID,
    EC_KEY,
    ISSUER,
    OTHER_ISSUER,
    RSA_KEY,
    RSA_KEY_2,
    FakeClock,
    b64url,
    claims,
    dev_settings,
    ec_jwk,
    hand_made_token,
    oidc_settings,
    rsa_jwk,
    sign,
)

Headers = dict[str, str]

# Routes of every kind: a caller's read, a caller's write, an operator read, an admin write.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/requests", None),
    (
        "POST",
        "/v1/requests",
        {"artifact_type": "x", "artifact_id": "1", "context": {}},
    ),
    ("GET", "/v1/tasks", None),
    ("GET", "/v1/admin/deliveries", None),
    ("POST", "/v1/policies", {"policy_key": "k"}),
    ("GET", "/v1/awe/requests", None),
]


def jwks() -> dict[str, Any]:
    return {"keys": [rsa_jwk(RSA_KEY, "rsa-1"), ec_jwk(EC_KEY, "ec-1")]}


@asynccontextmanager
async def oidc_app(
    jwks_url: str, database_url: str, data_dir: Path, **overrides: Any
) -> AsyncIterator[FastAPI]:
    """The service in oidc mode, on the test database, trusting the JWKS at `jwks_url`."""
    settings = oidc_settings(
        jwks_url,
        env="testing",
        database_url=database_url,
        data_dir=data_dir,
        directory_file=FIXTURES / "directory.yaml",
        **overrides,
    )
    app = create_app(settings, in_process_worker=False)
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://countersign.test"
    ) as client:
        yield client


def oidc_token(**overrides: Any) -> str:
    """A valid token of the configured IdP (RS256, kid rsa-1) for `alice`, claims overridable."""
    return sign(claims(**overrides))


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["type"] == f"https://countersign.dev/problems/{code}"
    assert problem["errors"][0]["errorCode"] == problem["errorCode"]
    return problem


def assert_unauthenticated(response: httpx.Response) -> dict[str, Any]:
    problem = assert_problem(response, 401, "unauthenticated")
    assert problem["errorCode"] == "AWE-008"
    assert response.headers["www-authenticate"].startswith("Bearer")
    return problem


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer(jwks()) as server:
        yield server


@pytest.fixture(scope="module")
async def oidc_service(
    jwks_server: JwksServer,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[FastAPI]:
    async with oidc_app(
        jwks_server.url, database_url, tmp_path_factory.mktemp("oidc")
    ) as app:
        yield app


@pytest.fixture
async def api(oidc_service: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # No `clean_database`: nothing here writes (every call is refused, or only reads).
    async with client_of(oidc_service) as client:
        yield client


def public_key_pem() -> bytes:
    return RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def forged_admin_payload() -> str:
    """A valid token whose payload was swapped for one granting the admin role."""
    header, _, signature = oidc_token().split(".")
    payload = claims(realm_access={"roles": ["AWE_ADMIN"]})
    return f"{header}.{b64url(json.dumps(payload).encode())}.{signature}"


# Each builds a token the service must refuse with 401, whatever it claims.
ATTACKS: dict[str, Callable[[], str]] = {
    "alg none": lambda: hand_made_token(
        {"alg": "none", "typ": "JWT", "kid": "rsa-1"},
        claims(realm_access={"roles": ["AWE_ADMIN"]}),
        None,
    ),
    "alg none without a kid": lambda: hand_made_token(
        {"alg": "none"}, claims(realm_access={"roles": ["AWE_ADMIN"]}), None
    ),
    "HS256 signed with the RSA public key PEM": lambda: hand_made_token(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"},
        claims(realm_access={"roles": ["AWE_ADMIN"]}),
        public_key_pem(),
    ),
    "expired beyond the 30 s leeway": lambda: oidc_token(
        iat=int(time.time()) - 600, exp=int(time.time()) - 60
    ),
    "without exp": lambda: oidc_token(exp=None),
    "not valid yet": lambda: oidc_token(nbf=int(time.time()) + 300),
    "wrong audience": lambda: oidc_token(aud="account"),
    "without audience": lambda: oidc_token(aud=None),
    "wrong issuer": lambda: oidc_token(iss=OTHER_ISSUER),
    "without issuer": lambda: oidc_token(iss=None),
    "signed by a key the IdP never published": lambda: sign(
        claims(), RSA_KEY_2, kid="rsa-1"
    ),
    "payload swapped under a valid signature": forged_admin_payload,
    "RS512": lambda: sign(claims(), alg="RS512"),
    "naming nobody": lambda: oidc_token(sub=None, preferred_username=None),
}


class TestAttacks:
    @pytest.mark.parametrize("attack", list(ATTACKS))
    async def test_is_401_unauthenticated(
        self, api: httpx.AsyncClient, attack: str
    ) -> None:
        token = ATTACKS[attack]()

        response = await api.get("/v1/requests", headers=bearer(token))

        assert_unauthenticated(response)

    @pytest.mark.parametrize(
        ("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
    )
    @pytest.mark.parametrize(
        "attack",
        ["alg none", "HS256 signed with the RSA public key PEM", "wrong issuer"],
    )
    async def test_every_route_refuses_them_alike(
        self,
        api: httpx.AsyncClient,
        attack: str,
        method: str,
        path: str,
        body: dict[str, Any] | None,
    ) -> None:
        response = await api.request(
            method, path, json=body, headers=bearer(ATTACKS[attack]())
        )

        assert_unauthenticated(response)

    async def test_the_detail_says_what_is_wrong_without_echoing_the_token(
        self, api: httpx.AsyncClient
    ) -> None:
        token = ATTACKS["wrong audience"]()

        problem = assert_unauthenticated(
            await api.get("/v1/requests", headers=bearer(token))
        )

        assert "audience" in problem["detail"]
        assert token not in json.dumps(problem)

    async def test_a_valid_token_of_the_same_idp_is_accepted(
        self, api: httpx.AsyncClient
    ) -> None:
        # The control for every case above: only the attack itself makes the difference.
        rs256 = await api.get("/v1/requests", headers=bearer(oidc_token()))
        es256 = await api.get(
            "/v1/requests",
            headers=bearer(sign(claims(), EC_KEY, kid="ec-1", alg="ES256")),
        )
        within_leeway = await api.get(
            "/v1/requests",
            headers=bearer(oidc_token(exp=int(time.time()) - 10)),
        )

        assert [rs256.status_code, es256.status_code, within_leeway.status_code] == [
            200,
            200,
            200,
        ]

    async def test_a_dev_mode_token_is_refused_in_oidc_mode(
        self, api: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        dev_token = DevIssuer(dev_settings(tmp_path)).mint(
            "mallory", roles=["AWE_ADMIN"]
        )

        assert_unauthenticated(await api.get("/v1/requests", headers=bearer(dev_token)))


class TestBearerHeader:
    async def test_a_missing_header_is_401(self, api: httpx.AsyncClient) -> None:
        problem = assert_unauthenticated(await api.get("/v1/requests"))

        assert problem["detail"] == "missing bearer token"

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "Bearer",
            "Bearer ",
            "Bearer not-a-jwt",
            "Bearer a.b.c",
            "Basic YWxpY2U6c2VjcmV0",
            "Token {token}",
            "{token}",
            "Bearer {token} extra",
            "Bearer {token}.",
        ],
    )
    async def test_a_malformed_header_is_401(
        self, api: httpx.AsyncClient, value: str
    ) -> None:
        header = value.format(token=oidc_token())

        response = await api.get("/v1/requests", headers={"Authorization": header})

        assert_unauthenticated(response)

    async def test_the_token_in_a_query_parameter_is_not_read(
        self, api: httpx.AsyncClient
    ) -> None:
        response = await api.get("/v1/requests", params={"access_token": oidc_token()})

        assert_unauthenticated(response)


class TestRoles:
    async def test_admin_role_under_another_clients_resource_access_is_403(
        self, api: httpx.AsyncClient
    ) -> None:
        token = oidc_token(
            azp="registry",
            resource_access={"registry": {"roles": ["AWE_ADMIN", "AWE_VIEWER"]}},
        )

        for method, path in [
            ("GET", "/v1/policies"),
            ("GET", "/v1/admin/deliveries"),
            ("GET", "/v1/admin/callers/registry/secrets"),
        ]:
            response = await api.request(method, path, headers=bearer(token))
            assert_problem(response, 403, "forbidden")

    async def test_roles_of_the_configured_client_and_of_the_realm_count(
        self, api: httpx.AsyncClient
    ) -> None:
        client_admin = oidc_token(resource_access={CLIENT_ID: {"roles": ["AWE_ADMIN"]}})
        realm_admin = oidc_token(realm_access={"roles": ["AWE_ADMIN"]})

        for token in (client_admin, realm_admin):
            response = await api.get("/v1/admin/deliveries", headers=bearer(token))
            assert response.status_code == 200, response.text

    async def test_a_top_level_roles_claim_grants_nothing(
        self, api: httpx.AsyncClient
    ) -> None:
        token = oidc_token(roles=["AWE_ADMIN"], groups=["AWE_ADMIN"])

        response = await api.get("/v1/admin/deliveries", headers=bearer(token))

        assert_problem(response, 403, "forbidden")


class TestSigningKeys:
    async def test_an_unknown_kid_refetches_the_jwks_once_then_is_401(
        self, oidc_service: FastAPI, jwks_server: JwksServer
    ) -> None:
        app = oidc_service
        # The app's own verifier, on a clock the test moves, so the 30 s refetch interval can pass.
        clock = FakeClock()
        app_verifier = app.state.verifier
        app.state.verifier = TokenVerifier(
            app.state.settings, app.state.http_client, clock=clock
        )
        try:
            async with client_of(app) as api:
                assert (
                    await api.get("/v1/tasks", headers=bearer(oidc_token()))
                ).status_code == 200
                fetched = jwks_server.request_count
                stranger = sign(claims(), RSA_KEY_2, kid="rsa-2")

                clock.advance(31)
                first = await api.get("/v1/tasks", headers=bearer(stranger))
                assert jwks_server.request_count == fetched + 1
                second = await api.get("/v1/tasks", headers=bearer(stranger))
                assert jwks_server.request_count == fetched + 1

                problem = assert_unauthenticated(first)
                assert "'rsa-2' is unknown" in problem["detail"]
                assert_unauthenticated(second)
        finally:
            app.state.verifier = app_verifier

    async def test_an_unreachable_jwks_is_503_dependency_unavailable(
        self, database_url: str, tmp_path: Path
    ) -> None:
        down = JwksServer(jwks()).start()
        down.stop()  # the port is known and nothing listens on it any more

        async with (
            oidc_app(down.url, database_url, tmp_path) as app,
            client_of(app) as api,
        ):
            response = await api.get("/v1/requests", headers=bearer(oidc_token()))
            # An attack is still an attack while the IdP is away: refused before any key is needed.
            attack = await api.get(
                "/v1/requests", headers=bearer(ATTACKS["alg none"]())
            )

        problem = assert_problem(response, 503, "dependency_unavailable")
        assert problem["errorCode"] == "AWE-006"
        assert "JWKS" in problem["detail"]
        assert_unauthenticated(attack)

    async def test_a_jwks_answering_500_is_503_too(
        self, database_url: str, tmp_path: Path
    ) -> None:
        with JwksServer(jwks()) as failing:
            failing.fail_with(500)
            async with (
                oidc_app(failing.url, database_url, tmp_path) as app,
                client_of(app) as api,
            ):
                response = await api.get("/v1/requests", headers=bearer(oidc_token()))

        assert_problem(response, 503, "dependency_unavailable")


class TestDevMode:
    """The shared test app runs in dev mode: its own key, its own JWKS, nothing unsigned."""

    async def test_a_token_minted_by_another_dev_key_is_401(
        self, client: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        stranger = DevIssuer(dev_settings(tmp_path))
        assert (tmp_path / KEY_FILE_NAME).exists()

        response = await client.get(
            "/v1/requests",
            headers=bearer(stranger.mint("mallory", roles=["AWE_ADMIN"])),
        )

        assert_unauthenticated(response)

    async def test_an_unsigned_token_is_401_in_dev_mode_too(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        dev_claims = {
            "iss": "countersign-dev",
            "aud": "countersign",
            "sub": "mallory",
            "preferred_username": "mallory",
            "realm_access": {"roles": ["AWE_ADMIN"]},
            "exp": int(time.time()) + 300,
        }
        kid = app.state.verifier.dev_issuer.kid
        unsigned = hand_made_token({"alg": "none", "kid": kid}, dev_claims, None)
        hs256 = hand_made_token({"alg": "HS256", "kid": kid}, dev_claims, b"secret")

        for token in (unsigned, hs256):
            assert_unauthenticated(
                await client.get("/v1/requests", headers=bearer(token))
            )

    async def test_the_dev_jwks_is_public_and_holds_only_the_public_key(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        response = await client.get("/v1/.well-known/jwks.json")

        assert response.status_code == 200
        (key,) = response.json()["keys"]
        assert key["kid"] == app.state.verifier.dev_issuer.kid
        assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()


def test_the_attacks_use_the_configured_issuer_and_audience() -> None:
    # Guards the table above: a typo in the shared constants would make every attack "pass".
    assert claims()["iss"] == ISSUER
    assert claims()["aud"] == AUDIENCE
