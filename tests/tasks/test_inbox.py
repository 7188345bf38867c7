"""`GET /v1/tasks`, `/v1/tasks/stats` and claims: the approver's inbox, as the contract states it.

The inbox is private: `assignee=me` by default; another person's tasks (or `*`) need admin or viewer,
except `assignee=*&request_id=X`, where the creating principal sees every task of X and anyone else
who can see X sees its completed tasks plus their own, so who else is still pending stays private.
The AWE alias keeps AWE's answers where its clients depend on them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from countersign.kit.pagination import encode_cursor
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import create_request, decide, publish, stage

Body = dict[str, Any]
Headers = dict[str, str]

CHANGE_REQUEST = "registry.change_request"
TRANSFER = "payments.transfer"
CREATOR = "registry-svc"


@dataclass
class World:
    """Three requests: two change requests (alice, bob, carol decide, `all`) and a transfer.

    bob has approved CR-1001, so it has one completed task and two open ones.
    """

    cr_1001: str
    cr_1002: str
    pay_7: str
    creator: Headers


async def build_world(
    client: httpx.AsyncClient, admin: Headers, token: TokenFactory
) -> World:
    await publish(
        client,
        admin,
        [stage(1, ["alice", "bob", "carol"], mode="all")],
        key=CHANGE_REQUEST,
    )
    await publish(client, admin, [stage(1, ["alice", "dave"])], key=TRANSFER)
    creator = bearer(token(CREATOR, azp="registry"))
    ids: list[str] = []
    for key, artifact_id, context in (
        (CHANGE_REQUEST, "CR-1001", {"district": "Northern Hills", "amount": 1500}),
        (CHANGE_REQUEST, "CR-1002", {"district": "Southport", "amount": 20}),
        (TRANSFER, "PAY-7", {"beneficiary": "Acme Northern Ltd", "amount": 70}),
    ):
        created = await create_request(
            client, creator, key=key, artifact_id=artifact_id, context=context
        )
        assert created.status_code == 201, created.text
        body: Body = created.json()
        ids.append(str(body["request_id"]))
        if artifact_id == "CR-1001":
            bob_task = next(t["id"] for t in body["tasks"] if t["assignee"] == "bob")
            decided = await decide(client, token("bob"), bob_task)
            assert decided.status_code == 201, decided.text
    return World(ids[0], ids[1], ids[2], creator)


@pytest.fixture
async def world(
    client: httpx.AsyncClient, admin_headers: Headers, token: TokenFactory
) -> World:
    return await build_world(client, admin_headers, token)


async def inbox(
    client: httpx.AsyncClient,
    headers: Headers,
    path: str = "/v1/tasks",
    **params: Any,
) -> Body:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: Body = response.json()
    return body


def who_what(page: Body) -> set[tuple[str, str, str]]:
    """(assignee, artifact_id, status) of each listed task."""
    return {(t["assignee"], t["artifact_id"], t["status"]) for t in page["items"]}


def newest_first(items: list[Body]) -> list[Body]:
    return sorted(
        items,
        key=lambda t: (datetime.fromisoformat(t["created_at"]), uuid.UUID(t["id"])),
        reverse=True,
    )


class TestOwnInbox:
    async def test_assignee_defaults_to_me(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        page = await inbox(client, bearer(token("alice")))

        assert who_what(page) == {
            ("alice", "CR-1001", "open"),
            ("alice", "CR-1002", "open"),
            ("alice", "PAY-7", "open"),
        }
        assert page == await inbox(client, bearer(token("alice")), assignee="me")
        assert page == await inbox(client, bearer(token("alice")), assignee="alice")

    async def test_a_task_carries_its_request_fields_and_context(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        page = await inbox(client, bearer(token("dave")))

        [task] = page["items"]
        assert task["request_id"] == world.pay_7
        assert task["artifact_type"] == TRANSFER
        assert task["policy_key"] == TRANSFER
        assert task["context"] == {"beneficiary": "Acme Northern Ltd", "amount": 70}
        assert task["kind"] == "approver"
        assert task["stage_order"] == 1

    async def test_completed_tasks_stay_in_the_inbox(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        page = await inbox(client, bearer(token("bob")))

        assert who_what(page) == {
            ("bob", "CR-1001", "completed"),
            ("bob", "CR-1002", "open"),
        }
        completed = next(t for t in page["items"] if t["status"] == "completed")
        assert completed["decision_action"] == "approve"
        assert completed["completed_at"] is not None


class TestFilters:
    async def test_request_id(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        page = await inbox(client, bearer(token("alice")), request_id=world.cr_1002)

        assert who_what(page) == {("alice", "CR-1002", "open")}

    async def test_status_single_and_comma_separated(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        bob = bearer(token("bob"))

        only_open = await inbox(client, bob, status="open")
        both = await inbox(client, bob, status="open,completed")
        spaced = await inbox(client, bob, status=" completed , claimed ")

        assert who_what(only_open) == {("bob", "CR-1002", "open")}
        assert who_what(both) == {
            ("bob", "CR-1001", "completed"),
            ("bob", "CR-1002", "open"),
        }
        assert who_what(spaced) == {("bob", "CR-1001", "completed")}

    async def test_an_unknown_status_is_422(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        response = await client.get(
            "/v1/tasks", params={"status": "open,pending"}, headers=bearer(token("bob"))
        )

        assert response.status_code == 422
        assert response.json()["code"] == "validation_failed"

    async def test_artifact_type_and_policy_key(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        alice = bearer(token("alice"))

        by_type = await inbox(client, alice, artifact_type=TRANSFER)
        by_policy = await inbox(client, alice, policy_key=CHANGE_REQUEST)
        nothing = await inbox(client, alice, policy_key="no.such.policy")

        assert who_what(by_type) == {("alice", "PAY-7", "open")}
        assert who_what(by_policy) == {
            ("alice", "CR-1001", "open"),
            ("alice", "CR-1002", "open"),
        }
        assert nothing["items"] == []
        assert nothing["total"] == 0

    @pytest.mark.parametrize(
        ("text", "artifacts"),
        [
            ("northern", {"CR-1001", "PAY-7"}),  # a context value of each
            ("NORTHERN HILLS", {"CR-1001"}),  # case-insensitive
            ("cr-100", {"CR-1001", "CR-1002"}),  # the artifact id
            ("pay-7", {"PAY-7"}),
            ("1500", {"CR-1001"}),  # a number in the context, as text
            ("district", set()),  # keys are not values
            ("nowhere", set()),
            ("%", set()),  # LIKE wildcards are plain characters in a search
            ("cr_100", set()),
        ],
    )
    async def test_search_text(
        self,
        client: httpx.AsyncClient,
        world: World,
        token: TokenFactory,
        text: str,
        artifacts: set[str],
    ) -> None:
        page = await inbox(client, bearer(token("alice")), search_text=text)

        assert {t["artifact_id"] for t in page["items"]} == artifacts
        assert {t["assignee"] for t in page["items"]} <= {"alice"}
        assert page["total"] == len(artifacts)

    async def test_search_text_never_reaches_other_peoples_tasks(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        # "northern" matches CR-1001 (alice, bob, carol) and PAY-7 (alice, dave): dave gets his one.
        page = await inbox(client, bearer(token("dave")), search_text="northern")

        assert who_what(page) == {("dave", "PAY-7", "open")}


class TestPaging:
    async def _seven_tasks_for_walker(
        self, client: httpx.AsyncClient, admin: Headers, token: TokenFactory
    ) -> list[str]:
        await publish(client, admin, [stage(1, ["walker", "other"])], key="walk.policy")
        creator = bearer(token(CREATOR, azp="registry"))
        ids = []
        for n in range(7):
            created = await create_request(
                client, creator, key="walk.policy", artifact_id=f"W-{n}"
            )
            assert created.status_code == 201, created.text
            ids.append(
                next(
                    t["id"]
                    for t in created.json()["tasks"]
                    if t["assignee"] == "walker"
                )
            )
        return ids

    async def test_the_awe_envelope_pages_by_number(
        self, client: httpx.AsyncClient, admin_headers: Headers, token: TokenFactory
    ) -> None:
        await self._seven_tasks_for_walker(client, admin_headers, token)
        walker = bearer(token("walker"))

        first = await inbox(client, walker, page=1, page_size=3)
        last = await inbox(client, walker, page=3, page_size=3)
        beyond = await inbox(client, walker, page=4, page_size=3)

        assert set(first) == {
            "items",
            "total",
            "page",
            "page_size",
            "pages",
            "next_cursor",
        }
        assert (first["total"], first["page"], first["page_size"], first["pages"]) == (
            7,
            1,
            3,
            3,
        )
        assert len(first["items"]) == 3
        assert first["next_cursor"] is not None
        assert (last["page"], len(last["items"]), last["next_cursor"]) == (3, 1, None)
        assert (beyond["items"], beyond["total"]) == ([], 7)
        everything = await inbox(client, walker, page_size=100)
        assert [t["id"] for t in everything["items"]] == [
            t["id"] for t in newest_first(everything["items"])
        ]
        assert first["items"] == everything["items"][:3]
        assert last["items"] == everything["items"][6:]

    async def test_default_page_size_is_25(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        page = await inbox(client, bearer(token("alice")))

        assert (page["page"], page["page_size"], page["pages"], page["total"]) == (
            1,
            25,
            1,
            3,
        )

    @pytest.mark.parametrize(
        "params",
        [{"page_size": 101}, {"page_size": 0}, {"page": 0}, {"page": -1}],
    )
    async def test_out_of_range_paging_is_422(
        self, client: httpx.AsyncClient, token: TokenFactory, params: Body
    ) -> None:
        response = await client.get(
            "/v1/tasks", params=params, headers=bearer(token("alice"))
        )

        assert response.status_code == 422
        assert response.json()["code"] == "validation_failed"

    async def test_page_size_100_is_allowed(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        page = await inbox(client, bearer(token("alice")), page_size=100)

        assert page["page_size"] == 100

    async def test_a_cursor_walk_returns_every_task_once_newest_first(
        self, client: httpx.AsyncClient, admin_headers: Headers, token: TokenFactory
    ) -> None:
        ids = await self._seven_tasks_for_walker(client, admin_headers, token)
        walker = bearer(token("walker"))

        walked: list[Body] = []
        page = await inbox(client, walker, page_size=2)
        walked += page["items"]
        pages = 1
        while page["next_cursor"] is not None:
            page = await inbox(client, walker, page_size=2, cursor=page["next_cursor"])
            walked += page["items"]
            pages += 1
            assert pages <= 4

        assert pages == 4
        assert sorted(t["id"] for t in walked) == sorted(ids)
        assert len(walked) == len(ids)
        assert walked == newest_first(walked)
        assert [t["artifact_id"] for t in walked] == [
            f"W-{n}" for n in reversed(range(7))
        ]

    async def test_a_cursor_walk_with_a_filter_keeps_the_filter(
        self, client: httpx.AsyncClient, admin_headers: Headers, token: TokenFactory
    ) -> None:
        ids = await self._seven_tasks_for_walker(client, admin_headers, token)
        walker = bearer(token("walker"))
        # Three of walker's tasks get decided: a walk over `open` sees the other four.
        for task_id in ids[:3]:
            assert (await decide(client, token("walker"), task_id)).status_code == 201

        walked: list[Body] = []
        page = await inbox(client, walker, page_size=3, status="open")
        walked += page["items"]
        while page["next_cursor"] is not None:
            page = await inbox(
                client, walker, page_size=3, status="open", cursor=page["next_cursor"]
            )
            walked += page["items"]

        assert sorted(t["id"] for t in walked) == sorted(ids[3:])
        assert walked == newest_first(walked)

    async def test_a_walk_over_mixed_statuses_is_one_newest_first_order(
        self, client: httpx.AsyncClient, admin_headers: Headers, token: TokenFactory
    ) -> None:
        # Statuses interleave in time (open, completed, open, completed...): every page of the
        # walk must still be the next newest tasks, whatever their status.
        ids = await self._seven_tasks_for_walker(client, admin_headers, token)
        for task_id in ids[1::2]:
            assert (await decide(client, token("walker"), task_id)).status_code == 201
        walker = bearer(token("walker"))

        for statuses in (None, "open,completed", "completed,open,claimed"):
            params: Body = {"page_size": 2}
            if statuses:
                params["status"] = statuses
            walked: list[Body] = []
            page = await inbox(client, walker, **params)
            walked += page["items"]
            while page["next_cursor"] is not None:
                page = await inbox(client, walker, **params, cursor=page["next_cursor"])
                walked += page["items"]

            assert [t["artifact_id"] for t in walked] == [
                f"W-{n}" for n in reversed(range(7))
            ]
            assert [t["status"] for t in walked] == [
                "open" if n % 2 == 0 else "completed" for n in reversed(range(7))
            ]

    @pytest.mark.parametrize(
        "cursor",
        [
            "not-a-cursor",
            encode_cursor(["2026-01-01T00:00:00+00:00"]),
            encode_cursor(["yesterday", str(uuid.uuid4())]),
            encode_cursor(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
            encode_cursor([1, 2]),
        ],
        ids=["garbage", "one-value", "bad-time", "bad-id", "numbers"],
    )
    async def test_a_cursor_this_service_did_not_issue_is_422(
        self, client: httpx.AsyncClient, token: TokenFactory, cursor: str
    ) -> None:
        response = await client.get(
            "/v1/tasks", params={"cursor": cursor}, headers=bearer(token("alice"))
        )

        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_failed"


class TestOtherPeoplesTasks:
    @pytest.mark.parametrize("assignee", ["*", "bob"])
    async def test_a_plain_user_may_not_list_them(
        self,
        client: httpx.AsyncClient,
        world: World,
        token: TokenFactory,
        assignee: str,
    ) -> None:
        response = await client.get(
            "/v1/tasks", params={"assignee": assignee}, headers=bearer(token("alice"))
        )

        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"

    async def test_admins_and_viewers_may(
        self,
        client: httpx.AsyncClient,
        world: World,
        admin_headers: Headers,
        viewer_headers: Headers,
    ) -> None:
        for headers in (admin_headers, viewer_headers):
            everyone = await inbox(client, headers, assignee="*")
            bobs = await inbox(client, headers, assignee="bob")

            assert everyone["total"] == 8
            assert {t["assignee"] for t in everyone["items"]} == {
                "alice",
                "bob",
                "carol",
                "dave",
            }
            assert who_what(bobs) == {
                ("bob", "CR-1001", "completed"),
                ("bob", "CR-1002", "open"),
            }

    async def test_the_creating_principal_sees_every_task_of_its_request(
        self, client: httpx.AsyncClient, world: World
    ) -> None:
        page = await inbox(
            client, world.creator, assignee="*", request_id=world.cr_1001
        )

        assert who_what(page) == {
            ("alice", "CR-1001", "open"),
            ("bob", "CR-1001", "completed"),
            ("carol", "CR-1001", "open"),
        }

    async def test_an_approver_sees_completed_tasks_plus_their_own(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        page = await inbox(
            client, bearer(token("alice")), assignee="*", request_id=world.cr_1001
        )

        # carol's open task stays private.
        assert who_what(page) == {
            ("alice", "CR-1001", "open"),
            ("bob", "CR-1001", "completed"),
        }

    async def test_another_principal_of_the_creating_client_sees_completed_tasks_only(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        # It may see the request (same `azp`), but it is not the principal that created it.
        colleague = bearer(token("registry-clerk", azp="registry"))

        page = await inbox(client, colleague, assignee="*", request_id=world.cr_1001)

        assert who_what(page) == {("bob", "CR-1001", "completed")}

    async def test_a_stranger_gets_nothing_of_the_request(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        # dave holds a task elsewhere (PAY-7) but none on CR-1001; mallory holds none at all.
        for stranger in ("dave", "mallory"):
            page = await inbox(
                client, bearer(token(stranger)), assignee="*", request_id=world.cr_1001
            )

            assert page["items"] == []
            assert page["total"] == 0

    async def test_the_awe_alias_without_status_gives_completed_tasks_plus_own(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        # AWE's answer (completed tasks plus one's own), within the visibility rule: completed
        # tasks of requests the principal may see at all.
        alice = await inbox(
            client, bearer(token("alice")), "/v1/awe/tasks", assignee="*"
        )
        colleague = await inbox(
            client,
            bearer(token("registry-clerk", azp="registry")),
            "/v1/awe/tasks",
            assignee="*",
        )

        assert who_what(alice) == {
            ("alice", "CR-1001", "open"),
            ("alice", "CR-1002", "open"),
            ("alice", "PAY-7", "open"),
            ("bob", "CR-1001", "completed"),
        }
        assert who_what(colleague) == {("bob", "CR-1001", "completed")}

    async def test_the_awe_alias_never_shows_completed_tasks_of_requests_one_cannot_see(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        # dave holds a task on PAY-7 only; bob's completed task on CR-1001 is none of his business.
        dave = await inbox(client, bearer(token("dave")), "/v1/awe/tasks", assignee="*")
        mallory = await inbox(
            client, bearer(token("mallory")), "/v1/awe/tasks", assignee="*"
        )

        assert who_what(dave) == {("dave", "PAY-7", "open")}
        assert mallory["items"] == []

    async def test_the_awe_alias_with_a_status_follows_the_general_rule(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        response = await client.get(
            "/v1/awe/tasks",
            params={"assignee": "*", "status": "open"},
            headers=bearer(token("dave")),
        )

        assert response.status_code == 403

    async def test_outside_the_alias_star_without_request_id_is_refused(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        response = await client.get(
            "/v1/tasks", params={"assignee": "*"}, headers=bearer(token("dave"))
        )

        assert response.status_code == 403


class TestStats:
    async def test_counts_my_tasks_by_type_and_status(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        alice = await inbox(client, bearer(token("alice")), "/v1/tasks/stats")
        bob = await inbox(client, bearer(token("bob")), "/v1/tasks/stats")

        assert alice == {
            "total": 3,
            "by_artifact_type": {CHANGE_REQUEST: 2, TRANSFER: 1},
            "by_status": {"open": 3},
        }
        assert bob == {
            "total": 2,
            "by_artifact_type": {CHANGE_REQUEST: 2},
            "by_status": {"open": 1, "completed": 1},
        }

    async def test_the_status_filter(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        completed = await inbox(
            client, bearer(token("bob")), "/v1/tasks/stats", status="completed"
        )
        none = await inbox(
            client, bearer(token("mallory")), "/v1/tasks/stats", status="open"
        )

        assert completed == {
            "total": 1,
            "by_artifact_type": {CHANGE_REQUEST: 1},
            "by_status": {"completed": 1},
        }
        assert none == {"total": 0, "by_artifact_type": {}, "by_status": {}}

    async def test_the_awe_alias_adds_a_count_per_active_artifact_type(
        self,
        client: httpx.AsyncClient,
        world: World,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        # A draft policy's artifact type is not offered: only active policies count.
        draft = await client.post(
            "/v1/policies",
            json={
                "policy_key": "registry.draft_thing",
                "name": "draft",
                "artifact_type": "registry.draft_thing",
                "stages": [stage(1, ["alice"])],
            },
            headers=admin_headers,
        )
        assert draft.status_code == 201, draft.text

        bob = await inbox(client, bearer(token("bob")), "/v1/awe/tasks/stats")
        plain = await inbox(client, bearer(token("bob")), "/v1/tasks/stats")

        assert bob["change_request_count"] == 2
        assert bob["transfer_count"] == 0
        assert "draft_thing_count" not in bob
        assert {k: v for k, v in bob.items() if not k.endswith("_count")} == plain
        assert not any(k.endswith("_count") for k in plain)

    async def test_the_awe_alias_always_carries_awes_two_fixed_counts(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        # No policy at all: the OpenG2P registry UI still reads both fields.
        stats = await inbox(client, bearer(token("bob")), "/v1/awe/tasks/stats")

        assert stats["change_request_count"] == 0
        assert stats["intake_form_count"] == 0
        assert stats["total"] == 0


class TestClaim:
    async def test_the_assignee_claims_an_open_task(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        task = (await inbox(client, bearer(token("dave"))))["items"][0]

        response = await client.post(
            f"/v1/tasks/{task['id']}/claim", headers=bearer(token("dave"))
        )

        assert response.status_code == 200, response.text
        claimed = response.json()
        assert claimed["id"] == task["id"]
        assert claimed["status"] == "claimed"
        assert claimed["claimed_at"] is not None
        assert claimed["context"] == task["context"]
        listed = await inbox(client, bearer(token("dave")), status="claimed")
        assert [t["id"] for t in listed["items"]] == [task["id"]]

    async def test_claiming_twice_is_409(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        task_id = (await inbox(client, bearer(token("dave"))))["items"][0]["id"]
        first = await client.post(
            f"/v1/tasks/{task_id}/claim", headers=bearer(token("dave"))
        )

        again = await client.post(
            f"/v1/tasks/{task_id}/claim", headers=bearer(token("dave"))
        )

        assert first.status_code == 200
        assert again.status_code == 409
        assert again.json()["code"] == "invalid_state"

    async def test_claiming_a_completed_task_is_409(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        done = (await inbox(client, bearer(token("bob")), status="completed"))["items"][
            0
        ]

        response = await client.post(
            f"/v1/tasks/{done['id']}/claim", headers=bearer(token("bob"))
        )

        assert response.status_code == 409

    async def test_someone_else_cannot_claim_it(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        carol_task = next(
            t["id"]
            for t in (await inbox(client, bearer(token("carol"))))["items"]
            if t["artifact_id"] == "CR-1001"
        )

        # alice holds a task on the same request: she can see it, but it is not hers.
        by_colleague = await client.post(
            f"/v1/tasks/{carol_task}/claim", headers=bearer(token("alice"))
        )
        # mallory cannot even see the request.
        by_stranger = await client.post(
            f"/v1/tasks/{carol_task}/claim", headers=bearer(token("mallory"))
        )

        assert by_colleague.status_code == 403
        assert by_colleague.json()["code"] == "forbidden"
        assert by_stranger.status_code == 404
        assert by_stranger.json()["code"] == "task_not_found"
        still = await inbox(client, bearer(token("carol")), request_id=world.cr_1001)
        assert still["items"][0]["status"] == "open"

    async def test_an_unknown_task_is_404(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        response = await client.post(
            f"/v1/tasks/{uuid.uuid4()}/claim", headers=bearer(token("alice"))
        )

        assert response.status_code == 404
        assert response.json()["code"] == "task_not_found"

    async def test_a_claimed_task_can_still_be_decided(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        task_id = (await inbox(client, bearer(token("dave"))))["items"][0]["id"]
        claimed = await client.post(
            f"/v1/tasks/{task_id}/claim", headers=bearer(token("dave"))
        )
        assert claimed.status_code == 200

        decided = await decide(client, token("dave"), task_id)

        assert decided.status_code == 201, decided.text
        assert decided.json()["request_status"] == "approved"
        [task] = (await inbox(client, bearer(token("dave"))))["items"]
        assert (task["status"], task["decision_action"]) == ("completed", "approve")

    async def test_the_claim_takes_an_empty_body_or_none(
        self, client: httpx.AsyncClient, world: World, token: TokenFactory
    ) -> None:
        task_id = (await inbox(client, bearer(token("dave"))))["items"][0]["id"]

        response = await client.post(
            f"/v1/tasks/{task_id}/claim",
            headers={**bearer(token("dave")), "Content-Type": "application/json"},
        )

        assert response.status_code == 200, response.text
