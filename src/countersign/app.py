"""create_app(): routers, middleware, exception handlers and the lifespan that owns shared clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from starlette.types import Scope

from countersign import __version__
from countersign.audit import endpoints as audit_endpoints
from countersign.config import Settings, get_settings
from countersign.delegations import endpoints as delegation_endpoints
from countersign.directory import endpoints as directory_endpoints
from countersign.identity import endpoints as identity_endpoints
from countersign.identity.dependencies import build_verifier
from countersign.kit import metrics
from countersign.kit.limits import BodyLimitMiddleware
from countersign.kit.problem import (
    PROBLEM_SCHEMA,
    problem_responses,
    register_exception_handlers,
)
from countersign.kit.request_id import RequestIdMiddleware
from countersign.kit.validation import reject_unstorable_text
from countersign.operations import admin_ui, test_hooks
from countersign.operations import endpoints as operations_endpoints
from countersign.operations import metrics as metrics_endpoint
from countersign.policies import endpoints as policy_endpoints
from countersign.requests import endpoints as request_endpoints
from countersign.tasks import endpoints as task_endpoints
from countersign.webhooks import endpoints as webhook_endpoints
from countersign.wiring import Runtime
from countersign.worker.loop import InProcessWorker
from countersign.worker.queue import LocalQueue

API_PREFIX = "/v1"
AWE_PREFIX = "/v1/awe"


def _unique_id(route: APIRoute) -> str:
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


def _api_router(settings: Settings) -> APIRouter:
    """Every contract route, relative to the base path; mounted at /v1 and again at /v1/awe."""
    router = APIRouter()
    router.include_router(policy_endpoints.router)
    router.include_router(request_endpoints.router)
    router.include_router(request_endpoints.admin_router)
    router.include_router(task_endpoints.router)
    router.include_router(delegation_endpoints.router)
    router.include_router(webhook_endpoints.router)
    router.include_router(audit_endpoints.router)
    router.include_router(directory_endpoints.router)
    router.include_router(operations_endpoints.router)
    router.include_router(identity_endpoints.router)
    if settings.test_hooks:
        router.include_router(test_hooks.router)
    return router


def create_app(
    settings: Settings | None = None, *, in_process_worker: bool | None = None
) -> FastAPI:
    """Build the API. `in_process_worker` defaults to on without Redis (the embedded mode)."""
    settings = settings or get_settings()
    if in_process_worker is None:
        in_process_worker = settings.worker_in_process
    run_worker = (
        (not settings.redis_url) if in_process_worker is None else in_process_worker
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime.create(settings)
        # The identity provider's client: JWKS and token endpoints usually live on the private
        # network, so it does not go through the outbound guard that webhooks and rules use.
        http_client = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        app.state.runtime = runtime
        app.state.engine = runtime.engine
        app.state.sessionmaker = runtime.sessionmaker
        app.state.job_queue = runtime.queue
        app.state.outbound_policy = runtime.outbound_policy
        app.state.resolver = runtime.resolver
        app.state.http_client = http_client
        app.state.verifier = build_verifier(settings, http_client)
        worker = (
            InProcessWorker(runtime, runtime.queue)
            if run_worker and isinstance(runtime.queue, LocalQueue)
            else None
        )
        if worker is not None:
            worker.start()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            if worker is not None:
                await worker.stop()
            await runtime.close()
            await http_client.aclose()
            metrics.process_exited()

    app = FastAPI(
        title="Countersign",
        version=__version__,
        summary="Multi-stage approval engine, wire-compatible with OpenG2P AWE.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=_unique_id,
        redirect_slashes=False,
        # Every route: no NUL or lone surrogate in a path, query or JSON body reaches PostgreSQL.
        dependencies=[Depends(reject_unstorable_text)],
    )
    app.state.settings = settings
    app.state.ready = False
    register_exception_handlers(app)

    api = _api_router(settings)
    app.include_router(api, prefix=API_PREFIX)
    # AWE clients call the same routes under /v1/awe; hidden so the document lists each route once.
    app.include_router(api, prefix=AWE_PREFIX, include_in_schema=False)
    app.include_router(metrics_endpoint.router)
    admin_ui.register(app, settings)

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{API_PREFIX}/openapi.json", title="Countersign API"
        )

    _add_problem_schema(app)

    # Added before the request-id middleware so that it runs inside it: a 413 carries X-Request-Id.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)

    app.add_middleware(RequestIdMiddleware, route_template=_route_template)

    return app


def _route_template(scope: Scope) -> str:
    """The route's full path template for metric labels (nested routers only know their own part)."""
    path: str = scope["path"]
    route = scope.get("route")
    if not isinstance(route, APIRoute):
        return "unmatched"
    if (
        route.path.startswith(API_PREFIX + "/")
        or route.path == "/metrics"
        or route.path.startswith(admin_ui.PREFIX)
    ):
        return route.path
    prefix = AWE_PREFIX if path.startswith(AWE_PREFIX + "/") else API_PREFIX
    return prefix + route.path


def _add_problem_schema(app: FastAPI) -> None:
    """Register the `Problem` component that every route's error responses point to."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        # What any route can answer, declared here once: 503 while the database is unreachable,
        # 413 from the body limit on every route that takes a body.
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                extra = (413, 503) if "requestBody" in operation else (503,)
                for status, response in problem_responses(*extra).items():
                    responses.setdefault(str(status), response)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
