"""The host's first table.

Revision ID: h001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "h001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("orders")
