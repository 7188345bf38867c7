"""A loopback webhook receiver for tests: records every call, answers as scripted.

    with Receiver() as receiver:
        receiver.reply(Reply(500), Reply(500), event_type="request_created")
        ...  # point a request's callback_url at receiver.url
        calls = await receiver.wait_for(lambda calls: len(calls) >= 3)

It is a real HTTP server (ThreadingHTTPServer on 127.0.0.1, port 0, in a daemon thread), so the
worker's real client, transport and outbound guard are exercised. Every call is recorded with its
headers exactly as received and the raw body bytes, whatever it was answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks.webhooks import Webhook

DEFAULT_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one call."""

    status: int = 204
    headers: Mapping[str, str] = field(default_factory=dict)
    # Seconds to wait before answering (a slow receiver; cut short when the receiver stops).
    delay: float = 0.0
    # The answer's body, then `padding` more bytes (b".") written as fast as the client takes
    # them: a huge answer without holding it in memory here.
    body: bytes = b""
    padding: int = 0
    # Seconds between single bytes of the answer (a dripping receiver): from the status line on,
    # or from the body on when `drip_after_headers`.
    drip: float = 0.0
    drip_after_headers: bool = False

    @property
    def raw(self) -> bool:
        return bool(self.body or self.padding or self.drip)


def retry_after(seconds: int, status: int = 503) -> Reply:
    return Reply(status, {"Retry-After": str(seconds)})


def abort(status: int = 500) -> Reply:
    """The Standard Webhooks way to say "stop retrying this message"."""
    return Reply(status, {"webhook-delivery": "abort-message"})


@dataclass(frozen=True)
class Call:
    """One request the receiver got, and what it answered."""

    method: str
    path: str
    # Header names as sent (case kept); look them up with `header()`.
    headers: dict[str, str]
    body: bytes
    # The status the receiver answered (or, after a scripted delay, tried to answer).
    answered: int
    received_at: float  # time.monotonic()

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    @cached_property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def event_id(self) -> str:
        return str(self.json["event_id"])

    @property
    def event_type(self) -> str:
        return str(self.json["event_type"])

    @property
    def request_id(self) -> str:
        return str(self.json["request_id"])

    @property
    def sequence(self) -> int:
        return int(self.json["sequence"])

    @property
    def delivered(self) -> bool:
        return 200 <= self.answered < 300


Condition = Callable[[list["Call"]], bool]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # A worker opens many connections at once (one per destination slot); the default backlog of 5 would
    # drop SYNs and add the kernel's one-second retransmit to some deliveries.
    request_queue_size = 512


class Receiver:
    """Records calls and answers them from per-event-type scripts, then with `default`."""

    def __init__(
        self, host: str = "127.0.0.1", *, default: Reply | None = None
    ) -> None:
        self.host = host
        self.default = default or Reply()
        self.port = 0
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._scripts: dict[str | None, deque[Reply]] = {}
        self._broken = 0
        self._bytes_sent = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hooks/countersign"

    @property
    def calls(self) -> list[Call]:
        """Every call so far, in the order they arrived."""
        with self._lock:
            return list(self._calls)

    @property
    def broken(self) -> int:
        """Requests cut off before their body was complete (not recorded as calls)."""
        with self._lock:
            return self._broken

    @property
    def bytes_sent(self) -> int:
        """Bytes of answers (status line to body) written to clients that took them."""
        with self._lock:
            return self._bytes_sent

    def delivered(self) -> list[Call]:
        """The calls answered with a 2xx."""
        return [call for call in self.calls if call.delivered]

    def reply(self, *replies: Reply, event_type: str | None = None) -> None:
        """The next calls (for `event_type`, or for any event) get these answers, in order."""
        with self._lock:
            self._scripts.setdefault(event_type, deque()).extend(replies)

    async def wait_for(
        self, condition: Condition, *, within: float = DEFAULT_WAIT_SECONDS
    ) -> list[Call]:
        """Poll until `condition(calls)` holds; fail with what arrived if it does not in time."""
        deadline = time.monotonic() + within
        while True:
            calls = self.calls
            if condition(calls):
                return calls
            if time.monotonic() > deadline:
                summary = [(c.event_type, c.sequence, c.answered) for c in calls]
                raise AssertionError(
                    f"receiver condition not met within {within}s; got {len(calls)} call(s): {summary[:50]}"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def wait_for_delivered(
        self, count: int, *, within: float = DEFAULT_WAIT_SECONDS
    ) -> list[Call]:
        """Wait until `count` calls were answered with a 2xx; returns those calls."""
        await self.wait_for(
            lambda calls: sum(c.delivered for c in calls) >= count, within=within
        )
        return self.delivered()

    def start(self) -> Receiver:
        server = _Server((self.host, self.port), self._handler_class())
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"webhook-receiver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # cut scripted delays short
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _next_reply(self, body: bytes) -> Reply:
        try:
            event_type: str | None = json.loads(body).get("event_type")
        except (ValueError, AttributeError):
            event_type = None
        with self._lock:
            for key in (event_type, None):
                script = self._scripts.get(key)
                if script:
                    return script.popleft()
        return self.default

    def _count_broken(self) -> None:
        with self._lock:
            self._broken += 1

    def _count_sent(self, count: int) -> None:
        with self._lock:
            self._bytes_sent += count

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                received_at = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died mid-request (a killed worker): not a delivery.
                    owner._count_broken()
                    self.close_connection = True
                    return
                reply = owner._next_reply(body)
                # Recorded on arrival: a call counts as seen even if the client gives up waiting.
                owner._record(
                    Call(
                        method=self.command,
                        path=self.path,
                        headers=dict(self.headers.items()),
                        body=body,
                        answered=reply.status,
                        received_at=received_at,
                    )
                )
                if reply.delay:
                    owner._stopping.wait(reply.delay)
                if reply.raw:
                    self.close_connection = True
                    try:
                        self._write_raw(reply)
                    except OSError:
                        pass  # the client gave up and closed the connection
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if 300 <= reply.status < 400 and "Location" not in reply.headers:
                        self.send_header("Location", f"{owner.url}/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client timed out and left

            def _write_raw(self, reply: Reply) -> None:
                reason = self.responses.get(reply.status, ("",))[0]
                lines = [f"HTTP/1.1 {reply.status} {reason}"]
                lines += [f"{name}: {value}" for name, value in reply.headers.items()]
                lines.append(f"Content-Length: {len(reply.body) + reply.padding}")
                lines.append("Connection: close")
                head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
                if reply.drip and not reply.drip_after_headers:
                    self._drip(head + reply.body + b"." * reply.padding, reply.drip)
                    return
                self._send(head)
                if reply.drip:
                    self._drip(reply.body + b"." * reply.padding, reply.drip)
                    return
                self._send(reply.body)
                chunk = b"." * 65536
                left = reply.padding
                while left > 0 and not owner._stopping.is_set():
                    self._send(chunk[:left])
                    left -= min(left, len(chunk))

            def _drip(self, data: bytes, pause: float) -> None:
                for index in range(len(data)):
                    self._send(data[index : index + 1])
                    if owner._stopping.wait(pause):
                        return

            def _send(self, data: bytes) -> None:
                self.wfile.write(data)
                self.wfile.flush()
                owner._count_sent(len(data))

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler


# --- what a receiver checks -------------------------------------------------------------------


def verify_standard(call: Call, secret: str) -> Any:
    """Standard Webhooks verification exactly as a receiver runs it (5-minute tolerance).

    Raises `WebhookVerificationError` when no `v1` signature matches or the timestamp is stale.
    """
    return Webhook(secret).verify(call.body, call.headers)


def standard_signed_by(call: Call, secret: str) -> bool:
    """Whether one of the `v1` signatures is `secret`'s, computed by the `standardwebhooks` package.

    For tests that moved the service clock: the signature is checked, the timestamp's age is not
    (the package's `verify` compares it with the real time).
    """
    event_id, timestamp, signatures = (
        call.header("webhook-id"),
        call.header("webhook-timestamp"),
        call.header("webhook-signature"),
    )
    if not (event_id and timestamp and signatures):
        return False
    expected = Webhook(secret).sign(
        event_id, datetime.fromtimestamp(int(timestamp), UTC), call.body.decode()
    )
    return expected in signatures.split(" ")


def awe_signed_by(call: Call, secret: str) -> bool:
    """AWE's check: `X-Approval-Signature: sha256=<hex HMAC(secret, "<ts>." + body)>`."""
    timestamp = call.header("X-Approval-Timestamp")
    assert timestamp, call.headers
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp}.".encode() + call.body, hashlib.sha256
    ).hexdigest()
    signature = call.header("X-Approval-Signature") or ""
    return hmac.compare_digest(signature, f"sha256={digest}")
