"""The `http` approver rule end to end: the caller's own service says who approves.

API.md "Policies" (rules) and "Webhooks" (signing): when a stage with an `http` rule starts, the
service POSTs `{"request_id", "policy_key", "stage_order", "artifact_type", "artifact_id",
"context"}` to the rule's URL, signed with both webhook header sets and the request caller's
secret, and expects `{"user_ids": [...]}`. Anything else (an error status, garbage, a wrong shape,
no answer within the rule's `timeout_seconds`, nobody listening, no secret to sign with) is a
resolution failure with a reason: the stage waits in `resolving` and the worker retries, exactly
as for a Keycloak outage. URLs outside the outbound policy are refused when the policy is saved.

The resolver here is a real loopback HTTP server (`ResolverServer`), reached through the service's
real outbound client and guard; the shared test app runs in dev mode, which allows loopback http.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from countersign.kit import clock
from countersign.webhooks.signing import verify_awe, verify_standard
from countersign.worker.jobs import run_due_locally
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import CALLER_CLIENT, Body, Flow, problem_code, stage
from tests.identity.jwks_server import JwksServer
from tests.identity.test_http_auth import client_of, jwks, oidc_app, oidc_token

RESOLVER_ACTOR = "system:resolver"
FIRST_BACKOFF_SECONDS = 30
RULE_TIMEOUT_SECONDS = 0.5
BODY_FIELDS = {
    "request_id",
    "policy_key",
    "stage_order",
    "artifact_type",
    "artifact_id",
    "context",
}


# --- a scriptable loopback resolver -----------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """How the resolver answers one call."""

    status: int = 200
    body: bytes = b'{"user_ids": []}'
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    # Seconds to wait before answering (cut short when the server stops).
    delay: float = 0.0
    # Seconds between the bytes of the body: a resolver that answers, but slowly.
    drip: float = 0.0


def users(*user_ids: str) -> Answer:
    return Answer(body=json.dumps({"user_ids": list(user_ids)}).encode())


def json_answer(value: Any) -> Answer:
    return Answer(body=json.dumps(value).encode())


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class ResolverServer:
    """ThreadingHTTPServer on 127.0.0.1 (a port of its own, kept across `go_down`/`come_back`)."""

    def __init__(self) -> None:
        self.default = users()
        self.port = 0
        self._lock = threading.Lock()
        self._script: deque[Answer] = deque()
        self._calls: list[Call] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/approvers"

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def answer(self, *answers: Answer) -> None:
        """The next calls get these answers, in order; then `default`."""
        with self._lock:
            self._script.extend(answers)

    def start(self) -> ResolverServer:
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="http-rule-resolver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    go_down = stop

    def come_back(self) -> None:
        self.start()

    def __enter__(self) -> ResolverServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _next(self, call: Call) -> Answer:
        with self._lock:
            self._calls.append(call)
            return self._script.popleft() if self._script else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                call = Call(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    self.rfile.read(length),
                )
                answer = owner._next(call)
                if answer.delay:
                    owner._stopping.wait(answer.delay)
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    if not answer.drip:
                        self.wfile.write(answer.body)
                    for index in range(len(answer.body) if answer.drip else 0):
                        self.wfile.write(answer.body[index : index + 1])
                        self.wfile.flush()
                        if owner._stopping.wait(answer.drip):
                            break
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def resolver() -> Iterator[ResolverServer]:
    with ResolverServer() as server:
        yield server


@pytest.fixture
def service_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTERSIGN_CLOCK_FILE", str(tmp_path / "clock"))


@pytest.fixture
def flow(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    token: TokenFactory,
    service_clock: None,
) -> Flow:
    return Flow(client, admin_headers, token)


def http_rule(url: str, timeout: float | None = RULE_TIMEOUT_SECONDS) -> Body:
    value: Body = {"url": url}
    if timeout is not None:
        value["timeout_seconds"] = timeout
    return {"rule_type": "http", "rule_value": value, "kind": "approver"}


def http_stage(order: int, url: str) -> Body:
    return stage(order, [], rules=[http_rule(url)])


async def create_secret(flow: Flow, caller: str = CALLER_CLIENT) -> Body:
    response = await flow.client.post(
        f"/v1/admin/callers/{caller}/secrets", json={}, headers=flow.admin
    )
    assert response.status_code == 201, response.text
    body: Body = response.json()
    return body


async def open_assignees(
    flow: Flow, request_id: str, stage_order: int = 1
) -> list[str]:
    return sorted(
        t["assignee"]
        for t in await flow.tasks(request_id)
        if t["stage_order"] == stage_order and t["status"] == "open"
    )


def service_now() -> int:
    return int(clock.now().timestamp())


def signed_by(call: Call, secret: str) -> bool:
    """Both header sets carry a valid signature of the exact body by `secret`."""
    return verify_standard(
        secret, call.headers, call.body, now=service_now()
    ) and verify_awe(secret, call.headers, call.body, now=service_now())


async def retry_due_resolutions(app: FastAPI, request: Body) -> dict[str, int]:
    """Move the service clock past the retry the last failure scheduled, and run the worker."""
    due = datetime.fromisoformat(request["next_attempt_at"])
    clock.advance(max((due - clock.now()).total_seconds(), 0) + 1)
    return await run_due_locally(app.state.runtime)


# --- tests ------------------------------------------------------------------------------------


class TestResolution:
    async def test_the_resolver_gets_the_documented_body_signed_and_its_answer_becomes_the_tasks(
        self, flow: Flow, resolver: ResolverServer
    ) -> None:
        secret = (await create_secret(flow))["secret"]
        await flow.publish([http_stage(1, resolver.url), stage(2, ["carol"])])
        resolver.answer(users("alice", "bob"))
        context = {"district": "Северный", "amount": 1500, "tags": ["urgent"]}

        created = await flow.start(artifact_id="cr-42", context=context)

        assert sorted(t["assignee"] for t in created["tasks"]) == ["alice", "bob"]
        [call] = resolver.calls
        assert (call.method, call.path) == ("POST", "/approvers")
        assert call.json == {
            "request_id": created["request_id"],
            "policy_key": "test.flow",
            "stage_order": 1,
            "artifact_type": "test.flow",
            "artifact_id": "cr-42",
            "context": context,
        }
        assert set(call.json) == BODY_FIELDS
        lowered = {k.lower(): v for k, v in call.headers.items()}
        assert lowered["content-type"] == "application/json"
        assert lowered["user-agent"].startswith("Countersign/")
        assert lowered["webhook-id"] == lowered["x-approval-event-id"]
        assert lowered["webhook-timestamp"] == lowered["x-approval-timestamp"]
        assert signed_by(call, secret)
        # What a receiver using the Standard Webhooks library runs (the clock was not moved).
        Webhook(secret).verify(call.body, call.headers)
        other = (await create_secret(flow, "someone-else"))["secret"]
        assert not signed_by(call, other)
        [started] = await flow.events_of(created["request_id"], "stage_started")
        assert sorted(started["payload"]["approvers"]) == ["alice", "bob"]

    async def test_http_rules_are_unioned_with_the_other_rules_of_the_stage(
        self, flow: Flow, resolver: ResolverServer
    ) -> None:
        await create_secret(flow)
        rules = [
            http_rule(resolver.url),
            {"rule_type": "user", "rule_value": {"user_id": "alice"}},
        ]
        await flow.publish([stage(1, [], rules=rules)])
        resolver.answer(users("alice", "dave", "dave", ""))

        request_id = (await flow.start())["request_id"]

        assert await open_assignees(flow, request_id) == ["alice", "dave"]

    async def test_during_a_secret_rotation_both_secrets_sign(
        self, flow: Flow, resolver: ResolverServer
    ) -> None:
        old = await create_secret(flow)
        rotated = await flow.client.post(
            f"/v1/admin/secrets/{old['id']}/rotate",
            json={"grace_hours": 1},
            headers=flow.admin,
        )
        assert rotated.status_code == 201, rotated.text
        new = rotated.json()["secret"]
        await flow.publish([http_stage(1, resolver.url)])
        resolver.answer(users("alice"))

        await flow.start()

        [call] = resolver.calls
        lowered = {k.lower(): v for k, v in call.headers.items()}
        assert len(lowered["webhook-signature"].split()) == 2
        assert verify_standard(new, call.headers, call.body, now=service_now())
        assert verify_standard(
            old["secret"], call.headers, call.body, now=service_now()
        )
        # AWE's single signature is the newest secret's.
        assert verify_awe(new, call.headers, call.body, now=service_now())
        assert not verify_awe(old["secret"], call.headers, call.body, now=service_now())

    async def test_an_empty_list_is_an_answer_not_an_outage(
        self, flow: Flow, resolver: ResolverServer
    ) -> None:
        await create_secret(flow)
        await flow.publish([http_stage(1, resolver.url)])
        resolver.answer(users())

        created = await flow.start()

        request = await flow.request(created["request_id"])
        assert (request["status"], request["outcome_reason"]) == (
            "rejected",
            "no_approvers_resolved",
        )
        assert (
            await flow.events_of(created["request_id"], "stage_resolution_failed") == []
        )


# Each: what the resolver does, and what the failure's reason must say.
FAILURES: dict[str, tuple[Answer | None, str]] = {
    "HTTP 500": (Answer(status=500, body=b"boom"), "answered HTTP 500"),
    "HTTP 404": (Answer(status=404, body=b""), "answered HTTP 404"),
    "a redirect, not followed": (
        Answer(status=307, headers={"Location": "http://169.254.169.254/"}),
        "answered HTTP 307",
    ),
    "HTML": (
        Answer(body=b"<html>maintenance</html>", content_type="text/html"),
        "not JSON",
    ),
    "an empty body": (Answer(body=b""), "not JSON"),
    "user_ids not a list": (
        json_answer({"user_ids": "alice"}),
        'expected {"user_ids": [strings]}',
    ),
    "user_ids not strings": (
        json_answer({"user_ids": [1, 2]}),
        'expected {"user_ids": [strings]}',
    ),
    "no user_ids": (
        json_answer({"approvers": ["alice"]}),
        'expected {"user_ids": [strings]}',
    ),
    "a bare list": (json_answer(["alice"]), 'expected {"user_ids": [strings]}'),
    "no answer within the rule's timeout": (
        Answer(delay=2 * RULE_TIMEOUT_SECONDS, body=b'{"user_ids": ["alice"]}'),
        f"no answer within {RULE_TIMEOUT_SECONDS:g} s",
    ),
    "answering byte by byte past the timeout": (
        # Every read is quicker than the timeout; the whole answer is not.
        Answer(body=b'{"user_ids": ["alice"]}', drip=RULE_TIMEOUT_SECONDS / 4),
        f"no answer within {RULE_TIMEOUT_SECONDS:g} s",
    ),
    "an answer larger than 64 KiB": (
        # Valid JSON naming alice, but never read whole: refused, not parsed.
        json_answer({"user_ids": ["alice"], "padding": "." * (64 * 1024)}),
        "the answer is larger than 64 KiB",
    ),
    "a user id too long to hold a task": (
        users("alice", "x" * 201),
        "is longer than 200 characters",
    ),
    "nobody listening": (None, "ConnectError"),
}


class TestFailures:
    @pytest.mark.parametrize("failure", list(FAILURES))
    async def test_the_stage_waits_with_a_clear_reason_and_recovers(
        self,
        flow: Flow,
        resolver: ResolverServer,
        app: FastAPI,
        failure: str,
    ) -> None:
        secret = (await create_secret(flow))["secret"]
        await flow.publish([http_stage(1, resolver.url), stage(2, ["carol"])])
        answer, reason = FAILURES[failure]
        if answer is None:
            resolver.go_down()
        else:
            resolver.answer(answer)

        created = await flow.create()

        assert created.status_code == 201, created.text
        assert created.json()["tasks"] == []
        request_id = created.json()["request_id"]
        assert await flow.stage_status(request_id) == {1: "resolving", 2: "pending"}
        [failed] = await flow.events_of(request_id, "stage_resolution_failed")
        assert reason in failed["payload"]["reason"]
        assert resolver.url in failed["payload"]["reason"]
        stages = await flow.client.get("/v1/admin/stages", headers=flow.admin)
        assert [s["last_resolution_error"] for s in stages.json()] == [
            failed["payload"]["reason"]
        ]

        if answer is None:
            resolver.come_back()
        resolver.answer(users("alice"))
        calls_before = len(resolver.calls)
        await retry_due_resolutions(app, failed["payload"])

        assert await flow.stage_status(request_id) == {1: "active", 2: "pending"}
        assert await open_assignees(flow, request_id) == ["alice"]
        [started] = await flow.events_of(request_id, "stage_started")
        assert started["actor"] == RESOLVER_ACTOR
        retry = resolver.calls[calls_before]
        assert retry.json["request_id"] == request_id
        assert signed_by(retry, secret)
        await flow.approve("alice", request_id)
        await flow.approve("carol", request_id)
        assert (await flow.request(request_id))["status"] == "approved"

    async def test_the_timeout_bounds_the_whole_call_not_each_read(
        self, flow: Flow, resolver: ResolverServer
    ) -> None:
        # The call runs while the request row is locked: a slow resolver must not hold it.
        await create_secret(flow)
        await flow.publish([http_stage(1, resolver.url)])
        body = json.dumps({"user_ids": ["alice"], "padding": "." * 100}).encode()
        resolver.answer(Answer(body=body, drip=0.05))  # about 6 s in all
        started = time.monotonic()

        created = await flow.create()

        assert time.monotonic() - started < 4 * RULE_TIMEOUT_SECONDS
        assert created.status_code == 201, created.text
        [failed] = await flow.events_of(
            created.json()["request_id"], "stage_resolution_failed"
        )
        assert "no answer within 0.5 s" in failed["payload"]["reason"]

    async def test_reasons_show_the_url_without_its_query_string(
        self, flow: Flow, resolver: ResolverServer
    ) -> None:
        # Everyone who can see the request reads its events: requester and approvers included.
        await create_secret(flow)
        await flow.publish([http_stage(1, f"{resolver.url}?api_key=s3cret#frag")])
        resolver.answer(Answer(status=500))

        created = await flow.create()

        [failed] = await flow.events_of(
            created.json()["request_id"], "stage_resolution_failed"
        )
        reason = failed["payload"]["reason"]
        assert reason == f"http rule {resolver.url}: answered HTTP 500"
        assert [c.path for c in resolver.calls] == ["/approvers?api_key=s3cret"]

    async def test_a_redirect_is_never_followed(
        self, flow: Flow, resolver: ResolverServer
    ) -> None:
        await create_secret(flow)
        await flow.publish([http_stage(1, resolver.url)])
        resolver.answer(
            Answer(status=302, headers={"Location": f"{resolver.url}/elsewhere"})
        )

        await flow.start()

        assert [c.path for c in resolver.calls] == ["/approvers"]

    @pytest.mark.parametrize("secret_state", ["never created", "revoked"])
    async def test_without_a_secret_nothing_is_sent_unsigned(
        self,
        flow: Flow,
        resolver: ResolverServer,
        app: FastAPI,
        secret_state: str,
    ) -> None:
        if secret_state == "revoked":
            revoked = await create_secret(flow)
            response = await flow.client.post(
                f"/v1/admin/secrets/{revoked['id']}/revoke", headers=flow.admin
            )
            assert response.status_code == 200, response.text
        # Another caller's secret is no use either.
        await create_secret(flow, "payments")
        await flow.publish([http_stage(1, resolver.url)])
        resolver.default = users("alice")

        created = await flow.create()

        assert created.status_code == 201, created.text
        request_id = created.json()["request_id"]
        assert await flow.stage_status(request_id) == {1: "resolving"}
        [failed] = await flow.events_of(request_id, "stage_resolution_failed")
        assert "no active signing secret" in failed["payload"]["reason"]
        assert resolver.calls == []

        secret = (await create_secret(flow))["secret"]
        await retry_due_resolutions(app, failed["payload"])

        assert await open_assignees(flow, request_id) == ["alice"]
        [call] = resolver.calls
        assert signed_by(call, secret)

    async def test_a_decision_that_starts_an_http_stage_is_kept_while_the_resolver_fails(
        self, flow: Flow, resolver: ResolverServer, app: FastAPI
    ) -> None:
        await create_secret(flow)
        await flow.publish([stage(1, ["alice"]), http_stage(2, resolver.url)])
        request_id = (await flow.start())["request_id"]
        resolver.answer(Answer(status=503))

        decided = await flow.decide("alice", request_id)

        assert decided.status_code == 201, decided.text
        assert await flow.stage_status(request_id) == {1: "approved", 2: "resolving"}
        [failed] = await flow.events_of(request_id, "stage_resolution_failed")
        assert failed["payload"]["stage_order"] == 2
        assert resolver.calls[0].json["stage_order"] == 2

        resolver.answer(users("carol"))
        await retry_due_resolutions(app, failed["payload"])

        assert await open_assignees(flow, request_id, 2) == ["carol"]


class TestIdsThatCannotHoldATask:
    """Principal ids are at most 200 characters (the assignee column; `requester` has the same
    bound). An id no task can hold must never turn a creation or a decision into a 500."""

    async def test_an_expression_naming_an_overlong_id_names_nobody(
        self, flow: Flow
    ) -> None:
        rules = [
            {"rule_type": "expression", "rule_value": {"logic": {"var": "approver"}}},
            {"rule_type": "user", "rule_value": {"user_id": "alice"}},
        ]
        await flow.publish([stage(1, [], rules=rules)])

        created = await flow.create(context={"approver": "y" * 201})

        assert created.status_code == 201, created.text
        assert [t["assignee"] for t in created.json()["tasks"]] == ["alice"]

    async def test_a_user_rule_with_an_overlong_id_is_refused_at_save(
        self, flow: Flow
    ) -> None:
        body = {
            "policy_key": "test.flow",
            "name": "test.flow",
            "artifact_type": "test.flow",
            "stages": [stage(1, ["u" * 201])],
        }

        response = await flow.client.post("/v1/policies", json=body, headers=flow.admin)

        assert response.status_code == 422, response.text
        assert [e["pointer"] for e in response.json()["errors"]] == [
            "/stages/0/rules/0/rule_value/user_id"
        ]


class TestOutboundPolicy:
    @pytest.mark.parametrize(
        "url",
        [
            "http://10.1.2.3/approvers",
            "http://192.168.1.10:8080/approvers",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00::1]/approvers",
            "http://0.0.0.0/approvers",
        ],
    )
    @pytest.mark.parametrize("where", ["rules", "escalation_rules"])
    async def test_a_url_outside_the_outbound_policy_is_refused_at_save(
        self, flow: Flow, url: str, where: str
    ) -> None:
        stage_body = stage(1, ["alice"])
        if where == "rules":
            stage_body["rules"] = [http_rule(url)]
        else:
            stage_body.update(
                sla_hours=1, on_breach="escalate", escalation_rules=[http_rule(url)]
            )
        body = {
            "policy_key": "test.flow",
            "name": "test.flow",
            "artifact_type": "test.flow",
            "stages": [stage_body],
        }

        response = await flow.client.post("/v1/policies", json=body, headers=flow.admin)

        assert response.status_code == 422, response.text
        assert problem_code(response) == "callback_not_allowed"
        assert [e["pointer"] for e in response.json()["errors"]] == [
            f"/stages/0/{where}/0/rule_value/url"
        ]
        listed = await flow.client.get("/v1/policies", headers=flow.admin)
        assert listed.json() == []


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer(jwks()) as server:
        yield server


@pytest.fixture
async def production_like(
    jwks_server: JwksServer,
    resolver: ResolverServer,
    database_url: str,
    tmp_path: Path,
    clean_database: None,
    service_clock: None,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """oidc mode (no dev-mode loopback exception), with the resolver's address allow-listed."""
    async with (
        oidc_app(
            jwks_server.url, database_url, tmp_path, outbound_allow=["127.0.0.1/32"]
        ) as app,
        client_of(app) as api,
    ):
        yield app, api


class TestOutsideDevMode:
    async def test_loopback_is_refused_unless_allow_listed_and_then_it_works(
        self,
        production_like: tuple[FastAPI, httpx.AsyncClient],
        resolver: ResolverServer,
        jwks_server: JwksServer,
        database_url: str,
        tmp_path: Path,
    ) -> None:
        admin = bearer(
            oidc_token(preferred_username="ops", realm_access={"roles": ["AWE_ADMIN"]})
        )
        body = {
            "policy_key": "test.flow",
            "name": "test.flow",
            "artifact_type": "test.flow",
            "stages": [http_stage(1, resolver.url)],
        }
        # Without the allow list: the same policy is refused.
        async with (
            oidc_app(jwks_server.url, database_url, tmp_path / "strict") as strict,
            client_of(strict) as strict_api,
        ):
            refused = await strict_api.post("/v1/policies", json=body, headers=admin)
        assert problem_code(refused) == "callback_not_allowed"
        assert "loopback" in refused.json()["errors"][0]["detail"]

        app, api = production_like
        assert (
            await api.post("/v1/policies", json=body, headers=admin)
        ).status_code == 201
        activated = await api.post(
            "/v1/policies/test.flow/versions/1/activate", headers=admin
        )
        assert activated.status_code == 200, activated.text
        secret = await api.post(
            "/v1/admin/callers/registry/secrets", json={}, headers=admin
        )
        resolver.answer(users("alice"))

        created = await api.post(
            "/v1/requests",
            json={
                "policy_key": "test.flow",
                "artifact_type": "test.flow",
                "artifact_id": "a-1",
                "context": {},
            },
            headers=bearer(
                oidc_token(
                    preferred_username="service-account-registry", azp="registry"
                )
            ),
        )

        assert created.status_code == 201, created.text
        assert [t["assignee"] for t in created.json()["tasks"]] == ["alice"]
        [call] = resolver.calls
        assert signed_by(call, secret.json()["secret"])
