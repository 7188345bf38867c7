"""A request's life over HTTP on PostgreSQL: the happy path, rejection, cancellation, reassignment,
decisions that come too late or twice, and sending a request back for changes and resubmitting it.

The contract's "Requests" and "Tasks" sections; the AWE defects that DESIGN.md lists are pinned by
the tests named after them (an `all` stage after a reassignment, a double decision).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import (
    CALLER_CLIENT,
    CALLER_ID,
    Flow,
    count_rows,
    problem_code,
    stage,
)


@pytest.fixture
def flow(
    client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    return Flow(client, admin_headers, token)


async def two_stage_request(flow: Flow, **policy_fields: Any) -> str:
    """District officers alice or bob (any 1), then carol; returns the new request's id."""
    await flow.publish(
        [stage(1, ["alice", "bob"]), stage(2, ["carol"])], **policy_fields
    )
    return str((await flow.start())["request_id"])


class TestTwoStageHappyPath:
    async def test_creation_starts_stage_one_with_a_task_per_approver(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice", "bob"]), stage(2, ["carol"])])

        created = await flow.start()

        assert (created["status"], created["current_stage_order"]) == ("in_review", 1)
        tasks = created["tasks"]
        assert sorted(t["assignee"] for t in tasks) == ["alice", "bob"]
        assert {(t["stage_order"], t["kind"], t["status"]) for t in tasks} == {
            (1, "approver", "open")
        }
        assert await flow.stage_status(created["request_id"]) == {
            1: "active",
            2: "pending",
        }

    async def test_runs_stage_by_stage_to_approval(self, flow: Flow) -> None:
        request_id = await two_stage_request(flow)

        first = await flow.approve("alice", request_id)
        assert (first["stage_status"], first["request_status"]) == (
            "approved",
            "in_review",
        )
        middle = await flow.request(request_id)
        assert (middle["current_stage_order"], middle["completed_at"]) == (2, None)

        last = await flow.approve("carol", request_id)
        assert (last["stage_status"], last["request_status"]) == (
            "approved",
            "approved",
        )

        done = await flow.request(request_id)
        assert done["status"] == "approved"
        assert done["current_stage_order"] is None
        assert done["outcome_reason"] is None
        assert done["completed_at"] is not None
        assert [(s["status"], s["counts"]) for s in done["stages"]] == [
            ("approved", {"approve": 1, "reject": 0, "abstain": 0, "open": 0}),
            ("approved", {"approve": 1, "reject": 0, "abstain": 0, "open": 0}),
        ]

    async def test_timeline_tells_the_story_in_order(self, flow: Flow) -> None:
        request_id = await two_stage_request(flow)
        await flow.approve("alice", request_id)
        await flow.approve("carol", request_id)

        assert await flow.event_types(request_id) == [
            "request_created",
            "stage_started",
            "decision_recorded",
            "stage_quorum_skipped",
            "stage_completed",
            "stage_started",
            "decision_recorded",
            "stage_completed",
            "request_approved",
        ]

    async def test_the_task_left_open_in_stage_one_is_skipped(self, flow: Flow) -> None:
        request_id = await two_stage_request(flow)
        bob_task = await flow.open_task("bob", request_id)

        await flow.approve("alice", request_id)

        assert (await flow.task_status(request_id))[(1, "bob")] == "skipped"
        [quorum] = await flow.events_of(request_id, "stage_quorum_skipped")
        assert quorum["payload"] == {"stage_order": 1, "task_ids": [bob_task]}
        # bob's inbox no longer offers it.
        inbox = await flow.client.get(
            "/v1/tasks", params={"status": "open"}, headers=flow.user("bob")
        )
        assert inbox.json()["items"] == []


class TestReject:
    async def test_a_veto_rejects_the_request_and_cancels_later_stages(
        self, flow: Flow
    ) -> None:
        request_id = await two_stage_request(flow)

        decided = await flow.reject("alice", request_id, comment="wrong district")

        assert (decided["stage_status"], decided["request_status"]) == (
            "rejected",
            "rejected",
        )
        request = await flow.request(request_id)
        assert request["outcome_reason"] == "stage_rejected"
        assert request["completed_at"] is not None
        assert request["current_stage_order"] is None
        assert await flow.stage_status(request_id) == {1: "rejected", 2: "cancelled"}
        # Nobody in stage 2 was ever asked; bob's open task is skipped.
        assert await flow.task_status(request_id) == {
            (1, "alice"): "completed",
            (1, "bob"): "skipped",
        }

    async def test_timeline_ends_with_request_rejected_and_its_reason(
        self, flow: Flow
    ) -> None:
        request_id = await two_stage_request(flow)
        bob_task = await flow.open_task("bob", request_id)

        await flow.reject("alice", request_id)

        assert (await flow.event_types(request_id))[2:] == [
            "decision_recorded",
            "stage_quorum_skipped",
            "stage_completed",
            "request_rejected",
        ]
        completed, rejected = (await flow.events(request_id))[-2:]
        assert completed["payload"]["outcome"] == "rejected"
        assert rejected["payload"]["reason"] == "stage_rejected"
        assert rejected["actor"] == "alice"
        # bob's task was already skipped with the stage, so there is nothing left to skip.
        assert bob_task not in rejected["payload"]["skipped_task_ids"]


class TestCancel:
    async def test_the_creating_caller_cancels_with_a_reason(self, flow: Flow) -> None:
        request_id = await two_stage_request(flow)

        response = await flow.cancel(request_id, reason="duplicate")

        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["status"], body["outcome_reason"]) == ("cancelled", "duplicate")
        assert body["completed_at"] is not None
        assert [s["status"] for s in body["stages"]] == ["cancelled", "cancelled"]
        assert set((await flow.task_status(request_id)).values()) == {"skipped"}
        cancelled = (await flow.events(request_id))[-1]
        assert cancelled["event_type"] == "request_cancelled"
        assert (cancelled["actor"], cancelled["payload"]["reason"]) == (
            CALLER_ID,
            "duplicate",
        )
        assert len(cancelled["payload"]["skipped_task_ids"]) == 2

    async def test_the_awe_actor_field_is_ignored_for_the_token_principal(
        self, flow: Flow
    ) -> None:
        request_id = await two_stage_request(flow)

        response = await flow.cancel(request_id, reason="dup", actor="director-x")

        assert response.status_code == 200
        assert (await flow.events(request_id))[-1]["actor"] == CALLER_ID

    async def test_another_token_of_the_creating_client_may_cancel(
        self, flow: Flow
    ) -> None:
        request_id = await two_stage_request(flow)
        clerk = flow.user("registry-clerk", azp=CALLER_CLIENT)

        response = await flow.cancel(request_id, headers=clerk)

        assert response.status_code == 200
        assert (await flow.events(request_id))[-1]["actor"] == "registry-clerk"

    async def test_the_requester_may_cancel(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start(requester="frank"))["request_id"]

        response = await flow.cancel(request_id, headers=flow.user("frank"))

        assert (response.status_code, response.json()["status"]) == (200, "cancelled")

    async def test_an_admin_may_cancel_without_a_body(self, flow: Flow) -> None:
        request_id = await two_stage_request(flow)

        response = await flow.client.post(
            f"/v1/requests/{request_id}/cancel", headers=flow.admin
        )

        assert (response.status_code, response.json()["outcome_reason"]) == (200, None)

    async def test_an_approver_who_can_see_it_is_forbidden(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        request_id = await two_stage_request(flow)
        before = await count_rows(session, request_id)

        response = await flow.cancel(request_id, headers=flow.user("alice"))

        assert response.status_code == 403
        assert problem_code(response) == "forbidden"
        assert (await flow.request(request_id))["status"] == "in_review"
        assert await count_rows(session, request_id) == before

    async def test_someone_who_cannot_see_it_gets_404(self, flow: Flow) -> None:
        request_id = await two_stage_request(flow)

        response = await flow.cancel(request_id, headers=flow.user("mallory"))

        assert response.status_code == 404
        assert problem_code(response) == "request_not_found"

    async def test_cancelling_a_finished_request_is_409_and_writes_nothing(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]
        await flow.approve("alice", request_id)
        before = await count_rows(session, request_id)

        response = await flow.cancel(request_id, reason="too late")

        assert response.status_code == 409
        assert problem_code(response) == "invalid_state"
        request = await flow.request(request_id)
        assert (request["status"], request["outcome_reason"]) == ("approved", None)
        assert await count_rows(session, request_id) == before

    async def test_cancelling_twice_is_409(self, flow: Flow) -> None:
        request_id = await two_stage_request(flow)
        assert (await flow.cancel(request_id)).status_code == 200

        again = await flow.cancel(request_id)

        assert (again.status_code, problem_code(again)) == (409, "invalid_state")

    async def test_a_request_sent_back_for_changes_can_be_cancelled(
        self, flow: Flow
    ) -> None:
        request_id = await two_stage_request(flow)
        await flow.act("alice", request_id, "request_changes")

        response = await flow.cancel(request_id)

        assert (response.status_code, response.json()["status"]) == (200, "cancelled")


class TestReassign:
    async def test_the_old_task_is_reassigned_and_a_new_open_task_points_back(
        self, flow: Flow
    ) -> None:
        request_id = await two_stage_request(flow)
        old_id = await flow.open_task("alice", request_id)

        response = await flow.reassign(old_id, "frank")

        assert response.status_code == 200, response.text
        new = response.json()
        assert (new["assignee"], new["reassigned_from"], new["status"]) == (
            "frank",
            "alice",
            "open",
        )
        assert (new["stage_order"], new["kind"], new["request_id"]) == (
            1,
            "approver",
            request_id,
        )
        by_id = {t["id"]: t["status"] for t in await flow.tasks(request_id)}
        assert by_id[old_id] == "reassigned"
        [event] = await flow.events_of(request_id, "task_reassigned")
        assert event["actor"] == "admin-ann"
        assert event["payload"] == {
            "task_id": old_id,
            "new_task_id": new["id"],
            "stage_order": 1,
            "from": "alice",
            "to": "frank",
            "reason": "on leave",
        }

    async def test_an_all_stage_settles_after_the_new_assignee_approves(
        self, flow: Flow
    ) -> None:
        # The predecessor kept waiting for the reassigned-away task.
        await flow.publish([stage(1, ["alice", "bob"], mode="all")])
        request_id = (await flow.start())["request_id"]
        await flow.approve("bob", request_id)
        await flow.reassign(await flow.open_task("alice", request_id), "frank")

        last = await flow.approve("frank", request_id)

        assert last["request_status"] == "approved"
        counts = (await flow.request(request_id))["stages"][0]["counts"]
        assert counts == {"approve": 2, "reject": 0, "abstain": 0, "open": 0}

    async def test_the_old_assignee_can_no_longer_decide(self, flow: Flow) -> None:
        request_id = await two_stage_request(flow)
        old_id = await flow.open_task("alice", request_id)
        await flow.reassign(old_id, "frank")

        response = await flow.client.post(
            f"/v1/tasks/{old_id}/decision",
            json={"action": "approve"},
            headers=flow.user("alice"),
        )

        assert (response.status_code, problem_code(response)) == (409, "invalid_state")

    async def test_only_admins_reassign(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        request_id = await two_stage_request(flow)
        task_id = await flow.open_task("alice", request_id)
        before = await count_rows(session, request_id)

        response = await flow.reassign(task_id, "frank", headers=flow.user("alice"))

        assert (response.status_code, problem_code(response)) == (403, "forbidden")
        assert await count_rows(session, request_id) == before

    async def test_a_completed_task_cannot_be_reassigned(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice", "bob"], mode="all")])
        request_id = (await flow.start())["request_id"]
        task_id = await flow.open_task("alice", request_id)
        await flow.approve("alice", request_id)

        response = await flow.reassign(task_id, "frank")

        assert (response.status_code, problem_code(response)) == (409, "invalid_state")

    async def test_reassigning_to_someone_already_in_the_stage_is_409(
        self, flow: Flow
    ) -> None:
        request_id = await two_stage_request(flow)

        response = await flow.reassign(await flow.open_task("alice", request_id), "bob")

        assert (response.status_code, problem_code(response)) == (409, "invalid_state")

    async def test_a_required_approvers_requirement_follows_the_task(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice", "bob"], required=["alice"])])
        request_id = (await flow.start())["request_id"]
        await flow.reassign(await flow.open_task("alice", request_id), "frank")

        # bob alone meets any-1, but frank now holds the required approval.
        assert (await flow.approve("bob", request_id))["stage_status"] == "active"
        assert (await flow.approve("frank", request_id))["request_status"] == "approved"


class TestDecisionConflicts:
    async def test_a_second_decision_on_one_task_is_409_and_writes_nothing(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        await flow.publish([stage(1, ["alice", "bob", "carol"], mode_value=2)])
        request_id = (await flow.start())["request_id"]
        task_id = await flow.open_task("alice", request_id)
        await flow.approve("alice", request_id)
        before = await count_rows(session, request_id)

        again = await flow.client.post(
            f"/v1/tasks/{task_id}/decision",
            json={"action": "approve"},
            headers=flow.user("alice"),
        )

        assert (again.status_code, problem_code(again)) == (409, "invalid_state")
        assert await count_rows(session, request_id) == before
        request = await flow.request(request_id)
        assert request["stages"][0]["status"] == "active"
        assert request["stages"][0]["counts"]["approve"] == 1

    async def test_a_decision_on_a_finished_request_is_409(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        await flow.publish([stage(1, ["alice", "bob"])])
        request_id = (await flow.start())["request_id"]
        bob_task = await flow.open_task("bob", request_id)
        await flow.approve("alice", request_id)
        before = await count_rows(session, request_id)

        late = await flow.client.post(
            f"/v1/tasks/{bob_task}/decision",
            json={"action": "reject"},
            headers=flow.user("bob"),
        )

        assert (late.status_code, problem_code(late)) == (409, "invalid_state")
        assert await count_rows(session, request_id) == before
        assert (await flow.request(request_id))["status"] == "approved"

    async def test_a_decision_on_a_cancelled_request_is_409(self, flow: Flow) -> None:
        request_id = await two_stage_request(flow)
        task_id = await flow.open_task("alice", request_id)
        await flow.cancel(request_id)

        late = await flow.client.post(
            f"/v1/tasks/{task_id}/decision",
            json={"action": "approve"},
            headers=flow.user("alice"),
        )

        assert (late.status_code, problem_code(late)) == (409, "invalid_state")

    async def test_deciding_someone_elses_task_is_403(self, flow: Flow) -> None:
        request_id = await two_stage_request(flow)
        task_id = await flow.open_task("alice", request_id)

        # bob holds a task on the request, so he can see it, but this one is alice's.
        response = await flow.client.post(
            f"/v1/tasks/{task_id}/decision",
            json={"action": "approve"},
            headers=flow.user("bob"),
        )

        assert (response.status_code, problem_code(response)) == (403, "forbidden")


class TestRequestChanges:
    async def test_sends_the_request_back_and_skips_open_tasks(
        self, flow: Flow
    ) -> None:
        request_id = await two_stage_request(flow)

        decided = await flow.act(
            "alice", request_id, "request_changes", comment="attach the deed"
        )

        assert decided["request_status"] == "changes_requested"
        request = await flow.request(request_id)
        assert (request["status"], request["current_stage_order"]) == (
            "changes_requested",
            None,
        )
        assert request["completed_at"] is None
        assert await flow.task_status(request_id) == {
            (1, "alice"): "completed",
            (1, "bob"): "skipped",
        }
        event = (await flow.events(request_id))[-1]
        assert event["event_type"] == "request_changes_requested"
        assert (event["actor"], event["payload"]["comment"]) == (
            "alice",
            "attach the deed",
        )

    async def test_not_allowed_by_the_policy_is_409_and_writes_nothing(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        request_id = await two_stage_request(flow, allow_request_changes=False)
        before = await count_rows(session, request_id)

        response = await flow.decide("alice", request_id, "request_changes")

        assert (response.status_code, problem_code(response)) == (409, "invalid_state")
        assert await count_rows(session, request_id) == before
        assert (await flow.request(request_id))["status"] == "in_review"


class TestResubmit:
    @pytest.fixture
    async def sent_back(self, flow: Flow) -> str:
        """Stage 1 approved by alice, then carol (stage 2) asks for changes."""
        request_id = await two_stage_request(flow)
        await flow.approve("alice", request_id)
        await flow.act("carol", request_id, "request_changes", comment="fix amount")
        return request_id

    async def test_restarts_from_stage_one_with_fresh_tasks_and_the_new_context(
        self, flow: Flow, sent_back: str
    ) -> None:
        old_tasks = {t["id"]: t["status"] for t in await flow.tasks(sent_back)}

        response = await flow.resubmit(
            sent_back, context={"amount": 90}, comment="amount fixed"
        )

        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["status"], body["current_stage_order"], body["context"]) == (
            "in_review",
            1,
            {"amount": 90},
        )
        assert body["outcome_reason"] is None
        assert [(s["stage_order"], s["status"]) for s in body["stages"]] == [
            (1, "active"),
            (2, "pending"),
        ]
        tasks = await flow.tasks(sent_back)
        fresh = [t for t in tasks if t["id"] not in old_tasks]
        assert sorted((t["assignee"], t["status"]) for t in fresh) == [
            ("alice", "open"),
            ("bob", "open"),
        ]
        # The first round's tasks keep what happened to them.
        assert {
            t["id"]: t["status"] for t in tasks if t["id"] in old_tasks
        } == old_tasks

    async def test_an_earlier_approval_is_not_reused(
        self, flow: Flow, sent_back: str
    ) -> None:
        await flow.resubmit(sent_back)

        assert (await flow.stage_status(sent_back))[1] == "active"
        counts = (await flow.request(sent_back))["stages"][0]["counts"]
        assert counts == {"approve": 0, "reject": 0, "abstain": 0, "open": 2}

        await flow.approve("alice", sent_back)
        assert (await flow.request(sent_back))["current_stage_order"] == 2
        assert (await flow.approve("carol", sent_back))["request_status"] == "approved"

    async def test_earlier_decisions_stay_in_the_timeline(
        self, flow: Flow, sent_back: str
    ) -> None:
        await flow.resubmit(sent_back, comment="amount fixed")

        types = await flow.event_types(sent_back)
        assert types[-3:] == [
            "request_changes_requested",
            "request_resubmitted",
            "stage_started",
        ]
        assert types.count("decision_recorded") == 2
        resubmitted = (await flow.events_of(sent_back, "request_resubmitted"))[0]
        assert resubmitted["actor"] == CALLER_ID
        assert resubmitted["payload"]["comment"] == "amount fixed"

    async def test_without_a_context_the_old_one_stays(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start(context={"amount": 500}))["request_id"]
        await flow.act("alice", request_id, "request_changes")

        response = await flow.resubmit(request_id, comment="nothing to change")

        assert response.json()["context"] == {"amount": 500}

    async def test_the_requester_may_resubmit(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start(requester="frank"))["request_id"]
        await flow.act("alice", request_id, "request_changes")

        response = await flow.resubmit(request_id, headers=flow.user("frank"))

        assert (response.status_code, response.json()["status"]) == (200, "in_review")

    async def test_an_approver_may_not_resubmit(
        self, flow: Flow, sent_back: str
    ) -> None:
        response = await flow.resubmit(sent_back, headers=flow.user("alice"))

        assert (response.status_code, problem_code(response)) == (403, "forbidden")
        assert (await flow.request(sent_back))["status"] == "changes_requested"

    async def test_resubmitting_a_request_in_review_is_409(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        request_id = await two_stage_request(flow)
        before = await count_rows(session, request_id)

        response = await flow.resubmit(request_id, context={"amount": 1})

        assert (response.status_code, problem_code(response)) == (409, "invalid_state")
        assert await count_rows(session, request_id) == before
        assert (await flow.request(request_id))["context"] == {}
