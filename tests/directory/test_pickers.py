"""The directory pickers over HTTP: `/v1/admin/directory/...` and AWE's `/v1/awe/admin/keycloak/...`.

The service here is configured with `COUNTERSIGN_KEYCLOAK_*` pointing at the loopback Keycloak,
exactly as a deployment would be; the shared test app (directory file) covers the embedded mode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from countersign.app import create_app
from countersign.directory.cache import CachedDirectory
from countersign.directory.keycloak import KeycloakDirectory
from tests.fixtures.client import bearer

from .keycloak_server import ENABLED_USERS, KeycloakServer, Outage, seeded_realm

PICKERS = ["users", "roles", "groups", "clients"]
Headers = dict[str, str]


@pytest.fixture(scope="module")
def keycloak() -> Iterator[KeycloakServer]:
    with KeycloakServer(seeded_realm()) as server:
        yield server


@pytest.fixture(scope="module")
async def keycloak_app(
    keycloak: KeycloakServer,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[FastAPI]:
    settings = keycloak.settings(
        database_url=database_url,
        auth_mode="dev",
        data_dir=tmp_path_factory.mktemp("keycloak-app"),
    )
    app = create_app(settings, in_process_worker=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(
    keycloak_app: FastAPI, keycloak: KeycloakServer
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=keycloak_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://countersign.test"
    ) as client:
        yield client
    keycloak.come_back()  # whatever the test did to it


def headers_for(app: FastAPI, sub: str, roles: list[str] | None = None) -> Headers:
    token: str = app.state.verifier.dev_issuer.mint(sub, roles=roles or [])
    return bearer(token)


@pytest.fixture
def admin(keycloak_app: FastAPI) -> Headers:
    return headers_for(keycloak_app, "admin-ann", ["AWE_ADMIN"])


@pytest.fixture
def viewer(keycloak_app: FastAPI) -> Headers:
    return headers_for(keycloak_app, "viewer-vic", ["AWE_VIEWER"])


@pytest.fixture
def plain_user(keycloak_app: FastAPI) -> Headers:
    return headers_for(keycloak_app, "plain-pat")


def body(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code
    return problem


async def test_the_service_reads_keycloak_through_the_rule_cache(
    keycloak_app: FastAPI,
) -> None:
    directory = keycloak_app.state.resolver.directory
    assert isinstance(directory, CachedDirectory)
    assert isinstance(directory.inner, KeycloakDirectory)


async def test_the_users_picker_lists_enabled_users_by_username(
    api: httpx.AsyncClient, admin: Headers
) -> None:
    found = body(await api.get("/v1/admin/directory/users?q=ali", headers=admin))
    assert found == [
        {
            "user_id": "alice",
            "username": "alice",
            "email": "alice@example.org",
            "name": "Alice Archer",
        }
    ]
    everyone = body(await api.get("/v1/admin/directory/users", headers=admin))
    assert [u["user_id"] for u in everyone] == ENABLED_USERS


async def test_the_roles_picker_lists_realm_roles_or_a_clients_roles(
    api: httpx.AsyncClient, admin: Headers
) -> None:
    realm = body(await api.get("/v1/admin/directory/roles?q=district", headers=admin))
    assert realm == [
        {
            "name": "district_officer",
            "description": "Approves changes in a district",
            "client": None,
        },
        {
            "name": "district_reader",
            "description": "Reads district records",
            "client": None,
        },
    ]
    client = body(
        await api.get("/v1/admin/directory/roles?client=registry", headers=admin)
    )
    assert client == [
        {
            "name": "checker",
            "description": "Checks registry changes",
            "client": "registry",
        },
        {"name": "lead", "description": None, "client": "registry"},
    ]


async def test_the_groups_picker_lists_paths(
    api: httpx.AsyncClient, admin: Headers
) -> None:
    found = body(await api.get("/v1/admin/directory/groups?q=north", headers=admin))
    assert found == [{"path": "/districts/D1/north", "name": "north"}]
    every = body(await api.get("/v1/admin/directory/groups", headers=admin))
    assert {"path": "/districts", "name": "districts"} in every
    assert len(every) == 7


async def test_the_clients_picker_lists_client_ids(
    api: httpx.AsyncClient, admin: Headers
) -> None:
    clients = body(await api.get("/v1/admin/directory/clients", headers=admin))
    assert {"client_id": "registry"} in clients
    assert {"client_id": "payments"} in clients


@pytest.mark.parametrize("picker", PICKERS)
async def test_a_viewer_may_use_the_pickers(
    api: httpx.AsyncClient, viewer: Headers, picker: str
) -> None:
    response = await api.get(f"/v1/admin/directory/{picker}", headers=viewer)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("picker", PICKERS)
async def test_a_plain_user_may_not_use_the_pickers(
    api: httpx.AsyncClient, plain_user: Headers, picker: str
) -> None:
    response = await api.get(f"/v1/admin/directory/{picker}", headers=plain_user)
    assert_problem(response, 403, "forbidden")
    aliased = await api.get(f"/v1/awe/admin/keycloak/{picker}", headers=plain_user)
    assert_problem(aliased, 403, "forbidden")


async def test_the_pickers_need_a_token(api: httpx.AsyncClient) -> None:
    assert_problem(await api.get("/v1/admin/directory/users"), 401, "unauthenticated")


@pytest.mark.parametrize("picker", PICKERS)
async def test_awe_keycloak_paths_answer_like_the_pickers(
    api: httpx.AsyncClient, admin: Headers, picker: str
) -> None:
    ours = body(await api.get(f"/v1/admin/directory/{picker}", headers=admin))
    awe = body(await api.get(f"/v1/awe/admin/keycloak/{picker}", headers=admin))
    assert awe == ours


async def test_only_the_contract_paths_are_in_the_openapi_document(
    api: httpx.AsyncClient,
) -> None:
    paths = body(await api.get("/v1/openapi.json"))["paths"]
    assert "/v1/admin/directory/users" in paths
    assert "503" in paths["/v1/admin/directory/users"]["get"]["responses"]
    assert not [p for p in paths if "keycloak" in p]


@pytest.mark.parametrize("how", ["refuse", "503"])
async def test_pickers_answer_503_directory_unavailable_while_keycloak_is_down(
    api: httpx.AsyncClient, admin: Headers, keycloak: KeycloakServer, how: Outage
) -> None:
    keycloak.go_down(how)
    for picker in PICKERS:
        for path in (
            f"/v1/admin/directory/{picker}",
            f"/v1/awe/admin/keycloak/{picker}",
        ):
            problem = assert_problem(
                await api.get(path, headers=admin), 503, "directory_unavailable"
            )
            assert problem["errorCode"] == "AWE-011"
            assert "Keycloak" in problem["detail"]
    keycloak.come_back()
    assert body(await api.get("/v1/admin/directory/users?q=bob", headers=admin))
