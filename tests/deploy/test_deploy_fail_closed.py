"""Fail closed: a saver on a database that is not migrated, is behind, or is at a
revision this package does not know raises `SchemaNotReadyError` naming the fix on its
first use, checked once per saver. `upgrade()` takes a connection left in a transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SchemaNotReadyError, SQLAlchemySaver
from checkpointer.migrations import aupgrade, head, upgrade

from .. import mysql_server
from ..deploy_support import build_graph, sync_pg_url, table_names, versions, with_conn
from ..pg_server import database_url

CONFIG = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}


@pytest.fixture(params=["postgresql", "sqlite", "mysql"])
async def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An async engine on an empty database of each dialect."""
    if request.param == "postgresql":
        url = database_url(request.getfixturevalue("fresh_pg"), "asyncpg")
    elif request.param == "mysql":
        url = mysql_server.database_url(request.getfixturevalue("fresh_mysql"))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path}/empty.db"
    engine = create_async_engine(url)
    yield engine
    assert engine.pool.checkedout() == 0
    await engine.dispose()


def _says_what_to_run(error: pytest.ExceptionInfo[SchemaNotReadyError]) -> None:
    message = str(error.value)
    assert "alembic upgrade head" in message
    assert "setup()" in message


async def test_unmigrated_database_fails_on_first_use(unmigrated: AsyncEngine) -> None:
    saver = AsyncSQLAlchemySaver(unmigrated)
    with pytest.raises(SchemaNotReadyError, match="not migrated") as error:
        await saver.aget_tuple(CONFIG)
    _says_what_to_run(error)
    graph = build_graph(saver)
    with pytest.raises(SchemaNotReadyError):  # not a driver error mid-run
        await graph.ainvoke({"log": ["start"], "answer": ""}, CONFIG)
    with pytest.raises(SchemaNotReadyError):
        [c async for c in saver.alist(None)]

    assert await saver.setup() == ["0001", "0002", "0003", "0004", "0005", "0006"]
    await graph.ainvoke({"log": ["start"], "answer": ""}, CONFIG)
    result = await graph.ainvoke(Command(resume="yes"), CONFIG)
    assert result["log"][-1] == "finished"


def test_sync_saver_fails_closed_too(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/empty.db")
    try:
        saver = SQLAlchemySaver(engine)
        with pytest.raises(SchemaNotReadyError, match="not migrated") as error:
            list(saver.list(None))
        _says_what_to_run(error)
        assert saver.setup() == ["0001", "0002", "0003", "0004", "0005", "0006"]
        assert list(saver.list(None)) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("recorded", "match"),
    [
        ("0099", "0099, which this installed langgraph-checkpoint-sqlalchemy does not know"),
        ("0001", "0001, behind this package's"),
    ],
)
async def test_revision_other_than_head_fails(pg_url: str, recorded: str, match: str) -> None:
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE checkpointer_alembic_version SET version_num = :v"), {"v": recorded}
            )
        saver = AsyncSQLAlchemySaver(engine)
        with pytest.raises(SchemaNotReadyError, match=match):
            await saver.aget_tuple(CONFIG)
    finally:
        await engine.dispose()


async def test_check_runs_once_per_saver_and_not_cached_when_failing(
    unmigrated: AsyncEngine,
) -> None:
    seen: list[str] = []

    @event.listens_for(unmigrated.sync_engine, "before_cursor_execute")
    def _capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    def version_reads() -> int:
        return sum(
            "checkpointer_alembic_version" in s and s.lstrip().upper().startswith("SELECT")
            for s in seen
        )

    saver = AsyncSQLAlchemySaver(unmigrated)
    for _ in range(2):  # a failed check is not remembered: each call looks again
        with pytest.raises(SchemaNotReadyError):
            await saver.aget_tuple(CONFIG)
    # Migrated behind the saver's back (another pod's setup(), a deploy job):
    async with unmigrated.connect() as conn:
        await conn.run_sync(upgrade)
    seen.clear()
    graph = build_graph(saver)
    await graph.ainvoke({"log": ["start"], "answer": ""}, CONFIG)
    await graph.ainvoke(Command(resume="yes"), CONFIG)
    assert [c async for c in saver.alist(CONFIG)]
    assert version_reads() == 1, "the revision must be checked once per saver"
    assert len(seen) > 10

    other = AsyncSQLAlchemySaver(unmigrated)  # a new saver checks again, on first use
    await other.aget_tuple(CONFIG)
    assert version_reads() == 2


host_table = Table("host_rows", MetaData(), Column("id", Integer, primary_key=True))


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_upgrade_on_a_connection_left_in_a_transaction(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The caller's open transaction (with its own uncommitted row) is committed, the
    migration runs, and the connection is left usable and outside a transaction."""
    if dialect == "postgresql":
        url = sync_pg_url(request.getfixturevalue("fresh_pg"))
    else:
        url = f"sqlite:///{tmp_path}/host.db"
    with with_conn(url) as conn:
        host_table.create(conn)
        conn.execute(host_table.insert().values(id=1))
        conn.execute(select(1))
        assert conn.in_transaction()
        assert upgrade(conn) == ["0001", "0002", "0003", "0004", "0005", "0006"]
        assert not conn.in_transaction()
        assert versions(conn) == [head()]
        conn.execute(host_table.insert().values(id=2))
        conn.commit()
    with with_conn(url) as conn:
        assert {"checkpoints", "host_rows"} <= table_names(conn)
        assert list(conn.scalars(select(host_table.c.id).order_by(host_table.c.id))) == [1, 2]


async def test_async_upgrade_on_a_connection_in_a_transaction(unmigrated: AsyncEngine) -> None:
    async with unmigrated.connect() as conn:
        await conn.execute(select(1))
        assert conn.in_transaction()
        assert await conn.run_sync(upgrade) == ["0001", "0002", "0003", "0004", "0005", "0006"]
        await conn.execute(select(1))
    assert await aupgrade(unmigrated) == []
    saver = AsyncSQLAlchemySaver(unmigrated)
    assert await saver.aget_tuple(CONFIG) is None


async def test_tables_dropped_after_the_check_say_what_to_run(engine: AsyncEngine) -> None:
    """The driver's missing-table error (SQLSTATE 42P01 / SQLite "no such table") becomes
    `SchemaNotReadyError`; any other driver error passes through unchanged."""
    saver = AsyncSQLAlchemySaver(engine)
    assert await saver.aget_tuple(CONFIG) is None  # first use: the revision check passes
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE checkpoint_writes"))
    with pytest.raises(SchemaNotReadyError) as error:
        await saver.aget_tuple(CONFIG)
    _says_what_to_run(error)
    assert error.value.__cause__ is not None

    async with engine.begin() as conn:  # a failure that is not a missing table
        await conn.execute(text("CREATE TABLE checkpoint_writes (thread_id INTEGER)"))
    with pytest.raises(DBAPIError) as other:
        await saver.aget_tuple(CONFIG)
    assert not isinstance(other.value, SchemaNotReadyError)
