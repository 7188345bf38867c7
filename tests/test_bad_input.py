"""Bad input is a 422 `validation_failed`, never a 500 (issue 10, item 7).

Each case was a 500 before: PostgreSQL (asyncpg) refused the value deep inside a query. Now the
edge refuses it: integers beyond an INTEGER column, naive or out-of-range datetimes (in filters
and in forged cursors), text PostgreSQL cannot store (NUL, lone UTF-16 surrogates) anywhere in a
path, query or JSON body, strings longer than their column, and a PATCH that is valid on its own
but not once merged into the draft.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.models import ApprovalRequest, Policy
from tests.fixtures.client import TokenFactory, bearer
from tests.fixtures.flows import CALLER_CLIENT, CALLER_ID, publish, stage

Headers = dict[str, str]
KEY = "bad.input"
TOO_BIG = 2**31  # one past INTEGER's maximum


def assert_validation_failed(response: httpx.Response, pointer: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert problem["errorCode"] == "AWE-010"
    assert pointer in {e.get("pointer") for e in problem["errors"]}, problem


def forged(values: list[Any]) -> str:
    raw = json.dumps(values).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture
def caller(token: TokenFactory) -> Headers:
    return bearer(token(CALLER_ID, azp=CALLER_CLIENT))


class TestIntegersBeyondTheirColumn:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", f"/v1/policies/{KEY}/versions/{TOO_BIG}"),
            ("PATCH", f"/v1/policies/{KEY}/versions/{TOO_BIG}"),
            ("POST", f"/v1/policies/{KEY}/versions/{TOO_BIG}/activate"),
            ("POST", f"/v1/policies/{KEY}/versions/{TOO_BIG}/deactivate"),
            ("POST", f"/v1/policies/{KEY}/versions/{TOO_BIG}/simulate"),
            ("POST", f"/v1/policies/{KEY}/versions/{TOO_BIG}/replay"),
            ("GET", f"/v1/policies/{KEY}/versions/{TOO_BIG}/diagram.svg"),
            ("GET", f"/v1/policies/{KEY}/versions/1/diff/{TOO_BIG}"),
        ],
    )
    async def test_a_policy_version_beyond_the_column_range(
        self, client: httpx.AsyncClient, admin_headers: Headers, method: str, path: str
    ) -> None:
        body: dict[str, Any] | None = {} if method in {"PATCH", "POST"} else None
        response = await client.request(method, path, json=body, headers=admin_headers)

        pointer = "/b" if "/diff/" in path else "/version"
        assert_validation_failed(response, pointer)

    async def test_a_page_whose_offset_is_beyond_bigint(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get(
            "/v1/tasks", params={"page": 2**62, "page_size": 100}, headers=admin_headers
        )

        assert_validation_failed(response, "/page")

    @pytest.mark.parametrize(
        ("field", "value"),
        [("priority", TOO_BIG), ("stages/0/stage_order", TOO_BIG)],
    )
    async def test_policy_integers_beyond_the_column_range(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        session: AsyncSession,
        field: str,
        value: int,
    ) -> None:
        body: dict[str, Any] = {
            "policy_key": KEY,
            "name": KEY,
            "artifact_type": KEY,
            "stages": [stage(1, ["alice"])],
        }
        if field == "priority":
            body["priority"] = value
        else:
            body["stages"][0]["stage_order"] = value

        response = await client.post("/v1/policies", json=body, headers=admin_headers)

        assert_validation_failed(response, f"/{field}")
        assert (await session.scalar(select(func.count()).select_from(Policy))) == 0

    async def test_sla_hours_that_overflow_a_date(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        body = {
            "policy_key": KEY,
            "name": KEY,
            "artifact_type": KEY,
            "stages": [{**stage(1, ["alice"]), "sla_hours": 1e300}],
        }

        response = await client.post("/v1/policies", json=body, headers=admin_headers)

        assert_validation_failed(response, "/stages/0/sla_hours")


class TestDatetimes:
    @pytest.mark.parametrize(
        ("path", "name"),
        [
            ("/v1/requests", "created_after"),
            ("/v1/requests", "created_before"),
            ("/v1/admin/audit", "since"),
            ("/v1/admin/audit", "until"),
        ],
    )
    @pytest.mark.parametrize(
        "value",
        [
            "2026-01-01T00:00:00",  # naive
            "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
            "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        ],
    )
    async def test_naive_or_out_of_range_filters(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        path: str,
        name: str,
        value: str,
    ) -> None:
        response = await client.get(path, params={name: value}, headers=admin_headers)

        assert_validation_failed(response, f"/{name}")

    async def test_an_aware_filter_still_works(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get(
            "/v1/requests",
            params={"created_after": "2026-01-01T05:00:00+05:00"},
            headers=admin_headers,
        )

        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        "path",
        [
            "/v1/requests",
            "/v1/tasks",
            "/v1/admin/audit",
            "/v1/admin/deliveries",
            "/v1/delegations",
        ],
    )
    @pytest.mark.parametrize(
        "cursor",
        [
            forged(["2026-01-01T00:00:00", "6d0f7c1e-0000-4000-8000-000000000000"]),
            forged(
                ["0001-01-01T00:00:00+01:00", "6d0f7c1e-0000-4000-8000-000000000000"]
            ),
            forged(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
            forged([{"a": 1}, []]),
        ],
    )
    async def test_forged_keyset_cursors(
        self, client: httpx.AsyncClient, admin_headers: Headers, path: str, cursor: str
    ) -> None:
        response = await client.get(
            path, params={"cursor": cursor}, headers=admin_headers
        )

        assert_validation_failed(response, "/cursor")

    @pytest.mark.parametrize(
        "cursor", [forged(["a\u0000b"]), forged(["\ud800"]), forged([["x"]])]
    )
    async def test_forged_policy_cursors(
        self, client: httpx.AsyncClient, admin_headers: Headers, cursor: str
    ) -> None:
        response = await client.get(
            "/v1/policies", params={"cursor": cursor}, headers=admin_headers
        )

        assert_validation_failed(response, "/cursor")

    async def test_recover_with_a_naive_window(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.post(
            "/v1/admin/deliveries/recover",
            json={"since": "2026-01-01T00:00:00", "until": "2026-01-02T00:00:00Z"},
            headers=admin_headers,
        )

        assert_validation_failed(response, "/since")


class TestUnstorableText:
    @pytest.fixture
    async def policy(self, client: httpx.AsyncClient, admin_headers: Headers) -> None:
        await publish(client, admin_headers, [stage(1, ["alice"])], key=KEY)

    @pytest.mark.parametrize(
        ("raw_context", "pointer"),
        [
            ('{"note": "\\ud800"}', "/context/note"),  # lone high surrogate
            ('{"note": "x\\udc00y"}', "/context/note"),  # lone low surrogate
            ('{"note": "a\\u0000b"}', "/context/note"),  # NUL
            ('{"\\ud800": 1}', "/context/\\ud800"),  # in a key, spelled out
            ('{"list": [1, {"deep": "\\u0000"}]}', "/context/list/1/deep"),
        ],
    )
    async def test_in_the_context_of_a_new_request(
        self,
        client: httpx.AsyncClient,
        caller: Headers,
        session: AsyncSession,
        policy: None,
        raw_context: str,
        pointer: str,
    ) -> None:
        raw = (
            f'{{"policy_key": "{KEY}", "artifact_type": "{KEY}", '
            f'"artifact_id": "a-1", "context": {raw_context}}}'
        )

        response = await client.post(
            "/v1/requests",
            content=raw.encode(),
            headers={**caller, "Content-Type": "application/json"},
        )

        assert_validation_failed(response, pointer)
        assert (
            await session.scalar(select(func.count()).select_from(ApprovalRequest))
        ) == 0

    async def test_a_surrogate_pair_is_an_ordinary_character(
        self, client: httpx.AsyncClient, caller: Headers, policy: None
    ) -> None:
        raw = (
            f'{{"policy_key": "{KEY}", "artifact_type": "{KEY}", '
            f'"artifact_id": "a-1", "context": {{"emoji": "\\ud83d\\ude00"}}}}'
        )

        response = await client.post(
            "/v1/requests",
            content=raw.encode(),
            headers={**caller, "Content-Type": "application/json"},
        )

        assert response.status_code == 201, response.text

    async def test_in_a_decision_comment(
        self, client: httpx.AsyncClient, token: TokenFactory
    ) -> None:
        response = await client.post(
            "/v1/tasks/6d0f7c1e-0000-4000-8000-000000000000/decision",
            content=b'{"action": "approve", "comment": "ok\\u0000"}',
            headers={**bearer(token("alice")), "Content-Type": "application/json"},
        )

        assert_validation_failed(response, "/comment")

    @pytest.mark.parametrize(
        ("path", "params", "pointer"),
        [
            ("/v1/tasks", {"assignee": "a\x00b", "request_id": None}, "/assignee"),
            ("/v1/requests", {"artifact_id": "a\x00"}, "/artifact_id"),
            ("/v1/admin/audit", {"actor": "\x00"}, "/actor"),
        ],
    )
    async def test_in_a_query(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        path: str,
        params: dict[str, Any],
        pointer: str,
    ) -> None:
        params = {
            k: (v if v is not None else "6d0f7c1e-0000-4000-8000-000000000000")
            for k, v in params.items()
        }
        response = await client.get(path, params=params, headers=admin_headers)

        assert_validation_failed(response, pointer)

    async def test_in_a_path(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        response = await client.get(
            "/v1/policies/a%00b/versions", headers=admin_headers
        )

        assert_validation_failed(response, "/policy_key")


class TestStringsLongerThanTheirColumn:
    @pytest.mark.parametrize(
        ("field", "length"),
        [
            ("name", 501),
            ("artifact_type", 201),
            ("stages/0/name", 501),
            # Fits its column, but not the audit entry's `<key>@<version>` (VARCHAR(200)).
            ("policy_key", 200),
        ],
    )
    async def test_policy_strings(
        self,
        client: httpx.AsyncClient,
        admin_headers: Headers,
        field: str,
        length: int,
    ) -> None:
        body: dict[str, Any] = {
            "policy_key": KEY,
            "name": KEY,
            "artifact_type": KEY,
            "stages": [stage(1, ["alice"])],
        }
        if field.startswith("stages/"):
            body["stages"][0]["name"] = "x" * length
        else:
            body[field] = "x" * length

        response = await client.post("/v1/policies", json=body, headers=admin_headers)

        assert_validation_failed(response, f"/{field}")


class TestPatch:
    async def test_a_patch_that_breaks_the_merged_policy(
        self, client: httpx.AsyncClient, admin_headers: Headers
    ) -> None:
        created = await client.post(
            "/v1/policies",
            json={"policy_key": KEY, "name": KEY, "artifact_type": KEY},
            headers=admin_headers,
        )
        assert created.status_code == 201, created.text

        # Valid as a patch (every field is optional), not as a policy: `name` is required.
        response = await client.patch(
            f"/v1/policies/{KEY}/versions/1", json={"name": None}, headers=admin_headers
        )

        assert_validation_failed(response, "/name")
        again = await client.get(
            f"/v1/policies/{KEY}/versions/1", headers=admin_headers
        )
        assert again.json()["name"] == KEY
