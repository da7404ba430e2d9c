"""PostgreSQL indexes for metadata filters (GIN, containment) and run ids.

Built with CREATE INDEX CONCURRENTLY outside the migration transaction, so writers
are never blocked on a table that is already large. A build that failed (or was
cancelled) leaves an INVALID index behind; running the upgrade again drops it
concurrently and builds it anew. Offline (`--sql`), where the database cannot be
asked, the script drops any leftover index of these names before building it.

On MySQL/MariaDB (no GIN, no expression index MariaDB would match) the run id is a
virtual column generated from the metadata, with an index (`delete_for_runs`); InnoDB
builds it online. The metadata filter has no index there (docs/mysql.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from alembic import op
from checkpointer.migrations import migration_schema

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES: dict[str, tuple[list[Any], dict[str, Any]]] = {
    "checkpoints_metadata_idx": (
        ["metadata"],
        {"postgresql_using": "gin", "postgresql_ops": {"metadata": "jsonb_path_ops"}},
    ),
    "checkpoints_run_id_idx": ([sa.text("(metadata ->> 'run_id')")], {}),
}

_INVALID = sa.text(
    "SELECT NOT i.indisvalid FROM pg_catalog.pg_index i"
    " JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relname = :name AND n.nspname = coalesce(:schema, current_schema())"
)


def _leftover(name: str, schema: str | None) -> bool:
    """Whether a failed earlier build left index `name` INVALID (always, offline)."""
    if op.get_context().as_sql:
        return True
    return bool(op.get_bind().scalar(_INVALID, {"name": name, "schema": schema}))


MYSQL = ("mysql", "mariadb")
RUN_ID = "run_id"
RUN_ID_INDEX = "checkpoints_run_id_idx"


def _upgrade_mysql() -> None:
    op.add_column(
        "checkpoints",
        sa.Column(
            RUN_ID,
            sa.String(255),
            sa.Computed("json_unquote(json_extract(`metadata`, '$.run_id'))", persisted=False),
            nullable=True,
        ),
    )
    op.create_index(RUN_ID_INDEX, "checkpoints", [RUN_ID])


def upgrade() -> None:
    if op.get_context().dialect.name in MYSQL:
        _upgrade_mysql()
        return
    if op.get_context().dialect.name != "postgresql":
        return
    schema = migration_schema()
    with op.get_context().autocommit_block():
        for name, (columns, options) in INDEXES.items():
            if _leftover(name, schema):
                op.drop_index(
                    name,
                    table_name="checkpoints",
                    schema=schema,
                    if_exists=True,
                    postgresql_concurrently=True,
                )
            op.create_index(
                name,
                "checkpoints",
                columns,
                schema=schema,
                if_not_exists=True,
                postgresql_concurrently=True,
                **options,
            )


def downgrade() -> None:
    if op.get_context().dialect.name in MYSQL:
        op.drop_index(RUN_ID_INDEX, table_name="checkpoints")
        op.drop_column("checkpoints", RUN_ID)
        return
    if op.get_context().dialect.name != "postgresql":
        return
    schema = migration_schema()
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.drop_index(
                name,
                table_name="checkpoints",
                schema=schema,
                if_exists=True,
                postgresql_concurrently=True,
            )
