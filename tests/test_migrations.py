"""The alembic migrations build exactly the schema the models describe, on both dialects.

- `alembic upgrade head` on an empty PostgreSQL database and on an empty SQLite file creates every
  table of `Base.metadata`;
- the drift check (alembic's autogenerate comparison, with type and server-default comparison)
  finds nothing between the migrated database and the models, and it does find a difference when
  there is one;
- `downgrade base` then `upgrade head` works;
- the invariants the service relies on under concurrency are enforced by the database itself:
  one active version per policy key, unique (policy_key, version), one decision per task, one live
  request per (source_client, artifact_type, artifact_id).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from pprint import pformat
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    Column,
    DefaultClause,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import countersign.models  # noqa: F401  (registers every table on Base.metadata)
from countersign import migrate
from countersign.db import Base, create_engine
from countersign.models import (
    ApprovalRequest,
    Decision,
    Policy,
    RequestStage,
    Task,
)
from tests.fixtures.database import drop_pg_database, fresh_pg_database

DIALECTS = ["postgresql", "sqlite"]


def _pg_name() -> str:
    return f"countersign_migrations_{uuid.uuid4().hex[:12]}"


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="module", params=DIALECTS)
def migrated_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database of each dialect, brought to `head` by the real migrations."""
    if request.param == "postgresql":
        name = _pg_name()
        url = fresh_pg_database(name)
        try:
            migrate.upgrade(url)
            yield url
        finally:
            drop_pg_database(name)
    else:
        url = _sqlite_url(tmp_path_factory.mktemp("migrations") / "countersign.db")
        migrate.upgrade(url)
        yield url


@pytest.fixture
async def migrated_engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_url)
    yield engine
    await engine.dispose()


def _compare(connection: Connection, metadata: MetaData) -> list[Any]:
    """alembic's autogenerate diff between the live schema and `metadata` (empty = no drift)."""
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "target_metadata": metadata,
        },
    )
    diff: list[Any] = compare_metadata(context, metadata)
    return diff


async def _diff(engine: AsyncEngine, metadata: MetaData) -> list[Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(_compare, metadata)


async def _table_names(engine: AsyncEngine) -> set[str]:
    def names(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    async with engine.connect() as connection:
        return await connection.run_sync(names)


def _metadata_copy() -> MetaData:
    copy = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(copy)
    return copy


# ---------------------------------------------------------------------------------------------
# Building the schema


async def test_upgrade_head_builds_every_table_on_an_empty_database(
    migrated_engine: AsyncEngine,
) -> None:
    tables = await _table_names(migrated_engine)

    missing = set(Base.metadata.tables) - tables
    assert not missing, f"tables missing after upgrade head: {sorted(missing)}"
    assert "alembic_version" in tables


async def test_upgrade_head_records_the_single_head_revision(
    migrated_engine: AsyncEngine, migrated_url: str
) -> None:
    def current(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with migrated_engine.connect() as connection:
        recorded = await connection.run_sync(current)

    heads = migrate.current_heads(migrated_url)
    assert len(heads) == 1, f"the migration history has several heads: {heads}"
    assert recorded == heads


async def test_upgrade_head_twice_is_a_no_op(
    migrated_engine: AsyncEngine, migrated_url: str
) -> None:
    await asyncio.to_thread(migrate.upgrade, migrated_url)

    assert set(Base.metadata.tables) <= await _table_names(migrated_engine)
    assert await _diff(migrated_engine, Base.metadata) == []


# ---------------------------------------------------------------------------------------------
# Drift between models and migrations


async def test_models_and_migrations_agree(migrated_engine: AsyncEngine) -> None:
    diff = await _diff(migrated_engine, Base.metadata)

    assert diff == [], (
        "the models and the migrations disagree; write a migration "
        "(alembic revision --autogenerate) for:\n" + pformat(diff)
    )


async def test_drift_check_notices_a_column_the_migrations_lack(
    migrated_engine: AsyncEngine,
) -> None:
    metadata = _metadata_copy()
    metadata.tables["policies"].append_column(
        Column("throwaway_drift_probe", Integer, nullable=True)
    )

    diff = await _diff(migrated_engine, metadata)

    added = [
        entry
        for entry in diff
        if entry[0] == "add_column"
        and entry[2] == "policies"
        and entry[3].name == "throwaway_drift_probe"
    ]
    assert added, f"the drift check missed an added column; diff was:\n{pformat(diff)}"


async def test_drift_check_notices_a_table_the_migrations_lack(
    migrated_engine: AsyncEngine,
) -> None:
    metadata = _metadata_copy()
    Table(
        "throwaway_drift_probe",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(10)),
    )

    diff = await _diff(migrated_engine, metadata)

    assert any(
        entry[0] == "add_table" and entry[1].name == "throwaway_drift_probe"
        for entry in diff
    ), f"the drift check missed an added table; diff was:\n{pformat(diff)}"


def _change_type(metadata: MetaData) -> None:
    metadata.tables["policies"].c["name"].type = String(100)


def _change_nullable(metadata: MetaData) -> None:
    metadata.tables["policies"].c["name"].nullable = True


def _add_server_default(metadata: MetaData) -> None:
    metadata.tables["policies"].c["priority"].server_default = DefaultClause(text("0"))


def _drop_partial_unique_index(metadata: MetaData) -> None:
    table = metadata.tables["policies"]
    (index,) = [i for i in table.indexes if i.name == "uq_policies_one_active_per_key"]
    table.indexes.discard(index)


@pytest.mark.parametrize(
    ("change", "expected_op"),
    [
        (_change_type, "modify_type"),
        (_change_nullable, "modify_nullable"),
        (_add_server_default, "modify_default"),
        (_drop_partial_unique_index, "remove_index"),
    ],
)
async def test_drift_check_notices_changed_columns_and_indexes(
    migrated_engine: AsyncEngine,
    change: Callable[[MetaData], None],
    expected_op: str,
) -> None:
    metadata = _metadata_copy()
    change(metadata)

    diff = await _diff(migrated_engine, metadata)

    # Column modifications come grouped in a nested list, one per column.
    ops = [
        entry[0]
        for group in diff
        for entry in (group if isinstance(group, list) else [group])
    ]
    assert expected_op in ops, f"the drift check missed {expected_op}:\n{pformat(diff)}"


async def test_the_unmodified_copy_used_by_the_drift_probes_has_no_drift(
    migrated_engine: AsyncEngine,
) -> None:
    # Guards the probes above: their only difference must be the one they add.
    assert await _diff(migrated_engine, _metadata_copy()) == []


# ---------------------------------------------------------------------------------------------
# Downgrade


@pytest.fixture(params=DIALECTS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, never migrated database of each dialect."""
    if request.param == "postgresql":
        name = _pg_name()
        try:
            yield fresh_pg_database(name)
        finally:
            drop_pg_database(name)
    else:
        yield _sqlite_url(tmp_path / "countersign.db")


async def test_downgrade_to_base_then_upgrade_head(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        config = migrate.alembic_config(empty_url)
        await asyncio.to_thread(command.upgrade, config, "head")
        await asyncio.to_thread(command.downgrade, config, "base")

        left = await _table_names(engine) - {"alembic_version"}
        assert left == set(), f"downgrade base left tables behind: {sorted(left)}"

        await asyncio.to_thread(command.upgrade, config, "head")

        assert set(Base.metadata.tables) <= await _table_names(engine)
        diff = await _diff(engine, Base.metadata)
        assert diff == [], pformat(diff)
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------------------
# Invariants guarded by the database (raw inserts, no service code in between)


async def _insert(connection: AsyncConnection, table: Any, **values: Any) -> uuid.UUID:
    row_id = uuid.uuid4()
    await connection.execute(insert(table).values(id=row_id, **values))
    return row_id


async def _policy(
    connection: AsyncConnection, key: str, version: int, status: str
) -> uuid.UUID:
    return await _insert(
        connection,
        Policy.__table__,
        policy_key=key,
        version=version,
        status=status,
        name=f"{key} v{version}",
        artifact_type="test.artifact",
        created_by="test",
    )


async def _request(
    connection: AsyncConnection,
    policy_id: uuid.UUID,
    key: str,
    *,
    artifact_id: str,
    status: str = "in_review",
    source_client: str = "registry",
) -> uuid.UUID:
    return await _insert(
        connection,
        ApprovalRequest.__table__,
        policy_id=policy_id,
        policy_key=key,
        policy_version=1,
        # The key doubles as the artifact type, so tests sharing a database never collide.
        artifact_type=key,
        artifact_id=artifact_id,
        source_service="registry-staff",
        source_client=source_client,
        requester="requester-rita",
        status=status,
    )


def _key() -> str:
    return f"guard.{uuid.uuid4().hex[:12]}"


async def test_second_active_version_of_one_policy_key_is_refused(
    migrated_engine: AsyncEngine,
) -> None:
    key = _key()
    async with migrated_engine.begin() as connection:
        await _policy(connection, key, 1, "active")
        await _policy(connection, key, 2, "draft")
        await _policy(connection, key, 3, "archived")

    with pytest.raises(IntegrityError):
        async with migrated_engine.begin() as connection:
            await _policy(connection, key, 4, "active")

    # Promoting an existing draft while another version is active is refused too.
    with pytest.raises(IntegrityError):
        async with migrated_engine.begin() as connection:
            await connection.execute(
                update(Policy)
                .where(Policy.policy_key == key, Policy.version == 2)
                .values(status="active")
            )

    # Other keys have their own active version.
    async with migrated_engine.begin() as connection:
        await _policy(connection, _key(), 1, "active")


async def test_duplicate_policy_key_and_version_is_refused(
    migrated_engine: AsyncEngine,
) -> None:
    key = _key()
    async with migrated_engine.begin() as connection:
        await _policy(connection, key, 1, "archived")

    with pytest.raises(IntegrityError):
        async with migrated_engine.begin() as connection:
            await _policy(connection, key, 1, "draft")


async def test_second_decision_for_one_task_is_refused(
    migrated_engine: AsyncEngine,
) -> None:
    key = _key()
    async with migrated_engine.begin() as connection:
        policy_id = await _policy(connection, key, 1, "active")
        request_id = await _request(connection, policy_id, key, artifact_id="A-1")
        stage_id = await _insert(
            connection,
            RequestStage.__table__,
            request_id=request_id,
            stage_order=1,
            name="Stage 1",
            mode="all",
            status="active",
        )
        task_ids = [
            await _insert(
                connection,
                Task.__table__,
                request_id=request_id,
                request_stage_id=stage_id,
                stage_order=1,
                assignee=assignee,
                artifact_type=key,
                artifact_id="A-1",
                policy_key=key,
            )
            for assignee in ("alice", "bob")
        ]
        await _insert(
            connection,
            Decision.__table__,
            task_id=task_ids[0],
            request_id=request_id,
            stage_order=1,
            actor="alice",
            action="approve",
        )

    with pytest.raises(IntegrityError):
        async with migrated_engine.begin() as connection:
            await _insert(
                connection,
                Decision.__table__,
                task_id=task_ids[0],
                request_id=request_id,
                stage_order=1,
                actor="alice",
                action="reject",
            )

    # The other task of the stage is decided independently.
    async with migrated_engine.begin() as connection:
        await _insert(
            connection,
            Decision.__table__,
            task_id=task_ids[1],
            request_id=request_id,
            stage_order=1,
            actor="bob",
            action="approve",
        )


async def test_one_live_request_per_caller_and_artifact(
    migrated_engine: AsyncEngine,
) -> None:
    key = _key()
    async with migrated_engine.begin() as connection:
        policy_id = await _policy(connection, key, 1, "active")
        # Finished requests for the artifact do not count, however many there are.
        await _request(connection, policy_id, key, artifact_id="A-1", status="approved")
        await _request(connection, policy_id, key, artifact_id="A-1", status="rejected")
        live_id = await _request(connection, policy_id, key, artifact_id="A-1")

    for status in ("in_review", "changes_requested"):
        with pytest.raises(IntegrityError):
            async with migrated_engine.begin() as connection:
                await _request(
                    connection, policy_id, key, artifact_id="A-1", status=status
                )

    async with migrated_engine.begin() as connection:
        # A finished one is still allowed while the live one exists...
        await _request(
            connection, policy_id, key, artifact_id="A-1", status="cancelled"
        )
        # ...and so are live requests of another caller, or for another artifact.
        await _request(
            connection, policy_id, key, artifact_id="A-1", source_client="payments"
        )
        await _request(connection, policy_id, key, artifact_id="A-2")

    # Once the live request finishes, a new one may start.
    async with migrated_engine.begin() as connection:
        await connection.execute(
            update(ApprovalRequest)
            .where(ApprovalRequest.id == live_id)
            .values(status="approved")
        )
        await _request(connection, policy_id, key, artifact_id="A-1")


# ---------------------------------------------------------------------------------------------
# Data migrations


async def test_parallel_group_becomes_an_integer_keeping_groups_apart(
    empty_url: str,
) -> None:
    """Digit strings keep their number; other names are numbered per policy version in stage
    order after the largest number that version uses; request stages follow their policy stage."""
    engine = create_engine(empty_url)
    try:
        await asyncio.to_thread(migrate.upgrade, empty_url, "ad2616977ec5")
        async with engine.begin() as connection:
            key = _key()
            policy_id = await _policy(connection, key, 1, "active")
            request_id = await _request(connection, policy_id, key, artifact_id="a-1")
            groups = {1: "review", 2: "review", 3: None, 4: "7", 5: "legal", 6: "legal"}
            stage_ids: dict[int, uuid.UUID] = {}
            for order, group in groups.items():
                stage_ids[order] = uuid.uuid4()
                await connection.execute(
                    text(
                        "INSERT INTO policy_stages (id, policy_id, position, stage_order,"
                        " name, mode, parallel_group, on_empty, escalation_rules)"
                        " VALUES (:id, :policy_id, :position, :order, 's', 'all', :grp,"
                        " 'block', '[]')"
                    ),
                    {
                        "id": _uuid_param(empty_url, stage_ids[order]),
                        "policy_id": _uuid_param(empty_url, policy_id),
                        "position": order - 1,
                        "order": order,
                        "grp": group,
                    },
                )
                await connection.execute(
                    text(
                        "INSERT INTO request_stages (id, request_id, policy_stage_id, cycle,"
                        " stage_order, name, parallel_group, status, mode, on_empty,"
                        " resolution_attempts, required_approvers, created_at, updated_at)"
                        " VALUES (:id, :request_id, :stage_id, 1, :order, 's', :grp,"
                        " 'pending', 'all', 'block', 0, '[]', :at, :at)"
                    ),
                    {
                        "id": _uuid_param(empty_url, uuid.uuid4()),
                        "request_id": _uuid_param(empty_url, request_id),
                        "stage_id": _uuid_param(empty_url, stage_ids[order]),
                        "order": order,
                        "grp": group,
                        "at": "2026-12-01 00:00:00"
                        if empty_url.startswith("sqlite")
                        else datetime(2026, 12, 1, tzinfo=UTC),
                    },
                )

        await asyncio.to_thread(migrate.upgrade, empty_url)

        expected = {1: 8, 2: 8, 3: None, 4: 7, 5: 9, 6: 9}
        async with engine.connect() as connection:
            for table in ("policy_stages", "request_stages"):
                rows = await connection.execute(
                    text(f"SELECT stage_order, parallel_group FROM {table}")
                )
                assert dict(rows.all()) == expected, table
    finally:
        await engine.dispose()


def _uuid_param(url: str, value: uuid.UUID) -> Any:
    # Raw SQL: PostgreSQL takes the uuid itself, SQLite stores sa.Uuid as 32 hex characters.
    return value.hex if url.startswith("sqlite") else value
