"""`X-Request-Id` and the HTTP metrics, as a pure ASGI middleware.

Every response carries `X-Request-Id` (the caller's, or a new one) and the same id is the
`trace_id` of any problem+json body (`kit.problem.trace_id_of` reads it from the request state).
Written against ASGI directly rather than as `@app.middleware("http")`: Starlette's
`BaseHTTPMiddleware` runs the application in a task group and pipes the response through a memory
stream, which cost about a tenth of a small call's CPU (docs/performance.md).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from countersign.kit import metrics

HEADER = "X-Request-Id"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, *, route_template: Callable[[Scope], str]) -> None:
        self.app = app
        self.route_template = route_template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id = Headers(scope=scope).get(HEADER) or uuid.uuid4().hex
        scope.setdefault("state", {})["trace_id"] = trace_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = trace_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.observe_request(
                scope["method"],
                self.route_template(scope),
                status,
                time.perf_counter() - started,
            )
