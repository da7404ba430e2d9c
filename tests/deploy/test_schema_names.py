"""Schema names (issue 16, item 6): checked before anything is created.

`migrations.validate_schema` states what is accepted: 1 to 63 UTF-8 bytes, no `.`, no
`%`, no control character, no leading or trailing whitespace, no `pg_` prefix and not
`information_schema`. A name it accepts works fully (setup, a second setup, put, get,
list, filter, every table in that schema); a name it refuses raises a `ValueError`
naming the rule from every entry point (both savers, `upgrade`, `aupgrade`, the
`alembic` command line) and leaves the database exactly as it was. Before, `"a.b"` and
`"Ü" * 32` (64 bytes) failed midway and left a half-made schema behind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from sqlalchemy import Connection, column, create_engine, func, inspect, select, table
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver, SQLAlchemySaver
from checkpointer.migrations import SCHEMA_ENV, URL_ENV, aupgrade, current_revisions, upgrade

from ..deploy_support import REPO, run_alembic, sync_pg_url, with_conn
from ..pg_server import database_url

ALL = ["0001", "0002", "0003", "0004", "0005", "0006"]
TABLES = {
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "checkpointer_settings",
    "checkpointer_alembic_version",
}

ACCEPTED = [
    "Mixed Case",
    'quo"te',
    "Ü" * 31,  # 62 bytes
    "x" * 63,
    "emoji😀-$x",
    "semi;colon'--",
    "PG_upper",
    "public",
]

REFUSED = [
    ("a.b", r"contains '\.': a dot makes SQLAlchemy read it as <database>.<schema>"),
    ("Ü" * 32, "is 64 bytes long in UTF-8: PostgreSQL names are at most 63 bytes"),
    ("x" * 64, "is 64 bytes long in UTF-8"),
    ("per%cent", "contains '%': a percent sign is psycopg's parameter marker"),
    ("nul\x00", r"contains the control character '\\x00'"),
    ("new\nline", r"contains the control character '\\n'"),
    (" lead", "starts or ends with whitespace"),
    ("trail\u3000", "starts or ends with whitespace"),
    ("pg_x", "is reserved for PostgreSQL's system schemas"),
    ("information_schema", "is reserved for PostgreSQL's system schemas"),
    ("", "must be a non-empty string"),
    ("  ", "must be a non-empty string"),
]


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _checkpoint() -> Any:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"text": "inline", "obj": {"k": [1, 2]}}
    checkpoint["channel_versions"] = {"text": "1", "obj": "1"}
    return checkpoint


_namespaces = table("pg_namespace", column("nspname"), schema="pg_catalog")
_classes = table("pg_class", column("relname"), column("relnamespace"), schema="pg_catalog")


def snapshot(conn: Connection) -> tuple[set[str], int]:
    """Every schema name, and how many relations the database holds."""
    names = set(conn.scalars(select(_namespaces.c.nspname)))
    return names, int(conn.scalar(select(func.count()).select_from(_classes)) or 0)


def _works_fully(database: str, schema: str, kind: str) -> None:
    config, checkpoint = _config(f"thread in {schema}"), _checkpoint()
    metadata: Any = {"schema": schema}
    if kind == "sync":
        engine = create_engine(database_url(database, "psycopg").render_as_string(False))
        try:
            saver = SQLAlchemySaver(engine, schema=schema)
            assert saver.setup() == ALL
            assert saver.setup() == []
            stored = saver.put(config, checkpoint, metadata, {"text": "1", "obj": "1"})
            saver.put_writes(stored, [("obj", {"w": schema})], "task")
            got = saver.get_tuple(stored)
            listed = [t.config for t in saver.list(None, filter={"schema": schema})]
        finally:
            engine.dispose()
    else:

        async def run() -> Any:
            engine = create_async_engine(database_url(database, kind).render_as_string(False))
            try:
                saver = AsyncSQLAlchemySaver(engine, schema=schema)
                assert await saver.setup() == ALL
                assert await saver.setup() == []
                stored = await saver.aput(config, checkpoint, metadata, {"text": "1", "obj": "1"})
                await saver.aput_writes(stored, [("obj", {"w": schema})], "task")
                got = await saver.aget_tuple(stored)
                found = [t.config async for t in saver.alist(None, filter={"schema": schema})]
                return got, found
            finally:
                await engine.dispose()

        got, listed = asyncio.run(run())
    assert got is not None
    assert got.checkpoint["channel_values"] == checkpoint["channel_values"]
    assert got.metadata == metadata
    assert got.pending_writes == [("task", "obj", {"w": schema})]
    assert listed == [got.config]


def test_accepted_names_work_fully(fresh_pg: str) -> None:
    """Odd but valid names, each with another saver kind, in one database: every table
    lands in the named schema (and none in `public` unless that is the name)."""
    kinds = ["asyncpg", "psycopg", "sync"]
    for i, schema in enumerate(ACCEPTED):
        _works_fully(fresh_pg, schema, kinds[i % len(kinds)])
    with with_conn(sync_pg_url(fresh_pg)) as conn:
        inspector = inspect(conn)
        for schema in ACCEPTED:
            assert set(inspector.get_table_names(schema=schema)) == TABLES, schema
            assert current_revisions(conn, schema) == {ALL[-1]}


def test_an_odd_name_from_the_command_line(fresh_pg: str) -> None:
    """`alembic upgrade head` with the schema from CHECKPOINTER_SCHEMA, then a saver."""
    schema = 'Tenant "7" Ü'
    run_alembic("upgrade", "head", url=sync_pg_url(fresh_pg), schema=schema)
    _works_fully_after_cli(fresh_pg, schema)


def _works_fully_after_cli(database: str, schema: str) -> None:
    engine = create_engine(database_url(database, "psycopg").render_as_string(False))
    try:
        saver = SQLAlchemySaver(engine, schema=schema)
        assert saver.setup() == []
        stored = saver.put(_config("t"), _checkpoint(), {}, {"text": "1", "obj": "1"})
        assert saver.get_tuple(stored) is not None
    finally:
        engine.dispose()


def test_refused_names_leave_nothing_behind(fresh_pg: str) -> None:
    """Every entry point raises the rule's `ValueError` before touching the database."""
    url = sync_pg_url(fresh_pg)
    sync_engine = create_engine(url)
    async_engine = create_async_engine(database_url(fresh_pg, "asyncpg").render_as_string(False))
    try:
        with sync_engine.connect() as conn:
            before = snapshot(conn)
            conn.rollback()
        for schema, rule in REFUSED:
            with pytest.raises(ValueError, match=rule):
                SQLAlchemySaver(sync_engine, schema=schema)
            with pytest.raises(ValueError, match=rule):
                AsyncSQLAlchemySaver(async_engine, schema=schema)
            with sync_engine.connect() as conn, pytest.raises(ValueError, match=rule):
                upgrade(conn, schema=schema)
            with pytest.raises(ValueError, match=rule):
                asyncio.run(aupgrade(async_engine, schema=schema))
        with sync_engine.connect() as conn:
            assert snapshot(conn) == before
        assert not TABLES & set(inspect(sync_engine).get_table_names())
    finally:
        sync_engine.dispose()
        asyncio.run(async_engine.dispose())


@pytest.mark.parametrize("schema", ["a.b", "Ü" * 32], ids=["dot", "64-bytes"])
def test_refused_names_from_the_command_line(fresh_pg: str, schema: str) -> None:
    """`alembic upgrade head` refuses the name with the rule, and creates nothing
    (before, both names left a half-made schema that later runs tripped over)."""
    url = sync_pg_url(fresh_pg)
    with with_conn(url) as conn:
        before = snapshot(conn)
    env = {**os.environ, "PYTHONPATH": str(REPO), URL_ENV: url, SCHEMA_ENV: schema}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "ValueError: schema=" in done.stderr
    assert "contains '.'" in done.stderr or "is 64 bytes long" in done.stderr
    with with_conn(url) as conn:
        assert snapshot(conn) == before
