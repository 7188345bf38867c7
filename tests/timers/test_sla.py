"""Stage SLAs: every `on_breach`, end to end, through the tick hook and through a worker's cron.

API.md ("Policies", SLA): `sla_hours` gives every approver task a `due_at`. When it passes,
`notify` emits `task_expired` only (tasks stay open); `escalate` resolves `escalation_rules` and
adds their tasks (original approvers can still act) and emits `stage_escalated`; `auto_approve` /
`auto_reject` decide the stage with actor `system:sla`.

The predecessor's bug (DESIGN.md): tasks expired before the breach handler ran, so
`auto_approve`/`auto_reject` never did anything. Here the stage really settles and the request
moves on.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.flows import Body, Flow, problem_code, stage
from tests.timers.drivers import HOUR, Driver, TickDriver

SLA_HOURS = 2
JUST_BEFORE_DUE = SLA_HOURS * HOUR - 60
PAST_DUE = 120.0
SLA_ACTOR = "system:sla"


def sla_stage(order: int, users: list[str], on_breach: str, **extra: Any) -> Body:
    return stage(order, users, sla_hours=SLA_HOURS, on_breach=on_breach, **extra)


async def events_when(
    flow: Flow, request_id: str, event_type: str, count: int
) -> list[Body] | None:
    """The request's `event_type` events once there are at least `count` of them."""
    found = await flow.events_of(request_id, event_type)
    return found if len(found) >= count else None


async def no_breach_before_due(driver: Driver, flow: Flow, request_id: str) -> None:
    """One minute before `due_at` nothing has happened yet."""
    types_before = await flow.event_types(request_id)
    await driver.advance(JUST_BEFORE_DUE)
    await driver.settle()
    assert await flow.event_types(request_id) == types_before


async def test_tasks_carry_the_stage_due_at(flow: Flow) -> None:
    await flow.publish([sla_stage(1, ["alice"], "notify", observers=["olga"])])
    created = await flow.start()
    (request,) = [await flow.request(created["request_id"])]
    due_at = request["stages"][0]["due_at"]
    assert due_at is not None
    tasks = {t["assignee"]: t for t in created["tasks"]}
    assert tasks["alice"]["due_at"] == due_at
    assert tasks["olga"]["due_at"] is None, "observers have no SLA"


class TestNotify:
    async def test_emits_task_expired_per_open_task_and_tasks_stay_open(
        self, flow: Flow, driver: Driver
    ) -> None:
        await flow.publish(
            [sla_stage(1, ["alice", "bob"], "notify", mode="all"), stage(2, ["carol"])]
        )
        request_id = (await flow.start())["request_id"]
        await no_breach_before_due(driver, flow, request_id)

        await driver.advance(PAST_DUE)
        expired = await driver.until(
            lambda: events_when(flow, request_id, "task_expired", 2),
            what="task_expired for alice and bob",
        )
        assert sorted(e["payload"]["assignee"] for e in expired) == ["alice", "bob"]
        assert {e["actor"] for e in expired} == {SLA_ACTOR}
        assert {e["payload"]["on_breach"] for e in expired} == {"notify"}
        assert await flow.task_status(request_id) == {
            (1, "alice"): "open",
            (1, "bob"): "open",
        }
        assert (await flow.stage_status(request_id))[1] == "active"

        # Notified once per due moment, not on every sweep after it.
        await driver.advance(HOUR)
        await driver.settle()
        assert len(await flow.events_of(request_id, "task_expired")) == 2

        # Late decisions still count.
        await flow.approve("alice", request_id)
        decided = await flow.approve("bob", request_id)
        assert decided["stage_status"] == "approved"
        assert await flow.stage_status(request_id) == {1: "approved", 2: "active"}


class TestEscalate:
    @pytest.mark.parametrize("decider", ["alice", "carol"])
    async def test_adds_escalation_tasks_and_either_side_settles_the_stage(
        self, flow: Flow, driver: Driver, decider: str
    ) -> None:
        await flow.publish(
            [
                sla_stage(
                    1,
                    ["alice"],
                    "escalate",
                    escalation_rules=[
                        {"rule_type": "user", "rule_value": {"user_id": "carol"}}
                    ],
                ),
                stage(2, ["dave"]),
            ]
        )
        request_id = (await flow.start())["request_id"]
        await no_breach_before_due(driver, flow, request_id)

        await driver.advance(PAST_DUE)
        (escalated,) = await driver.until(
            lambda: events_when(flow, request_id, "stage_escalated", 1),
            what="stage_escalated",
        )
        assert escalated["actor"] == SLA_ACTOR
        assert escalated["payload"]["stage_order"] == 1
        assert escalated["payload"]["escalated_to"] == ["carol"]
        assert await flow.task_status(request_id) == {
            (1, "alice"): "open",
            (1, "carol"): "open",
        }
        assert "task_expired" not in await flow.event_types(request_id)

        # Escalated once: later sweeps add nobody.
        await driver.advance(HOUR)
        await driver.settle()
        assert len(await flow.events_of(request_id, "stage_escalated")) == 1
        assert len(await flow.tasks(request_id)) == 2

        decided = await flow.approve(decider, request_id)
        assert decided["stage_status"] == "approved"
        other = "carol" if decider == "alice" else "alice"
        statuses = await flow.task_status(request_id)
        assert statuses[(1, decider)] == "completed"
        assert statuses[(1, other)] == "skipped"
        assert statuses[(2, "dave")] == "open"

    async def test_escalation_tasks_go_to_an_active_delegate(
        self, flow: Flow, driver: Driver
    ) -> None:
        """A task created while its assignee's window is active goes to the delegate, escalation
        tasks included."""
        await flow.publish(
            [
                sla_stage(
                    1,
                    ["alice"],
                    "escalate",
                    escalation_rules=[
                        {"rule_type": "user", "rule_value": {"user_id": "carol"}}
                    ],
                )
            ]
        )
        request_id = (await flow.start())["request_id"]
        window = await flow.client.post(
            "/v1/delegations",
            json={
                "user_id": "carol",
                "delegate_to": "frank",
                "starts_at": "2000-01-01T00:00:00Z",
                "ends_at": "2999-01-01T00:00:00Z",
            },
            headers=flow.admin,
        )
        assert window.status_code == 201, window.text

        await driver.advance(SLA_HOURS * HOUR + PAST_DUE)
        (escalated,) = await driver.until(
            lambda: events_when(flow, request_id, "stage_escalated", 1),
            what="stage_escalated",
        )
        assert escalated["payload"]["escalated_to"] == ["frank"]
        (added,) = [t for t in await flow.tasks(request_id) if t["assignee"] != "alice"]
        assert (added["assignee"], added["delegated_from"]) == ("frank", "carol")
        decided = await flow.approve("frank", request_id)
        assert decided["request_status"] == "approved"

    async def test_escalation_respects_separation_of_duties(
        self, flow: Flow, admin_headers: dict[str, str]
    ) -> None:
        """The requester is never an escalation target under `forbid_self_approval`."""
        await flow.publish(
            [
                sla_stage(
                    1,
                    ["alice"],
                    "escalate",
                    escalation_rules=[
                        {"rule_type": "user", "rule_value": {"user_id": "rita"}},
                        {"rule_type": "user", "rule_value": {"user_id": "carol"}},
                    ],
                )
            ],
            forbid_self_approval=True,
        )
        request_id = (await flow.start(requester="rita"))["request_id"]
        driver = TickDriver(flow.client, admin_headers)
        await driver.advance(SLA_HOURS * HOUR + PAST_DUE)
        await driver.tick()
        (escalated,) = await flow.events_of(request_id, "stage_escalated")
        assert escalated["payload"]["escalated_to"] == ["carol"]
        assert escalated["payload"]["removed_by_sod"] == ["rita"]
        assert sorted(t["assignee"] for t in await flow.tasks(request_id)) == [
            "alice",
            "carol",
        ]

    async def test_escalation_never_targets_the_creator(
        self, flow: Flow, admin_headers: dict[str, str]
    ) -> None:
        """bob creates the request for rita: bob is the creator, never an escalation target."""
        await flow.publish(
            [
                sla_stage(
                    1,
                    ["alice"],
                    "escalate",
                    escalation_rules=[
                        {"rule_type": "user", "rule_value": {"user_id": "bob"}},
                        {"rule_type": "user", "rule_value": {"user_id": "carol"}},
                    ],
                )
            ],
            forbid_self_approval=True,
        )
        created = await flow.start(requester="rita", headers=flow.user("bob"))
        request_id = created["request_id"]
        driver = TickDriver(flow.client, admin_headers)
        await driver.advance(SLA_HOURS * HOUR + PAST_DUE)
        await driver.tick()
        (escalated,) = await flow.events_of(request_id, "stage_escalated")
        assert escalated["payload"]["escalated_to"] == ["carol"]
        assert escalated["payload"]["removed_by_sod"] == ["bob"]

    async def test_unreachable_escalation_rules_are_retried(
        self, flow: Flow, admin_headers: dict[str, str]
    ) -> None:
        """An escalation whose rules cannot be resolved now is tried again later (every
        5 minutes), the failure is in the timeline, and the stage stays decidable meanwhile."""
        await flow.publish(
            [
                sla_stage(
                    1,
                    ["alice"],
                    "escalate",
                    escalation_rules=[
                        {
                            "rule_type": "http",
                            # Nothing listens on the discard port: the call fails at once.
                            "rule_value": {
                                "url": "http://127.0.0.1:9/approvers",
                                "timeout_seconds": 1,
                            },
                        }
                    ],
                )
            ]
        )
        request_id = (await flow.start())["request_id"]
        driver = TickDriver(flow.client, admin_headers)
        await driver.advance(SLA_HOURS * HOUR + PAST_DUE)
        await driver.tick()
        (failed,) = await flow.events_of(request_id, "stage_resolution_failed")
        assert failed["actor"] == SLA_ACTOR
        assert failed["payload"]["escalation"] is True
        assert "stage_escalated" not in await flow.event_types(request_id)

        await driver.tick()  # not yet due again
        assert len(await flow.events_of(request_id, "stage_resolution_failed")) == 1
        await driver.advance(5 * 60 + 5)
        await driver.tick()
        assert len(await flow.events_of(request_id, "stage_resolution_failed")) == 2

        decided = await flow.approve("alice", request_id)
        assert decided["request_status"] == "approved"


class TestAutoApprove:
    async def test_settles_the_stage_as_system_sla_and_starts_the_next(
        self, flow: Flow, driver: Driver
    ) -> None:
        await flow.publish(
            [
                sla_stage(1, ["alice", "bob"], "auto_approve", mode="all"),
                stage(2, ["carol"]),
            ]
        )
        request_id = (await flow.start())["request_id"]
        await flow.approve("alice", request_id)
        await no_breach_before_due(driver, flow, request_id)

        await driver.advance(PAST_DUE)
        await driver.until(
            lambda: events_when(flow, request_id, "stage_started", 2),
            what="stage 2 started",
        )
        events = await flow.events(request_id)
        (completed,) = [e for e in events if e["event_type"] == "stage_completed"]
        assert completed["actor"] == SLA_ACTOR
        assert completed["payload"]["stage_order"] == 1
        assert completed["payload"]["outcome"] == "approved"
        assert completed["payload"]["reason"] == "sla_breach"
        started = [e for e in events if e["event_type"] == "stage_started"][-1]
        assert started["payload"]["stage_order"] == 2
        assert started["payload"]["approvers"] == ["carol"]

        request = await flow.request(request_id)
        assert request["status"] == "in_review"
        assert request["current_stage_order"] == 2
        assert {s["stage_order"]: s["status"] for s in request["stages"]} == {
            1: "approved",
            2: "active",
        }
        # bob's task was settled by the SLA, not left to be decided afterwards.
        bob_task = next(
            t for t in await flow.tasks(request_id) if t["assignee"] == "bob"
        )
        assert bob_task["status"] not in ("open", "claimed")
        late = await flow.client.post(
            f"/v1/tasks/{bob_task['id']}/decision",
            json={"action": "reject"},
            headers=flow.user("bob"),
        )
        assert late.status_code == 409
        assert problem_code(late) == "invalid_state"

        decided = await flow.approve("carol", request_id)
        assert decided["request_status"] == "approved"


class TestAutoReject:
    async def test_rejects_the_request_as_system_sla(
        self, flow: Flow, driver: Driver
    ) -> None:
        await flow.publish(
            [
                sla_stage(1, ["alice"], "auto_reject", observers=["olga"]),
                stage(2, ["carol"]),
            ]
        )
        request_id = (await flow.start())["request_id"]
        await no_breach_before_due(driver, flow, request_id)

        await driver.advance(PAST_DUE)
        (rejected,) = await driver.until(
            lambda: events_when(flow, request_id, "request_rejected", 1),
            what="request_rejected",
        )
        assert rejected["actor"] == SLA_ACTOR
        request = await flow.request(request_id)
        assert request["status"] == "rejected"
        assert request["outcome_reason"] == "sla_breach"
        assert {s["stage_order"]: s["status"] for s in request["stages"]} == {
            1: "rejected",
            2: "cancelled",
        }
        statuses = await flow.task_status(request_id)
        assert statuses[(1, "alice")] not in ("open", "claimed")
        assert statuses[(1, "olga")] == "skipped"
        assert not [t for t in await flow.tasks(request_id) if t["stage_order"] == 2]
