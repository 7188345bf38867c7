"""Creating delegation windows relative to the service clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from countersign.kit import clock
from tests.fixtures.flows import Body, Flow, Headers


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def window_body(
    delegate_to: str,
    *,
    starts_in_hours: float = -1,
    lasts_hours: float = 24,
    **fields: Any,
) -> Body:
    """A window starting `starts_in_hours` from the service's now (negative: already open)."""
    starts_at = clock.now() + timedelta(hours=starts_in_hours)
    return {
        "delegate_to": delegate_to,
        "starts_at": iso(starts_at),
        "ends_at": iso(starts_at + timedelta(hours=lasts_hours)),
        **fields,
    }


async def post_window(
    client: httpx.AsyncClient, headers: Headers, body: Body
) -> httpx.Response:
    return await client.post("/v1/delegations", json=body, headers=headers)


async def open_window(
    flow: Flow,
    user: str,
    delegate_to: str,
    *,
    starts_in_hours: float = -1,
    lasts_hours: float = 24,
) -> Body:
    """`user` delegates to `delegate_to` with their own token; insists on 201."""
    response = await post_window(
        flow.client,
        flow.user(user),
        window_body(
            delegate_to, starts_in_hours=starts_in_hours, lasts_hours=lasts_hours
        ),
    )
    assert response.status_code == 201, response.text
    created: Body = response.json()
    return created
