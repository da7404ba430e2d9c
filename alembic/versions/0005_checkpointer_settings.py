"""A settings table of the database itself: which blob encoding its rows may use.

`blob_encoding` = "incremental" is recorded by the first saver created with that option
(`checkpointer.incremental`), before it writes any encoded row; a saver without the
option then refuses the database with a message naming the fix, instead of misreading
rows it cannot decode. No row: every blob is plain, as the official saver writes them.
A new, empty table: nothing existing is rewritten, and the official saver ignores it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from checkpointer.migrations import migration_schema

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checkpointer_settings",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="checkpointer_settings_pkey"),
        schema=migration_schema(),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("checkpointer_settings", schema=migration_schema(), if_exists=True)
