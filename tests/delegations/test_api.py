"""`GET/POST /v1/delegations`, `DELETE /v1/delegations/{id}` (API.md, "Delegations").

`{id, user_id, delegate_to, starts_at, ends_at, reason, created_by, created_at}`. Admins manage
anyone's; any user manages their own (`user_id` = self, the default). Windows need
`ends_at > starts_at` and `delegate_to != user_id` (422 `validation_failed` with pointers).
Deleting another user's delegation without admin is 403; an unknown id is 404 `task_not_found`.
Every write is in the audit log.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from countersign.kit import clock
from tests.delegations.windows import open_window, post_window, window_body
from tests.fixtures.flows import Body, Flow, Headers, problem_code

FIELDS = {
    "id",
    "user_id",
    "delegate_to",
    "starts_at",
    "ends_at",
    "reason",
    "created_by",
    "created_at",
}


async def listed(
    client: httpx.AsyncClient, headers: Headers, **params: str
) -> list[Body]:
    response = await client.get("/v1/delegations", params=params, headers=headers)
    assert response.status_code == 200, response.text
    rows: list[Body] = response.json()
    return rows


def pairs(rows: list[Body]) -> set[tuple[str, str]]:
    return {(r["user_id"], r["delegate_to"]) for r in rows}


class TestCreate:
    async def test_a_user_delegates_their_own_tasks(self, flow: Flow) -> None:
        body = window_body("bob", starts_in_hours=2, lasts_hours=48, reason="leave")
        response = await post_window(flow.client, flow.user("alice"), body)
        assert response.status_code == 201, response.text
        created = response.json()
        assert set(created) == FIELDS
        assert created["user_id"] == "alice", "user_id defaults to the caller"
        assert created["delegate_to"] == "bob"
        assert created["created_by"] == "alice"
        assert created["reason"] == "leave"
        uuid.UUID(created["id"])
        for field in ("starts_at", "ends_at"):
            assert created[field].endswith("Z")
        assert created["starts_at"] == body["starts_at"]

    async def test_naming_yourself_is_the_same(self, flow: Flow) -> None:
        body = window_body("bob", user_id="alice")
        response = await post_window(flow.client, flow.user("alice"), body)
        assert response.status_code == 201, response.text

    async def test_another_users_window_needs_admin(self, flow: Flow) -> None:
        body = window_body("mallory", user_id="alice")
        for headers in (
            flow.user("bob"),
            flow.user("vic", roles=["AWE_VIEWER"]),
        ):
            response = await post_window(flow.client, headers, body)
            assert response.status_code == 403, response.text
            assert problem_code(response) == "forbidden"
        assert await listed(flow.client, flow.admin) == []

    async def test_admins_manage_anyones(self, flow: Flow) -> None:
        response = await post_window(
            flow.client, flow.admin, window_body("bob", user_id="alice")
        )
        assert response.status_code == 201, response.text
        assert response.json()["user_id"] == "alice"
        assert response.json()["created_by"] == "admin-ann"

    async def test_window_must_end_after_it_starts_and_name_someone_else(
        self, flow: Flow
    ) -> None:
        body = window_body("alice", lasts_hours=0)  # alice to alice, zero length
        response = await post_window(flow.client, flow.user("alice"), body)
        assert response.status_code == 422, response.text
        assert problem_code(response) == "validation_failed"
        problem = response.json()
        assert {e["pointer"] for e in problem["errors"]} == {"/ends_at", "/delegate_to"}
        assert {e["errorCode"] for e in problem["errors"]} == {"AWE-010"}

        backwards = window_body("bob", lasts_hours=-1)
        response = await post_window(flow.client, flow.user("alice"), backwards)
        assert response.status_code == 422
        assert [e["pointer"] for e in response.json()["errors"]] == ["/ends_at"]

        to_self = window_body("alice", user_id="alice")
        response = await post_window(flow.client, flow.admin, to_self)
        assert [e["pointer"] for e in response.json()["errors"]] == ["/delegate_to"]
        assert await listed(flow.client, flow.admin) == []

    @pytest.mark.parametrize(
        "change",
        [
            {"delegate_to": None},
            {"delegate_to": ""},
            {"starts_at": "tomorrow"},
            {"ends_at": "2030-01-01T00:00:00"},  # no timezone
        ],
        ids=["no-delegate", "empty-delegate", "bad-date", "naive-date"],
    )
    async def test_malformed_bodies(self, flow: Flow, change: Body) -> None:
        body = {**window_body("bob"), **change}
        response = await post_window(flow.client, flow.user("alice"), body)
        assert response.status_code == 422, response.text
        assert problem_code(response) == "validation_failed"
        assert response.json()["errors"][0]["pointer"].startswith("/")


class TestList:
    async def test_users_see_what_they_made_or_received(self, flow: Flow) -> None:
        await open_window(flow, "alice", "bob")
        await open_window(flow, "bob", "carol")
        await open_window(flow, "dave", "erin")

        assert pairs(await listed(flow.client, flow.user("alice"))) == {
            ("alice", "bob")
        }
        assert pairs(await listed(flow.client, flow.user("bob"))) == {
            ("alice", "bob"),
            ("bob", "carol"),
        }
        assert await listed(flow.client, flow.user("frank")) == []
        everything = {("alice", "bob"), ("bob", "carol"), ("dave", "erin")}
        assert pairs(await listed(flow.client, flow.admin)) == everything
        viewer = flow.user("vic", roles=["AWE_VIEWER"])
        assert pairs(await listed(flow.client, viewer)) == everything
        assert pairs(await listed(flow.client, flow.admin, user_id="bob")) == {
            ("bob", "carol")
        }

    async def test_active_filter_keeps_windows_open_now(self, flow: Flow) -> None:
        await open_window(flow, "alice", "bob", starts_in_hours=-2, lasts_hours=1)
        current = await open_window(flow, "alice", "carol", starts_in_hours=-1)
        await open_window(flow, "alice", "dave", starts_in_hours=1)

        active = await listed(flow.client, flow.user("alice"), active="true")
        assert [r["id"] for r in active] == [current["id"]]
        assert len(await listed(flow.client, flow.user("alice"))) == 3

        clock.advance(2 * 3600)  # the future window opens
        active = await listed(flow.client, flow.user("alice"), active="true")
        assert {r["delegate_to"] for r in active} == {"carol", "dave"}

    async def test_newest_window_first_in_pages(self, flow: Flow) -> None:
        for hours in range(5):
            await open_window(flow, "alice", "bob", starts_in_hours=hours)
        first = await flow.client.get(
            "/v1/delegations", params={"limit": 2}, headers=flow.user("alice")
        )
        assert first.status_code == 200
        seen = first.json()
        cursor = first.headers["X-Next-Cursor"]
        assert 'rel="next"' in first.headers["Link"]
        while cursor:
            page = await flow.client.get(
                "/v1/delegations",
                params={"limit": 2, "cursor": cursor},
                headers=flow.user("alice"),
            )
            seen += page.json()
            cursor = page.headers.get("X-Next-Cursor", "")
        starts = [r["starts_at"] for r in seen]
        assert len(starts) == 5
        assert starts == sorted(starts, reverse=True)

        bad = await flow.client.get(
            "/v1/delegations", params={"cursor": "nonsense"}, headers=flow.admin
        )
        assert bad.status_code == 422
        assert problem_code(bad) == "validation_failed"


class TestDelete:
    async def test_users_end_their_own_windows(self, flow: Flow) -> None:
        window = await open_window(flow, "alice", "bob")
        response = await flow.client.delete(
            f"/v1/delegations/{window['id']}", headers=flow.user("alice")
        )
        assert response.status_code == 204
        assert await listed(flow.client, flow.admin) == []

    @pytest.mark.parametrize(
        "who", ["bob", "stranger", "viewer"], ids=["delegate", "stranger", "viewer"]
    )
    async def test_another_users_window_needs_admin(self, flow: Flow, who: str) -> None:
        window = await open_window(flow, "alice", "bob")
        headers = (
            flow.user("vic", roles=["AWE_VIEWER"])
            if who == "viewer"
            else flow.user(who)
        )
        response = await flow.client.delete(
            f"/v1/delegations/{window['id']}", headers=headers
        )
        assert response.status_code == 403, response.text
        assert problem_code(response) == "forbidden"
        assert len(await listed(flow.client, flow.admin)) == 1

    async def test_admins_end_anyones(self, flow: Flow) -> None:
        window = await open_window(flow, "alice", "bob")
        response = await flow.client.delete(
            f"/v1/delegations/{window['id']}", headers=flow.admin
        )
        assert response.status_code == 204
        again = await flow.client.delete(
            f"/v1/delegations/{window['id']}", headers=flow.admin
        )
        assert again.status_code == 404

    async def test_unknown_is_404(self, flow: Flow) -> None:
        response = await flow.client.delete(
            f"/v1/delegations/{uuid.uuid4()}", headers=flow.user("alice")
        )
        assert response.status_code == 404
        assert problem_code(response) == "task_not_found"
        assert response.json()["errorCode"] == "AWE-004"


class TestAudit:
    async def test_create_and_delete_are_audited_with_snapshots(
        self, flow: Flow
    ) -> None:
        response = await post_window(
            flow.client,
            flow.admin,
            window_body("bob", user_id="alice", reason="conference"),
        )
        window = response.json()
        deleted = await flow.client.delete(
            f"/v1/delegations/{window['id']}", headers=flow.user("alice")
        )
        assert deleted.status_code == 204

        audit = await flow.client.get(
            "/v1/admin/audit",
            params={"resource_type": "delegation", "resource_id": window["id"]},
            headers=flow.admin,
        )
        assert audit.status_code == 200, audit.text
        entries = {e["action"]: e for e in audit.json()}
        assert set(entries) == {"delegation.create", "delegation.delete"}
        created, removed = entries["delegation.create"], entries["delegation.delete"]
        assert created["actor"] == "admin-ann"
        assert created["before"] is None
        assert created["after"]["reason"] == "conference"
        assert created["after"]["user_id"] == "alice"
        assert removed["actor"] == "alice"
        assert removed["before"]["id"] == window["id"]
        assert removed["after"] is None
