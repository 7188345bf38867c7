"""`/v1/requests` over HTTP on PostgreSQL: create (one live request per caller and artifact,
routing without a policy key), list (filters, order, cursor paging, visibility), get, diagram.

The contract's "Requests" section, the routing paragraph of "Policies" and the visibility rule of
"Identity".
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.models import ApprovalRequest
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import (
    CALLER_CLIENT,
    CALLER_ID,
    Body,
    Flow,
    problem_code,
    stage,
)

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def flow(
    client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    return Flow(client, admin_headers, token)


async def request_count(session: AsyncSession) -> int:
    total = (
        await session.execute(select(func.count()).select_from(ApprovalRequest))
    ).scalar_one()
    await session.commit()
    return int(total)


class TestCreate:
    async def test_returns_201_with_the_first_stage_tasks(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"]), stage(2, ["carol"])])

        response = await flow.create(
            artifact_id="cr-42", context={"district": "D1", "amount": 500}
        )

        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {"request_id", "status", "current_stage_order", "tasks"}
        assert response.headers["location"] == f"/v1/requests/{body['request_id']}"
        [task] = body["tasks"]
        assert task["request_id"] == body["request_id"]
        assert (task["assignee"], task["status"], task["kind"]) == (
            "alice",
            "open",
            "approver",
        )
        assert (task["artifact_type"], task["artifact_id"], task["policy_key"]) == (
            "test.flow",
            "cr-42",
            "test.flow",
        )
        assert task["context"] == {"district": "D1", "amount": 500}
        assert (task["delegated_from"], task["reassigned_from"]) == (None, None)

    async def test_records_the_caller_the_requester_and_the_pinned_version(
        self, flow: Flow
    ) -> None:
        policy = await flow.publish([stage(1, ["alice"])])

        created = await flow.start(metadata={"source": "ui"})

        request = await flow.request(created["request_id"])
        assert (request["source_service"], request["source_client"]) == (
            CALLER_ID,
            CALLER_CLIENT,
        )
        assert request["requester"] == CALLER_ID
        assert (
            request["policy_id"],
            request["policy_key"],
            request["policy_version"],
        ) == (
            policy["id"],
            "test.flow",
            1,
        )
        assert request["metadata"] == {"source": "ui"}
        assert request["callback_url"] is None

    async def test_an_explicit_requester_is_kept(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])

        created = await flow.start(requester="frank")

        assert (await flow.request(created["request_id"]))["requester"] == "frank"

    async def test_an_unknown_policy_is_404(self, flow: Flow) -> None:
        response = await flow.create(key="nope.nothing")

        assert (response.status_code, problem_code(response)) == (
            404,
            "policy_not_found",
        )

    async def test_a_policy_without_an_active_version_is_404(self, flow: Flow) -> None:
        draft = {
            "policy_key": "test.draft",
            "name": "draft",
            "artifact_type": "test.draft",
            "stages": [stage(1, ["alice"])],
        }
        assert (
            await flow.client.post("/v1/policies", json=draft, headers=flow.admin)
        ).status_code == 201

        response = await flow.create(key="test.draft")

        assert (response.status_code, problem_code(response)) == (
            404,
            "policy_not_found",
        )

    async def test_an_artifact_type_other_than_the_policys_is_422(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        await flow.publish([stage(1, ["alice"])])

        response = await flow.create(artifact_type="something.else")

        assert (response.status_code, problem_code(response)) == (
            422,
            "validation_failed",
        )
        assert [e["pointer"] for e in response.json()["errors"]] == ["/artifact_type"]
        assert await request_count(session) == 0

    async def test_a_missing_artifact_id_is_422(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])

        response = await flow.client.post(
            "/v1/requests",
            json={"policy_key": "test.flow", "artifact_type": "test.flow"},
            headers=flow.caller,
        )

        assert (response.status_code, problem_code(response)) == (
            422,
            "validation_failed",
        )

    async def test_without_a_token_is_401(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])

        response = await flow.create(headers={})

        assert (response.status_code, problem_code(response)) == (
            401,
            "unauthenticated",
        )


class TestOneLiveRequestPerArtifact:
    async def test_a_second_live_request_of_the_same_caller_is_409_with_the_first_id(
        self, flow: Flow, session: AsyncSession
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        first = await flow.start(artifact_id="cr-1")

        again = await flow.create(artifact_id="cr-1")

        assert (again.status_code, problem_code(again)) == (409, "request_already_open")
        assert again.json()["request_id"] == first["request_id"]
        assert await request_count(session) == 1

    async def test_the_caller_is_the_client_not_the_person(self, flow: Flow) -> None:
        # Two staff of the registry, each with their own token of the registry client: one caller.
        await flow.publish([stage(1, ["alice"])])
        await flow.start(artifact_id="cr-1")

        colleague = flow.user("registry-clerk", azp=CALLER_CLIENT)
        again = await flow.create(headers=colleague, artifact_id="cr-1")

        assert (again.status_code, problem_code(again)) == (409, "request_already_open")

    async def test_another_caller_may_open_one_for_the_same_artifact(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        first = await flow.start(artifact_id="cr-1")

        other = await flow.create(
            headers=flow.user("grants-svc", azp="grants"), artifact_id="cr-1"
        )

        assert other.status_code == 201, other.text
        assert other.json()["request_id"] != first["request_id"]

    async def test_a_request_sent_back_for_changes_is_still_live(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        first = await flow.start(artifact_id="cr-1")
        await flow.act("alice", first["request_id"], "request_changes")

        again = await flow.create(artifact_id="cr-1")

        assert (again.status_code, problem_code(again)) == (409, "request_already_open")

    @pytest.mark.parametrize("ending", ["approve", "reject", "cancel"])
    async def test_once_the_first_is_finished_a_new_one_may_be_opened(
        self, flow: Flow, ending: str
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        first = await flow.start(artifact_id="cr-1")
        if ending == "cancel":
            assert (await flow.cancel(first["request_id"])).status_code == 200
        else:
            await flow.act("alice", first["request_id"], ending)

        again = await flow.create(artifact_id="cr-1")

        assert again.status_code == 201, again.text
        assert again.json()["request_id"] != first["request_id"]


class TestRouting:
    """No `policy_key`: the active policies of the artifact type choose by applies_if and priority."""

    @pytest.fixture
    async def grant_policies(self, flow: Flow) -> None:
        await flow.publish(
            [stage(1, ["alice"])],
            key="grants.default",
            artifact_type="grant.payment",
        )
        await flow.publish(
            [stage(1, ["carol"])],
            key="grants.hrsa",
            artifact_type="grant.payment",
            applies_if={"==": [{"var": "agency"}, "HRSA"]},
            priority=10,
        )
        await flow.publish(
            [stage(1, ["bob"])],
            key="grants.large",
            artifact_type="grant.payment",
            applies_if={">=": [{"var": "amount"}, 10000]},
            priority=5,
        )

    async def route(self, flow: Flow, context: Body) -> Body:
        created = await flow.start(
            key=None,
            artifact_type="grant.payment",
            artifact_id=f"g-{uuid.uuid4()}",
            context=context,
        )
        return await flow.request(created["request_id"])

    @pytest.mark.usefixtures("grant_policies")
    @pytest.mark.parametrize(
        ("context", "chosen"),
        [
            ({"agency": "HRSA", "amount": 50000}, "grants.hrsa"),
            ({"agency": "CDC", "amount": 50000}, "grants.large"),
            ({"agency": "CDC", "amount": 10}, "grants.default"),
            ({}, "grants.default"),
        ],
    )
    async def test_the_highest_priority_policy_that_applies_is_chosen(
        self, flow: Flow, context: Body, chosen: str
    ) -> None:
        request = await self.route(flow, context)

        assert (request["policy_key"], request["policy_version"]) == (chosen, 1)
        [created] = await flow.events_of(request["id"], "request_created")
        assert created["payload"]["policy_key"] == chosen

    @pytest.mark.usefixtures("grant_policies")
    async def test_the_chosen_policy_decides_the_approvers(self, flow: Flow) -> None:
        request = await self.route(flow, {"agency": "HRSA"})

        assert [t["assignee"] for t in await flow.tasks(request["id"])] == ["carol"]

    async def test_equal_priority_goes_to_the_lowest_key(self, flow: Flow) -> None:
        for key in ("route.b", "route.a"):
            await flow.publish([stage(1, ["alice"])], key=key, artifact_type="routed")

        created = await flow.start(key=None, artifact_type="routed")

        assert (await flow.request(created["request_id"]))["policy_key"] == "route.a"

    async def test_none_applying_is_404_policy_not_found(self, flow: Flow) -> None:
        await flow.publish(
            [stage(1, ["alice"])],
            key="route.hrsa",
            artifact_type="routed",
            applies_if={"==": [{"var": "agency"}, "HRSA"]},
        )

        response = await flow.create(
            key=None, artifact_type="routed", context={"agency": "CDC"}
        )

        assert (response.status_code, problem_code(response)) == (
            404,
            "policy_not_found",
        )

    async def test_applies_if_sees_the_request_fields(self, flow: Flow) -> None:
        await flow.publish(
            [stage(1, ["alice"])],
            key="route.frank",
            artifact_type="routed",
            applies_if={"==": [{"var": "_request.requester"}, "frank"]},
        )

        mine = await flow.create(key=None, artifact_type="routed", requester="frank")
        theirs = await flow.create(
            key=None, artifact_type="routed", artifact_id="a-2", requester="erin"
        )

        assert (mine.status_code, theirs.status_code) == (201, 404)

    async def test_draft_versions_are_not_candidates(self, flow: Flow) -> None:
        draft = {
            "policy_key": "route.draft",
            "name": "draft",
            "artifact_type": "routed",
            "stages": [stage(1, ["alice"])],
        }
        await flow.client.post("/v1/policies", json=draft, headers=flow.admin)

        response = await flow.create(key=None, artifact_type="routed")

        assert (response.status_code, problem_code(response)) == (
            404,
            "policy_not_found",
        )


class TestList:
    @pytest.fixture
    async def three(self, flow: Flow) -> list[str]:
        """Three requests, oldest first: a-1 approved, a-2 in review (requester frank), a-3 in review."""
        await flow.publish([stage(1, ["alice"])])
        ids = []
        for artifact_id, requester in (("a-1", None), ("a-2", "frank"), ("a-3", None)):
            fields: Body = {"requester": requester} if requester else {}
            ids.append(
                str((await flow.start(artifact_id=artifact_id, **fields))["request_id"])
            )
        await flow.approve("alice", ids[0])
        return ids

    async def fetch(
        self, flow: Flow, headers: dict[str, str] | None = None, **params: str | int
    ) -> httpx.Response:
        response = await flow.client.get(
            "/v1/requests", params=params, headers=headers or flow.caller
        )
        assert response.status_code == 200, response.text
        return response

    async def ids(self, flow: Flow, **params: str | int) -> list[str]:
        return [r["id"] for r in (await self.fetch(flow, None, **params)).json()]

    async def test_newest_first(self, flow: Flow, three: list[str]) -> None:
        assert await self.ids(flow) == three[::-1]

    async def test_rows_are_full_request_views(
        self, flow: Flow, three: list[str]
    ) -> None:
        rows = (await self.fetch(flow)).json()

        assert rows[-1]["status"] == "approved"
        assert rows[-1]["stages"][0]["counts"] == {
            "approve": 1,
            "reject": 0,
            "abstain": 0,
            "open": 0,
        }

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"artifact_id": "a-2"}, [1]),
            ({"artifact_type": "test.flow"}, [2, 1, 0]),
            ({"artifact_type": "other"}, []),
            ({"status": "approved"}, [0]),
            ({"status": "in_review"}, [2, 1]),
            ({"policy_key": "test.flow"}, [2, 1, 0]),
            ({"requester": "frank"}, [1]),
            ({"status": "in_review", "requester": CALLER_ID}, [2]),
        ],
    )
    async def test_filters(
        self, flow: Flow, three: list[str], params: dict[str, str], expected: list[int]
    ) -> None:
        assert await self.ids(flow, **params) == [three[i] for i in expected]

    async def test_created_after_and_before(self, flow: Flow, three: list[str]) -> None:
        middle = datetime.fromisoformat((await flow.request(three[1]))["created_at"])

        after = await self.ids(flow, created_after=middle.isoformat())
        before = await self.ids(flow, created_before=middle.isoformat())
        window = await self.ids(
            flow,
            created_after=(middle - timedelta(microseconds=1)).isoformat(),
            created_before=(middle + timedelta(microseconds=1)).isoformat(),
        )

        assert after == [three[2], three[1]]
        assert before == [three[0]]
        assert window == [three[1]]

    async def test_cursor_paging_walks_every_row_once(
        self, flow: Flow, three: list[str]
    ) -> None:
        first = await self.fetch(flow, limit=2)
        cursor = first.headers["x-next-cursor"]
        link = first.headers["link"]

        assert [r["id"] for r in first.json()] == [three[2], three[1]]
        assert link.endswith('>; rel="next"')
        link_query = parse_qs(urlsplit(link[1 : link.index(">")]).query)
        assert link_query["cursor"] == [cursor]
        assert link_query["limit"] == ["2"]

        second = await self.fetch(flow, limit=2, cursor=cursor)
        assert [r["id"] for r in second.json()] == [three[0]]
        assert "x-next-cursor" not in second.headers
        assert "link" not in second.headers

    async def test_filters_hold_across_pages(
        self, flow: Flow, three: list[str]
    ) -> None:
        first = await self.fetch(flow, limit=1, status="in_review")
        second = await self.fetch(
            flow, limit=1, status="in_review", cursor=first.headers["x-next-cursor"]
        )

        assert [r["id"] for r in first.json() + second.json()] == [three[2], three[1]]
        assert "x-next-cursor" not in second.headers

    async def test_everyone_sees_only_what_they_may_see(
        self, flow: Flow, three: list[str]
    ) -> None:
        async def seen(headers: dict[str, str]) -> list[str]:
            return [r["id"] for r in (await self.fetch(flow, headers=headers)).json()]

        assert await seen(flow.user("mallory")) == []
        assert await seen(flow.user("frank")) == [three[1]]  # the requester
        assert await seen(flow.user("alice")) == three[::-1]  # holds a task on each
        assert await seen(flow.user("registry-clerk", azp=CALLER_CLIENT)) == three[::-1]
        assert await seen(flow.user("grants-svc", azp="grants")) == []
        viewer = flow.user("viewer-vic", roles=["AWE_VIEWER"])
        assert await seen(viewer) == three[::-1]

    @pytest.mark.parametrize(
        "params",
        [
            {"status": "open"},
            {"limit": 0},
            {"limit": 501},
            {"created_after": "yesterday"},
        ],
    )
    async def test_bad_query_values_are_422(
        self, flow: Flow, params: dict[str, str | int]
    ) -> None:
        response = await flow.client.get(
            "/v1/requests", params=params, headers=flow.caller
        )

        assert (response.status_code, problem_code(response)) == (
            422,
            "validation_failed",
        )


class TestGet:
    async def test_shows_every_stage_with_its_counts(self, flow: Flow) -> None:
        await flow.publish(
            [
                stage(1, ["alice", "bob", "carol"], mode="quorum", mode_value=2),
                stage(2, ["dave"], mode="all", sla_hours=48),
            ]
        )
        request_id = (await flow.start())["request_id"]
        await flow.reject("alice", request_id)
        await flow.approve("bob", request_id)

        response = await flow.client.get(
            f"/v1/requests/{request_id}", headers=flow.caller
        )

        assert response.status_code == 200
        body = response.json()
        assert (body["id"], body["status"], body["current_stage_order"]) == (
            request_id,
            "in_review",
            1,
        )
        first, second = body["stages"]
        assert {
            k: first[k] for k in ("stage_order", "name", "status", "mode", "mode_value")
        } == {
            "stage_order": 1,
            "name": "Stage 1",
            "status": "active",
            "mode": "quorum",
            "mode_value": 2,
        }
        assert first["counts"] == {"approve": 1, "reject": 1, "abstain": 0, "open": 1}
        assert (second["status"], second["due_at"], second["parallel_group"]) == (
            "pending",
            None,
            None,
        )
        assert second["counts"] == {"approve": 0, "reject": 0, "abstain": 0, "open": 0}

    async def test_an_active_stage_with_an_sla_shows_its_due_at(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"], sla_hours=48, on_breach="notify")])
        request_id = (await flow.start())["request_id"]

        body = await flow.request(request_id)

        due = datetime.fromisoformat(body["stages"][0]["due_at"])
        created = datetime.fromisoformat(body["created_at"])
        assert timedelta(hours=48) <= due - created < timedelta(hours=48, minutes=1)
        [started] = await flow.events_of(request_id, "stage_started")
        assert datetime.fromisoformat(started["payload"]["due_at"]) == due

    async def test_an_unknown_id_is_404(self, flow: Flow) -> None:
        response = await flow.client.get(
            f"/v1/requests/{uuid.uuid4()}", headers=flow.admin
        )

        assert (response.status_code, problem_code(response)) == (
            404,
            "request_not_found",
        )

    async def test_a_request_someone_may_not_see_is_404_for_them(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]

        hidden = await flow.client.get(
            f"/v1/requests/{request_id}", headers=flow.user("mallory")
        )
        visible = await flow.client.get(
            f"/v1/requests/{request_id}", headers=flow.user("alice")
        )

        assert (hidden.status_code, problem_code(hidden)) == (404, "request_not_found")
        assert visible.status_code == 200

    async def test_the_awe_alias_serves_the_same_request(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]

        awe = await flow.client.get(
            f"/v1/awe/requests/{request_id}", headers=flow.caller
        )

        assert awe.status_code == 200
        assert awe.json() == await flow.request(request_id)


class TestDiagram:
    async def stages_of(self, flow: Flow, request_id: str) -> dict[str, ET.Element]:
        response = await flow.client.get(
            f"/v1/requests/{request_id}/diagram.svg", headers=flow.caller
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("image/svg+xml")
        root = ET.fromstring(response.text)
        assert root.tag == f"{SVG}svg"
        groups = root.iter(f"{SVG}g")
        return {
            g.attrib["data-stage-order"]: g
            for g in groups
            if "data-stage-order" in g.attrib
        }

    @staticmethod
    def highlighted(groups: dict[str, ET.Element]) -> list[str]:
        return [
            order
            for order, g in groups.items()
            if g.find(f"{SVG}rect") is not None
            and g.find(f"{SVG}rect").attrib["stroke-width"] == "3"  # type: ignore[union-attr]
        ]

    async def test_draws_every_stage_with_its_status_and_highlights_the_current(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"]), stage(2, ["carol"])])
        request_id = (await flow.start())["request_id"]

        groups = await self.stages_of(flow, request_id)

        assert {k: g.attrib["data-status"] for k, g in groups.items()} == {
            "1": "active",
            "2": "pending",
        }
        texts = [t.text or "" for g in groups.values() for t in g.iter(f"{SVG}text")]
        assert any("Stage 1" in t for t in texts)
        assert any("Stage 2" in t for t in texts)
        assert self.highlighted(groups) == ["1"]

    async def test_the_highlight_follows_the_request(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"]), stage(2, ["carol"])])
        request_id = (await flow.start())["request_id"]
        await flow.approve("alice", request_id)

        groups = await self.stages_of(flow, request_id)

        assert groups["1"].attrib["data-status"] == "approved"
        assert self.highlighted(groups) == ["2"]

    async def test_a_finished_request_highlights_nothing(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]
        await flow.reject("alice", request_id)

        groups = await self.stages_of(flow, request_id)

        assert groups["1"].attrib["data-status"] == "rejected"
        assert self.highlighted(groups) == []

    async def test_is_404_for_someone_who_may_not_see_the_request(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]

        response = await flow.client.get(
            f"/v1/requests/{request_id}/diagram.svg", headers=flow.user("mallory")
        )

        assert (response.status_code, problem_code(response)) == (
            404,
            "request_not_found",
        )
