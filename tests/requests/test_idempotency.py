"""`Idempotency-Key` on `POST /v1/requests`, exactly as the contract states it.

Scope (caller, key); kept at least 24 h; same key + same body → the stored response byte for byte
with the same status; same key + different body → 422 `idempotency_key_reused`; a concurrent
duplicate → 409 `idempotency_in_flight` or the first call's response; quoted and bare keys are one
key; no duplicate request is ever created, whatever the concurrency. The predecessor kept keys
global and forever, never compared bodies, and could replay an id that was rolled back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.kit import idempotency
from countersign.kit.clock import now
from countersign.models import ApprovalRequest, IdempotencyKey
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import publish, stage
from tests.fixtures.server import live_server_fixture, server_fixture  # noqa: F401

Body = dict[str, Any]
Headers = dict[str, str]

KEY = "idem.flow"
REPLAYED = "Idempotent-Replayed"


def request_body(artifact_id: str = "cr-1", **context: Any) -> Body:
    return {
        "policy_key": KEY,
        "artifact_type": KEY,
        "artifact_id": artifact_id,
        "context": context or {"district": "D1"},
    }


def with_key(headers: Headers, key: str) -> Headers:
    return {**headers, "Idempotency-Key": key}


async def post(
    client: httpx.AsyncClient, headers: Headers, key: str, body: Body
) -> httpx.Response:
    return await client.post("/v1/requests", json=body, headers=with_key(headers, key))


async def request_rows(session: AsyncSession) -> list[ApprovalRequest]:
    rows = list((await session.execute(select(ApprovalRequest))).scalars().all())
    await session.commit()  # end the read: later reads see later commits
    return rows


async def key_rows(session: AsyncSession) -> list[IdempotencyKey]:
    rows = list((await session.execute(select(IdempotencyKey))).scalars().all())
    await session.commit()
    return rows


def problem_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), (
        response.text
    )
    code: str = response.json()["code"]
    return code


class TestReplay:
    async def test_same_key_and_body_replays_the_stored_response_byte_for_byte(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)
        caller = bearer(token("registry-svc", azp="registry"))

        first = await post(client, caller, "key-1", request_body())
        again = await post(client, caller, "key-1", request_body())

        assert first.status_code == 201, first.text
        assert REPLAYED not in first.headers
        assert again.status_code == 201
        assert again.content == first.content
        assert again.headers[REPLAYED] == "true"
        assert again.headers["content-type"] == first.headers["content-type"]
        assert again.headers["location"] == first.headers["location"]
        assert [str(r.id) for r in await request_rows(session)] == [
            first.json()["request_id"]
        ]

    async def test_the_same_json_spelled_differently_is_the_same_body(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)
        caller = bearer(token("registry-svc", azp="registry"))
        body = request_body()
        first = await post(client, caller, "key-1", body)

        # Other key order, other whitespace: the body means the same, so it is the same body.
        respelled = json.dumps(dict(reversed(list(body.items()))), indent=2)
        again = await client.post(
            "/v1/requests",
            content=respelled,
            headers={**with_key(caller, "key-1"), "Content-Type": "application/json"},
        )

        assert again.status_code == 201, again.text
        assert again.content == first.content
        assert again.headers[REPLAYED] == "true"
        assert len(await request_rows(session)) == 1

    async def test_the_replay_is_the_stored_response_even_after_the_request_moved_on(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)
        caller = bearer(token("registry-svc", azp="registry"))
        first = await post(client, caller, "key-1", request_body())
        cancelled = await client.post(
            f"/v1/requests/{first.json()['request_id']}/cancel",
            json={"reason": "typo"},
            headers=caller,
        )
        assert cancelled.status_code == 200, cancelled.text

        again = await post(client, caller, "key-1", request_body())

        assert again.status_code == 201
        assert again.content == first.content
        assert again.json()["status"] == "in_review"

    async def test_quoted_and_bare_key_values_are_the_same_key(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)
        caller = bearer(token("registry-svc", azp="registry"))

        quoted = await post(client, caller, '"abc"', request_body())
        bare = await post(client, caller, "abc", request_body())
        quoted_again = await post(client, caller, '"abc"', request_body())

        assert quoted.status_code == 201, quoted.text
        assert bare.status_code == 201
        assert bare.headers[REPLAYED] == "true"
        assert bare.content == quoted.content
        assert quoted_again.content == quoted.content
        assert [k.key for k in await key_rows(session)] == ["abc"]
        assert len(await request_rows(session)) == 1

    async def test_keys_are_kept_for_at_least_24_hours(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)
        caller = bearer(token("registry-svc", azp="registry"))

        created = await post(client, caller, "key-1", request_body())

        assert created.status_code == 201, created.text
        [row] = await key_rows(session)
        assert (row.caller, row.key, row.status) == ("registry", "key-1", "completed")
        assert row.expires_at - row.created_at >= timedelta(hours=24)
        assert row.response_status == 201
        assert row.response_body == created.content


class TestMismatch:
    async def test_same_key_with_another_body_is_422_and_creates_nothing(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)
        caller = bearer(token("registry-svc", azp="registry"))
        first = await post(client, caller, "key-1", request_body("cr-1"))

        other = await post(client, caller, "key-1", request_body("cr-2"))

        assert first.status_code == 201, first.text
        assert other.status_code == 422
        assert problem_code(other) == "idempotency_key_reused"
        assert other.json()["errorCode"] == "AWE-009"
        assert [r.artifact_id for r in await request_rows(session)] == ["cr-1"]


class TestScope:
    async def test_another_caller_with_the_same_key_creates_its_own_request(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)
        registry = bearer(token("registry-svc", azp="registry"))
        payments = bearer(token("payments-svc", azp="payments"))

        mine = await post(client, registry, "shared-key", request_body())
        theirs = await post(client, payments, "shared-key", request_body())

        assert mine.status_code == 201, mine.text
        assert theirs.status_code == 201, theirs.text
        assert REPLAYED not in theirs.headers
        assert theirs.json()["request_id"] != mine.json()["request_id"]
        rows = await request_rows(session)
        assert sorted(r.source_client for r in rows) == ["payments", "registry"]
        assert sorted((k.caller, k.key) for k in await key_rows(session)) == [
            ("payments", "shared-key"),
            ("registry", "shared-key"),
        ]

    async def test_tokens_of_one_client_share_its_keys(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        # The caller is the client (`azp`): a registry whose staff post with their own tokens is
        # one caller, so a retry from another member of staff is still a retry.
        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)
        first = await post(
            client, bearer(token("clerk-1", azp="registry")), "key-1", request_body()
        )
        second = await post(
            client, bearer(token("clerk-2", azp="registry")), "key-1", request_body()
        )

        assert first.status_code == 201, first.text
        assert second.headers[REPLAYED] == "true"
        assert second.content == first.content
        assert len(await request_rows(session)) == 1


class TestKeyFormat:
    async def test_a_key_longer_than_255_characters_is_422(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)
        caller = bearer(token("registry-svc", azp="registry"))

        too_long = await post(client, caller, "k" * 256, request_body("cr-1"))
        quoted_too_long = await post(
            client, caller, f'"{"k" * 256}"', request_body("cr-1")
        )
        longest = await post(client, caller, "k" * 255, request_body("cr-2"))
        quoted_longest = await post(
            client, caller, f'"{"q" * 255}"', request_body("cr-3")
        )

        assert too_long.status_code == 422
        assert problem_code(too_long) == "validation_failed"
        assert too_long.json()["errors"][0]["pointer"] == "/headers/Idempotency-Key"
        assert quoted_too_long.status_code == 422
        assert longest.status_code == 201, longest.text
        assert quoted_longest.status_code == 201, quoted_longest.text
        assert sorted(r.artifact_id for r in await request_rows(session)) == [
            "cr-2",
            "cr-3",
        ]

    async def test_an_empty_key_is_422(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)
        caller = bearer(token("registry-svc", azp="registry"))

        empty = await post(client, caller, '""', request_body())

        assert empty.status_code == 422
        assert problem_code(empty) == "validation_failed"
        assert await request_rows(session) == []


class TestFailures:
    async def test_a_failed_first_call_stores_nothing_so_the_retry_runs(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        caller = bearer(token("registry-svc", azp="registry"))

        missing = await post(client, caller, "key-1", request_body())
        assert missing.status_code == 404
        assert problem_code(missing) == "policy_not_found"
        assert await key_rows(session) == []

        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)
        retried = await post(client, caller, "key-1", request_body())

        assert retried.status_code == 201, retried.text
        assert REPLAYED not in retried.headers
        assert len(await request_rows(session)) == 1


class TestExpiry:
    async def _store(
        self, session: AsyncSession, *, key: str, expires_in: timedelta, body: bytes
    ) -> None:
        at = now()
        session.add(
            IdempotencyKey(
                id=uuid.uuid4(),
                caller="registry",
                key=key,
                method="POST",
                path="/requests",
                fingerprint=idempotency.fingerprint(
                    json.dumps(request_body()).encode()
                ),
                status="completed",
                response_status=201,
                response_headers={"Content-Type": "application/json"},
                response_body=body,
                expires_at=at + expires_in,
                created_at=at + expires_in - idempotency.RETENTION,
            )
        )
        await session.commit()

    async def test_purge_expired_deletes_keys_past_their_retention_only(
        self, session: AsyncSession
    ) -> None:
        await self._store(
            session, key="old", expires_in=timedelta(minutes=-1), body=b"{}"
        )
        await self._store(
            session, key="fresh", expires_in=timedelta(hours=1), body=b"{}"
        )

        purged = await idempotency.purge_expired(session)
        await session.commit()

        assert purged == 1
        assert [k.key for k in await key_rows(session)] == ["fresh"]

    async def test_an_expired_key_no_longer_replays(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)
        caller = bearer(token("registry-svc", azp="registry"))
        stale = b'{"request_id":"stale"}'
        await self._store(
            session, key="old", expires_in=timedelta(seconds=-1), body=stale
        )
        await self._store(
            session, key="live", expires_in=timedelta(hours=1), body=stale
        )

        expired = await post(client, caller, "old", request_body())
        live = await post(client, caller, "live", request_body())

        assert expired.status_code == 201, expired.text
        assert REPLAYED not in expired.headers
        assert expired.content != stale
        assert [str(r.id) for r in await request_rows(session)] == [
            expired.json()["request_id"]
        ]
        # A key still within its retention replays whatever was stored, untouched.
        assert live.status_code == 201
        assert live.headers[REPLAYED] == "true"
        assert live.content == stale


class TestConcurrentDuplicates:
    """25 parallel POSTs with one key against the real server (two uvicorn processes)."""

    N = 25

    async def test_identical_posts_create_one_request_and_all_answer_with_it(
        self,
        server: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        await publish(server, admin_headers, [stage(1, ["alice"])], key=KEY)
        caller = bearer(token("registry-svc", azp="registry"))

        responses = await asyncio.gather(
            *(post(server, caller, "burst", request_body()) for _ in range(self.N))
        )

        assert {r.status_code for r in responses} <= {201, 409}, [
            r.text for r in responses
        ]
        for response in responses:
            if response.status_code == 409:
                assert problem_code(response) == "idempotency_in_flight"
        created = [r for r in responses if r.status_code == 201]
        originals = [r for r in created if REPLAYED not in r.headers]
        assert len(originals) == 1
        assert {r.content for r in created} == {originals[0].content}
        [row] = await request_rows(session)
        assert str(row.id) == originals[0].json()["request_id"]
        assert len(await key_rows(session)) == 1

    async def test_a_different_body_in_the_burst_never_creates_a_second_request(
        self,
        server: httpx.AsyncClient,
        session: AsyncSession,
        admin_headers: Headers,
        token: TokenFactory,
    ) -> None:
        # Whichever call claims the key first creates the request. Every other call with the same
        # body replays it; every call with the other body is refused as a reused key (whichever
        # side the odd one is on). In flight, 409 is also allowed. Never a second request, never
        # a 500.
        await publish(server, admin_headers, [stage(1, ["alice"])], key=KEY)
        caller = bearer(token("registry-svc", azp="registry"))
        odd = self.N // 2
        bodies = [request_body("cr-odd" if n == odd else "cr-1") for n in range(self.N)]

        responses = await asyncio.gather(
            *(post(server, caller, "burst", body) for body in bodies)
        )

        originals = [
            (n, r)
            for n, r in enumerate(responses)
            if r.status_code == 201 and REPLAYED not in r.headers
        ]
        assert len(originals) == 1, [r.text for r in responses]
        winner, first = originals[0]
        for n, response in enumerate(responses):
            if n == winner:
                continue
            if response.status_code == 409:
                assert problem_code(response) == "idempotency_in_flight"
            elif bodies[n] == bodies[winner]:
                assert response.status_code == 201, response.text
                assert response.headers[REPLAYED] == "true"
                assert response.content == first.content
            else:
                assert response.status_code == 422, response.text
                assert problem_code(response) == "idempotency_key_reused"
        [row] = await request_rows(session)
        assert str(row.id) == first.json()["request_id"]
        assert row.artifact_id == bodies[winner]["artifact_id"]
