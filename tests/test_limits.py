"""Size limits (issue 10, item 8): 413 `payload_too_large` (AWE-010) that changes nothing.

- A body over COUNTERSIGN_MAX_BODY_BYTES (1 MiB) is refused while it is read: with a
  `Content-Length` before the app sees it, without one (chunked) as soon as the count passes
  the limit, never by reading the whole body first.
- `context` and `metadata` over COUNTERSIGN_MAX_CONTEXT_BYTES (64 KiB of compact JSON) each are
  refused on create and on resubmit.
- `attachments_ref`, comments and reasons, and policy stages and rules have bounds (422).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.models import ApprovalRequest, AuditEntry, Policy
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import CALLER_CLIENT, CALLER_ID, publish, stage, task_for

Headers = dict[str, str]
KEY = "limits.flow"
MAX_BODY = 1024 * 1024
MAX_CONTEXT = 65536


@pytest.fixture
def caller(token: TokenFactory) -> Headers:
    return bearer(token(CALLER_ID, azp=CALLER_CLIENT))


@pytest.fixture
async def policy(client: httpx.AsyncClient, admin_headers: Headers) -> None:
    await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)


def request_body(**fields: Any) -> dict[str, Any]:
    return {"policy_key": KEY, "artifact_type": KEY, "artifact_id": "a-1", **fields}


def context_of_size(size: int) -> dict[str, str]:
    """A context whose compact JSON is exactly `size` bytes: `{"pad":"xxx..."}`."""
    return {"pad": "x" * (size - len('{"pad":""}'))}


def assert_too_large(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == "payload_too_large"
    assert problem["errorCode"] == "AWE-010"
    assert problem["type"] == "https://countersign.dev/problems/payload_too_large"
    return problem


async def stored_requests(session: AsyncSession) -> int:
    count = await session.scalar(select(func.count()).select_from(ApprovalRequest))
    await session.commit()
    return int(count or 0)


class TestBodyLimit:
    async def test_a_declared_length_over_the_limit(
        self,
        client: httpx.AsyncClient,
        caller: Headers,
        session: AsyncSession,
        policy: None,
    ) -> None:
        body = request_body(context={"pad": "x" * MAX_BODY})

        response = await client.post("/v1/requests", json=body, headers=caller)

        assert_too_large(response)
        assert response.headers["x-request-id"]
        assert await stored_requests(session) == 0

    async def test_a_chunked_body_is_cut_off_at_the_limit_not_read_whole(
        self,
        client: httpx.AsyncClient,
        caller: Headers,
        session: AsyncSession,
        policy: None,
    ) -> None:
        chunk = b"x" * 65536
        sent = 0

        async def endless_context() -> AsyncIterator[bytes]:
            nonlocal sent
            yield (
                b'{"policy_key": "%s", "artifact_type": "%s", "artifact_id": "a-1", '
                % (
                    KEY.encode(),
                    KEY.encode(),
                )
            )
            yield b'"context": {"pad": "'
            for _ in range(10 * MAX_BODY // len(chunk)):  # 10 MiB if nobody stops it
                sent += len(chunk)
                yield chunk
            yield b'"}}'

        response = await client.post(
            "/v1/requests",
            content=endless_context(),
            headers={**caller, "Content-Type": "application/json"},
        )

        assert "content-length" not in response.request.headers
        assert_too_large(response)
        assert sent <= MAX_BODY + len(chunk)
        assert await stored_requests(session) == 0

    async def test_a_body_at_the_limit_is_read(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        # Just under 1 MiB reaches validation (and fails there, on its own merits).
        body = b'{"pad": "' + b"x" * (MAX_BODY - 20) + b'"}'
        assert len(body) <= MAX_BODY

        response = await client.post(
            "/v1/policies",
            content=body,
            headers={**admin_headers, "Content-Type": "application/json"},
        )

        assert response.status_code == 422, response.text

    async def test_every_route_with_a_body_is_bounded(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        body = {"policy_key": KEY, "name": "x" * MAX_BODY, "artifact_type": KEY}

        response = await client.post("/v1/policies", json=body, headers=admin_headers)

        assert_too_large(response)
        assert await session.scalar(select(func.count()).select_from(Policy)) == 0
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0

    async def test_the_document_declares_413_on_routes_with_a_body(
        self, client: httpx.AsyncClient
    ) -> None:
        document = (await client.get("/v1/openapi.json")).json()

        create = document["paths"]["/v1/requests"]["post"]["responses"]
        listing = document["paths"]["/v1/requests"]["get"]["responses"]
        assert "413" in create
        assert "413" not in listing
        assert "503" in listing


class TestContextLimit:
    @pytest.mark.parametrize("member", ["context", "metadata"])
    async def test_over_the_limit_on_create(
        self,
        client: httpx.AsyncClient,
        caller: Headers,
        session: AsyncSession,
        policy: None,
        member: str,
    ) -> None:
        body = request_body(**{member: context_of_size(MAX_CONTEXT + 1)})

        response = await client.post("/v1/requests", json=body, headers=caller)

        problem = assert_too_large(response)
        assert problem["errors"][0]["pointer"] == f"/{member}"
        assert await stored_requests(session) == 0

    async def test_at_the_limit_on_create(
        self, client: httpx.AsyncClient, caller: Headers, policy: None
    ) -> None:
        body = request_body(
            context=context_of_size(MAX_CONTEXT),
            metadata=context_of_size(MAX_CONTEXT),
        )

        response = await client.post("/v1/requests", json=body, headers=caller)

        assert response.status_code == 201, response.text

    async def test_multibyte_characters_count_as_their_utf8_bytes(
        self, client: httpx.AsyncClient, caller: Headers, policy: None
    ) -> None:
        # 30 000 characters, 90 000 bytes: over the limit although under it in characters.
        body = request_body(context={"pad": "\u20ac" * 30000})

        response = await client.post("/v1/requests", json=body, headers=caller)

        assert_too_large(response)

    async def test_over_the_limit_on_resubmit_changes_nothing(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        caller: Headers,
        token: TokenFactory,
        policy: None,
    ) -> None:
        created = await client.post(
            "/v1/requests", json=request_body(context={"v": 1}), headers=caller
        )
        assert created.status_code == 201, created.text
        request_id = created.json()["request_id"]
        task_id = task_for(created.json()["tasks"], "alice")
        sent_back = await client.post(
            f"/v1/tasks/{task_id}/decision",
            json={"action": "request_changes", "comment": "more"},
            headers=bearer(token("alice")),
        )
        assert sent_back.status_code == 201, sent_back.text

        response = await client.post(
            f"/v1/requests/{request_id}/resubmit",
            json={"context": context_of_size(MAX_CONTEXT + 1)},
            headers=caller,
        )

        assert_too_large(response)
        after = (await client.get(f"/v1/requests/{request_id}", headers=caller)).json()
        assert after["status"] == "changes_requested"
        assert after["context"] == {"v": 1}


class TestOtherBounds:
    async def test_attachments_ref_over_8_kib(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        response = await client.post(
            "/v1/tasks/6d0f7c1e-0000-4000-8000-000000000000/decision",
            json={"action": "approve", "attachments_ref": {"doc": "x" * 8200}},
            headers=bearer(token("alice")),
        )

        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_failed"
        assert response.json()["errors"][0]["pointer"] == "/attachments_ref"

    @pytest.mark.parametrize(
        ("path", "body", "pointer"),
        [
            (
                "/v1/tasks/6d0f7c1e-0000-4000-8000-000000000000/decision",
                {"action": "approve", "comment": "x" * 4001},
                "/comment",
            ),
            (
                "/v1/requests/6d0f7c1e-0000-4000-8000-000000000000/cancel",
                {"reason": "x" * 2001},
                "/reason",
            ),
            (
                "/v1/requests/6d0f7c1e-0000-4000-8000-000000000000/resubmit",
                {"comment": "x" * 4001},
                "/comment",
            ),
        ],
    )
    async def test_comments_and_reasons(
        self,
        client: httpx.AsyncClient,
        token: TokenFactory,
        path: str,
        body: dict[str, Any],
        pointer: str,
    ) -> None:
        response = await client.post(path, json=body, headers=bearer(token("alice")))

        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["pointer"] == pointer

    async def test_a_stage_with_too_many_rules(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        body = {
            "policy_key": KEY,
            "name": KEY,
            "artifact_type": KEY,
            "stages": [stage(1, [f"user-{i}" for i in range(101)])],
        }

        response = await client.post("/v1/policies", json=body, headers=admin_headers)

        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["pointer"] == "/stages/0/rules"
