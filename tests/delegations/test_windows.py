"""What a delegation window does to tasks (API.md, "Delegations", "Tasks", "Policies" SoD).

- A task created while the assignee's window is active goes to the delegate, `delegated_from` set;
  before and after the window, tasks go to the user.
- During the window the delegate may also decide the user's existing open tasks: the decision
  records `actor` = delegate, `on_behalf_of` = the user. Outside the window: 403.
- Chains are not followed (A→B and B→C: C never acts for A, A's new tasks go to B).
- Separation of duties holds through delegation: with `forbid_self_approval`, whoever stands in for
  the requester may not approve, and a requester who is someone's delegate never receives that
  person's task on their own request.

Windows are placed on the service clock, which each test moves by hand.
"""

from __future__ import annotations

import httpx

from countersign.kit import clock
from tests.delegations.windows import open_window
from tests.fixtures.flows import Body, Flow, decide, problem_code, stage, user_rule

HOUR = 3600


async def inbox(flow: Flow, user: str) -> list[Body]:
    response = await flow.client.get(
        "/v1/tasks", params={"page_size": 100}, headers=flow.user(user)
    )
    assert response.status_code == 200, response.text
    items: list[Body] = response.json()["items"]
    return items


async def only_task(flow: Flow, request_id: str) -> Body:
    (task,) = await flow.tasks(request_id)
    return task


def as_reader(flow: Flow, user: str) -> dict[str, str]:
    """`user` with the viewer role: they can see every request, so a refusal to let them decide
    is a 403 about acting, not a 404 about seeing."""
    return flow.user(user, roles=["AWE_VIEWER"])


async def decide_as(
    flow: Flow, user: str, task_id: str, action: str = "approve", *, reader: bool = True
) -> httpx.Response:
    headers = as_reader(flow, user) if reader else flow.user(user)
    return await flow.client.post(
        f"/v1/tasks/{task_id}/decision", json={"action": action}, headers=headers
    )


class TestWindow:
    async def test_before_during_and_after(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        # alice is away from 1 h to 3 h from now; bob stands in.
        await open_window(flow, "alice", "bob", starts_in_hours=1, lasts_hours=2)

        # Before: tasks are alice's, and bob cannot touch them.
        before = (await flow.start(artifact_id="before"))["request_id"]
        kept = (await flow.start(artifact_id="kept"))["request_id"]
        before_task = await only_task(flow, before)
        kept_task = await only_task(flow, kept)
        assert (before_task["assignee"], before_task["delegated_from"]) == (
            "alice",
            None,
        )
        early = await decide_as(flow, "bob", before_task["id"])
        assert early.status_code == 403, early.text
        assert problem_code(early) == "forbidden"

        # During: new tasks go to bob, who may also decide alice's existing ones.
        clock.advance(2 * HOUR)
        during = (await flow.start(artifact_id="during"))["request_id"]
        during_task = await only_task(flow, during)
        assert (during_task["assignee"], during_task["delegated_from"]) == (
            "bob",
            "alice",
        )
        assert during_task["id"] in {t["id"] for t in await inbox(flow, "bob")}
        assert during_task["id"] not in {t["id"] for t in await inbox(flow, "alice")}

        response = await decide(flow.client, flow.token("bob"), before_task["id"])
        assert response.status_code == 201, response.text
        decision = response.json()
        assert (decision["actor"], decision["on_behalf_of"]) == ("bob", "alice")
        assert decision["request_status"] == "approved"
        (recorded,) = await flow.events_of(before, "decision_recorded")
        assert recorded["actor"] == "bob"
        assert recorded["payload"]["on_behalf_of"] == "alice"
        assert recorded["payload"]["assignee"] == "alice"
        decided_task = await only_task(flow, before)
        assert (decided_task["assignee"], decided_task["status"]) == (
            "alice",
            "completed",
        )

        # After: tasks are alice's again; bob may no longer act for her...
        clock.advance(2 * HOUR)
        after = (await flow.start(artifact_id="after"))["request_id"]
        after_task = await only_task(flow, after)
        assert (after_task["assignee"], after_task["delegated_from"]) == ("alice", None)
        for task in (kept_task, after_task):
            late = await decide_as(flow, "bob", task["id"])
            assert late.status_code == 403, late.text
        own = await flow.approve("alice", kept)
        assert own["on_behalf_of"] is None

        # ...but the task handed to him during the window is his to finish.
        handed = await flow.approve("bob", during)
        assert handed["actor"] == "bob"
        assert handed["request_status"] == "approved"

    async def test_the_delegator_can_still_act_during_the_window(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]
        await open_window(flow, "alice", "bob")
        decided = await flow.approve("alice", request_id)
        assert (decided["actor"], decided["on_behalf_of"]) == ("alice", None)

    async def test_someone_who_cannot_see_the_request_gets_404(
        self, flow: Flow
    ) -> None:
        """Outside a window, a would-be delegate who holds nothing on the request does not even
        learn that the task exists (API.md, "Identity": visibility)."""
        await flow.publish([stage(1, ["alice"])])
        task = await only_task(flow, (await flow.start())["request_id"])
        response = await decide_as(flow, "bob", task["id"], reader=False)
        assert response.status_code == 404
        assert problem_code(response) == "task_not_found"

    async def test_ending_a_window_early_takes_effect_at_once(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        task = await only_task(flow, (await flow.start())["request_id"])
        window = await open_window(flow, "alice", "bob")
        ended = await flow.client.delete(
            f"/v1/delegations/{window['id']}", headers=flow.user("alice")
        )
        assert ended.status_code == 204
        assert (await decide_as(flow, "bob", task["id"])).status_code == 403
        fresh = await only_task(
            flow, (await flow.start(artifact_id="a-2"))["request_id"]
        )
        assert fresh["assignee"] == "alice"


class TestNoChains:
    async def test_a_delegates_delegate_never_acts_for_a(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        existing = (await flow.start(artifact_id="existing"))["request_id"]
        alice_task = await only_task(flow, existing)
        await open_window(flow, "alice", "bob")
        await open_window(flow, "bob", "carol")

        # A new task for alice goes to bob, not on to carol.
        fresh = await only_task(
            flow, (await flow.start(artifact_id="fresh"))["request_id"]
        )
        assert (fresh["assignee"], fresh["delegated_from"]) == ("bob", "alice")

        # carol may not decide alice's task; bob may.
        refused = await decide_as(flow, "carol", alice_task["id"])
        assert refused.status_code == 403, refused.text
        accepted = await decide(flow.client, flow.token("bob"), alice_task["id"])
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["on_behalf_of"] == "alice"

    async def test_nor_decides_a_task_delegated_to_the_delegate(
        self, flow: Flow
    ) -> None:
        """A task bob holds for alice is alice's task: bob's own stand-in carol deciding it
        would follow the chain alice → bob → carol."""
        await flow.publish([stage(1, ["alice"])])
        await open_window(flow, "alice", "bob")
        await open_window(flow, "bob", "carol")
        handed = await only_task(flow, (await flow.start())["request_id"])
        assert (handed["assignee"], handed["delegated_from"]) == ("bob", "alice")
        response = await decide_as(flow, "carol", handed["id"])
        assert response.status_code == 403, response.text


class TestSeparationOfDuties:
    async def test_whoever_stands_in_for_the_requester_may_not_approve(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["bob", "carol"])], forbid_self_approval=True)
        request_id = (await flow.start(requester="rita"))["request_id"]
        bob_task = await flow.open_task("bob", request_id)

        # rita goes on leave and names bob: bob now acts for the requester.
        await open_window(flow, "rita", "bob")
        refused = await decide(flow.client, flow.token("bob"), bob_task)
        assert refused.status_code == 403, refused.text
        assert problem_code(refused) == "forbidden"
        assert (await flow.request(request_id))["status"] == "in_review"
        assert "decision_recorded" not in await flow.event_types(request_id)

        # A request created during rita's window never asks bob at all.
        later = await flow.start(requester="rita", artifact_id="a-2")
        assert [t["assignee"] for t in later["tasks"]] == ["carol"]
        (started,) = await flow.events_of(later["request_id"], "stage_started")
        assert started["payload"]["removed_by_sod"] == ["bob"]

        decided = await flow.approve("carol", request_id)
        assert decided["request_status"] == "approved"

    async def test_a_requester_never_receives_the_task_they_stand_in_for(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])], forbid_self_approval=True)
        before = (await flow.start(requester="rita", artifact_id="before"))[
            "request_id"
        ]
        existing = await only_task(flow, before)
        # rita is alice's stand-in while alice is away.
        await open_window(flow, "alice", "rita")

        # New task on rita's own request: it stays with alice instead of going to rita.
        during = await flow.start(requester="rita", artifact_id="during")
        (task,) = during["tasks"]
        assert (task["assignee"], task["delegated_from"]) == ("alice", None)

        # Nor may rita decide alice's existing task on her own request.
        for task_id in (existing["id"], task["id"]):
            response = await decide(flow.client, flow.token("rita"), task_id)
            assert response.status_code == 403, response.text
            assert problem_code(response) == "forbidden"

        # On someone else's request, rita stands in for alice as usual.
        other = await flow.start(requester="sam", artifact_id="other")
        (handed,) = other["tasks"]
        assert (handed["assignee"], handed["delegated_from"]) == ("rita", "alice")

        assert (await flow.approve("alice", before))["request_status"] == "approved"

    async def test_a_fellow_approver_does_not_vote_twice(self, flow: Flow) -> None:
        """bob and alice are both asked in a 2-of-3 stage. A new task for alice is never routed
        to bob (he is already an approver there, engine `_apply_delegation`); the decision-time
        twin: bob, standing in for alice, may not add her vote to his own either, or one person
        would settle a stage that needs two."""
        await flow.publish([stage(1, ["alice", "bob", "carol"], mode_value=2)])
        request_id = (await flow.start())["request_id"]
        alice_task = await flow.open_task("alice", request_id)
        await open_window(flow, "alice", "bob")
        assert (await flow.approve("bob", request_id))["stage_status"] == "active"

        second = await decide(flow.client, flow.token("bob"), alice_task)
        assert second.status_code == 403, second.text
        assert (await flow.request(request_id))["status"] == "in_review"

    async def test_approving_for_someone_counts_as_their_approval_later(
        self, flow: Flow
    ) -> None:
        """`forbid_repeat_approvers` sees through delegation: bob approved stage 1 for alice,
        so alice may not approve stage 2."""
        await flow.publish(
            [
                stage(1, ["alice"]),
                {
                    **stage(2, ["carol"]),
                    "rules": [user_rule("alice"), user_rule("carol")],
                },
            ],
            forbid_repeat_approvers=True,
        )
        request_id = (await flow.start())["request_id"]
        alice_task = await flow.open_task("alice", request_id)
        await open_window(flow, "alice", "bob")
        decided = await decide(flow.client, flow.token("bob"), alice_task)
        assert decided.status_code == 201, decided.text

        stage_two = [t for t in await flow.tasks(request_id) if t["stage_order"] == 2]
        assert [t["assignee"] for t in stage_two] == ["carol"]
