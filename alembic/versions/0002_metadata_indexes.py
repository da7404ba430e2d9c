"""PostgreSQL indexes for metadata filters (GIN, containment) and run ids.

Built with CREATE INDEX CONCURRENTLY outside the migration transaction, so writers
are never blocked on a table that is already large. A build that failed leaves an
INVALID index behind; it is dropped and rebuilt when the upgrade runs again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "checkpoints_metadata_idx": "USING gin (metadata jsonb_path_ops)",
    "checkpoints_run_id_idx": "((metadata ->> 'run_id'))",
}


def _invalid(name: str) -> bool:
    return bool(
        op.get_bind().scalar(
            sa.text(
                "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE c.relname = :name AND pg_catalog.pg_table_is_visible(c.oid)"
            ),
            {"name": name},
        )
    )


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        for name, definition in INDEXES.items():
            if not op.get_context().as_sql and _invalid(name):
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON checkpoints {definition}"
            )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
