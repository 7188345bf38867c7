"""Policy writes under real concurrency, on PostgreSQL.

The ASGI transport runs the gathered requests concurrently on one event loop, each with its own
database connection and transaction, so these are genuinely racing transactions. The last class
checks the database's own guarantees, bypassing the service.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.models import AuditEntry, Policy
from tests.policies.factories import (
    DEFAULT_KEY,
    POLICIES,
    add_version,
    create_policy,
    expect_problem,
    policy_body,
)

Headers = dict[str, str]

PARALLEL = 10


async def stored_statuses(
    session: AsyncSession, key: str = DEFAULT_KEY
) -> dict[int, str]:
    result = await session.execute(
        select(Policy.version, Policy.status).where(Policy.policy_key == key)
    )
    return dict(result.all())


class TestConcurrentAddVersion:
    async def test_parallel_puts_get_consecutive_versions_without_gaps_or_duplicates(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers)

        responses = await asyncio.gather(
            *(
                client.put(
                    f"{POLICIES}/{DEFAULT_KEY}",
                    json=policy_body(name=f"Concurrent {n}"),
                    headers=admin_headers,
                )
                for n in range(PARALLEL)
            )
        )

        assert [r.status_code for r in responses] == [201] * PARALLEL, [
            r.text for r in responses if r.status_code != 201
        ]
        versions = sorted(r.json()["version"] for r in responses)
        assert versions == list(range(2, PARALLEL + 2))
        # Each response describes the version its own body created.
        stored_names = await session.execute(
            select(Policy.version, Policy.name).where(Policy.version > 1)
        )
        assert {r.json()["version"]: r.json()["name"] for r in responses} == dict(
            stored_names.all()
        )
        assert await stored_statuses(session) == dict.fromkeys(
            range(1, PARALLEL + 2), "draft"
        )


class TestConcurrentCreate:
    async def test_parallel_creates_of_one_key_give_one_201_and_409s(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        responses = await asyncio.gather(
            *(
                client.post(
                    POLICIES, json=policy_body(name=f"Racer {n}"), headers=admin_headers
                )
                for n in range(PARALLEL)
            )
        )

        created = [r for r in responses if r.status_code == 201]
        refused = [r for r in responses if r.status_code != 201]
        assert len(created) == 1
        assert len(refused) == PARALLEL - 1
        for response in refused:
            expect_problem(response, "policy_exists")
        assert await stored_statuses(session) == {1: "draft"}
        stored_name = (
            await session.execute(select(Policy.name).where(Policy.version == 1))
        ).scalar_one()
        assert stored_name == created[0].json()["name"]
        creations = (
            await session.execute(
                select(AuditEntry).where(AuditEntry.action == "policy.create")
            )
        ).all()
        assert len(creations) == 1


class TestConcurrentActivate:
    async def test_parallel_activations_leave_exactly_one_active_version(
        self, client: httpx.AsyncClient, admin_headers: Headers, session: AsyncSession
    ) -> None:
        await create_policy(client, admin_headers)
        for _ in range(4):
            await add_version(client, admin_headers)

        responses = await asyncio.gather(
            *(
                client.post(
                    f"{POLICIES}/{DEFAULT_KEY}/versions/{version}/activate",
                    headers=admin_headers,
                )
                for version in range(1, 6)
            )
        )

        assert [r.status_code for r in responses] == [200] * 5, [
            r.text for r in responses
        ]
        assert all(r.json()["status"] == "active" for r in responses)
        statuses = await stored_statuses(session)
        assert sorted(statuses.values()) == ["active"] + ["archived"] * 4
        # Every activation but the last one was archived by the one that followed it.
        archives = (
            await session.execute(
                select(AuditEntry.resource_id).where(
                    AuditEntry.action == "policy.archive"
                )
            )
        ).scalars()
        [winner] = [v for v, status in statuses.items() if status == "active"]
        assert sorted(archives) == sorted(
            f"{DEFAULT_KEY}@{v}" for v in range(1, 6) if v != winner
        )


def _policy_row(version: int, status: str, key: str = DEFAULT_KEY) -> Policy:
    return Policy(
        policy_key=key,
        version=version,
        status=status,
        name=f"Row {version}",
        artifact_type="registry.change_request",
        created_by="test",
    )


class TestDatabaseConstraints:
    async def test_a_second_active_version_of_a_key_is_refused(
        self, session: AsyncSession
    ) -> None:
        session.add(_policy_row(1, "active"))
        await session.commit()

        session.add(_policy_row(2, "active"))
        with pytest.raises(IntegrityError, match="uq_policies_one_active_per_key"):
            await session.commit()
        await session.rollback()

        assert await stored_statuses(session) == {1: "active"}

    async def test_the_one_active_rule_is_per_key_and_only_for_active(
        self, session: AsyncSession
    ) -> None:
        session.add_all(
            [
                _policy_row(1, "archived"),
                _policy_row(2, "archived"),
                _policy_row(3, "draft"),
                _policy_row(4, "draft"),
                _policy_row(5, "active"),
                _policy_row(1, "active", key="another.key"),
            ]
        )
        await session.commit()

        assert await stored_statuses(session) == {
            1: "archived",
            2: "archived",
            3: "draft",
            4: "draft",
            5: "active",
        }

    async def test_a_duplicate_key_and_version_is_refused(
        self, session: AsyncSession
    ) -> None:
        session.add(_policy_row(1, "draft"))
        await session.commit()

        session.add(_policy_row(1, "archived"))
        with pytest.raises(IntegrityError, match="uq_policies_policy_key_version"):
            await session.commit()
        await session.rollback()

        assert await stored_statuses(session) == {1: "draft"}
