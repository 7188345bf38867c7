"""Many replicas, one due moment, one event: two workers sweeping the same due rows.

DESIGN.md: the predecessor's SLA monitor double-processed with more than one replica. Here two
`countersign worker` processes share the database and the clock, and each runs the `timers.sweep`
cron on its own Redis database (so arq's unique cron jobs cannot hide the race: both really sweep,
at the same second). Every request still gets exactly one `stage_escalated` and one
`task_reminder` per open task per due moment, and every timeline's hash chain verifies.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.models import Event, Task
from tests.fixtures.flows import Flow, stage
from tests.timers.conftest import TimerWorkers
from tests.timers.drivers import HOUR, SWEEP_DONE_LOG_LINE, WorkerDriver

pytestmark = pytest.mark.slow

REQUESTS = 20
A_LITTLE = 5.0

# `'reminders': 10` in arq's log line of a finished sweep (its result, the `ran` counts).
SWEEP_COUNT = re.compile(r"'(sla_breaches|reminders)': (\d+)")

Counts = Counter[tuple[uuid.UUID, str]]


async def event_counts(session: AsyncSession) -> Counts:
    statement = select(Event.request_id, Event.event_type, func.count()).group_by(
        Event.request_id, Event.event_type
    )
    rows = (await session.execute(statement)).all()
    await session.commit()  # end the read transaction: the next read sees later commits
    return Counter({(request_id, kind): n for request_id, kind, n in rows})


async def task_counts(session: AsyncSession) -> Counter[uuid.UUID]:
    statement = select(Task.request_id, func.count()).group_by(Task.request_id)
    rows = (await session.execute(statement)).all()
    await session.commit()
    return Counter(dict(rows))


def per_request(counts: Counts, ids: list[uuid.UUID], event_type: str) -> set[int]:
    return {counts[(i, event_type)] for i in ids}


async def test_two_workers_handle_each_due_moment_once(
    flow: Flow, timer_workers: TimerWorkers, session: AsyncSession
) -> None:
    await flow.publish(
        [
            stage(
                1,
                ["alice", "bob"],
                mode="all",
                sla_hours=2,
                on_breach="escalate",
                escalation_rules=[
                    {"rule_type": "user", "rule_value": {"user_id": "carol"}}
                ],
                reminder_hours=1,
            )
        ]
    )
    ids = [
        uuid.UUID((await flow.start(artifact_id=f"a-{n}"))["request_id"])
        for n in range(REQUESTS)
    ]
    driver = WorkerDriver(await timer_workers.start_ready(2))

    async def reached(event_type: str, per_request_count: int) -> Counts | None:
        counts = await event_counts(session)
        done = per_request(counts, ids, event_type) == {per_request_count}
        return counts if done else None

    # 1 h: every approver task reminded once.
    await driver.advance(HOUR + A_LITTLE)
    await driver.until(lambda: reached("task_reminder", 2), what="first reminders")
    await driver.settle()
    counts = await event_counts(session)
    assert per_request(counts, ids, "task_reminder") == {2}
    assert per_request(counts, ids, "stage_escalated") == {0}

    # 2 h: SLA breached and reminders due together: one escalation, one reminder per task.
    await driver.advance(HOUR)
    await driver.until(lambda: reached("stage_escalated", 1), what="escalations")
    await driver.until(lambda: reached("task_reminder", 4), what="second reminders")
    await driver.settle()
    counts = await event_counts(session)
    assert per_request(counts, ids, "stage_escalated") == {1}
    assert per_request(counts, ids, "task_reminder") == {4}
    assert set((await task_counts(session)).values()) == {3}, "one carol task each"

    # 3 h: alice and bob for the third time, carol for the first.
    await driver.advance(HOUR)
    await driver.until(lambda: reached("task_reminder", 7), what="third reminders")
    await driver.settle()
    counts = await event_counts(session)
    assert per_request(counts, ids, "task_reminder") == {7}
    assert per_request(counts, ids, "stage_escalated") == {1}

    # What the two workers say they did adds up to exactly what happened: nothing twice.
    reported: Counter[str] = Counter()
    for worker in driver.workers:
        for line in worker.log().splitlines():
            if SWEEP_DONE_LOG_LINE in line:
                for kind, n in SWEEP_COUNT.findall(line):
                    reported[kind] += int(n)
    assert reported["reminders"] == REQUESTS * 7
    assert reported["sla_breaches"] == REQUESTS

    # No timeline was forked.
    for request_id in ids:
        verified = await flow.client.get(
            f"/v1/requests/{request_id}/events/verify", headers=flow.admin
        )
        assert verified.json()["valid"] is True, verified.text
        events = await flow.events(str(request_id))
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
