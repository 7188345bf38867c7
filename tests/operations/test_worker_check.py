"""`countersign worker --check`, the worker pods' liveness probe, against a real Redis.

The chart runs it as an exec probe in the worker's container: it passes while this pod's worker
keeps refreshing its health key (arq's heartbeat), and fails once that worker stops, hangs, or only
another pod's worker is alive.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from countersign.config import Settings
from tests.fixtures.worker import (  # noqa: F401  (fixtures)
    COUNTERSIGN,
    RedisServer,
    SharedRedis,
    Workers,
    clean_hooks_database_fixture,
    clock_file_fixture,
    hooks_database_url_fixture,
    hooks_engine_fixture,
    hooks_sessionmaker_fixture,
    hooks_settings_fixture,
    redis_server_fixture,
    shared_clock_fixture,
    webhook_settings_fixture,
    worker_env,
    workers_fixture,
)

pytestmark = pytest.mark.slow

CHECK_TIMEOUT_SECONDS = (
    60  # a Python start on a busy machine, not a hang: that is tested elsewhere
)
# A stopped worker's key outlives it by its interval + 1 s; poll well past that.
EXPIRY_WITHIN_SECONDS = 60.0
HEALTH_INTERVAL = "1"
HEALTH_KEY = f"arq:queue:health-check:{socket.gethostname()}"


@pytest.fixture(autouse=True)
def own_redis(redis_server: RedisServer | SharedRedis) -> Iterator[None]:
    if isinstance(redis_server, SharedRedis):
        pytest.skip("needs a private redis-server: the health key is per host")
    redis_server.flush()
    yield
    redis_server.flush()


def check(settings: Settings, tmp_path: object) -> subprocess.CompletedProcess[str]:
    env = worker_env(settings, tmp_path / "clock")  # type: ignore[operator]
    return subprocess.run(
        [str(COUNTERSIGN), "worker", "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_SECONDS,
        check=False,
    )


def check_fails_within(settings: Settings, tmp_path: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        result = check(settings, tmp_path)
        if result.returncode == 1:
            return
        assert time.monotonic() < deadline, f"--check still passes:\n{result.stderr}"
        time.sleep(0.5)


def test_it_fails_without_a_worker(hooks_settings: Settings, tmp_path: object) -> None:
    result = check(hooks_settings, tmp_path)

    assert result.returncode == 1
    assert "no health check sentinel value found" in result.stderr


def test_it_passes_while_the_worker_runs_and_fails_once_it_stopped(
    workers: Workers, hooks_settings: Settings, tmp_path: object
) -> None:
    worker = workers.start(
        env={"COUNTERSIGN_WORKER_HEALTH_CHECK_INTERVAL": HEALTH_INTERVAL}
    ).wait_ready()

    passed = check(hooks_settings, tmp_path)
    assert passed.returncode == 0, passed.stderr
    assert "health check successful" in passed.stderr

    assert worker.stop() == 0
    # arq deletes its key on a clean shutdown.
    failed = check(hooks_settings, tmp_path)
    assert failed.returncode == 1, failed.stderr


def test_it_fails_when_the_worker_hangs(
    workers: Workers, hooks_settings: Settings, tmp_path: object
) -> None:
    worker = workers.start(
        env={"COUNTERSIGN_WORKER_HEALTH_CHECK_INTERVAL": HEALTH_INTERVAL}
    ).wait_ready()
    assert check(hooks_settings, tmp_path).returncode == 0

    worker.process.send_signal(signal.SIGSTOP)  # alive, but no heartbeat any more
    try:
        check_fails_within(hooks_settings, tmp_path, EXPIRY_WITHIN_SECONDS)
    finally:
        worker.process.send_signal(signal.SIGCONT)


def test_another_pods_worker_does_not_make_this_one_healthy(
    hooks_settings: Settings, tmp_path: object
) -> None:
    client = redis.Redis.from_url(hooks_settings.redis_url)
    try:
        client.set("arq:queue:health-check", b"a worker on the shared key", ex=60)
        client.set("arq:queue:health-check:another-pod", b"another pod's worker", ex=60)
        assert client.get(HEALTH_KEY) is None
    finally:
        client.close()

    result = check(hooks_settings, tmp_path)

    assert result.returncode == 1, result.stderr
