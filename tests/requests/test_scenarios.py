"""Approval scenarios over HTTP on PostgreSQL: decision modes, required approvers, parallel groups,
observers, separation of duties, empty stages and stages skipped by `skip_if`.

Each class is one rule of the contract ("Policies": the decision table and the stage flow); each
test is one situation, told through the API the way a caller and its approvers live it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.kit.clock import now
from countersign.models import Delegation, Task
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import (
    Flow,
    count_rows,
    decide,
    problem_code,
    role_rule,
    stage,
    user_rule,
)


@pytest.fixture
def flow(
    client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    return Flow(client, admin_headers, token)


async def one_stage(
    flow: Flow,
    users: list[str],
    *,
    mode: str,
    mode_value: int | None = None,
    **stage_fields: Any,
) -> str:
    """Publish a one-stage policy with these approvers, open a request, return its id."""
    await flow.publish(
        [stage(1, users, mode=mode, mode_value=mode_value, **stage_fields)]
    )
    created = await flow.start()
    assert created["status"] == "in_review"
    return str(created["request_id"])


async def status_of(flow: Flow, request_id: str) -> tuple[str, str]:
    """(request status, stage 1 status)."""
    request = await flow.request(request_id)
    return request["status"], request["stages"][0]["status"]


# --- decision modes ------------------------------------------------------------------------------


class TestAllMode:
    async def test_waits_for_every_approver_then_approves(self, flow: Flow) -> None:
        request_id = await one_stage(flow, ["alice", "bob", "carol"], mode="all")

        assert (await flow.approve("alice", request_id))["stage_status"] == "active"
        assert (await flow.approve("bob", request_id))["stage_status"] == "active"
        last = await flow.approve("carol", request_id)

        assert (last["stage_status"], last["request_status"]) == (
            "approved",
            "approved",
        )

    async def test_one_rejection_vetoes_and_skips_the_open_tasks(
        self, flow: Flow
    ) -> None:
        request_id = await one_stage(flow, ["alice", "bob", "carol"], mode="all")
        await flow.approve("alice", request_id)

        rejected = await flow.reject("bob", request_id)

        assert rejected["request_status"] == "rejected"
        assert (await flow.task_status(request_id))[(1, "carol")] == "skipped"

    async def test_an_abstention_does_not_hang_the_stage(self, flow: Flow) -> None:
        # The predecessor waited forever for an abstainer's "approval".
        request_id = await one_stage(flow, ["alice", "bob", "carol"], mode="all")
        await flow.approve("alice", request_id)
        await flow.abstain("bob", request_id)

        last = await flow.approve("carol", request_id)

        assert last["request_status"] == "approved"
        counts = (await flow.request(request_id))["stages"][0]["counts"]
        assert counts == {"approve": 2, "reject": 0, "abstain": 1, "open": 0}

    async def test_everyone_abstaining_rejects(self, flow: Flow) -> None:
        request_id = await one_stage(flow, ["alice", "bob"], mode="all")
        await flow.abstain("alice", request_id)

        last = await flow.abstain("bob", request_id)

        assert (last["stage_status"], last["request_status"]) == (
            "rejected",
            "rejected",
        )

    async def test_without_veto_a_rejection_waits_for_everyone_then_rejects(
        self, flow: Flow
    ) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob", "carol"], mode="all", veto=False
        )

        assert (await flow.reject("alice", request_id))["stage_status"] == "active"
        assert (await flow.approve("bob", request_id))["stage_status"] == "active"
        last = await flow.approve("carol", request_id)

        assert last["request_status"] == "rejected"


class TestAnyN:
    async def test_second_approval_is_not_needed_once_threshold_met(
        self, flow: Flow
    ) -> None:
        request_id = await one_stage(flow, ["alice", "bob"], mode="any-n", mode_value=1)

        decided = await flow.approve("alice", request_id)

        assert decided["request_status"] == "approved"
        assert (await flow.task_status(request_id))[(1, "bob")] == "skipped"

    async def test_n_2_waits_for_the_second_approval(self, flow: Flow) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob", "carol"], mode="any-n", mode_value=2
        )

        assert (await flow.approve("alice", request_id))["stage_status"] == "active"
        second = await flow.approve("bob", request_id)

        assert second["request_status"] == "approved"
        assert (await flow.task_status(request_id))[(1, "carol")] == "skipped"

    async def test_a_rejection_vetoes_by_default(self, flow: Flow) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob", "carol"], mode="any-n", mode_value=2
        )
        await flow.approve("alice", request_id)

        assert (await flow.reject("bob", request_id))["request_status"] == "rejected"

    async def test_veto_false_lets_the_others_outvote_a_rejection(
        self, flow: Flow
    ) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob", "carol"], mode="any-n", mode_value=2, veto=False
        )

        assert (await flow.reject("alice", request_id))["stage_status"] == "active"
        await flow.approve("bob", request_id)
        last = await flow.approve("carol", request_id)

        assert last["request_status"] == "approved"

    async def test_unreachable_threshold_rejects_without_waiting(
        self, flow: Flow
    ) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob", "carol"], mode="any-n", mode_value=2, veto=False
        )
        await flow.reject("alice", request_id)

        # One open vote left cannot make two approvals.
        assert (await flow.abstain("bob", request_id))["request_status"] == "rejected"
        assert (await flow.task_status(request_id))[(1, "carol")] == "skipped"


class TestThresholdAboveTheApprovers:
    """A role can resolve fewer people than the stage needs: the stage cannot be approved."""

    @pytest.mark.parametrize("mode", ["any-n", "quorum"])
    async def test_the_stage_rejects_as_it_starts_instead_of_asking_for_votes(
        self, flow: Flow, mode: str
    ) -> None:
        # `registry:checker` is dave alone; two approvals can never happen.
        await flow.publish(
            [
                stage(
                    1,
                    [],
                    mode=mode,
                    mode_value=2,
                    rules=[role_rule("registry:checker")],
                ),
                stage(2, ["carol"]),
            ]
        )

        created = await flow.start()

        assert created["status"] == "rejected"
        request_id = created["request_id"]
        assert await flow.stage_status(request_id) == {1: "rejected", 2: "cancelled"}
        assert await flow.task_status(request_id) == {(1, "dave"): "skipped"}
        assert (await flow.event_types(request_id))[1:] == [
            "stage_started",
            "stage_quorum_skipped",
            "stage_completed",
            "request_rejected",
        ]


class TestQuorum:
    async def test_two_of_three_approve_despite_one_rejection(self, flow: Flow) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob", "carol"], mode="quorum", mode_value=2
        )

        rejected = await flow.reject("alice", request_id)
        assert (rejected["stage_status"], rejected["request_status"]) == (
            "active",
            "in_review",
        )
        await flow.approve("bob", request_id)
        last = await flow.approve("carol", request_id)

        assert last["request_status"] == "approved"
        counts = (await flow.request(request_id))["stages"][0]["counts"]
        assert counts == {"approve": 2, "reject": 1, "abstain": 0, "open": 0}

    async def test_unreachable_quorum_rejects(self, flow: Flow) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob", "carol"], mode="quorum", mode_value=2
        )
        await flow.reject("alice", request_id)

        last = await flow.reject("bob", request_id)

        assert last["request_status"] == "rejected"
        assert (await flow.task_status(request_id))[(1, "carol")] == "skipped"

    async def test_veto_true_makes_one_rejection_final(self, flow: Flow) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob", "carol"], mode="quorum", mode_value=2, veto=True
        )

        assert (await flow.reject("alice", request_id))["request_status"] == "rejected"


class TestPercentage:
    async def test_fifty_percent_of_four_needs_two_approvals(self, flow: Flow) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob", "carol", "dave"], mode="percentage", mode_value=50
        )

        assert (await flow.approve("alice", request_id))["stage_status"] == "active"
        last = await flow.approve("bob", request_id)

        assert last["request_status"] == "approved"
        statuses = await flow.task_status(request_id)
        assert (statuses[(1, "carol")], statuses[(1, "dave")]) == ("skipped", "skipped")

    async def test_rejections_stay_in_the_denominator_but_do_not_veto(
        self, flow: Flow
    ) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob", "carol", "dave"], mode="percentage", mode_value=50
        )
        await flow.reject("alice", request_id)
        # 1 of 4 decisive votes is 25 %: not yet.
        assert (await flow.approve("bob", request_id))["stage_status"] == "active"

        last = await flow.approve("carol", request_id)

        assert last["request_status"] == "approved"

    async def test_abstentions_are_excluded_from_the_denominator(
        self, flow: Flow
    ) -> None:
        # 67 % of 3 needs all 3; with one abstention it is 67 % of 2, i.e. 2. AWE, counting the
        # abstention, would never get there (2 of 3 is 66.7 %).
        request_id = await one_stage(
            flow, ["alice", "bob", "carol"], mode="percentage", mode_value=67
        )
        await flow.abstain("alice", request_id)
        assert (await flow.approve("bob", request_id))["stage_status"] == "active"

        last = await flow.approve("carol", request_id)

        assert last["request_status"] == "approved"

    async def test_an_unreachable_percentage_rejects_at_once(self, flow: Flow) -> None:
        # 67 % of 3 needs every vote: one rejection makes it unreachable.
        request_id = await one_stage(
            flow, ["alice", "bob", "carol"], mode="percentage", mode_value=67
        )

        last = await flow.reject("alice", request_id)

        assert last["request_status"] == "rejected"
        statuses = await flow.task_status(request_id)
        assert (statuses[(1, "bob")], statuses[(1, "carol")]) == ("skipped", "skipped")

    async def test_everyone_abstaining_rejects(self, flow: Flow) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob"], mode="percentage", mode_value=50
        )
        await flow.abstain("alice", request_id)

        assert (await flow.abstain("bob", request_id))["request_status"] == "rejected"

    async def test_veto_true_makes_one_rejection_final(self, flow: Flow) -> None:
        request_id = await one_stage(
            flow,
            ["alice", "bob", "carol", "dave"],
            mode="percentage",
            mode_value=50,
            veto=True,
        )

        assert (await flow.reject("alice", request_id))["request_status"] == "rejected"


# --- required approvers, parallel groups, observers ----------------------------------------------


class TestRequiredApprover:
    async def test_stage_waits_for_the_required_approver_even_when_the_mode_is_met(
        self, flow: Flow
    ) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob"], mode="any-n", mode_value=1, required=["bob"]
        )

        early = await flow.approve("alice", request_id)
        assert (early["stage_status"], early["request_status"]) == (
            "active",
            "in_review",
        )
        last = await flow.approve("bob", request_id)

        assert last["request_status"] == "approved"

    async def test_their_rejection_rejects_even_a_mode_without_veto(
        self, flow: Flow
    ) -> None:
        request_id = await one_stage(
            flow,
            ["alice", "bob", "carol"],
            mode="quorum",
            mode_value=1,
            required=["bob"],
        )
        await flow.approve("alice", request_id)

        last = await flow.reject("bob", request_id)

        assert last["request_status"] == "rejected"

    async def test_stage_started_names_the_required_approvers(self, flow: Flow) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob"], mode="any-n", required=["bob"]
        )

        [started] = await flow.events_of(request_id, "stage_started")

        assert started["payload"]["required_approvers"] == ["bob"]


class TestParallelGroup:
    @pytest.fixture
    async def request_id(self, flow: Flow) -> str:
        await flow.publish(
            [
                stage(1, ["alice"], parallel_group=1),
                stage(2, ["bob"], parallel_group=1),
                stage(3, ["carol"]),
            ]
        )
        return str((await flow.start())["request_id"])

    async def test_parallel_group_is_an_integer_as_in_awe(
        self, flow: Flow, request_id: str
    ) -> None:
        # AWE clients post `"parallel_group": 1`; the answer carries the integer back.
        policy = await flow.client.get(
            "/v1/policies/test.flow/versions/1", headers=flow.admin
        )
        assert [s["parallel_group"] for s in policy.json()["stages"]] == [1, 1, None]
        stages = (await flow.request(request_id))["stages"]
        assert [s["parallel_group"] for s in stages] == [1, 1, None]

    async def test_a_named_parallel_group_is_refused(self, flow: Flow) -> None:
        body = {
            "policy_key": "test.named-group",
            "name": "n",
            "artifact_type": "n",
            "stages": [stage(1, ["alice"], parallel_group="review")],
        }
        response = await flow.client.post("/v1/policies", json=body, headers=flow.admin)

        assert response.status_code == 422
        assert problem_code(response) == "validation_failed"

    async def test_adjacent_stages_of_a_group_start_together(
        self, flow: Flow, request_id: str
    ) -> None:
        assert await flow.stage_status(request_id) == {
            1: "active",
            2: "active",
            3: "pending",
        }
        started = await flow.events_of(request_id, "stage_started")
        assert [e["payload"]["stage_order"] for e in started] == [1, 2]
        assert (await flow.request(request_id))["current_stage_order"] == 1

    async def test_the_group_completes_only_when_both_stages_approve(
        self, flow: Flow, request_id: str
    ) -> None:
        await flow.approve("alice", request_id)
        assert await flow.stage_status(request_id) == {
            1: "approved",
            2: "active",
            3: "pending",
        }
        assert (await flow.request(request_id))["current_stage_order"] == 2

        await flow.approve("bob", request_id)
        assert await flow.stage_status(request_id) == {
            1: "approved",
            2: "approved",
            3: "active",
        }

        assert (await flow.approve("carol", request_id))["request_status"] == "approved"

    async def test_a_rejection_in_one_rejects_the_request_and_cancels_the_other(
        self, flow: Flow, request_id: str
    ) -> None:
        decided = await flow.reject("bob", request_id)

        assert decided["request_status"] == "rejected"
        assert await flow.stage_status(request_id) == {
            1: "cancelled",
            2: "rejected",
            3: "cancelled",
        }
        statuses = await flow.task_status(request_id)
        assert statuses == {(1, "alice"): "skipped", (2, "bob"): "completed"}

    async def test_a_group_that_comes_back_after_another_stage_is_refused(
        self, flow: Flow
    ) -> None:
        # Stages of a group must be adjacent, so "same name, not adjacent" never reaches the engine.
        body = {
            "policy_key": "test.split",
            "name": "split",
            "artifact_type": "test.split",
            "stages": [
                stage(1, ["alice"], parallel_group=1),
                stage(2, ["bob"]),
                stage(3, ["carol"], parallel_group=1),
            ],
        }
        response = await flow.client.post("/v1/policies", json=body, headers=flow.admin)

        assert response.status_code == 422
        assert problem_code(response) == "policy_invalid"
        assert [e["pointer"] for e in response.json()["errors"]] == [
            "/stages/2/parallel_group"
        ]


class TestObserver:
    async def test_an_observer_gets_a_task_that_is_not_an_approver_task(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"], observers=["dave"])])
        created = await flow.start()

        kinds = {t["assignee"]: t["kind"] for t in created["tasks"]}

        assert kinds == {"alice": "approver", "dave": "observer"}
        [started] = await flow.events_of(created["request_id"], "stage_started")
        assert started["payload"]["observers"] == ["dave"]

    async def test_their_approval_is_recorded_but_never_counts(
        self, flow: Flow
    ) -> None:
        request_id = await one_stage(flow, ["alice"], mode="all", observers=["dave"])

        decided = await flow.approve("dave", request_id)

        assert (decided["stage_status"], decided["request_status"]) == (
            "active",
            "in_review",
        )
        [recorded] = await flow.events_of(request_id, "decision_recorded")
        assert (recorded["actor"], recorded["payload"]["kind"]) == ("dave", "observer")
        counts = (await flow.request(request_id))["stages"][0]["counts"]
        assert counts == {"approve": 0, "reject": 0, "abstain": 0, "open": 1}

    async def test_their_rejection_does_not_veto(self, flow: Flow) -> None:
        request_id = await one_stage(
            flow, ["alice", "bob"], mode="all", observers=["dave"]
        )

        assert (await flow.reject("dave", request_id))["stage_status"] == "active"
        await flow.approve("alice", request_id)
        last = await flow.approve("bob", request_id)

        assert last["request_status"] == "approved"

    async def test_their_open_task_does_not_hold_up_an_all_stage_and_is_skipped(
        self, flow: Flow
    ) -> None:
        request_id = await one_stage(flow, ["alice"], mode="all", observers=["dave"])

        assert (await flow.approve("alice", request_id))["request_status"] == "approved"

        assert (await flow.task_status(request_id))[(1, "dave")] == "skipped"

    async def test_an_observer_cannot_request_changes(self, flow: Flow) -> None:
        request_id = await one_stage(flow, ["alice"], mode="all", observers=["dave"])

        response = await flow.decide("dave", request_id, "request_changes")

        assert response.status_code == 409
        assert problem_code(response) == "invalid_state"


# --- separation of duties ------------------------------------------------------------------------


async def add_delegation(session: AsyncSession, user_id: str, delegate_to: str) -> None:
    """An active delegation window, written directly (the delegations API is not under test)."""
    at = now()
    session.add(
        Delegation(
            id=uuid.uuid4(),
            user_id=user_id,
            delegate_to=delegate_to,
            starts_at=at - timedelta(hours=1),
            ends_at=at + timedelta(days=1),
            reason="holiday",
            created_by=user_id,
            created_at=at,
        )
    )
    await session.commit()


class TestForbidSelfApproval:
    @pytest.fixture
    async def request_id(self, flow: Flow) -> str:
        await flow.publish([stage(1, ["alice", "bob"])], forbid_self_approval=True)
        created = await flow.start(requester="alice")
        assert {t["assignee"] for t in created["tasks"]} == {"bob"}
        return str(created["request_id"])

    async def test_the_requester_is_removed_at_resolution(
        self, flow: Flow, request_id: str
    ) -> None:
        [started] = await flow.events_of(request_id, "stage_started")

        assert started["payload"]["removed_by_sod"] == ["alice"]
        assert started["payload"]["approvers"] == ["bob"]

    async def test_reassigning_a_task_to_the_requester_is_refused(
        self, flow: Flow, request_id: str
    ) -> None:
        task_id = await flow.open_task("bob", request_id)

        response = await flow.reassign(task_id, "alice")

        assert response.status_code == 403
        assert problem_code(response) == "forbidden"
        assert (await flow.task_status(request_id)) == {(1, "bob"): "open"}

    async def test_a_requester_holding_a_task_anyway_cannot_decide_it(
        self, flow: Flow, request_id: str, session: AsyncSession
    ) -> None:
        # However the task got there (a directory change, a manual fix), the decision-time check holds.
        task_id = await flow.open_task("bob", request_id)
        await session.execute(
            update(Task).where(Task.id == uuid.UUID(task_id)).values(assignee="alice")
        )
        await session.commit()
        before = await count_rows(session, request_id)

        response = await flow.decide("alice", request_id)

        assert response.status_code == 403
        assert problem_code(response) == "forbidden"
        assert await count_rows(session, request_id) == before

    async def test_off_lets_the_requester_approve(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])], forbid_self_approval=False)
        request_id = (await flow.start(requester="alice"))["request_id"]

        assert (await flow.approve("alice", request_id))["request_status"] == "approved"

    async def test_a_delegate_of_the_requester_is_removed_too(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        # alice is away and lets bob act for her: bob must not approve alice's own request.
        await add_delegation(session, "alice", "bob")
        await flow.publish([stage(1, ["bob", "carol"])], forbid_self_approval=True)
        created = await flow.start(requester="alice")

        [started] = await flow.events_of(created["request_id"], "stage_started")

        assert started["payload"]["removed_by_sod"] == ["bob"]
        assert {t["assignee"] for t in created["tasks"]} == {"carol"}

    async def test_a_delegate_of_the_requester_cannot_decide_a_task_they_already_held(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        await flow.publish([stage(1, ["bob", "carol"])], forbid_self_approval=True)
        request_id = (await flow.start(requester="alice"))["request_id"]
        await add_delegation(session, "alice", "bob")

        response = await flow.decide("bob", request_id)

        assert response.status_code == 403
        assert problem_code(response) == "forbidden"


class TestForbidSelfApprovalCoversTheCreator:
    """A user who creates a request "for" someone else is barred like the requester (API.md,
    separation of duties: the requester and the creating principal, and their delegates)."""

    @pytest.fixture
    async def request_id(self, flow: Flow) -> str:
        await flow.publish([stage(1, ["bob", "dave"])], forbid_self_approval=True)
        created = await flow.start(requester="carol", headers=flow.user("bob"))
        assert {t["assignee"] for t in created["tasks"]} == {"dave"}
        return str(created["request_id"])

    async def test_bob_creating_for_carol_is_not_an_approver(
        self, flow: Flow, request_id: str
    ) -> None:
        [started] = await flow.events_of(request_id, "stage_started")

        assert started["payload"]["removed_by_sod"] == ["bob"]
        assert started["payload"]["approvers"] == ["dave"]

    async def test_reassigning_to_the_creator_is_refused(
        self, flow: Flow, request_id: str
    ) -> None:
        task_id = await flow.open_task("dave", request_id)

        response = await flow.reassign(task_id, "bob")

        assert response.status_code == 403
        assert problem_code(response) == "forbidden"
        assert "creator" in response.json()["detail"]
        assert (await flow.task_status(request_id)) == {(1, "dave"): "open"}

    async def test_the_creator_cannot_decide_a_task_reassigned_to_him(
        self, flow: Flow, request_id: str, session: AsyncSession
    ) -> None:
        # However the task reached bob (a reassignment before the rule, a manual fix), the
        # decision-time check refuses it and writes nothing.
        task_id = await flow.open_task("dave", request_id)
        await session.execute(
            update(Task).where(Task.id == uuid.UUID(task_id)).values(assignee="bob")
        )
        await session.commit()
        before = await count_rows(session, request_id)

        response = await flow.decide("bob", request_id)

        assert response.status_code == 403
        assert problem_code(response) == "forbidden"
        assert await count_rows(session, request_id) == before

    async def test_the_creator_cannot_decide_as_someone_elses_delegate(
        self, flow: Flow, request_id: str, session: AsyncSession
    ) -> None:
        await add_delegation(session, "dave", "bob")
        task_id = await flow.open_task("dave", request_id)

        response = await decide(flow.client, flow.token("bob"), task_id)

        assert response.status_code == 403
        assert problem_code(response) == "forbidden"

    async def test_a_delegate_of_the_creator_is_removed_at_resolution(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        await add_delegation(session, "bob", "erin")
        await flow.publish([stage(1, ["erin", "dave"])], forbid_self_approval=True)
        created = await flow.start(requester="carol", headers=flow.user("bob"))

        [started] = await flow.events_of(created["request_id"], "stage_started")

        assert started["payload"]["removed_by_sod"] == ["erin"]
        assert {t["assignee"] for t in created["tasks"]} == {"dave"}

    async def test_a_delegate_of_the_creator_cannot_decide_a_task_held_before(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        await flow.publish([stage(1, ["erin", "dave"])], forbid_self_approval=True)
        created = await flow.start(requester="carol", headers=flow.user("bob"))
        await add_delegation(session, "bob", "erin")

        response = await flow.decide("erin", created["request_id"])

        assert response.status_code == 403
        assert "delegate_of_creator" in response.json()["detail"]

    async def test_a_task_is_never_delegated_to_the_creator(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        # dave is away and bob stands in for him: dave's task stays with dave, since handed to
        # bob it could never be decided.
        await add_delegation(session, "dave", "bob")
        await flow.publish([stage(1, ["dave"])], forbid_self_approval=True)
        created = await flow.start(requester="carol", headers=flow.user("bob"))

        assert [(t["assignee"], t["delegated_from"]) for t in created["tasks"]] == [
            ("dave", None)
        ]


class TestForbidRepeatApprovers:
    @pytest.fixture
    async def request_id(self, flow: Flow) -> str:
        await flow.publish(
            [
                stage(1, ["alice", "bob"]),
                stage(2, [], rules=[role_rule("district_officer"), user_rule("carol")]),
            ],
            forbid_repeat_approvers=True,
        )
        return str((await flow.start())["request_id"])

    async def test_an_earlier_approver_gets_no_task_in_a_later_stage(
        self, flow: Flow, request_id: str
    ) -> None:
        await flow.approve("alice", request_id)

        [_, second] = await flow.events_of(request_id, "stage_started")

        # The role resolves alice, bob and frank; alice approved stage 1. bob's stage-1 task was
        # skipped, not approved, so bob may still decide stage 2.
        assert second["payload"]["removed_by_sod"] == ["alice"]
        assert sorted(second["payload"]["approvers"]) == ["bob", "carol", "frank"]

    async def test_an_earlier_approver_holding_a_later_task_anyway_cannot_decide_it(
        self, flow: Flow, request_id: str, session: AsyncSession
    ) -> None:
        await flow.approve("alice", request_id)
        task_id = await flow.open_task("carol", request_id)
        await session.execute(
            update(Task).where(Task.id == uuid.UUID(task_id)).values(assignee="alice")
        )
        await session.commit()
        before = await count_rows(session, request_id)

        response = await flow.decide("alice", request_id)

        assert response.status_code == 403
        assert problem_code(response) == "forbidden"
        assert await count_rows(session, request_id) == before

    async def test_reassigning_a_later_task_to_an_earlier_approver_is_refused(
        self, flow: Flow, request_id: str
    ) -> None:
        await flow.approve("alice", request_id)
        task_id = await flow.open_task("carol", request_id)

        response = await flow.reassign(task_id, "alice")

        assert response.status_code == 403
        assert problem_code(response) == "forbidden"

    async def test_a_later_task_is_not_delegated_to_an_earlier_approver(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        # alice approved stage 1 and stands in for dave: dave's stage-2 task stays with dave,
        # since alice could never decide it and the stage would hang.
        await flow.publish(
            [stage(1, ["alice"]), stage(2, ["dave"])], forbid_repeat_approvers=True
        )
        request_id = (await flow.start())["request_id"]
        await add_delegation(session, "dave", "alice")

        await flow.approve("alice", request_id)

        tasks = [t for t in await flow.tasks(request_id) if t["stage_order"] == 2]
        assert [(t["assignee"], t["delegated_from"]) for t in tasks] == [("dave", None)]
        assert (await flow.approve("dave", request_id))["request_status"] == "approved"


# --- empty stages, skipped stages, no stages -----------------------------------------------------


class TestOnEmpty:
    async def test_block_rejects_the_request_with_no_approvers_resolved(
        self, flow: Flow
    ) -> None:
        await flow.publish(
            [
                stage(1, [], rules=[role_rule("auditor")], on_empty="block"),
                stage(2, ["carol"]),
            ]
        )

        created = await flow.start()

        assert (created["status"], created["tasks"]) == ("rejected", [])
        request = await flow.request(created["request_id"])
        assert request["outcome_reason"] == "no_approvers_resolved"
        assert await flow.stage_status(created["request_id"]) == {
            1: "rejected",
            2: "cancelled",
        }
        assert await flow.event_types(created["request_id"]) == [
            "request_created",
            "stage_completed",
            "request_rejected",
        ]
        rejected = (await flow.events(created["request_id"]))[-1]
        assert rejected["payload"]["reason"] == "no_approvers_resolved"

    async def test_block_also_applies_when_sod_removed_everyone(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])], forbid_self_approval=True)

        created = await flow.start(requester="alice")

        assert created["status"] == "rejected"
        completed = await flow.events_of(created["request_id"], "stage_completed")
        assert completed[0]["payload"]["removed_by_sod"] == ["alice"]

    async def test_block_in_a_parallel_group_rejects_before_the_sibling_starts(
        self, flow: Flow
    ) -> None:
        await flow.publish(
            [
                stage(1, [], rules=[role_rule("auditor")], parallel_group=1),
                stage(2, ["bob"], parallel_group=1),
            ]
        )

        created = await flow.start()

        assert (created["status"], created["tasks"]) == ("rejected", [])
        assert await flow.stage_status(created["request_id"]) == {
            1: "rejected",
            2: "cancelled",
        }
        # bob was never handed a task (nor told of one by a stage_started webhook).
        assert await flow.tasks(created["request_id"]) == []
        assert "stage_started" not in await flow.event_types(created["request_id"])

    async def test_skip_skips_the_stage_and_starts_the_next(self, flow: Flow) -> None:
        await flow.publish(
            [
                stage(1, [], rules=[role_rule("auditor")], on_empty="skip"),
                stage(2, ["carol"]),
            ]
        )

        created = await flow.start()

        assert (created["status"], created["current_stage_order"]) == ("in_review", 2)
        assert [t["assignee"] for t in created["tasks"]] == ["carol"]
        assert await flow.event_types(created["request_id"]) == [
            "request_created",
            "stage_skipped",
            "stage_started",
        ]
        [skipped] = await flow.events_of(created["request_id"], "stage_skipped")
        assert skipped["payload"]["reason"] == "no_approvers_resolved"


class TestApprovedAtOnce:
    async def test_a_policy_without_stages_approves_on_creation(
        self, flow: Flow
    ) -> None:
        await flow.publish([])

        response = await flow.create()

        assert response.status_code == 201
        created = response.json()
        assert (
            created["status"],
            created["current_stage_order"],
            created["tasks"],
        ) == (
            "approved",
            None,
            [],
        )
        request = await flow.request(created["request_id"])
        assert request["completed_at"] is not None
        assert await flow.event_types(created["request_id"]) == [
            "request_created",
            "request_approved",
        ]

    async def test_every_stage_skipped_by_skip_if_approves_on_creation(
        self, flow: Flow
    ) -> None:
        small = {"<": [{"var": "amount"}, 100]}
        await flow.publish(
            [stage(1, ["alice"], skip_if=small), stage(2, ["carol"], skip_if=small)]
        )

        created = await flow.start(context={"amount": 50})

        assert (created["status"], created["tasks"]) == ("approved", [])
        assert await flow.event_types(created["request_id"]) == [
            "request_created",
            "stage_skipped",
            "stage_skipped",
            "request_approved",
        ]
        assert await flow.stage_status(created["request_id"]) == {
            1: "skipped",
            2: "skipped",
        }

    async def test_skip_if_sees_the_context_and_the_request_fields(
        self, flow: Flow
    ) -> None:
        own_request = {"==": [{"var": "_request.requester"}, "frank"]}
        small = {"<": [{"var": "amount"}, 100]}
        await flow.publish(
            [
                stage(1, ["alice"], skip_if=own_request),
                stage(2, ["carol"], skip_if=small),
            ]
        )

        created = await flow.start(context={"amount": 500}, requester="frank")

        assert (created["status"], created["current_stage_order"]) == ("in_review", 2)
        [skipped] = await flow.events_of(created["request_id"], "stage_skipped")
        assert skipped["payload"] == {
            "stage_order": 1,
            "name": "Stage 1",
            "reason": "skip_if",
        }
