"""timer_backoff: requests whose timers keep failing are backed off by the sweep

Two nullable columns (NULL = no failure), so the previous release keeps working (ADR 0005).

Revision ID: 3f8a2d6c1e44
Revises: 7c3e1f0a9b21
Create Date: 2026-12-07 13:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import countersign.db

revision: str = "3f8a2d6c1e44"
down_revision: str | None = "7c3e1f0a9b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Never queue behind a long transaction holding a lock the migration needs (ADR 0005).
        op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column(
        "approval_requests", sa.Column("timer_failures", sa.Integer(), nullable=True)
    )
    op.add_column(
        "approval_requests",
        sa.Column(
            "timers_retry_at",
            countersign.db.UtcDateTime(timezone=True),
            nullable=True,
        ),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '5s'")
    with op.batch_alter_table("approval_requests") as batch:
        batch.drop_column("timers_retry_at")
        batch.drop_column("timer_failures")
