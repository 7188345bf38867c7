"""The policies API over HTTP (API.md, "Policies"), on PostgreSQL, with dev-mode tokens.

Each class is one row of the contract's endpoint table (plus validation, access and the AWE alias).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.kit.clock import now
from countersign.models import AuditEntry, Delegation, Policy, PolicyRule, PolicyStage
from tests.policies.factories import (
    DEFAULT_KEY,
    POLICIES,
    Body,
    activate,
    add_version,
    create_policy,
    expect_problem,
    expression_rule,
    group_rule,
    pointers,
    policy_body,
    role_rule,
    stage,
    two_stage_body,
    user_rule,
)

Headers = dict[str, str]


async def add_delegation(
    session: AsyncSession, user_id: str, delegate_to: str
) -> uuid.UUID:
    """An active delegation window, written directly (the delegations API is not under test)."""
    at = now()
    delegation = Delegation(
        id=uuid.uuid4(),
        user_id=user_id,
        delegate_to=delegate_to,
        starts_at=at - timedelta(hours=1),
        ends_at=at + timedelta(days=1),
        reason="holiday",
        created_by=user_id,
        created_at=at,
    )
    session.add(delegation)
    await session.commit()
    return delegation.id


ADMIN_ID = "admin-ann"  # principal id of `admin_headers`
VIEWER_ID = "viewer-vic"  # principal id of `viewer_headers`

VERSION_FIELDS = {"id", "policy_key", "version", "status", "created_at", "created_by"}
POLICY_IN_FIELDS = set(policy_body())


def version_path(version: int, key: str = DEFAULT_KEY, base: str = POLICIES) -> str:
    return f"{base}/{key}/versions/{version}"


async def audit_rows(
    session: AsyncSession, action: str | None = None
) -> list[AuditEntry]:
    """Committed audit rows (fresh from the database), oldest first."""
    statement = select(AuditEntry).order_by(AuditEntry.created_at, AuditEntry.id)
    if action is not None:
        statement = statement.where(AuditEntry.action == action)
    result = await session.execute(statement.execution_options(populate_existing=True))
    return list(result.scalars().all())


async def count_rows(session: AsyncSession, model: type[Any]) -> int:
    result = await session.execute(select(func.count()).select_from(model))
    return int(result.scalar_one())


async def table_counts(session: AsyncSession) -> dict[str, int]:
    return {
        model.__tablename__: await count_rows(session, model)
        for model in (Policy, PolicyStage, PolicyRule, AuditEntry)
    }


async def statuses(session: AsyncSession, key: str = DEFAULT_KEY) -> dict[int, str]:
    """Version -> status, read straight from the database."""
    result = await session.execute(
        select(Policy.version, Policy.status).where(Policy.policy_key == key)
    )
    return dict(result.all())


async def get_json(client: httpx.AsyncClient, path: str, headers: Headers) -> Any:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def without_bookkeeping(policy: Body) -> Body:
    """A PolicyOut reduced to the PolicyIn fields an author wrote (stage ids dropped)."""
    body = {k: v for k, v in policy.items() if k in POLICY_IN_FIELDS}
    body["stages"] = [
        {k: v for k, v in s.items() if k != "id"} for s in policy["stages"]
    ]
    return body


def normalized(body: Body) -> Body:
    """A PolicyIn dict with the defaults the service fills in for rules (kind, required)."""
    result = dict(body)
    result["stages"] = [
        {
            **s,
            "rules": [{"kind": "approver", "required": False, **r} for r in s["rules"]],
        }
        for s in body["stages"]
    ]
    return result


# --- POST /v1/policies -------------------------------------------------------------------------


class TestCreate:
    async def test_creates_version_1_as_a_draft_owned_by_the_admin(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.post(
            POLICIES, json=policy_body(), headers=admin_headers
        )

        assert response.status_code == 201
        created = response.json()
        assert created["version"] == 1
        assert created["status"] == "draft"
        assert created["created_by"] == ADMIN_ID
        assert created["policy_key"] == DEFAULT_KEY
        uuid.UUID(created["id"])
        assert created["created_at"].endswith("Z")

    async def test_gives_every_stage_an_id(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        created = await create_policy(client, admin_headers, two_stage_body())

        ids = [uuid.UUID(s["id"]) for s in created["stages"]]
        assert len(set(ids)) == 2

    async def test_stores_the_body_as_written(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        body = two_stage_body(
            applies_if={"==": [{"var": "agency"}, "HRSA"]},
            priority=5,
            request_ttl_hours=48,
        )
        created = await create_policy(client, admin_headers, body)

        fetched = await get_json(client, version_path(1), admin_headers)
        assert without_bookkeeping(fetched) == normalized(body)
        assert fetched == created

    async def test_existing_key_is_409_policy_exists_and_keeps_the_original(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers, policy_body(name="Original"))

        response = await client.post(
            POLICIES, json=policy_body(name="Second"), headers=admin_headers
        )

        expect_problem(response, "policy_exists")
        assert await statuses(session) == {1: "draft"}
        fetched = await get_json(client, version_path(1), admin_headers)
        assert fetched["name"] == "Original"

    async def test_records_a_create_audit_entry_with_the_new_version(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        created = await create_policy(client, admin_headers)

        [entry] = await audit_rows(session)
        assert entry.action == "policy.create"
        assert entry.actor == ADMIN_ID
        assert entry.resource_type == "policy"
        assert entry.resource_id == f"{DEFAULT_KEY}@1"
        assert entry.before is None
        assert entry.after == created


# --- GET /v1/policies --------------------------------------------------------------------------


class TestList:
    async def test_returns_the_newest_version_of_each_key_as_a_bare_array(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers, policy_body(policy_key="a.one"))
        await add_version(
            client, admin_headers, policy_body(policy_key="a.one", name="One v2")
        )
        await create_policy(client, admin_headers, policy_body(policy_key="b.two"))

        listed = await get_json(client, POLICIES, admin_headers)

        assert isinstance(listed, list)
        assert [(p["policy_key"], p["version"], p["name"]) for p in listed] == [
            ("a.one", 2, "One v2"),
            ("b.two", 1, "Change request approval"),
        ]
        assert all(p["stages"] and "id" in p["stages"][0] for p in listed)

    async def test_is_an_empty_array_without_policies(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get(POLICIES, headers=admin_headers)

        assert response.status_code == 200
        assert response.json() == []
        assert "X-Next-Cursor" not in response.headers
        assert "Link" not in response.headers

    async def test_pages_with_limit_and_next_cursor_headers(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        keys = [f"key.{n}" for n in range(5)]
        for key in keys:
            await create_policy(client, admin_headers, policy_body(policy_key=key))

        first = await client.get(POLICIES, params={"limit": 2}, headers=admin_headers)
        assert first.status_code == 200
        assert [p["policy_key"] for p in first.json()] == keys[:2]
        cursor = first.headers["X-Next-Cursor"]
        link = first.headers["Link"]
        assert link.startswith("<")
        assert link.endswith('>; rel="next"')
        next_url = urlsplit(link[1 : link.index(">")])
        assert next_url.path == POLICIES
        assert parse_qs(next_url.query) == {"limit": ["2"], "cursor": [cursor]}

        second = await client.get(
            POLICIES, params={"limit": 2, "cursor": cursor}, headers=admin_headers
        )
        assert [p["policy_key"] for p in second.json()] == keys[2:4]

        # Following the Link header as given reaches the same kind of page.
        third_link = second.headers["Link"]
        third = await client.get(
            third_link[1 : third_link.index(">")], headers=admin_headers
        )
        assert third.status_code == 200
        assert [p["policy_key"] for p in third.json()] == keys[4:]
        assert "X-Next-Cursor" not in third.headers
        assert "Link" not in third.headers

    async def test_a_page_that_ends_exactly_at_the_last_key_has_no_next_link(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        for key in ("k.a", "k.b"):
            await create_policy(client, admin_headers, policy_body(policy_key=key))

        response = await client.get(
            POLICIES, params={"limit": 2}, headers=admin_headers
        )

        assert len(response.json()) == 2
        assert "X-Next-Cursor" not in response.headers
        assert "Link" not in response.headers

    async def test_a_cursor_it_did_not_issue_is_422_validation_failed(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get(
            POLICIES, params={"cursor": "not-a-cursor!"}, headers=admin_headers
        )

        problem = expect_problem(response, "validation_failed")
        assert pointers(problem) == ["/cursor"]


# --- GET /v1/policies/{key}/versions -----------------------------------------------------------


class TestListVersions:
    async def test_lists_every_version_newest_first_with_the_summary_fields(
        self, client: httpx.AsyncClient, admin_headers: Headers, token: Any
    ) -> None:
        await create_policy(client, admin_headers)
        other_admin = {
            "Authorization": f"Bearer {token('admin-bo', roles=['AWE_ADMIN'])}"
        }
        await add_version(client, other_admin)
        await add_version(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 2)

        versions = await get_json(
            client, f"{POLICIES}/{DEFAULT_KEY}/versions", admin_headers
        )

        assert all(set(v) == VERSION_FIELDS for v in versions)
        assert [(v["version"], v["status"], v["created_by"]) for v in versions] == [
            (3, "draft", ADMIN_ID),
            (2, "active", "admin-bo"),
            (1, "draft", ADMIN_ID),
        ]
        assert {v["policy_key"] for v in versions} == {DEFAULT_KEY}
        assert len({v["id"] for v in versions}) == 3

    async def test_unknown_key_is_404_policy_not_found(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get(f"{POLICIES}/nope/versions", headers=admin_headers)

        expect_problem(response, "policy_not_found")


# --- GET /v1/policies/{key}/versions/{v} -------------------------------------------------------


class TestGetVersion:
    async def test_returns_that_version(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        first = await create_policy(client, admin_headers, policy_body(name="First"))
        second = await add_version(client, admin_headers, policy_body(name="Second"))

        assert await get_json(client, version_path(1), admin_headers) == first
        assert await get_json(client, version_path(2), admin_headers) == second

    async def test_unknown_key_is_404_policy_not_found(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get(version_path(1, key="nope"), headers=admin_headers)

        expect_problem(response, "policy_not_found")

    async def test_unknown_version_is_404_policy_not_found(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers)

        response = await client.get(version_path(2), headers=admin_headers)

        expect_problem(response, "policy_not_found")

    async def test_a_non_numeric_version_is_422_validation_failed(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get(
            f"{POLICIES}/{DEFAULT_KEY}/versions/latest", headers=admin_headers
        )

        problem = expect_problem(response, "validation_failed")
        assert pointers(problem) == ["/version"]


# --- PUT /v1/policies/{key} --------------------------------------------------------------------


class TestAddVersion:
    async def test_adds_a_draft_numbered_latest_plus_one(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 1)
        await add_version(client, admin_headers)

        response = await client.put(
            f"{POLICIES}/{DEFAULT_KEY}",
            json=policy_body(name="Third"),
            headers=admin_headers,
        )

        assert response.status_code == 201
        added = response.json()
        assert (added["version"], added["status"], added["name"]) == (
            3,
            "draft",
            "Third",
        )
        assert added["created_by"] == ADMIN_ID
        # Adding a version publishes nothing: the active version stays active.
        assert await statuses(session) == {1: "active", 2: "draft", 3: "draft"}

    async def test_body_key_differing_from_the_url_is_400_and_stores_nothing(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers)

        response = await client.put(
            f"{POLICIES}/{DEFAULT_KEY}",
            json=policy_body(policy_key="other.key"),
            headers=admin_headers,
        )

        expect_problem(response, "policy_key_mismatch")
        assert await statuses(session) == {1: "draft"}
        assert await statuses(session, "other.key") == {}

    async def test_unknown_key_is_404_policy_not_found(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        response = await client.put(
            f"{POLICIES}/{DEFAULT_KEY}", json=policy_body(), headers=admin_headers
        )

        expect_problem(response, "policy_not_found")
        assert await count_rows(session, Policy) == 0

    async def test_records_an_add_version_audit_entry(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers)
        added = await add_version(client, admin_headers)

        [entry] = await audit_rows(session, "policy.add_version")
        assert entry.actor == ADMIN_ID
        assert entry.resource_id == f"{DEFAULT_KEY}@2"
        assert entry.after == added


# --- PATCH /v1/policies/{key}/versions/{v} -----------------------------------------------------


class TestPatch:
    async def test_absent_fields_keep_their_value(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        created = await create_policy(client, admin_headers, two_stage_body())

        response = await client.patch(
            version_path(1),
            json={"name": "Renamed", "priority": 7},
            headers=admin_headers,
        )

        assert response.status_code == 200
        patched = response.json()
        assert patched["name"] == "Renamed"
        assert patched["priority"] == 7
        unchanged = {k: v for k, v in created.items() if k not in {"name", "priority"}}
        assert {k: patched[k] for k in unchanged if k != "stages"} == {
            k: v for k, v in unchanged.items() if k != "stages"
        }
        assert (
            without_bookkeeping(patched)["stages"]
            == without_bookkeeping(created)["stages"]
        )
        assert await get_json(client, version_path(1), admin_headers) == patched

    async def test_stages_replace_every_stage(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers, two_stage_body())
        new_stages = [stage(stage_order=5, name="Only stage", rules=[user_rule("bob")])]

        response = await client.patch(
            version_path(1), json={"stages": new_stages}, headers=admin_headers
        )

        assert response.status_code == 200
        fetched = await get_json(client, version_path(1), admin_headers)
        assert (
            without_bookkeeping(fetched)["stages"]
            == normalized(policy_body(stages=new_stages))["stages"]
        )
        assert fetched["name"] == "Change request approval"

    async def test_replacement_stages_may_reuse_stage_orders(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers, two_stage_body())
        new_stages = [
            stage(stage_order=1, name="Directors first", rules=[role_rule("director")]),
            stage(stage_order=2, name="Officers second", rules=[user_rule("bob")]),
            stage(stage_order=3, name="Carol last", rules=[user_rule("carol")]),
        ]

        response = await client.patch(
            version_path(1), json={"stages": new_stages}, headers=admin_headers
        )

        assert response.status_code == 200, response.text
        assert [s["name"] for s in response.json()["stages"]] == [
            "Directors first",
            "Officers second",
            "Carol last",
        ]
        # The old stages and their rules are gone, not left behind next to the new ones.
        assert await count_rows(session, PolicyStage) == 3
        assert await count_rows(session, PolicyRule) == 3

    async def test_explicit_null_clears_an_optional_field(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(
            client,
            admin_headers,
            policy_body(applies_if={"==": [{"var": "agency"}, "HRSA"]}),
        )

        response = await client.patch(
            version_path(1), json={"applies_if": None}, headers=admin_headers
        )

        assert response.status_code == 200
        assert response.json()["applies_if"] is None

    async def test_records_before_and_after_snapshots(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        created = await create_policy(client, admin_headers)
        response = await client.patch(
            version_path(1), json={"name": "Renamed"}, headers=admin_headers
        )
        patched = response.json()

        [entry] = await audit_rows(session, "policy.patch")
        assert entry.actor == ADMIN_ID
        assert entry.resource_id == f"{DEFAULT_KEY}@1"
        assert entry.before == created
        assert entry.after == patched
        assert entry.before["name"] == "Change request approval"
        assert entry.after["name"] == "Renamed"

    @pytest.mark.parametrize("state", ["active", "archived"])
    async def test_a_version_that_is_not_a_draft_is_409_and_unchanged(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        session: AsyncSession,
        state: str,
    ) -> None:
        await create_policy(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 1)
        if state == "archived":
            response = await client.post(
                f"{version_path(1)}/deactivate", headers=admin_headers
            )
            assert response.status_code == 200
        before = await get_json(client, version_path(1), admin_headers)
        audit_before = len(await audit_rows(session))

        response = await client.patch(
            version_path(1),
            json={"name": "Sneaky edit", "stages": []},
            headers=admin_headers,
        )

        expect_problem(response, "invalid_state")
        assert await get_json(client, version_path(1), admin_headers) == before
        assert before["status"] == state
        assert len(await audit_rows(session)) == audit_before

    async def test_unknown_version_is_404_policy_not_found(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers)

        response = await client.patch(
            version_path(9), json={"name": "x"}, headers=admin_headers
        )

        expect_problem(response, "policy_not_found")

    async def test_a_different_policy_key_in_the_body_is_400_policy_key_mismatch(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers)

        response = await client.patch(
            version_path(1), json={"policy_key": "other.key"}, headers=admin_headers
        )

        expect_problem(response, "policy_key_mismatch")

    async def test_a_patch_that_makes_the_policy_invalid_is_422_and_unchanged(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        created = await create_policy(client, admin_headers)

        response = await client.patch(
            version_path(1),
            json={"stages": [stage(mode="quorum", mode_value=None)]},
            headers=admin_headers,
        )

        problem = expect_problem(response, "policy_invalid")
        assert pointers(problem) == ["/stages/0/mode_value"]
        assert await get_json(client, version_path(1), admin_headers) == created


# --- POST .../activate -------------------------------------------------------------------------


class TestActivate:
    async def test_makes_a_draft_active(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        created = await create_policy(client, admin_headers)

        response = await client.post(
            f"{version_path(1)}/activate", headers=admin_headers
        )

        assert response.status_code == 200
        activated = response.json()
        assert activated["status"] == "active"
        assert activated["id"] == created["id"]
        assert await statuses(session) == {1: "active"}

    async def test_archives_previous_active_version(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 1)
        await add_version(client, admin_headers)

        activated = await activate(client, admin_headers, DEFAULT_KEY, 2)

        assert activated["status"] == "active"
        assert await statuses(session) == {1: "archived", 2: "active"}
        previous = await get_json(client, version_path(1), admin_headers)
        assert previous["status"] == "archived"

    async def test_reactivating_an_archived_version_rolls_back(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 1)
        await add_version(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 2)

        rolled_back = await activate(client, admin_headers, DEFAULT_KEY, 1)

        assert rolled_back["status"] == "active"
        assert rolled_back["version"] == 1
        assert await statuses(session) == {1: "active", 2: "archived"}

    async def test_activating_the_active_version_is_a_200_no_op(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers)
        first = await activate(client, admin_headers, DEFAULT_KEY, 1)
        audit_before = len(await audit_rows(session))

        response = await client.post(
            f"{version_path(1)}/activate", headers=admin_headers
        )

        assert response.status_code == 200
        assert response.json() == first
        assert await statuses(session) == {1: "active"}
        assert len(await audit_rows(session)) == audit_before

    async def test_keeps_other_keys_active(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers, policy_body(policy_key="other"))
        await activate(client, admin_headers, "other", 1)
        await create_policy(client, admin_headers)

        await activate(client, admin_headers, DEFAULT_KEY, 1)

        assert await statuses(session, "other") == {1: "active"}
        assert await statuses(session) == {1: "active"}

    async def test_records_activate_and_archive_audit_entries(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 1)
        await add_version(client, admin_headers)

        activated = await activate(client, admin_headers, DEFAULT_KEY, 2)

        activations = await audit_rows(session, "policy.activate")
        assert [e.resource_id for e in activations] == [
            f"{DEFAULT_KEY}@1",
            f"{DEFAULT_KEY}@2",
        ]
        latest = activations[-1]
        assert latest.actor == ADMIN_ID
        assert latest.before is not None
        assert latest.before["status"] == "draft"
        assert latest.after == activated
        [archive] = await audit_rows(session, "policy.archive")
        assert archive.actor == ADMIN_ID
        assert archive.resource_id == f"{DEFAULT_KEY}@1"
        assert archive.before is not None
        assert archive.before["status"] == "active"
        assert archive.after is not None
        assert archive.after["status"] == "archived"

    async def test_unknown_version_is_404_policy_not_found(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers)

        response = await client.post(
            f"{version_path(2)}/activate", headers=admin_headers
        )

        expect_problem(response, "policy_not_found")


# --- POST .../deactivate -----------------------------------------------------------------------


class TestDeactivate:
    async def test_archives_the_active_version(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 1)

        response = await client.post(
            f"{version_path(1)}/deactivate", headers=admin_headers
        )

        assert response.status_code == 200
        assert response.json()["status"] == "archived"
        assert await statuses(session) == {1: "archived"}

    async def test_records_a_deactivate_audit_entry(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 1)

        response = await client.post(
            f"{version_path(1)}/deactivate", headers=admin_headers
        )

        [entry] = await audit_rows(session, "policy.deactivate")
        assert entry.actor == ADMIN_ID
        assert entry.resource_id == f"{DEFAULT_KEY}@1"
        assert entry.before is not None
        assert entry.before["status"] == "active"
        assert entry.after == response.json()

    @pytest.mark.parametrize("state", ["draft", "archived"])
    async def test_a_version_that_is_not_active_is_409_invalid_state(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        session: AsyncSession,
        state: str,
    ) -> None:
        await create_policy(client, admin_headers)
        if state == "archived":
            await activate(client, admin_headers, DEFAULT_KEY, 1)
            await client.post(f"{version_path(1)}/deactivate", headers=admin_headers)

        response = await client.post(
            f"{version_path(1)}/deactivate", headers=admin_headers
        )

        expect_problem(response, "invalid_state")
        assert await statuses(session) == {1: state}

    async def test_unknown_version_is_404_policy_not_found(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.post(
            f"{version_path(1)}/deactivate", headers=admin_headers
        )

        expect_problem(response, "policy_not_found")


# --- POST .../simulate -------------------------------------------------------------------------


class TestSimulate:
    @pytest.fixture
    async def simulate(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> Callable[..., Awaitable[Body]]:
        """Create a policy with `stages` (and top-level `overrides`), simulate it, return the result."""

        async def run(
            stages: list[Body],
            context: Body | None = None,
            requester: str | None = None,
            creator: str | None = None,
            **overrides: Any,
        ) -> Body:
            await create_policy(
                client, admin_headers, policy_body(stages=stages, **overrides)
            )
            payload: Body = {"context": context or {}}
            if requester is not None:
                payload["requester"] = requester
            if creator is not None:
                payload["creator"] = creator
            response = await client.post(
                f"{version_path(1)}/simulate", json=payload, headers=admin_headers
            )
            assert response.status_code == 200, response.text
            result: Body = response.json()
            return result

        return run

    async def test_reports_every_stage_with_the_contract_fields(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [
                stage(stage_order=1, name="First", rules=[user_rule("alice")]),
                stage(
                    stage_order=2,
                    name="Second",
                    mode="quorum",
                    mode_value=1,
                    rules=[user_rule("bob")],
                ),
            ]
        )

        assert result["policy_key"] == DEFAULT_KEY
        assert result["policy_version"] == 1
        assert result["outcome"] == "pending"
        assert result["stages"] == [
            {
                "stage_order": 1,
                "name": "First",
                "mode": "any-n",
                "mode_value": 1,
                "resolved_approvers": ["alice"],
                "observers": [],
                "required_approvers": [],
                "removed_by_sod": [],
                "skipped": False,
                "skip_reason": None,
                "trace": {
                    "rules": [
                        {
                            "index": 0,
                            "rule_type": "user",
                            "rule_value": {"user_id": "alice"},
                            "kind": "approver",
                            "required": False,
                            "resolved": ["alice"],
                            "error": None,
                        }
                    ],
                    "removed": [],
                    "delegations": [],
                    "skip_condition": None,
                    "skip_result": None,
                },
            },
            {
                "stage_order": 2,
                "name": "Second",
                "mode": "quorum",
                "mode_value": 1,
                "resolved_approvers": ["bob"],
                "observers": [],
                "required_approvers": [],
                "removed_by_sod": [],
                "skipped": False,
                "skip_reason": None,
                "trace": {
                    "rules": [
                        {
                            "index": 0,
                            "rule_type": "user",
                            "rule_value": {"user_id": "bob"},
                            "kind": "approver",
                            "required": False,
                            "resolved": ["bob"],
                            "error": None,
                        }
                    ],
                    "removed": [],
                    "delegations": [],
                    "skip_condition": None,
                    "skip_result": None,
                },
            },
        ]

    async def test_lists_stages_in_stage_order(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [
                stage(stage_order=20, name="Later"),
                stage(stage_order=10, name="Earlier"),
            ]
        )

        assert [s["name"] for s in result["stages"]] == ["Earlier", "Later"]

    async def test_resolves_expression_rules_over_the_context(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        logic = {
            "if": [
                {">": [{"var": "amount"}, 1000]},
                ["carol", "dave"],
                {"var": "officer"},
            ]
        }

        result = await simulate(
            [stage(mode="any-n", rules=[expression_rule(logic)])],
            context={"amount": 5000, "officer": "bob"},
        )

        assert result["stages"][0]["resolved_approvers"] == ["carol", "dave"]

    async def test_expression_rules_see_the_request_fields_under_request(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [
                stage(
                    rules=[
                        expression_rule(
                            {"cat": ["boss-of-", {"var": "_request.requester"}]}
                        )
                    ]
                )
            ],
            requester="alice",
        )

        assert result["stages"][0]["resolved_approvers"] == ["boss-of-alice"]

    async def test_resolves_a_realm_role_including_composite_roles(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        # frank holds `senior`, a composite containing district_officer; erin is disabled.
        result = await simulate([stage(rules=[role_rule("district_officer")])])

        assert sorted(result["stages"][0]["resolved_approvers"]) == [
            "alice",
            "bob",
            "frank",
        ]

    async def test_resolves_a_role_granted_through_a_group(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        # carol holds `director` directly; dave through the /finance group.
        result = await simulate([stage(rules=[role_rule("director")])])

        assert sorted(result["stages"][0]["resolved_approvers"]) == ["carol", "dave"]

    async def test_resolves_a_client_role(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [stage(rules=[role_rule("checker", client="registry")])]
        )

        assert result["stages"][0]["resolved_approvers"] == ["dave"]

    async def test_a_client_role_is_not_a_realm_role_of_the_same_name(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate([stage(on_empty="skip", rules=[role_rule("checker")])])

        assert result["stages"][0]["resolved_approvers"] == []

    async def test_resolves_a_group_with_its_subgroups_and_without_disabled_users(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        # /districts/D1: alice directly, frank through /districts/D1/north; erin is disabled.
        result = await simulate([stage(rules=[group_rule("/districts/D1")])])

        assert sorted(result["stages"][0]["resolved_approvers"]) == ["alice", "frank"]

    async def test_unions_and_deduplicates_the_rules_of_a_stage(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [
                stage(
                    rules=[
                        group_rule("/districts/D1"),
                        user_rule("alice"),
                        user_rule("carol"),
                    ]
                )
            ]
        )

        approvers = result["stages"][0]["resolved_approvers"]
        assert sorted(approvers) == ["alice", "carol", "frank"]
        assert len(approvers) == len(set(approvers))

    async def test_forbid_self_approval_moves_the_requester_to_removed_by_sod(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [stage(rules=[group_rule("/districts/D1")])],
            requester="alice",
            forbid_self_approval=True,
        )

        [simulated] = result["stages"]
        assert simulated["resolved_approvers"] == ["frank"]
        assert simulated["removed_by_sod"] == ["alice"]

    async def test_the_creator_is_removed_with_the_reason_in_the_trace(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        # "created by bob for carol": both are barred, each with its own reason.
        result = await simulate(
            [stage(rules=[user_rule("bob"), user_rule("carol"), user_rule("dave")])],
            requester="carol",
            creator="bob",
            forbid_self_approval=True,
        )

        [simulated] = result["stages"]
        assert simulated["resolved_approvers"] == ["dave"]
        assert simulated["removed_by_sod"] == ["bob", "carol"]
        removed = {r["user_id"]: r for r in simulated["trace"]["removed"]}
        assert {u: r["reason"] for u, r in removed.items()} == {
            "bob": "creator",
            "carol": "requester",
        }
        assert all(r["detail"] for r in removed.values())
        assert [r["resolved"] for r in simulated["trace"]["rules"]] == [
            ["bob"],
            ["carol"],
            ["dave"],
        ]

    async def test_the_creator_defaults_to_the_calling_principal(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [stage(rules=[user_rule(ADMIN_ID), user_rule("bob")])],
            requester="carol",
            forbid_self_approval=True,
        )

        [simulated] = result["stages"]
        assert simulated["resolved_approvers"] == ["bob"]
        assert simulated["trace"]["removed"][0]["reason"] == "creator"

    async def test_the_trace_shows_delegates_of_the_barred_and_substitutions(
        self, simulate: Callable[..., Awaitable[Body]], session: AsyncSession
    ) -> None:
        erin = await add_delegation(session, "bob", "erin")  # erin stands in for bob
        frank = await add_delegation(
            session, "dave", "frank"
        )  # dave's tasks go to frank
        result = await simulate(
            [stage(rules=[user_rule("erin"), user_rule("dave")])],
            requester="carol",
            creator="bob",
            forbid_self_approval=True,
        )

        trace = result["stages"][0]["trace"]
        assert [(r["user_id"], r["reason"]) for r in trace["removed"]] == [
            ("erin", "delegate_of_creator")
        ]
        assert "bob" in trace["removed"][0]["detail"]
        assert trace["delegations"] == [
            {"user_id": "dave", "delegate_to": "frank", "delegation_id": str(frank)}
        ]
        assert erin != frank

    async def test_the_trace_shows_the_skip_condition_and_its_result(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        condition = {"<": [{"var": "amount"}, 100]}
        result = await simulate(
            [
                stage(stage_order=1, skip_if=condition, rules=[user_rule("alice")]),
                stage(stage_order=2, rules=[user_rule("bob")]),
            ],
            context={"amount": 5},
        )

        first, second = result["stages"]
        assert first["skipped"] is True
        assert first["trace"]["skip_condition"] == condition
        assert first["trace"]["skip_result"] is True
        assert first["trace"]["rules"] == []
        assert second["trace"]["skip_condition"] is None
        assert second["trace"]["skip_result"] is None

    async def test_an_http_rule_says_in_the_trace_why_it_named_nobody(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        http = {
            "rule_type": "http",
            "rule_value": {"url": "http://127.0.0.1:9/approvers"},
            "kind": "approver",
        }
        result = await simulate([stage(on_empty="skip", rules=[http])])

        [rule] = result["stages"][0]["trace"]["rules"]
        assert rule["resolved"] == []
        assert "simulat" in rule["error"]

    async def test_the_requester_stays_an_approver_without_forbid_self_approval(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [stage(rules=[user_rule("alice")])],
            requester="alice",
            forbid_self_approval=False,
        )

        assert result["stages"][0]["resolved_approvers"] == ["alice"]
        assert result["stages"][0]["removed_by_sod"] == []

    async def test_the_requester_defaults_to_the_calling_principal(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [stage(rules=[user_rule(ADMIN_ID), user_rule("bob")])],
            forbid_self_approval=True,
        )

        assert result["stages"][0]["resolved_approvers"] == ["bob"]
        assert result["stages"][0]["removed_by_sod"] == [ADMIN_ID]

    async def test_observers_are_listed_apart_from_approvers(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [
                stage(
                    rules=[
                        user_rule("alice"),
                        user_rule("carol", kind="observer"),
                        # An approver also named as observer stays an approver only.
                        user_rule("alice", kind="observer"),
                    ]
                )
            ]
        )

        [simulated] = result["stages"]
        assert simulated["resolved_approvers"] == ["alice"]
        assert simulated["observers"] == ["carol"]

    async def test_lists_the_approvers_of_required_rules(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [
                stage(
                    rules=[
                        user_rule("alice"),
                        role_rule("director", required=True),
                    ]
                )
            ]
        )

        [simulated] = result["stages"]
        assert sorted(simulated["required_approvers"]) == ["carol", "dave"]
        assert sorted(simulated["resolved_approvers"]) == ["alice", "carol", "dave"]

    async def test_skip_if_skips_the_stage_when_truthy(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        stages = [
            stage(
                stage_order=1,
                name="Small amounts skip",
                skip_if={"<": [{"var": "amount"}, 100]},
                rules=[user_rule("alice")],
            ),
            stage(stage_order=2, name="Always", rules=[user_rule("bob")]),
        ]

        result = await simulate(stages, context={"amount": 50})

        first, second = result["stages"]
        assert first["skipped"] is True
        assert first["skip_reason"] == "skip_if"
        assert first["resolved_approvers"] == []
        assert second["skipped"] is False
        assert result["outcome"] == "pending"

    async def test_skip_if_keeps_the_stage_when_falsy(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [
                stage(
                    skip_if={"<": [{"var": "amount"}, 100]}, rules=[user_rule("alice")]
                )
            ],
            context={"amount": 500},
        )

        assert result["stages"][0]["skipped"] is False
        assert result["stages"][0]["skip_reason"] is None
        assert result["stages"][0]["resolved_approvers"] == ["alice"]

    async def test_on_empty_skip_skips_a_stage_that_resolves_nobody(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [
                stage(stage_order=1, on_empty="skip", rules=[group_rule("/nobody")]),
                stage(stage_order=2, rules=[user_rule("bob")]),
            ]
        )

        empty = result["stages"][0]
        assert empty["skipped"] is True
        assert empty["skip_reason"] == "no_approvers_resolved"
        assert result["outcome"] == "pending"

    async def test_on_empty_block_with_nobody_resolved_is_rejected(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [
                stage(stage_order=1, rules=[user_rule("alice")]),
                stage(stage_order=2, on_empty="block", rules=[group_rule("/nobody")]),
            ]
        )

        blocked = result["stages"][1]
        assert blocked["skipped"] is False
        assert blocked["resolved_approvers"] == []
        assert result["outcome"] == "rejected"

    async def test_a_block_stage_emptied_by_separation_of_duties_is_rejected(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [stage(on_empty="block", rules=[user_rule("alice")])],
            requester="alice",
            forbid_self_approval=True,
        )

        assert result["stages"][0]["removed_by_sod"] == ["alice"]
        assert result["outcome"] == "rejected"

    async def test_every_stage_skipped_is_approved(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate(
            [
                stage(stage_order=1, skip_if=True),
                stage(stage_order=2, on_empty="skip", rules=[group_rule("/nobody")]),
            ]
        )

        assert [s["skipped"] for s in result["stages"]] == [True, True]
        assert result["outcome"] == "approved"

    async def test_a_policy_without_stages_is_approved(
        self, simulate: Callable[..., Awaitable[Body]]
    ) -> None:
        result = await simulate([])

        assert result["stages"] == []
        assert result["outcome"] == "approved"

    async def test_writes_nothing(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        session: AsyncSession,
    ) -> None:
        await create_policy(client, admin_headers, two_stage_body())
        before = await table_counts(session)

        response = await client.post(
            f"{version_path(1)}/simulate",
            json={"context": {"amount": 500}, "requester": "alice"},
            headers=admin_headers,
        )

        assert response.status_code == 200
        assert await table_counts(session) == before
        assert await statuses(session) == {1: "draft"}

    async def test_the_body_is_optional(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers)

        response = await client.post(
            f"{version_path(1)}/simulate", headers=admin_headers
        )

        assert response.status_code == 200
        assert response.json()["stages"][0]["resolved_approvers"] == ["alice"]

    async def test_simulates_any_version_whatever_its_status(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 1)
        await add_version(
            client, admin_headers, policy_body(stages=[stage(rules=[user_rule("bob")])])
        )

        for version, approver in ((1, "alice"), (2, "bob")):
            response = await client.post(
                f"{version_path(version)}/simulate",
                json={"context": {}},
                headers=admin_headers,
            )
            assert response.json()["policy_version"] == version
            assert response.json()["stages"][0]["resolved_approvers"] == [approver]

    async def test_unknown_version_is_404_policy_not_found(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.post(
            f"{version_path(1)}/simulate", json={"context": {}}, headers=admin_headers
        )

        expect_problem(response, "policy_not_found")


# --- GET .../diff/{b} --------------------------------------------------------------------------


class TestDiff:
    async def test_lists_each_change_as_pointer_before_after(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers, two_stage_body())
        changed = two_stage_body(name="Renamed policy")
        changed["stages"][1]["name"] = "Director approval"
        await add_version(client, admin_headers, changed)

        diff = await get_json(client, f"{version_path(1)}/diff/2", admin_headers)

        assert diff == {
            "changes": [
                {
                    "pointer": "/name",
                    "before": "Change request approval",
                    "after": "Renamed policy",
                },
                {
                    "pointer": "/stages/1/name",
                    "before": "Director sign-off",
                    "after": "Director approval",
                },
            ]
        }

    async def test_reports_added_fields_with_null_before(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers)
        await add_version(client, admin_headers, policy_body(request_ttl_hours=24))

        diff = await get_json(client, f"{version_path(1)}/diff/2", admin_headers)

        assert diff["changes"] == [
            {"pointer": "/request_ttl_hours", "before": None, "after": 24}
        ]

    async def test_ignores_bookkeeping_fields(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 1)
        await add_version(client, admin_headers)

        diff = await get_json(client, f"{version_path(1)}/diff/2", admin_headers)

        assert diff == {"changes": []}

    async def test_unknown_version_is_404_policy_not_found(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers)

        response = await client.get(f"{version_path(1)}/diff/3", headers=admin_headers)

        expect_problem(response, "policy_not_found")


# --- GET .../diagram.svg -----------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


def _stage_boxes(root: ET.Element) -> dict[int, dict[str, Any]]:
    """stage_order -> the box's position and its lines of text."""
    boxes: dict[int, dict[str, Any]] = {}
    for g in root.iter(f"{SVG}g"):
        if "data-stage-order" not in g.attrib:
            continue
        rect = g.find(f"{SVG}rect")
        assert rect is not None
        boxes[int(g.attrib["data-stage-order"])] = {
            "x": float(rect.attrib["x"]),
            "y": float(rect.attrib["y"]),
            "texts": [t.text or "" for t in g.iter(f"{SVG}text")],
        }
    return boxes


class TestDiagram:
    async def test_is_an_svg_naming_every_stage(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers, two_stage_body())

        response = await client.get(
            f"{version_path(1)}/diagram.svg", headers=admin_headers
        )

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        root = ET.fromstring(response.text)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert "District officers" in response.text
        assert "Director sign-off" in response.text

    async def test_escapes_stage_names(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(
            client,
            admin_headers,
            policy_body(stages=[stage(name='<b>"A" & B</b>')]),
        )

        response = await client.get(
            f"{version_path(1)}/diagram.svg", headers=admin_headers
        )

        assert "<b>" not in response.text
        texts = "".join(ET.fromstring(response.text).itertext())
        assert '<b>"A" & B</b>' in texts

    async def test_shows_order_skip_conditions_slas_and_rules(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers, two_stage_body())

        response = await client.get(
            f"{version_path(1)}/diagram.svg", headers=admin_headers
        )

        assert response.headers["content-security-policy"] == "default-src 'none'"
        assert response.headers["x-content-type-options"] == "nosniff"
        root = ET.fromstring(response.text)
        assert root.attrib["role"] == "img"
        title = root.find(f"{SVG}title")
        assert title is not None
        assert title.text == "Change request approval"
        boxes = _stage_boxes(root)
        assert boxes[1]["y"] < boxes[2]["y"]
        first = boxes[1]["texts"]
        assert "Skip if amount < 100" in first
        assert "SLA 72 h → escalate, remind every 24 h" in first
        assert "Approvers: group /districts/D1" in first
        assert "Approvers: role director" in boxes[2]["texts"]
        assert "all must approve" in boxes[2]["texts"]

    async def test_parallel_groups_sit_side_by_side(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(
            client,
            admin_headers,
            policy_body(
                stages=[
                    stage(stage_order=1, name="Intake"),
                    stage(stage_order=2, name="Finance", parallel_group="1"),
                    stage(stage_order=3, name="Legal", parallel_group="1"),
                    stage(stage_order=4, name="Director"),
                ]
            ),
        )

        response = await client.get(
            f"{version_path(1)}/diagram.svg", headers=admin_headers
        )

        boxes = _stage_boxes(ET.fromstring(response.text))
        assert boxes[2]["y"] == boxes[3]["y"]
        assert boxes[2]["x"] < boxes[3]["x"]
        assert boxes[1]["y"] < boxes[2]["y"] < boxes[4]["y"]
        assert "Parallel group 1: all must complete" in response.text

    async def test_unknown_version_is_404_policy_not_found(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get(
            f"{version_path(1)}/diagram.svg", headers=admin_headers
        )

        expect_problem(response, "policy_not_found")


# --- validation --------------------------------------------------------------------------------


def _invalid_mode() -> Body:
    return policy_body(stages=[stage(mode="majority")])


def _invalid_rule_type() -> Body:
    return policy_body(
        stages=[stage(rules=[{"rule_type": "ldap", "rule_value": {"dn": "x"}}])]
    )


def _wrong_type() -> Body:
    return policy_body(priority="high")


def _stage_order_not_a_number() -> Body:
    return policy_body(stages=[stage(stage_order="first")])


def _unsafe_applies_if() -> Body:
    return policy_body(applies_if={"method": ["abc", "upper"]})


def _unsafe_skip_if() -> Body:
    return policy_body(
        stages=[stage(skip_if={"and": [True, {"method": [{"var": "x"}, "upper"]}]})]
    )


def _unsafe_expression_rule() -> Body:
    return policy_body(
        stages=[stage(rules=[expression_rule({"method": ["abc", "upper"]})])]
    )


def _unsafe_escalation_rule() -> Body:
    return policy_body(
        stages=[
            stage(
                sla_hours=24,
                on_breach="escalate",
                escalation_rules=[
                    {
                        "rule_type": "expression",
                        "rule_value": {"logic": {"method": ["abc", "upper"]}},
                    }
                ],
            )
        ]
    )


class TestValidation:
    @pytest.mark.parametrize(
        ("make_body", "pointer"),
        [
            (_invalid_mode, "/stages/0/mode"),
            (_invalid_rule_type, "/stages/0/rules/0/rule_type"),
            (_wrong_type, "/priority"),
            (_stage_order_not_a_number, "/stages/0/stage_order"),
        ],
        ids=["unknown-mode", "unknown-rule-type", "wrong-type", "non-numeric-order"],
    )
    async def test_a_malformed_body_is_422_validation_failed_with_pointers(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        session: AsyncSession,
        make_body: Callable[[], Body],
        pointer: str,
    ) -> None:
        response = await client.post(POLICIES, json=make_body(), headers=admin_headers)

        problem = expect_problem(response, "validation_failed")
        assert pointer in pointers(problem)
        for entry in problem["errors"]:
            assert set(entry) == {"pointer", "detail", "errorCode", "message"}
            assert entry["errorCode"] == "AWE-010"
            assert entry["message"] == entry["detail"]
            assert entry["detail"]
        assert await count_rows(session, Policy) == 0

    async def test_a_missing_required_field_is_422_validation_failed(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        body = policy_body()
        del body["artifact_type"]

        response = await client.post(POLICIES, json=body, headers=admin_headers)

        problem = expect_problem(response, "validation_failed")
        assert pointers(problem) == ["/artifact_type"]

    async def test_a_body_that_is_not_json_is_422_validation_failed(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.post(
            POLICIES,
            content=b"{not json",
            headers={**admin_headers, "Content-Type": "application/json"},
        )

        expect_problem(response, "validation_failed")

    @pytest.mark.parametrize(
        "content",
        [b'{"policy_key": "\xff\xfe"}', b"\xc3\x28", b'{"a": "\xed\xa0\x80"}'],
        ids=["invalid-start-byte", "truncated-sequence", "encoded-surrogate"],
    )
    async def test_a_body_that_is_not_utf8_is_422_validation_failed(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        session: AsyncSession,
        content: bytes,
    ) -> None:
        response = await client.post(
            POLICIES,
            content=content,
            headers={**admin_headers, "Content-Type": "application/json"},
        )

        problem = expect_problem(response, "validation_failed")
        assert problem["errors"][0]["detail"]
        assert await count_rows(session, Policy) == 0

    async def test_reports_every_semantic_problem_at_once(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        body = policy_body(
            stages=[
                stage(stage_order=1, mode="quorum", mode_value=None),
                stage(stage_order=1, name="Duplicate order"),
                stage(
                    stage_order=2,
                    name="Escalates nowhere",
                    sla_hours=24,
                    on_breach="escalate",
                    escalation_rules=[],
                ),
            ]
        )

        response = await client.post(POLICIES, json=body, headers=admin_headers)

        problem = expect_problem(response, "policy_invalid")
        assert sorted(pointers(problem)) == [
            "/stages/0/mode_value",
            "/stages/1/stage_order",
            "/stages/2/escalation_rules",
        ]
        for entry in problem["errors"]:
            assert entry["errorCode"] == "AWE-010"
            assert entry["message"] == entry["detail"]
        assert await count_rows(session, Policy) == 0

    async def test_put_validates_like_post(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers)

        response = await client.put(
            f"{POLICIES}/{DEFAULT_KEY}",
            json=policy_body(stages=[stage(rules=[group_rule("no-leading-slash")])]),
            headers=admin_headers,
        )

        problem = expect_problem(response, "policy_invalid")
        assert pointers(problem) == ["/stages/0/rules/0/rule_value/group"]
        assert await statuses(session) == {1: "draft"}

    @pytest.mark.parametrize(
        ("make_body", "pointer"),
        [
            (_unsafe_applies_if, "/applies_if"),
            (_unsafe_skip_if, "/stages/0/skip_if/and/1"),
            (_unsafe_expression_rule, "/stages/0/rules/0/rule_value/logic"),
            (
                _unsafe_escalation_rule,
                "/stages/0/escalation_rules/0/rule_value/logic",
            ),
        ],
        ids=["applies_if", "skip_if", "expression-rule", "escalation-rule"],
    )
    async def test_jsonlogic_method_is_422_rule_unsafe_and_stores_nothing(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        session: AsyncSession,
        make_body: Callable[[], Body],
        pointer: str,
    ) -> None:
        response = await client.post(POLICIES, json=make_body(), headers=admin_headers)

        problem = expect_problem(response, "rule_unsafe")
        assert pointers(problem) == [pointer]
        assert await count_rows(session, Policy) == 0
        assert await count_rows(session, AuditEntry) == 0

    async def test_an_unsafe_rule_sent_by_patch_is_refused_and_the_draft_unchanged(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        created = await create_policy(client, admin_headers)
        audit_before = len(await audit_rows(session))

        response = await client.patch(
            version_path(1),
            json={"applies_if": {"method": ["abc", "upper"]}},
            headers=admin_headers,
        )

        problem = expect_problem(response, "rule_unsafe")
        assert pointers(problem) == ["/applies_if"]
        assert await get_json(client, version_path(1), admin_headers) == created
        assert len(await audit_rows(session)) == audit_before


# --- who may call what -------------------------------------------------------------------------

# (method, path, json body) of every write; the fixture `published` makes each target exist.
WRITES: list[tuple[str, str, Body | None]] = [
    ("POST", POLICIES, policy_body(policy_key="brand.new")),
    ("PUT", f"{POLICIES}/{DEFAULT_KEY}", policy_body()),
    ("PATCH", version_path(2), {"name": "Edited"}),
    ("POST", f"{version_path(2)}/activate", None),
    ("POST", f"{version_path(1)}/deactivate", None),
]

READS: list[tuple[str, str, Body | None]] = [
    ("GET", POLICIES, None),
    ("GET", f"{POLICIES}/{DEFAULT_KEY}/versions", None),
    ("GET", version_path(1), None),
    ("POST", f"{version_path(1)}/simulate", {"context": {}}),
    ("GET", f"{version_path(1)}/diff/2", None),
    ("GET", f"{version_path(1)}/diagram.svg", None),
]


def _ids(calls: list[tuple[str, str, Body | None]]) -> list[str]:
    return [f"{method} {path}" for method, path, _ in calls]


class TestAccess:
    @pytest.fixture
    async def published(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        """Version 1 active, version 2 a draft."""
        await create_policy(client, admin_headers)
        await activate(client, admin_headers, DEFAULT_KEY, 1)
        await add_version(client, admin_headers)

    @pytest.mark.usefixtures("published")
    @pytest.mark.parametrize(("method", "path", "body"), READS, ids=_ids(READS))
    async def test_a_viewer_can_read(
        self,
        client: httpx.AsyncClient,
        viewer_headers: Headers,
        method: str,
        path: str,
        body: Body | None,
    ) -> None:
        response = await client.request(method, path, json=body, headers=viewer_headers)

        assert response.status_code == 200, response.text

    @pytest.mark.usefixtures("published")
    @pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=_ids(WRITES))
    async def test_a_viewer_gets_403_on_every_write_and_changes_nothing(
        self,
        client: httpx.AsyncClient,
        viewer_headers: Headers,
        session: AsyncSession,
        method: str,
        path: str,
        body: Body | None,
    ) -> None:
        before = await table_counts(session)

        response = await client.request(method, path, json=body, headers=viewer_headers)

        expect_problem(response, "forbidden")
        assert await table_counts(session) == before
        assert await statuses(session) == {1: "active", 2: "draft"}

    @pytest.mark.usefixtures("published")
    @pytest.mark.parametrize(
        ("method", "path", "body"), READS + WRITES, ids=_ids(READS + WRITES)
    )
    async def test_a_user_without_admin_or_viewer_role_gets_403(
        self,
        client: httpx.AsyncClient,
        user_headers: Headers,
        session: AsyncSession,
        method: str,
        path: str,
        body: Body | None,
    ) -> None:
        before = await table_counts(session)

        response = await client.request(method, path, json=body, headers=user_headers)

        expect_problem(response, "forbidden")
        assert await table_counts(session) == before

    @pytest.mark.parametrize(
        ("method", "path", "body"), READS + WRITES, ids=_ids(READS + WRITES)
    )
    async def test_no_token_is_401_with_a_bearer_challenge(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        body: Body | None,
    ) -> None:
        response = await client.request(method, path, json=body)

        expect_problem(response, "unauthenticated")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    async def test_a_forged_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            POLICIES, headers={"Authorization": "Bearer not.a.jwt"}
        )

        expect_problem(response, "unauthenticated")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    async def test_the_admin_role_of_another_client_grants_nothing(
        self, client: httpx.AsyncClient, token: Any
    ) -> None:
        # `roles` in the token factory are realm roles; a token with no realm role is a plain user.
        response = await client.get(
            POLICIES, headers={"Authorization": f"Bearer {token('nobody')}"}
        )

        expect_problem(response, "forbidden")


# --- /v1/awe alias -----------------------------------------------------------------------------

AWE = "/v1/awe/policies"


class TestAweAlias:
    async def test_the_whole_lifecycle_works_under_the_alias(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        created = await create_policy(client, admin_headers, base=AWE)
        assert (created["version"], created["status"]) == (1, "draft")
        await activate(client, admin_headers, DEFAULT_KEY, 1, base=AWE)
        added = await add_version(client, admin_headers, base=AWE)
        assert added["version"] == 2
        patched = await client.patch(
            version_path(2, base=AWE), json={"name": "Via AWE"}, headers=admin_headers
        )
        assert patched.status_code == 200
        await activate(client, admin_headers, DEFAULT_KEY, 2, base=AWE)

        assert await statuses(session) == {1: "archived", 2: "active"}
        # What the alias wrote is what the main path reads, and the other way round.
        assert await get_json(client, version_path(2), admin_headers) == await get_json(
            client, version_path(2, base=AWE), admin_headers
        )
        listed = await get_json(client, AWE, admin_headers)
        assert [(p["version"], p["name"]) for p in listed] == [(2, "Via AWE")]
        versions = await get_json(
            client, f"{AWE}/{DEFAULT_KEY}/versions", admin_headers
        )
        assert [v["version"] for v in versions] == [2, 1]
        deactivated = await client.post(
            f"{version_path(2, base=AWE)}/deactivate", headers=admin_headers
        )
        assert deactivated.json()["status"] == "archived"

    async def test_reads_match_the_main_path(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers, two_stage_body())
        await add_version(client, admin_headers, two_stage_body(name="v2"))

        for suffix in ("/simulate", "/diff/2"):
            method = "POST" if suffix == "/simulate" else "GET"
            body = {"context": {"amount": 500}} if method == "POST" else None
            main = await client.request(
                method, version_path(1) + suffix, json=body, headers=admin_headers
            )
            alias = await client.request(
                method,
                version_path(1, base=AWE) + suffix,
                json=body,
                headers=admin_headers,
            )
            assert (alias.status_code, alias.json()) == (main.status_code, main.json())
        svg = await client.get(
            f"{version_path(1, base=AWE)}/diagram.svg", headers=admin_headers
        )
        assert svg.headers["content-type"].startswith("image/svg+xml")

    async def test_errors_are_the_same_problems_under_the_alias(
        self, client: httpx.AsyncClient, admin_headers: Headers, viewer_headers: Headers
    ) -> None:
        await create_policy(client, admin_headers, base=AWE)

        expect_problem(
            await client.post(AWE, json=policy_body(), headers=admin_headers),
            "policy_exists",
        )
        expect_problem(
            await client.get(version_path(9, base=AWE), headers=admin_headers),
            "policy_not_found",
        )
        expect_problem(
            await client.post(AWE, json=_unsafe_applies_if(), headers=admin_headers),
            "rule_unsafe",
        )
        expect_problem(
            await client.post(AWE, json=_invalid_mode(), headers=admin_headers),
            "validation_failed",
        )
        expect_problem(
            await client.post(AWE, json=policy_body(), headers=viewer_headers),
            "forbidden",
        )
        expect_problem(await client.get(AWE), "unauthenticated")

    async def test_alias_paths_are_absent_from_the_openapi_document(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/v1/openapi.json")

        assert response.status_code == 200
        paths = response.json()["paths"]
        assert "/v1/policies" in paths
        assert "/v1/policies/{policy_key}/versions/{version}/activate" in paths
        assert not [p for p in paths if p.startswith("/v1/awe")]
