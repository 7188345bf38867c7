"""Fixtures for delegation tests: a service clock of the test's own, and a flow over HTTP.

Delegation windows are compared with the service clock (`countersign.kit.clock.now()`), so tests
place windows relative to it and move it with `clock.advance` to be before, in and after them.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import Flow


@pytest.fixture(autouse=True)
def service_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own service clock, at offset zero."""
    path = tmp_path / "clock"
    monkeypatch.setenv("COUNTERSIGN_CLOCK_FILE", str(path))
    return path


@pytest.fixture
def flow(
    client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    return Flow(client, admin_headers, token)
