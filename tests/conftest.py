"""Test setup: a fresh PostgreSQL database per xdist worker, built by the real migrations.

Tests talk to the real service stack (PostgreSQL, the ASGI app, dev-mode JWTs); nothing of ours is
mocked. Each test starts from empty tables (TRUNCATE), so tests may commit and run truly
concurrent transactions.
"""

from __future__ import annotations

import os

os.environ.setdefault("COUNTERSIGN_ENV", "testing")
# Many apps, servers and workers share one PostgreSQL in the suite: keep each process's pool small
# (subprocesses inherit these).
os.environ.setdefault("COUNTERSIGN_DB_POOL_SIZE", "2")
os.environ.setdefault("COUNTERSIGN_DB_MAX_OVERFLOW", "10")

pytest_plugins = ["tests.fixtures.database", "tests.fixtures.client"]
