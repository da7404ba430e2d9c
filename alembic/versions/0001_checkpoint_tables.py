"""The three checkpoint tables of the storage contract.

Created only where missing, so a database set up by langgraph-checkpoint-postgres
(same tables, same names) is adopted as it is, data and all. Tables it created before
its own later migrations (nullable `checkpoint_blobs.blob`, `checkpoint_writes.task_path`)
are brought to the same layout; on a table that already has them this changes nothing.
Its `checkpoint_migrations` table and thread_id indexes stay, so it keeps working.

On MySQL/MariaDB (InnoDB) key columns are VARCHAR sized so each primary key fits the
3,072-byte index limit in utf8mb4 (4 bytes a character), values LONGBLOB, and every
text compares by bytes without padding (`utf8mb4_nopad_bin` on MariaDB,
`utf8mb4_0900_bin` on MySQL 8): ids are case- and space-sensitive, as on PostgreSQL.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import LONGBLOB
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

from alembic import op
from checkpointer.migrations import migration_schema

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = ("mysql", "mariadb")
JSON_DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")
BLOB = sa.LargeBinary().with_variant(BYTEA(), "postgresql").with_variant(LONGBLOB(), *MYSQL)
KEY_LENGTHS = {
    "thread_id": 255,
    "checkpoint_ns": 255,
    "checkpoint_id": 64,
    "task_id": 64,
    "channel": 190,
    "version": 64,
}


def key(name: str) -> sa.types.TypeEngine[str]:
    """A key column: TEXT, VARCHAR on MySQL (blobs: (255 + 255 + 190 + 64) * 4 = 3,056
    bytes of key)."""
    return sa.Text().with_variant(sa.String(KEY_LENGTHS[name]), *MYSQL)


def _mysql_options() -> dict[str, str]:
    """Table options on MySQL/MariaDB (none elsewhere)."""
    context = op.get_context()
    if context.dialect.name not in MYSQL:
        return {}
    mariadb = context.dialect.name == "mariadb" or bool(
        getattr(context.dialect, "is_mariadb", False)
    )
    options = {
        "engine": "InnoDB",
        "charset": "utf8mb4",
        "collate": "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin",
    }
    # SQLAlchemy reads them under the dialect's name: `mariadb_...` for a mariadb:// URL
    return {f"{prefix}_{k}": v for prefix in MYSQL for k, v in options.items()}


def _default(value: str) -> sa.TextClause:
    """A server default; MySQL 8 takes one on TEXT and JSON only as an expression."""
    if op.get_context().dialect.name in MYSQL:
        return sa.text(f"({value})")
    return sa.text(value)


def upgrade() -> None:
    schema = migration_schema()
    options = _mysql_options()
    op.create_table(
        "checkpoints",
        sa.Column("thread_id", key("thread_id"), nullable=False),
        sa.Column("checkpoint_ns", key("checkpoint_ns"), server_default="", nullable=False),
        sa.Column("checkpoint_id", key("checkpoint_id"), nullable=False),
        sa.Column("parent_checkpoint_id", sa.Text(), nullable=True),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("checkpoint", JSON_DOCUMENT, nullable=False),
        sa.Column("metadata", JSON_DOCUMENT, server_default=_default("'{}'"), nullable=False),
        sa.PrimaryKeyConstraint(
            "thread_id", "checkpoint_ns", "checkpoint_id", name="checkpoints_pkey"
        ),
        schema=schema,
        if_not_exists=True,
        **options,
    )
    op.create_table(
        "checkpoint_blobs",
        sa.Column("thread_id", key("thread_id"), nullable=False),
        sa.Column("checkpoint_ns", key("checkpoint_ns"), server_default="", nullable=False),
        sa.Column("channel", key("channel"), nullable=False),
        sa.Column("version", key("version"), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("blob", BLOB, nullable=True),
        sa.PrimaryKeyConstraint(
            "thread_id", "checkpoint_ns", "channel", "version", name="checkpoint_blobs_pkey"
        ),
        schema=schema,
        if_not_exists=True,
        **options,
    )
    op.create_table(
        "checkpoint_writes",
        sa.Column("thread_id", key("thread_id"), nullable=False),
        sa.Column("checkpoint_ns", key("checkpoint_ns"), server_default="", nullable=False),
        sa.Column("checkpoint_id", key("checkpoint_id"), nullable=False),
        sa.Column("task_id", key("task_id"), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("blob", BLOB, nullable=False),
        sa.Column("task_path", sa.Text(), server_default=_default("''"), nullable=False),
        sa.PrimaryKeyConstraint(
            "thread_id",
            "checkpoint_ns",
            "checkpoint_id",
            "task_id",
            "idx",
            name="checkpoint_writes_pkey",
        ),
        schema=schema,
        if_not_exists=True,
        **options,
    )
    if op.get_context().dialect.name == "postgresql":
        # Both are no-ops on a layout that is already current (and on tables made above).
        op.alter_column("checkpoint_blobs", "blob", nullable=True, schema=schema)
        op.add_column(
            "checkpoint_writes",
            sa.Column("task_path", sa.Text(), server_default="", nullable=False),
            schema=schema,
            if_not_exists=True,
        )


def downgrade() -> None:
    for table in ("checkpoint_writes", "checkpoint_blobs", "checkpoints"):
        op.drop_table(table, schema=migration_schema(), if_exists=True)
