"""Size limits: 413 `payload_too_large` before anything is parsed or written (ADR 0013).

`BodyLimitMiddleware` bounds every request body to `COUNTERSIGN_MAX_BODY_BYTES` while it is
read: a declared `Content-Length` over the limit is refused before the application sees the
request, and a body without one (chunked) is counted chunk by chunk and cut off at the limit. The
handler never runs on a cut body, so a refused request changes nothing.

`enforce_json_limit` bounds one JSON member (`context`, `metadata`) to
`COUNTERSIGN_MAX_CONTEXT_BYTES` of compact JSON: they are copied into every inbox item, webhook
and event, so they get a tighter bound than the body as a whole.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from countersign.errors import FieldProblem, PayloadTooLarge
from countersign.kit.problem import problem_response
from countersign.kit.validation import compact_json_size


class BodyLimitMiddleware:
    """Pure ASGI: counts body bytes as they arrive; never buffers the body itself."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send)
            return

        received = 0
        cut = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, cut
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut = True
                    if not response_started:
                        await self._refuse(scope, receive, send)
                    # The application sees a client that went away: it stops reading and its
                    # handler never runs (FastAPI reads the whole body before calling it).
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if cut:
                return  # the 413 has been sent; what the app answers to a cut body is dropped
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(
            f"request body is over {self.max_body_bytes} bytes (COUNTERSIGN_MAX_BODY_BYTES)"
        )
        response = problem_response(
            error, Request(scope), headers={"Connection": "close"}
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


def enforce_json_limit(value: Any, *, limit: int, pointer: str) -> None:
    """413 when `value` is over `limit` bytes of compact JSON."""
    size = compact_json_size(value)
    if size > limit:
        raise PayloadTooLarge(
            f"{pointer.lstrip('/')} is {size} bytes of JSON, over the limit of {limit} "
            "(COUNTERSIGN_MAX_CONTEXT_BYTES)",
            [FieldProblem(pointer, f"over {limit} bytes of compact JSON")],
        )
