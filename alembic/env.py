"""Alembic environment of langgraph-checkpoint-sqlalchemy.

The database URL comes from, in order: a connection handed over in
`config.attributes["connection"]` (programmatic use, `setup()`), `-x url=...`, the
`CHECKPOINTER_DATABASE_URL` environment variable, or `sqlalchemy.url` in the ini file.
A plain `postgresql://` (or `postgres://`) URL runs on psycopg if installed, else on
asyncpg; `sqlite://` on the standard library; a URL naming its driver (`+asyncpg`,
`+aiosqlite`, ...) on that driver.

Run from `alembic` with an ini that configures logging (this repository's does), the
revisions applied are printed. Once a run leaves no revision (`downgrade base`), our
version table is dropped too.

The PostgreSQL schema (default: none, i.e. the connection's default schema) comes from
`config.attributes["schema"]` (programmatic use), `-x schema=...` or the
`CHECKPOINTER_SCHEMA` environment variable. With a schema, it is created if missing,
every table, index and the version table are created in it, and every statement names
it explicitly: nothing relies on `search_path`.

Only our three tables are compared by autogenerate and `alembic check` (a host app's
tables and langgraph-checkpoint-postgres' own `checkpoint_migrations` and thread_id
indexes are ignored); our revision lives in `checkpointer_alembic_version`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from logging.config import fileConfig
from typing import Any

from alembic.runtime.migration import MigrationInfo
from sqlalchemy import Connection, MetaData, Table, create_engine, inspect, pool
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.schema import CreateSchema, DropTable

from alembic import context
from checkpointer.dialects import for_name
from checkpointer.migrations import (
    OFFICIAL_INDEXES,
    SCHEMA_ENV,
    URL_ENV,
    VERSION_TABLE,
    validate_schema,
)
from checkpointer.schema import metadata
from checkpointer.urls import migration_url, normalized

config = context.config
if config.config_file_name is not None and config.file_config.has_section("loggers"):
    # `alembic ...` from the repository: the ini's logging ("Running upgrade ..."),
    # without silencing loggers created before (ours among them).
    fileConfig(config.config_file_name, disable_existing_loggers=False)
OUR_TABLES = frozenset(table.name for table in metadata.tables.values())
OUR_INDEXES = {index.name: index for table in metadata.tables.values() for index in table.indexes}
MYSQL_GENERATED = frozenset({"run_id", "checkpoints_run_id_idx"})
"""MySQL/MariaDB only (revision 0002): the generated `run_id` column and its index,
not in `schema` (other dialects have no such column), so not compared."""


def _index_dialects(index: Any) -> tuple[str, ...] | None:
    """The dialects the index of `schema` that `index` (a copy) came from is built on
    (None: all). Indexes of different dialects may share a name: matched by columns."""
    shape = [str(e) for e in index.expressions]
    for table in metadata.tables.values():
        for original in table.indexes:
            if original.name == index.name and [str(e) for e in original.expressions] == shape:
                ddl_if = getattr(original, "_ddl_if", None)
                if ddl_if is None or ddl_if.dialect is None:
                    return None
                given = ddl_if.dialect
                return (given,) if isinstance(given, str) else tuple(given)
    return None


def _schema() -> str | None:
    if "schema" in config.attributes:  # set by code, even to None: never the env var
        return config.attributes["schema"]  # type: ignore[no-any-return]
    given = context.get_x_argument(as_dictionary=True).get("schema") or os.environ.get(SCHEMA_ENV)
    return given or None


SCHEMA = _schema()


def _target_metadata(dialect_name: str) -> MetaData:
    """Our tables as `dialect_name` holds them: in SCHEMA when there is one, without
    the indexes of other dialects (`ddl_if`)."""
    placed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        copy = table.to_metadata(placed, schema=SCHEMA)
        for index in list(copy.indexes):
            dialects = _index_dialects(index)
            if dialects is not None and dialect_name not in dialects:
                copy.indexes.discard(index)
    return placed


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Look only at our schema and our tables, never at a host application's."""
    if type_ == "schema":
        return name == SCHEMA
    if type_ == "table":
        return name in OUR_TABLES
    return True


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if reflected and compare_to is None and name in MYSQL_GENERATED:
        return False
    if type_ != "index":
        return True
    # langgraph-checkpoint-postgres' own indexes: adopted with its tables, not drift.
    return not (reflected and compare_to is None and name in OFFICIAL_INDEXES)


class Steps:
    """The steps this run took (its `on_version_apply` callback): logged on the
    `checkpointer.migrations` logger when the run ends, and once no revision is left
    (`downgrade base`, `stamp base`) our version table is dropped, which Alembic
    empties but leaves behind: `downgrade base` leaves none of our tables."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.reverted: list[str] = []
        self.stamped = False
        self.heads: set[str] | None = None  # after the last step; None: no step ran

    def __call__(self, *, step: MigrationInfo, heads: set[str], **_: Any) -> None:
        if step.is_stamp:
            self.stamped = True
        elif step.is_upgrade:
            self.applied.extend(step.up_revision_ids)
        else:
            self.reverted.extend(step.up_revision_ids)
        self.heads = set(heads)

    @property
    def emptied(self) -> bool:
        return self.heads == set()

    def finish(self, connection: Connection) -> None:
        """Online: log what was done (password hidden), drop an emptied version table."""
        if self.heads is None:
            return
        where = connection.engine.url.render_as_string(hide_password=True)
        where += f" (schema {SCHEMA})" if SCHEMA else ""
        now = ", ".join(sorted(self.heads)) or "base"
        if self.applied:
            log.info("applied revisions %s to %s; now at %s", ", ".join(self.applied), where, now)
        if self.reverted:
            log.info("reverted revisions %s on %s; now at %s", ", ".join(self.reverted), where, now)
        if self.stamped:
            log.info("stamped %s at %s without running migrations", where, now)
        if self.emptied:
            VERSIONS.drop(connection, checkfirst=True)
            connection.commit()
            log.info("removed %s from %s: no revision left", VERSION_TABLE, where)


log = logging.getLogger("checkpointer.migrations")
STEPS = Steps()
VERSIONS = Table(VERSION_TABLE, MetaData(), schema=SCHEMA)


def _configure(dialect_name: str, **kwargs: Any) -> None:
    given = config.attributes.get("on_version_apply")
    context.configure(
        target_metadata=_target_metadata(dialect_name),
        version_table=VERSION_TABLE,
        version_table_schema=SCHEMA,
        include_schemas=SCHEMA is not None,
        include_name=include_name,
        include_object=include_object,
        transaction_per_migration=True,
        compare_type=True,
        on_version_apply=(STEPS, given) if given else STEPS,
        **kwargs,
    )


def _url() -> URL:
    """The URL given, `postgres://` read as `postgresql://` (see `checkpointer.urls`)."""
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(URL_ENV)
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit(
            f"no database URL: set {URL_ENV} or pass `alembic -x url=... upgrade head`"
        )
    return normalized(url)


def _create_schema(connection: Connection) -> None:
    """Create SCHEMA if missing; looked up first, so a deploy role without CREATE on the
    database can migrate into a schema a DBA created for it."""
    if SCHEMA is None:
        return
    if not inspect(connection).has_schema(SCHEMA):
        connection.execute(CreateSchema(SCHEMA, if_not_exists=True))
    # Alembic must begin its own transactions (`autocommit_block` relies on it).
    connection.commit()


def run_on(connection: Connection) -> None:
    validate_schema(SCHEMA, connection.dialect.name)
    _create_schema(connection)
    for_name(connection.dialect.name).new_database(connection)
    dialect_name = connection.dialect.name
    _configure(dialect_name, connection=connection, render_as_batch=dialect_name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    STEPS.finish(connection)


async def _run_async(url: URL) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run_on)
        await connection.commit()
    await engine.dispose()


def run_offline() -> None:
    """`alembic upgrade head --sql`: a script for `psql -v ON_ERROR_STOP=1 -f`."""
    url = _url()
    dialect_name = url.get_backend_name()
    validate_schema(SCHEMA, dialect_name)
    _configure(dialect_name, url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    if SCHEMA is not None:
        context.execute(CreateSchema(SCHEMA, if_not_exists=True))
    with context.begin_transaction():
        context.run_migrations()
    if STEPS.emptied:  # as online: no revision left, no version table
        context.execute(DropTable(VERSIONS))


def main() -> None:
    if context.is_offline_mode():
        run_offline()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = migration_url(_url())  # a plain URL gets an installed driver, sync preferred
    if url.get_dialect().is_async:
        asyncio.run(_run_async(url))
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        run_on(connection)
        connection.commit()
    engine.dispose()


main()
