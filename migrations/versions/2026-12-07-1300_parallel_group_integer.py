"""parallel_group_integer: parallel_group is an integer, as in AWE

Existing values that are digits keep their number; any other name is numbered per policy version,
in stage order, after the largest number that version already uses, so stages that ran together
still run together and no two groups merge. Request stages take their policy stage's new number.

Revision ID: 7c3e1f0a9b21
Revises: ad2616977ec5
Create Date: 2026-12-07 13:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c3e1f0a9b21"
down_revision: str | None = "ad2616977ec5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("policy_stages", "request_stages")


def numbered(
    rows: Sequence[tuple[object, object, int, str | None]],
) -> dict[object, int]:
    """policy stage id -> its integer group, from (id, policy_id, stage_order, old value) rows."""
    by_policy: dict[object, list[tuple[object, int, str]]] = {}
    for stage_id, policy_id, stage_order, value in rows:
        if value is not None:
            by_policy.setdefault(policy_id, []).append((stage_id, stage_order, value))
    result: dict[object, int] = {}
    for stages in by_policy.values():
        digits = [int(v) for _, _, v in stages if v.strip().isdigit()]
        following = max(digits, default=0) + 1
        names: dict[str, int] = {}
        for stage_id, _, value in sorted(stages, key=lambda s: s[1]):
            if value.strip().isdigit():
                result[stage_id] = int(value)
                continue
            if value not in names:
                names[value] = following
                following += 1
            result[stage_id] = names[value]
    return result


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Never queue behind a long transaction holding a lock the migration needs (ADR 0005).
        op.execute("SET LOCAL lock_timeout = '5s'")
    policy_stages = sa.table(
        "policy_stages",
        sa.column("id", sa.Uuid()),
        sa.column("policy_id", sa.Uuid()),
        sa.column("stage_order", sa.Integer()),
        sa.column("parallel_group", sa.String()),
    )
    rows = bind.execute(
        sa.select(
            policy_stages.c.id,
            policy_stages.c.policy_id,
            policy_stages.c.stage_order,
            policy_stages.c.parallel_group,
        ).where(policy_stages.c.parallel_group.is_not(None))
    ).all()
    groups = numbered([tuple(row) for row in rows])  # type: ignore[misc]

    # Empty the column, change its type, then write the numbers back.
    for table in TABLES:
        op.execute(sa.text(f"UPDATE {table} SET parallel_group = NULL"))
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "parallel_group",
                existing_type=sa.String(length=200),
                type_=sa.Integer(),
                existing_nullable=True,
                postgresql_using="parallel_group::integer",
            )
    int_policy_stages = sa.table(
        "policy_stages",
        sa.column("id", sa.Uuid()),
        sa.column("parallel_group", sa.Integer()),
    )
    request_stages = sa.table(
        "request_stages",
        sa.column("policy_stage_id", sa.Uuid()),
        sa.column("parallel_group", sa.Integer()),
    )
    for stage_id, group in groups.items():
        bind.execute(
            sa.update(int_policy_stages)
            .where(int_policy_stages.c.id == stage_id)
            .values(parallel_group=group)
        )
        bind.execute(
            sa.update(request_stages)
            .where(request_stages.c.policy_stage_id == stage_id)
            .values(parallel_group=group)
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '5s'")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "parallel_group",
                existing_type=sa.Integer(),
                type_=sa.String(length=200),
                existing_nullable=True,
                postgresql_using="parallel_group::text",
            )
