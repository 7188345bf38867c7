"""Error rendering (API.md, "Conventions" and "Error codes"): every 4xx/5xx is RFC 9457 problem+json.

Covers the framework's own errors (unknown path, wrong method, bad query, missing token), the path
and body conventions (no trailing-slash redirects, GET with a JSON content type, POST without a
body), and unexpected failures: a 500 `internal_error` with a `trace_id` and no partial writes,
including a failure of the commit itself, which must never reach the caller as a success.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.app import create_app
from countersign.config import Settings
from countersign.db import SessionDep
from countersign.models import Policy
from tests.policies.factories import (
    DEFAULT_KEY,
    POLICIES,
    Body,
    activate,
    create_policy,
    expect_problem,
    pointers,
)

Headers = dict[str, str]

PROBLEM_BASE = "https://countersign.dev/problems/"
PROBLEM_MEMBERS = {
    "type",
    "title",
    "status",
    "detail",
    "instance",
    "code",
    "errorCode",
    "message",
    "errors",
}


def assert_problem_shape(
    response: httpx.Response, status: int, code: str, error_code: str
) -> Body:
    """The contract's problem body, member by member, for a non-validation problem."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: Body = response.json()
    assert PROBLEM_MEMBERS <= set(problem)
    assert set(problem) - PROBLEM_MEMBERS <= {"trace_id"}
    assert problem["type"] == PROBLEM_BASE + code
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["errorCode"] == error_code
    assert isinstance(problem["title"], str)
    assert problem["title"]
    assert isinstance(problem["detail"], str)
    assert problem["detail"]
    assert problem["message"] == problem["detail"]
    assert problem["instance"] == response.request.url.path
    return problem


def assert_single_awe_entry(problem: Body) -> None:
    """Non-validation problems carry one AWE-style entry: `{"errorCode", "message"}`."""
    assert problem["errors"] == [
        {"errorCode": problem["errorCode"], "message": problem["message"]}
    ]


class TestFrameworkErrors:
    async def test_an_unknown_path_is_a_404_problem(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get("/v1/no-such-thing", headers=admin_headers)

        problem = assert_problem_shape(response, 404, "not_found", "AWE-004")
        assert_single_awe_entry(problem)

    async def test_an_unknown_path_is_404_even_without_a_token(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/v1/no-such-thing")

        assert_problem_shape(response, 404, "not_found", "AWE-004")

    async def test_a_wrong_method_on_a_known_path_is_a_405_problem(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.delete(POLICIES, headers=admin_headers)

        problem = assert_problem_shape(response, 405, "method_not_allowed", "AWE-010")
        assert_single_awe_entry(problem)
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert allowed == {"GET", "POST"}

    async def test_get_on_a_post_only_action_is_405(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get(
            f"{POLICIES}/{DEFAULT_KEY}/versions/1/activate", headers=admin_headers
        )

        assert_problem_shape(response, 405, "method_not_allowed", "AWE-010")

    @pytest.mark.parametrize("limit", ["0", "501", "-1", "ten"])
    async def test_a_bad_query_parameter_is_a_422_validation_problem(
        self, client: httpx.AsyncClient, admin_headers: Headers, limit: str
    ) -> None:
        response = await client.get(
            POLICIES, params={"limit": limit}, headers=admin_headers
        )

        problem = assert_problem_shape(response, 422, "validation_failed", "AWE-010")
        [entry] = problem["errors"]
        assert entry["pointer"] == "/limit"
        assert entry["errorCode"] == "AWE-010"
        assert entry["detail"]
        assert entry["message"] == entry["detail"]

    @pytest.mark.parametrize("limit", [1, 500])
    async def test_limit_accepts_the_bounds_of_its_range(
        self, client: httpx.AsyncClient, admin_headers: Headers, limit: int
    ) -> None:
        response = await client.get(
            POLICIES, params={"limit": limit}, headers=admin_headers
        )

        assert response.status_code == 200

    async def test_a_validation_problem_lists_every_field_with_a_pointer(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.post(
            POLICIES,
            json={"name": 5, "stages": [{"stage_order": 1}]},
            headers=admin_headers,
        )

        problem = assert_problem_shape(response, 422, "validation_failed", "AWE-010")
        found = pointers(problem)
        for pointer in (
            "/policy_key",
            "/name",
            "/artifact_type",
            "/stages/0/name",
            "/stages/0/mode",
        ):
            assert pointer in found
        for entry in problem["errors"]:
            assert set(entry) == {"pointer", "detail", "errorCode", "message"}

    async def test_a_missing_token_is_a_401_problem_with_a_bearer_challenge(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get(POLICIES)

        problem = assert_problem_shape(response, 401, "unauthenticated", "AWE-008")
        assert_single_awe_entry(problem)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    async def test_a_non_bearer_authorization_is_401(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get(
            POLICIES, headers={"Authorization": "Basic YWRtaW46YWRtaW4="}
        )

        assert_problem_shape(response, 401, "unauthenticated", "AWE-008")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    async def test_an_expired_token_is_401(
        self, client: httpx.AsyncClient, token: Callable[..., str]
    ) -> None:
        expired = token("admin-ann", roles=["AWE_ADMIN"], ttl_seconds=-3600)

        response = await client.get(
            POLICIES, headers={"Authorization": f"Bearer {expired}"}
        )

        assert_problem_shape(response, 401, "unauthenticated", "AWE-008")

    async def test_a_missing_role_is_a_403_problem(
        self, client: httpx.AsyncClient, user_headers: Headers
    ) -> None:
        response = await client.get(POLICIES, headers=user_headers)

        problem = assert_problem_shape(response, 403, "forbidden", "AWE-008")
        assert_single_awe_entry(problem)
        assert "WWW-Authenticate" not in response.headers

    async def test_an_application_error_is_a_problem_too(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get(
            f"{POLICIES}/unknown/versions/1", headers=admin_headers
        )

        problem = assert_problem_shape(response, 404, "policy_not_found", "AWE-001")
        assert_single_awe_entry(problem)

    async def test_the_trace_id_is_the_request_id(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get(
            f"{POLICIES}/unknown/versions/1",
            headers={**admin_headers, "X-Request-Id": "req-123"},
        )

        assert response.json()["trace_id"] == "req-123"
        assert response.headers["X-Request-Id"] == "req-123"


class TestPathAndBodyConventions:
    @pytest.mark.parametrize(
        "path",
        [
            f"{POLICIES}/",
            f"{POLICIES}/{DEFAULT_KEY}/versions/",
            f"{POLICIES}/{DEFAULT_KEY}/versions/1/",
        ],
    )
    async def test_a_trailing_slash_is_404_not_a_redirect(
        self, client: httpx.AsyncClient, admin_headers: Headers, path: str
    ) -> None:
        await create_policy(client, admin_headers)

        response = await client.get(path, headers=admin_headers)

        assert_problem_shape(response, 404, "not_found", "AWE-004")
        assert "Location" not in response.headers

    async def test_a_get_with_a_json_content_type_is_accepted(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers)

        response = await client.get(
            f"{POLICIES}/{DEFAULT_KEY}/versions/1",
            headers={**admin_headers, "Content-Type": "application/json"},
        )

        assert response.status_code == 200
        assert response.json()["policy_key"] == DEFAULT_KEY

    @pytest.mark.parametrize(
        "extra_headers",
        [{}, {"Content-Type": "application/json"}],
        ids=["no-content-type", "json-content-type"],
    )
    async def test_activate_accepts_an_empty_body(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        extra_headers: Headers,
    ) -> None:
        await create_policy(client, admin_headers)

        response = await client.post(
            f"{POLICIES}/{DEFAULT_KEY}/versions/1/activate",
            content=b"",
            headers={**admin_headers, **extra_headers},
        )

        assert response.status_code == 200, response.text
        assert response.json()["status"] == "active"

    async def test_deactivate_accepts_an_empty_json_body(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 1)

        response = await client.post(
            f"{POLICIES}/{DEFAULT_KEY}/versions/1/deactivate",
            content=b"",
            headers={**admin_headers, "Content-Type": "application/json"},
        )

        assert response.status_code == 200, response.text

    async def test_simulate_accepts_an_empty_json_body(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers)

        response = await client.post(
            f"{POLICIES}/{DEFAULT_KEY}/versions/1/simulate",
            content=b"",
            headers={**admin_headers, "Content-Type": "application/json"},
        )

        assert response.status_code == 200, response.text


# --- unexpected failures -----------------------------------------------------------------------

FAILING_KEY = "written.before.failure"


def _policy_row(**overrides: Any) -> Policy:
    values: dict[str, Any] = {
        "policy_key": FAILING_KEY,
        "version": 1,
        "status": "draft",
        "name": "Must not survive",
        "artifact_type": "test",
        "created_by": "test",
    }
    values.update(overrides)
    return Policy(**values)


async def _raise_after_a_write(session: SessionDep) -> Body:
    session.add(_policy_row())
    # The row is now in the transaction: only the rollback can remove it.
    await session.flush()
    raise RuntimeError("boom: internal detail that must not leak")


async def _commit_violates_unique_key(session: SessionDep) -> Body:
    # Both rows wait in the session until the commit, which then fails on (policy_key, version).
    session.add_all([_policy_row(), _policy_row(name="Duplicate")])
    return {"ok": True}


async def _commit_violates_not_null(session: SessionDep) -> Body:
    session.add(_policy_row(name=None))
    return {"ok": True}


@pytest.fixture(scope="module")
async def failing_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """A fresh app with test-only routes that fail inside the request's transaction."""
    app = create_app(settings)
    app.router.add_api_route("/v1/_test/raise", _raise_after_a_write, methods=["POST"])
    app.router.add_api_route(
        "/v1/_test/commit-unique",
        _commit_violates_unique_key,
        methods=["POST"],
        status_code=201,
    )
    app.router.add_api_route(
        "/v1/_test/commit-not-null",
        _commit_violates_not_null,
        methods=["POST"],
        status_code=201,
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def failing_client(
    failing_app: FastAPI, clean_database: None
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=failing_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://countersign.test"
    ) as client:
        yield client


async def _stored_policies(session: AsyncSession) -> int:
    result = await session.execute(select(func.count()).select_from(Policy))
    return int(result.scalar_one())


class TestInternalError:
    async def test_an_unexpected_exception_is_a_500_problem_with_a_trace_id(
        self, failing_client: httpx.AsyncClient
    ) -> None:
        response = await failing_client.post("/v1/_test/raise")

        problem = assert_problem_shape(response, 500, "internal_error", "AWE-000")
        assert_single_awe_entry(problem)
        assert isinstance(problem["trace_id"], str)
        assert problem["trace_id"]
        assert problem["trace_id"] in problem["detail"]
        assert "internal detail" not in response.text
        assert "RuntimeError" not in response.text

    async def test_the_trace_id_of_a_500_is_the_request_id(
        self, failing_client: httpx.AsyncClient
    ) -> None:
        response = await failing_client.post(
            "/v1/_test/raise", headers={"X-Request-Id": "trace-500"}
        )

        assert response.status_code == 500
        assert response.json()["trace_id"] == "trace-500"

    async def test_leaves_no_partial_write(
        self, failing_client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        response = await failing_client.post("/v1/_test/raise")

        assert response.status_code == 500
        assert await _stored_policies(session) == 0

    @pytest.mark.parametrize(
        "path", ["/v1/_test/commit-unique", "/v1/_test/commit-not-null"]
    )
    async def test_a_failing_commit_is_a_500_never_a_success(
        self, failing_client: httpx.AsyncClient, session: AsyncSession, path: str
    ) -> None:
        response = await failing_client.post(path)

        assert_problem_shape(response, 500, "internal_error", "AWE-000")
        assert await _stored_policies(session) == 0

    async def test_the_service_keeps_working_after_a_failure(
        self,
        failing_client: httpx.AsyncClient,
        admin_headers: Headers,
    ) -> None:
        for _ in range(3):
            assert (await failing_client.post("/v1/_test/raise")).status_code == 500

        created = await create_policy(failing_client, admin_headers)

        assert created["version"] == 1
        expect_problem(
            await failing_client.post(
                POLICIES, json={**created, "name": "again"}, headers=admin_headers
            ),
            "policy_exists",
        )
