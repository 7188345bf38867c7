"""The callback receiver: one process that both the worker and the bare signed-POST loop post to.

    python bench/receiver.py --host 192.0.2.2 --port 8200   # BENCH_WEBHOOK_SECRET in the environment

A plain ASGI app under uvicorn (no framework), so the receiver costs the same for every sender:

- `POST /callback`: checks the Standard Webhooks signature (`verify_standard`, the reference
  verifier of countersign.webhooks.signing) with the caller secret, notes the arrival time
  (`time.monotonic()`, which is the same clock in every process of the machine), the event type
  and request id; answers 200 with an empty body.
- `GET /stats?since=&until=`: `{"received", "valid", "invalid", "in_window", "first", "last"}`
  (`in_window` = arrivals with since <= t < until, monotonic seconds).
- `GET /wait?request_id=&types=a,b&timeout=`: waits until a callback of one of `types` for that
  request has arrived; `{"received_at", "event_type"}`, or 504 after `timeout` seconds.
- `GET /sample?type=`: the last body received of that event type (the bare loop posts it).
- `POST /reset`: forgets every arrival.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from countersign.webhooks.signing import verify_standard

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

TERMINAL_WAIT_SECONDS = 30.0


class Receiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.arrivals: list[float] = []
        self.valid = 0
        self.invalid = 0
        # (request_id, event_type) -> arrival time; only the event types someone may wait for.
        self.seen: dict[tuple[str, str], float] = {}
        self.waiters: dict[tuple[str, str], list[asyncio.Future[float]]] = {}
        self.samples: dict[str, bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        if scope["method"] == "POST" and path == "/callback":
            body = await _read_body(receive)
            self._note(scope, body)
            await _answer(send, 200, b"")
        elif path == "/stats":
            await _answer(send, 200, self._stats(query))
        elif path == "/wait":
            await self._wait(send, query)
        elif path == "/sample":
            sample = self.samples.get(query.get("type", ""), b"")
            await _answer(send, 200 if sample else 404, sample)
        elif scope["method"] == "POST" and path == "/reset":
            await _read_body(receive)
            self.arrivals.clear()
            self.valid = self.invalid = 0
            self.seen.clear()
            await _answer(send, 200, b"{}")
        else:
            await _answer(send, 404, b"")

    def _note(self, scope: Scope, body: bytes) -> None:
        received_at = time.monotonic()
        self.arrivals.append(received_at)
        headers = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
        }
        if verify_standard(self.secret, headers, body, now=int(time.time())):
            self.valid += 1
        else:
            self.invalid += 1
        try:
            document = json.loads(body)
            key = (str(document["request_id"]), str(document["event_type"]))
        except (ValueError, KeyError, TypeError):
            return
        self.samples[key[1]] = body
        self.seen.setdefault(key, received_at)
        for future in self.waiters.pop(key, []):
            if not future.done():
                future.set_result(received_at)

    def _stats(self, query: dict[str, str]) -> bytes:
        since = float(query.get("since", "0"))
        until = float(query.get("until", "inf"))
        in_window = bisect.bisect_left(self.arrivals, until) - bisect.bisect_left(
            self.arrivals, since
        )
        return json.dumps(
            {
                "received": len(self.arrivals),
                "valid": self.valid,
                "invalid": self.invalid,
                "in_window": in_window,
                "first": self.arrivals[0] if self.arrivals else None,
                "last": self.arrivals[-1] if self.arrivals else None,
            }
        ).encode()

    async def _wait(self, send: Send, query: dict[str, str]) -> None:
        request_id = query["request_id"]
        types = query.get("types", "").split(",")
        timeout = float(query.get("timeout", TERMINAL_WAIT_SECONDS))
        for event_type in types:
            if (request_id, event_type) in self.seen:
                answer = {
                    "received_at": self.seen[(request_id, event_type)],
                    "event_type": event_type,
                }
                await _answer(send, 200, json.dumps(answer).encode())
                return
        loop = asyncio.get_running_loop()
        futures = {t: loop.create_future() for t in types}
        for event_type, future in futures.items():
            self.waiters.setdefault((request_id, event_type), []).append(future)
        done, _ = await asyncio.wait(
            futures.values(), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for future in futures.values():
            future.cancel()
        if not done:
            await _answer(send, 504, b"{}")
            return
        event_type = next(t for t, f in futures.items() if f in done)
        answer = {"received_at": futures[event_type].result(), "event_type": event_type}
        await _answer(send, 200, json.dumps(answer).encode())


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8200)
    arguments = parser.parse_args()
    app = Receiver(os.environ["BENCH_WEBHOOK_SECRET"])
    uvicorn.run(
        app,
        host=arguments.host,
        port=arguments.port,
        log_level="warning",
        access_log=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
