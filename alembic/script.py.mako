"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Rules every revision follows (tests/test_migrations.py checks the first two):
- pass `schema=migration_schema()` to every operation: the tables may live in a schema;
- on PostgreSQL, build indexes on existing tables with `postgresql_concurrently=True`
  inside `op.get_context().autocommit_block()`, dropping an INVALID leftover first
  (see 0002);
- a database set up by langgraph-checkpoint-postgres must stay readable by it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from checkpointer.migrations import migration_schema
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
