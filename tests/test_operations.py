"""Operations routes ("Operations" in API.md): health, liveness, version, config, metrics, OpenAPI."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from countersign import __version__
from countersign.app import create_app
from countersign.config import DEV_SECRET_KEY, Settings

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
PROBLEM_MEDIA_TYPE = "application/problem+json"
# Nothing listens on port 1: connecting is refused at once.
UNREACHABLE_DATABASE_URL = "postgresql+asyncpg://root@127.0.0.1:1/countersign"


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://countersign.test")


def assert_problem(
    response: httpx.Response, status: int, code: str, awe_code: str
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://countersign.dev/problems/{code}"
    assert body["status"] == status
    assert body["code"] == code
    assert body["errorCode"] == awe_code
    assert body["message"] == body["detail"]
    assert body["errors"] == [{"errorCode": awe_code, "message": body["detail"]}]
    return body


# ---------------------------------------------------------------------------------------------
# Health


@pytest.mark.parametrize("path", ["/v1/health", "/v1/awe/health"])
async def test_health_reports_up_with_the_documented_shape(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"id", "version", "responsetime", "response", "errors"}
    uuid.UUID(body["id"])
    assert body["version"] == __version__
    assert RFC3339_UTC.match(body["responsetime"]), body["responsetime"]
    assert body["response"] == {
        "status": "UP",
        "checks": {"database": "UP", "redis": "DISABLED"},
    }
    assert body["errors"] == []


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v1/health", headers={"Authorization": "Bearer not-a-token"}
    )

    assert response.status_code == 200


async def test_liveness_answers_while_the_process_runs(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "UP"}


@pytest.fixture
async def unreachable_database_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = Settings(
        database_url=UNREACHABLE_DATABASE_URL,
        auth_mode="dev",
        data_dir=tmp_path / "data",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_health_with_the_database_unreachable_is_503_dependency_unavailable(
    unreachable_database_app: FastAPI,
) -> None:
    async with _client(unreachable_database_app) as client:
        response = await client.get("/v1/health")
        live = await client.get("/v1/health/live")

    body = assert_problem(response, 503, "dependency_unavailable", "AWE-006")
    assert "database" in body["detail"]
    assert body["instance"] == "/v1/health"
    assert body["response"]["checks"]["database"] == "DOWN"
    assert body["response"]["checks"]["redis"] == "DISABLED"
    # The process itself is fine: liveness must not make an orchestrator restart it.
    assert live.status_code == 200


async def test_health_before_startup_completes_is_503_not_ready(
    tmp_path: Path,
) -> None:
    # No lifespan entered: the app has not finished starting.
    app = create_app(Settings(auth_mode="dev", data_dir=tmp_path / "data"))

    async with _client(app) as client:
        response = await client.get("/v1/health")

    assert_problem(response, 503, "not_ready", "AWE-005")


# ---------------------------------------------------------------------------------------------
# Version and configuration


async def test_version_names_the_running_build(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/version")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"service_version", "build_time", "git_commit"}
    assert body["service_version"] == __version__


async def test_version_reports_the_build_metadata_of_the_image(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUNTERSIGN_BUILD_TIME", "2026-11-22T10:00:00Z")
    monkeypatch.setenv("COUNTERSIGN_GIT_COMMIT", "0123abc")

    body = (await client.get("/v1/version")).json()

    assert body["build_time"] == "2026-11-22T10:00:00Z"
    assert body["git_commit"] == "0123abc"


async def test_config_shows_the_effective_configuration_without_secrets(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.get("/v1/config")

    assert response.status_code == 200
    body = response.json()
    assert "secret_key" not in body
    assert "keycloak_client_secret" not in body
    assert DEV_SECRET_KEY not in response.text
    assert settings.secret_key.get_secret_value() not in response.text
    assert body["auth_mode"] == "dev"
    assert body["role_admin"] == settings.role_admin
    assert body["role_viewer"] == settings.role_viewer
    assert body["redis_url"] == ""


async def test_config_redacts_database_credentials(tmp_path: Path) -> None:
    app = create_app(
        Settings(
            database_url="postgresql+asyncpg://svc:db-password-123@db.internal/cs",
            keycloak_client_secret="kc-secret-456",
            data_dir=tmp_path / "data",
        )
    )

    async with _client(app) as client:
        response = await client.get("/v1/config")

    assert response.status_code == 200
    assert "db-password-123" not in response.text
    assert "kc-secret-456" not in response.text
    assert "db.internal" in response.json()["database_url"]


# ---------------------------------------------------------------------------------------------
# Metrics


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.get("/v1/health/live")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE countersign_http_requests_total counter" in text
    assert re.search(
        r'^countersign_http_requests_total\{[^}]*method="GET"[^}]*status="200"[^}]*\} \d',
        text,
        re.MULTILINE,
    )
    assert "countersign_http_request_duration_seconds_bucket" in text


async def test_metrics_never_label_requests_with_raw_path_values(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    raw_key = f"metrics-probe-{uuid.uuid4().hex[:8]}"
    await client.get(f"/v1/policies/{raw_key}/versions", headers=admin_headers)

    text = (await client.get("/metrics")).text

    assert raw_key not in text, "raw path values would explode the label cardinality"
    assert "/{policy_key}/versions" in text


async def test_metrics_label_requests_with_the_full_route_template(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await client.get("/v1/health/live")
    await client.get("/v1/awe/health/live")
    await client.get("/v1/policies/some-key/versions", headers=admin_headers)

    text = (await client.get("/metrics")).text

    assert 'route="/v1/health/live"' in text
    assert 'route="/v1/awe/health/live"' in text
    assert 'route="/v1/policies/{policy_key}/versions"' in text


# ---------------------------------------------------------------------------------------------
# OpenAPI and docs


async def test_openapi_is_3_1_and_declares_problem_responses(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "code", "errorCode", "errors"} <= set(
        problem["required"]
    )
    responses = document["paths"]["/v1/policies"]["post"]["responses"]
    for status in ("401", "422"):
        assert status in responses, f"POST /v1/policies does not declare {status}"
        schema = responses[status]["content"][PROBLEM_MEDIA_TYPE]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}


async def test_openapi_lists_each_route_once_without_the_awe_aliases(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/v1/openapi.json")).json()

    paths = set(document["paths"])
    assert "/v1/policies" in paths
    assert "/v1/health" in paths
    assert not [p for p in paths if p.startswith("/v1/awe/")]


async def test_openapi_declares_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    document = (await client.get("/v1/openapi.json")).json()

    schemes = document["components"]["securitySchemes"]
    assert any(s.get("scheme", "").lower() == "bearer" for s in schemes.values())


async def test_docs_serve_html_pointing_at_the_openapi_document(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/v1/openapi.json" in response.text


@pytest.mark.parametrize(
    "path", ["/v1/health", "/v1/version", "/v1/config", "/metrics", "/v1/openapi.json"]
)
async def test_operational_routes_need_no_token(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 200


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    generated = await client.get("/v1/health/live")
    echoed = await client.get("/v1/health/live", headers={"X-Request-Id": "trace-42"})

    assert generated.headers["X-Request-Id"]
    assert echoed.headers["X-Request-Id"] == "trace-42"


async def test_dev_mode_serves_the_jwks(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/.well-known/jwks.json")

    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert key["kid"]
    assert "d" not in key, "the private exponent must never be published"
