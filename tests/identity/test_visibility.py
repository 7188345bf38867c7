"""Who may see and do what, over HTTP, with the tokens of different principals.

API.md "Identity": a request, with its events, tasks and deliveries, is visible to admins and
viewers, to the principal that created it (`source_service`), to tokens with the same `azp` as the
creating token (`source_client`), to its `requester` and to principals holding a task on it.
Everyone else gets 404 `request_not_found`, on every route, exactly as if it did not exist.
Cancel is for admins, the creating caller and the requester; viewers read everything and write
nothing. Roles come from realm roles and the configured client's roles only.

Decision recorded here (and in docs/security.md): "holding a task" means holding one in any
status. An approver whose task was reassigned away, or who already decided, still sees the
request: they took part in it, and their decision stays in its history.

`tests/requests/test_requests_api.py` covers the list filtered by visibility and a stranger's 404
on GET and the diagram; `tests/tasks/test_inbox.py` who may list whose tasks; these tests go
through every principal and every route.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import Body, Flow, problem_code, stage

from .jwks_server import JwksServer
from .test_http_auth import client_of, jwks, oidc_app, oidc_token
from .test_tokens import CLIENT_ID

Headers = dict[str, str]

PAYMENTS_KEY = "payments.transfer"
# Loopback, so dev mode's outbound policy accepts it; never called (no worker runs here).
CALLBACK_URL = "http://127.0.0.1:9/hooks/countersign"


@dataclass(frozen=True)
class Who:
    """A principal, as the token that stands for it."""

    sub: str
    azp: str | None = None
    roles: tuple[str, ...] = ()

    def headers(self, token: TokenFactory) -> Headers:
        return bearer(token(self.sub, azp=self.azp, roles=list(self.roles)))


REGISTRY_SVC = Who("registry-svc", azp="registry")
PAYMENTS_SVC = Who("payments-svc", azp="payments")
VIEWER = Who("viewer-vic", roles=("AWE_VIEWER",))
ADMIN = Who("admin-ann", roles=("AWE_ADMIN",))

# Who sees the registry's request, and why.
SEES: dict[str, Who] = {
    "the creating principal": REGISTRY_SVC,
    "the creating principal through another client": Who(
        "registry-svc", azp="registry-ui"
    ),
    "another token of the creating client": Who("registry-clerk", azp="registry"),
    "the requester": Who("frank"),
    "an approver holding a task": Who("alice"),
    "an observer holding a task": Who("olga"),
    "a viewer": VIEWER,
    "an admin": ADMIN,
}
# Who does not, although each is close to someone who does.
HIDDEN_FROM: dict[str, Who] = {
    "another caller": PAYMENTS_SVC,
    "an approver of a stage not started yet": Who("carol"),
    "an approver of another request only": Who("dave"),
    "a stranger": Who("mallory"),
    "a person whose id is the creating client's id": Who("registry"),
    "a client whose id is the requester's id": Who("frank-bot", azp="frank"),
    "a token with roles of no meaning here": Who("eve", roles=("admin", "viewer")),
}

READS = [
    "/v1/requests/{id}",
    "/v1/requests/{id}/events",
    "/v1/requests/{id}/events/verify",
    "/v1/requests/{id}/diagram.svg",
    "/v1/awe/requests/{id}",
    "/v1/awe/requests/{id}/events",
]


@dataclass
class World:
    """Two callers' requests.

    `registry`: created by registry-svc (client `registry`) for requester frank; stage 1 alice
    (olga observes), stage 2 carol; it has a callback, hence a delivery row.
    `payments`: created by payments-svc (client `payments`); stage 1 dave.
    """

    flow: Flow
    registry: str
    payments: str

    def headers(self, who: Who) -> Headers:
        return who.headers(self.flow.token)

    async def alice_task(self) -> str:
        return await self.flow.open_task("alice", self.registry)


@pytest.fixture
def flow(
    client: httpx.AsyncClient, admin_headers: Headers, token: TokenFactory
) -> Flow:
    return Flow(client, admin_headers, token, caller=REGISTRY_SVC.headers(token))


@pytest.fixture
async def world(flow: Flow) -> World:
    await flow.publish(
        [stage(1, ["alice"], observers=["olga"]), stage(2, ["carol"])],
    )
    await flow.publish([stage(1, ["dave"])], key=PAYMENTS_KEY)
    registry = await flow.start(
        artifact_id="cr-1", requester="frank", callback_url=CALLBACK_URL
    )
    payments = await flow.start(
        headers=PAYMENTS_SVC.headers(flow.token), key=PAYMENTS_KEY, artifact_id="pay-1"
    )
    return World(flow, str(registry["request_id"]), str(payments["request_id"]))


async def listed(world: World, who: Who) -> set[str]:
    response = await world.flow.client.get(
        "/v1/requests", params={"limit": 500}, headers=world.headers(who)
    )
    assert response.status_code == 200, response.text
    return {r["id"] for r in response.json()}


def assert_not_found(response: httpx.Response, code: str = "request_not_found") -> None:
    assert response.status_code == 404, response.text
    assert problem_code(response) == code


def assert_forbidden(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert problem_code(response) == "forbidden"


async def snapshot(world: World, request_id: str) -> tuple[str, int, list[str]]:
    """Status, number of events and task statuses of a request: what a refused write must not change."""
    request = await world.flow.request(request_id)
    events = await world.flow.events(request_id)
    tasks = await world.flow.tasks(request_id)
    return request["status"], len(events), [t["status"] for t in tasks]


class TestReads:
    @pytest.mark.parametrize("who", list(SEES))
    async def test_those_who_may_see_a_request_read_every_part_of_it(
        self, world: World, who: str
    ) -> None:
        headers = world.headers(SEES[who])

        for path in READS:
            response = await world.flow.client.get(
                path.format(id=world.registry), headers=headers
            )
            assert response.status_code == 200, (path, response.text)
        assert world.registry in await listed(world, SEES[who])

    @pytest.mark.parametrize("who", list(HIDDEN_FROM))
    async def test_everyone_else_gets_404_on_every_part_and_an_empty_list(
        self, world: World, who: str
    ) -> None:
        headers = world.headers(HIDDEN_FROM[who])

        for path in READS:
            response = await world.flow.client.get(
                path.format(id=world.registry), headers=headers
            )
            assert_not_found(response)
        assert world.registry not in await listed(world, HIDDEN_FROM[who])
        # Filters cannot be used to probe for it either.
        probe = await world.flow.client.get(
            "/v1/requests", params={"artifact_id": "cr-1"}, headers=headers
        )
        assert probe.json() == []

    async def test_a_hidden_request_looks_exactly_like_one_that_does_not_exist(
        self, world: World
    ) -> None:
        headers = world.headers(PAYMENTS_SVC)

        missing_id = str(uuid.uuid4())

        hidden = await world.flow.client.get(
            f"/v1/requests/{world.registry}", headers=headers
        )
        missing = await world.flow.client.get(
            f"/v1/requests/{missing_id}", headers=headers
        )

        assert_not_found(hidden)
        assert_not_found(missing)
        assert hidden.json()["detail"].replace(world.registry, "ID") == missing.json()[
            "detail"
        ].replace(missing_id, "ID")

    async def test_callers_see_their_own_requests_and_not_each_others(
        self, world: World
    ) -> None:
        registry_sees = await listed(world, REGISTRY_SVC)
        payments_sees = await listed(world, PAYMENTS_SVC)

        assert (registry_sees, payments_sees) == (
            {world.registry},
            {world.payments},
        )
        assert await listed(world, VIEWER) == {world.registry, world.payments}
        assert await listed(world, ADMIN) == {world.registry, world.payments}


class TestTaskHolders:
    async def test_an_approver_sees_a_request_once_their_stage_has_started(
        self, world: World
    ) -> None:
        carol = world.headers(Who("carol"))
        path = f"/v1/requests/{world.registry}"

        before = await world.flow.client.get(path, headers=carol)
        await world.flow.approve("alice", world.registry)
        after = await world.flow.client.get(path, headers=carol)

        assert_not_found(before)
        assert after.status_code == 200
        assert await listed(world, Who("carol")) == {world.registry}

    async def test_an_approver_sees_only_the_requests_they_hold_tasks_on(
        self, world: World
    ) -> None:
        assert await listed(world, Who("alice")) == {world.registry}
        assert await listed(world, Who("dave")) == {world.payments}

    async def test_a_reassigned_approver_still_sees_the_request_and_so_does_the_new_one(
        self, world: World
    ) -> None:
        reassigned = await world.flow.reassign(await world.alice_task(), "bob")
        assert reassigned.status_code == 200, reassigned.text

        for who in (Who("alice"), Who("bob")):
            response = await world.flow.client.get(
                f"/v1/requests/{world.registry}/events", headers=world.headers(who)
            )
            assert response.status_code == 200, (who, response.text)

    async def test_approvers_still_see_a_request_after_it_has_finished(
        self, world: World
    ) -> None:
        await world.flow.approve("alice", world.registry)
        await world.flow.reject("carol", world.registry)

        for who in ("alice", "carol", "olga"):
            response = await world.flow.client.get(
                f"/v1/requests/{world.registry}", headers=world.headers(Who(who))
            )
            assert response.json()["status"] == "rejected", who

    async def test_the_delegate_who_holds_the_task_sees_the_request(
        self, flow: Flow
    ) -> None:
        now = datetime.now(UTC)
        delegated = await flow.client.post(
            "/v1/delegations",
            json={
                "delegate_to": "dan",
                "starts_at": (now - timedelta(minutes=1)).isoformat(),
                "ends_at": (now + timedelta(days=1)).isoformat(),
            },
            headers=flow.user("alice"),
        )
        assert delegated.status_code == 201, delegated.text
        await flow.publish([stage(1, ["alice"])])

        request_id = (await flow.start())["request_id"]

        seen = await flow.client.get(
            f"/v1/requests/{request_id}", headers=flow.user("dan")
        )
        assert seen.status_code == 200, seen.text


class TestWrites:
    CANCEL_ALLOWED = [
        "the creating principal",
        "the creating principal through another client",
        "another token of the creating client",
        "the requester",
        "an admin",
    ]

    @pytest.mark.parametrize("who", CANCEL_ALLOWED)
    async def test_cancel_is_for_admins_the_creating_caller_and_the_requester(
        self, world: World, who: str
    ) -> None:
        response = await world.flow.cancel(
            world.registry, headers=world.headers(SEES[who]), reason="withdrawn"
        )

        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"

    @pytest.mark.parametrize("who", ["an approver holding a task", "a viewer"])
    async def test_others_who_see_it_may_not_cancel_it(
        self, world: World, who: str
    ) -> None:
        before = await snapshot(world, world.registry)

        response = await world.flow.cancel(
            world.registry, headers=world.headers(SEES[who])
        )

        assert_forbidden(response)
        assert await snapshot(world, world.registry) == before

    @pytest.mark.parametrize("who", list(HIDDEN_FROM))
    async def test_those_who_may_not_see_it_get_404_on_every_write(
        self, world: World, who: str
    ) -> None:
        headers = world.headers(HIDDEN_FROM[who])
        task_id = await world.alice_task()
        before = await snapshot(world, world.registry)
        client = world.flow.client

        cancel = await world.flow.cancel(world.registry, headers=headers)
        resubmit = await world.flow.resubmit(world.registry, headers=headers)
        decide = await client.post(
            f"/v1/tasks/{task_id}/decision", json={"action": "approve"}, headers=headers
        )
        claim = await client.post(f"/v1/tasks/{task_id}/claim", headers=headers)
        bulk = await client.post(
            "/v1/tasks/decisions",
            json={"decisions": [{"task_id": task_id, "action": "reject"}]},
            headers=headers,
        )

        assert_not_found(cancel)
        assert_not_found(resubmit)
        assert_not_found(decide, "task_not_found")
        assert_not_found(claim, "task_not_found")
        assert bulk.status_code == 207
        assert [r["status"] for r in bulk.json()["results"]] == [404]
        assert await snapshot(world, world.registry) == before


class TestViewer:
    async def test_a_viewer_sees_everything(self, world: World) -> None:
        headers = world.headers(VIEWER)

        for request_id in (world.registry, world.payments):
            for path in READS:
                response = await world.flow.client.get(
                    path.format(id=request_id), headers=headers
                )
                assert response.status_code == 200, (path, response.text)
        tasks = await world.flow.client.get(
            "/v1/tasks", params={"assignee": "*"}, headers=headers
        )
        assert {t["assignee"] for t in tasks.json()["items"]} == {
            "alice",
            "olga",
            "dave",
        }

    async def test_a_viewer_writes_nothing(self, world: World) -> None:
        flow, client = world.flow, world.flow.client
        headers = world.headers(VIEWER)
        task_id = await world.alice_task()
        secret = await client.post(
            "/v1/admin/callers/registry/secrets", json={}, headers=flow.admin
        )
        assert secret.status_code == 201, secret.text
        secret_id = secret.json()["id"]
        delivery_id = await only_delivery_id(world)
        before = (
            await snapshot(world, world.registry),
            await snapshot(world, world.payments),
        )
        policy = {
            "policy_key": "test.flow",
            "name": "changed by a viewer",
            "artifact_type": "test.flow",
            "stages": [stage(1, ["viewer-vic"])],
        }
        now = datetime.now(UTC)
        writes: list[tuple[str, str, dict[str, Any] | None]] = [
            ("POST", f"/v1/requests/{world.registry}/cancel", {"reason": None}),
            ("POST", f"/v1/requests/{world.registry}/resubmit", {}),
            ("POST", f"/v1/tasks/{task_id}/decision", {"action": "approve"}),
            ("POST", f"/v1/tasks/{task_id}/claim", None),
            ("POST", f"/v1/tasks/{task_id}/reassign", {"new_assignee": "viewer-vic"}),
            ("POST", "/v1/policies", {**policy, "policy_key": "viewer.policy"}),
            ("PUT", "/v1/policies/test.flow", policy),
            ("PATCH", "/v1/policies/test.flow/versions/1", {"name": "x"}),
            ("POST", "/v1/policies/test.flow/versions/1/deactivate", None),
            ("POST", "/v1/admin/callers/registry/secrets", {}),
            ("GET", "/v1/admin/callers/registry/secrets", None),
            ("POST", f"/v1/admin/secrets/{secret_id}/rotate", {"grace_hours": 1}),
            ("POST", f"/v1/admin/secrets/{secret_id}/revoke", None),
            ("POST", f"/v1/admin/deliveries/{delivery_id}/retry", None),
            (
                "POST",
                "/v1/admin/deliveries/recover",
                {
                    "since": (now - timedelta(days=1)).isoformat(),
                    "until": now.isoformat(),
                },
            ),
            (
                "POST",
                "/v1/delegations",
                {
                    "user_id": "alice",
                    "delegate_to": "viewer-vic",
                    "starts_at": now.isoformat(),
                    "ends_at": (now + timedelta(days=1)).isoformat(),
                },
            ),
        ]

        for method, path, body in writes:
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == 403, (method, path, response.text)
            assert problem_code(response) == "forbidden"
        bulk = await client.post(
            "/v1/tasks/decisions",
            json={"decisions": [{"task_id": task_id, "action": "approve"}]},
            headers=headers,
        )

        assert [r["status"] for r in bulk.json()["results"]] == [403]
        assert (
            await snapshot(world, world.registry),
            await snapshot(world, world.payments),
        ) == before
        secrets = await client.get(
            "/v1/admin/callers/registry/secrets", headers=flow.admin
        )
        assert [s["status"] for s in secrets.json()] == ["active"]
        versions = await client.get(
            "/v1/policies/test.flow/versions", headers=flow.admin
        )
        assert [(v["version"], v["status"]) for v in versions.json()] == [(1, "active")]


async def only_delivery_id(world: World) -> str:
    response = await world.flow.client.get(
        "/v1/admin/deliveries",
        params={"request_id": world.registry},
        headers=world.flow.admin,
    )
    assert response.status_code == 200, response.text
    deliveries = response.json()
    assert deliveries, "the registry request has a callback: request_created is queued"
    return str(deliveries[0]["id"])


class TestOperatorRoutes:
    """Deliveries, secrets, stages and the audit log are operators' business, not callers'."""

    READER_ROUTES = [
        "/v1/admin/deliveries",
        "/v1/admin/deliveries/{delivery}/attempts",
        "/v1/admin/stages",
        "/v1/admin/audit",
        "/v1/policies",
    ]
    ADMIN_ROUTES = [
        ("GET", "/v1/admin/callers/registry/secrets"),
        ("POST", "/v1/admin/callers/registry/secrets"),
        ("POST", "/v1/admin/deliveries/{delivery}/retry"),
    ]

    @pytest.mark.parametrize(
        "who",
        [
            "the creating principal",
            "another token of the creating client",
            "an approver holding a task",
        ],
    )
    async def test_callers_and_approvers_get_403_even_for_their_own_requests(
        self, world: World, who: str
    ) -> None:
        headers = world.headers(SEES[who])
        delivery = await only_delivery_id(world)

        for path in self.READER_ROUTES:
            response = await world.flow.client.get(
                path.format(delivery=delivery),
                params={"request_id": world.registry} if "deliveries" in path else {},
                headers=headers,
            )
            assert_forbidden(response)
        for method, path in self.ADMIN_ROUTES:
            response = await world.flow.client.request(
                method, path.format(delivery=delivery), json={}, headers=headers
            )
            assert_forbidden(response)

    async def test_viewers_read_them_and_admins_run_them(self, world: World) -> None:
        delivery = await only_delivery_id(world)

        for path in self.READER_ROUTES:
            for who in (VIEWER, ADMIN):
                response = await world.flow.client.get(
                    path.format(delivery=delivery), headers=world.headers(who)
                )
                assert response.status_code == 200, (path, who, response.text)
        for method, path in self.ADMIN_ROUTES:
            response = await world.flow.client.request(
                method,
                path.format(delivery=delivery),
                json={},
                headers=world.flow.admin,
            )
            assert response.status_code in (200, 201), (path, response.text)

    async def test_another_users_inbox_needs_admin_or_viewer(
        self, world: World
    ) -> None:
        async def alices_inbox(who: Who) -> httpx.Response:
            return await world.flow.client.get(
                "/v1/tasks", params={"assignee": "alice"}, headers=world.headers(who)
            )

        # The request's own caller and requester see the request, but not alice's inbox.
        for who in (REGISTRY_SVC, Who("frank"), Who("carol")):
            assert_forbidden(await alices_inbox(who))
        for who in (VIEWER, ADMIN, Who("alice")):
            response = await alices_inbox(who)
            assert response.status_code == 200, response.text
            assert {t["assignee"] for t in response.json()["items"]} == {"alice"}


class TestAweInboxAlias:
    async def test_it_shows_no_task_of_a_request_the_principal_may_not_see(
        self, world: World
    ) -> None:
        await world.flow.approve("dave", world.payments)

        response = await world.flow.client.get(
            "/v1/awe/tasks",
            params={"assignee": "*"},
            headers=world.headers(REGISTRY_SVC),
        )

        assert response.status_code == 200, response.text
        seen = {t["request_id"] for t in response.json()["items"]}
        assert world.payments not in seen


# --- roles in real IdP tokens -----------------------------------------------------------------


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer(jwks()) as server:
        yield server


@pytest.fixture(scope="module")
async def oidc_service(
    jwks_server: JwksServer, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    async with oidc_app(
        jwks_server.url, database_url, tmp_path_factory.mktemp("oidc-visibility")
    ) as app:
        yield app


@pytest.fixture
async def idp_api(
    oidc_service: FastAPI, clean_database: None
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(oidc_service) as client:
        yield client


def idp(user: str, **extra: Any) -> Headers:
    return bearer(oidc_token(preferred_username=user, sub=f"sub-{user}", **extra))


class TestRolesFromTheIdp:
    """Tokens of a real IdP (oidc mode): only realm roles and `resource_access.<our client>` count."""

    @pytest.fixture
    async def payments_request(self, idp_api: httpx.AsyncClient) -> str:
        admin = idp("ops-admin", realm_access={"roles": ["AWE_ADMIN"]})
        body: Body = {
            "policy_key": PAYMENTS_KEY,
            "name": "Transfers",
            "artifact_type": PAYMENTS_KEY,
            "stages": [stage(1, ["dave"])],
        }
        created = await idp_api.post("/v1/policies", json=body, headers=admin)
        assert created.status_code == 201, created.text
        activated = await idp_api.post(
            f"/v1/policies/{PAYMENTS_KEY}/versions/1/activate", headers=admin
        )
        assert activated.status_code == 200, activated.text
        request = await idp_api.post(
            "/v1/requests",
            json={
                "policy_key": PAYMENTS_KEY,
                "artifact_type": PAYMENTS_KEY,
                "artifact_id": "pay-9",
                "context": {"amount": 10},
            },
            headers=idp("service-account-payments", azp="payments"),
        )
        assert request.status_code == 201, request.text
        return str(request.json()["request_id"])

    async def test_admin_and_viewer_roles_under_another_clients_entry_grant_nothing(
        self, idp_api: httpx.AsyncClient, payments_request: str
    ) -> None:
        mallory = idp(
            "mallory",
            azp="registry-ui",
            resource_access={"registry-ui": {"roles": ["AWE_ADMIN", "AWE_VIEWER"]}},
        )
        task = await idp_api.get(
            "/v1/tasks",
            params={"assignee": "dave"},
            headers=idp("ops-admin", realm_access={"roles": ["AWE_ADMIN"]}),
        )
        (task_id,) = [t["id"] for t in task.json()["items"]]

        assert_not_found(
            await idp_api.get(f"/v1/requests/{payments_request}", headers=mallory)
        )
        assert (await idp_api.get("/v1/requests", headers=mallory)).json() == []
        for method, path, body in [
            ("GET", "/v1/policies", None),
            ("POST", "/v1/policies", {"policy_key": "x"}),
            ("GET", "/v1/admin/deliveries", None),
            ("GET", "/v1/admin/stages", None),
            ("POST", "/v1/admin/callers/registry-ui/secrets", {}),
            ("POST", f"/v1/tasks/{task_id}/reassign", {"new_assignee": "mallory"}),
            ("GET", "/v1/tasks?assignee=*", None),
        ]:
            response = await idp_api.request(method, path, json=body, headers=mallory)
            assert_forbidden(response)

    async def test_the_same_roles_under_the_configured_client_count(
        self, idp_api: httpx.AsyncClient, payments_request: str
    ) -> None:
        viewer = idp(
            "olivia",
            azp="admin-ui",
            resource_access={CLIENT_ID: {"roles": ["AWE_VIEWER"]}},
        )
        admin = idp(
            "oscar",
            azp="admin-ui",
            resource_access={CLIENT_ID: {"roles": ["AWE_ADMIN"]}},
        )

        for headers in (viewer, admin):
            seen = await idp_api.get(
                f"/v1/requests/{payments_request}", headers=headers
            )
            assert seen.status_code == 200, seen.text
        assert_forbidden(
            await idp_api.post(
                f"/v1/requests/{payments_request}/cancel", headers=viewer
            )
        )
        cancelled = await idp_api.post(
            f"/v1/requests/{payments_request}/cancel", headers=admin
        )
        assert cancelled.json()["status"] == "cancelled"

    async def test_the_caller_is_the_client_so_every_token_of_it_sees_its_requests(
        self, idp_api: httpx.AsyncClient, payments_request: str
    ) -> None:
        colleague = idp("clerk-kim", azp="payments")
        other_client = idp("clerk-kim", azp="registry")

        seen = await idp_api.get(f"/v1/requests/{payments_request}", headers=colleague)
        assert seen.status_code == 200
        assert seen.json()["source_client"] == "payments"
        assert seen.json()["source_service"] == "service-account-payments"
        assert_not_found(
            await idp_api.get(f"/v1/requests/{payments_request}", headers=other_client)
        )


def test_the_tables_of_principals_do_not_overlap() -> None:
    # A principal listed on both sides would make one of the parametrized tests meaningless.
    assert not set(SEES.values()) & set(HIDDEN_FROM.values())
