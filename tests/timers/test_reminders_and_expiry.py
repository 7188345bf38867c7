"""Reminders (`reminder_hours`) and request expiry (`request_ttl_hours`).

API.md ("Policies"): `reminder_hours` emits `task_reminder` for each open task every N hours;
`request_ttl_hours` expires the whole request (`expired`, open tasks `skipped`), with a
`request_expired` event.
"""

from __future__ import annotations

from collections import Counter

from tests.fixtures.flows import Body, Flow, problem_code, stage
from tests.timers.drivers import HOUR, Driver

A_LITTLE = 5.0
TTL_HOURS = 24


async def reminders_by_assignee(flow: Flow, request_id: str) -> Counter[str]:
    return Counter(
        e["payload"]["assignee"]
        for e in await flow.events_of(request_id, "task_reminder")
    )


async def reminders_when(
    flow: Flow, request_id: str, expected: dict[str, int]
) -> Counter[str] | None:
    found = await reminders_by_assignee(flow, request_id)
    return found if all(found[k] >= v for k, v in expected.items()) else None


class TestReminders:
    async def test_every_n_hours_per_open_task_until_decided(
        self, flow: Flow, driver: Driver
    ) -> None:
        await flow.publish(
            [
                stage(
                    1,
                    ["alice", "bob"],
                    mode="all",
                    reminder_hours=1,
                    observers=["olga"],
                )
            ]
        )
        request_id = (await flow.start())["request_id"]

        await driver.advance(HOUR - 60)
        await driver.settle()
        assert await reminders_by_assignee(flow, request_id) == {}

        await driver.advance(60 + A_LITTLE)  # 1 h
        await driver.until(
            lambda: reminders_when(flow, request_id, {"alice": 1, "bob": 1}),
            what="first reminders",
        )
        reminders = await flow.events_of(request_id, "task_reminder")
        assert {e["actor"] for e in reminders} == {"system:reminder"}
        tasks = {t["assignee"]: t["id"] for t in await flow.tasks(request_id)}
        assert {e["payload"]["task_id"] for e in reminders} == {
            tasks["alice"],
            tasks["bob"],
        }, "observers are not reminded"

        # alice decides; only bob is reminded from now on.
        await flow.approve("alice", request_id)
        await driver.advance(HOUR)  # 2 h
        await driver.until(
            lambda: reminders_when(flow, request_id, {"bob": 2}),
            what="second reminder",
        )
        await driver.advance(HOUR)  # 3 h
        await driver.until(
            lambda: reminders_when(flow, request_id, {"bob": 3}),
            what="third reminder",
        )
        await driver.settle()
        assert await reminders_by_assignee(flow, request_id) == {"alice": 1, "bob": 3}

    async def test_missed_hours_give_one_reminder_not_a_burst(
        self, flow: Flow, driver: Driver
    ) -> None:
        await flow.publish([stage(1, ["alice"], reminder_hours=1)])
        request_id = (await flow.start())["request_id"]

        await driver.advance(5 * HOUR + A_LITTLE)  # five reminders due at once
        await driver.until(
            lambda: reminders_when(flow, request_id, {"alice": 1}),
            what="a reminder",
        )
        await driver.settle()
        assert await reminders_by_assignee(flow, request_id) == {"alice": 1}

        # The schedule stays on its grid: the next one is at 6 h, not 5 h + 1 h after the sweep.
        await driver.advance(HOUR - 2 * A_LITTLE)  # 6 h - a little
        await driver.settle()
        assert await reminders_by_assignee(flow, request_id) == {"alice": 1}
        await driver.advance(2 * A_LITTLE)  # 6 h + a little
        await driver.until(
            lambda: reminders_when(flow, request_id, {"alice": 2}),
            what="the 6 h reminder",
        )

    async def test_none_after_the_task_is_decided(
        self, flow: Flow, driver: Driver
    ) -> None:
        await flow.publish(
            [stage(1, ["alice"], reminder_hours=1), stage(2, ["bob"], reminder_hours=1)]
        )
        request_id = (await flow.start())["request_id"]
        await flow.approve("alice", request_id)
        await driver.advance(3 * HOUR + A_LITTLE)
        await driver.until(
            lambda: reminders_when(flow, request_id, {"bob": 1}),
            what="bob's reminder",
        )
        await driver.settle()
        assert await reminders_by_assignee(flow, request_id) == {"bob": 1}


async def expired_request(flow: Flow, request_id: str) -> Body | None:
    request = await flow.request(request_id)
    return request if request["status"] == "expired" else None


class TestExpiry:
    async def test_in_review_request_expires_and_open_tasks_are_skipped(
        self, flow: Flow, driver: Driver
    ) -> None:
        await flow.publish(
            [stage(1, ["alice", "bob"], mode="all"), stage(2, ["carol"])],
            request_ttl_hours=TTL_HOURS,
        )
        request_id = (await flow.start())["request_id"]
        await flow.approve("alice", request_id)

        await driver.advance(TTL_HOURS * HOUR - 60)
        await driver.settle()
        assert (await flow.request(request_id))["status"] == "in_review"

        await driver.advance(60 + A_LITTLE)
        request = await driver.until(
            lambda: expired_request(flow, request_id), what="request expired"
        )
        assert request["completed_at"] is not None
        assert {s["stage_order"]: s["status"] for s in request["stages"]} == {
            1: "cancelled",
            2: "cancelled",
        }
        assert await flow.task_status(request_id) == {
            (1, "alice"): "completed",
            (1, "bob"): "skipped",
        }
        (expired,) = await flow.events_of(request_id, "request_expired")
        assert expired["payload"]["reason"] == "request_ttl"
        assert expired["payload"]["skipped_task_ids"] == [
            t["id"] for t in await flow.tasks(request_id) if t["assignee"] == "bob"
        ]
        assert (await flow.event_types(request_id))[-1] == "request_expired"

        bob_task = next(
            t for t in await flow.tasks(request_id) if t["assignee"] == "bob"
        )
        response = await flow.client.post(
            f"/v1/tasks/{bob_task['id']}/decision",
            json={"action": "approve"},
            headers=flow.user("bob"),
        )
        assert response.status_code == 409
        assert problem_code(response) == "invalid_state"

    async def test_changes_requested_request_expires_too(
        self, flow: Flow, driver: Driver
    ) -> None:
        await flow.publish(
            [stage(1, ["alice"])],
            request_ttl_hours=TTL_HOURS,
            allow_request_changes=True,
        )
        request_id = (await flow.start())["request_id"]
        await flow.act("alice", request_id, "request_changes", comment="fix it")
        assert (await flow.request(request_id))["status"] == "changes_requested"

        await driver.advance(TTL_HOURS * HOUR + A_LITTLE)
        request = await driver.until(
            lambda: expired_request(flow, request_id), what="request expired"
        )
        assert request["outcome_reason"] == "request_ttl"
        types = await flow.event_types(request_id)
        assert types[-2:] == ["request_changes_requested", "request_expired"]
        resubmit = await flow.resubmit(request_id, comment="too late")
        assert resubmit.status_code == 409
        assert problem_code(resubmit) == "invalid_state"

    async def test_no_ttl_no_expiry(self, flow: Flow, driver: Driver) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]
        await driver.advance(365 * 24 * HOUR)
        await driver.settle()
        assert (await flow.request(request_id))["status"] == "in_review"
