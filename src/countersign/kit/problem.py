"""RFC 9457 problem details: the one renderer for every 4xx/5xx the service emits."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from countersign import db, errors
from countersign.errors import AppError, FieldProblem

log = logging.getLogger("countersign.errors")

PROBLEM_BASE = "https://countersign.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

# Framework HTTP errors mapped onto the contract's codes.
_HTTP_STATUS_ERRORS: dict[int, type[AppError]] = {
    401: errors.Unauthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    422: errors.ValidationFailed,
    503: errors.NotReady,
}


def problem_body(
    error: AppError, *, instance: str, trace_id: str | None = None
) -> dict[str, Any]:
    if error.problems:
        entries: list[dict[str, str]] = [
            p.as_dict(error.awe_code) for p in error.problems
        ]
    else:
        entries = [{"errorCode": error.awe_code, "message": error.message}]
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + error.code,
        "title": error.title,
        "status": error.status_code,
        "detail": error.message,
        "instance": instance,
        "code": error.code,
        "errorCode": error.awe_code,
        "message": error.message,
        "errors": entries,
    }
    if trace_id is not None:
        body["trace_id"] = trace_id
    body.update(error.extra)
    return body


def problem_response(
    error: AppError, request: Request, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = problem_body(error, instance=request.url.path, trace_id=trace_id_of(request))
    all_headers = dict(headers or {})
    if error.status_code == 401:
        all_headers.setdefault("WWW-Authenticate", 'Bearer realm="countersign"')
    return JSONResponse(
        body,
        status_code=error.status_code,
        headers=all_headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def trace_id_of(request: Request) -> str:
    trace_id: str | None = getattr(request.state, "trace_id", None)
    if trace_id is None:
        trace_id = uuid.uuid4().hex
        request.state.trace_id = trace_id
    return trace_id


def pointer_from_loc(loc: Sequence[int | str]) -> str:
    """`("body", "stages", 0, "mode")` → `/stages/0/mode` (JSON pointer into the part that failed)."""
    parts = list(loc)
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(escaped) if escaped else ""


def validation_problems(exc_errors: Sequence[Any]) -> list[FieldProblem]:
    problems = []
    for err in exc_errors:
        loc = [
            p
            for p in err.get("loc", ())
            if not (isinstance(p, str) and p.startswith("function-"))
        ]
        problems.append(
            FieldProblem(pointer_from_loc(loc), str(err.get("msg", "invalid value")))
        )
    return problems


async def _app_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(exc, request)


def validation_failed(
    exc_errors: Sequence[Any], what: str = "request validation failed"
) -> errors.ValidationFailed:
    """A pydantic error list as the contract's `validation_failed`, the first problems summed up."""
    problems = validation_problems(exc_errors)
    summary = "; ".join(f"{p.pointer or '/'}: {p.detail}" for p in problems[:5])
    return errors.ValidationFailed(f"{what}: {summary}", problems)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(validation_failed(exc.errors()), request)


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error_class = _HTTP_STATUS_ERRORS.get(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 400:
        # FastAPI's only 400 is a body it could not read (bytes that are not UTF-8, a broken
        # multipart): to the caller that is a body failing validation like any other.
        return problem_response(
            errors.ValidationFailed(
                "body: not valid UTF-8 JSON",
                [errors.FieldProblem("", "the body is not valid UTF-8 JSON")],
            ),
            request,
        )
    if error_class is None:
        error: AppError = errors.AppError(detail)
        body = problem_body(
            error, instance=request.url.path, trace_id=trace_id_of(request)
        )
        body["status"] = exc.status_code
        return JSONResponse(
            body, status_code=exc.status_code, media_type=PROBLEM_MEDIA_TYPE
        )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the methods of the first route matching the path; RFC 9110 wants
        # every method the resource supports (e.g. both GET and POST on /v1/policies).
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    return problem_response(error_class(detail), request, headers=headers)


_HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route fully matches for this path (routing probed with fresh scopes)."""
    path, root_path = request.scope["path"], request.scope.get("root_path", "")
    allowed = []
    for method in _HTTP_METHODS:
        probe = {"type": "http", "path": path, "root_path": root_path, "method": method}
        if any(
            route.matches(dict(probe))[0] is Match.FULL
            for route in request.app.router.routes
        ):
            allowed.append(method)
    return allowed


async def _outage_handler(request: Request, exc: Exception) -> JSONResponse:
    """Database (or network) errors: 503 when the database is unreachable, else a real 500."""
    if not db.is_unreachable(exc):
        return await _unexpected_handler(request, exc)
    log.warning(
        "database unreachable: %s: %s",
        type(exc).__name__,
        exc,
        extra={"trace_id": trace_id_of(request), "path": request.url.path},
    )
    error = errors.DependencyUnavailable("the database is unreachable; retry later")
    return problem_response(error, request, headers={"Retry-After": "5"})


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    trace_id = trace_id_of(request)
    log.exception(
        "unexpected error", extra={"trace_id": trace_id, "path": request.url.path}
    )
    error = errors.AppError(
        f"unexpected error; quote trace_id {trace_id} when reporting it"
    )
    return problem_response(error, request)


def register_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    for outage in db.OUTAGE_CANDIDATES:
        app.add_exception_handler(outage, _outage_handler)
    app.add_exception_handler(Exception, _unexpected_handler)


# Declared on every route so the OpenAPI document lists the problem responses (typed clients).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "code", "errorCode", "errors"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string"},
        "errorCode": {"type": "string"},
        "message": {"type": "string"},
        "trace_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "pointer": {"type": "string"},
                    "detail": {"type": "string"},
                    "errorCode": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the problem statuses a route can return."""
    content = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    base = {401: "Unauthenticated", 422: "Validation failed", 500: "Internal error"}
    described = {**base, **{s: _STATUS_TEXT.get(s, "Error") for s in statuses}}
    return {
        status: {"description": text, "content": content}
        for status, text in sorted(described.items())
    }


_STATUS_TEXT = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    422: "Validation failed",
    503: "Unavailable",
}
