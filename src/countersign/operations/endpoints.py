"""Health, version, configuration and the dev-mode JWKS: the unauthenticated operational routes."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from countersign import __version__
from countersign.config import Settings
from countersign.errors import DependencyUnavailable, NotFound, NotReady
from countersign.identity.tokens import TokenVerifier
from countersign.kit.problem import problem_body, problem_responses, trace_id_of
from countersign.worker.queue import redis_client

router = APIRouter(tags=["operations"])

# What the health check waits for Redis's PING (a readiness probe's timeout is a few seconds).
HEALTH_REDIS_SECONDS = 2.0


async def _check_database(request: Request) -> str:
    try:
        async with request.app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return "DOWN"
    return "UP"


async def _check_redis(settings: Settings) -> str:
    if not settings.redis_url:
        return "DISABLED"
    client = redis_client(settings.redis_url)
    try:
        # A Redis that accepts connections but never answers is DOWN, and says so promptly.
        async with asyncio.timeout(HEALTH_REDIS_SECONDS):
            await client.ping()
    except Exception:
        return "DOWN"
    finally:
        await client.aclose()
    return "UP"


@router.get("/health", responses=problem_responses(503))
async def get_health(request: Request) -> JSONResponse:
    """Readiness: the database (and Redis, when configured) answer."""
    settings: Settings = request.app.state.settings
    if not getattr(request.app.state, "ready", False):
        error: NotReady | DependencyUnavailable = NotReady("startup is not complete")
        problem = problem_body(
            error, instance=request.url.path, trace_id=trace_id_of(request)
        )
        return JSONResponse(
            problem, status_code=503, media_type="application/problem+json"
        )
    checks = {
        "database": await _check_database(request),
        "redis": await _check_redis(settings),
    }
    down = [name for name, state in checks.items() if state == "DOWN"]
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "version": __version__,
        "responsetime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "response": {"status": "DOWN" if down else "UP", "checks": checks},
        "errors": [],
    }
    if down:
        error = DependencyUnavailable(f"unreachable: {', '.join(down)}")
        problem = problem_body(
            error, instance=request.url.path, trace_id=trace_id_of(request)
        )
        problem["response"] = body["response"]
        return JSONResponse(
            problem, status_code=503, media_type="application/problem+json"
        )
    return JSONResponse(body)


@router.get("/health/live")
async def get_liveness() -> dict[str, str]:
    """Liveness: the process runs."""
    return {"status": "UP"}


@router.get("/version")
async def get_version() -> dict[str, str | None]:
    """The running build."""
    return {
        "service_version": __version__,
        "build_time": os.environ.get("COUNTERSIGN_BUILD_TIME"),
        "git_commit": os.environ.get("COUNTERSIGN_GIT_COMMIT"),
    }


class OidcClientOut(BaseModel):
    """The admin UI's public OIDC client: sign in at `issuer` as `client_id` asking for `scopes`."""

    issuer: str | None
    client_id: str | None
    scopes: str


class ConfigOut(BaseModel):
    """The non-secret effective configuration. The fields the admin UI reads at runtime are
    declared; every other setting is included too (secrets never, DSN passwords redacted)."""

    model_config = ConfigDict(extra="allow")

    env: str
    auth_mode: str
    # Present (non-null) in OIDC mode only.
    oidc: OidcClientOut | None
    # Whether `POST /v1/dev/token` is served (dev auth outside production).
    dev_tokens: bool
    role_admin: str
    role_viewer: str
    test_hooks: bool
    service_version: str


@router.get("/config", response_model=ConfigOut)
async def get_config(request: Request) -> ConfigOut:
    """The non-secret effective configuration, with what the admin UI needs to sign in."""
    settings: Settings = request.app.state.settings
    return ConfigOut.model_validate(
        {**settings.public_view(), "service_version": __version__}
    )


@router.get("/.well-known/jwks.json", responses=problem_responses(404))
async def get_jwks(request: Request) -> dict[str, Any]:
    """Dev mode only: the public keys of the service's own token issuer."""
    verifier: TokenVerifier = request.app.state.verifier
    if verifier.dev_issuer is None:
        raise NotFound("the JWKS is served by the identity provider outside dev mode")
    return verifier.dev_issuer.jwks()
