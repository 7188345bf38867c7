"""`POST /v1/dev/token` and the admin UI's part of `GET /v1/config` (UI.md, "API additions").

Dev-mode tokens from the route are the ones `countersign token` prints: the service accepts them
on every route, with the roles asked for. Outside dev auth, and in production whatever the auth
mode, the route does not exist (404 problem+json).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from countersign import __version__, cli
from countersign.app import create_app
from countersign.config import Environment, Settings
from tests.fixtures.client import bearer

from .jwks_server import JwksServer
from .test_http_auth import client_of, jwks, oidc_app
from .test_tokens import ISSUER, OTHER_ISSUER

PROBLEM = "application/problem+json"


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == "not_found"


class TestDevToken:
    async def test_mints_a_token_the_service_accepts_with_its_roles(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/v1/dev/token", json={"sub": "alice", "roles": ["AWE_ADMIN"]}
        )

        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"access_token", "expires_at"}
        expires = datetime.fromisoformat(body["expires_at"])
        assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert datetime.fromtimestamp(claims["exp"], UTC) == expires
        # An admin-only route: the role in the token is honoured.
        policies = await client.get(
            "/v1/policies", headers=bearer(body["access_token"])
        )
        assert policies.status_code == 200, policies.text

    async def test_without_roles_the_token_is_a_plain_user(
        self, client: httpx.AsyncClient
    ) -> None:
        body = (await client.post("/v1/dev/token", json={"sub": "bob"})).json()

        tasks = await client.get("/v1/tasks", headers=bearer(body["access_token"]))
        policies = await client.get(
            "/v1/policies", headers=bearer(body["access_token"])
        )

        assert tasks.status_code == 200
        assert policies.status_code == 403

    async def test_azp_makes_the_token_act_for_that_client(
        self, client: httpx.AsyncClient
    ) -> None:
        body = (
            await client.post("/v1/dev/token", json={"sub": "svc", "azp": "registry"})
        ).json()

        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert (claims["sub"], claims["azp"], claims["preferred_username"]) == (
            "svc",
            "registry",
            "svc",
        )

    async def test_is_the_token_countersign_token_prints(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        body = (
            await client.post(
                "/v1/dev/token",
                json={"sub": "carol", "roles": ["AWE_VIEWER"], "azp": "ui"},
            )
        ).json()
        monkeypatch.setenv("COUNTERSIGN_AUTH_MODE", "dev")
        monkeypatch.setenv("COUNTERSIGN_DATA_DIR", str(settings.data_dir))
        cli.main(["token", "--sub", "carol", "--role", "AWE_VIEWER", "--azp", "ui"])
        printed = capsys.readouterr().out.strip()

        def shape(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
            claims = jwt.decode(token, options={"verify_signature": False})
            for varying in ("iat", "exp", "jti"):
                claims.pop(varying)
            return jwt.get_unverified_header(token), claims

        assert shape(body["access_token"]) == shape(printed)
        # Signed by the same key: the CLI's token works against this service.
        accepted = await client.get("/v1/admin/deliveries", headers=bearer(printed))
        assert accepted.status_code == 200

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"sub": ""},
            {"sub": "a" * 201},
            {"sub": "two words"},
            {"sub": "tab\there"},
            {"sub": 42},
            {"sub": "alice", "roles": "AWE_ADMIN"},
            {"sub": "alice", "roles": [""]},
            {"sub": "alice", "roles": ["r" * 101]},
            {"sub": "alice", "roles": [f"r{i}" for i in range(21)]},
            {"sub": "alice", "azp": ""},
            {"sub": "alice", "exp": 1},
        ],
    )
    async def test_nonsense_is_422(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        response = await client.post("/v1/dev/token", json=body)

        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["code"] == "validation_failed"

    async def test_is_404_in_production_even_in_dev_auth(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        # model_copy skips validation: whatever config refuses at start-up, the route checks too.
        production = settings.model_copy(update={"env": Environment.production})
        app = create_app(production, in_process_worker=False)
        async with app.router.lifespan_context(app), client_of(app) as client:
            response = await client.post("/v1/dev/token", json={"sub": "alice"})
            config = (await client.get("/v1/config")).json()

        assert_not_found(response)
        assert config["dev_tokens"] is False


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer(jwks()) as server:
        yield server


@pytest.fixture(scope="module")
async def oidc_service(
    jwks_server: JwksServer, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    async with oidc_app(
        jwks_server.url,
        database_url,
        tmp_path_factory.mktemp("oidc-ui"),
        oidc_issuers=[ISSUER, OTHER_ISSUER],
        ui_client_id="countersign-admin-ui",
    ) as app:
        yield app


class TestOidcMode:
    async def test_dev_token_is_404(
        self, oidc_service: FastAPI, clean_database: None
    ) -> None:
        async with client_of(oidc_service) as client:
            response = await client.post(
                "/v1/dev/token", json={"sub": "alice", "roles": ["AWE_ADMIN"]}
            )

        assert_not_found(response)

    async def test_config_names_the_ui_client(
        self, oidc_service: FastAPI, clean_database: None
    ) -> None:
        async with client_of(oidc_service) as client:
            body = (await client.get("/v1/config")).json()

        assert body["auth_mode"] == "oidc"
        assert body["oidc"] == {
            "issuer": ISSUER,
            "client_id": "countersign-admin-ui",
            "scopes": "openid profile email",
        }
        assert body["dev_tokens"] is False


class TestConfigForTheUi:
    async def test_dev_mode_carries_what_the_ui_reads(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        body = (await client.get("/v1/config")).json()

        assert body["auth_mode"] == "dev"
        assert body["oidc"] is None
        assert body["dev_tokens"] is True
        assert (body["role_admin"], body["role_viewer"]) == ("AWE_ADMIN", "AWE_VIEWER")
        assert body["service_version"] == __version__
        assert body["test_hooks"] is False
        assert body["env"] == "testing"

    async def test_renamed_roles_and_test_hooks_are_shown(
        self, settings: Settings
    ) -> None:
        custom = settings.model_copy(
            update={"role_admin": "ops", "role_viewer": "audit", "test_hooks": True}
        )
        app = create_app(custom, in_process_worker=False)
        async with app.router.lifespan_context(app), client_of(app) as client:
            body = (await client.get("/v1/config")).json()

        assert (body["role_admin"], body["role_viewer"], body["test_hooks"]) == (
            "ops",
            "audit",
            True,
        )

    async def test_the_openapi_document_declares_the_ui_fields(
        self, client: httpx.AsyncClient
    ) -> None:
        schema = (await client.get("/v1/openapi.json")).json()

        config = schema["components"]["schemas"]["ConfigOut"]
        assert {"auth_mode", "oidc", "dev_tokens", "service_version"} <= set(
            config["required"]
        )
        assert "/v1/dev/token" in schema["paths"]
