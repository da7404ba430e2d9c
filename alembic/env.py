"""Alembic environment of langgraph-checkpoint-sqlalchemy.

The database URL comes from, in order: a connection handed over in
`config.attributes["connection"]` (programmatic use, `setup()`), `-x url=...`, the
`CHECKPOINTER_DATABASE_URL` environment variable, or `sqlalchemy.url` in the ini file.
Async URLs (`+asyncpg`, `+aiosqlite`) work too. Only our three tables are compared by
autogenerate and `alembic check`; our revision lives in `checkpointer_alembic_version`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import context
from checkpointer.migrations import URL_ENV, VERSION_TABLE
from checkpointer.schema import metadata

config = context.config
target_metadata = metadata


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Look only at our tables, never at a host application's."""
    if type_ == "table":
        return name in target_metadata.tables
    return True


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # Indexes that exist on one dialect only (`ddl_if`) are not drift on another.
    ddl_if = getattr(obj, "_ddl_if", None) or getattr(compare_to, "_ddl_if", None)
    if type_ == "index" and ddl_if is not None and ddl_if.dialect is not None:
        dialect = context.get_context().dialect.name
        return bool(ddl_if.dialect == dialect)
    return True


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        include_object=include_object,
        transaction_per_migration=True,
        compare_type=True,
        **kwargs,
    )


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(URL_ENV)
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit(
            f"no database URL: set {URL_ENV} or pass `alembic -x url=... upgrade head`"
        )
    return url


def run_on(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run_on)
        await connection.commit()
    await engine.dispose()


def main() -> None:
    if context.is_offline_mode():
        _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = _url()
    if make_url(url).get_dialect().is_async:
        asyncio.run(_run_async(url))
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        run_on(connection)
        connection.commit()
    engine.dispose()


main()
