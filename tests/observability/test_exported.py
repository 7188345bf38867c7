"""Every metric the Grafana dashboard and the alert rules query is exported by the running
service after a full flow: PostgreSQL, Redis, an API process, an arq worker and a loopback
webhook receiver, in both ways of running several processes (ADR 0038):

- each process exports its own values: the API at `/metrics`, the worker on
  `COUNTERSIGN_WORKER_METRICS_PORT`; the dashboard's queries see the union;
- API and worker share `PROMETHEUS_MULTIPROC_DIR`: the API's `/metrics` alone answers for both.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from countersign.config import Settings
from tests.fixtures.client import TokenFactory
from tests.fixtures.server import free_port
from tests.fixtures.worker import (  # noqa: F401  (fixtures)
    SharedClock,
    Workers,
    clean_hooks_database_fixture,
    clock_file_fixture,
    hooks_database_url_fixture,
    hooks_engine_fixture,
    hooks_settings_fixture,
    redis_server_fixture,
    shared_clock_fixture,
    webhook_settings_fixture,
    workers_fixture,
)
from tests.observability.stack import api_env, run_full_flow, running_api, samples
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.slow

DASHBOARDS = Path(__file__).resolve().parents[2] / "helm" / "countersign" / "dashboards"
METRIC_NAME = re.compile(r"\bcountersign_[a-z_]+\b")


def _exprs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k == "expr" and isinstance(v, str)]
        return found + [e for v in value.values() for e in _exprs(v)]
    if isinstance(value, list):
        return [e for v in value for e in _exprs(v)]
    return []


def queried_metrics() -> set[str]:
    dashboard = json.loads((DASHBOARDS / "dashboard.json").read_text(encoding="utf-8"))
    alerts = yaml.safe_load((DASHBOARDS / "alerts.yaml").read_text(encoding="utf-8"))
    exprs = _exprs(dashboard) + _exprs(alerts)
    names = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert len(names) > 15, names
    return names


def test_the_alert_rules_are_a_plain_list_of_rule_groups() -> None:
    alerts = yaml.safe_load((DASHBOARDS / "alerts.yaml").read_text(encoding="utf-8"))
    assert set(alerts) == {"groups"}
    rules = [rule for group in alerts["groups"] for rule in group["rules"]]
    named = {rule["alert"] for rule in rules}
    for wanted in (
        "CountersignWebhookDeliveriesExhausted",
        "CountersignOutboxBacklogGrowing",
        "CountersignStagesStuckResolving",
        "CountersignSlaBreaches",
        "CountersignHigh5xxRate",
    ):
        assert wanted in named
    assert all(rule["expr"] and rule["labels"]["severity"] for rule in rules)


@pytest.mark.parametrize("mode", ["per-process", "multiprocess"])
async def test_every_metric_the_dashboard_and_alerts_query_is_exported(
    mode: str,
    hooks_settings: Settings,
    shared_clock: SharedClock,
    workers: Workers,
    admin_headers: dict[str, str],
    token: TokenFactory,
    tmp_path: Path,
) -> None:
    extra: dict[str, str] = {}
    worker_extra: dict[str, str] = {}
    worker_port = free_port()
    if mode == "multiprocess":
        directory = tmp_path / "prometheus"
        directory.mkdir()
        extra = worker_extra = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    else:
        worker_extra = {
            "COUNTERSIGN_WORKER_METRICS_PORT": str(worker_port),
            "COUNTERSIGN_WORKER_METRICS_HOST": "127.0.0.1",
        }
    env = api_env(hooks_settings, shared_clock, **extra)
    worker = workers.start(env=worker_extra).wait_ready()
    with (
        running_api(env, tmp_path / "api.log") as api,
        Receiver() as receiver,
    ):
        async with api.client() as client, httpx.AsyncClient(timeout=10) as plain:

            async def scrape() -> str:
                text = (await client.get("/metrics")).text
                if mode == "per-process":
                    text += (
                        await plain.get(f"http://127.0.0.1:{worker_port}/metrics")
                    ).text
                return text

            await run_full_flow(
                client,
                admin_headers,
                token,
                shared_clock,
                (worker,),
                receiver=receiver,
                scrape=scrape,
            )
            exported = samples(await scrape())
            api_only = samples((await client.get("/metrics")).text)

    missing = sorted(queried_metrics() - exported)
    assert missing == [], f"queried but not exported ({mode}): {missing}"
    # Sent by the worker only: in multiprocess mode the API's /metrics carries them.
    if mode == "multiprocess":
        assert "countersign_webhook_attempts_total" in api_only
        assert "countersign_sla_breaches_total" in api_only
    else:
        assert "countersign_webhook_attempts_total" not in api_only
