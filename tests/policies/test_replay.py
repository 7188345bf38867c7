"""`POST /v1/policies/{key}/versions/{v}/replay`: a version run on the contexts of real requests,
compared with the version each request was pinned to, on PostgreSQL over HTTP. Nothing written.

Directory rules go to the real (file) directory and http rules to a real loopback resolver, as
simulate and the engine do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.app import create_app
from countersign.config import Settings
from countersign.models import (
    ApprovalRequest,
    AuditEntry,
    Decision,
    Event,
    Policy,
    Task,
    WebhookDelivery,
)
from tests.directory.test_http_rule import (
    Answer,
    ResolverServer,
    create_secret,
    http_rule,
    users,
)
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import Body, Flow, problem_code, role_rule, stage

KEY = "test.flow"


@pytest.fixture
def flow(
    client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    return Flow(client, admin_headers, token)


def policy(stages: list[Body], **fields: Any) -> Body:
    return {
        "policy_key": KEY,
        "name": KEY,
        "artifact_type": KEY,
        "stages": stages,
        **fields,
    }


async def draft(flow: Flow, stages: list[Body], **fields: Any) -> int:
    """PUT a new draft version; its number."""
    response = await flow.client.put(
        f"/v1/policies/{KEY}", json=policy(stages, **fields), headers=flow.admin
    )
    assert response.status_code == 201, response.text
    version: int = response.json()["version"]
    return version


async def activate(flow: Flow, version: int) -> None:
    response = await flow.client.post(
        f"/v1/policies/{KEY}/versions/{version}/activate", headers=flow.admin
    )
    assert response.status_code == 200, response.text


async def replay(
    flow: Flow,
    version: int,
    body: Body | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await flow.client.post(
        f"/v1/policies/{KEY}/versions/{version}/replay",
        json=body if body is not None else {"limit": 100},
        headers=flow.admin if headers is None else headers,
    )


async def replayed(flow: Flow, version: int, **body: Any) -> Body:
    response = await replay(flow, version, {"limit": 100, **body})
    assert response.status_code == 200, response.text
    result: Body = response.json()
    return result


def by_artifact(result: Body) -> dict[str, Body]:
    return {c["artifact_id"]: c for c in result["changed"]}


def kinds(change: Body) -> list[tuple[str, int | None]]:
    return [(d["kind"], d["stage_order"]) for d in change["differences"]]


async def start_three(flow: Flow) -> dict[str, str]:
    ids = {}
    for amount in (50, 500, 5000):
        created = await flow.start(
            artifact_id=f"a-{amount}", context={"amount": amount}
        )
        ids[f"a-{amount}"] = created["request_id"]
    return ids


class TestDifferences:
    async def test_lists_the_requests_whose_approvers_would_change(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"]), stage(2, ["bob"])])
        ids = await start_three(flow)
        v2 = await draft(flow, [stage(1, ["alice"]), stage(2, ["carol"])])

        result = await replayed(flow, v2)

        assert (result["policy_key"], result["version"], result["compared_with"]) == (
            KEY,
            2,
            1,
        )
        assert (result["replayed"], result["truncated"]) == (3, False)
        # Newest first, like the requests list.
        assert [c["artifact_id"] for c in result["changed"]] == [
            "a-5000",
            "a-500",
            "a-50",
        ]
        change = by_artifact(result)["a-500"]
        assert change["request_id"] == ids["a-500"]
        assert change["differences"] == [
            {
                "kind": "approvers",
                "stage_order": 2,
                "before": ["bob"],
                "after": ["carol"],
                "detail": "stage 2 approvers: +carol -bob",
            }
        ]
        before, after = change["before"], change["after"]
        assert (before["policy_key"], before["version"]) == (KEY, 1)
        assert (after["policy_key"], after["version"]) == (KEY, 2)
        assert [s["resolved_approvers"] for s in after["stages"]] == [
            ["alice"],
            ["carol"],
        ]
        assert before["outcome"] == after["outcome"] == "pending"

    async def test_skips_and_outcomes_are_compared_and_unchanged_requests_left_out(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        await start_three(flow)
        v2 = await draft(
            flow, [stage(1, ["alice"], skip_if={"<": [{"var": "amount"}, 100]})]
        )

        result = await replayed(flow, v2)

        assert result["replayed"] == 3
        [change] = result["changed"]
        assert change["artifact_id"] == "a-50"
        assert kinds(change) == [("skipped", 1), ("outcome", None)]
        skipped, outcome = change["differences"]
        assert (skipped["before"], skipped["after"]) == (None, "skip_if")
        assert skipped["detail"] == "stage 1 skipped (skip_if)"
        assert (outcome["before"], outcome["after"]) == ("pending", "approved")

    async def test_added_and_removed_stages_are_named(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"]), stage(2, ["bob"])])
        await flow.start()
        v2 = await draft(flow, [stage(1, ["alice"]), stage(3, ["carol"])])

        [change] = (await replayed(flow, v2))["changed"]

        [difference] = change["differences"]
        assert difference["kind"] == "stages"
        assert (difference["before"], difference["after"]) == ([1, 2], [1, 3])
        assert difference["detail"] == "stage 3 added; stage 2 removed"

    async def test_directory_rules_are_resolved_by_the_real_directory(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, [], rules=[role_rule("district_officer")])])
        await flow.start()
        v2 = await draft(flow, [stage(1, [], rules=[role_rule("director")])])

        [change] = (await replayed(flow, v2))["changed"]

        [difference] = change["differences"]
        # The fixture directory: alice, bob and frank (senior, a composite) are officers; carol
        # is a director, and dave is one through the /finance group.
        assert difference["before"] == ["alice", "bob", "frank"]
        assert difference["after"] == ["carol", "dave"]

    async def test_the_request_fields_are_seen_by_rules(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        await flow.start(artifact_id="vip-1")
        await flow.start(artifact_id="plain-1")
        v2 = await draft(
            flow,
            [
                stage(
                    1,
                    ["alice"],
                    skip_if={"in": ["vip", {"var": "_request.artifact_id"}]},
                )
            ],
        )

        result = await replayed(flow, v2)

        assert [c["artifact_id"] for c in result["changed"]] == ["vip-1"]

    async def test_a_rule_failing_on_a_context_is_an_error_outcome(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        await flow.start(context={"amount": 0})
        v2 = await draft(
            flow,
            [stage(1, ["alice"], skip_if={">": [{"/": [1, {"var": "amount"}]}, 1]})],
        )

        response = await replay(flow, v2)

        assert response.status_code == 200, response.text
        [change] = response.json()["changed"]
        assert change["after"]["outcome"] == "error"
        assert change["after"]["error"]
        assert kinds(change) == [("outcome", None)]


class TestRouting:
    async def test_a_request_that_would_no_longer_be_routed_here_is_listed(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        await start_three(flow)
        v2 = await draft(
            flow,
            [stage(1, ["alice"])],
            applies_if={">": [{"var": "amount"}, 100]},
        )

        [change] = (await replayed(flow, v2))["changed"]

        assert change["artifact_id"] == "a-50"
        assert kinds(change) == [("routing", None), ("outcome", None)]
        routing = change["differences"][0]
        assert (routing["before"], routing["after"]) == (KEY, None)
        assert change["after"] == {
            "policy_key": None,
            "version": None,
            "outcome": "not_routed",
            "stages": [],
            "error": None,
        }

    async def test_another_policy_catching_the_request_is_named(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])], priority=10)
        await flow.publish(
            [stage(1, ["carol"])], key="test.fallback", artifact_type=KEY
        )
        await flow.start(context={"amount": 50})
        v2 = await draft(
            flow,
            [stage(1, ["alice"])],
            priority=10,
            applies_if={">": [{"var": "amount"}, 100]},
        )

        [change] = (await replayed(flow, v2))["changed"]

        routing = change["differences"][0]
        assert (routing["kind"], routing["after"]) == ("routing", "test.fallback")
        assert routing["detail"] == f"routed to test.fallback instead of {KEY}"
        assert change["after"]["stages"][0]["resolved_approvers"] == ["carol"]


class TestVersions:
    async def test_each_request_is_compared_with_its_pinned_version(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        await flow.start(artifact_id="old")
        v2 = await draft(flow, [stage(1, ["bob"])])
        await activate(flow, v2)
        await flow.start(artifact_id="new")
        v3 = await draft(flow, [stage(1, ["bob"])])

        result = await replayed(flow, v3)

        assert (result["compared_with"], result["replayed"]) == (2, 2)
        [change] = result["changed"]
        assert change["artifact_id"] == "old"
        assert change["before"]["version"] == 1
        assert change["differences"][0]["before"] == ["alice"]

    async def test_replaying_the_active_version_itself_changes_nothing(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"]), stage(2, ["bob"])])
        await start_three(flow)

        result = await replayed(flow, 1)

        assert (result["replayed"], result["changed"]) == (3, [])

    async def test_limit_takes_the_most_recent_requests(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        await start_three(flow)
        v2 = await draft(flow, [stage(1, ["bob"])])

        result = await replayed(flow, v2, limit=2)

        assert result["replayed"] == 2
        assert [c["artifact_id"] for c in result["changed"]] == ["a-5000", "a-500"]

    async def test_writes_nothing(self, flow: Flow, session: AsyncSession) -> None:
        await flow.publish([stage(1, ["alice"]), stage(2, ["bob"])])
        await start_three(flow)
        v2 = await draft(flow, [stage(1, ["carol"])])

        async def counts() -> list[int]:
            values = []
            for model in (
                ApprovalRequest,
                Task,
                Decision,
                Event,
                WebhookDelivery,
                AuditEntry,
                Policy,
            ):
                statement = select(func.count()).select_from(model)
                values.append(int((await session.execute(statement)).scalar_one()))
            await session.commit()
            return values

        before = await counts()
        assert (await replayed(flow, v2))["changed"]
        assert await counts() == before


class TestAccessAndValidation:
    async def test_viewers_may_replay_and_plain_users_may_not(
        self, flow: Flow, viewer_headers: dict[str, str]
    ) -> None:
        await flow.publish([stage(1, ["alice"])])

        viewer = await replay(flow, 1, headers=viewer_headers)
        user = await replay(flow, 1, headers=flow.user("alice"))

        assert viewer.status_code == 200
        assert (user.status_code, problem_code(user)) == (403, "forbidden")

    async def test_an_unknown_version_is_404(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])

        response = await replay(flow, 9)

        assert (response.status_code, problem_code(response)) == (
            404,
            "policy_not_found",
        )

    @pytest.mark.parametrize("limit", [0, 1001, "many", None])
    async def test_limit_must_be_1_to_1000(self, flow: Flow, limit: Any) -> None:
        await flow.publish([stage(1, ["alice"])])

        response = await replay(flow, 1, {"limit": limit})

        assert (response.status_code, problem_code(response)) == (
            422,
            "validation_failed",
        )

    async def test_without_a_body_it_replays_100(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        await flow.start()

        response = await flow.client.post(
            f"/v1/policies/{KEY}/versions/1/replay", headers=flow.admin
        )

        assert response.status_code == 200, response.text
        assert response.json()["replayed"] == 1


class TestHttpRules:
    async def test_http_rules_call_the_real_resolver_once_per_request_and_stage(
        self, flow: Flow
    ) -> None:
        with ResolverServer() as resolver:
            await create_secret(flow)
            await flow.publish([stage(1, ["alice"])])
            request_id = (await flow.start(artifact_id="h-1", context={"d": 1}))[
                "request_id"
            ]
            resolver.default = users("dave")
            v2 = await draft(
                flow, [stage(1, [], rules=[http_rule(resolver.url, timeout=2)])]
            )

            [change] = (await replayed(flow, v2))["changed"]

            [call] = resolver.calls
        assert call.json == {
            "request_id": request_id,
            "policy_key": KEY,
            "stage_order": 1,
            "artifact_type": KEY,
            "artifact_id": "h-1",
            "context": {"d": 1},
        }
        assert "x-approval-signature" in {h.lower() for h in call.headers}
        assert change["differences"][0]["after"] == ["dave"]

    async def test_the_time_budget_stops_a_slow_replay(
        self,
        settings: Settings,
        admin_headers: dict[str, str],
        token: TokenFactory,
        clean_database: None,
    ) -> None:
        app: FastAPI = create_app(
            settings.model_copy(update={"replay_budget_seconds": 0.3}),
            in_process_worker=False,
        )
        async with app.router.lifespan_context(app), _client(app) as client:
            flow = Flow(client, admin_headers, token)
            with ResolverServer() as resolver:
                await create_secret(flow)
                await flow.publish([stage(1, ["alice"])])
                for n in range(4):
                    await flow.start(artifact_id=f"s-{n}")
                resolver.default = Answer(body=b'{"user_ids": ["dave"]}', delay=0.2)
                v2 = await draft(
                    flow, [stage(1, [], rules=[http_rule(resolver.url, timeout=2)])]
                )

                result = await replayed(flow, v2)

        assert result["truncated"] is True
        assert 1 <= result["replayed"] < 4
        assert len(result["changed"]) == result["replayed"]


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://countersign.test"
    ) as c:
        yield c
