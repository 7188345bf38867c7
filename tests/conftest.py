"""Test setup: a fresh PostgreSQL database per xdist worker, built by the real migrations.

Tests talk to the real service stack (PostgreSQL, the ASGI app, dev-mode JWTs); nothing of ours is
mocked. Each test starts from empty tables (TRUNCATE), so tests may commit and run truly
concurrent transactions.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Test the checkout these tests live in, also when the virtualenv's editable install points at
# another checkout of the project (a worktree sharing one .venv): this `src` first, in this process
# and in every service subprocess the tests start.
_SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, _SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_SRC, *filter(None, [os.environ.get("PYTHONPATH")])]
)

os.environ.setdefault("COUNTERSIGN_ENV", "testing")
# Many apps, servers and workers share one PostgreSQL in the suite: keep each process's pool small
# (subprocesses inherit these).
os.environ.setdefault("COUNTERSIGN_DB_POOL_SIZE", "2")
os.environ.setdefault("COUNTERSIGN_DB_MAX_OVERFLOW", "10")

pytest_plugins = ["tests.fixtures.database", "tests.fixtures.client"]
