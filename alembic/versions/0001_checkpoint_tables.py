"""The three checkpoint tables of the storage contract.

Created only where missing, so a database set up by langgraph-checkpoint-postgres
(same tables, same names) is adopted as it is, data and all. Tables it created before
its own later migrations (nullable `checkpoint_blobs.blob`, `checkpoint_writes.task_path`)
are brought to the same layout; on a table that already has them this changes nothing.
Its `checkpoint_migrations` table and thread_id indexes stay, so it keeps working.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

from alembic import op
from checkpointer.migrations import migration_schema

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")
BLOB = sa.LargeBinary().with_variant(BYTEA(), "postgresql")


def upgrade() -> None:
    schema = migration_schema()
    op.create_table(
        "checkpoints",
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("checkpoint_ns", sa.Text(), server_default="", nullable=False),
        sa.Column("checkpoint_id", sa.Text(), nullable=False),
        sa.Column("parent_checkpoint_id", sa.Text(), nullable=True),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("checkpoint", JSON_DOCUMENT, nullable=False),
        sa.Column("metadata", JSON_DOCUMENT, server_default=sa.text("'{}'"), nullable=False),
        sa.PrimaryKeyConstraint(
            "thread_id", "checkpoint_ns", "checkpoint_id", name="checkpoints_pkey"
        ),
        schema=schema,
        if_not_exists=True,
    )
    op.create_table(
        "checkpoint_blobs",
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("checkpoint_ns", sa.Text(), server_default="", nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("blob", BLOB, nullable=True),
        sa.PrimaryKeyConstraint(
            "thread_id", "checkpoint_ns", "channel", "version", name="checkpoint_blobs_pkey"
        ),
        schema=schema,
        if_not_exists=True,
    )
    op.create_table(
        "checkpoint_writes",
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("checkpoint_ns", sa.Text(), server_default="", nullable=False),
        sa.Column("checkpoint_id", sa.Text(), nullable=False),
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("blob", BLOB, nullable=False),
        sa.Column("task_path", sa.Text(), server_default="", nullable=False),
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
