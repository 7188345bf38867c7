"""How many SQL statements a command costs (issue 11: no N+1, the hot path stays lean).

Counted on the app's own engine with SQLAlchemy's `before_cursor_execute`, on PostgreSQL, after a
warm-up command (so per-process caches are as they are in a running service). The budgets are the
statements each command needs today; a change that adds a query per approver, per stage or per
event fails here, with the statements listed, instead of surfacing as a slower service.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event

from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import CALLER_CLIENT, create_request, publish, stage

Headers = dict[str, str]


@contextmanager
def statements(app: FastAPI) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = app.state.engine.sync_engine

    def record(
        conn: Any, cursor: Any, statement: str, *args: Any, **kwargs: Any
    ) -> None:
        seen.append(" ".join(statement.split())[:120])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def many(n: int, prefix: str) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


async def test_create_and_decide_cost_the_same_statements_for_2_or_20_approvers(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_headers: Headers,
    token: TokenFactory,
) -> None:
    caller = bearer(token("registry-svc", azp=CALLER_CLIENT))
    costs: dict[int, tuple[int, int]] = {}
    for size in (2, 20):
        key = f"cost.{size}"
        await publish(
            client,
            admin_headers,
            [stage(1, many(size, f"a{size}")), stage(2, many(size, f"b{size}"))],
            key=key,
        )
        # Warm-up: the first command of a policy reads it into the process's cache.
        warm = await create_request(client, caller, key=key, artifact_id="warm")
        assert warm.status_code == 201, warm.text

        with statements(app) as created_with:
            created = await create_request(client, caller, key=key, artifact_id="x")
        assert created.status_code == 201, created.text
        assert len(created.json()["tasks"]) == size
        task = created.json()["tasks"][0]
        with statements(app) as decided_with:
            decided = await client.post(
                f"/v1/tasks/{task['id']}/decision",
                json={"action": "approve"},
                headers=bearer(token(task["assignee"])),
            )
        assert decided.status_code == 201, decided.text
        assert decided.json()["stage_status"] == "approved"
        costs[size] = (len(created_with), len(decided_with))

    # No statement per approver: ten times the approvers, the same statements.
    assert costs[20] == costs[2], costs
    create_cost, decision_cost = costs[2]
    assert create_cost <= CREATE_BUDGET, "\n".join(created_with)
    assert decision_cost <= DECISION_BUDGET, "\n".join(decided_with)


# The statements (BEGIN and COMMIT are not seen here) of a create of a two-stage policy with user
# rules, no callback, and of the decision that settles stage 1 and starts stage 2, as of
# 2026-12-07 (they were 22 and 22 before the engine work, then 10 and 20; docs/performance.md
# lists them). A command's writes go in one flush at its end (ADR 0047): a create is 4 reads and
# 4 INSERTs, with no UPDATE of rows it has just inserted.
CREATE_BUDGET = 8
DECISION_BUDGET = 16
