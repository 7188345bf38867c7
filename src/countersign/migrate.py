"""Run the alembic migrations programmatically (`countersign migrate`, `countersign serve`, tests)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config

_CANDIDATES = (
    # A source checkout (`pip install -e .`): <repo>/migrations next to <repo>/src/countersign.
    Path(__file__).resolve().parents[2] / "migrations",
    # The container image copies the scripts here (see Dockerfile).
    Path("/app/migrations"),
)


def migrations_dir() -> Path:
    configured = os.environ.get("COUNTERSIGN_MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    for candidate in _CANDIDATES:
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError("migration scripts not found; set COUNTERSIGN_MIGRATIONS_DIR")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def current_heads(database_url: str) -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
