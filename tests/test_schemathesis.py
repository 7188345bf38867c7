"""A bounded schemathesis run over every operation of /v1/openapi.json (issue 10, item 7).

Against the real service (uvicorn, two worker processes, on the suite's PostgreSQL database), with
a valid admin, caller and approver token in turn. The checks are `not_a_server_error` (no 5xx,
whatever the input) and `response_schema_conformance` (every answer matches what the document
declares for it), so both bad input and a drifting document fail the suite.

Bounded and repeatable: deterministic generation (no seed, no example database: the same cases on
every run), the coverage phase (boundary values, wrong types, over-long strings, out-of-range
integers: what found the 500s) for the admin, who reaches every operation, and a short fuzzing
phase for each token. Around a minute on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import CALLER_CLIENT, CALLER_ID
from tests.fixtures.server import LiveServer, live_server_fixture  # noqa: F401

pytestmark = pytest.mark.slow

CHECKS = "not_a_server_error,response_schema_conformance"
# The coverage phase otherwise also sends every undeclared method to every path (405s, tested
# in test_errors.py); leaving them out halves the run.
CONFIG = """\
[phases.coverage]
unexpected-methods = []
"""
RUN_DEADLINE_SECONDS = 600


def st_command() -> list[str]:
    st = Path(sys.executable).with_name("st")
    return [str(st)] if st.exists() else [shutil.which("st") or "st"]


async def schemathesis(
    base_url: str,
    token: str,
    tmp_path: Path,
    *,
    phases: str,
    max_examples: int,
    exclude_path_regex: str | None = None,
) -> tuple[int, str]:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    args = [
        *st_command(),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{base_url}/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--phases",
        phases,
        "--max-examples",
        str(max_examples),
        "--generation-deterministic",  # implies no example database
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--max-failures",
        "20",
        "--warnings",
        "off",
        "--output-truncate",
        "false",
    ]
    if exclude_path_regex:
        args += ["--exclude-path-regex", exclude_path_regex]
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(
            process.communicate(), timeout=RUN_DEADLINE_SECONDS
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"schemathesis did not finish within {RUN_DEADLINE_SECONDS}s")
    return process.returncode or 0, output.decode(errors="replace")


def assert_clean(returncode: int, output: str, server: LiveServer) -> None:
    assert "Tested: 0" not in output, output
    assert returncode == 0, (
        f"{output[-20000:]}\n--- server log ---\n{server.log()[-5000:]}"
    )


async def test_every_operation_with_an_admin_token(
    live_server: LiveServer,
    clean_database: None,
    token: TokenFactory,
    tmp_path: Path,
) -> None:
    returncode, output = await schemathesis(
        live_server.base_url,
        token("admin-ann", roles=["AWE_ADMIN"]),
        tmp_path,
        phases="coverage,fuzzing",
        max_examples=10,
    )

    assert_clean(returncode, output, live_server)
    assert "Selected: " in output


@pytest.mark.parametrize(
    "who",
    [
        pytest.param({"sub": CALLER_ID, "azp": CALLER_CLIENT}, id="caller"),
        pytest.param({"sub": "alice"}, id="approver"),
    ],
)
async def test_every_operation_with_a_caller_or_approver_token(
    live_server: LiveServer,
    clean_database: None,
    token: TokenFactory,
    tmp_path: Path,
    who: dict[str, str],
) -> None:
    returncode, output = await schemathesis(
        live_server.base_url,
        token(who["sub"], azp=who.get("azp")),
        tmp_path,
        phases="fuzzing",
        max_examples=5,
    )

    assert_clean(returncode, output, live_server)
