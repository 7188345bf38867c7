"""COUNTERSIGN_CALLER_CLIENTS: only listed client ids act as a caller (API.md, "Identity").

The hole it closes: a public client (a browser app, the admin UI) lets any user of the realm
obtain a token whose `azp` is that client. Without the list, every such user would act as the
client: see and cancel all of its requests, sign with its webhook secrets, replay its idempotency
keys. With the list set, a token whose `azp` is not in it is only its own principal.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from countersign.app import create_app
from countersign.config import Settings
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import Flow, problem_code, stage
from tests.fixtures.worker import asgi_client

Headers = dict[str, str]


@pytest.fixture(scope="module")
async def listed_app(settings: Settings, app: FastAPI) -> AsyncIterator[FastAPI]:
    """The API with COUNTERSIGN_CALLER_CLIENTS=registry (`app`: the same dev signing key)."""
    listed = create_app(
        settings.model_copy(update={"caller_clients": ["registry"]}),
        in_process_worker=False,
    )
    async with listed.router.lifespan_context(listed):
        yield listed


@pytest.fixture
async def listed(listed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(listed_app) as client:
        yield client


@pytest.fixture
async def flow(
    listed: httpx.AsyncClient, admin_headers: Headers, token: TokenFactory
) -> Flow:
    flow = Flow(listed, admin_headers, token)
    key = f"cc.{uuid.uuid4().hex[:8]}"
    await flow.publish([stage(1, ["alice"])], key=key)
    flow.key = key  # type: ignore[attr-defined]
    return flow


async def create(flow: Flow, headers: Headers, **fields: object) -> httpx.Response:
    return await flow.create(
        headers=headers,
        key=flow.key,  # type: ignore[attr-defined]
        artifact_id=f"a-{uuid.uuid4().hex[:8]}",
        **fields,
    )


async def test_a_listed_client_still_acts_as_its_caller(
    flow: Flow, token: TokenFactory
) -> None:
    created = await create(flow, bearer(token("registry-svc", azp="registry")))
    assert created.status_code == 201, created.text
    request_id = created.json()["request_id"]

    clerk = bearer(token("registry-clerk", azp="registry"))
    seen = await flow.client.get(f"/v1/requests/{request_id}", headers=clerk)

    assert seen.status_code == 200
    assert seen.json()["source_client"] == "registry"


async def test_an_unlisted_public_client_is_only_its_own_principal(
    flow: Flow, token: TokenFactory
) -> None:
    # frank and mallory both signed in through the public `portal` client.
    frank = bearer(token("frank", azp="portal"))
    mallory = bearer(token("mallory", azp="portal"))
    created = await create(flow, frank)
    assert created.status_code == 201, created.text
    request_id = created.json()["request_id"]
    assert (await flow.request(request_id))["source_client"] == "frank", (
        "the caller is frank himself"
    )

    seen = await flow.client.get(f"/v1/requests/{request_id}", headers=mallory)
    cancelled = await flow.cancel(request_id, headers=mallory)
    listed = await flow.client.get("/v1/requests", headers=mallory)

    assert seen.status_code == 404
    assert problem_code(seen) == "request_not_found"
    assert cancelled.status_code == 404
    assert request_id not in {r["id"] for r in listed.json()}
    assert (await flow.request(request_id))["status"] == "in_review"


async def test_idempotency_keys_of_an_unlisted_client_are_per_principal(
    flow: Flow, token: TokenFactory
) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    artifact = f"a-{uuid.uuid4().hex[:8]}"
    frank = {**bearer(token("frank", azp="portal")), **key}
    mallory = {**bearer(token("mallory", azp="portal")), **key}
    body = {"artifact_id": artifact, "key": flow.key}  # type: ignore[attr-defined]

    first = await flow.create(headers=frank, **body)
    replayed = await flow.create(headers=mallory, **body)

    assert first.status_code == 201, first.text
    # Not frank's replay: mallory's own key, so her own request (another caller, same artifact).
    assert replayed.status_code == 201, replayed.text
    assert replayed.json()["request_id"] != first.json()["request_id"]


async def test_the_secrets_of_a_public_client_are_not_its_users(
    flow: Flow, token: TokenFactory
) -> None:
    made = await flow.client.post(
        "/v1/admin/callers/portal/secrets", json={}, headers=flow.admin
    )
    assert made.status_code == 201, made.text

    created = await create(
        flow,
        bearer(token("mallory", azp="portal")),
        callback_url="http://127.0.0.1:9/hook",
        callback_secret_id=made.json()["id"],
    )

    assert created.status_code == 422
    assert problem_code(created) == "callback_secret_invalid"
