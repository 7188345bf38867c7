"""First start of the embedded default: migrations, a sample directory and a sample policy."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from importlib import resources
from pathlib import Path

import yaml
from sqlalchemy.engine import make_url

from countersign import migrate
from countersign.config import AuthMode, Settings
from countersign.policies import service as policy_service
from countersign.policies.schemas import PolicyIn
from countersign.wiring import one_transaction

log = logging.getLogger("countersign.bootstrap")

BOOTSTRAP_ACTOR = "system:bootstrap"


def _sqlite_is_new(database_url: str) -> bool:
    """True when the SQLite database does not exist yet or was never migrated."""
    path = make_url(database_url).database
    if not path or path == ":memory:" or not Path(path).exists():
        return True
    with sqlite3.connect(path) as connection:
        row = connection.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='alembic_version'"
        ).fetchone()
    return row is None


def sample_text(name: str) -> str:
    return (
        resources.files("countersign.samples")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )


def prepare_embedded(settings: Settings, *, migrate_schema: bool = True) -> Settings:
    """Apply migrations and, in the embedded default, seed what a newcomer needs to try the service."""
    embedded = settings.is_sqlite and settings.auth_mode is AuthMode.dev
    is_new = settings.is_sqlite and _sqlite_is_new(settings.database_url)
    if migrate_schema:
        migrate.upgrade(settings.database_url)
    if not embedded:
        return settings
    if settings.directory_file is None:
        directory = Path(settings.data_dir) / "directory.yaml"
        if not directory.exists():
            directory.parent.mkdir(parents=True, exist_ok=True)
            directory.write_text(sample_text("directory.yaml"), encoding="utf-8")
            log.info(
                "wrote a sample directory file to %s (set COUNTERSIGN_DIRECTORY_FILE to use another)",
                directory,
            )
        settings = settings.model_copy(update={"directory_file": directory})
    if is_new and migrate_schema:
        key = asyncio.run(_create_sample_policy(settings))
        log.info("new database: created and activated the sample policy %r", key)
    return settings


async def _create_sample_policy(settings: Settings) -> str:
    data = PolicyIn.model_validate(yaml.safe_load(sample_text("policy.yaml")))
    async with one_transaction(settings) as session:
        await policy_service.create_policy(session, data=data, actor=BOOTSTRAP_ACTOR)
        await policy_service.activate(
            session, policy_key=data.policy_key, version=1, actor=BOOTSTRAP_ACTOR
        )
    return data.policy_key
