"""Prometheus metrics: the definitions, the exposition and the worker's metrics server.

Every metric of the service is defined here, so their names and label sets are in one place
(docs/operations.md, "Metrics", lists them; ADR 0038 says why they look like this). Labels are
bounded: HTTP routes are templates, statuses and actions are fixed vocabularies, and the one
label an operator's data chooses, `policy`, is capped per process (`policy_label`).

Several processes: with `PROMETHEUS_MULTIPROC_DIR` set (prometheus-client's own variable, read
when it is first imported), every process writes its values to files in that directory and
`render()` sums them, so one `/metrics` answers for the API and any worker sharing the
directory. Without it, each process exports its own values (the worker on
`COUNTERSIGN_WORKER_METRICS_PORT`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# --- HTTP --------------------------------------------------------------------------------------

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

# --- the approval domain (counted when the transaction that wrote them commits) ----------------

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
DECISION_BUCKETS = (
    1.0,
    10.0,
    MINUTE,
    5 * MINUTE,
    15 * MINUTE,
    HOUR,
    4 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    3 * DAY,
    7 * DAY,
    30 * DAY,
)
LAG_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    MINUTE,
    5 * MINUTE,
    30 * MINUTE,
    HOUR,
    6 * HOUR,
    DAY,
)

REQUESTS_CREATED = Counter(
    "countersign_requests_created_total",
    "Approval requests created, by policy key",
    ["policy"],
)
REQUESTS_FINISHED = Counter(
    "countersign_requests_finished_total",
    "Approval requests that reached an outcome (approved, rejected, cancelled, expired, "
    "changes_requested), by policy key",
    ["policy", "outcome"],
)
DECISIONS = Counter(
    "countersign_decisions_total",
    "Decisions recorded, by action",
    ["action"],
)
STAGE_OUTCOMES = Counter(
    "countersign_stage_outcomes_total",
    "Stages that ended, by outcome (approved, rejected, skipped, cancelled)",
    ["outcome"],
)
TIME_TO_DECISION = Histogram(
    "countersign_stage_decision_seconds",
    "Time from a stage's start to its approval or rejection, by policy key",
    ["policy", "outcome"],
    buckets=DECISION_BUCKETS,
)
RESOLUTION_FAILURES = Counter(
    "countersign_resolution_failures_total",
    "Approver resolutions that failed (the stage waits in `resolving` and is retried), "
    "by when (start: a stage starting; escalation: an SLA escalation)",
    ["when"],
)
SLA_BREACHES = Counter(
    "countersign_sla_breaches_total",
    "Stage SLA breaches handled, by on_breach action",
    ["action"],
)
WEBHOOK_ATTEMPTS = Counter(
    "countersign_webhook_attempts_total",
    "Webhook delivery attempts, by result (delivered, failed) and answer status class "
    "(2xx, 3xx, 4xx, 5xx, none: no answer or not sent)",
    ["result", "status_class"],
)
WEBHOOK_EXHAUSTED = Counter(
    "countersign_webhook_deliveries_exhausted_total",
    "Webhook deliveries given up (retries used up, 410 Gone, abort-message)",
)
WEBHOOK_LAG = Histogram(
    "countersign_webhook_delivery_lag_seconds",
    "Time from the event to its webhook's successful delivery",
    buckets=LAG_BUCKETS,
)
IDEMPOTENCY_REPLAYS = Counter(
    "countersign_idempotency_replays_total",
    "Requests answered from a stored response (a repeated Idempotency-Key)",
)

# --- this process ------------------------------------------------------------------------------

DB_POOL_IN_USE = Gauge(
    "countersign_db_pool_connections_in_use",
    "Database connections checked out of this process's pool (summed over live processes "
    "in multiprocess mode)",
    multiprocess_mode="livesum",
)

# --- labels -----------------------------------------------------------------------------------

# Policy keys are chosen by administrators, not by callers (a request names an existing, published
# policy), so there are as many as an organisation has approval processes. A deployment with an
# unusual number of them still gets bounded series: past this many distinct keys in one process,
# the rest are counted as "_other".
POLICY_LABEL_LIMIT = 100
OTHER = "_other"
_policies: set[str] = set()
_policies_lock = threading.Lock()


def policy_label(policy_key: str | None) -> str:
    if not policy_key:
        return OTHER
    if policy_key in _policies:
        return policy_key
    with _policies_lock:
        if len(_policies) < POLICY_LABEL_LIMIT:
            _policies.add(policy_key)
            return policy_key
    return OTHER


def status_class(status_code: int | None) -> str:
    if status_code is None or not 100 <= status_code <= 599:
        return "none"
    return f"{status_code // 100}xx"


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


# --- exposition --------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def process_registry() -> CollectorRegistry:
    """What this process exports: the sum over the multiprocess directory, or its own values."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def render(extra: Iterable[Collector] = ()) -> bytes:
    """The text exposition of this process (or directory), then of `extra` collectors."""
    output = generate_latest(process_registry())
    collectors = list(extra)
    if collectors:
        registry = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            registry.register(collector)
        output += generate_latest(registry)
    return output


def serve_worker_metrics(port: int, host: str) -> None:
    """The worker's `/metrics` (any path answers) on `host:port`, in a daemon thread."""
    start_http_server(port, addr=host, registry=process_registry())


def process_exited() -> None:
    """Multiprocess mode: this process's live gauges stop counting (its files stay for counters)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
