"""A request left open for 90 days still completes correctly.

DESIGN.md: "Requests may wait weeks or months between steps." The clock is advanced through the
test hook in 12-hour steps, ticking after each, like a worker sweeping through three months. The
SLA (`notify`) fires once, reminders arrive daily and land in the timeline in order, and then an
ordinary decision still moves the request on to approval with a verifiable hash chain.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.fixtures.flows import Flow, stage
from tests.timers.drivers import HOUR, TickDriver

DAYS = 90
STEP_HOURS = 12
REMINDER_HOURS = 24
SLA_HOURS = 72


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_a_request_open_for_90_days_completes_with_its_history(
    flow: Flow, admin_headers: dict[str, str]
) -> None:
    await flow.publish(
        [
            stage(
                1,
                ["alice"],
                sla_hours=SLA_HOURS,
                on_breach="notify",
                reminder_hours=REMINDER_HOURS,
            ),
            stage(2, ["carol"], reminder_hours=REMINDER_HOURS),
        ],
        forbid_self_approval=True,
    )
    created = await flow.start()
    request_id = created["request_id"]
    started_at = parse((await flow.request(request_id))["created_at"])

    driver = TickDriver(flow.client, admin_headers)
    # One hour off the reminder grid, so each step's tick is clearly after what fell due.
    await driver.advance(HOUR)
    await driver.tick()
    for _ in range(DAYS * 24 // STEP_HOURS):
        await driver.advance(STEP_HOURS * HOUR)
        await driver.tick()
    assert sum(ran["reminders"] for ran in driver.ran) == DAYS
    assert sum(ran["sla_breaches"] for ran in driver.ran) == 1

    request = await flow.request(request_id)
    assert request["status"] == "in_review"
    assert request["current_stage_order"] == 1

    # The timeline holds the whole wait, in order.
    events = await flow.events(request_id)
    reminders = [e for e in events if e["event_type"] == "task_reminder"]
    assert len(reminders) == DAYS
    for day, reminder in enumerate(reminders, start=1):
        assert reminder["payload"]["assignee"] == "alice"
        emitted = parse(reminder["created_at"]) - started_at
        # Due at day N, emitted by the first tick after it (an hour later).
        assert timedelta(days=day) <= emitted < timedelta(days=day, hours=2), day
    (expired,) = [e for e in events if e["event_type"] == "task_expired"]
    assert expired["payload"]["assignee"] == "alice"
    assert parse(expired["created_at"]) - started_at >= timedelta(hours=SLA_HOURS)
    assert [e["event_type"] for e in events[:2]] == ["request_created", "stage_started"]
    breach_at = events.index(expired)
    assert [e["event_type"] for e in events[2:breach_at]] == ["task_reminder"] * 2

    # Three months later, the decisions still work.
    decided = await flow.approve("alice", request_id, comment="back from leave")
    assert decided["stage_status"] == "approved"
    assert decided["request_status"] == "in_review"
    await driver.advance(REMINDER_HOURS * HOUR + HOUR)
    await driver.tick()
    last_reminder = (await flow.events_of(request_id, "task_reminder"))[-1]
    assert last_reminder["payload"]["assignee"] == "carol"
    final = await flow.approve("carol", request_id)
    assert final["request_status"] == "approved"

    request = await flow.request(request_id)
    assert request["status"] == "approved"
    assert parse(request["completed_at"]) - started_at > timedelta(days=DAYS)
    types = await flow.event_types(request_id)
    assert types[-1] == "request_approved"
    assert types.count("task_reminder") == DAYS + 1
    verified = await flow.client.get(
        f"/v1/requests/{request_id}/events/verify", headers=admin_headers
    )
    assert verified.json()["valid"] is True
    assert verified.json()["count"] == len(types)
