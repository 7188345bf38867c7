"""Fixtures every webhook test module shares: a loopback receiver, the admin API, a one-stage flow."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import Flow, stage
from tests.fixtures.worker import WebhookAdmin
from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def admin(api: httpx.AsyncClient, admin_headers: dict[str, str]) -> WebhookAdmin:
    return WebhookAdmin(api, admin_headers)


@pytest.fixture
async def flow(
    api: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    """One stage, alice approves; the caller is the `registry` client."""
    flow = Flow(api, admin_headers, token)
    await flow.publish([stage(1, ["alice"])])
    return flow
