"""A bounded schemathesis run over every operation of /v1/openapi.json (issue 10, item 7).

Against the real service (uvicorn, two worker processes, on the suite's PostgreSQL database), with
a valid admin, caller and approver token in turn. The checks are `not_a_server_error` (no 5xx,
whatever the input) and `response_schema_conformance` (every answer matches what the document
declares for it), so both bad input and a drifting document fail the suite.

Bounded and repeatable: deterministic generation (derandomized: no seed, no example database, the
same cases on every run), the coverage phase (boundary values, wrong types, over-long strings,
out-of-range integers, NUL bytes: what found the 500s) for the admin, who reaches every operation,
and a short fuzzing phase for the caller and the approver. About 2 000 requests: one to two
minutes on a busy 2-core machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import CALLER_CLIENT, CALLER_ID
from tests.fixtures.server import LiveServer, live_server_fixture  # noqa: F401

pytestmark = pytest.mark.slow

CHECKS = "not_a_server_error,response_schema_conformance"
# The coverage phase otherwise also sends every undeclared method to every path (405s, tested in
# test_errors.py). PUT /v1/policies/{key} takes POST /v1/policies's body, whose ~330 coverage cases
# run there; fuzzing still sends it bodies. Together they take the run from ~2200 cases to ~1900.
CONFIG = """\
[phases.coverage]
unexpected-methods = []

[[operations]]
include-name = "PUT /v1/policies/{policy_key}"
phases.coverage.enabled = false
"""
RUN_DEADLINE_SECONDS = 600


def st_command() -> list[str]:
    st = Path(sys.executable).with_name("st")
    return [str(st)] if st.exists() else [shutil.which("st") or "st"]


@dataclass(frozen=True)
class Run:
    """One `st run`: a token, the phases, and which operations."""

    name: str
    token: str
    phases: str
    max_examples: int
    include_path_regex: str | None = None
    exclude_path_regex: str | None = None


@pytest.fixture
def st_config(tmp_path: Path) -> Path:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    return config


async def schemathesis(base_url: str, run: Run, config: Path) -> tuple[int, str]:
    args = [
        *st_command(),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{base_url}/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {run.token}",
        "--checks",
        CHECKS,
        "--phases",
        run.phases,
        "--max-examples",
        str(run.max_examples),
        "--generation-deterministic",  # implies no example database
        # One thread per run: Hypothesis's lambda descriptions are not thread-safe on CPython
        # 3.11 ("AST constructor recursion depth mismatch"). Runs go in parallel as processes.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--max-failures",
        "20",
        "--warnings",
        "off",
        "--output-truncate",
        "false",
    ]
    if run.include_path_regex:
        args += ["--include-path-regex", run.include_path_regex]
    if run.exclude_path_regex:
        args += ["--exclude-path-regex", run.exclude_path_regex]
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=config.parent,
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
        pytest.fail(
            f"schemathesis ({run.name}) did not finish in {RUN_DEADLINE_SECONDS}s"
        )
    return process.returncode or 0, output.decode(errors="replace")


async def test_every_operation_answers_without_5xx_and_as_declared(
    live_server: LiveServer,
    clean_database: None,
    token: TokenFactory,
    st_config: Path,
) -> None:
    admin = token("admin-ann", roles=["AWE_ADMIN"])
    # Operations that only admins may call answer others 403 before reading any input.
    admin_only = "^/v1/(admin|policies)"
    runs = [
        # The admin reaches every operation: the coverage phase over all of them, in three
        # processes (the policy bodies are most of the cases) so that both cores are used.
        Run(
            "admin: policies",
            admin,
            "coverage",
            1,
            include_path_regex=r"^/v1/policies(/\{policy_key\})?$",
        ),
        Run(
            "admin: policy versions",
            admin,
            "coverage",
            1,
            include_path_regex="^/v1/policies/.+/versions",
        ),
        Run(
            "admin: the rest", admin, "coverage", 1, exclude_path_regex="^/v1/policies"
        ),
        # Callers and approvers: a short fuzzing phase over what they may call.
        Run(
            "caller",
            token(CALLER_ID, azp=CALLER_CLIENT),
            "fuzzing",
            3,
            exclude_path_regex=admin_only,
        ),
        Run("approver", token("alice"), "fuzzing", 3, exclude_path_regex=admin_only),
    ]

    results = await asyncio.gather(
        *(schemathesis(live_server.base_url, run, st_config) for run in runs)
    )

    failed = [
        f"===== {run.name} =====\n{output[-15000:]}"
        for run, (returncode, output) in zip(runs, results, strict=True)
        if returncode != 0 or "Tested: 0" in output
    ]
    assert not failed, (
        "\n".join(failed) + f"\n--- server log ---\n{live_server.log()[-5000:]}"
    )
    tested = sum(
        int(output.split("Tested: ", 1)[1].split()[0]) for _, output in results
    )
    assert tested >= 50 + 2 * 20, [output[-2000:] for _, output in results]
