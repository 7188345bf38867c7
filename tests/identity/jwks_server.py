"""A real loopback JWKS endpoint for tests: serves a mutable key set and counts its requests.

with JwksServer({"keys": [jwk]}) as server:
    settings = Settings(..., oidc_jwks_url=server.url)
    server.set_jwks({"keys": [rotated_jwk]})
    assert server.request_count == 1
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

JWKS_PATH = "/realms/test/protocol/openid-connect/certs"


class JwksServer:
    """ThreadingHTTPServer on 127.0.0.1, random port, in a daemon thread."""

    def __init__(self, jwks: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._jwks: dict[str, Any] = jwks if jwks is not None else {"keys": []}
        self._status = 200
        self._request_count = 0
        # Set = answer at once; cleared by `hold`: requests wait until `release` (a slow IdP).
        self._answering = threading.Event()
        self._answering.set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{JWKS_PATH}"

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._request_count

    def set_jwks(self, jwks: dict[str, Any]) -> None:
        with self._lock:
            self._jwks = jwks

    def hold(self) -> None:
        """Make every request wait (connected, unanswered) until `release`: a stalled IdP."""
        self._answering.clear()

    def release(self) -> None:
        self._answering.set()

    def fail_with(self, status: int) -> None:
        """Answer every request with `status` (an empty body) until set back to 200."""
        with self._lock:
            self._status = status

    def start(self) -> JwksServer:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        # A short poll interval keeps shutdown() (one poll at most) from slowing every test.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="jwks-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: later connections are refused. The port is kept so `url` stays valid."""
        self._answering.set()  # held requests finish, so shutdown does not wait on them
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _answer(self, path: str) -> tuple[int, bytes]:
        with self._lock:
            if path != JWKS_PATH:
                return 404, b""
            if self._status != 200:
                return self._status, b""
            return 200, json.dumps(self._jwks).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner._request_count += 1
                owner._answering.wait(timeout=60)
                status, body = owner._answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler
