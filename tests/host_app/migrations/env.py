"""The host application's env.py: its own migrations and `alembic_version`, then ours
on the same connection (`upgrade_from_host_env`); its autogenerate ignores our tables
(`checkpointer.include_name`). The README's recipe is this file."""

from __future__ import annotations

import os

from models import metadata
from sqlalchemy import create_engine, pool

from alembic import context
from checkpointer import include_name
from checkpointer.migrations import upgrade_from_host_env

config = context.config
url = context.get_x_argument(as_dictionary=True).get("url") or os.environ["HOST_DATABASE_URL"]

if context.is_offline_mode():
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=metadata, include_name=include_name
        )
        with context.begin_transaction():
            context.run_migrations()
        upgrade_from_host_env(connection)  # checkpoint tables, in their own version table
    engine.dispose()
