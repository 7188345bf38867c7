"""Dev-mode auth stays on the machine unless the operator insists (API.md "Identity", dev mode).

Dev-mode tokens are signed by a key the service generates next to itself, and `countersign token`
mints admin tokens with it: a dev-mode service is only as private as the machine it runs on. So
`serve` refuses a non-loopback `--host` in dev mode (`tests/test_cli.py` covers that refusal), and
with `--allow-dev-auth-on-network` it starts but says so loudly. These tests run the installed console
script in a subprocess, in an empty directory, as an operator would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

pytestmark = pytest.mark.slow

COUNTERSIGN = Path(sys.executable).with_name("countersign")
START_DEADLINE_SECONDS = 60.0
STOP_DEADLINE_SECONDS = 30.0
POLL_INTERVAL_SECONDS = 0.1
WARNING = "DEV AUTH IS EXPOSED ON"


def child_env() -> dict[str, str]:
    """The test process's environment with every COUNTERSIGN_* variable removed (dev mode)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env["COUNTERSIGN_LOG_LEVEL"] = "INFO"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log_file: IO[bytes]

    def log(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_live(self) -> None:
        """Poll /v1/health/live on 127.0.0.1 until it answers 200, with a deadline."""
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        last: object = None
        with httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", timeout=2.0
        ) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(
                        f"serve exited with {self.process.returncode}:\n{self.log()}"
                    )
                try:
                    response = client.get("/v1/health/live")
                    if response.status_code == 200:
                        return
                    last = response.status_code
                except httpx.TransportError as exc:
                    last = exc
                time.sleep(POLL_INTERVAL_SECONDS)
        pytest.fail(
            f"not live within {START_DEADLINE_SECONDS}s ({last}):\n{self.log()}"
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        return self.process.returncode


@pytest.fixture
def serve() -> Iterator[list[Served]]:
    """The servers a test starts (`start`); every one is stopped afterwards."""
    started: list[Served] = []
    yield started
    for served in started:
        served.stop()


def start(started: list[Served], cwd: Path, *args: str) -> Served:
    port = free_port()
    log_path = cwd / "serve.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [str(COUNTERSIGN), "serve", "--port", str(port), *args],
        cwd=cwd,
        env=child_env(),
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    served = Served(process, port, log_path, log_file)
    started.append(served)
    return served


def test_the_explicit_flag_lets_dev_auth_serve_the_network_with_a_loud_warning(
    tmp_path: Path, serve: list[Served]
) -> None:
    served = start(serve, tmp_path, "--host", "0.0.0.0", "--allow-dev-auth-on-network")

    served.wait_live()

    log = served.log()
    warning = next(line for line in log.splitlines() if WARNING in line)
    assert warning.startswith("WARNING")
    assert "0.0.0.0" in warning
    assert "never do this in production" in warning
    # Said before anything else happens (migrations, startup), so it is not lost in the noise.
    assert log.index(WARNING) < log.index("Uvicorn running")
    # A clean shutdown on SIGTERM (uvicorn re-raises the signal once it has shut down).
    assert served.stop() in (0, -signal.SIGTERM)


def test_a_loopback_host_needs_no_flag_and_prints_no_warning(
    tmp_path: Path, serve: list[Served]
) -> None:
    served = start(serve, tmp_path, "--host", "127.0.0.1")

    served.wait_live()

    assert WARNING not in served.log()
