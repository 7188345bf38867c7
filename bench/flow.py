"""Request-flow throughput: create a request, then two decisions, over real HTTP on PostgreSQL.

Starts `countersign serve` (one process, the production code path, no in-process worker) against a
fresh database `countersign_bench_flow`, publishes a two-stage policy, then drives it with
concurrent clients and prints requests per second for creation alone and for the full flow
(create + approve stage 1 + approve stage 2), with latency percentiles.

    .venv/bin/python bench/flow.py [--flows 400] [--concurrency 16]

Figures go to bench/README.md by hand, with the date and machine; never into the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

PG = os.environ.get("COUNTERSIGN_BENCH_PG_URL", "postgresql://root@127.0.0.1:5432")
DATABASE = "countersign_bench_flow"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def fresh_database() -> str:
    connection = await asyncpg.connect(f"{PG}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await connection.close()
    return f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{DATABASE}"


def token(env: dict[str, str], sub: str, *roles: str, azp: str | None = None) -> str:
    args = [str(BIN / "countersign"), "token", "--sub", sub]
    for role in roles:
        args += ["--role", role]
    if azp:
        args += ["--azp", azp]
    return subprocess.run(
        args, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


async def main(flows: int, concurrency: int) -> None:
    url = await fresh_database()
    data_dir = tempfile.mkdtemp(prefix="countersign-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env.update(
        COUNTERSIGN_DATABASE_URL=url,
        COUNTERSIGN_DATA_DIR=data_dir,
        COUNTERSIGN_WORKER_IN_PROCESS="false",
        COUNTERSIGN_LOG_LEVEL="WARNING",
    )
    port = free_port()
    # A long-lived child started once before timing begins; blocking here costs nothing.
    server = subprocess.Popen(  # noqa: ASYNC220
        [str(BIN / "countersign"), "serve", "--port", str(port)], env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for _ in range(300):
                try:
                    if (await client.get("/v1/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            admin = {"Authorization": f"Bearer {token(env, 'admin', 'AWE_ADMIN')}"}
            caller = {
                "Authorization": f"Bearer {token(env, 'registry-svc', azp='registry')}"
            }
            alice = {"Authorization": f"Bearer {token(env, 'alice')}"}
            carol = {"Authorization": f"Bearer {token(env, 'carol')}"}
            policy = {
                "policy_key": "bench.flow",
                "name": "bench",
                "artifact_type": "bench.flow",
                "stages": [
                    {
                        "stage_order": 1,
                        "name": "one",
                        "mode": "any-n",
                        "rules": [
                            {"rule_type": "user", "rule_value": {"user_id": "alice"}},
                            {"rule_type": "user", "rule_value": {"user_id": "bob"}},
                        ],
                    },
                    {
                        "stage_order": 2,
                        "name": "two",
                        "mode": "all",
                        "rules": [
                            {"rule_type": "user", "rule_value": {"user_id": "carol"}},
                        ],
                    },
                ],
            }
            assert (
                await client.post("/v1/policies", json=policy, headers=admin)
            ).status_code == 201
            assert (
                await client.post(
                    "/v1/policies/bench.flow/versions/1/activate", headers=admin
                )
            ).status_code == 200

            create_times: list[float] = []
            flow_times: list[float] = []
            semaphore = asyncio.Semaphore(concurrency)

            async def one(n: int) -> None:
                async with semaphore:
                    started = time.perf_counter()
                    created = await client.post(
                        "/v1/requests",
                        json={
                            "policy_key": "bench.flow",
                            "artifact_type": "bench.flow",
                            "artifact_id": f"a-{n}",
                        },
                        headers=caller,
                    )
                    create_times.append(time.perf_counter() - started)
                    body = created.json()
                    task = next(
                        t["id"] for t in body["tasks"] if t["assignee"] == "alice"
                    )
                    first = await client.post(
                        f"/v1/tasks/{task}/decision",
                        json={"action": "approve"},
                        headers=alice,
                    )
                    assert first.status_code == 201, first.text
                    inbox = await client.get(
                        "/v1/tasks",
                        params={"request_id": body["request_id"]},
                        headers=carol,
                    )
                    second_task = inbox.json()["items"][0]["id"]
                    second = await client.post(
                        f"/v1/tasks/{second_task}/decision",
                        json={"action": "approve"},
                        headers=carol,
                    )
                    assert second.json()["request_status"] == "approved", second.text
                    flow_times.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(one(n) for n in range(flows)))
            elapsed = time.perf_counter() - started
        print(f"{flows} flows, concurrency {concurrency}, {elapsed:.1f} s")  # noqa: T201
        print(f"full flows per second: {flows / elapsed:.1f} (4 HTTP calls each)")  # noqa: T201
        print(f"create latency: {percentiles(create_times)}")  # noqa: T201
        print(f"flow latency:   {percentiles(flow_times)}")  # noqa: T201
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flows", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.flows, arguments.concurrency))
