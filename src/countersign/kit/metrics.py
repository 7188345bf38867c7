"""Prometheus metrics, served at `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "countersign_http_requests_total",
    "HTTP requests served",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "countersign_http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route"],
)

router = APIRouter()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


@router.get("/metrics", include_in_schema=False)
async def get_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
