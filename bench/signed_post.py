"""The bare signed-POST loop: the callback baseline (what one process can sign and POST).

    BENCH_WEBHOOK_SECRET=whsec_... python bench/signed_post.py --url URL --body-file F \
        [--concurrency 10] [--seconds 20]

Posts one real delivery body (captured by the receiver from the worker's own deliveries) again
and again for `--seconds`, each attempt signed afresh with the service's signing code
(`countersign.webhooks.signing.sign_headers`: both signature schemes, a new timestamp each time),
from `--concurrency` tasks sharing one httpx client, the way a worker with one shared client and
concurrent deliveries would. No database, no queue: the ceiling for "callbacks per second into
this receiver". Prints `{"sent", "ok", "failed", "seconds"}` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx

from countersign.webhooks.signing import USER_AGENT, sign_headers


async def run(
    url: str, body: bytes, concurrency: int, seconds: float
) -> dict[str, float | None]:
    secret = os.environ["BENCH_WEBHOOK_SECRET"]
    event_id = str(json.loads(body)["event_id"])
    counts = {"sent": 0, "ok": 0, "failed": 0}
    latencies: list[float] = []
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency
    )
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        deadline = time.monotonic() + seconds

        async def loop() -> None:
            while time.monotonic() < deadline:
                headers = sign_headers(
                    event_id=event_id,
                    timestamp=int(time.time()),
                    body=body,
                    secrets=[secret],
                    user_agent=USER_AGENT,
                )
                counts["sent"] += 1
                sent = time.monotonic()
                try:
                    response = await client.post(url, content=body, headers=headers)
                    latencies.append(time.monotonic() - sent)
                    counts["ok" if response.is_success else "failed"] += 1
                except httpx.HTTPError:
                    counts["failed"] += 1

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else None
    return {**counts, "seconds": elapsed, "p50_ms": p50}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    arguments = parser.parse_args()
    result = asyncio.run(
        run(
            arguments.url,
            arguments.body_file.read_bytes(),
            arguments.concurrency,
            arguments.seconds,
        )
    )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
