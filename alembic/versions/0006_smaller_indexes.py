"""PostgreSQL: smaller thread-list and run-id indexes (same names, same queries served).

`checkpoints_root_id_idx` (revision 0004) drops `thread_id`: the thread list and
sweeps order root checkpoints by id and break ties between equal ids (distinct
threads only) by thread id, which an incremental sort over the index does; the index
holds one short key instead of two. `checkpoints_run_id_idx` (0002) becomes partial on
checkpoints that have a run id: LangGraph records one only where the caller passes it
(`config["metadata"]["run_id"]`, as LangGraph's server does), and every lookup
(`delete_for_runs`: `run_id IN (...)`) implies it is not null. Measured on `make
bench`'s storage workload, the two together bring the bytes 0004 added back within
1 % (one thread of 10 steps: the root index's first leaf page, offset by a run-id
index with no entries); at 100,000 threads x 5 checkpoints the thread list's pages
stay within a few milliseconds (docs/performance.md).

Each index is rebuilt without blocking writers: the new definition is built
CONCURRENTLY under a temporary name, the old one dropped CONCURRENTLY, the new one
renamed. A run that stopped midway resumes (an INVALID temporary index is dropped and
built again).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from alembic import op
from checkpointer.migrations import migration_schema

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROOT = "checkpoints_root_id_idx"
RUN = "checkpoints_run_id_idx"
RUN_ID = "(metadata ->> 'run_id')"

_INDEX = sa.text(
    "SELECT i.indisvalid FROM pg_catalog.pg_index i"
    " JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relname = :name AND n.nspname = coalesce(:schema, current_schema())"
)


def _state(name: str, schema: str | None) -> bool | None:
    """True: index `name` exists and is valid; False: INVALID (a failed build); None:
    absent. Offline (`--sql`) it cannot be asked: treated as INVALID (dropped first)."""
    if op.get_context().as_sql:
        return False
    found = op.get_bind().scalar(_INDEX, {"name": name, "schema": schema})
    return None if found is None else bool(found)


def _replace(name: str, columns: list[Any], where: str | None, schema: str | None) -> None:
    """Index `name` rebuilt as `columns` (partial on `where`) without blocking writers."""
    temp = f"{name}_new"
    drop = {"table_name": "checkpoints", "schema": schema, "if_exists": True}
    if _state(temp, schema) is False:
        op.drop_index(temp, postgresql_concurrently=True, **drop)
    options: dict[str, Any] = {}
    if where is not None:
        options["postgresql_where"] = sa.text(where)
    op.create_index(
        temp,
        "checkpoints",
        columns,
        schema=schema,
        if_not_exists=True,
        postgresql_concurrently=True,
        **options,
    )
    op.drop_index(name, postgresql_concurrently=True, **drop)
    quote = op.get_context().dialect.identifier_preparer.quote
    qualified = f"{quote(schema)}.{quote(temp)}" if schema else quote(temp)
    op.execute(sa.text(f"ALTER INDEX {qualified} RENAME TO {quote(name)}"))


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    schema = migration_schema()
    with op.get_context().autocommit_block():
        _replace(ROOT, ["checkpoint_id"], "checkpoint_ns = ''", schema)
        _replace(RUN, [sa.text(RUN_ID)], f"{RUN_ID} IS NOT NULL", schema)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    schema = migration_schema()
    with op.get_context().autocommit_block():
        _replace(ROOT, ["checkpoint_id", "thread_id"], "checkpoint_ns = ''", schema)
        _replace(RUN, [sa.text(RUN_ID)], None, schema)
